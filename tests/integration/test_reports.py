"""The decision report of a served credit decision: every section in the PDF's text, a
letter to the person (inputs by their titles, the score to two decimals, the
deployment's reason quoted, the protected age kept out of the reasons and the chart and
flagged for the compliance reviewer, the model named from the container), a verified
counterfactual, the evidence, the organisation's settings and rights wording, a review
beside it, a report entry holding the PDF's sha256, and a decision that no longer
reproduces said so at the top. The first page is kept as a PNG (build/artifacts) for a
person to look at."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration

SECTIONS = (
    "1. The decision",
    "2. Who decided and whom to contact",
    "3. The principal reasons",
    "4. The personal data used",
    "5. How the decision was made",
    "6. What would have changed it",
    "7. Your rights",
    "8. For the compliance reviewer",
    "9. Evidence (for an auditor)",
)


def pdf_text(path: str) -> str:
    return " ".join(page.extract_text() for page in PdfReader(path).pages).replace("\n", " ")


def pdf_sections(path: str) -> dict[int, str]:
    """The PDF's text by section number, without the pages' footers, its whitespace made
    single spaces (a word broken at its hyphen, scikit-learn, whole again)."""
    pages = [re.sub(r"page \d+ of \d+", "", page.extract_text()) for page in PdfReader(path).pages]
    text = re.sub(r"\s+", " ", re.sub(r"(?<=\w-)\n", "", "\n".join(pages)))
    starts = [text.index(title) for title in SECTIONS]
    ends = [*starts[1:], len(text)]
    return {
        number: text[start:end]
        for number, (start, end) in enumerate(zip(starts, ends, strict=True), 1)
    }


def letter(sections: dict[int, str]) -> str:
    """What the person reads: sections 1 to 7."""
    return " ".join(sections[number] for number in range(1, 8))


def rejected(served, n):
    return [a["transaction_id"] for a in served if a["decision"] == "rejected"][n]


@pytest.fixture(scope="module")
def organisation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("organisation")
    (folder / "report.yaml").write_text(
        "name: Example Lending Ltd\naddress: 1 High Street, Exampleton\n"
        "contact: decisions@example.org\nsupervisory_authority: Example Financial Authority\n"
    )
    (folder / "templates").mkdir()
    (folder / "templates" / "rights.html").write_text("<p>Our own wording of your rights.</p>")
    return {
        "REPLAY_REPORT_ORGANISATION": str(folder / "report.yaml"),
        "REPLAY_REPORT_TEMPLATES": str(folder / "templates"),
    }


def test_a_report_holds_every_section_and_its_evidence(served, captured, organisation, tmp_path):
    import replay
    from replay.ledger import open_ledger

    txn = rejected(served, 2)
    reviewed = run_cli(
        "review", txn, "--outcome", "upheld", "--note", "checked with the applicant"
    )  # fmt: skip
    assert reviewed.returncode == 0, reviewed.stderr
    made = run_cli("report", txn, "--out", str(tmp_path), "--json", env=organisation)
    assert made.returncode == 0, made.stderr
    [report] = json.loads(made.stdout)
    pdf, html = report["files"]["pdf"], report["files"]["html"]
    text = pdf_text(pdf)
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)  # every section, in order
    sections = pdf_sections(pdf)
    answer = next(a for a in served if a["transaction_id"] == txn)

    # a letter: inputs by their titles, rounded, no Shapley numbers, the score to two
    # decimals (every digit only in the evidence), the deployment's own reason quoted
    assert "Yearly income" in sections[4] and "Outstanding debt" in sections[4]
    assert 1 <= len(report["reasons"]) <= 4
    for reason in report["reasons"]:
        assert reason in sections[3] and "weighed" in reason
    assert "income of" not in letter(sections)
    assert not re.search(r"[+-]0\.\d+;", letter(sections))  # no Shapley numbers
    assert f"Score {answer['score']:.2f}" in sections[1]
    assert repr(answer["score"]) not in letter(sections) and repr(answer["score"]) in sections[9]
    assert f"Reason given with the decision: “{answer['outputs']['reason']}”" in sections[3]
    # the protected age: never among the person's reasons or in their chart; flagged
    # for the compliance reviewer
    age = captured.schema.inputs["age"].title
    assert not re.search(rf"\b{age}\b", sections[3], re.IGNORECASE)
    assert report["chart"] and age not in {item["feature"] for item in report["chart"]}
    assert "age" in sections[8].split() and "immutable" in sections[8]
    model = "gradient-boosted trees (HistGradientBoostingClassifier, scikit-learn 1.5.2)"
    assert model in sections[5]
    assert report["options"] and report["options"][0] in sections[6]
    assert "Example Lending Ltd" in text and "Example Financial Authority" in text
    assert "Our own wording of your rights." in text and "default wording" not in text
    assert "reviewed by a person on" in text and ": upheld" in text
    assert captured.manifest_id in text.replace(" ", "")
    assert "verified:" in text and "reproduced" in text

    digest = hashlib.sha256(Path(pdf).read_bytes()).hexdigest()
    entry = open_ledger().get(report["record_txn"])
    assert (entry.kind, entry.refers_to) == ("report", txn)
    assert entry.outputs["sha256"]["pdf"] == digest
    assert entry.outputs["sha256"]["html"] == hashlib.sha256(Path(html).read_bytes()).hexdigest()
    assert stat.S_IMODE(Path(pdf).stat().st_mode) == 0o600
    assert replay.verify_ledger().ok

    # the person's export holds the report as sent (kept sealed under their key)
    person = f"applicant-{next(i for i, a in enumerate(served) if a['transaction_id'] == txn)}"
    out = tmp_path / "export" / "person.json"
    out.parent.mkdir()
    assert run_cli("subject", "export", person, "--out", str(out)).returncode == 0
    [kept] = [r for r in json.loads(out.read_text())["reports"] if r["decision"] == txn]
    assert hashlib.sha256(Path(kept["file"]).read_bytes()).hexdigest() == digest
    assert stat.S_IMODE(Path(kept["file"]).stat().st_mode) == 0o600

    artifacts = ROOT / "build" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(pdf, artifacts / "report.pdf")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", pdf, str(artifacts / "report")],
        check=True,
    )
    assert (artifacts / "report-1.png").stat().st_size > 10_000


def test_a_report_without_settings_says_they_are_unset(served, tmp_path):
    made = run_cli("report", rejected(served, 3), "--out", str(tmp_path), "--format", "pdf")
    assert made.returncode == 0, made.stderr
    text = pdf_text(made.stdout.strip())
    assert "made without the organisation's settings" in text
    assert "This is replay's default wording" in text
    assert not list(tmp_path.glob("*.html"))


def test_a_decision_that_no_longer_reproduces_gets_a_report_that_says_so(served, tmp_path):
    from replay.ledger import open_ledger
    from replay.ledger.chain import NewEntry

    entry = open_ledger().get(rejected(served, 4))
    forged = open_ledger().record(
        NewEntry(
            manifest_id=entry.manifest_id,
            deployment=entry.deployment,
            inputs=entry.inputs,
            outputs={**entry.outputs, "score": entry.outputs["score"] + 1e-9},
            seed=entry.seed,
            fingerprint=entry.fingerprint,
        )
    )
    made = run_cli("report", forged.txn_id, "--out", str(tmp_path), "--json")
    assert made.returncode == 0, made.stderr
    [report] = json.loads(made.stdout)
    assert report["replay"]["verdict"] == "diverged" and not report["reproduced"]
    text = pdf_text(report["files"]["pdf"])
    assert text.index("did not reproduce it (diverged)") < text.index("1. The decision")
    assert "score: logged" in text
    html = Path(report["files"]["html"]).read_text()
    assert 'id="replay-warning"' in html and "#b00020" in html  # red, at the top


def test_report_refusals_are_one_line(served, tmp_path):
    existing = tmp_path / f"report-{rejected(served, 5)}.pdf"
    existing.write_text("already here")
    cases = [
        (["report"], 2, "name a transaction, or a person with --subject"),
        (["report", "txn_nope", "--out", str(tmp_path)], 2, "no transaction txn_nope"),
        (["report", rejected(served, 5), "--out", str(tmp_path)], 2, "exists"),
        (["report", "--subject", "nobody-at-all", "--out", str(tmp_path)], 2, "no decisions"),
    ]
    for arguments, code, message in cases:
        result = run_cli(*arguments)
        assert result.returncode == code and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert existing.read_text() == "already here"


@pytest.mark.parametrize("decided", ["refer", "review"])
def test_a_claims_report_for_a_rule_or_a_draw(claims_decided, claims_warm, decided, tmp_path):
    """A deployment unlike credit: categories, a rule that refers with no score, and a
    seeded draw that sends claims to review. Reports made with the running container."""
    import replay

    entry = claims_decided[decided][0]
    [made] = [replay.report(entry.txn_id, out=tmp_path, warm=claims_warm)]
    content = made.content
    sections = pdf_sections(made.files["pdf"])
    assert content.decision == decided and content.reproduced
    if decided == "refer":
        assert content.score is None and "none (no score was given)" in sections[1]
        # the rule refers every large claim: each option brings the amount under its line
        assert content.options
        for option in content.options:
            amount = re.search(r"amount claimed had been at most ([\d,]+) EUR", option)
            assert amount and int(amount[1].replace(",", "")) <= 50_000, option
            assert option in sections[6]
    else:  # the draw sent it to review: no change reaches approve under it, and it says so
        assert content.options == [] and content.decided_by is not None
        assert "a random draw" in content.decided_by and content.decided_by in sections[3]
        assert "Under this decision's random draw" in (content.no_options or "")
        assert "amount claimed" in sections[6] and "claim_amount" not in sections[6]
    schema = claims_warm.manifest.schema
    immutable = [feature.title for feature in schema.inputs.values() if feature.immutable]
    assert len(immutable) == 2  # region and age: never a reason, nor in the chart
    assert not any(re.search(rf"\b{title}\b", sections[3], re.IGNORECASE) for title in immutable)
    assert not any(item["feature"] in immutable for item in content.chart)
    for row in content.inputs:
        assert f"{row.title[0].upper()}{row.title[1:]} {row.value}" in sections[4]
    assert (
        "a logistic regression (LogisticRegression, scikit-learn 1.5.2) after a "
        "ColumnTransformer (" in sections[5]
    )
    assert "in a scikit-learn Pipeline" in sections[5]


def test_an_erased_persons_kept_report_is_erased_too(server, tokens, workspace, tmp_path):
    import httpx

    from tests.integration.conftest import read_new_cases

    answer = httpx.post(
        f"{server}/decisions",
        headers=tokens["decide"],
        timeout=60,
        json={"inputs": read_new_cases(workspace, "credit")[72], "subject": "report-erased-3"},
    ).json()
    made = run_cli("report", answer["transaction_id"], "--out", str(tmp_path), "--format", "pdf")
    assert made.returncode == 0, made.stderr
    assert run_cli("subject", "erase", "report-erased-3", "--yes").returncode == 0
    out = tmp_path / "person.json"
    assert run_cli("subject", "export", "report-erased-3", "--out", str(out)).returncode == 0
    [kept] = json.loads(out.read_text())["reports"]
    assert kept["erased"] is True and kept["file"] is None
    assert not list(tmp_path.glob("person-report-*.pdf"))
