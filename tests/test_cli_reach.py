"""``softswitch reach``: every command with CliRunner on a temporary database, and each error."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from config.models import Binding
from config.store import Store
from tests.cli_support import fails, invoker, ok


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Account acme: Alice (201) on her desk phone and softphone, Bob (202) on his phone."""
    path = str(tmp_path / "cli.db")
    with Store(path) as store:
        store.add_account("acme", "acme.example.com", 3)
        for name in ("acme-201", "acme-202", "acme-203"):
            store.add_channel("acme", name)
        store.add_user("acme", "201", "Alice de Vries", "5821", ["acme-201", "acme-202"])
        store.add_user("acme", "202", "Bob", "5822", ["acme-203"])
    return path


@pytest.fixture
def run(db: str, monkeypatch: pytest.MonkeyPatch):
    return invoker(db, monkeypatch, "reach")




WORKED_EXAMPLE = (  # docs/reach.md, "Worked example"
    ("profile", "set", "acme", "201", "default", "--ring", "acme-201:20;acme-201,acme-202:15",
     "--forward-noanswer", "ext:voicemail"),
    ("profile", "add", "acme", "201", "meeting", "--colour", "red"),
    ("profile", "set", "acme", "201", "meeting", "--forward-always", "ext:voicemail"),
    ("status", "add", "acme", "201", "in a meeting"),
    ("schedule", "add", "acme", "201", "in a meeting", "--days", "mon", "--from", "09:00", "--to", "12:00"),
    ("class", "map", "acme", "201", "--status", "in a meeting", "--class", "any", "--profile", "meeting"),
)


@pytest.fixture
def alice(db: str) -> None:
    """The configuration of the worked example, written straight through the store (fast)."""
    with Store(db) as store:
        store.set_reach_profile("acme", "201", "default", {"ring": "acme-201:20;acme-201,acme-202:15",
                                                           "forward_noanswer": "ext:voicemail"})
        store.add_reach_profile("acme", "201", "meeting", "red")
        store.set_reach_profile("acme", "201", "meeting", {"forward_always": "ext:voicemail"})
        store.add_reach_status("acme", "201", "in a meeting")
        store.add_reach_schedule("acme", "201", "in a meeting", "09:00", "12:00", days="mon")
        store.map_reach_class("acme", "201", "in a meeting", "any", "meeting")


@pytest.mark.parametrize("args", [
    [], ["profile"], ["profile", "add"], ["profile", "set"], ["profile", "list"], ["profile", "delete"],
    ["status"], ["status", "add"], ["status", "list"], ["status", "delete"], ["status", "set"],
    ["status", "clear"], ["schedule"], ["schedule", "add"], ["schedule", "list"], ["schedule", "delete"],
    ["class"], ["class", "map"], ["class", "unmap"], ["class", "list"], ["forward"], ["devices"],
    ["callerid"], ["barring"], ["clear"], ["show"],
])
def test_every_reach_command_has_help(run, args: list[str]) -> None:
    assert ok(run(*args, "--help")).startswith("Usage: ")


# -- the worked example --------------------------------------------------------------------------


