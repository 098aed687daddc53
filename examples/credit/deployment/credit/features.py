"""The applicant features, in the order the model sees them."""

FEATURES = [
    "income",  # yearly, in currency units
    "debt",  # outstanding, in currency units
    "loan_amount",
    "age",
    "years_employed",
    "credit_history_years",
    "late_payments",  # in the last five years
]

# +1: more is never worse for the applicant; -1: more is never better; 0: no constraint.
MONOTONE = {
    "income": 1,
    "debt": -1,
    "loan_amount": -1,
    "age": 0,
    "years_employed": 1,
    "credit_history_years": 1,
    "late_payments": -1,
}
