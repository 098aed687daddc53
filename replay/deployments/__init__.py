"""A manifest's life: capture, build, verify, publish."""
