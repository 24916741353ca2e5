"""config.store_reach (through config.store.Store) and schema migration 6 on temporary files."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlite_utils
from zoneinfo import ZoneInfo

from config import reach, schema
from config.reach import ClassMapping, DeviceOverride, ForwardOverride, ManualStatus, Profile, RingGroup
from config.schema_reach import REACH_TABLES
from config.store import ConfigError, Store

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=AMS)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "softswitch.db")


@pytest.fixture
def store():
    s = Store(":memory:")
    s.add_account("acme", "acme.example.com", 3)
    for name in ("acme-201", "acme-202", "acme-203"):
        s.add_channel("acme", name)
    s.add_user("acme", "201", "Alice de Vries", "5821", ["acme-201", "acme-202"])
    s.add_user("acme", "202", "Bob", "5822", ["acme-203"])
    yield s
    s.close()


def config_of(store: Store, extension: str = "201") -> reach.ReachConfig:
    return store.reach_config(store.reach_user("acme", extension)[1].id)


# -- schema ---------------------------------------------------------------------------------


def test_migrating_a_version_3_database_keeps_its_data(db_path: str) -> None:
    db = sqlite_utils.Database(db_path)
    schema.migrate(db, schema.MIGRATIONS[:3])
    db.execute("INSERT INTO accounts (name, domain, digits, created_at) VALUES ('acme', 'acme.example.com', 3, 0)")
    db.execute("INSERT INTO users (account_id, extension, name, pin, created_at) "
               "VALUES (1, '201', 'Alice', '5821', 0)")
    db.execute("INSERT INTO extensions (account_id, number, type, target_id) VALUES (1, '201', 'user', 1)")
    db.conn.commit()
    db.close()
    with Store(db_path) as store:
        assert store.schema_version() == schema.SCHEMA_VERSION
        account, user = store.reach_user("acme", "201")
        assert (account.name, user.name) == ("acme", "Alice")
        assert store.reach_config(user.id) == reach.ReachConfig()  # nothing yet: the built-in behaviour
        store.add_reach_status("acme", "201", "lunch")
        assert config_of(store).statuses == ("available", "lunch")


def test_every_reach_table_bumps_the_config_version(store: Store) -> None:
    triggers = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for table in REACH_TABLES:
        for event in ("insert", "update", "delete"):
            assert f"{table}_{event}_config_version" in triggers
    before = store.config_version()
    store.set_barring("acme", "201", bar=["premium"])
    assert store.config_version() > before


def test_a_refused_change_writes_nothing(store: Store) -> None:
    store.add_reach_profile("acme", "201", "meeting")
    before = store.config_version()
    with pytest.raises(ConfigError):
        store.set_reach_profile("acme", "201", "meeting", {"forward_busy": "ext:202", "ring": "acme-999"})
    assert store.config_version() == before
    assert config_of(store).profile("meeting") == Profile("meeting")


def test_reach_data_goes_with_the_user(store: Store) -> None:
    store.add_reach_profile("acme", "201", "meeting")
    store.set_caller_id_slot("acme", "201", "2", "+31201234502")
    user = store.reach_user("acme", "201")[1]
    store.db.execute("DELETE FROM users WHERE id = ?", [user.id])
    for table in REACH_TABLES:
        assert store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table


# -- profiles ---------------------------------------------------------------------------------------


def test_profiles_set_inherit_and_list(store: Store) -> None:
    store.set_reach_profile("acme", "201", "default", {
        "ring": "acme-201:20;acme-202", "forward-noanswer": "ext:voicemail",
        "noanswer-timeout": 25, "caller_id": "+31201234567", "dnd": False, "call_waiting": True})
    added = store.add_reach_profile("acme", "201", "meeting", "red")
    assert added == Profile("meeting", "red")
    updated = store.set_reach_profile("acme", "201", "meeting", {
        "forward_always": "ext:voicemail", "forward_busy": reach.NO_FORWARD, "forward_caller_id": "called",
        "colour": "#00ff00"})
    assert updated == Profile("meeting", "#00ff00", forward_always="ext:voicemail", forward_busy="none",
                              forward_caller_id="called")
    config = config_of(store)
    assert config.default == Profile("default", ring=(RingGroup(("acme-201",), 20), RingGroup(("acme-202",))),
                                     forward_noanswer="ext:voicemail", noanswer_timeout=25,
                                     caller_id="+31201234567", dnd=False, call_waiting=True)
    assert config.profiles == (updated,)
    reset = store.set_reach_profile("acme", "201", "meeting", {}, inherit=["forward-busy", "forward_caller_id"])
    assert (reset.forward_busy, reset.forward_caller_id) == (None, None)
    assert store.set_reach_profile("acme", "201", "default", {}, inherit=["ring"]).ring is None


def test_profile_names_are_unique_per_user_case_insensitively(store: Store) -> None:
    store.add_reach_profile("acme", "201", "Meeting")
    with pytest.raises(ConfigError, match="user 201 already has a profile 'Meeting'"):
        store.add_reach_profile("acme", "201", "meeting")
    with pytest.raises(ConfigError, match="user 201 already has a profile 'default'"):
        store.add_reach_profile("acme", "201", "Default")
    store.add_reach_profile("acme", "202", "meeting")  # another user may


@pytest.mark.parametrize("values, message", [
    ({"ring": "acme-999"}, "device 'acme-999' is not a channel of account 'acme'"),
    ({"ring": "acme-201:3"}, "timeout 3 s is outside 5..300 s"),
    ({"noanswer_timeout": 301}, "timeout 301 s is outside 5..300 s"),
    ({"noanswer_timeout": "20"}, "ring time '20' is not a whole number of seconds"),
    ({"forward_busy": "voicemail"}, "destination 'voicemail' is invalid"),
    ({"forward_busy": "ext:2021"}, "destination ext:2021: account 'acme' uses 3-digit extensions"),
    ({"forward_busy": "ext:209"}, "destination ext:209: extension 209 does not exist"),
    ({"forward_busy": "ext:201"}, "destination ext:201 is user 201 itself"),
    ({"caller_id": "0201234567"}, "caller ID '0201234567' is invalid"),
    ({"forward_caller_id": "dialled"}, "forward caller ID 'dialled' is invalid: use calling or called"),
    ({"colour": "Red!"}, "colour 'Red!' is invalid"),
    ({"volume": 3}, "unknown setting 'volume'"),
    ({}, "nothing to change: give at least one setting"),
])
def test_profile_setting_errors(store: Store, values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        store.set_reach_profile("acme", "201", "default", values)


def test_profile_errors(store: Store) -> None:
    with pytest.raises(ConfigError, match="user 201 has no profile 'meeting'"):
        store.set_reach_profile("acme", "201", "meeting", {"dnd": True})
    with pytest.raises(ConfigError, match="setting forward-busy is both set and inherited"):
        store.set_reach_profile("acme", "201", "default", {"forward-busy": "ext:202"}, inherit=["forward_busy"])
    with pytest.raises(ConfigError, match="colour is not inherited"):
        store.set_reach_profile("acme", "201", "default", {}, inherit=["colour"])
    with pytest.raises(ConfigError, match="user 209 does not exist in account 'acme'"):
        store.add_reach_profile("acme", "209", "meeting")
    with pytest.raises(ConfigError, match="account 'beta' does not exist"):
        store.add_reach_profile("beta", "201", "meeting")
    with pytest.raises(ConfigError, match="the default profile cannot be deleted"):
        store.delete_reach_profile("acme", "201", "default")


def test_deleting_a_profile_removes_its_class_mappings(store: Store) -> None:
    store.add_reach_profile("acme", "201", "meeting")
    store.add_reach_status("acme", "201", "in a meeting")
    store.map_reach_class("acme", "201", "in a meeting", "any", "meeting")
    store.map_reach_class("acme", "201", "available", "internal", "meeting")
    assert store.delete_reach_profile("acme", "201", "MEETING") == 2
    assert config_of(store).class_map == ()
    with pytest.raises(ConfigError, match="user 201 has no profile 'meeting'"):
        store.delete_reach_profile("acme", "201", "meeting")


# -- statuses, schedule, manual status, classes -------------------------------------------------------


def test_statuses_and_schedule(store: Store) -> None:
    store.add_reach_status("acme", "201", "in a meeting")
    store.add_reach_status("acme", "201", "weekend")
    meeting = store.add_reach_schedule("acme", "201", "in a meeting", "09:00", "12:00", days="mon")
    weekend = store.add_reach_schedule("acme", "201", "weekend", "fri 18:00", "mon 08:00")
    night = store.add_reach_schedule("acme", "201", "weekend", "22:00", "06:00", days="mon-thu")
    assert (meeting.label, weekend.label, night.label) == (
        "mon 09:00-12:00", "fri 18:00 - mon 08:00", "mon-thu 22:00-06:00")
    config = config_of(store)
    assert config.statuses == ("available", "in a meeting", "weekend")
    assert config.schedule == (meeting, weekend, night)
    store.delete_reach_schedule("acme", "201", night.id)
    assert config_of(store).schedule == (meeting, weekend)
    store.delete_reach_status("acme", "201", "weekend")
    assert config_of(store).schedule == (meeting,)
    assert config_of(store).statuses == ("available", "in a meeting")


@pytest.mark.parametrize("start, end, days, message", [
    ("11:00", "13:00", "mon", "schedule entry mon 11:00-13:00 overlaps entry 1 (mon 09:00-12:00, status 'lunch')"),
    ("sun 23:00", "mon 09:30", None, "schedule entry sun 23:00 - mon 09:30 overlaps entry 1"),
    ("10:00", "10:00", "tue", "schedule entry from 10:00 to 10:00 is empty"),
    ("9:00", "25:00", "tue", "time '25:00' is not HH:MM"),
    ("09:00", "10:00", "mo", "unknown day 'mo'"),
    ("friday", "mon 08:00", None, "week time 'friday' is not 'DAY HH:MM'"),
])
def test_schedule_errors(store: Store, start: str, end: str, days: str | None, message: str) -> None:
    store.add_reach_status("acme", "201", "lunch")
    store.add_reach_schedule("acme", "201", "lunch", "09:00", "12:00", days="mon")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.add_reach_schedule("acme", "201", "lunch", start, end, days=days)


def test_status_errors(store: Store) -> None:
    with pytest.raises(ConfigError, match="user 201 has no status 'lunch'"):
        store.add_reach_schedule("acme", "201", "lunch", "12:00", "13:00", days="mon")
    with pytest.raises(ConfigError, match="user 201 already has a status 'available'"):
        store.add_reach_status("acme", "201", "Available")
    with pytest.raises(ConfigError, match="status 'available' is built in and cannot be deleted"):
        store.delete_reach_status("acme", "201", "available")
    with pytest.raises(ConfigError, match="user 201 has no schedule entry 7"):
        store.delete_reach_schedule("acme", "201", 7)
    with pytest.raises(ConfigError, match="status name '' is invalid"):
        store.add_reach_status("acme", "201", "")


def test_a_schedule_entry_of_another_user_cannot_be_deleted(store: Store) -> None:
    store.add_reach_status("acme", "202", "lunch")
    entry = store.add_reach_schedule("acme", "202", "lunch", "12:00", "13:00", days="mon-fri")
    with pytest.raises(ConfigError, match=f"user 201 has no schedule entry {entry.id}"):
        store.delete_reach_schedule("acme", "201", entry.id)


def test_manual_status(store: Store) -> None:
    store.add_reach_status("acme", "201", "out of office")
    until = datetime(2026, 12, 1, 17, 0, tzinfo=AMS)
    store.set_manual_status("acme", "201", "out of office", until, now=NOW)
    assert config_of(store).manual == ManualStatus("out of office", until)
    store.set_manual_status("acme", "201", "available")  # replaces it; no end time
    assert config_of(store).manual == ManualStatus("available", None)
    assert store.clear_manual_status("acme", "201") is True
    assert store.clear_manual_status("acme", "201") is False
    with pytest.raises(ConfigError, match="end time 2026-11-30 08:00 is in the past"):
        store.set_manual_status("acme", "201", "available", datetime(2026, 11, 30, 8, 0, tzinfo=AMS), now=NOW)
    with pytest.raises(ConfigError, match="user 201 has no status 'gone'"):
        store.set_manual_status("acme", "201", "gone")


def test_class_mapping(store: Store) -> None:
    store.add_reach_profile("acme", "201", "sales")
    store.map_reach_class("acme", "201", "available", "did:+31201234500", "sales")
    store.map_reach_class("acme", "201", "available", "anonymous", "default")
    store.map_reach_class("acme", "201", "available", "anonymous", "sales")  # replaces
    assert config_of(store).class_map == (ClassMapping("available", "anonymous", "sales"),
                                          ClassMapping("available", "did:+31201234500", "sales"))
    store.unmap_reach_class("acme", "201", "available", "anonymous")
    with pytest.raises(ConfigError, match="status 'available' has no mapping for class 'anonymous'"):
        store.unmap_reach_class("acme", "201", "available", "anonymous")
    with pytest.raises(ConfigError, match="call class 'vip' is invalid"):
        store.map_reach_class("acme", "201", "available", "vip", "sales")
    with pytest.raises(ConfigError, match="user 201 has no profile 'support'"):
        store.map_reach_class("acme", "201", "available", "external", "support")


# -- overrides, caller IDs, barring, clear ---------------------------------------------------------


def test_forward_override(store: Store) -> None:
    store.set_forward_override("acme", "201", "busy", "0612345678")
    assert config_of(store).forward_override == ForwardOverride("busy", "0612345678")
    store.set_forward_override("acme", "201", "always", "ext:202")
    assert config_of(store).forward_override == ForwardOverride("always", "ext:202")
    assert store.clear_forward_override("acme", "201") is True
    assert config_of(store).forward_override is None
    with pytest.raises(ConfigError, match="forward kind 'noanswer' is invalid"):
        store.set_forward_override("acme", "201", "noanswer", "ext:202")
    with pytest.raises(ConfigError, match="destination 'mobile' is invalid"):
        store.set_forward_override("acme", "201", "always", "mobile")


def test_device_override(store: Store) -> None:
    until = datetime(2026, 11, 30, 17, 0, tzinfo=AMS)
    store.set_device_override("acme", "201", ["acme-202"], until, now=NOW)
    assert config_of(store).device_override == DeviceOverride(("acme-202",), until)
    assert store.clear_device_override("acme", "201") is True
    assert store.clear_device_override("acme", "201") is False
    with pytest.raises(ConfigError, match="device 'acme-999' is not a channel of account 'acme'"):
        store.set_device_override("acme", "201", ["acme-201", "acme-999"])
    with pytest.raises(ConfigError, match="device 'acme-201' is listed twice"):
        store.set_device_override("acme", "201", ["acme-201", "acme-201"])
    with pytest.raises(ConfigError, match="name at least one device"):
        store.set_device_override("acme", "201", [])
    with pytest.raises(ConfigError, match="is in the past"):
        store.set_device_override("acme", "201", ["acme-201"], datetime(2020, 1, 1, tzinfo=timezone.utc))


def test_dynamic_caller_ids(store: Store) -> None:
    store.set_caller_id_slot("acme", "201", "2", "+31201234502")
    store.set_caller_id_slot("acme", "201", "0", "+31201234500")
    assert config_of(store).caller_ids == {"0": "+31201234500", "2": "+31201234502"}
    store.remove_caller_id_slot("acme", "201", "2")
    assert config_of(store).caller_ids == {"0": "+31201234500"}
    with pytest.raises(ConfigError, match=r"slot '1' is invalid: use 2-9 or 0 \(#31# is reserved"):
        store.set_caller_id_slot("acme", "201", "1", "+31201234501")
    with pytest.raises(ConfigError, match="slot '10' is invalid"):
        store.set_caller_id_slot("acme", "201", "10", "+31201234501")
    with pytest.raises(ConfigError, match="caller ID '0201234503' is not an E.164 number"):
        store.set_caller_id_slot("acme", "201", "3", "0201234503")
    with pytest.raises(ConfigError, match="user 201 has no dynamic caller ID in slot 2"):
        store.remove_caller_id_slot("acme", "201", "2")


def test_barring(store: Store) -> None:
    assert store.set_barring("acme", "201", bar=["premium", "international"]) == {"premium", "international"}
    assert store.set_barring("acme", "201", bar=["mobile"], allow=["premium"]) == {"international", "mobile"}
    assert config_of(store).barring == {"international", "mobile"}
    with pytest.raises(ConfigError, match="unknown barring category 'adult'"):
        store.set_barring("acme", "201", bar=["adult"])
    with pytest.raises(ConfigError, match="category 'mobile' is both barred and allowed"):
        store.set_barring("acme", "201", bar=["mobile"], allow=["mobile"])


def test_clear_reach_keeps_only_caller_ids_and_barring(store: Store) -> None:
    store.set_reach_profile("acme", "201", "default", {"dnd": True})
    store.add_reach_profile("acme", "201", "meeting")
    store.add_reach_status("acme", "201", "in a meeting")
    store.add_reach_schedule("acme", "201", "in a meeting", "09:00", "12:00", days="mon")
    store.map_reach_class("acme", "201", "in a meeting", "any", "meeting")
    store.set_manual_status("acme", "201", "in a meeting")
    store.set_forward_override("acme", "201", "always", "ext:202")
    store.set_device_override("acme", "201", ["acme-201"])
    store.set_caller_id_slot("acme", "201", "2", "+31201234502")
    store.set_barring("acme", "201", bar=["premium"])
    store.add_reach_profile("acme", "202", "meeting")
    store.clear_reach("acme", "201")
    assert config_of(store) == reach.ReachConfig(caller_ids={"2": "+31201234502"}, barring=frozenset({"premium"}))
    assert config_of(store, "202").profiles == (Profile("meeting"),)  # other users keep theirs
