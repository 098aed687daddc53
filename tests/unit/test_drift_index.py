"""Drift, checked by hand: the population stability index; free text compared by its
length and by the share of its values the reference holds (never as categories, which
call any two samples of free text apart); score windows named at a resolution that
tells them apart; plots drawn without a layout warning."""

from __future__ import annotations

import math
import random
import warnings
from datetime import UTC, datetime, timedelta

import pytest

from replay.history.drift import (
    CategoryCounts,
    MeasuredCounts,
    _plot,
    comparison,
    psi,
    window_labels,
)
from tests.factories import schema

PAYMENTS = schema(
    {
        "descriptor": {"type": "text", "max_length": 5000},
        "shop": {"type": "string", "values": ["grocery", "fuel"]},
    }
)
TEMPLATES = ["REWE MARKT {n} BERLIN", "SHELL {n}\nHAMBURG", "CAFÉ ZUR POST {n}", "BET365 {n}"]


def descriptors(count: int, seed: int) -> list[dict]:
    """Statement descriptors as merchants write them: almost every one new."""
    draw = random.Random(seed)
    return [
        {"descriptor": draw.choice(TEMPLATES).format(n=draw.randint(100, 9999)), "shop": "fuel"}
        for _ in range(count)
    ]


def compared(reference: list[dict], logged: list[str | None]):
    counts = comparison(PAYMENTS.inputs["descriptor"], reference, seed=0)
    for value in logged:
        counts.add(value)
    return counts, counts.drift()


def test_psi_is_zero_for_the_same_shares_and_grows_with_a_shift():
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    by_hand = (0.4 - 0.25) * math.log(0.4 / 0.25) + (0.1 - 0.25) * math.log(0.1 / 0.25)
    assert psi([0.25] * 4, [0.4, 0.1, 0.25, 0.25]) == pytest.approx(by_hand)
    assert psi([0.5, 0.5], [1.0, 0.0]) > 0.25  # an empty bin stays finite


def test_free_text_from_the_references_distribution_is_not_flagged():
    reference = descriptors(300, seed=1)
    logged = [row["descriptor"] for row in descriptors(2000, seed=2)]
    logged += ["", "BÄCKEREI ŠKODA — ZÜRICH ☕", None]  # an empty text, accents, none
    counts, found = compared(reference, logged)
    assert isinstance(counts, MeasuredCounts)
    assert (found.kind, found.test, found.logged) == ("text", "ks of length", 2002)
    assert not found.flagged, found
    assert found.psi < 0.1 and found.p_value > 0.01
    assert found.seen is not None and found.seen.p_value > 0.01
    # each new text is unseen, in the reference as in the logged decisions
    assert found.seen.share < 0.05 and found.seen.reference_share < 0.05


def test_free_text_is_compared_by_length_not_as_categories():
    reference = descriptors(300, seed=1)
    longer = [row["descriptor"] + " P2P TRANSFER VERIFY" for row in descriptors(500, seed=3)]
    counts, found = compared(reference, longer)
    assert found.flagged and found.p_value < 1e-6 and found.psi > 0.25
    names, expected, actual = counts.bars()
    assert names[0].startswith("< ") and names[0].endswith(" characters")
    assert sum(expected) == pytest.approx(1.0) and sum(actual) == pytest.approx(1.0)


def test_new_kinds_of_text_lower_the_share_seen_in_the_reference():
    known = ["NETFLIX.COM", "SPOTIFY AB", "AMAZON PRIME", "APPLE.COM/BILL"]
    reference = [{"descriptor": known[i % 4], "shop": "fuel"} for i in range(200)]
    new = ["NETFLIX.CON", "SPOTIFY AC", "AMAZON PRIMF", "APPLE.COM/BIL1"]  # same lengths
    _, found = compared(reference, [new[i % 4] for i in range(100)] + known * 25)
    assert found.p_value == 1.0 and found.psi < 0.01  # the lengths alone cannot tell
    assert found.seen is not None
    assert (found.seen.share, found.seen.reference_share) == (0.5, 1.0)
    assert found.seen.p_value < 0.01 and found.flagged
    # more of the reference's own values than it holds itself is no new kind of text
    _, repeated = compared(descriptors(300, seed=1), [known[0]] * 50)
    assert repeated.seen is not None and repeated.seen.p_value > 0.01


def test_categories_keep_chi_squared():
    counts = comparison(PAYMENTS.inputs["shop"], [{"shop": "fuel"}, {"shop": "grocery"}] * 50, 0)
    assert isinstance(counts, CategoryCounts)
    for _ in range(100):
        counts.add("fuel")
    found = counts.drift()
    assert (found.kind, found.test, found.flagged, found.seen) == (
        "category",
        "chi-squared",
        True,
        None,
    )


def window(start: datetime, end: datetime) -> dict:
    return {"from": start.isoformat(), "until": end.isoformat()}


def test_score_windows_are_named_at_a_resolution_that_tells_them_apart():
    burst = datetime(2026, 5, 1, 9, 30, 12, 100_000, tzinfo=UTC)
    step = timedelta(milliseconds=40)
    labels = window_labels([window(burst + step * i, burst + step * (i + 1)) for i in range(3)])
    assert labels == [
        "2026-05-01 09:30:12.100 to 2026-05-01 09:30:12.140",
        "2026-05-01 09:30:12.140 to 2026-05-01 09:30:12.180",
        "2026-05-01 09:30:12.180 to 2026-05-01 09:30:12.220",
    ]
    days = [window(burst + timedelta(days=i), burst + timedelta(days=i + 1)) for i in range(2)]
    assert window_labels(days) == [
        "2026-05-01 09:30 to 2026-05-02 09:30",
        "2026-05-02 09:30 to 2026-05-03 09:30",
    ]
    one = datetime(2026, 5, 1, 9, 30, 12, 123_456, tzinfo=UTC)
    ticks = [window(one, one + timedelta(microseconds=2))]
    assert window_labels(ticks) == ["2026-05-01 09:30:12.123456 to 2026-05-01 09:30:12.123458"]


def test_a_flagged_texts_plot_is_drawn_without_a_layout_warning():
    reference = descriptors(300, seed=1)
    long_text = ("AMZN MKTP DE*2K4 " * 300)[:5000]
    counts, found = compared(reference, [long_text] * 50)
    categories = CategoryCounts(PAYMENTS.inputs["shop"], [{"shop": long_text}, {"shop": "x"}])
    categories.add("fuel")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "Tight layout not applied" included
        assert _plot(found, counts).startswith(b"\x89PNG")
        assert _plot(categories.drift(), categories).startswith(b"\x89PNG")
