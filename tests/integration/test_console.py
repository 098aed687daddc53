"""The console in a real browser: Debian's Chromium driven by Selenium through Debian's
chromedriver, against `replay console` started as a user starts it.

Support finds a person, sees the reasons, re-executes, asks a what-if that flips the
decision, sweeps and opens the options, and is refused the report; compliance records a
review and downloads the PDF. Wrong passwords, expired or forged sessions and bad form
values get a message and write nothing. Free text (the fraud example's descriptor) is
edited whole in a textarea, a what-if with nothing edited changes nothing, and a long
text is shown on one short line. Each page's screenshot is kept in build/artifacts for a
person to look at.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ROOT, free_port, run_cli, unavailable

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "build" / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORDS = {"tess": "support-password-1", "cora": "compliance-pass-1", "ada": "admin-password-1"}
WAIT = 120  # seconds: the first question of a page starts the decision's container


def start_console(tmp_path_factory, **env: str) -> tuple[subprocess.Popen, str]:
    import os

    port = free_port()
    log = tmp_path_factory.mktemp("console") / "console.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "replay"), "console", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"replay console exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    pytest.fail(f"replay console did not answer within 60 s: {log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def users(replay_env):
    import replay

    roles = {"tess": "support", "cora": "compliance", "ada": "admin"}
    for name, role in roles.items():
        replay.add_user(name, role, PASSWORDS[name])
    yield roles
    for name in roles:
        replay.remove_user(name)


@pytest.fixture(scope="module")
def console(served, users, tmp_path_factory):
    process, url = start_console(tmp_path_factory)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture
def browser(downloads):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable("Debian's chromium and chromium-driver are not installed (make system)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        # this machine's network is closed: no calls home
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    yield driver
    driver.quit()


def wait_for(browser, css: str, text: str = "", timeout: float = WAIT):
    """The element matching `css` once visible (and holding `text`)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(driver):
        for element in driver.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and text in element.text:
                return element
        return False

    from selenium.common.exceptions import StaleElementReferenceException

    # An element htmx replaces while it is read is looked for again.
    waiting = WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(found, f"no {css} holding {text!r}")


def fill(browser, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def click(browser, css: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, css).click()


def shot(browser, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))


def sign_in(browser, url: str, name: str, password: str | None = None) -> None:
    browser.get(f"{url}/login")
    fill(browser, "name", name)
    fill(browser, "password", password or PASSWORDS[name])
    click(browser, "button[type=submit]")
    if password is None:
        wait_for(browser, "#signed-in-as", name)


def ledger_size() -> int:
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    return len(open_ledger(load_settings()).list(kind=None))


def console_access(txn: str, by: str) -> list[str]:
    """The pages `by` was recorded opening for decision `txn`."""
    from replay.ledger import open_ledger
    from replay.settings import load_settings

    entries = open_ledger(load_settings()).list(kind="access", refers_to=txn)
    return [
        e.outputs["page"]
        for e in (entry.readable() for entry in entries)
        if e.outputs.get("action") == "console" and e.outputs["by"] == by
    ]


def a_rejected(served, n: int) -> tuple[str, str]:
    """The n-th rejected applicant: (their subject identifier, their transaction)."""
    rejected = [(i, a) for i, a in enumerate(served) if a["decision"] == "rejected"]
    index, answer = rejected[n]
    return f"applicant-{index}", answer["transaction_id"]


