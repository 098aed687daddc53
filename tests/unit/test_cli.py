import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from replay.cli.main import cli, handles_errors

from replay.errors import BadInput, EnvironmentProblem, IntegrityError, VerificationFailed


@pytest.mark.parametrize(
    ("error", "code"),
    [(VerificationFailed, 1), (BadInput, 2), (EnvironmentProblem, 3), (IntegrityError, 4)],
)
def test_errors_become_one_line_and_their_exit_code(error, code):
    @click.command()
    @handles_errors
    def failing():
        raise error("what went wrong and how to fix it")

    result = CliRunner().invoke(failing)
    assert result.exit_code == code
    assert result.output == "error: what went wrong and how to fix it\n"


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("capture", "build", "deployments", "manifest", "up"):
        assert command in result.output


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from replay.cli.main import cli\n"
        "try: cli(['--help'])\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('mlflow', 'dvc', 'docker', 'pandas') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_no_submodule_shadows_a_public_function():
    import pkgutil

    import replay

    modules = {info.name for info in pkgutil.iter_modules(replay.__path__)}
    assert modules.isdisjoint(replay.__all__)