def test_worked_example_show(run, db: str) -> None:
    assert [ok(run(*args)) for args in WORKED_EXAMPLE] == [
        "profile 'default' of user 201 updated\n",
        "profile 'meeting' added to user 201; it inherits everything from default\n",
        "profile 'meeting' of user 201 updated\n",
        "status 'in a meeting' added to user 201\n",
        "schedule entry 1 added: mon 09:00-12:00 → 'in a meeting'\n",
        "user 201: status 'in a meeting' × class any → profile 'meeting'\n",
    ]
    with Store(db) as store:
        for channel in ("acme-201", "acme-202"):
            found = store.channel_by_username(store.account("acme").id, channel)
            assert found is not None
            contact = f"sip:{channel}@192.0.2.10"
            store.save_binding(Binding(found.id, contact, time.time() + 3600, "udp:192.0.2.10:5060"))
    assert ok(run("show", "acme", "201", "--at", "2026-11-30 10:00", "--from", "+31612345678")) == (
        "user 201 Alice de Vries — Mon 2026-11-30 10:00 Europe/Amsterdam\n"
        "status   in a meeting   (schedule: mon 09:00-12:00)\n"
        "class    external       (caller +31612345678)\n"
        "profile  meeting        (in a meeting × any class; "
        "inherits ring sequence, forward on no answer from default)\n"
        "dnd      off\n"
        "forward  unconditional ext:voicemail   busy -   no answer ext:voicemail   unreachable -\n"
        "devices  acme-201 (registered), acme-202 (registered)\n"
        "ring     nothing rings: forward unconditional (profile) → ext:voicemail\n"
    )
    assert ok(run("show", "acme", "201", "--at", "2026-11-30 13:00", "--from", "+31612345678")) == (
        "user 201 Alice de Vries — Mon 2026-11-30 13:00 Europe/Amsterdam\n"
        "status   available      (default: no manual status or schedule entry applies)\n"
        "class    external       (caller +31612345678)\n"
        "profile  default        (no mapping for status 'available')\n"
        "dnd      off\n"
        "forward  unconditional -   busy -   no answer ext:voicemail   unreachable -\n"
        "devices  acme-201 (registered), acme-202 (registered)\n"
        "ring     1. acme-201 for 20 s   2. acme-201, acme-202 for 15 s\n"
        "then     forward on no answer → ext:voicemail\n"
    )


def test_show_json(run, alice) -> None:
    shown = json.loads(ok(run("show", "acme", "201", "--at", "2026-11-30 13:00", "--from", "202", "--json")))
    assert shown["status"] == "available" and shown["class"] == "internal"
    assert shown["class_reason"] == "caller 202, an internal call"
    assert shown["action"] == "ring" and shown["all_devices"] is False
    assert shown["ring"] == [{"devices": ["acme-201"], "timeout": 20.0},
                             {"devices": ["acme-201", "acme-202"], "timeout": 15.0}]
    assert shown["forwards"] == {"always": None, "busy": None, "noanswer": "ext:voicemail", "unreachable": None}
    assert shown["devices"] == [{"device": "acme-201", "registered": False},
                                {"device": "acme-202", "registered": False}]
    meeting = json.loads(ok(run("show", "acme", "201", "--at", "2026-11-30 10:00", "--json")))
    assert (meeting["profile"], meeting["action"], meeting["destination"]) == ("meeting", "forward", "ext:voicemail")
    assert "forward-always" not in meeting["inherited"] and "ring" in meeting["inherited"]


def test_show_classes_from_the_caller_and_the_did(run) -> None:
    def line(args: list[str], label: str) -> str:
        out = ok(run("show", "acme", "201", "--at", "2026-11-30 13:00", *args))
        return next(text for text in out.splitlines() if text.startswith(label))

    assert line(["--from", "anonymous"], "class") == "class    anonymous      (the caller withheld their number)"
    assert line(["--did", "+31201234500"], "class") == "class    did:+31201234500 (dialled +31201234500)"
    assert line([], "class") == "class    external       (an external call)"
    assert line(["--from", "0201234567"], "class") == "class    external       (caller 0201234567)"
    assert line([], "ring") == "ring     1. acme-201, acme-202 for 20 s"  # the default: all devices together


@pytest.mark.parametrize("args, message", [
    (["--from", "bob"], "--from 'bob' is not an extension, a number (+31…, 0…) or 'anonymous'"),
    (["--from", "202", "--did", "+31201234500"], "an internal call (--from EXT) does not arrive on a DID (--did)"),
    (["--did", "0201234500"], "DID '0201234500' is not an E.164 number like +31201234567"),
    (["--at", "monday"], "time 'monday' is not YYYY-MM-DD HH:MM"),
])
def test_show_errors(run, args: list[str], message: str) -> None:
    fails(run("show", "acme", "201", *args), message)


def test_show_a_user_without_devices_and_unknown_users(run) -> None:
    ok(run("profile", "set", "acme", "202", "default", "--forward-unreachable", "ext:voicemail"))
    ok(run("devices", "acme", "202", "acme-203"))
    out = ok(run("show", "acme", "202", "--at", "2026-11-30 13:00"))
    assert "ring     1. acme-203 for 20 s\n" in out
    assert "override only acme-203 ring until cleared\n" in out
    fails(run("show", "acme", "209"), "user 209 does not exist in account 'acme'")
    fails(run("show", "beta", "201"), "account 'beta' does not exist")