def test_support_finds_asks_and_sees_the_decision_flip(console, served, browser):
    from selenium.webdriver.support.ui import Select

    import replay

    subject, txn = a_rejected(served, 0)
    sign_in(browser, console, "tess")
    shot(browser, "find")
    fill(browser, "subject", subject)
    click(browser, ".find button")
    wait_for(browser, "#decisions", txn).find_element("link text", txn).click()

    wait_for(browser, "#decision-value", "rejected")
    assert "locked" in wait_for(browser, "#inputs").text  # age is immutable
    reasons = wait_for(browser, "#reason-list")
    assert 1 <= len(reasons.find_elements("tag name", "li")) <= 4
    assert browser.find_element("css selector", "#reasons svg")  # the chart
    click(browser, "#replay")
    wait_for(browser, "#verdict-text", "Reproduced bit for bit")
    shot(browser, "decision")

    browser.find_element("link text", "What if").click()
    age = wait_for(browser, "input[name=age]")
    assert not age.is_enabled()  # shown, locked
    fill(browser, "income", "250000")
    fill(browser, "debt", "0")
    click(browser, "#ask")
    flip = wait_for(browser, "#flip.flipped", "approved")
    assert "instead of rejected" in flip.text
    assert "250,000" in browser.find_element("id", "side-by-side").text
    shot(browser, "what-if")

    browser.find_element("link text", "Sweep").click()
    wait_for(browser, "#sweep-form")
    Select(browser.find_element("name", "feature")).select_by_value("income")
    fill(browser, "start", "10000")
    fill(browser, "stop", "300000")
    fill(browser, "points", "30")
    click(browser, "#run-sweep")
    wait_for(browser, "#sweep-plot svg")
    summary = wait_for(browser, "#sweep-summary").text
    asked = replay.sweep(txn, [replay.Range("income", 10000, 300000, 30)])
    changes = len(asked.changes)  # the page says what the library answers
    assert (f"changes {changes} time(s) along income" if changes else "whole range") in summary
    browser.execute_script(
        "arguments[0].scrollIntoView()", browser.find_element("id", "sweep-form")
    )
    shot(browser, "sweep")
    Select(browser.find_element("name", "feature2")).select_by_value("debt")
    click(browser, "#run-sweep")  # two features: a map with the decision's border on it
    wait_for(browser, "#sweep-summary", "combinations of income and debt")
    assert browser.find_element("css selector", "#sweep-plot svg")

    browser.find_element("link text", "Options").click()
    options = wait_for(browser, "#option-list", "verified")
    assert "approved if" in options.text
    shot(browser, "options")

    assert not browser.find_elements("id", "report-link")  # not offered to support...
    browser.execute_script(  # ...nor made when the form is posted all the same
        "const form = document.createElement('form');"
        "form.method = 'post'; form.action = arguments[0];"
        "form.appendChild(document.querySelector('input[name=csrf]').cloneNode());"
        "document.body.appendChild(form); form.submit();",
        f"/decisions/{txn}/report",
    )
    refused = wait_for(browser, ".error", "your role (support) does not include report")
    assert refused.get_attribute("data-status") == "403"

    pages = console_access(txn, "tess (console)")
    for page in ("decision", "what-if", "sweep", "options"):
        assert page in pages, pages  # who looked, at which decision, on which page


def test_compliance_reviews_and_downloads_the_report(console, served, browser, downloads):
    from pypdf import PdfReader

    from replay.ledger import open_ledger
    from replay.settings import load_settings

    _, txn = a_rejected(served, 1)
    sign_in(browser, console, "cora")
    browser.get(f"{console}/decisions/{txn}")
    wait_for(browser, "#reviews")
    click(browser, "input[value=overturned]")
    fill(browser, "decision", "approved")
    fill(browser, "note", "income proof received after the decision")
    click(browser, ".review-form button")
    wait_for(browser, ".flash", "overturned to approved")
    assert "income proof received" in wait_for(browser, "#reviews").text
    shown = run_cli("ledger", "show", txn)
    assert "overturned to approved" in shown.stdout, shown.stdout

    # A review recorded at the terminal shows on the page too.
    _, other = a_rejected(served, 2)
    made = run_cli("review", other, "--outcome", "upheld", "--note", "rechecked by phone")
    assert made.returncode == 0, made.stderr
    browser.get(f"{console}/decisions/{other}")
    assert "rechecked by phone" in wait_for(browser, "#reviews", "upheld").text

    browser.get(f"{console}/decisions/{txn}")
    wait_for(browser, "#report-link").click()
    pdf = downloads / f"report-{txn}.pdf"
    deadline = time.monotonic() + WAIT
    while not pdf.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pdf.exists(), list(downloads.iterdir())
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages).replace("\n", " ")
    assert txn in text and "overturned to approved" in text
    [report] = open_ledger(load_settings()).list(kind="report", refers_to=txn)
    report = report.readable()
    assert report.outputs["by"] == "cora (console)"
    assert report.outputs["sha256"]["pdf"] == hashlib.sha256(pdf.read_bytes()).hexdigest()

    browser.get(f"{console}/verify")
    assert "Intact" in wait_for(browser, "#chain").text
    shot(browser, "ledger")


