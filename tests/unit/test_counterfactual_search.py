import pytest
from replay.manifests.schema import Feature

from replay.questions.counterfactuals import _directions, _nice, _walk


def feature(**spec):
    return Feature.from_json("x", spec)


@pytest.mark.parametrize("start", [5.7, 0.1, 33.3, 59.99])
def test_a_walk_ends_exactly_on_its_bound(start):
    values = _walk(feature(type="number", max=60), start, 60, 40)
    assert values[-1] == 60 and all(start < v <= 60 for v in values)
    assert values == sorted(values)


def test_integer_walks_are_whole_distinct_and_ordered_away_from_the_start():
    values = _walk(feature(type="integer"), 3, 0, 40)
    assert values == [2, 1, 0]


@pytest.mark.parametrize(
    ("monotone", "towards_favourable", "expected"),
    [
        ("increasing", True, [1]),
        ("decreasing", True, [-1]),
        ("increasing", False, [-1]),
        (None, True, [1, -1]),
    ],
)
def test_monotone_features_move_only_the_helpful_way(monotone, towards_favourable, expected):
    spec = {"type": "number"} | ({"monotone": monotone} if monotone else {})
    assert _directions(feature(**spec), towards_favourable) == expected


def test_nice_rounds_away_from_the_start_within_bounds():
    assert _nice(feature(type="number"), 55_000, 68_979.6, 25_000) == 69_000
    assert _nice(feature(type="number"), 20_900, 1_785.2, 16_000) == 1_700
    assert _nice(feature(type="number", max=60), 5.7, 59.99, 6.0) == 60
    assert _nice(feature(type="integer", min=0), 3, 0.4, 1.0) == 0
