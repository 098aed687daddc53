"""One decision asked again: what-if, sweeps, counterfactuals, explanations.

Each question is an algorithm of the typed schema, a `Decision` and a `Predictor`
(re-exported here, with the reference sample sizes the public functions use, for
callers such as the console that hold the decision and its container already);
`replay.whatif` and the other public functions fetch the decision and its original
container and call them.
"""

from replay.questions.counterfactuals import REFERENCE_ROWS as COUNTERFACTUAL_ROWS
from replay.questions.counterfactuals import counterfactuals_of
from replay.questions.explanations import EXPLANATION_ROWS, explanation_of
from replay.questions.sweeps import Range, sweep_of
from replay.questions.what_if import whatif_of

__all__ = [
    "COUNTERFACTUAL_ROWS",
    "EXPLANATION_ROWS",
    "Range",
    "counterfactuals_of",
    "explanation_of",
    "sweep_of",
    "whatif_of",
]