def test_refusals_say_why_and_write_nothing(console, served, browser):
    _, txn = a_rejected(served, 0)
    before = ledger_size()
    sign_in(browser, console, "tess", "not-the-password")
    assert "wrong user name or password" in wait_for(browser, "#error").text
    shot(browser, "wrong-password")

    sign_in(browser, console, "tess")
    browser.get(f"{console}/decisions/{txn}/what-if")
    wait_for(browser, "#whatif-form")
    after_page = ledger_size()  # the page itself is an access entry
    assert after_page == before + 1
    for value, says in (
        ("abc", "income='abc' is not a number"),
        ("-5", "below its minimum"),
    ):
        fill(browser, "income", value)
        click(browser, "#ask")
        assert wait_for(browser, "#whatif-result .error", says)
    browser.find_element("link text", "Sweep").click()
    wait_for(browser, "#sweep-form")
    fill(browser, "points", "many")
    click(browser, "#run-sweep")
    wait_for(browser, "#sweep-result .error", "must be a number")
    assert ledger_size() == after_page + 1  # the sweep page; no answer, no entry

    # A forged session: the cookie's payload altered, its signature kept.
    cookie = browser.get_cookie("replay_console")
    payload, _, signature = cookie["value"].partition(".")
    forged = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    browser.delete_cookie("replay_console")
    browser.add_cookie({"name": "replay_console", "value": f"{forged}.{signature}", "path": "/"})
    browser.get(f"{console}/decisions/{txn}")
    assert "not valid" in wait_for(browser, ".flash").text
    assert "/login" in browser.current_url
    assert ledger_size() == after_page + 1


def test_a_session_expires_after_its_idle_time(served, users, browser, tmp_path_factory):
    _, txn = a_rejected(served, 0)
    process, url = start_console(tmp_path_factory, REPLAY_CONSOLE_IDLE="2")
    try:
        sign_in(browser, url, "tess")
        before = ledger_size()
        time.sleep(3)
        browser.get(f"{url}/decisions/{txn}")
        assert "expired after 2 seconds without use" in wait_for(browser, ".flash").text
        assert ledger_size() == before
        shot(browser, "expired")
    finally:
        stop(process)


def test_an_admin_manages_users_and_sees_no_decisions(console, served, browser):
    _, txn = a_rejected(served, 0)
    sign_in(browser, console, "ada")
    assert "/users" in browser.current_url
    fill(browser, "name", "temp-support")
    fill(browser, "password", "a-long-password-2")
    click(browser, "form.card button")
    wait_for(browser, ".flash", "temp-support (support) added")
    assert "temp-support" in wait_for(browser, "#users").text
    shot(browser, "users")
    browser.get(f"{console}/decisions/{txn}")
    assert wait_for(browser, ".error", "your role (admin) does not include decision")
    import replay

    replay.remove_user("temp-support")


def test_a_categorical_deployment_with_null_scores(
    claims_decided, users, browser, tmp_path_factory
):
    """The claims example: categories and a boolean as choices, a locked category, and a
    referral whose score is null."""
    from selenium.webdriver.support.ui import Select

    import replay
    from replay.ledger.decisions import record_decision

    referred = claims_decided["refer"][0]
    entry = record_decision(
        referred.manifest_id,
        referred.inputs,
        referred.outputs,
        seed=referred.seed,
        subject="claimant-7",
    )
    process, url = start_console(tmp_path_factory)
    try:
        sign_in(browser, url, "tess")
        browser.get(f"{url}/decisions/{entry.txn_id}")
        assert "null" in wait_for(browser, "#outputs").text
        wait_for(browser, "#summary")
        browser.find_element("link text", "What if").click()
        assert not wait_for(browser, "select[name=region]").is_enabled()  # locked category
        assert browser.find_elements("css selector", "select[name=channel] option")
        Select(browser.find_element("name", "channel")).select_by_value("online")
        Select(browser.find_element("name", "police_report")).select_by_value("true")
        fill(browser, "claim_amount", "1000")
        click(browser, "#ask")
        answer = wait_for(browser, "#side-by-side", "claim_amount")
        assert "1,000" in answer.text
        changes = {"claim_amount": 1000.0, "channel": "online", "police_report": True}
        edited = {k: v for k, v in changes.items() if entry.inputs[k] != v}
        assert set(edited) <= {line.split(" ")[0] for line in answer.text.splitlines()}
        changed = replay.whatif(entry.txn_id, edited)
        decision = changed.modified_outputs["decision"]
        assert decision in wait_for(browser, "#flip").text  # the page says what the CLI says
    finally:
        stop(process)


