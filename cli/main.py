"""The `replay` command: assembled from one module per verb group, each command one
call of the public function with its name (`replay.whatif`, `replay.build`, ...)."""

from __future__ import annotations

import click
from replay.cli import deployments, history, ingest, ledger, questions, reports, subjects, web
from replay.cli.output import ReplayGroup


@click.group(cls=ReplayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replay-engine", prog_name="replay")
def cli() -> None:
    """Freeze ML deployments, log their decisions, and replay them bit for bit."""


COMMANDS = [
    deployments.up,
    deployments.capture,
    deployments.build,
    deployments.publish,
    deployments.deployments,
    deployments.manifest,
    ledger.ledger,
    ledger.review,
    subjects.subject,
    questions.replay_command,
    questions.whatif,
    questions.sweep,
    questions.counterfactual,
    questions.explain,
    reports.report,
    history.backtest,
    history.audit,
    history.fairness,
    history.drift,
    web.serve,
    web.console,
    web.tokens,
    web.users,
    ingest.ingest,
]
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli()
