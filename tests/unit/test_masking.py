"""No password of a store's URL or address reaches a message: the one helper, the
CLI's last line of defence, and the budgets replay hands to the clients it makes."""

import os
import warnings

import click
import pytest
from click.testing import CliRunner
from replay.cli.output import ReplayGroup

from replay.errors import EngineUnavailable, ReplayWarning
from replay.settings import load_settings, without_password

PASSWORD = "s3cretpw"


@pytest.mark.parametrize(
    ("shown", "masked"),
    [
        # bare HOST:PORT addresses (an S3 endpoint's netloc, a registry, a scheduler)
        ("alice:s3cretpw@127.0.0.1:1", "alice@127.0.0.1:1"),
        ("http://alice:s3cretpw@127.0.0.1:1", "http://alice@127.0.0.1:1"),
        ("tcp://alice:s3cretpw@10.0.0.1:8786", "tcp://alice@10.0.0.1:8786"),
        # URLs urlsplit cannot read: a port that is no number, an unclosed bracket
        ("http://alice:s3cretpw@host:abc/x", "http://alice@host:abc/x"),
        ("postgresql://alice:s3cretpw@[::1/db", "postgresql://alice@[::1/db"),
        # a password holding an unquoted @ or /
        ("postgresql://alice:s3cr@tpw@db/replay", "postgresql://alice@db/replay"),
        ("http://alice:s3c/retpw@127.0.0.1:1/x", "http://alice@127.0.0.1:1/x"),
        ("alice:s3c/retpw@127.0.0.1:1", "alice@127.0.0.1:1"),
        # inside a library's message, quoted or in brackets
        (
            "API request to http://alice:s3cretpw@h:1/api/2.0 failed (host='h', port=1)",
            "API request to http://alice@h:1/api/2.0 failed (host='h', port=1)",
        ),
        ("at 'http://alice:s3cretpw@h/' and (tcp://bob:s3cretpw@h:1)", None),
        ("postgresql://alice@db/x?sslmode=require&password=s3cretpw", None),
    ],
)
def test_a_password_is_left_out_wherever_it_is(shown, masked):
    assert PASSWORD not in without_password(shown)
    if masked is not None:
        assert without_password(shown) == masked


@pytest.mark.parametrize(
    "kept",
    [
        "sqlite:////srv/replay/mlflow.db",
        "127.0.0.1:5000/replay/python@sha256:" + "ab" * 32,
        "python:3.11@sha256:" + "cd" * 32,  # a tag and a digest, not a user and password
        "git@github.com:team/credit.git",
        "http://mlflow:5000/path/user@example",
        "postgresql://ledger@DB.example.com:5432/replay?sslmode=require",
        "error: what went wrong? nothing: see /var/log/replay/registry.log",
        "models:/credit-sk@champion",  # a registered model and its alias
        "warning: models:/fraud@challenger: bounds come from the model's input example",
    ],
)
def test_what_holds_no_password_is_kept_as_it_is(kept):
    assert without_password(kept) == kept


def _failing_with(error: Exception) -> click.Group:
    @click.group(cls=ReplayGroup)
    def top() -> None:
        pass

    @top.command()
    def failing() -> None:
        raise error

    return top


@pytest.mark.parametrize(
    "error",
    [
        # replay.images cannot import the helper: the CLI masks what it says
        EngineUnavailable("no Docker engine answers at tcp://alice:s3cretpw@h:2376"),
        KeyError("http://alice:s3cretpw@h/"),  # a bug's message, shown in its one line
    ],
)
def test_the_cli_shows_no_password_whatever_raised(error):
    result = CliRunner().invoke(_failing_with(error), ["failing"])
    assert result.exit_code in {3, 70}
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert PASSWORD not in result.output and "alice@h" in result.output


@pytest.mark.filterwarnings("default::replay.errors.ReplayWarning")  # the suite ignores them
def test_a_warning_shows_no_password():
    @click.group(cls=ReplayGroup)
    def top() -> None:
        pass

    @top.command()
    def warning() -> None:
        message = "subject key store postgresql://a:s3cretpw@db/keys: slow"
        warnings.warn(message, ReplayWarning, stacklevel=2)

    result = CliRunner().invoke(top, ["warning"])
    assert result.exit_code == 0
    assert result.output == "warning: subject key store postgresql://a@db/keys: slow\n"


def test_the_budget_is_read_from_its_variable(tmp_path):
    assert load_settings({}, cwd=tmp_path).connect_timeout == 5.0
    assert load_settings({"REPLAY_CONNECT_TIMEOUT": "2"}, cwd=tmp_path).connect_timeout == 2.0


def test_an_s3_client_gets_one_try_within_the_budget(monkeypatch):
    from replay.stores.blobs import s3_client

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("REPLAY_CONNECT_TIMEOUT", "3")
    config = s3_client().meta.config
    assert (config.connect_timeout, config.read_timeout) == (3.0, 3.0)
    assert config.retries["total_max_attempts"] == 1
    assert s3_client(1.5).meta.config.read_timeout == 1.5


def test_mlflow_gets_the_budget_unless_its_own_variables_say_otherwise(tmp_path, monkeypatch):
    from dataclasses import replace

    from replay.stores.manifests import manifest_store

    settings = replace(load_settings({"REPLAY_HOME": str(tmp_path)}), connect_timeout=2.5)
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.setenv(name, "")  # restored (removed) after the test
        monkeypatch.delenv(name)
    manifest_store(settings)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "2"  # whole seconds
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")  # the user's own choice
    manifest_store(replace(settings, connect_timeout=9))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