@pytest.fixture(scope="module")
def fraud_console(fraud_decided, users, tmp_path_factory):
    """A console over the fraud example's logged payments (free-text descriptors)."""
    process, url = start_console(tmp_path_factory)
    yield url
    stop(process)


def payment(fraud_decided, seed: int):
    """The logged decision of the example's payment `seed` (cardholder-`seed`)."""
    return next(e for group in fraud_decided.values() for e in group if e.seed == seed)


def verdict_line(browser) -> str:
    return wait_for(browser, ".verdict-line").text


def test_free_text_is_edited_whole_and_an_unedited_what_if_changes_nothing(
    fraud_console, fraud_decided, browser
):
    import replay
    from replay.web.forms import as_text, shown

    entry = payment(fraud_decided, 0)  # the example's first payment
    assert entry.inputs["descriptor"] == "SHELL 0423\nHAMBURG"
    sign_in(browser, fraud_console, "tess")
    browser.get(f"{fraud_console}/decisions/{entry.txn_id}/what-if")
    descriptor = wait_for(browser, "[name=descriptor]")
    assert descriptor.tag_name == "textarea"  # a one-line input would drop the newline
    assert descriptor.get_property("value") == "SHELL 0423\nHAMBURG"
    logged = verdict_line(browser)
    assert shown(entry.outputs["score"]) in logged

    click(browser, "#ask")  # nothing edited
    wait_for(browser, "#whatif-result .error", "nothing to change: no value was edited")
    assert not browser.find_elements("id", "side-by-side")  # no text changed, no score moved
    assert verdict_line(browser) == logged

    # One number edited: the text, sent back as CRLF, is no edit.
    fill(browser, "amount", "5")
    click(browser, "#ask")
    answer = wait_for(browser, "#side-by-side", "amount")
    changed = [row.text for row in answer.find_elements("css selector", "tr.changed")]
    assert len(changed) == 1 and changed[0].startswith("amount"), changed
    library = replay.whatif(entry.txn_id, {"amount": 5.0})
    assert shown(library.modified_outputs["score"]) in answer.text  # as the library answers
    shot(browser, "what-if-text")

    # The text edited across lines: asked as the library would be, with line feeds.
    fill(browser, "amount", as_text(entry.inputs["amount"]))
    fill(browser, "descriptor", "SHELL 0424\nHAMBURG")
    click(browser, "#ask")
    answer = wait_for(browser, "#side-by-side", "descriptor")
    assert "SHELL 0423 HAMBURG SHELL 0424 HAMBURG" in answer.text  # each on one line
    library = replay.whatif(entry.txn_id, {"descriptor": "SHELL 0424\nHAMBURG"})
    assert shown(library.modified_outputs["score"]) in answer.text


def test_long_text_is_shown_on_one_short_line(fraud_console, fraud_decided, browser):
    from replay.display import shorten

    entry = payment(fraud_decided, 3)  # its descriptor: 5,000 characters
    text = entry.inputs["descriptor"]
    assert len(text) == 5_000
    sign_in(browser, fraud_console, "tess")
    browser.get(f"{fraud_console}/decisions/{entry.txn_id}")
    inputs = wait_for(browser, "#inputs", "descriptor")
    [row] = [r for r in inputs.find_elements("tag name", "tr") if r.text.startswith("descriptor")]
    cell = row.find_element("tag name", "td").text
    assert cell == shorten(text) and len(cell) <= 60
    # the reasons, or why there are none, are on the page too
    wait_for(browser, "#reasons #summary, #reasons .error")
    page = browser.find_element("tag name", "main").text
    assert "AMZN MKTP DE*2K4 " * 4 not in page  # nowhere in full: inputs, reasons, chart
    shot(browser, "decision-long-text")

    browser.find_element("link text", "What if").click()  # the textarea holds it whole
    assert wait_for(browser, "textarea[name=descriptor]").get_property("value") == text
    browser.find_element("link text", "Options").click()  # kept as written, shortened
    assert f"descriptor “{shorten(text)}”" in wait_for(browser, "#kept", "descriptor").text


