"""The history commands' command line: `--bins` parsed by its own click type (one line,
exit 2, for anything malformed), and the human tables: score windows told apart, free
text and long group names on one short line, erased decisions said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner
from replay.cli.history import _show_drift, _show_fairness
from replay.cli.main import cli
from replay.cli.params import Bins

from replay.history.drift import Drift, FeatureDrift, SeenShare
from replay.history.fairness import Fairness
from replay.history.groups import GroupRate


def test_bins_become_increasing_edges():
    assert Bins().convert("18,25,40_000", None, None) == [18.0, 25.0, 40000.0]
    assert Bins().convert("65", None, None) == [65.0]  # under 65, 65 and over


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("5,a", "'5,a' is not numbers separated by commas"),
        ("18,,25", "is not numbers separated by commas"),
        ("40,18", "bin edges must increase, each above the one before, not 40, 18"),
        ("18,18", "must increase"),
        ("18,inf", "each a finite number"),
    ],
)
def test_malformed_bins_are_a_usage_error(text, says):
    with pytest.raises(click.BadParameter, match=says):
        Bins().convert(text, None, None)


@pytest.mark.parametrize("bins", ["5,a", "40,18"])
def test_malformed_bins_are_one_line_with_exit_2_before_anything_is_read(bins):
    result = CliRunner().invoke(cli, ["fairness", "--attribute", "age", "--bins", bins])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "'--bins'" in result.output


def test_the_score_windows_of_one_burst_are_told_apart(capsys):
    start = datetime(2026, 5, 1, 9, 30, 12, tzinfo=UTC)
    windows = [
        {
            "from": (start + timedelta(milliseconds=100 * i)).isoformat(),
            "until": (start + timedelta(milliseconds=100 * (i + 1))).isoformat(),
            "decisions": 10,
            "mean_score": 0.5,
            "quartiles": [0.25, 0.5, 0.75],
        }
        for i in range(3)
    ]
    seen = SeenShare(0.02, 0.03, 0.6)
    text = FeatureDrift("descriptor", "text", 0.01, "ks of length", 0.1, 0.5, False, 30, seen)
    _show_drift(Drift("fraud-screen", "m" * 64, 30, [text], windows))
    shown = capsys.readouterr().out
    for i in range(3):
        assert f"2026-05-01 09:30:12.{i}00 to 2026-05-01 09:30:12.{i + 1}00" in shown
    assert "ks of length" in shown and "2% (its own 3%, p 0.6)" in shown


def test_fairness_groups_are_shown_on_one_short_line_with_the_erased_counted(capsys):
    name = "A VERY LONG CATEGORY NAME\n" * 10
    groups = [
        GroupRate(name, 5, 4, 0.8, 1.0, False, 1.0),
        GroupRate("b", 5, 1, 0.2, 0.25, True, 0.2),
    ]
    _show_fairness(Fairness("people", "kind", "approved", groups, decisions=12, erased=2))
    shown = capsys.readouterr().out
    assert "A VERY LONG CATEGORY NAME A VERY LONG" in shown and name not in shown
    assert "12 decisions; 2 erased" in shown
