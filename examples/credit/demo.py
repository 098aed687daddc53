"""`make demo`: the credit-approval deployment frozen, built, verified, served and replayed.

Runs on the embedded defaults: local Docker engine, MLflow on SQLite and DVC with a
local remote, all under .replay/ in the working directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from workspace import make_workspace, read_new_cases

import replay
from replay.errors import BadInput, ReplayError


def main() -> int:
    home = Path(".replay")
    home.mkdir(mode=0o700, exist_ok=True)  # replay finds its state here, as git finds .git
    print("1. the credit-approval deployment: train, track the model with DVC, commit")
    workspace = make_workspace("credit", home / "demo" / "credit-approval", home / "dvc-remote")
    print(f"   {workspace}")
    print("2. capture its manifest (lock, hashes, base digest) into MLflow")
    manifest = replay.capture(workspace)
    print(f"   manifest {manifest.manifest_id}")
    print("3. build its image hermetically (network off) and check its fingerprint")
    built = replay.build(manifest.manifest_id)
    print(f"   image {built.tag} ({built.image_id[:19]}, {'reused' if built.reused else 'built'})")
    print("4. verify every stored hash")
    verification = replay.verify_manifest(manifest.manifest_id)
    verification.raise_for_mismatch()
    print(f"   {len(verification.checks)} hashes match")
    print("5. serve 200 applicants through `replay serve`; each decision goes to the ledger")
    answers = serve_applicants(manifest.name, workspace)
    rejected = [answer for answer in answers if answer["decision"] == "rejected"]
    print(
        f"   {len(answers)} decided: {len(answers) - len(rejected)} approved, "
        f"{len(rejected)} rejected"
    )
    replay.verify_ledger().raise_for_mismatch()
    print("6. months later: replay one rejected applicant in its original container")
    command = [str(Path(sys.executable).parent / "replay"), "replay", rejected[0]["transaction_id"]]
    print(f"   $ replay replay {rejected[0]['transaction_id']}")
    verdict = subprocess.run(command)
    print("7. the report the applicant is sent: reasons, data used, options, rights, evidence")
    reports = home / "demo" / "reports"
    reports.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in reports.glob(f"report-{rejected[0]['transaction_id']}.*"):
        old.unlink()  # made again on every run
    made = replay.report(rejected[0]["transaction_id"], out=reports)
    print(f"   {made.files['pdf']}")
    print("8. the console for support and compliance staff: two demo users")
    passwords = demo_users(home / "demo" / "console-users.txt")
    subject = f"applicant-{answers.index(rejected[0]):04d}"
    print()
    print(f"manifest id: {manifest.manifest_id}")
    print(f"image:       {built.tag}")
    print(f"try:         .venv/bin/replay ledger show {rejected[0]['transaction_id']}")
    print("console:     .venv/bin/replay console, then open http://127.0.0.1:8100 and sign in")
    print(f"             as demo-support or demo-compliance (passwords in {passwords});")
    print(f"             find subject {subject}, the rejected applicant above")
    return verdict.returncode


def demo_users(passwords: Path) -> Path:
    """A support and a compliance user with new random passwords, kept in a private file
    (never printed: a terminal's scrollback is a log)."""
    lines = []
    for role in ("support", "compliance"):
        name = f"demo-{role}"
        with contextlib.suppress(BadInput):
            replay.remove_user(name)
        password = secrets.token_urlsafe(12)
        replay.add_user(name, role, password)
        lines.append(f"{name} {password}\n")
    passwords.unlink(missing_ok=True)
    descriptor = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.writelines(lines)
    return passwords


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_applicants(deployment: str, workspace: Path) -> list[dict]:
    import httpx

    # the API needs a token: one for this run, revoked when it ends
    with contextlib.suppress(BadInput):
        replay.revoke_token("demo")
    token = replay.add_token("demo", "decide").token
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "replay"), "serve", deployment, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit("replay serve exited; see its error above")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("replay serve did not start within 120 s") from None
                time.sleep(0.3)
        answers = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
            for number, inputs in enumerate(read_new_cases(workspace, "credit")):
                response = client.post(
                    "/decisions", json={"inputs": inputs, "subject": f"applicant-{number:04d}"}
                )
                response.raise_for_status()
                answers.append(response.json())
        return answers
    finally:
        server.terminate()
        server.wait(30)
        replay.revoke_token("demo")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
