"""One decision asked again: what-if, sweeps, counterfactuals, explanations.

Each question is an algorithm of the typed schema, a `Decision` and a `Predictor`
(re-exported here); `replay.whatif` and the other public functions fetch the decision
and its original container and call them.
"""

from replay.questions.counterfactuals import counterfactuals_of
from replay.questions.explanations import explanation_of
from replay.questions.sweeps import sweep_of
from replay.questions.what_if import whatif_of

__all__ = ["counterfactuals_of", "explanation_of", "sweep_of", "whatif_of"]
