"""HTTP: the decision API."""
