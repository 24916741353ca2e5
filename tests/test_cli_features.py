"""The feature commands of ``softswitch`` (cli/features.py and the login policy of ``login``),
driven with click's CliRunner on a temporary database."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from config.features import ParkedCall
from config.store import Store
from tests.cli_support import fails, invoker, ok


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


@pytest.fixture
def run(db: str, monkeypatch: pytest.MonkeyPatch):
    return invoker(db, monkeypatch)




@pytest.fixture
def acme(run) -> None:
    """Account acme, channels acme-a..acme-c, Alice (201) on acme-a, Bob (202) nowhere."""
    ok(run("account", "add", "acme", "--domain", "acme.example.com", "--digits", "3"))
    for name in "abc":
        ok(run("channel", "add", "acme", f"acme-{name}"))
    ok(run("user", "add", "acme", "201", "--name", "Alice", "--pin", "4821", "--channel", "acme-a"))
    ok(run("user", "add", "acme", "202", "--name", "Bob", "--pin", "5832"))


def devices(run, extension: str) -> list[dict]:
    return json.loads(ok(run("user", "show", "acme", extension, "--json")))["devices"]


@pytest.mark.parametrize(
    "args",
    [["account", "set"], ["account", "show"], ["user", "set"], ["user", "show"], ["user", "link"],
     ["user", "unlink"], ["privacy-group"], ["privacy-group", "add"], ["privacy-group", "list"],
     ["privacy-group", "show"], ["privacy-group", "delete"], ["privacy-group", "member"],
     ["privacy-group", "member", "add"], ["privacy-group", "member", "remove"], ["parked"]],
)
def test_every_feature_command_has_help(run, args: list[str]) -> None:
    assert ok(run(*args, "--help")).startswith("Usage: ")


# -- account set / show -----------------------------------------------------------------------


def test_account_set_and_show(run, acme) -> None:
    out = ok(run("account", "set", "acme", "--twinning", "--park-timeout", "60", "--park-recall-limit", "2",
                 "--park-first-slot", "801", "--park-slots", "10", "--dtmf-prefix", "**", "--dtmf-timeout", "2.5",
                 "--max-fixed-devices", "3", "--language", "en", "--timezone", "Europe/London"))
    assert out == ("account 'acme' updated: twinning on, park timeout 60, park recall limit 2, "
                   "park first slot 801, park slots 10, dtmf prefix **, dtmf timeout 2.5, max fixed devices 3, "
                   "language en, timezone Europe/London\n")
    shown = ok(run("account", "show", "acme")).splitlines()
    assert shown[0].split() == ["account:", "acme"]
    assert "twinning:          on" in shown and "park slots:        801-810" in shown
    assert "dtmf timeout:      2.5 s" in shown and "park timeout:      60 s" in shown
    assert json.loads(ok(run("account", "show", "acme", "--json"))) == {
        "name": "acme", "domain": "acme.example.com", "digits": 3, "language": "en",
        "timezone": "Europe/London", "twinning": True, "max_fixed_devices": 3, "park_timeout": 60,
        "park_recall_limit": 2, "park_first_slot": 801, "park_last_slot": 810, "dtmf_prefix": "**",
        "dtmf_timeout": 2.5,
    }
    ok(run("account", "set", "acme", "--no-twinning"))
    assert json.loads(ok(run("account", "show", "acme", "--json")))["twinning"] is False


def test_account_set_errors(run, acme) -> None:
    fails(run("account", "set", "acme"), "nothing to change: give at least one setting")
    fails(run("account", "set", "nope", "--twinning"), "account 'nope' does not exist")
    fails(run("account", "set", "acme", "--park-timeout", "5"), "park timeout must be 10-3600 seconds, not 5")
    fails(run("account", "set", "acme", "--dtmf-timeout", "11"), "DTMF timeout must be 1-10 seconds, not 11.0")
    fails(run("account", "set", "acme", "--dtmf-prefix", "#x"), "DTMF prefix '#x' must be 1-3 keys of 0-9, * and #")
    fails(run("account", "set", "acme", "--park-recall-limit", "21"), "park recall limit must be 0-20, not 21")
    fails(run("account", "show", "nope"), "account 'nope' does not exist")
    assert json.loads(ok(run("account", "show", "acme", "--json")))["park_timeout"] == 120  # unchanged


# -- user set / show / link / unlink, login policy -----------------------------------------------


def test_user_set_and_show(run, acme) -> None:
    out = ok(run("user", "set", "acme", "201", "--twinning", "--may-park", "--no-may-external",
                 "--name", "Alice B", "--pin", "0000"))
    assert out == ("user 201 updated: twinning on, may park on, may external off, name Alice B, "
                   "PIN to be chosen at the next login\n")
    assert ok(run("user", "set", "acme", "201", "--pin", "90817")) == "user 201 updated: PIN changed\n"
    shown = ok(run("user", "show", "acme", "201")).splitlines()
    assert shown == [
        "user:           201 Alice B",
        "account:        acme",
        "PIN:            set",
        "twinning:       on (inactive: the account has twinning off)",
        "rights:         park",
        "devices:        acme-a",
        "privacy groups: none",
    ]
    data = json.loads(ok(run("user", "show", "acme", "201", "--json")))
    assert data["rights"] == {"park": True, "time-config": False, "external": False, "international": False,
                              "record-prompts": False, "play-recordings": False}
    assert (data["twinning"], data["twinning_active"], data["pin_must_change"]) == (True, False, False)
    assert [(d["channel"], d["linked"]) for d in data["devices"]] == [("acme-a", False)]


def test_user_set_errors(run, acme) -> None:
    fails(run("user", "set", "acme", "201"), "nothing to change: give at least one setting")
    fails(run("user", "set", "acme", "201", "--pin", "1234"), "PIN 1234 is too easy to guess; choose another")
    fails(run("user", "set", "acme", "201", "--pin", "12"), "PIN must be at least 4 digits")
    fails(run("user", "set", "acme", "299", "--may-park"), "user 299 does not exist in account 'acme'")
    fails(run("user", "show", "acme", "299"), "user 299 does not exist in account 'acme'")


def test_login_without_twinning_moves_the_user(run, acme) -> None:
    assert ok(run("login", "acme", "201", "acme-b")) == "user 201 logged in on channel acme-b; logged out of acme-a\n"
    assert ok(run("login", "acme", "202", "acme-b")) == "user 202 logged in on channel acme-b; replaced 201 Alice\n"
    assert devices(run, "201") == [] and [d["channel"] for d in devices(run, "202")] == ["acme-b"]


def test_login_with_twinning_needs_replace_at_the_maximum(run, acme) -> None:
    ok(run("account", "set", "acme", "--twinning"))
    ok(run("user", "set", "acme", "201", "--twinning"))
    assert ok(run("login", "acme", "201", "acme-b")) == "user 201 logged in on channel acme-b\n"
    fails(run("login", "acme", "201", "acme-c"),
          "user 201 is already logged in on the maximum of 2 devices (acme-a, acme-b); "
          "add --replace to log in on acme-c and out of acme-a, acme-b")
    assert [d["channel"] for d in devices(run, "201")] == ["acme-a", "acme-b"]
    assert ok(run("login", "acme", "201", "acme-c", "--replace")) == (
        "user 201 logged in on channel acme-c; logged out of acme-a, acme-b\n")
    assert [d["channel"] for d in devices(run, "201")] == ["acme-c"]


def test_link_and_unlink(run, acme) -> None:
    assert ok(run("user", "link", "acme", "201", "acme-a")) == "user 201 linked to channel acme-a\n"
    fails(run("logout", "acme", "acme-a"), "user 201 is permanently linked to channel 'acme-a'; unlink first")
    fails(run("login", "acme", "202", "acme-a"),
          "channel 'acme-a' is permanently linked to user 201 (Alice); unlink it first")
    fails(run("user", "link", "acme", "201", "acme-b"),
          "user 201 is already linked to acme-a, the maximum without twinning; unlink first")
    ok(run("login", "acme", "201", "acme-b"))
    assert [(d["channel"], d["linked"]) for d in devices(run, "201")] == [("acme-a", True), ("acme-b", False)]
    assert "devices:        acme-a (linked), acme-b" in ok(run("user", "show", "acme", "201"))
    assert ok(run("user", "unlink", "acme", "201", "acme-a")) == (
        "user 201 unlinked from channel acme-a (still logged in there)\n")
    fails(run("user", "unlink", "acme", "201", "acme-a"), "user 201 is not linked to channel 'acme-a'")
    assert ok(run("logout", "acme", "acme-a")) == "channel acme-a logged out\n"
    fails(run("user", "link", "acme", "201", "acme-x"), "channel 'acme-x' does not exist in account 'acme'")


def test_link_of_a_twinning_user_at_the_maximum_needs_replace(run, acme) -> None:
    ok(run("account", "set", "acme", "--twinning"))
    ok(run("user", "set", "acme", "201", "--twinning"))
    ok(run("login", "acme", "201", "acme-b"))
    fails(run("user", "link", "acme", "201", "acme-c"),
          "user 201 is already logged in on the maximum of 2 devices (acme-a, acme-b); "
          "add --replace to link acme-c and log out of acme-a, acme-b")
    assert ok(run("user", "link", "acme", "201", "acme-c", "--replace")) == (
        "user 201 linked to channel acme-c; logged out of acme-a, acme-b\n")


# -- privacy groups ------------------------------------------------------------------------------


def test_privacy_groups(run, acme) -> None:
    assert ok(run("privacy-group", "list", "acme")) == "account 'acme' has no privacy groups\n"
    assert ok(run("privacy-group", "add", "acme", "Reception")) == (
        "privacy group 1 'Reception' added to account 'acme'\n")
    assert ok(run("privacy-group", "add", "acme", "Sales", "--number", "7")) == (
        "privacy group 7 'Sales' added to account 'acme'\n")
    assert ok(run("privacy-group", "member", "add", "acme", "Reception", "201", "--pickup", "--notifications",
                  "--notify-delay", "5")) == "user 201 in privacy group Reception: pickup, notifications after 5 s\n"
    assert ok(run("privacy-group", "member", "add", "acme", "1", "202")) == "user 202 in privacy group 1: no rights\n"
    assert ok(run("privacy-group", "member", "add", "acme", "1", "202", "--retrieve-parked", "--presence")) == (
        "user 202 in privacy group 1: presence, retrieve parked\n")
    assert ok(run("privacy-group", "list", "acme")).splitlines() == [
        "NUMBER  NAME       MEMBERS", "1       Reception  201, 202", "7       Sales"]
    listed = json.loads(ok(run("privacy-group", "list", "acme", "--json")))
    assert [(g["number"], g["name"], len(g["members"])) for g in listed] == [(1, "Reception", 2), (7, "Sales", 0)]
    shown = ok(run("privacy-group", "show", "acme", "reception")).splitlines()
    assert shown[0] == "privacy group 1 'Reception'"
    assert shown[1].split() == ["EXTENSION", "NAME", "PICKUP", "PRESENCE", "NOTIFICATIONS", "DELAY", "RETRIEVE",
                                "PARKED"]
    assert shown[2].split() == ["201", "Alice", "yes", "no", "yes", "5s", "no"]
    assert shown[3].split() == ["202", "Bob", "no", "yes", "no", "0s", "yes"]
    assert json.loads(ok(run("privacy-group", "show", "acme", "1", "--json")))[0] == {
        "extension": "201", "name": "Alice", "pickup": True, "presence": False, "notifications": True,
        "notify_delay": 5, "retrieve_parked": False}
    assert "privacy groups: 1 Reception: pickup, notifications after 5 s" in ok(run("user", "show", "acme", "201"))
    assert ok(run("privacy-group", "member", "remove", "acme", "Reception", "202")) == (
        "user 202 removed from privacy group Reception\n")
    assert ok(run("privacy-group", "show", "acme", "Sales")).splitlines()[1] == (
        "no members (add one with: softswitch privacy-group member add)")
    assert ok(run("privacy-group", "delete", "acme", "Reception")) == "privacy group 1 'Reception' deleted (1 member)\n"
    assert ok(run("privacy-group", "delete", "acme", "7")) == "privacy group 7 'Sales' deleted (0 members)\n"
    assert json.loads(ok(run("privacy-group", "list", "acme", "--json"))) == []


def test_privacy_group_errors(run, acme) -> None:
    ok(run("privacy-group", "add", "acme", "Reception"))
    fails(run("privacy-group", "add", "acme", "RECEPTION"), "privacy group 'Reception' already exists in account 'acme'")
    fails(run("privacy-group", "add", "acme", "Other", "--number", "1"),
          "privacy group number 1 is already used by 'Reception' in account 'acme'")
    fails(run("privacy-group", "add", "acme", "Other", "--number", "100"), "privacy group number must be 1-99, not 100")
    fails(run("privacy-group", "add", "nope", "Other"), "account 'nope' does not exist")
    fails(run("privacy-group", "show", "acme", "Nope"), "privacy group 'Nope' does not exist in account 'acme'")
    fails(run("privacy-group", "delete", "acme", "2"), "privacy group '2' does not exist in account 'acme'")
    fails(run("privacy-group", "member", "add", "acme", "Reception", "299"), "user 299 does not exist in account 'acme'")
    fails(run("privacy-group", "member", "add", "acme", "Reception", "201", "--notify-delay", "-1"),
          "notification delay must be 0-300 seconds, not -1")
    fails(run("privacy-group", "member", "remove", "acme", "Reception", "201"),
          "user 201 is not a member of privacy group 'Reception'")


# -- parked calls ----------------------------------------------------------------------------------


def test_parked_lists_the_daemons_records(run, acme, db: str) -> None:
    assert ok(run("parked", "acme")) == "no calls parked in account 'acme'\n"
    now = time.time()
    with Store(db) as store:
        account = store.account("acme")
        store.put_parked(ParkedCall(account.id, 702, "call-2@x", "202", "203 Carol", now - 30, now + 90))
        store.put_parked(ParkedCall(account.id, 701, "call-1@x", "201", "0201234567", now - 10, now + 110))
    table = ok(run("parked", "acme")).splitlines()
    assert table[0].split() == ["SLOT", "PARKED", "PARTY", "PARKED", "BY", "SINCE", "RECALL", "IN"]
    assert table[1].split()[:3] == ["701", "0201234567", "201"]
    assert table[2].split()[:4] == ["702", "203", "Carol", "202"]
    rows = json.loads(ok(run("parked", "acme", "--json")))
    assert [(r["slot"], r["parked_by"], r["call_id"]) for r in rows] == [(701, "201", "call-1@x"),
                                                                          (702, "202", "call-2@x")]
    assert rows[0]["recall_at"] == now + 110 and 0 <= rows[0]["recall_in"] <= 110 and rows[0]["since"].count(":") == 2
    fails(run("parked", "nope"), "account 'nope' does not exist")