# -- profiles -------------------------------------------------------------------------------------


def test_profile_add_set_list_delete(run) -> None:
    assert ok(run("profile", "add", "acme", "201", "meeting", "--colour", "red")) == (
        "profile 'meeting' added to user 201; it inherits everything from default\n")
    assert ok(run("profile", "set", "acme", "201", "meeting", "--forward-always", "+31612345678",
                  "--no-forward-busy", "--noanswer-timeout", "30", "--caller-id", "anonymous",
                  "--forward-caller-id", "called", "--dnd", "--no-call-waiting")) == (
        "profile 'meeting' of user 201 updated\n")
    table = ok(run("profile", "list", "acme", "201")).splitlines()
    assert table[0].split() == ["PROFILE", "COLOUR", "RING", "ALWAYS", "BUSY", "NO-ANSWER", "RING-TIME",
                                "UNREACHABLE", "CALLER-ID", "FWD-CALLER-ID", "DND", "WAITING"]
    assert table[1].split() == ["default", "-", "all", "devices", "-", "-", "-", "20", "-", "company", "calling",
                                "off", "on"]
    assert table[2].split() == ["meeting", "red", "inherit", "+31612345678", "-", "inherit", "30", "inherit",
                                "anonymous", "called", "on", "off"]
    ok(run("profile", "set", "acme", "201", "meeting", "--inherit", "dnd", "--inherit", "call-waiting"))
    profiles = json.loads(ok(run("profile", "list", "acme", "201", "--json")))
    meeting = profiles[1]
    assert meeting["settings"]["dnd"] is None and meeting["effective"]["dnd"] is False
    assert meeting["settings"]["forward_busy"] == "none" and meeting["effective"]["forward_busy"] is None
    assert set(meeting["inherited"]) == {"ring", "forward-noanswer", "forward-unreachable", "dnd", "call-waiting"}
    assert ok(run("profile", "delete", "acme", "201", "meeting")) == "profile 'meeting' of user 201 deleted\n"


def test_profile_delete_reports_the_mappings_it_removes(run, alice) -> None:
    assert ok(run("profile", "delete", "acme", "201", "meeting")) == (
        "profile 'meeting' of user 201 deleted and 1 class mapping(s) that used it\n")


@pytest.mark.parametrize("args, message", [
    (["--ring", "acme-201,acme-999"], "device 'acme-999' is not a channel of account 'acme'"),
    (["--ring", "acme-201:2"], "timeout 2 s is outside 5..300 s"),
    (["--noanswer-timeout", "500"], "timeout 500 s is outside 5..300 s"),
    (["--forward-busy", "bob"],
     "destination 'bob' is invalid: use ext:NNN, ext:voicemail, +31… or 0… (digits only)"),
    (["--forward-busy", "ext:299"], "destination ext:299: extension 299 does not exist"),
    (["--forward-always", "ext:202", "--no-forward-always"],
     "--forward-always and --no-forward-always contradict each other"),
    (["--caller-id", "12"], "caller ID '12' is invalid: use a DID like +31201234567, 'company' or 'anonymous'"),
    (["--dnd", "--inherit", "dnd"], "setting dnd is both set and inherited"),
    (["--inherit", "volume"], "unknown setting 'volume': known are ring, forward-always, forward-busy, "
                              "forward-noanswer, noanswer-timeout, forward-unreachable, caller-id, "
                              "forward-caller-id, dnd, call-waiting"),
    ([], "nothing to change: give at least one setting"),
])
def test_profile_set_errors(run, args: list[str], message: str) -> None:
    fails(run("profile", "set", "acme", "201", "default", *args), message)


