"""The console's pure parts, without a server or a container: sessions (sign-in, idle
expiry, altered cookies, removed users, CSRF), roles, the what-if and sweep forms read
back through the schema, and the pool that keeps containers warm."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from replay.errors import BadInput
from replay.execution.warm import Unavailable
from replay.stores.users import UserStore
from replay.web.forms import (
    MAX_POINTS_1D,
    as_text,
    input_fields,
    shown,
    sweep_choices,
    sweep_ranges,
    whatif_changes,
)
from replay.web.sessions import (
    ROLE_RIGHTS,
    SESSION_MAX,
    ConsoleUser,
    Forbidden,
    Sessions,
    SignInNeeded,
    StaleForm,
)
from replay.web.warm_pool import WarmPool
from tests.factories import schema

PASSWORD = "a long enough password"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add("sue", "support", PASSWORD)
    clock = Clock()
    return Sessions(store, idle=60, clock=clock), clock


def test_signing_in_starts_a_new_session_with_a_new_csrf_token(sessions):
    manager, _ = sessions
    session: dict = {"csrf": "from-before", "flash": "old"}
    user = manager.sign_in(session, "sue", PASSWORD)
    assert user == ConsoleUser("sue", "support")
    assert session["csrf"] != "from-before" and "flash" not in session
    assert PASSWORD not in str(session) and "argon2" not in str(session)
    with pytest.raises(BadInput, match="wrong user name or password"):
        manager.sign_in({}, "sue", PASSWORD + "x")
    with pytest.raises(BadInput, match="wrong user name or password"):
        manager.sign_in({}, "nobody", PASSWORD)


def test_a_session_slides_while_used_and_expires_when_idle(sessions):
    manager, clock = sessions
    session: dict = {}
    manager.sign_in(session, "sue", PASSWORD)
    for _ in range(3):  # used every 50 s: each use moves the expiry
        clock.now += 50
        assert manager.current(session, had_cookie=True).name == "sue"
    clock.now += 61
    with pytest.raises(SignInNeeded, match="expired after 60 seconds without use"):
        manager.current(session, had_cookie=True)
    assert session == {}  # nothing of the old session is kept


def test_an_invalid_cookie_and_no_cookie_say_different_things(sessions):
    manager, _ = sessions
    # Starlette gives an empty session for a cookie whose signature does not verify.
    with pytest.raises(SignInNeeded, match="not valid"):
        manager.current({}, had_cookie=True)
    with pytest.raises(SignInNeeded, match=r"^sign in to use the console$"):
        manager.current({}, had_cookie=False)


def test_a_removed_user_is_signed_out_at_their_next_request(sessions):
    manager, _ = sessions
    session: dict = {}
    manager.sign_in(session, "sue", PASSWORD)
    manager.users.remove("sue")
    with pytest.raises(SignInNeeded, match="user sue no longer exists"):
        manager.current(session, had_cookie=True)


def test_a_user_added_again_with_a_new_password_ends_the_old_sessions(sessions):
    manager, _ = sessions
    old: dict = {}
    manager.sign_in(old, "sue", PASSWORD)
    manager.users.remove("sue")
    manager.users.add("sue", "support", PASSWORD + " changed")
    with pytest.raises(SignInNeeded, match="no longer exists, or was changed"):
        manager.current(old, had_cookie=True)


def test_a_session_used_all_day_still_ends(sessions):
    manager, clock = sessions
    session: dict = {}
    manager.sign_in(session, "sue", PASSWORD)
    for _ in range(SESSION_MAX // 50):
        clock.now += 50
        manager.current(session, had_cookie=True)
    clock.now += 50
    with pytest.raises(SignInNeeded, match="end 12 hours after signing in"):
        manager.current(session, had_cookie=True)


def test_a_form_needs_this_sessions_csrf_token(sessions):
    manager, _ = sessions
    session: dict = {}
    token = manager.csrf(session)
    assert manager.csrf(session) == token  # one per session
    manager.check_form(session, token)
    for sent in (None, "", token[:-1] + ("A" if token[-1] != "A" else "B")):
        with pytest.raises(StaleForm):
            manager.check_form(session, sent)
    with pytest.raises(StaleForm):
        manager.check_form({}, token)  # a session that never had one


def test_roles_open_their_pages_only():
    support = ConsoleUser("s", "support")
    compliance = ConsoleUser("c", "compliance")
    admin = ConsoleUser("a", "admin")
    assert ROLE_RIGHTS["support"] < ROLE_RIGHTS["compliance"]
    with pytest.raises(Forbidden, match=r"your role \(support\) does not include report"):
        support.require("report")
    compliance.require("report")
    with pytest.raises(Forbidden, match="ask someone with the admin role"):
        compliance.require("users")
    with pytest.raises(Forbidden):
        admin.require("decision")  # accounts, not people's data
    assert support.by == "s (console)"


CLAIMS = schema(
    {
        "amount": {"type": "number", "min": 0, "max": 200000, "unit": "EUR"},
        "years": {"type": "integer", "min": 0, "max": 60},
        "police_report": {"type": "boolean"},
        "channel": {"type": "string", "values": ["agent", "online", "phone"]},
        "region": {"type": "string", "values": ["north", "south"], "immutable": True},
        "note": {"type": "string"},
    }
)
LOGGED = {
    "amount": 1234.5,
    "years": 4,
    "police_report": False,
    "channel": "agent",
    "region": "north",
    "note": "",
}


def form(**changed: str) -> dict[str, str]:
    """What a browser sends for the what-if page: every unlocked field as text."""
    fields = {f.name: f.value for f in input_fields(CLAIMS, LOGGED) if not f.locked}
    return {"csrf": "t", **fields, **changed}


def test_the_what_if_form_sends_back_the_logged_values_unchanged():
    fields = {f.name: f for f in input_fields(CLAIMS, LOGGED)}
    assert fields["region"].locked and fields["region"].kind == "choice"
    assert fields["police_report"].kind == "boolean" and fields["years"].kind == "integer"
    assert fields["amount"].bounds == "0 to 200,000"
    with pytest.raises(BadInput, match="nothing to change"):
        whatif_changes(CLAIMS, LOGGED, form())
    for value in (0.1, 1e-7, 123456.125, 199999.99999999997, 5.0):  # floats survive
        assert CLAIMS.feature("amount").parse(as_text(value)) == value


def test_the_what_if_form_is_typed_by_the_schema():
    changes = whatif_changes(CLAIMS, LOGGED, form(amount="2000", police_report="true", note="x"))
    assert changes == {"amount": 2000.0, "police_report": True, "note": "x"}
    assert whatif_changes(CLAIMS, LOGGED, form(years="7")) == {"years": 7}
    assert whatif_changes(CLAIMS, {**LOGGED, "note": "y"}, form(note="")) == {"note": ""}


PAYMENTS = schema(
    {
        "descriptor": {"type": "text", "max_length": 40},
        "amount": {"type": "number", "min": 0},
        "merchant": {"type": "string"},
    }
)
PAID = {"descriptor": "SHELL 0423\nHAMBURG", "amount": 12.5, "merchant": "shell"}


def sent(**changed: str) -> dict[str, str]:
    """The what-if form as a browser posts it: a textarea's line breaks as CRLF."""
    fields = {f.name: f.value.replace("\n", "\r\n") for f in input_fields(PAYMENTS, PAID)}
    return {"csrf": "t", **fields, **changed}


