"""The claim fields the model sees, in the order of its input matrix."""

NUMBERS = ["claim_amount", "policy_years", "prior_claims", "police_report", "age"]
CATEGORIES = ["channel", "region"]
FEATURES = NUMBERS + CATEGORIES


def matrix(claims: list[dict]):
    """Rows for the Pipeline: numbers (the boolean as 0/1) then categories, as objects."""
    import numpy as np

    return np.array(
        [
            [float(claim[name]) for name in NUMBERS] + [claim[name] for name in CATEGORIES]
            for claim in claims
        ],
        dtype=object,
    )
