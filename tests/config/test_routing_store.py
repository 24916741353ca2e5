"""Routing in the store (config.store_routing, migration 5), in memory and on a database file."""
from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from config import schema
from config.models import Account
from config.numberplan import active_plan, route_did
from config.routing import (
    Holiday, Numberplan, NumberplanSchema, PhoneNumber, PlanEntry, ScheduleEntry, Trunk, parse_clock, parse_days,
    parse_week_time,
)
from config.store import ConfigError, Store

TZ = ZoneInfo("Europe/Amsterdam")
DID = "+31201234567"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "softswitch.db")


@pytest.fixture
def store():
    s = Store(":memory:")  # the migration test below uses a file
    yield s
    s.close()


@pytest.fixture
def acme(store: Store) -> Account:
    account = store.add_account("acme", "acme.example.com", 3)
    for extension, name in (("201", "Alice"), ("202", "Bob"), ("203", "Carol")):
        store.add_user("acme", extension, name, "4821")
    return account


@pytest.fixture
def beta(store: Store) -> Account:
    return store.add_account("beta", "beta.example.com", 4)


@pytest.fixture
def office(store: Store, acme: Account) -> Account:
    """Day 1, Night 2, Christmas 3 in schema 1; DID → 201 / 202 / 203."""
    store.add_number(acme.id, DID)
    for plan, name, extension in ((1, "Day", "201"), (2, "Night", "202"), (3, "Christmas", "203")):
        store.add_numberplan(acme.id, 1, plan, name)
        store.map_number(acme.id, 1, plan, DID, extension)
    store.add_day_entry(acme.id, 1, 1, parse_days("mon-fri"), parse_clock("08:00"), parse_clock("18:00"))
    store.add_day_entry(acme.id, 1, 2, parse_days("mon-thu"), parse_clock("18:00"), parse_clock("08:00"))
    store.add_period_entry(acme.id, 1, 2, parse_week_time("fri 18:00"), parse_week_time("mon 08:00", end=True))
    return acme


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TZ)


# -- migration 5 -------------------------------------------------------------------------------------


def test_migration_from_version_3_keeps_data_and_creates_schema_1(db_path: str) -> None:
    db = sqlite_utils.Database(db_path)
    schema.migrate(db, schema.MIGRATIONS[:3])
    db.execute("INSERT INTO accounts (name, domain, digits, created_at) VALUES ('old', 'old.example.com', 4, 0)")
    db.execute("INSERT INTO users (account_id, extension, name, pin, created_at) VALUES (1, '2001', 'Ann', '4821', 0)")
    db.conn.commit()
    db.conn.close()
    with Store(db_path) as store:
        assert store.schema_version() == schema.SCHEMA_VERSION
        old = store.account("old")
        assert store.schemas(old.id) == [NumberplanSchema(1, old.id, 1, "old")]
        assert store.account_country(old.id) == "NL"
        assert store.user_by_extension(old.id, "2001").name == "Ann"
        new = store.add_account("new", "new.example.com", 3)  # the trigger makes schema 1 from now on
        assert [s.number for s in store.schemas(new.id)] == [1]
        assert store.schemas(new.id)[0].name == "new"


def test_every_routing_change_bumps_the_config_version(store: Store, acme: Account) -> None:
    changes = [
        lambda: store.add_trunk(acme.id, "kpn", "sip.kpn.nl"),
        lambda: store.add_number(acme.id, DID),
        lambda: store.add_schema(acme.id, "sales"),
        lambda: store.add_numberplan(acme.id, 1, 1, "Day"),
        lambda: store.map_number(acme.id, 1, 1, DID, "201"),
        lambda: store.add_day_entry(acme.id, 1, 1, {0}, 480, 1080),
        lambda: store.add_holiday(acme.id, 1, 1, local(2026, 12, 24), local(2026, 12, 27), "Christmas"),
        lambda: store.set_override(acme.id, 1, 1),
        lambda: store.set_account_country(acme.id, "BE"),
    ]
    for change in changes:
        before = store.config_version()
        change()
        assert store.config_version() > before, change


# -- account country ---------------------------------------------------------------------------------


def test_account_country_sets_the_rules_for_new_numbers(store: Store, acme: Account) -> None:
    assert store.set_account_country(acme.id, "be") == "BE"
    assert store.add_number(acme.id, "02 123 45 67").number == "+3221234567"
    with pytest.raises(ConfigError, match="country 'XX' is not supported"):
        store.set_account_country(acme.id, "XX")
    with pytest.raises(ConfigError, match="account 999 does not exist"):
        store.account_country(999)


