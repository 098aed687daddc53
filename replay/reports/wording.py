"""How the report's letter says things to the person: each input by its title, values
rounded for reading, the score to two decimals, a reason, an option, the model in one
sentence. The annex keeps the exact values (`exact`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from replay.display import format_value, shorten
from replay.manifests.manifest import Manifest
from replay.manifests.schema import Feature
from replay.questions.counterfactuals import Counterfactual, CounterfactualSet
from replay.questions.explanations import Contribution, Explanation, numeric

# What a person calls a model, by a fragment of its class name; the first match names it.
MODEL_KINDS = (
    ("GradientBoosting", "gradient-boosted trees"),  # HistGradientBoosting* too
    ("XGB", "gradient-boosted trees"),
    ("LGBM", "gradient-boosted trees"),
    ("CatBoost", "gradient-boosted trees"),
    ("RandomForest", "a random forest"),
    ("ExtraTrees", "randomised trees"),
    ("DecisionTree", "a decision tree"),
    ("LogisticRegression", "a logistic regression"),
    ("LinearRegression", "a linear regression"),
    ("Ridge", "a linear model"),
    ("Lasso", "a linear model"),
    ("SGD", "a linear model"),
    ("SVC", "a support-vector machine"),
    ("SVR", "a support-vector machine"),
    ("MLP", "a neural network"),
    ("KNeighbors", "a nearest-neighbours model"),
    ("NB", "a naive Bayes model"),
)
# Libraries that say what kind of model a deployment runs, named from its lock when its
# container cannot describe the model (images built before runner protocol 7).
MODEL_LIBRARIES = (
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch",
    "tensorflow",
    "statsmodels",
)
NOT_A_STEP = ("drop", "passthrough")  # what a Pipeline or ColumnTransformer holds as text


def exact(value: Any) -> str:
    """A logged value as the annex keeps it: JSON, every digit of a float (its shortest
    round-trip form), the whole text with its newlines escaped."""
    return json.dumps(value, ensure_ascii=False)


def readable(feature: Feature, value: Any) -> str:
    """A logged value as the letter shows it: text quoted on one short line, yes or no,
    a number rounded with thousands separators and the feature's unit."""
    if value is None:
        return "none"
    if feature.text:
        return f"“{shorten(value)}”"
    if feature.type == "boolean":
        return "yes" if value else "no"
    shown = format_value(value)
    return f"{shown} {feature.unit}" if feature.unit else shown


def score_text(score: Any) -> str | None:
    """The score to two decimals (None when the decision has no numeric score)."""
    return f"{score:.2f}" if numeric(score) else None


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def reason(feature: Feature, contribution: Contribution, favourable: Any) -> str:
    """One of the person's reasons: the input by its title, its value, which way it
    weighed (no Shapley numbers: those are for the compliance reviewer)."""
    way = "towards" if contribution.decision > 0 else "against"
    shown = readable(feature, contribution.value)
    return f"{capitalised(feature.title)} ({shown}) weighed {way} “{favourable}”."


def not_the_inputs(explanation: Explanation) -> str | None:
    """What decided, in the letter's words, when none of the person's inputs did."""
    if explanation.decided_by == "inputs":
        return None
    decided = f"“{explanation.decision}”"
    if explanation.decided_by == "random draw":
        others = [f"“{value}” {count} times" for value, count in explanation.other_seeds.items()]
        tried = ""
        if set(explanation.other_seeds) != {str(explanation.decision)}:
            draws = sum(explanation.other_seeds.values())
            tried = f" With {draws} other draws the same data gets {_listed(others)}."
        return (
            f"None of your data accounts for {decided} on its own: a random draw, part of how "
            f"the decisions are made, did.{tried}"
        )
    return (
        f"None of your data accounts for {decided} on its own: the same decision is made when "
        "any part of it is replaced by the values of typical cases, so a fixed rule decided."
    )