def test_profile_errors(run) -> None:
    fails(run("profile", "set", "acme", "201", "meeting", "--dnd"), "user 201 has no profile 'meeting'")
    fails(run("profile", "add", "acme", "209", "meeting"), "user 209 does not exist in account 'acme'")
    fails(run("profile", "add", "acme", "201", "default"), "user 201 already has a profile 'default'")
    fails(run("profile", "add", "acme", "201", "x", "--colour", "pink!"),
          "colour 'pink!' is invalid: use a name like 'red' or #rrggbb")
    fails(run("profile", "delete", "acme", "201", "default"),
          "the default profile cannot be deleted (reset it with: reach clear)")
    fails(run("profile", "delete", "acme", "201", "meeting"), "user 201 has no profile 'meeting'")


# -- statuses, schedule, classes -----------------------------------------------------------------------


def test_status_commands(run, alice) -> None:
    assert ok(run("status", "add", "acme", "201", "out of office")) == "status 'out of office' added to user 201\n"
    assert ok(run("status", "set", "acme", "201", "out of office", "--until", "2099-12-01 17:00")) == (
        "user 201 is 'out of office' until 2099-12-01 17:00\n")
    table = ok(run("status", "list", "acme", "201")).splitlines()
    assert table[0].split() == ["STATUS", "SCHEDULE", "CLASSES", "MANUAL"]
    assert table[2].split() == ["in", "a", "meeting", "mon", "09:00-12:00", "any", "→", "meeting"]
    assert table[3].split() == ["out", "of", "office", "-", "-", "until", "2099-12-01", "17:00"]
    rows = json.loads(ok(run("status", "list", "acme", "201", "--json")))
    assert rows[2] == {"status": "out of office", "schedule": [], "classes": {}, "manual": True,
                       "manual_until": "2099-12-01 17:00"}
    shown = ok(run("show", "acme", "201", "--at", "2026-11-30 10:00"))
    assert "status   out of office  (manual, until 2099-12-01 17:00)\n" in shown
    assert ok(run("status", "clear", "acme", "201")) == "manual status of user 201 cleared; the schedule applies\n"
    assert ok(run("status", "clear", "acme", "201")) == "user 201 had no manual status\n"
    assert ok(run("status", "set", "acme", "201", "available")) == "user 201 is 'available' until cleared\n"
    assert ok(run("status", "delete", "acme", "201", "out of office")) == (
        "status 'out of office' of user 201 deleted with its schedule entries and class mappings\n")


def test_status_errors(run) -> None:
    fails(run("status", "set", "acme", "201", "lunch"), "user 201 has no status 'lunch'")
    fails(run("status", "set", "acme", "201", "available", "--until", "2020-01-01 10:00"),
          "end time 2020-01-01 10:00 is in the past")
    fails(run("status", "set", "acme", "201", "available", "--until", "soon"), "time 'soon' is not YYYY-MM-DD HH:MM")
    fails(run("status", "delete", "acme", "201", "available"),
          "status 'available' is built in and cannot be deleted")
    fails(run("status", "add", "acme", "201", "available"), "user 201 already has a status 'available'")


def test_schedule_commands(run, alice) -> None:
    ok(run("status", "add", "acme", "201", "weekend"))
    assert ok(run("schedule", "add", "acme", "201", "weekend", "--period", "fri 18:00", "mon 08:00")) == (
        "schedule entry 2 added: fri 18:00 - mon 08:00 → 'weekend'\n")
    assert ok(run("schedule", "list", "acme", "201")).splitlines() == [
        "ID  WHEN                   STATUS",
        "1   mon 09:00-12:00        in a meeting",
        "2   fri 18:00 - mon 08:00  weekend",
    ]
    entries = json.loads(ok(run("schedule", "list", "acme", "201", "--json")))
    assert entries[0] == {"id": 1, "status": "in a meeting", "when": "mon 09:00-12:00", "per_period": False,
                          "days": ["mon"], "start": 540, "end": 720}
    assert ok(run("schedule", "delete", "acme", "201", "2")) == "schedule entry 2 of user 201 deleted\n"
    assert ok(run("schedule", "list", "acme", "202")) == (
        "user 202 has no schedule entries: the status is 'available'\n")