# -- trunks --------------------------------------------------------------------------------------------


def test_trunks_in_fail_over_order(store: Store, acme: Account, beta: Account) -> None:
    kpn = store.add_trunk(acme.id, "kpn", "sip.kpn.nl:5070", username="acme", password="s3cret", register=True,
                          priority=2)
    assert kpn == Trunk(kpn.id, acme.id, "kpn", "sip.kpn.nl", 5070, "udp", "acme", "s3cret", True, 2)
    assert "s3cret" not in repr(kpn)
    backup = store.add_trunk(acme.id, "backup", "[2001:db8::1]", transport="tcp")
    other = store.add_trunk(beta.id, "kpn", "192.0.2.1")  # names are per account
    assert store.trunks(acme.id) == [backup, kpn]
    assert store.all_trunks() == [backup, kpn, other]
    assert backup.address == "[2001:db8::1]:5060"


def test_update_trunk_changes_only_what_is_given(store: Store, acme: Account) -> None:
    store.add_trunk(acme.id, "kpn", "sip.kpn.nl", username="acme", password="s3cret", register=True)
    moved = store.update_trunk(acme.id, "kpn", host="sip2.kpn.nl:5080", priority=5)
    assert (moved.host, moved.port, moved.priority, moved.register, moved.password) == (
        "sip2.kpn.nl", 5080, 5, True, "s3cret")
    with pytest.raises(ConfigError, match="registering at the carrier needs"):
        store.update_trunk(acme.id, "kpn", username="", password="")
    cleared = store.update_trunk(acme.id, "kpn", username="", password="", register=False)
    assert (cleared.username, cleared.password, cleared.register) == ("", "", False)
    assert store.trunks(acme.id) == [cleared]


@pytest.mark.parametrize(("kwargs", "complaint"), [
    ({"name": "bad name"}, "trunk name 'bad name' is invalid"),
    ({"host": "bad_host"}, "trunk host 'bad_host' is not a host name"),
    ({"transport": "tls"}, "transport must be one of udp, tcp, not 'tls'"),
    ({"priority": 0}, "priority must be 1-99, not 0"),
    ({"username": "acme"}, "give both a username and a password"),
    ({"register": True}, "registering at the carrier needs the trunk's username and password"),
    ({"username": "a b", "password": "x"}, "must not contain spaces"),
])
def test_add_trunk_rejects(store: Store, acme: Account, kwargs: dict, complaint: str) -> None:
    args = {"name": "kpn", "host": "sip.kpn.nl", **kwargs}
    with pytest.raises(ConfigError, match=complaint):
        store.add_trunk(acme.id, args.pop("name"), args.pop("host"), **args)
    assert store.trunks(acme.id) == []


def test_trunk_names_are_unique_per_account(store: Store, acme: Account) -> None:
    store.add_trunk(acme.id, "kpn", "sip.kpn.nl")
    with pytest.raises(ConfigError, match="trunk 'KPN' already exists in account 'acme'"):
        store.add_trunk(acme.id, "KPN", "sip.kpn.nl")


def test_deleting_a_trunk_leaves_its_numbers_without_a_trunk(store: Store, acme: Account) -> None:
    store.add_trunk(acme.id, "kpn", "sip.kpn.nl")
    store.add_number(acme.id, DID, trunk="kpn")
    assert store.delete_trunk(acme.id, "kpn") == 1
    assert store.numbers(acme.id)[0].trunk_id is None
    with pytest.raises(ConfigError, match="trunk 'kpn' does not exist in account 'acme'"):
        store.delete_trunk(acme.id, "kpn")


# -- phone numbers ----------------------------------------------------------------------------------


def test_numbers_are_stored_as_e164_and_unique_across_accounts(store: Store, acme: Account,
                                                              beta: Account) -> None:
    store.add_trunk(acme.id, "kpn", "sip.kpn.nl")
    added = store.add_number(acme.id, "020 123 45 67", trunk="kpn", description=" reception ")
    assert added == PhoneNumber(added.id, acme.id, DID, "reception", store.trunks(acme.id)[0].id, None)
    assert store.number_owner(DID) == added
    assert store.number_owner("+31200000000") is None
    with pytest.raises(ConfigError, match=r"\+31201234567 is already a number of account 'acme'"):
        store.add_number(beta.id, "+31 20 1234567")
    with pytest.raises(ConfigError, match="is not a phone number"):
        store.add_number(acme.id, "reception")
    with pytest.raises(ConfigError, match="trunk 'nope' does not exist"):
        store.add_number(acme.id, "0201234568", trunk="nope")
    assert store.numbers(beta.id) == []