def test_free_text_is_a_textarea_holding_the_logged_value_whole():
    fields = {f.name: f for f in input_fields(PAYMENTS, PAID)}
    assert fields["descriptor"].kind == "text" and fields["merchant"].kind == "string"
    assert fields["descriptor"].value == "SHELL 0423\nHAMBURG"
    assert fields["descriptor"].bounds == "free text, at most 40 characters"


def test_a_textarea_sent_back_unedited_is_no_edit():
    with pytest.raises(BadInput, match="nothing to change: no value was edited"):
        whatif_changes(PAYMENTS, PAID, sent())
    # a text logged with CRLF or CR line breaks comes back from the browser as CRLF too
    for logged in ("SHELL 0423\r\nHAMBURG", "SHELL 0423\rHAMBURG"):
        with pytest.raises(BadInput, match="nothing to change"):
            whatif_changes(PAYMENTS, {**PAID, "descriptor": logged}, sent())
    # a one-line input drops a logged line break: sent back without it, it is no edit
    with pytest.raises(BadInput, match="nothing to change"):
        whatif_changes(
            PAYMENTS, {**PAID, "merchant": "shell\nhamburg"}, sent(merchant="shellhamburg")
        )


def test_only_the_fields_a_person_changed_are_edits():
    assert whatif_changes(PAYMENTS, PAID, sent(amount="20")) == {"amount": 20.0}
    with pytest.raises(BadInput, match="nothing to change"):  # the same number, written out
        whatif_changes(PAYMENTS, PAID, sent(amount="12.50"))
    edited = whatif_changes(PAYMENTS, PAID, sent(descriptor="SHELL 0424\r\nHAMBURG\r\n"))
    assert edited == {"descriptor": "SHELL 0424\nHAMBURG\n"}  # line feeds, as logged
    with pytest.raises(BadInput, match="at most 40 allowed"):  # counted in line feeds
        whatif_changes(PAYMENTS, PAID, sent(descriptor="a\r\n" * 21))
    assert whatif_changes(PAYMENTS, PAID, sent(descriptor="a\r\n" * 20)) == {
        "descriptor": "a\n" * 20
    }


