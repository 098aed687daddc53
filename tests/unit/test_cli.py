import re
import subprocess
import sys
from datetime import datetime

import click
import pytest
from click.testing import CliRunner
from replay.cli.main import cli
from replay.cli.output import ReplayGroup, jsonable
from replay.cli.params import Assignment, GridRange, Moment

from replay.errors import (
    INTERNAL_ERROR,
    BadInput,
    EnvironmentProblem,
    Erased,
    IntegrityError,
    VerificationFailed,
)
from replay.questions.sweeps import Range

EXPECTED_COMMANDS = {
    "audit",
    "backtest",
    "build",
    "capture",
    "console",
    "counterfactual",
    "deployments",
    "drift",
    "explain",
    "ingest",
    "fairness",
    "ledger",
    "manifest",
    "publish",
    "replay",
    "report",
    "review",
    "serve",
    "subject",
    "sweep",
    "tokens",
    "up",
    "users",
    "whatif",
}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (VerificationFailed, 1),
        (BadInput, 2),
        (EnvironmentProblem, 3),
        (IntegrityError, 4),
        (Erased, 5),
    ],
)
def test_errors_in_a_nested_command_become_one_line_and_their_exit_code(error, code):
    @click.group(cls=ReplayGroup)
    def top():
        pass

    @top.group()
    def inner():
        pass

    @inner.command()
    def failing():
        raise error("what went wrong and how to fix it")

    result = CliRunner().invoke(top, ["inner", "failing"])
    assert result.exit_code == code
    assert result.output == "error: what went wrong and how to fix it\n"


@pytest.mark.parametrize("debug", [None, "1"])
def test_a_bug_exits_with_its_own_code_not_the_one_for_diverged(monkeypatch, debug):
    @click.group(cls=ReplayGroup)
    def top():
        pass

    @top.command()
    def broken():
        raise KeyError("score")

    if debug:
        monkeypatch.setenv("REPLAY_DEBUG", debug)
    else:
        monkeypatch.delenv("REPLAY_DEBUG", raising=False)
    result = CliRunner().invoke(top, ["broken"])
    assert result.exit_code == INTERNAL_ERROR != VerificationFailed.exit_code
    assert result.output.splitlines()[-1] == (
        "error: internal error: KeyError: 'score' (a bug in replay; REPLAY_DEBUG=1 shows where)"
    )
    assert ("Traceback" in result.output) == bool(debug)


def test_help_lists_exactly_the_commands_each_with_a_summary():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    section = result.output.split("Commands:\n", 1)[1]
    listed = dict(re.findall(r"^  (\S+)\s+(\S.*)$", section, flags=re.MULTILINE))
    assert set(listed) == EXPECTED_COMMANDS
    assert all(len(summary) > 10 for summary in listed.values())


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from replay.cli.main import cli\n"
        "try: cli(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('mlflow', 'dvc', 'docker', 'pandas', 'matplotlib', 'fastapi')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_no_submodule_shadows_a_public_function():
    import pkgutil

    import replay

    modules = {info.name for info in pkgutil.iter_modules(replay.__path__)}
    assert modules.isdisjoint(replay.__all__)


def convert(kind: click.ParamType, text: str):
    return kind.convert(text, None, None)


def test_command_line_syntax_becomes_typed_values():
    # the value's text as typed: the schema parses a number (spaces and all), and keeps
    # a free text's spaces and newlines
    assert convert(Assignment(), " income = 65000 ") == ("income", " 65000 ")
    assert convert(Assignment(), "descriptor=SHELL\nHAMBURG ") == ("descriptor", "SHELL\nHAMBURG ")
    assert convert(Assignment(), "region=") == ("region", "")
    assert convert(GridRange(), "income=20_000:120000:50") == Range("income", 20000, 120000, 50)
    assert convert(Moment(), "2026-05-01") == datetime(2026, 5, 1)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (Assignment(), "income"),
        (Assignment(), "=5"),
        (GridRange(), "income=1:2"),
        (GridRange(), "income=a:2:3"),
        (GridRange(), "income=1:2:3.5"),
        (GridRange(), "1:2:3"),
        (Moment(), "yesterday"),
    ],
)
def test_malformed_syntax_is_a_usage_error(kind, text):
    with pytest.raises(click.BadParameter, match="is not"):
        convert(kind, text)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["whatif", "txn_1", "--set", "income"], "'--set': 'income' is not NAME=VALUE"),
        (["sweep", "txn_1", "--vary", "income=1:2"], "is not NAME=START:STOP:COUNT"),
        (["ledger", "list", "--since", "yesterday"], "'yesterday' is not an ISO date"),
        (["replay"], "give one transaction id, or --all"),
        (["whatif"], "Missing argument 'TXN_ID'"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_command_line_mistakes_are_one_line_with_exit_2(arguments, named):
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert named in result.output


def test_json_is_built_from_to_dict_or_dataclass_fields():
    assert jsonable(Range("income", 1.0, 2.0, 3)) == {
        "feature": "income",
        "start": 1.0,
        "stop": 2.0,
        "count": 3,
    }

    class Result:
        def to_dict(self):
            return {"when": datetime(2026, 1, 2), "values": (1, 2)}

    assert jsonable([Result()]) == [{"when": "2026-01-02 00:00:00", "values": [1, 2]}]


def test_every_public_name_resolves_to_the_function_it_names():
    import replay

    assert sorted(replay._PUBLIC) == sorted(replay.__all__)
    for name in replay.__all__:
        assert getattr(replay, name).__name__ == name


def test_values_shown_in_tables_and_long_cells_are_not_cut_when_piped(capsys):
    from replay.cli.output import number, table

    assert [number(None), number(float("nan")), number(0.5), number("deny")] == [
        "null",
        "null",
        "0.5000",
        "deny",
    ]
    long_name = "credit-approval-for-small-businesses"
    table(
        ("seq", "transaction", "deployment", "time", "outcome"),
        [(1, "t" * 30, long_name, "x", "y")],
    )
    assert long_name in capsys.readouterr().out