def test_deleting_a_number_removes_it_from_the_numberplans(store: Store, office: Account) -> None:
    assert store.delete_number(office.id, "0201234567") == 3
    assert store.schema_config(office.id, 1).entries == ()
    with pytest.raises(ConfigError, match=r"\+31201234567 is not a number of account 'acme'"):
        store.delete_number(office.id, DID)


def test_personal_numbers(store: Store, acme: Account) -> None:
    alice = store.user_by_extension(acme.id, "201")
    mobile = store.set_personal_number(acme.id, "201", "06 12345678")
    assert (mobile.number, mobile.user_id) == ("+31612345678", alice.id)
    assert store.number_owner("+31612345678").user_id == alice.id
    existing = store.add_number(acme.id, "0201234568")
    assert store.set_personal_number(acme.id, "201", "0201234568").id == existing.id  # links the DID
    assert [n.number for n in store.personal_numbers(alice.id)] == ["+31201234568", "+31612345678"]
    with pytest.raises(ConfigError, match=r"\+31612345678 is already the personal number of user 201"):
        store.set_personal_number(acme.id, "202", "+31612345678")
    unlinked = store.remove_personal_number(acme.id, "201", "+31612345678")
    assert unlinked.user_id is None and store.number_owner("+31612345678") == unlinked  # the account keeps it
    with pytest.raises(ConfigError, match="is not a personal number of user 201"):
        store.remove_personal_number(acme.id, "201", "+31612345678")
    with pytest.raises(ConfigError, match="user 299 does not exist in account 'acme'"):
        store.set_personal_number(acme.id, "299", "+31612345679")


def test_a_personal_number_is_in_no_numberplan_either_way(store: Store, office: Account, beta: Account) -> None:
    with pytest.raises(ConfigError, match=r"\+31201234567 is in numberplan 1 of schema 1 \(acme\); "
                                          "a personal number cannot be in a numberplan: unmap it first"):
        store.set_personal_number(office.id, "201", DID)
    store.set_personal_number(office.id, "202", "+31612345678")
    with pytest.raises(ConfigError, match=r"\+31612345678 is the personal number of user 202; "
                                          "a personal number cannot be in a numberplan"):
        store.map_number(office.id, 1, 1, "+31612345678", "201")
    store.add_number(beta.id, "+31301234567")
    with pytest.raises(ConfigError, match=r"\+31301234567 is already a number of account 'beta'"):
        store.set_personal_number(office.id, "201", "+31301234567")


# -- schemas ----------------------------------------------------------------------------------------


def test_schemas_are_numbered_in_order(store: Store, acme: Account) -> None:
    sales = store.add_schema(acme.id, "sales")
    support = store.add_schema(acme.id, "support")
    assert [(s.number, s.name) for s in store.schemas(acme.id)] == [(1, "acme"), (2, "sales"), (3, "support")]
    assert store.rename_schema(acme.id, 2, "Sales NL") == NumberplanSchema(sales.id, acme.id, 2, "Sales NL")
    with pytest.raises(ConfigError, match="schema 3 of account 'acme' is already called 'SUPPORT'"):
        store.add_schema(acme.id, "SUPPORT")
    with pytest.raises(ConfigError, match="schema name must not be empty"):
        store.add_schema(acme.id, "  ")
    store.delete_schema(acme.id, support.number)
    assert store.add_schema(acme.id, "support").number == 3


def test_schema_1_can_be_neither_renamed_nor_deleted(store: Store, acme: Account) -> None:
    with pytest.raises(ConfigError, match="schema 1 is the account's main schema and cannot be deleted"):
        store.delete_schema(acme.id, 1)
    with pytest.raises(ConfigError, match="schema 1 is the account's main schema: it keeps the account's name"):
        store.rename_schema(acme.id, 1, "main")
    with pytest.raises(ConfigError, match="schema 7 does not exist in account 'acme'"):
        store.delete_schema(acme.id, 7)