def test_pages_show_text_on_one_short_line():
    assert shown("SHELL 0423\nHAMBURG") == "SHELL 0423 HAMBURG"
    long = shown("AMZN MKTP DE*2K4 " * 300)
    assert len(long) == 60 and long.endswith("…") and "\n" not in long


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"amount": "abc"}, "amount='abc' is not a number"),
        ({"amount": "-1"}, "below its minimum"),
        ({"years": "2.5"}, "must be a whole number"),
        ({"channel": "fax"}, "must be one of agent, online, phone"),
        ({"police_report": "maybe"}, "police_report"),
        ({"region": "south"}, "region is locked"),
        ({"salary": "1"}, "unknown input 'salary'"),
    ],
)
def test_the_what_if_form_refuses_bad_values(changed, message):
    with pytest.raises(BadInput, match=message):
        whatif_changes(CLAIMS, LOGGED, form(**changed))


def test_a_sweep_form_takes_blanks_as_the_features_own_range():
    [income] = sweep_ranges(CLAIMS, LOGGED, {"feature": "amount", "feature2": ""})
    assert (income.start, income.stop, income.count) == (0, 200000, 25)
    two = sweep_ranges(
        CLAIMS,
        LOGGED,
        {"feature": "amount", "start": "10", "stop": "20", "points": "3", "feature2": "years"},
    )
    assert [(r.feature, r.count) for r in two] == [("amount", 3), ("years", 11)]
    assert [c.name for c in sweep_choices(CLAIMS, LOGGED)] == ["amount", "years"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "choose a feature"),
        ({"feature": "region"}, "'region' is not a number a question may change"),
        ({"feature": "channel"}, "not a number a question may change"),
        ({"feature": "amount", "points": "many"}, "number of points of amount must be a number"),
        ({"feature": "amount", "points": "1"}, "whole number from 2"),
        ({"feature": "amount", "start": "x"}, "the start of amount must be a number"),
        ({"feature": "amount", "points": str(MAX_POINTS_1D + 1)}, "more than the console draws"),
    ],
)
def test_a_sweep_form_refuses_bad_values(fields, message):
    with pytest.raises(BadInput, match=message):
        sweep_ranges(CLAIMS, LOGGED, fields)


class FakeWarm:
    started = 0

    def __init__(self, manifest_id: str) -> None:
        time.sleep(0.05)  # a start takes a while: concurrent askers must share it
        FakeWarm.started += 1
        self.manifest = SimpleNamespace(manifest_id=manifest_id)
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_numbers_are_shown_with_separators_numpy_scalars_too():
    import numpy as np

    assert [shown(v) for v in (1234567, 2000.0, 0.25, True, None, "a")] == [
        "1,234,567",
        "2,000",
        "0.25",
        "true",
        "null",
        "a",
    ]
    assert [shown(v) for v in (np.int64(1234), np.bool_(False), np.float64(1.5))] == [
        "1,234",
        "false",
        "1.5",
    ]


def test_the_pool_starts_a_deployment_once_and_closes_it_when_idle():
    FakeWarm.started = 0
    clock = Clock()
    pool = WarmPool(FakeWarm, idle=600, clock=clock)  # type: ignore[arg-type]
    got = []

    def ask() -> None:
        with pool.using("m1") as warm:
            got.append(warm)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert FakeWarm.started == 1 and len({id(w) for w in got}) == 1
    clock.now += 599
    assert pool.reap() == [] and pool.running() == ["m1"]
    with pool.using("m1"):
        clock.now += 10_000
        assert pool.reap() == []  # held by a request: never closed under it
    clock.now += 600
    assert pool.reap() == ["m1"] and got[0].closed and pool.running() == []
    with pool.using("m1") as again:  # asked again: started again
        assert again is not got[0]
    pool.close()
    assert again.closed
    with pytest.raises(Unavailable, match="stopping"), pool.using("m1"):
        pass  # a request still running as the console stops starts nothing


def test_a_failing_close_does_not_stop_the_others():
    clock = Clock()
    pool = WarmPool(FakeWarm, idle=60, clock=clock)  # type: ignore[arg-type]
    held = {}
    for name in ("a", "b"):
        with pool.using(name) as warm:
            held[name] = warm
    held["a"].close = lambda: (_ for _ in ()).throw(TimeoutError("wait timed out"))
    clock.now += 61
    assert sorted(pool.reap()) == ["a", "b"] and held["b"].closed
    pool.close()


def test_pool_and_sessions_refuse_times_that_are_not_positive(tmp_path):
    with pytest.raises(BadInput, match="warm time must be positive"):
        WarmPool(FakeWarm, idle=0)  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="idle time must be positive"):
        Sessions(UserStore(tmp_path / "users.json"), idle=-1)


def test_a_failed_start_is_tried_again_by_the_next_request():
    attempts = []

    def start(manifest_id: str) -> FakeWarm:
        attempts.append(manifest_id)
        if len(attempts) == 1:
            raise RuntimeError("engine down")
        return FakeWarm(manifest_id)

    pool = WarmPool(start, idle=600)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError), pool.using("m"):
        pass
    with pool.using("m") as warm:
        assert warm.manifest.manifest_id == "m"
    pool.close()
