"""A card-payment fraud screen: allow, challenge (ask the cardholder to confirm) or block."""
