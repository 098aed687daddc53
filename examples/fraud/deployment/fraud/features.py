"""The payment fields the model sees, in the order of its input matrix."""

TEXT = "descriptor"  # the statement descriptor, free text as the merchant wrote it
CATEGORY = "merchant_category"
NUMBERS = [
    "amount",
    "card_present",
    "card_age_days",
    "payments_24h",
    "distance_km",
    "cardholder_age",
]
FEATURES = [TEXT, CATEGORY, *NUMBERS]


def matrix(payments: list[dict]):
    """Rows for the Pipeline: text, category, then numbers (the boolean as 0/1), as objects."""
    import numpy as np

    return np.array(
        [
            [payment[TEXT], payment[CATEGORY]] + [float(payment[name]) for name in NUMBERS]
            for payment in payments
        ],
        dtype=object,
    )