def option(features: Mapping[str, Feature], found: Counterfactual, decision_field: str) -> str:
    """A verified change as a sentence: the inputs by title, as logged and as changed,
    rounded; a monotone number's change is a bound (more of it helps as much)."""
    changes = []
    for name, feature in features.items():  # in the schema's order
        if name not in found.changes:
            continue
        old, new = found.changes[name]
        bound = ""
        if feature.numeric and feature.monotone is not None:
            bound = "at least " if new > old else "at most "
        changes.append(
            f"{feature.title} had been {bound}{readable(feature, new)} "
            f"(it was {readable(feature, old)})"
        )
    outcome = found.outputs[decision_field]
    return f"The decision would have been “{outcome}” if {_listed(changes)}."


def no_option(features: Mapping[str, Feature], searched: CounterfactualSet) -> str:
    """Why no change is offered, with the inputs by title."""
    titles = [features[name].title for name in searched.movable]
    drawn = (
        " Under this decision's random draw, no typical case reaches it either."
        if searched.blocked_by_draw
        else ""
    )
    return (
        f"No change of one or two of {_listed(titles, 'or')} would have reached "
        f"“{searched.target}” ({searched.evaluated:,} variations were tried).{drawn}"
    )


def model_sentence(described: list[dict[str, Any]], manifest: Manifest) -> str:
    """The model in one sentence, from what the container says its deployment holds
    (each object's class, library and version, a Pipeline's steps); from the lock's
    model libraries when it says nothing."""
    if described:
        return _listed([_model(part) for part in described])
    files = ", ".join(Path(model.path).name for model in manifest.model_files) or "no model file"
    locked = {item.key: item.version for item in manifest.environment.requirements}
    libraries = [f"{name} {locked[name]}" for name in MODEL_LIBRARIES if name in locked]
    among = f", with {_listed(libraries)} among its locked libraries" if libraries else ""
    return f"a model ({files}) run by the deployment's code{among}"


def _model(part: dict[str, Any]) -> str:
    """An estimator by what it is; a Pipeline as its last step after the others."""
    steps = [step for step in part.get("parts", []) if step["class"] not in NOT_A_STEP]
    if part["class"].endswith("Pipeline") and steps:
        *before, last = steps
        after = f" after {_listed([_step(step) for step in before])}" if before else ""
        # its library's version only when the model's own differs from it
        same = last.get("library") == part.get("library")
        where = part.get("library", "") if same else _origin(part)
        holder = f"{where} {part['class']}".strip()
        return f"{_model(last)}{after}, in {_article(holder)} {holder}"
    kind = next((words for fragment, words in MODEL_KINDS if fragment in part["class"]), None)
    if kind is None and "parts" in part:
        return _step(part)
    return f"{kind or 'a model'} ({_named(part)})"


def _step(part: dict[str, Any]) -> str:
    """A preparation step: its class, and the classes inside it, in order, once each."""
    inside: list[str] = []
    for leaf in _leaves(part.get("parts", [])):
        if leaf not in inside:
            inside.append(leaf)
    listed = f" ({', '.join(inside)})" if inside else ""
    return f"{_article(part['class'])} {part['class']}{listed}"


def _leaves(parts: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for part in parts:
        if part["class"] == "drop":  # a column left out is no part of the model
            continue
        found.extend(_leaves(part["parts"]) if part.get("parts") else [part["class"]])
    return found


def _named(part: dict[str, Any]) -> str:
    """`GradientBoostingClassifier, scikit-learn 1.5.2`."""
    origin = _origin(part)
    return f"{part['class']}, {origin}" if origin else part["class"]


def _origin(part: dict[str, Any]) -> str:
    return " ".join(str(part[key]) for key in ("library", "version") if part.get(key))


def _article(word: str) -> str:
    # "a OneHotEncoder", "an OrdinalEncoder": by sound, which a first letter mostly gives
    vowel = word[:1].upper() in "AEIOU" and not word.startswith(("One", "Uni", "Use", "Eu"))
    return "an" if vowel else "a"


def _listed(items: list[str], last: str = "and") -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"