@pytest.mark.parametrize("args, message", [
    (["--days", "mon", "--from", "11:00", "--to", "13:00"],
     "schedule entry mon 11:00-13:00 overlaps entry 1 (mon 09:00-12:00, status 'in a meeting')"),
    (["--days", "sun", "--from", "22:00", "--to", "09:30"],
     "schedule entry sun 22:00-09:30 overlaps entry 1 (mon 09:00-12:00, status 'in a meeting')"),
    (["--days", "tue", "--from", "10:00", "--to", "10:00"], "schedule entry from 10:00 to 10:00 is empty"),
    (["--days", "tue", "--from", "10:00", "--to", "10.30"], "time '10.30' is not HH:MM between 00:00 and 24:00"),
    (["--days", "tuesday", "--from", "10:00", "--to", "11:00"],
     "unknown day 'tuesday': use mon, tue, wed, thu, fri, sat, sun"),
    (["--days", "tue"], "give --days, --from and --to (or --period FROM TO)"),
    (["--days", "tue", "--period", "fri 18:00", "mon 08:00"],
     "give either --period or --days/--from/--to, not both"),
])
def test_schedule_add_errors(run, alice, args: list[str], message: str) -> None:
    fails(run("schedule", "add", "acme", "201", "in a meeting", *args), message)


def test_schedule_errors(run) -> None:
    fails(run("schedule", "add", "acme", "201", "lunch", "--days", "mon", "--from", "12:00", "--to", "13:00"),
          "user 201 has no status 'lunch'")
    fails(run("schedule", "delete", "acme", "201", "5"), "user 201 has no schedule entry 5")


def test_class_commands(run, alice) -> None:
    ok(run("profile", "add", "acme", "201", "sales"))
    assert ok(run("class", "map", "acme", "201", "--status", "available", "--class", "did:+31201234500",
                  "--profile", "sales")) == (
        "user 201: status 'available' × class did:+31201234500 → profile 'sales'\n")
    assert ok(run("class", "list", "acme", "201")).splitlines() == [
        "STATUS        CLASS             PROFILE",
        "available     did:+31201234500  sales",
        "in a meeting  any               meeting",
    ]
    assert json.loads(ok(run("class", "list", "acme", "201", "--json")))[0] == {
        "status": "available", "class": "did:+31201234500", "profile": "sales"}
    assert ok(run("class", "unmap", "acme", "201", "--status", "available", "--class", "did:+31201234500")) == (
        "user 201: status 'available' × class did:+31201234500 unmapped\n")
    assert ok(run("class", "list", "acme", "202")) == (
        "user 202 has no class mappings: every call uses the default profile\n")


def test_class_errors(run, alice) -> None:
    fails(run("class", "map", "acme", "201", "--status", "lunch", "--class", "any", "--profile", "meeting"),
          "user 201 has no status 'lunch'")
    fails(run("class", "map", "acme", "201", "--status", "available", "--class", "vip", "--profile", "meeting"),
          "call class 'vip' is invalid: use internal, external, anonymous, any or did:+31…")
    fails(run("class", "map", "acme", "201", "--status", "available", "--class", "any", "--profile", "x"),
          "user 201 has no profile 'x'")
    fails(run("class", "unmap", "acme", "201", "--status", "available", "--class", "any"),
          "status 'available' has no mapping for class 'any'")


# -- overrides, caller IDs, barring, clear ---------------------------------------------------------------


def test_forward_override_commands(run) -> None:
    assert ok(run("forward", "acme", "201")) == "user 201: no *910 forward\n"
    assert ok(run("forward", "acme", "201", "--busy", "0612345678")) == (
        "user 201: *910 forward busy → 0612345678\n")
    assert ok(run("forward", "acme", "201", "--always", "ext:202")) == "user 201: *910 forward always → ext:202\n"
    assert "unconditional ext:202 (*910)" in ok(run("show", "acme", "201"))
    assert ok(run("forward", "acme", "201", "--clear")) == "*910 forward of user 201 cleared\n"
    assert ok(run("forward", "acme", "201", "--clear")) == "*910 forward of user 201 was not set\n"
    fails(run("forward", "acme", "201", "--always", "ext:202", "--clear"), "give one of --always, --busy or --clear")
    fails(run("forward", "acme", "201", "--always", "ext:201"), "destination ext:201 is user 201 itself")
    fails(run("forward", "acme", "201", "--busy", "ext:20"),
          "destination 'ext:20' is invalid: use ext:NNN, ext:voicemail, +31… or 0… (digits only)")


