"""Where replay keeps its state: found, not assumed."""

from pathlib import Path

from click.testing import CliRunner
from replay.cli.main import cli

from replay.settings import load_settings


def test_the_nearest_state_folder_is_found_from_a_subfolder(tmp_path):
    (tmp_path / ".replay").mkdir()
    deep = tmp_path / "team" / "deployment" / "src"
    deep.mkdir(parents=True)
    settings = load_settings({}, cwd=deep)
    assert settings.home == tmp_path / ".replay"
    assert settings.ledger == str(tmp_path / ".replay" / "ledger.db")
    (tmp_path / "team" / ".replay").mkdir()  # a nearer one wins, as with .git
    assert load_settings({}, cwd=deep).home == tmp_path / "team" / ".replay"


def test_replay_home_wins_and_without_any_the_per_user_folder_is_used(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    assert load_settings({"REPLAY_HOME": str(elsewhere)}, cwd=tmp_path).home == elsewhere
    lonely = tmp_path / "no-state-here"
    lonely.mkdir()
    settings = load_settings({"XDG_DATA_HOME": str(tmp_path / "data")}, cwd=lonely)
    assert settings.home == tmp_path / "data" / "replay"
    assert not (lonely / ".replay").exists()  # nothing is created where the user stands


def test_an_empty_listing_says_which_ledger_it_read(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLAY_HOME", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, ["ledger", "list"])
    assert result.exit_code == 0
    assert result.output == f"no entries like these in the ledger {tmp_path / 'state'}/ledger.db\n"


def test_every_variable_read_is_in_the_readme_table():
    import re

    root = Path(__file__).parents[2]
    source = (root / "replay" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.get\(|\[)"([A-Z_]+)"', source))
    table = (root / "README.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert read and read == listed


def test_urls_in_messages_leave_the_password_out():
    from replay.settings import without_password

    assert without_password("postgresql://ledger:s3cret@db:5432/replay") == (
        "postgresql://ledger@db:5432/replay"
    )
    assert without_password("sqlite:////srv/mlflow.db") == "sqlite:////srv/mlflow.db"
    # libpq also takes the password as a query parameter, and other secrets beside it
    assert without_password(
        "postgresql://ledger@db/replay?password=s3cret&sslmode=require&sslkey=/k/x.key"
    ) == ("postgresql://ledger@db/replay?password=***&sslmode=require&sslkey=***")
    assert (
        without_password("http://u:p@mlflow:5000/?token=abc") == "http://u@mlflow:5000/?token=***"
    )