def test_deleting_a_schema_deletes_everything_in_it(store: Store, acme: Account) -> None:
    store.add_schema(acme.id, "sales")
    store.add_number(acme.id, DID)
    store.add_numberplan(acme.id, 2, 1, "Open")
    store.add_numberplan(acme.id, 2, 2, "Closed")
    store.map_number(acme.id, 2, 1, DID, "201")
    store.add_day_entry(acme.id, 2, 1, {0}, 480, 1080)
    store.add_holiday(acme.id, 2, 2, local(2026, 12, 24), local(2026, 12, 27), "Christmas")
    store.set_override(acme.id, 2, 2)
    gone = store.delete_schema(acme.id, 2)
    assert (len(gone.plans), len(gone.entries), len(gone.schedule), len(gone.holidays), gone.override) == (
        2, 1, 1, 1, 2)
    conn = store._conn
    for table in ("numberplans", "numberplan_entries", "schedule_entries", "holidays", "numberplan_overrides"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert store.schema_of_did(DID) is None and store.number_owner(DID) is not None  # the DID stays


# -- numberplans --------------------------------------------------------------------------------------


def test_numberplan_numbers_are_1_to_99(store: Store, acme: Account) -> None:
    for bad in (0, 100):
        with pytest.raises(ConfigError, match=f"numberplan number must be 1-99, not {bad}"):
            store.add_numberplan(acme.id, 1, bad, "Day")
    assert store.add_numberplan(acme.id, 1, 99, "Last") == Numberplan(99, "Last")
    with pytest.raises(ConfigError, match=r"numberplan 99 already exists in schema 1 \(acme\)"):
        store.add_numberplan(acme.id, 1, 99, "Again")
    assert store.rename_numberplan(acme.id, 1, 99, "Final") == Numberplan(99, "Final")
    assert store.numberplans(acme.id, 1) == [Numberplan(99, "Final")]


def test_map_number_checks_did_and_extension(store: Store, acme: Account, beta: Account) -> None:
    store.add_numberplan(acme.id, 1, 1, "Day")
    with pytest.raises(ConfigError, match=r"\+31201234567 is not a number of account 'acme' "
                                          r"\(add it with: softswitch number add\)"):
        store.map_number(acme.id, 1, 1, DID, "201")
    store.add_number(acme.id, DID)
    with pytest.raises(ConfigError, match="extension 2011 has 4 digits; account 'acme' uses 3"):
        store.map_number(acme.id, 1, 1, DID, "2011")
    with pytest.raises(ConfigError, match="extension 299 does not exist in account 'acme' "
                                          r"\(numberplans route to existing extensions; so far those are user"):
        store.map_number(acme.id, 1, 1, DID, "299")
    with pytest.raises(ConfigError, match="numberplan 2 does not exist in schema 1"):
        store.map_number(acme.id, 1, 2, DID, "201")
    assert store.map_number(acme.id, 1, 1, "020-1234567", "201", "Sales: ") == PlanEntry(1, DID, "201", "Sales: ")
    assert store.map_number(acme.id, 1, 1, DID, "202") == PlanEntry(1, DID, "202", "")  # replaces
    store.add_number(beta.id, "+31301234567")
    with pytest.raises(ConfigError, match=r"\+31301234567 is not a number of account 'acme'"):
        store.map_number(acme.id, 1, 1, "+31301234567", "201")


def test_a_did_belongs_to_one_schema(store: Store, office: Account) -> None:
    store.add_schema(office.id, "sales")
    store.add_numberplan(office.id, 2, 1, "Open")
    with pytest.raises(ConfigError, match=r"\+31201234567 is routed by schema 1 \(acme\); "
                                          "a number belongs to one schema only"):
        store.map_number(office.id, 2, 1, DID, "201")
    assert store.schema_of_did(DID).number == 1
    for plan in (1, 2, 3):
        store.unmap_number(office.id, 1, plan, DID)
    assert store.map_number(office.id, 2, 1, DID, "201").plan == 1  # free again
    assert store.schema_of_did(DID).number == 2


def test_unmap_number(store: Store, office: Account) -> None:
    assert store.unmap_number(office.id, 1, 2, "0201234567") == PlanEntry(2, DID, "202", "")
    with pytest.raises(ConfigError, match=r"\+31201234567 is not in numberplan 2 of schema 1"):
        store.unmap_number(office.id, 1, 2, DID)


def test_copy_numberplan_overwrites_or_creates_the_target(store: Store, office: Account) -> None:
    store.add_number(office.id, "+31201234568")
    store.map_number(office.id, 1, 1, "+31201234568", "203", "Support: ")
    copied = store.copy_numberplan(office.id, 1, 1, 3)
    assert copied == Numberplan(3, "Christmas")  # existing target keeps its name
    config = store.schema_config(office.id, 1)
    assert config.plan_entries(3) == [PlanEntry(3, DID, "201"), PlanEntry(3, "+31201234568", "203", "Support: ")]
    assert store.copy_numberplan(office.id, 1, 2, 10) == Numberplan(10, "Night (copy)")
    assert store.copy_numberplan(office.id, 1, 2, 11, name="Spare") == Numberplan(11, "Spare")
    assert store.schema_config(office.id, 1).plan_entries(10) == [PlanEntry(10, DID, "202")]
    with pytest.raises(ConfigError, match="cannot copy numberplan 2 onto itself"):
        store.copy_numberplan(office.id, 1, 2, 2)
    with pytest.raises(ConfigError, match="numberplan 50 does not exist"):
        store.copy_numberplan(office.id, 1, 50, 51)
    with pytest.raises(ConfigError, match="numberplan number must be 1-99, not 100"):
        store.copy_numberplan(office.id, 1, 1, 100)


def test_a_numberplan_in_use_cannot_be_deleted(store: Store, office: Account) -> None:
    store.add_holiday(office.id, 1, 2, local(2026, 12, 24), local(2026, 12, 27), "Christmas")
    store.set_override(office.id, 1, 2)
    with pytest.raises(ConfigError) as refused:
        store.delete_numberplan(office.id, 1, 2)
    assert str(refused.value) == (
        "numberplan 2 of schema 1 is used by schedule entry 2 (mon-thu 18:00-08:00), schedule entry 3 "
        "(fri 18:00 → mon 08:00), holiday 1 (Christmas), the manual override; delete or change those first")
    assert store.delete_numberplan(office.id, 1, 3) == Numberplan(3, "Christmas")
    assert [p.number for p in store.numberplans(office.id, 1)] == [1, 2]
    assert store.schema_config(office.id, 1).plan_entries(3) == []


# -- time schedule ------------------------------------------------------------------------------------


def test_schedule_entries_round_trip(store: Store, office: Account) -> None:
    config = store.schema_config(office.id, 1)
    assert [e.describe() for e in config.schedule] == [
        "mon-fri 08:00-18:00", "mon-thu 18:00-08:00", "fri 18:00 → mon 08:00"]
    assert config.schedule[0] == ScheduleEntry(1, 1, "day", 480, 1080, frozenset(range(5)))


def test_overlapping_entries_are_refused_naming_both(store: Store, office: Account) -> None:
    with pytest.raises(ConfigError) as refused:
        store.add_day_entry(office.id, 1, 3, {2}, parse_clock("12:00"), parse_clock("13:00"))
    assert str(refused.value) == (
        "schedule entry wed 12:00-13:00 (numberplan 3) overlaps entry 1: mon-fri 08:00-18:00 (numberplan 1), "
        "both cover wed 12:00")
    with pytest.raises(ConfigError, match=r"overlaps entry 3: fri 18:00 → mon 08:00 \(numberplan 2\), "
                                          "both cover sun 00:00"):
        store.add_period_entry(office.id, 1, 3, parse_week_time("sun 00:00"), parse_week_time("sun 06:00"))
    assert len(store.schema_config(office.id, 1).schedule) == 3


def test_schedule_entry_needs_an_existing_plan_and_valid_times(store: Store, acme: Account) -> None:
    with pytest.raises(ConfigError, match=r"numberplan 1 does not exist in schema 1 \(acme\)"):
        store.add_day_entry(acme.id, 1, 1, {0}, 480, 1080)
    store.add_numberplan(acme.id, 1, 1, "Day")
    with pytest.raises(ConfigError, match="starts and ends at 08:00"):
        store.add_day_entry(acme.id, 1, 1, {0}, 480, 480)
    with pytest.raises(ConfigError, match="numberplan number must be 1-99, not 100"):
        store.add_period_entry(acme.id, 1, 100, 0, 60)


def test_delete_schedule_entry(store: Store, office: Account, beta: Account) -> None:
    assert store.delete_schedule_entry(office.id, 3).describe() == "fri 18:00 → mon 08:00"
    with pytest.raises(ConfigError, match="schedule entry 3 does not exist in account 'acme'"):
        store.delete_schedule_entry(office.id, 3)
    with pytest.raises(ConfigError, match="schedule entry 1 does not exist in account 'beta'"):
        store.delete_schedule_entry(beta.id, 1)


# -- holidays and override -----------------------------------------------------------------------------


def test_holidays(store: Store, office: Account) -> None:
    christmas = store.add_holiday(office.id, 1, 3, local(2026, 12, 24, 18), local(2026, 12, 27, 8), " Christmas ")
    assert christmas == Holiday(christmas.id, 3, local(2026, 12, 24, 18).timestamp(),
                                local(2026, 12, 27, 8).timestamp(), "Christmas")
    with pytest.raises(ConfigError, match=r"the holiday ends \(2026-12-20 08:00\) before it starts "
                                          r"\(2026-12-24 18:00\)"):
        store.add_holiday(office.id, 1, 3, local(2026, 12, 24, 18), local(2026, 12, 20, 8))
    with pytest.raises(ConfigError, match="the holiday ends"):
        store.add_holiday(office.id, 1, 3, local(2026, 12, 24, 18), local(2026, 12, 24, 18))
    with pytest.raises(ConfigError, match="the start of a holiday needs a time zone"):
        store.add_holiday(office.id, 1, 3, dt.datetime(2026, 12, 24), local(2026, 12, 27))
    with pytest.raises(ConfigError, match="numberplan 4 does not exist"):
        store.add_holiday(office.id, 1, 4, local(2026, 12, 24), local(2026, 12, 27))
    assert store.delete_holiday(office.id, christmas.id) == christmas
    with pytest.raises(ConfigError, match=f"holiday {christmas.id} does not exist in account 'acme'"):
        store.delete_holiday(office.id, christmas.id)


def test_purge_removes_only_expired_holidays(store: Store, office: Account) -> None:
    store.add_holiday(office.id, 1, 3, local(2025, 12, 24), local(2025, 12, 27), "last year")
    store.add_holiday(office.id, 1, 3, local(2026, 12, 24), local(2026, 12, 27), "this year")
    assert store.purge_holidays(office.id, local(2026, 1, 1).timestamp()) == 1
    assert [h.description for h in store.schema_config(office.id, 1).holidays] == ["this year"]
    assert store.purge_holidays(office.id, local(2026, 12, 27).timestamp()) == 1  # ends_at <= now


def test_override(store: Store, office: Account) -> None:
    assert store.clear_override(office.id, 1) is None
    store.set_override(office.id, 1, 3)
    store.set_override(office.id, 1, 2)
    assert store.schema_config(office.id, 1).override == 2
    assert store.clear_override(office.id, 1) == 2
    assert store.schema_config(office.id, 1).override is None
    with pytest.raises(ConfigError, match="numberplan 9 does not exist"):
        store.set_override(office.id, 1, 9)


# -- what the daemon and the 915 IVR read -------------------------------------------------------------


def test_the_evaluator_on_stored_configuration(store: Store, office: Account) -> None:
    store.add_holiday(office.id, 1, 3, local(2026, 12, 24, 18), local(2026, 12, 27, 8), "Christmas")
    config = store.schema_config(office.id, 1)
    assert active_plan(config, local(2026, 12, 23, 10), TZ).plan == 1
    assert active_plan(config, local(2026, 12, 23, 20), TZ).plan == 2
    assert active_plan(config, local(2026, 12, 25, 10), TZ).reason == "holiday"
    routing = store.account_routing(office.id)
    assert (routing.timezone, routing.country, [s.schema.number for s in routing.schemas]) == (
        "Europe/Amsterdam", "NL", [1])
    assert route_did(routing, DID, local(2026, 12, 23, 20)).extension == "202"
    store.set_override(office.id, 1, 1)
    assert route_did(store.account_routing(office.id), DID, local(2026, 12, 25, 10)).extension == "201"


def test_schema_config_of_an_unknown_schema(store: Store, acme: Account) -> None:
    with pytest.raises(ConfigError, match="schema 2 does not exist in account 'acme'"):
        store.schema_config(acme.id, 2)
    assert store.schema_config(acme.id, 1).schema.name == "acme"


def test_foreign_keys_guard_plans_even_without_the_store_checks(store: Store, office: Account) -> None:
    plan_id = store._conn.execute("SELECT id FROM numberplans WHERE number = 2").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):
        store._conn.execute("DELETE FROM numberplans WHERE id = ?", (plan_id,))