def test_device_override_commands(run) -> None:
    assert ok(run("devices", "acme", "201")) == "user 201: no device override\n"
    assert ok(run("devices", "acme", "201", "acme-202", "--until", "2099-01-01 08:00")) == (
        "user 201: only acme-202 ring until 2099-01-01 08:00\n")
    assert "ring     1. acme-202 for 20 s\n" in ok(run("show", "acme", "201"))
    assert ok(run("devices", "acme", "201", "--clear")) == "device override of user 201 cleared\n"
    assert ok(run("devices", "acme", "201", "--clear")) == "device override of user 201 was not set\n"
    fails(run("devices", "acme", "201", "acme-201,acme-999"), "device 'acme-999' is not a channel of account 'acme'")
    fails(run("devices", "acme", "201", "acme-201", "--until", "2020-01-01 08:00"),
          "end time 2020-01-01 08:00 is in the past")
    fails(run("devices", "acme", "201", "--until", "2099-01-01 08:00"), "--until needs the devices to ring")
    fails(run("devices", "acme", "201", "acme-201", "--clear"), "--clear takes no devices or --until")


def test_callerid_commands(run) -> None:
    assert ok(run("callerid", "acme", "201")) == (
        "user 201 has no dynamic caller IDs (#31# always withholds the number)\n")
    assert ok(run("callerid", "acme", "201", "5", "+31201234555")) == "user 201: #35# sends +31201234555\n"
    assert ok(run("callerid", "acme", "201")).splitlines() == ["SLOT  DIAL  NUMBER", "5     #35#  +31201234555"]
    assert json.loads(ok(run("callerid", "acme", "201", "--json"))) == [
        {"slot": "5", "number": "+31201234555", "prefix": "#35#"}]
    assert ok(run("callerid", "acme", "201", "5", "--remove")) == "dynamic caller ID 5 of user 201 removed\n"
    fails(run("callerid", "acme", "201", "1", "+31201234555"),
          "slot '1' is invalid: use 2-9 or 0 (#31# is reserved for anonymous)")
    fails(run("callerid", "acme", "201", "2", "0201234555"),
          "caller ID '0201234555' is not an E.164 number like +31201234567")
    fails(run("callerid", "acme", "201", "2"), "give SLOT NUMBER to set, or SLOT --remove to remove")
    fails(run("callerid", "acme", "201", "--remove"), "--remove needs a SLOT")
    fails(run("callerid", "acme", "201", "2", "--remove"), "user 201 has no dynamic caller ID in slot 2")


def test_barring_commands(run) -> None:
    assert ok(run("barring", "acme", "201")) == "user 201: nothing barred\n"
    assert ok(run("barring", "acme", "201", "--bar", "mobile", "--bar", "premium",
                  "--bar", "incoming-anonymous")) == (
        "user 201: barred: premium, mobile, incoming-anonymous\n")
    assert ok(run("barring", "acme", "201", "--allow", "mobile")) == (
        "user 201: barred: premium, incoming-anonymous\n")
    assert "ring     nothing rings: anonymous callers are barred\n" in ok(
        run("show", "acme", "201", "--from", "anonymous"))
    fails(run("barring", "acme", "201", "--bar", "adult"),
          "unknown barring category 'adult': known are premium, satellite, international, shared-cost, "
          "information, mobile, all-external, incoming-anonymous")


def test_clear(run, alice) -> None:
    fails(run("clear", "acme", "201"), "clearing REACH of user 201 cannot be undone; add --yes")
    assert ok(run("clear", "acme", "201", "--yes")) == (
        "REACH of user 201 cleared: default profile reset, status 'available'\n")
    assert [p["name"] for p in json.loads(ok(run("profile", "list", "acme", "201", "--json")))] == ["default"]
    assert ok(run("schedule", "list", "acme", "201")).startswith("user 201 has no schedule entries")
