"""A credit-approval model: synthetic applicants, gradient boosting, a reason per decision."""