def test_the_console_refuses_other_addresses_without_users(tmp_path):
    import os

    empty = {**os.environ, "REPLAY_HOME": str(tmp_path)}
    refused = subprocess.run(
        [str(Path(sys.executable).parent / "replay"), "console", "--host", "0.0.0.0"],
        env=empty,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert (
        "add a console user before listening on 0.0.0.0 (replay users add NAME --role ROLE)"
        in refused.stderr
    )
    assert len(refused.stderr.strip().splitlines()) == 1


def test_pages_are_private_and_forms_need_the_sessions_token(console, served):
    import re

    _, txn = a_rejected(served, 0)
    with httpx.Client(base_url=console, timeout=60) as client:
        page = client.get("/login")
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # on loopback; beyond it, HTTPS only
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        refused = client.post("/login", data={"name": "tess", "password": PASSWORDS["tess"]})
        assert refused.status_code == 403  # no token: not even a sign-in is taken
        signed = client.post(
            "/login", data={"csrf": token, "name": "tess", "password": PASSWORDS["tess"]}
        )
        assert signed.status_code == 303
        before = ledger_size()
        stale = client.post(
            f"/decisions/{txn}/what-if", data={"csrf": token, "income": "99999"}
        )  # the token from before signing in: a new session has a new one
        assert stale.status_code == 403 and "reload the page" in stale.text
        assert ledger_size() == before
        assert client.get("/decisions/txn_unknown").status_code == 404
        assert client.get("/no-such-page").status_code == 404
        assert ledger_size() == before

        # Each role is refused what it does not hold, before anything is read or written.
        page = client.get(f"/decisions/{txn}/what-if")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        before = ledger_size()
        for method, path in (
            ("post", f"/decisions/{txn}/report"),
            ("post", f"/decisions/{txn}/review"),
            ("get", "/verify"),
            ("get", "/users"),
            ("post", "/users"),
        ):
            data = {"csrf": token} if method == "post" else None
            refused = client.request(method, path, data=data)
            assert refused.status_code == 403 and "your role (support)" in refused.text, path
        assert ledger_size() == before

        # A fragment asked for after the session ended sends the whole page to sign in.
        client.cookies.clear()
        fragment = client.get(f"/decisions/{txn}/reasons", headers={"HX-Request": "true"})
        assert fragment.headers.get("HX-Redirect") == "/login"
        assert ledger_size() == before


def test_no_form_is_read_before_the_session_and_the_role_are_checked(console, served):
    """Every form the console takes, posted with a body it cannot parse (a multipart
    body without its boundary, 400 once read): without a session it is sent to sign in,
    and a support user posting a form of another role is refused for the role, the body
    never read either way."""
    import re

    from replay.web.console import PAGES

    _, txn = a_rejected(served, 0)
    posted = {
        route.path.replace("{txn_id}", txn).replace("{name}", "ada")
        for page in PAGES
        for route in page.router.routes
        if "POST" in route.methods
    }
    support_may = {"/find", f"/decisions/{txn}/replay", f"/decisions/{txn}/what-if"}
    support_may |= {f"/decisions/{txn}/sweep", "/logout"}
    not_support = {f"/decisions/{txn}/review", f"/decisions/{txn}/report", "/users"}
    not_support |= {"/users/ada/remove"}
    assert posted == support_may | not_support | {"/login"}  # a new form: say who may post it
    unparsable = {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}}
    before = ledger_size()
    with httpx.Client(base_url=console, timeout=60) as client:
        for path in posted - {"/login"}:
            refused = client.post(path, **unparsable)
            assert refused.status_code == 303, (path, refused.status_code, refused.text[:200])
            assert refused.headers["location"] == "/login"
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)[1]
        signed = client.post(
            "/login", data={"csrf": token, "name": "tess", "password": PASSWORDS["tess"]}
        )
        assert signed.status_code == 303
        for path in not_support:
            refused = client.post(path, **unparsable)
            assert refused.status_code == 403, (path, refused.status_code, refused.text[:200])
            assert "your role (support)" in refused.text
        read = client.post("/find", **unparsable)  # a form support may post: read, and refused
        assert read.status_code == 400, read.text[:200]
    assert ledger_size() == before
