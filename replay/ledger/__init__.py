"""The decision ledger: the chain, its backends, the decisions recorded in it."""
