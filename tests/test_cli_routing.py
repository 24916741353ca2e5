"""The routing commands of ``softswitch`` (cli/routing.py), driven with click's CliRunner."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.store import Store
from tests.cli_support import fails, invoker, ok


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    return invoker(str(tmp_path / "routing.db"), monkeypatch)




@pytest.fixture
def acme(run) -> None:
    ok(run("account", "add", "acme", "--domain", "acme.example.com", "--digits", "3"))
    for extension, name in (("201", "Alice"), ("202", "Bob"), ("203", "Carol")):
        ok(run("user", "add", "acme", extension, "--name", name, "--pin", "4821"))


@pytest.fixture
def office(run, acme) -> None:
    """The numberplans, time schedule and holiday of the worked example in docs/routing.md."""
    commands = [
        ("number", "add", "acme", "020 123 4567", "--description", "main number"),
        ("numberplan", "add", "acme", "1", "--name", "Day"),
        ("numberplan", "add", "acme", "2", "--name", "Night"),
        ("numberplan", "add", "acme", "3", "--name", "Christmas"),
        ("numberplan", "map", "acme", "1", "+31201234567", "201"),
        ("numberplan", "map", "acme", "2", "+31201234567", "202"),
        ("numberplan", "map", "acme", "3", "+31201234567", "203"),
        ("schedule", "add", "acme", "1", "--days", "mon-fri", "--from", "08:00", "--to", "18:00"),
        ("schedule", "add", "acme", "2", "--days", "mon-thu", "--from", "18:00", "--to", "08:00"),
        ("schedule", "add", "acme", "2", "--period", "fri 18:00", "mon 08:00"),
        ("holiday", "add", "acme", "3", "--from", "2026-12-24 18:00", "--to", "2026-12-27 08:00",
         "--description", "Christmas"),
    ]
    for command in commands:
        ok(run(*command))


@pytest.mark.parametrize("args", [
    ["account", "country"], ["trunk"], ["trunk", "add"], ["trunk", "set"], ["trunk", "list"], ["trunk", "delete"],
    ["number"], ["number", "add"], ["number", "list"], ["number", "delete"], ["user", "number"],
    ["schema"], ["schema", "add"], ["schema", "list"], ["schema", "rename"], ["schema", "delete"],
    ["numberplan"], ["numberplan", "add"], ["numberplan", "rename"], ["numberplan", "list"],
    ["numberplan", "delete"], ["numberplan", "copy"], ["numberplan", "map"], ["numberplan", "unmap"],
    ["numberplan", "show"], ["numberplan", "active"], ["schedule"], ["schedule", "add"], ["schedule", "list"],
    ["schedule", "delete"], ["holiday"], ["holiday", "add"], ["holiday", "list"], ["holiday", "delete"],
    ["holiday", "purge"], ["override"], ["override", "set"], ["override", "clear"],
])
def test_every_routing_command_has_help(run, args: list[str]) -> None:
    assert ok(run(*args, "--help")).startswith("Usage: ")


# -- the worked example of docs/routing.md ----------------------------------------------------------------


def test_worked_example_active_plan_at_three_moments(run, office) -> None:
    assert ok(run("numberplan", "active", "acme", "--at", "2026-12-22 10:00")) == (
        'schema 1 (acme): numberplan 1 "Day" — time schedule (mon-fri 08:00-18:00)\n')
    assert ok(run("numberplan", "active", "acme", "--at", "2026-12-19 10:00")) == (
        'schema 1 (acme): numberplan 2 "Night" — time schedule (fri 18:00 → mon 08:00)\n')
    assert ok(run("numberplan", "active", "acme", "--at", "2026-12-25 10:00")) == (
        'schema 1 (acme): numberplan 3 "Christmas" — holiday "Christmas" 2026-12-24 18:00 → 2026-12-27 08:00\n')


def test_numberplan_active_json_and_override(run, office) -> None:
    ok(run("override", "set", "acme", "2"))
    rows = json.loads(ok(run("numberplan", "active", "acme", "--at", "2026-12-25 10:00", "--json")))
    assert [(r["schema"], r["plan"], r["reason"], r["detail"]) for r in rows] == [(1, 2, "override",
                                                                                    "manual override")]
    assert rows[0]["at"] == "2026-12-25T10:00:00+01:00"
    fails(run("numberplan", "active", "acme", "--at", "2026-03-29 02:30"),
          "2026-03-29 02:30 does not exist in Europe/Amsterdam: the clocks skip that hour (summer time starts)")
    fails(run("numberplan", "active", "acme", "--at", "tomorrow"),
          "date/time 'tomorrow' is invalid: use 'YYYY-MM-DD HH:MM'")


def test_numberplan_active_with_a_gap(run, acme) -> None:
    ok(run("numberplan", "add", "acme", "1", "--name", "Day"))
    ok(run("schedule", "add", "acme", "1", "--days", "mon-fri", "--from", "08:00", "--to", "18:00"))
    assert ok(run("numberplan", "active", "acme", "--at", "2026-12-26 10:00")) == (
        "schema 1 (acme): no active numberplan (the schedule has a gap here)\n")


# -- account country, trunks, numbers --------------------------------------------------------------------


def test_account_country(run, acme) -> None:
    assert ok(run("account", "country", "acme")) == "NL\n"
    assert ok(run("account", "country", "acme", "be")) == "account 'acme' now normalises numbers by the rules of BE\n"
    assert ok(run("number", "add", "acme", "02 123 45 67")) == "+3221234567 added to account 'acme'\n"
    fails(run("account", "country", "acme", "XX"),
          "country 'XX' is not supported (known: AT, BE, CH, DE, FR, GB, NL)")
    fails(run("account", "country", "nope"), "account 'nope' does not exist")


def test_trunk_add_list_set_delete(run, acme) -> None:
    assert ok(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl", "--username", "acme", "--password",
                  "s3cret", "--register")) == (
        "trunk 'kpn' added to account 'acme': sip.kpn.nl:5060 udp, priority 1, registers\n")
    assert ok(run("trunk", "add", "acme", "backup", "--host", "[2001:db8::1]:5080", "--transport", "tcp",
                  "--priority", "2")) == "trunk 'backup' added to account 'acme': [2001:db8::1]:5080 tcp, priority 2\n"
    ok(run("number", "add", "acme", "+31201234567", "--trunk", "kpn"))
    table = ok(run("trunk", "list", "acme")).splitlines()
    assert table[0].split() == ["PRIORITY", "NAME", "HOST", "TRANSPORT", "USERNAME", "REGISTER", "NUMBERS", "STATUS"]
    assert table[1].split() == ["1", "kpn", "sip.kpn.nl:5060", "udp", "acme", "yes", "1", "unknown"]
    assert table[2].split() == ["2", "backup", "[2001:db8::1]:5080", "tcp", "no", "0", "unknown"]
    assert "s3cret" not in ok(run("trunk", "list", "acme"))
    assert "s3cret" in ok(run("trunk", "list", "acme", "--passwords"))
    rows = json.loads(ok(run("trunk", "list", "acme", "--json")))
    assert rows[0] == {"name": "kpn", "host": "sip.kpn.nl", "port": 5060, "transport": "udp", "username": "acme",
                       "register": True, "priority": 1, "numbers": 1, "status": "unknown", "status_detail": "",
                       "status_since": None}
    assert ok(run("trunk", "set", "acme", "backup", "--priority", "1", "--host", "192.0.2.7")) == (
        "trunk 'backup' of account 'acme': 192.0.2.7:5060 tcp, priority 1\n")
    assert ok(run("trunk", "set", "acme", "kpn", "--no-register")) == (
        "trunk 'kpn' of account 'acme': sip.kpn.nl:5060 udp, priority 1, with credentials\n")
    assert ok(run("trunk", "delete", "acme", "kpn")) == (
        "trunk 'kpn' deleted from account 'acme'; 1 number of the account now have no trunk\n")
    assert ok(run("trunk", "delete", "acme", "backup")) == "trunk 'backup' deleted from account 'acme'\n"
    assert ok(run("trunk", "list", "acme")) == "account 'acme' has no trunks (add one with: softswitch trunk add)\n"


def test_trunk_list_shows_what_the_daemon_knows(run, acme, tmp_path: Path) -> None:
    ok(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl"))
    since = dt.datetime(2026, 5, 4, 10, 31, 7, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()
    with Store(tmp_path / "routing.db") as store:  # what the daemon's trunk monitor writes
        [trunk] = store.trunks(store.account("acme").id)
        store.set_trunk_status(trunk.id, "down", "OPTIONS timed out", since)
    table = ok(run("trunk", "list", "acme")).splitlines()
    assert table[1].endswith("  down since 2026-05-04 10:31:07 (OPTIONS timed out)")
    [row] = json.loads(ok(run("trunk", "list", "acme", "--json")))
    assert (row["status"], row["status_detail"], row["status_since"]) == (
        "down", "OPTIONS timed out", "2026-05-04 10:31:07")
    with Store(tmp_path / "routing.db") as store:
        store.clear_trunk_status()  # the daemon stopped
    [row] = json.loads(ok(run("trunk", "list", "acme", "--json")))
    assert (row["status"], row["status_since"]) == ("unknown", None)


def test_trunk_bad_input(run, acme) -> None:
    fails(run("trunk", "add", "acme", "kpn", "--host", "sip_kpn"),
          "trunk host 'sip_kpn' is not a host name or IP address")
    fails(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl:99999"),
          "trunk host 'sip.kpn.nl:99999' has an invalid port: use 1-65535")
    fails(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl", "--register"),
          "registering at the carrier needs the trunk's username and password")
    fails(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl", "--priority", "100"),
          "priority must be 1-99, not 100")
    ok(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl"))
    fails(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl"), "trunk 'kpn' already exists in account 'acme'")
    fails(run("trunk", "set", "acme", "nope", "--priority", "2"), "trunk 'nope' does not exist in account 'acme'")


def test_number_add_list_delete(run, acme) -> None:
    ok(run("trunk", "add", "acme", "kpn", "--host", "sip.kpn.nl"))
    assert ok(run("number", "add", "acme", "020-123 45 67", "--trunk", "kpn", "--description", "reception")) == (
        "+31201234567 added to account 'acme' (trunk kpn)\n")
    ok(run("number", "add", "acme", "+31201234568"))
    ok(run("user", "number", "acme", "202", "06 12345678"))
    ok(run("numberplan", "add", "acme", "1", "--name", "Day"))
    ok(run("numberplan", "map", "acme", "1", "+31201234567", "201"))
    table = ok(run("number", "list", "acme")).splitlines()
    assert table[0].split() == ["NUMBER", "TRUNK", "ROUTING", "DESCRIPTION"]
    assert table[1].split() == ["+31201234567", "kpn", "schema", "1", "reception"]
    assert table[2].split() == ["+31201234568", "not", "routed"]
    assert table[3].split() == ["+31612345678", "personal", "number", "of", "202"]
    rows = json.loads(ok(run("number", "list", "acme", "--json")))
    assert rows[2] == {"number": "+31612345678", "trunk": None, "personal": "202", "schema": None,
                       "description": ""}
    assert ok(run("number", "delete", "acme", "0201234567")) == (
        "+31201234567 deleted from account 'acme' (removed from 1 numberplan)\n")
    assert ok(run("number", "delete", "acme", "0201234568")) == "+31201234568 deleted from account 'acme'\n"


def test_number_bad_input(run, acme) -> None:
    fails(run("number", "add", "acme", "reception"),
          "'reception' is not a phone number: write it with + and the country code, "
          "or as a national number starting with 0")
    ok(run("account", "add", "beta", "--domain", "beta.example.com", "--digits", "4"))
    ok(run("number", "add", "beta", "+31201234567"))
    fails(run("number", "add", "acme", "020 1234567"), "+31201234567 is already a number of account 'beta'")
    fails(run("number", "delete", "acme", "020 1234567"),
          "+31201234567 is not a number of account 'acme' (add it with: softswitch number add)")


def test_user_number_and_remove(run, acme) -> None:
    assert ok(run("user", "number", "acme", "201", "0612345678")) == (
        "+31612345678 is now the personal number of user 201\n")
    assert ok(run("user", "number", "acme", "201", "0612345678", "--remove")) == (
        "+31612345678 is no longer a personal number of user 201; it stays a number of account 'acme' "
        "(delete it with: softswitch number delete)\n")
    fails(run("user", "number", "acme", "299", "0612345679"), "user 299 does not exist in account 'acme'")


def test_personal_numbers_stay_out_of_numberplans(run, office) -> None:
    fails(run("user", "number", "acme", "201", "+31201234567"),
          "+31201234567 is in numberplan 1 of schema 1 (acme); a personal number cannot be in a numberplan: "
          "unmap it first")
    ok(run("user", "number", "acme", "202", "0612345678"))
    fails(run("numberplan", "map", "acme", "1", "0612345678", "201"),
          "+31612345678 is the personal number of user 202; a personal number cannot be in a numberplan")


# -- schemas -----------------------------------------------------------------------------------------------


def test_schema_add_list_rename_delete(run, office) -> None:
    assert ok(run("schema", "add", "acme", "sales")) == "schema 2 (sales) added to account 'acme'\n"
    ok(run("numberplan", "add", "acme", "1", "--name", "Open", "--schema", "2"))
    ok(run("schedule", "add", "acme", "1", "--days", "mon-sun", "--from", "00:00", "--to", "24:00",
           "--schema", "2"))
    table = ok(run("schema", "list", "acme")).splitlines()
    assert table[0].split() == ["SCHEMA", "NAME", "NUMBERPLANS", "NUMBERS", "SCHEDULE", "HOLIDAYS", "OVERRIDE"]
    assert table[1].split() == ["1", "acme", "3", "1", "3", "1"]
    assert table[2].split() == ["2", "sales", "1", "0", "1", "0"]
    assert json.loads(ok(run("schema", "list", "acme", "--json")))[1]["name"] == "sales"
    assert ok(run("schema", "rename", "acme", "2", "Sales NL")) == (
        "schema 2 of account 'acme' is now called 'Sales NL'\n")
    assert ok(run("schema", "delete", "acme", "2")) == (
        "schema 2 (Sales NL) deleted with 1 numberplan, 1 schedule entry and 0 holidays\n")


def test_schema_1_is_protected(run, acme) -> None:
    fails(run("schema", "delete", "acme", "1"), "schema 1 is the account's main schema and cannot be deleted")
    fails(run("schema", "rename", "acme", "1", "main"),
          "schema 1 is the account's main schema: it keeps the account's name")
    fails(run("schema", "delete", "acme", "5"), "schema 5 does not exist in account 'acme'")


# -- numberplans -------------------------------------------------------------------------------------------


def test_numberplan_list_show_copy_unmap_delete(run, office) -> None:
    ok(run("override", "set", "acme", "2"))
    table = ok(run("numberplan", "list", "acme")).splitlines()
    assert table[0].split() == ["SCHEMA", "PLAN", "NAME", "NUMBERS", "ACTIVE", "NOW"]
    assert table[2].split() == ["1", "2", "Night", "1", "yes", "(override)"]
    assert json.loads(ok(run("numberplan", "list", "acme", "--json", "--schema", "1")))[0] == {
        "schema": 1, "plan": 1, "name": "Day", "numbers": 1, "active": None}
    ok(run("numberplan", "map", "acme", "1", "+31201234567", "201", "--prefix", "Day: "))
    assert ok(run("numberplan", "show", "acme", "1")).splitlines() == [
        'numberplan 1 "Day" of schema 1 (acme)',
        "NUMBER        EXTENSION  NAME   PREFIX",
        "+31201234567  201        Alice  'Day: '",
    ]
    assert json.loads(ok(run("numberplan", "show", "acme", "1", "--json"))) == [
        {"number": "+31201234567", "extension": "201", "name": "Alice", "prefix": "Day: "}]
    assert ok(run("numberplan", "copy", "acme", "1", "4")) == (
        'numberplan 1 copied onto numberplan 4 "Day (copy)" (1 number)\n')
    assert ok(run("numberplan", "rename", "acme", "4", "Spare")) == 'numberplan 4 of schema 1 is now called "Spare"\n'
    assert ok(run("numberplan", "unmap", "acme", "4", "0201234567")) == (
        "numberplan 4 of schema 1: +31201234567 removed (it went to 201)\n")
    assert ok(run("numberplan", "show", "acme", "4")).splitlines()[1] == (
        "no numbers (add one with: softswitch numberplan map)")
    assert ok(run("numberplan", "delete", "acme", "4")) == (
        "numberplan 4 \"Spare\" deleted from schema 1 of account 'acme'\n")
    fails(run("numberplan", "delete", "acme", "2"),
          "numberplan 2 of schema 1 is used by schedule entry 2 (mon-thu 18:00-08:00), schedule entry 3 "
          "(fri 18:00 → mon 08:00), the manual override; delete or change those first")
    fails(run("numberplan", "show", "acme", "9"), "numberplan 9 does not exist in schema 1 (acme)")


def test_numberplan_bad_input(run, office) -> None:
    fails(run("numberplan", "add", "acme", "100", "--name", "Too far"), "numberplan number must be 1-99, not 100")
    fails(run("numberplan", "add", "acme", "0", "--name", "Too low"), "numberplan number must be 1-99, not 0")
    fails(run("numberplan", "map", "acme", "1", "+31201234567", "2011"),
          "extension 2011 has 4 digits; account 'acme' uses 3")
    fails(run("numberplan", "map", "acme", "1", "+31201234567", "299"),
          "extension 299 does not exist in account 'acme' (numberplans route to existing extensions; "
          "so far those are user extensions)")
    ok(run("schema", "add", "acme", "sales"))
    ok(run("numberplan", "add", "acme", "1", "--name", "Open", "--schema", "2"))
    fails(run("numberplan", "map", "acme", "1", "+31201234567", "201", "--schema", "2"),
          "+31201234567 is routed by schema 1 (acme); a number belongs to one schema only")
    fails(run("numberplan", "add", "acme", "1", "--name", "Day", "--schema", "3"),
          "schema 3 does not exist in account 'acme'")


# -- time schedule ----------------------------------------------------------------------------------------


def test_schedule_add_list_delete(run, office) -> None:
    table = ok(run("schedule", "list", "acme")).splitlines()
    assert [line.split(None, 2)[:2] for line in table] == [["ID", "SCHEMA"], ["1", "1"], ["2", "1"], ["3", "1"]]
    assert table[3].endswith('fri 18:00 → mon 08:00  numberplan 2 "Night"')
    rows = json.loads(ok(run("schedule", "list", "acme", "--json")))
    assert rows[2] == {"id": 3, "schema": 1, "plan": 2, "kind": "period", "days": [], "start": "fri 18:00",
                       "end": "mon 08:00", "text": "fri 18:00 → mon 08:00"}
    assert rows[0]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert run("schedule", "list", "acme").stderr == ""  # the whole week is covered
    assert ok(run("schedule", "delete", "acme", "3")) == (
        "schedule entry 3 deleted (fri 18:00 → mon 08:00 used numberplan 2)\n")
    result = run("schedule", "list", "acme")
    assert result.stderr == ("warning: the time schedule of schema 1 (acme) has 1 gap with no numberplan, "
                             "the first fri 18:00 → mon 08:00\n")
    assert ok(run("schedule", "add", "acme", "2", "--period", "fri 18:00", "mon 08:00")) == (
        'schedule entry 4 added to schema 1 (acme): fri 18:00 → mon 08:00 uses numberplan 2 "Night"\n')
    fails(run("schedule", "delete", "acme", "3"), "schedule entry 3 does not exist in account 'acme'")


def test_schedule_list_warns_about_an_empty_schedule(run, acme) -> None:
    result = run("schedule", "list", "acme")
    assert result.stdout == "account 'acme' has no time schedule (add entries with: softswitch schedule add)\n"
    assert result.stderr == ("warning: schema 1 (acme) has no time schedule: no numberplan is active unless set by "
                             "a holiday or the override\n")


def test_schedule_bad_input(run, office) -> None:
    fails(run("schedule", "add", "acme", "3", "--days", "wed", "--from", "12:00", "--to", "13:00"),
          "schedule entry wed 12:00-13:00 (numberplan 3) overlaps entry 1: mon-fri 08:00-18:00 (numberplan 1), "
          "both cover wed 12:00")
    fails(run("schedule", "add", "acme", "3", "--period", "sun 22:00", "mon 09:00"),
          "schedule entry sun 22:00 → mon 09:00 (numberplan 3) overlaps entry 3: fri 18:00 → mon 08:00 "
          "(numberplan 2), both cover sun 22:00")
    fails(run("schedule", "add", "acme", "3", "--days", "wed"),
          "a schedule entry needs --days, --from and --to, or --period START END")
    fails(run("schedule", "add", "acme", "3", "--days", "wed", "--from", "12:00", "--to", "13:00", "--period",
              "fri 18:00", "mon 08:00"), "give either --period or --days/--from/--to, not both")
    fails(run("schedule", "add", "acme", "3", "--days", "someday", "--from", "12:00", "--to", "13:00"),
          "days 'someday' are invalid: use mon, tue, wed, thu, fri, sat, sun, ranges such as mon-fri and lists "
          "such as sat,sun")
    fails(run("schedule", "add", "acme", "3", "--days", "sat", "--from", "25:00", "--to", "13:00"),
          "time '25:00' is invalid: use HH:MM from 00:00 to 23:59")
    fails(run("schedule", "add", "acme", "9", "--days", "sat", "--from", "10:00", "--to", "13:00"),
          "numberplan 9 does not exist in schema 1 (acme); add it with: softswitch numberplan add")


# -- holidays and override ---------------------------------------------------------------------------------


def test_holiday_add_list_delete_purge(run, office) -> None:
    assert ok(run("holiday", "add", "acme", "3", "--from", "2000-01-01 00:00", "--to", "2000-01-02 00:00",
                  "--description", "millennium")) == (
        'holiday 2 added to schema 1 (acme): numberplan 3 "Christmas" from 2000-01-01 00:00 to 2000-01-02 00:00 '
        "(millennium)\n")
    ok(run("holiday", "add", "acme", "1", "--from", "2099-06-01", "--to", "2099-06-01 12:00"))
    table = ok(run("holiday", "list", "acme")).splitlines()
    assert table[0].split() == ["ID", "SCHEMA", "PLAN", "FROM", "TO", "STATUS", "DESCRIPTION"]
    assert table[1].split() == ["2", "1", "3", "2000-01-01", "00:00", "2000-01-02", "00:00", "expired", "millennium"]
    assert table[3].split() == ["3", "1", "1", "2099-06-01", "00:00", "2099-06-01", "12:00", "upcoming"]
    rows = json.loads(ok(run("holiday", "list", "acme", "--json")))
    assert rows[1] == {"id": 1, "schema": 1, "plan": 3, "from": "2026-12-24 18:00", "to": "2026-12-27 08:00",
                       "description": "Christmas", "status": rows[1]["status"]}
    assert ok(run("holiday", "purge", "acme")) == "removed 1 expired holiday from account 'acme'\n"
    assert ok(run("holiday", "delete", "acme", "3")) == "holiday 3 deleted\n"
    fails(run("holiday", "delete", "acme", "3"), "holiday 3 does not exist in account 'acme'")


def test_holiday_bad_input(run, office) -> None:
    fails(run("holiday", "add", "acme", "3", "--from", "2026-12-27 08:00", "--to", "2026-12-24 18:00"),
          "the holiday ends (2026-12-24 18:00) before it starts (2026-12-27 08:00)")
    fails(run("holiday", "add", "acme", "3", "--from", "2026-03-29 02:30", "--to", "2026-03-30 00:00"),
          "2026-03-29 02:30 does not exist in Europe/Amsterdam: the clocks skip that hour (summer time starts)")
    fails(run("holiday", "add", "acme", "7", "--from", "2026-12-24", "--to", "2026-12-27"),
          "numberplan 7 does not exist in schema 1 (acme); add it with: softswitch numberplan add")


def test_override_set_and_clear(run, office) -> None:
    assert ok(run("override", "set", "acme", "3")) == (
        'schema 1 (acme): numberplan 3 "Christmas" is active until the override is cleared\n')
    assert ok(run("numberplan", "active", "acme", "--at", "2026-12-22 10:00")) == (
        'schema 1 (acme): numberplan 3 "Christmas" — manual override\n')
    assert ok(run("override", "clear", "acme")) == (
        'schema 1 (acme): override of numberplan 3 "Christmas" cleared; the holidays and time schedule decide again\n')
    assert ok(run("override", "clear", "acme")) == (
        "schema 1 (acme) has no override; the holidays and time schedule decide\n")
    fails(run("override", "set", "acme", "8"),
          "numberplan 8 does not exist in schema 1 (acme); add it with: softswitch numberplan add")
