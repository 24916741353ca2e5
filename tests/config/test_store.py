"""config.store.Store and config.schema on temporary database files."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from config import schema
from config.models import Binding, LiveCall
from config.store import ConfigError, Store, is_trivial_pin

NOW = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "softswitch.db")


@pytest.fixture
def store(db_path: str):
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def acme(store: Store):
    return store.add_account("acme", "acme.example.com", 3, language="en")


def write_csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "import.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- schema ---------------------------------------------------------------------------


def test_new_database_is_at_current_schema_version_in_wal_mode(store: Store, db_path: str) -> None:
    assert store.schema_version() == schema.SCHEMA_VERSION == len(schema.MIGRATIONS)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (v,) for v in range(1, schema.SCHEMA_VERSION + 1)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"accounts", "channels", "bindings", "users", "logins", "extensions", "cdrs",
            "live_calls"} <= tables


def test_reopening_and_migrating_again_changes_nothing(store: Store, db_path: str) -> None:
    store.add_account("acme", "acme.example.com", 3)
    assert schema.migrate(store.db) == 0
    again = Store(db_path)
    try:
        assert again.schema_version() == schema.SCHEMA_VERSION
        assert [a.name for a in again.list_accounts()] == ["acme"]
    finally:
        again.close()
    rows = store.db.execute("SELECT COUNT(*) FROM schema_version").fetchone()
    assert rows == (schema.SCHEMA_VERSION,)


def test_a_new_migration_is_applied_once_and_recorded(store: Store) -> None:
    def next_add_note(db: sqlite_utils.Database) -> None:
        db.execute("ALTER TABLE accounts ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    migrations = (*schema.MIGRATIONS, next_add_note)
    assert schema.migrate(store.db, migrations) == 1
    assert schema.migrate(store.db, migrations) == 0
    assert schema.current_version(store.db) == schema.SCHEMA_VERSION + 1
    assert "note" in store.db["accounts"].columns_dict


def test_a_failing_migration_leaves_the_database_unchanged(store: Store) -> None:
    def v2_broken(db: sqlite_utils.Database) -> None:
        db.execute("CREATE TABLE half_done (id INTEGER)")
        db.execute("THIS IS NOT SQL")

    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(store.db, (*schema.MIGRATIONS, v2_broken))
    assert schema.current_version(store.db) == schema.SCHEMA_VERSION
    assert not store.db["half_done"].exists()


def test_a_database_newer_than_the_code_is_refused(store: Store, db_path: str) -> None:
    store.db.execute("INSERT INTO schema_version (version, applied_at) VALUES (7, 0)")
    with pytest.raises(ConfigError, match="schema version 7 is newer"):
        Store(db_path)


def test_data_version_changes_after_a_write_from_another_connection(store: Store, db_path: str) -> None:
    before = store.data_version()
    other = Store(db_path)
    try:
        other.add_account("acme", "acme.example.com", 3)
    finally:
        other.close()
    assert store.data_version() != before
    assert store.account_by_domain("acme.example.com") is not None


# -- accounts -------------------------------------------------------------------------


def test_account_lookups(store: Store, acme) -> None:
    assert acme.digits == 3 and acme.language == "en" and acme.timezone == "Europe/Amsterdam"
    assert store.account("acme") == acme
    assert store.account_by_domain("ACME.example.com") == acme
    assert store.account_by_id(acme.id) == acme
    assert store.account_by_domain("other.example.com") is None
    assert store.account_by_id(999) is None
    assert store.list_accounts() == [acme]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("acme", "new.example.com", 3), "account 'acme' already exists"),
        (("beta", "acme.example.com", 4), "domain 'acme.example.com' is already used by account 'acme'"),
        (("beta", "beta.example.com", 6), "digits must be 3, 4 or 5, not 6"),
        (("beta", "beta.example.com", 3, "de"), "language must be one of nl, en, not 'de'"),
        (("beta", "bad domain", 3), "domain 'bad domain' is not a valid host name"),
        (("bad name!", "beta.example.com", 3), "account name 'bad name!' is invalid"),
    ],
)
def test_add_account_errors(store: Store, acme, args: tuple, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        store.add_account(*args)
    assert str(info.value).startswith(message)
    assert store.list_accounts() == [acme]


def test_unknown_time_zone_is_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        store.add_account("beta", "beta.example.com", 3, timezone="Mars/Olympus")


def test_missing_account(store: Store) -> None:
    with pytest.raises(ConfigError, match="^account 'acme' does not exist$"):
        store.account("acme")
    with pytest.raises(ConfigError, match="^account 'acme' does not exist$"):
        store.add_channel("acme", "acme-201")


# -- channels -------------------------------------------------------------------------


def test_add_channel_generates_a_strong_password(store: Store, acme) -> None:
    ch = store.add_channel("acme", "acme-201")
    assert len(ch.password) >= 16 and ch.password.isalnum() and ch.password.isascii()
    assert ch.max_bindings == 1
    assert store.channel_by_username(acme.id, "acme-201") == ch
    assert store.channel_by_id(ch.id) == ch
    assert store.channel_by_username(acme.id, "acme-999") is None
    assert store.add_channel("acme", "acme-202").password != ch.password


def test_add_channel_keeps_a_given_password(store: Store, acme) -> None:
    assert store.add_channel("acme", "acme-201", "s3cret-pw").password == "s3cret-pw"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("acme-201", None, "channel 'acme-201' already exists"),
        ("bad name", None, "channel name 'bad name' is invalid"),
        ("acme-202", "", "password must not be empty"),
        ("acme-202", "has space", "password must not contain spaces or control characters"),
    ],
)
def test_add_channel_errors(store: Store, acme, username: str, password: str | None, message: str) -> None:
    store.add_channel("acme", "acme-201")
    with pytest.raises(ConfigError) as info:
        store.add_channel("acme", username, password)
    assert str(info.value).startswith(message)
    assert [s.channel.username for s in store.list_channels("acme")] == ["acme-201"]


def test_channel_names_are_unique_across_accounts(store: Store, acme) -> None:
    store.add_account("beta", "beta.example.com", 4)
    store.add_channel("acme", "shared")
    with pytest.raises(ConfigError, match="channel 'shared' already exists"):
        store.add_channel("beta", "shared")


# -- users, extensions and logins -----------------------------------------------------


def test_add_user_adds_its_extension_and_logs_it_in(store: Store, acme) -> None:
    ch = store.add_channel("acme", "acme-201")
    user = store.add_user("acme", "201", "Alice", "4821", channels=["acme-201"])
    assert (user.extension, user.name, user.pin) == ("201", "Alice", "4821")
    assert store.user_by_extension(acme.id, "201") == user
    assert store.user_on_channel(ch.id) == user
    assert store.channels_of_user(user.id) == [ch]
    assert store.list_users("acme") == [user]
    ext = store.db.execute("SELECT type, target_id FROM extensions WHERE number = '201'").fetchone()
    assert ext == ("user", user.id)


@pytest.mark.parametrize(
    ("extension", "pin", "message"),
    [
        ("12", "4821", "extension 12 has 2 digits; account 'acme' uses 3"),
        ("2010", "4821", "extension 2010 has 4 digits; account 'acme' uses 3"),
        ("012", "4821", "extension 012 starts with 0"),
        ("2a1", "4821", "extension '2a1' is not a number"),
        ("901", "4821", "extension 901 is a service code"),
        ("915", "4821", "extension 915 is a service code"),
        ("920", "4821", "extension 920 is a service code"),
        ("201", "4821", "extension 201 already exists in account 'acme'"),
        ("202", "482", "PIN must be at least 4 digits"),
        ("202", "48a1", "PIN must contain digits only"),
        ("202", "1" * 13, "PIN must be at most 12 digits"),
    ],
)
def test_add_user_errors(store: Store, acme, extension: str, pin: str, message: str) -> None:
    store.add_user("acme", "201", "Alice", "4821")
    with pytest.raises(ConfigError) as info:
        store.add_user("acme", extension, "Bob", pin)
    assert str(info.value).startswith(message)
    assert [u.extension for u in store.list_users("acme")] == ["201"]


def test_empty_name_is_refused(store: Store, acme) -> None:
    with pytest.raises(ConfigError, match="name must not be empty"):
        store.add_user("acme", "201", "  ", "4821")


def test_service_codes_only_reserve_numbers_of_their_length(store: Store) -> None:
    store.add_account("big", "big.example.com", 4)
    assert store.add_user("big", "9010", "Nine", "4821").extension == "9010"
    with pytest.raises(ConfigError, match="extension 1233 is a service code"):
        store.add_user("big", "1233", "Voicemail", "4821")


def test_add_user_with_unknown_channel_writes_nothing(store: Store, acme) -> None:
    with pytest.raises(ConfigError, match="^channel 'nope' does not exist in account 'acme'$"):
        store.add_user("acme", "201", "Alice", "4821", channels=["nope"])
    assert store.list_users("acme") == []
    assert store.user_by_extension(acme.id, "201") is None
    # and the extension is free again
    assert store.add_user("acme", "201", "Alice", "4821").extension == "201"


def test_login_replaces_the_user_on_a_channel_but_not_elsewhere(store: Store, acme) -> None:
    a = store.add_channel("acme", "acme-a")
    b = store.add_channel("acme", "acme-b")
    alice = store.add_user("acme", "201", "Alice", "4821", channels=["acme-a"])
    bob = store.add_user("acme", "202", "Bob", "5832")
    store.login("acme", "202", "acme-a")
    assert store.user_on_channel(a.id) == bob
    assert store.channels_of_user(alice.id) == []
    store.login("acme", "202", "acme-b")
    assert [c.id for c in store.channels_of_user(bob.id)] == [a.id, b.id]
    store.logout("acme", "acme-a")
    assert store.user_on_channel(a.id) is None
    assert store.channels_of_user(bob.id) == [b]


def test_login_and_logout_errors(store: Store, acme) -> None:
    store.add_channel("acme", "acme-a")
    store.add_user("acme", "201", "Alice", "4821")
    with pytest.raises(ConfigError, match="^user 209 does not exist in account 'acme'$"):
        store.login("acme", "209", "acme-a")
    with pytest.raises(ConfigError, match="^channel 'acme-x' does not exist in account 'acme'$"):
        store.login("acme", "201", "acme-x")
    with pytest.raises(ConfigError, match="^no user is logged in on channel 'acme-a'$"):
        store.logout("acme", "acme-a")


def test_list_channels_shows_live_bindings_and_user(store: Store, acme) -> None:
    import time

    ch = store.add_channel("acme", "acme-201")
    store.add_channel("acme", "acme-202")
    store.add_user("acme", "201", "Alice", "4821", channels=["acme-201"])
    live = Binding(ch.id, "sip:201@192.168.1.5:5060", time.time() + 3600, "udp:203.0.113.9:41000",
                   user_agent="Yealink T46U", registered_at=time.time())
    store.save_binding(live)
    first, second = store.list_channels("acme")
    assert first.registered and first.bindings == (live,) and first.user.name == "Alice"
    assert not second.registered and second.user is None


# -- bindings -------------------------------------------------------------------------


def binding(channel_id: int, contact: str, registered_at: float, expires: float = 3600.0) -> Binding:
    return Binding(channel_id, contact, registered_at + expires, "udp:203.0.113.9:5060",
                   user_agent="phone", call_id=f"cid-{contact}", cseq=1, registered_at=registered_at)


def test_a_new_device_replaces_the_old_one_with_max_bindings_1(store: Store, acme) -> None:
    ch = store.add_channel("acme", "acme-201")
    old = binding(ch.id, "sip:201@10.0.0.1", NOW)
    new = binding(ch.id, "sip:201@10.0.0.2", NOW + 10)
    store.save_binding(old)
    assert store.bindings(ch.id, NOW) == [old]
    store.save_binding(new)
    assert store.bindings(ch.id, NOW + 10) == [new]


def test_refreshing_a_binding_updates_it_in_place(store: Store, acme) -> None:
    ch = store.add_channel("acme", "acme-201")
    store.save_binding(binding(ch.id, "sip:201@10.0.0.1", NOW))
    refreshed = Binding(ch.id, "sip:201@10.0.0.1", NOW + 4000, "udp:203.0.113.9:6000",
                        user_agent="phone", call_id="cid-x", cseq=2, registered_at=NOW + 400)
    store.save_binding(refreshed)
    assert store.bindings(ch.id, NOW) == [refreshed]


def test_max_bindings_above_1_keeps_the_newest(store: Store, acme) -> None:
    ch = store.add_channel("acme", "acme-201")
    store.db.execute("UPDATE channels SET max_bindings = 2 WHERE id = ?", (ch.id,))
    for i in range(3):
        store.save_binding(binding(ch.id, f"sip:201@10.0.0.{i}", NOW + i))
    contacts = {b.contact for b in store.bindings(ch.id, NOW)}
    assert contacts == {"sip:201@10.0.0.1", "sip:201@10.0.0.2"}


def test_bindings_expire_and_are_purged(store: Store, acme) -> None:
    a = store.add_channel("acme", "acme-a")
    b = store.add_channel("acme", "acme-b")
    store.save_binding(binding(a.id, "sip:a@10.0.0.1", NOW, expires=60))
    store.save_binding(binding(b.id, "sip:b@10.0.0.2", NOW, expires=3600))
    assert len(store.bindings(a.id, NOW + 59)) == 1
    assert store.bindings(a.id, NOW + 60) == []
    assert store.purge_expired_bindings(NOW + 60) == 1
    assert store.purge_expired_bindings(NOW + 60) == 0
    assert len(store.bindings(b.id, NOW + 60)) == 1


def test_remove_bindings(store: Store, acme) -> None:
    ch = store.add_channel("acme", "acme-a")
    store.db.execute("UPDATE channels SET max_bindings = 5 WHERE id = ?", (ch.id,))
    for i in range(3):
        store.save_binding(binding(ch.id, f"sip:a@10.0.0.{i}", NOW + i))
    store.remove_binding(ch.id, "sip:a@10.0.0.1")
    assert {b.contact for b in store.bindings(ch.id, NOW)} == {"sip:a@10.0.0.0", "sip:a@10.0.0.2"}
    store.remove_all_bindings(ch.id)
    assert store.bindings(ch.id, NOW) == []


def test_binding_for_unknown_channel_is_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="channel 42 does not exist"):
        store.save_binding(binding(42, "sip:x@10.0.0.1", NOW))


# -- CDRs and live calls --------------------------------------------------------------


def test_cdrs_newest_first_with_limit(store: Store, acme) -> None:
    ids = [
        store.add_cdr(acme.id, f"call-{i}", "201", "202", NOW + i, NOW + i + 2, NOW + i + 10,
                      "ANSWERED", hangup_by="caller", sip_status=200, caller_name="Alice",
                      answered_by="acme-202")
        for i in range(3)
    ]
    assert len(set(ids)) == 3
    cdrs = store.list_cdrs("acme", limit=2)
    assert [c.call_id for c in cdrs] == ["call-2", "call-1"]
    assert cdrs[0].duration == 10 and cdrs[0].billsec == 8 and cdrs[0].caller_name == "Alice"
    assert store.add_cdr(acme.id, "x", "201", "299", NOW, None, NOW + 5, "NO ANSWER") > 0
    with pytest.raises(ConfigError, match="limit must be between 1"):
        store.list_cdrs("acme", limit=0)


def test_live_calls_round_trip(store: Store, acme) -> None:
    call = LiveCall("abc", acme.id, "201", "202", "ringing", NOW, legs=("leg-a", "leg-b"))
    store.put_live_call(call)
    assert store.list_live_calls() == [call]
    answered = LiveCall("abc", acme.id, "201", "202", "answered", NOW, NOW + 3, ("leg-a", "leg-b"))
    store.put_live_call(answered)
    store.put_live_call(LiveCall("def", acme.id, "203", "204", "ringing", NOW + 1))
    assert store.list_live_calls()[0] == answered
    store.remove_live_call("abc")
    assert [c.call_id for c in store.list_live_calls()] == ["def"]
    store.clear_live_calls()
    assert store.list_live_calls() == []


# -- CSV import -----------------------------------------------------------------------


def test_import_csv_creates_channels_users_and_logins(store: Store, acme, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "channel,password,extension,name,pin\n"
        "acme-201,pw-201-secret,201,Alice,4821\n"
        "\n"
        "acme-202,,202,Bob,5832\n"
        "acme-door,,,,\n",
    )
    assert store.import_csv("acme", path) == 3
    statuses = {s.channel.username: s for s in store.list_channels("acme")}
    assert statuses["acme-201"].channel.password == "pw-201-secret"
    assert len(statuses["acme-202"].channel.password) >= 16
    assert statuses["acme-202"].user.name == "Bob"
    assert statuses["acme-door"].user is None
    assert [u.extension for u in store.list_users("acme")] == ["201", "202"]


def test_import_csv_is_all_or_nothing(store: Store, acme, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "channel,password,extension,name,pin\n"
        "acme-201,,201,Alice,4821\n"
        "acme-202,,12,Bob,5832\n",
    )
    with pytest.raises(ConfigError) as info:
        store.import_csv("acme", path)
    assert str(info.value) == f"{path} line 3: extension 12 has 2 digits; account 'acme' uses 3"
    assert store.list_channels("acme") == []
    assert store.list_users("acme") == []


def test_import_csv_reports_duplicates_within_the_file(store: Store, acme, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "channel,password,extension,name,pin\nacme-201,,201,Alice,4821\nacme-202,,201,Bob,5832\n",
    )
    with pytest.raises(ConfigError, match=r"line 3: extension 201 already exists in account 'acme'"):
        store.import_csv("acme", path)
    assert store.list_users("acme") == []


def test_import_csv_needs_the_header(store: Store, acme, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "acme-201,,201,Alice,4821\n")
    with pytest.raises(ConfigError, match="line 1: missing column"):
        store.import_csv("acme", path)
    with pytest.raises(ConfigError, match="is empty"):
        store.import_csv("acme", write_csv(tmp_path, ""))
    with pytest.raises(ConfigError, match="cannot read"):
        store.import_csv("acme", str(tmp_path / "missing.csv"))


# -- demo -----------------------------------------------------------------------------


def test_ensure_demo_on_empty_database_only(store: Store) -> None:
    rows = store.ensure_demo()
    assert [r[0] for r in rows] == ["demo-201", "demo-202", "demo-203", "demo-204"]
    assert [(r[2], r[3]) for r in rows] == [("201", "Alice"), ("202", "Bob"), ("203", "Carol"),
                                            ("204", "Dave")]
    account = store.account_by_domain("demo.softswitch.local")
    assert account.name == "demo" and account.digits == 3
    for status, (username, password, extension, _name) in zip(store.list_channels("demo"), rows):
        assert status.channel.username == username and status.channel.password == password
        assert len(password) >= 16
        assert status.user.extension == extension
        assert 4 <= len(status.user.pin) <= 6 and not is_trivial_pin(status.user.pin)
    assert store.ensure_demo() is None


def test_trivial_pins() -> None:
    for pin in ("0000", "1111", "1234", "4321", "01234", "987654", "1212", "123123"):
        assert is_trivial_pin(pin), pin
    for pin in ("4821", "5832", "90817", "1243"):
        assert not is_trivial_pin(pin), pin


def test_apply_bindings_is_one_batch_with_trimming(store: Store, acme) -> None:
    from config.models import Binding

    ch = store.add_channel("acme", "acme-201", "pw-201-long")
    other = store.add_channel("acme", "acme-202", "pw-202-long")
    b1 = Binding(ch.id, "sip:a@10.0.0.1", 2e9, "udp:1.2.3.4:5060", registered_at=1.0)
    b2 = Binding(ch.id, "sip:a@10.0.0.2", 2e9, "udp:1.2.3.4:5061", registered_at=2.0)
    b3 = Binding(other.id, "sip:b@10.0.0.3", 2e9, "udp:1.2.3.4:5062", registered_at=3.0)
    ghost = Binding(999_999, "sip:ghost@10.0.0.9", 2e9, "udp:1.2.3.4:5063", registered_at=4.0)
    store.apply_bindings([b1, b2, b3, ghost], [], [])
    # max_bindings = 1: the newer device replaced the older; unknown channels are skipped
    assert [b.contact for b in store.bindings(ch.id, 0)] == ["sip:a@10.0.0.2"]
    assert [b.contact for b in store.all_bindings(0)] == ["sip:a@10.0.0.2", "sip:b@10.0.0.3"]
    store.apply_bindings([], [(other.id, "sip:b@10.0.0.3")], [ch.id])
    assert store.all_bindings(0) == []


def test_apply_call_changes_writes_live_calls_and_cdrs_together(store: Store, acme) -> None:
    from config.models import Cdr, LiveCall

    live = LiveCall("c1", acme.id, "201", "202", "ringing", 10.0)
    store.apply_call_changes([live], [], [])
    assert [c.call_id for c in store.list_live_calls()] == ["c1"]
    cdr = Cdr(0, acme.id, "c1", "201", "202", 10.0, 11.0, 20.0, "ANSWERED", "caller", 200)
    store.apply_call_changes([], ["c1"], [cdr, Cdr(0, 424242, "c2", "1", "2", 0, None, 1, "FAILED")])
    assert store.list_live_calls() == []
    [row] = store.list_cdrs("acme")
    assert (row.call_id, row.disposition, row.billsec) == ("c1", "ANSWERED", 9.0)


def test_version_1_database_migrates_keeping_its_cdrs(db_path: str) -> None:
    """An installation from before CDR quality (schema 1) upgrades in place."""
    import sqlite_utils as su

    old = su.Database(db_path)
    assert schema.migrate(old, schema.MIGRATIONS[:1]) == 1
    old.execute("INSERT INTO accounts (name, domain, digits, language, timezone, created_at) "
                "VALUES ('acme', 'acme.example.com', 3, 'en', 'Europe/Amsterdam', 0)")
    old.execute("INSERT INTO cdrs (account_id, call_id, caller, callee, started_at, answered_at, ended_at, "
                "disposition, hangup_by, sip_status, caller_name, answered_by) "
                "VALUES (1, 'old', '201', '202', 1, 2, 3, 'ANSWERED', 'caller', 200, 'Alice', 'acme-202')")
    old.conn.commit()
    old.close()
    with Store(db_path) as store:
        assert store.schema_version() == schema.SCHEMA_VERSION
        [cdr] = store.list_cdrs("acme")
        assert (cdr.call_id, cdr.caller_name, cdr.quality) == ("old", "Alice", {})
