"""A deployment's original container: recovery, warm containers, re-execution.

Also the `Predictor` every question asks, and a logged `Decision` as they see it.
"""
