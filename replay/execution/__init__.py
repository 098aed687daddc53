"""A deployment's original container: recovery, warm containers, re-execution."""
