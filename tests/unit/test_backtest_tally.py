"""What a backtest counts, checked by hand on small tables: flips, rates, score shift
(null scores left out), and segments (numbers binned at the reference's quantiles, in
order; categories and booleans as they are)."""

from __future__ import annotations

import pytest

from replay.history.comparison import BacktestTally, quantile_edges
from tests.factories import schema

CLAIMS = schema(
    {
        "amount": {"type": "number", "min": 0},
        "channel": {"type": "string", "values": ["agent", "online"]},
        "police": {"type": "boolean"},
    },
)
REFERENCE = [{"amount": float(a), "channel": "agent", "police": False} for a in range(1, 101)]


def test_quantile_edges_split_a_sample_evenly():
    assert quantile_edges([float(v) for v in range(1, 101)], 4) == [26.0, 51.0, 76.0]
    assert quantile_edges([5.0] * 10, 3) == [5.0]  # ties collapse to one edge
    assert quantile_edges([], 5) == []


def test_flips_rates_and_score_shift_are_counted():
    tally = BacktestTally.for_schema(CLAIMS, REFERENCE, bins=2)

    def person(amount, channel, police):
        return {"amount": amount, "channel": channel, "police": police}

    pairs = [
        (person(10.0, "agent", True), ("approved", 0.8), ("approved", 0.9)),
        (person(20.0, "online", False), ("approved", 0.6), ("rejected", 0.4)),
        (person(70.0, "online", False), ("rejected", 0.3), ("approved", None)),
        (person(90.0, "agent", False), ("rejected", 0.2), ("rejected", 0.1)),
    ]
    flipped = [
        tally.add(inputs, {"decision": a, "score": b}, {"decision": c, "score": d})
        for inputs, (a, b), (c, d) in pairs
    ]
    assert flipped == [False, True, True, False]
    summary = tally.to_dict()
    assert (summary["decisions"], summary["flips"], summary["flip_rate"]) == (4, 2, 0.5)
    table = {(c["logged"], c["challenger"]): c["count"] for c in summary["flip_table"]}
    assert table == {
        ("approved", "approved"): 1,
        ("approved", "rejected"): 1,
        ("rejected", "approved"): 1,
        ("rejected", "rejected"): 1,
    }
    assert summary["favourable_rate_before"] == summary["favourable_rate_after"] == 0.5
    # three shifts (+0.1, -0.2, -0.1): the null score is left out
    assert summary["mean_score_shift"] == pytest.approx(-0.2 / 3)
    assert sorted(tally.sample) == pytest.approx([-0.2, -0.1, 0.1])


def test_segments_are_binned_in_order_and_categories_kept():
    tally = BacktestTally.for_schema(CLAIMS, REFERENCE, bins=2)
    assert tally.edges == {"amount": [51.0]}
    for amount, before, after in ((10.0, "a", "a"), (60.0, "a", "b"), (90.0, "a", "b")):
        tally.add(
            {"amount": amount, "channel": "online", "police": True},
            {"decision": before, "score": None},
            {"decision": after, "score": None},
        )
    segments = tally.to_dict()["segments"]
    assert [(s["segment"], s["decisions"], s["flips"]) for s in segments["amount"]] == [
        ("< 51", 1, 0),
        (">= 51", 2, 2),
    ]
    assert segments["channel"] == [
        {"segment": "online", "decisions": 3, "flips": 2, "flip_rate": 2 / 3,
         "mean_score_shift": None}
    ]  # fmt: skip
    assert [s["segment"] for s in segments["police"]] == ["true"]


def test_free_text_is_never_a_segment():
    with_text = schema(
        {
            "descriptor": {"type": "text", "max_length": 5000},
            "amount": {"type": "number", "min": 0},
        }
    )
    tally = BacktestTally.for_schema(with_text, [{"amount": 1.0, "descriptor": "x"}], bins=2)
    for i in range(20):
        tally.add(
            {"descriptor": f"SHELL {i}\nHAMBURG", "amount": float(i)},
            {"decision": "allow", "score": 0.9},
            {"decision": "block" if i % 2 else "allow", "score": 0.5},
        )
    summary = tally.to_dict()
    assert list(summary["segments"]) == ["amount"] and summary["flips"] == 10


def test_segments_are_drawn_and_shown_on_one_short_line_without_a_layout_warning():
    import warnings

    from replay.figures import svg
    from replay.history.report import flip_table_figure, segments_figure, shift_figure

    long_name = "AMZN MKTP DE*2K4\n" * 300
    tally = BacktestTally.for_schema(CLAIMS, REFERENCE, bins=2)
    for i, channel in enumerate((long_name, long_name + "x", "agent")):
        tally.add(
            {"amount": 10.0 * i, "channel": channel, "police": False},
            {"decision": "a", "score": 0.5},
            {"decision": "b" if i else "a", "score": 0.4},
        )
    summary = tally.to_dict()
    figure = segments_figure(summary["segments"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "Tight layout not applied" included
        svg(figure)
        svg(flip_table_figure(summary))
        svg(shift_figure(tally.sample))
    (channel,) = [axes for axes in figure.axes if axes.get_title() == "channel"]
    names = [label.get_text() for label in channel.get_yticklabels()]
    assert len(names) == 3  # two values that shorten alike stay two bars
    assert all(len(name) <= 60 and "\n" not in name for name in names)
