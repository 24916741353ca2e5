"""Schema migration 4, the feature policies of config.features and the FeatureStore methods."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from config import schema
from config.errors import ConfigError
from config.features import (
    ChannelOccupant, DeviceLogin, LoginNeedsConfirmation, ParkedCall, PrivacyGroup, PrivacyMember,
    PrivacyRights, check_link, check_new_pin, check_pin, may_pickup, may_retrieve_parked,
    park_slot_range, pickup_targets, plan_login, rights_over,
)
from config.models import Account, Channel, User
from config.store import Store

NOW = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "features.db")


@pytest.fixture
def store(db_path: str):
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture
def acme(store: Store) -> Account:
    """Account acme with channels acme-a..acme-d, Alice (201) on acme-a, Bob (202) on nothing."""
    store.add_account("acme", "acme.example.com", 3)
    for name in "abcd":
        store.add_channel("acme", f"acme-{name}")
    store.add_user("acme", "201", "Alice", "4821", channels=["acme-a"])
    store.add_user("acme", "202", "Bob", "5832")
    return store.account("acme")


def channels(store: Store, extension: str) -> list[tuple[str, bool]]:
    user = store.user("acme", extension)
    return [(d.channel, d.linked) for d in store.user_logins(user.id)]


def twinning(store: Store, *extensions: str) -> None:
    store.update_account("acme", twinning=True)
    for extension in extensions:
        store.update_user("acme", extension, twinning=True)


# -- migration 4 ------------------------------------------------------------------------


def test_migration_from_version_3_keeps_data_and_sets_defaults(db_path: str) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    schema.migrate(db, schema.MIGRATIONS[:3])
    conn.execute("INSERT INTO accounts (id, name, domain, digits, created_at) "
                 "VALUES (1, 'acme', 'acme.example.com', 3, 0)")
    conn.execute("INSERT INTO users (id, account_id, extension, name, pin, created_at) "
                 "VALUES (7, 1, '201', 'Alice', '4821', 0)")
    conn.close()

    with Store(db_path) as store:
        assert store.schema_version() == schema.SCHEMA_VERSION
        account = store.account("acme")
        assert account == Account(1, "acme", "acme.example.com", 3)
        assert (account.twinning, account.park_timeout, account.park_recall_limit, account.park_first_slot,
                account.park_slots, account.dtmf_prefix, account.dtmf_timeout, account.max_fixed_devices) == (
            False, 120, 3, 701, 99, "##", 3.0, 2)
        alice = store.user("acme", "201")
        assert alice == User(7, 1, "201", "Alice", "4821")
        assert (alice.twinning, alice.may_park, alice.may_time_config, alice.may_external,
                alice.may_international, alice.may_record_prompts, alice.may_play_recordings) == (
            False, False, False, True, False, False, False)
        assert isinstance(alice.may_external, bool) and isinstance(account.twinning, bool)
        assert store.list_privacy_groups("acme") == [] and store.list_parked("acme") == []


def test_configuration_tables_bump_config_version_but_parked_calls_do_not(store: Store, acme: Account) -> None:
    before = store.config_version()
    group = store.add_privacy_group("acme", "Reception")
    store.set_privacy_member("acme", "Reception", "201", pickup=True)
    store.update_account("acme", park_timeout=60)
    changed = store.config_version()
    assert changed >= before + 3
    store.put_parked(ParkedCall(acme.id, 701, "c1", "201", "0201234567", NOW, NOW + 120))
    store.remove_parked(acme.id, 701)
    assert store.config_version() == changed
    store.delete_privacy_group("acme", group.number)
    assert store.config_version() > changed


def test_privacy_rows_go_with_their_group_and_their_user(store: Store, acme: Account) -> None:
    store.add_privacy_group("acme", "Reception")
    store.set_privacy_member("acme", "Reception", "201", pickup=True)
    store.delete_privacy_group("acme", "reception")
    assert store.db.execute("SELECT COUNT(*) FROM privacy_group_members").fetchone() == (0,)


# -- PINs --------------------------------------------------------------------------------


def test_pin_rules() -> None:
    alice = User(1, 1, "201", "Alice", "4821")
    assert check_pin(alice, "4821") and not check_pin(alice, "4822") and not check_pin(alice, "")
    assert check_new_pin(" 90817 ") == "90817"
    for trivial in ("0000", "1111", "1234", "4321", "1212", "123123"):
        with pytest.raises(ConfigError, match=f"^PIN {trivial} is too easy to guess; choose another$"):
            check_new_pin(trivial)
    assert check_new_pin("0000", allow_reset=True) == "0000"
    with pytest.raises(ConfigError, match="^PIN 1234 is too easy"):
        check_new_pin("1234", allow_reset=True)
    with pytest.raises(ConfigError, match="^PIN must be at least 4 digits$"):
        check_new_pin("908")
    assert User(1, 1, "201", "A", "0000").must_change_pin and not alice.must_change_pin


def test_change_pin_refuses_trivial_pins_and_writes_nothing(store: Store, acme: Account) -> None:
    store.update_user("acme", "201", pin="0000")
    assert store.user("acme", "201").must_change_pin
    with pytest.raises(ConfigError, match="^PIN 0000 is too easy to guess"):
        store.change_pin(acme.id, "201", "0000")
    with pytest.raises(ConfigError, match="^PIN 9876 is too easy to guess"):
        store.change_pin("acme", "201", "9876")
    assert store.user("acme", "201").pin == "0000"
    changed = store.change_pin(acme.id, "201", "90817")
    assert changed.pin == "90817" == store.user("acme", "201").pin and not changed.must_change_pin
    with pytest.raises(ConfigError, match="^user 299 does not exist in account 'acme'$"):
        store.change_pin("acme", "299", "90817")
    with pytest.raises(ConfigError, match="^account 99 does not exist$"):
        store.change_pin(99, "201", "90817")


# -- login policy (pure) --------------------------------------------------------------------

ACME = Account(1, "acme", "acme.example.com", 3)
ACME_TWIN = Account(1, "acme", "acme.example.com", 3, twinning=True)
ALICE = User(1, 1, "201", "Alice", "4821")
ALICE_TWIN = User(1, 1, "201", "Alice", "4821", twinning=True)
A, B, C = (DeviceLogin(n, f"acme-{x}") for n, x in ((1, "a"), (2, "b"), (3, "c")))
A_LINKED = DeviceLogin(1, "acme-a", linked=True)
CH_C = Channel(3, 1, "acme-c", "pw")


def test_without_twinning_a_login_moves_the_user_but_keeps_linked_devices() -> None:
    plan = plan_login(ACME, ALICE, [A, B], CH_C, None)
    assert plan.log_out == (A, B) and not plan.needs_confirmation and not plan.already_here
    plan = plan_login(ACME, ALICE, [A_LINKED, B], CH_C, None)
    assert plan.log_out == (B,)
    # The user's flag alone is not twinning: the account's switch is off.
    assert plan_login(ACME, ALICE_TWIN, [A], CH_C, None).log_out == (A,)
    assert plan_login(ACME_TWIN, ALICE, [A], CH_C, None).log_out == (A,)


def test_with_twinning_a_login_adds_a_device_up_to_the_maximum() -> None:
    second = plan_login(ACME_TWIN, ALICE_TWIN, [A], CH_C, None)
    assert second.log_out == () and not second.needs_confirmation
    third = plan_login(ACME_TWIN, ALICE_TWIN, [A, B], CH_C, None)
    assert third.needs_confirmation and third.log_out == (A, B)
    linked = plan_login(ACME_TWIN, ALICE_TWIN, [A_LINKED, B], CH_C, None)
    assert linked.needs_confirmation and linked.log_out == (B,)
    roomy = Account(1, "acme", "acme.example.com", 3, twinning=True, max_fixed_devices=3)
    assert not plan_login(roomy, ALICE_TWIN, [A, B], CH_C, None).needs_confirmation


def test_a_login_where_the_user_already_is_changes_nothing_with_twinning() -> None:
    again = plan_login(ACME_TWIN, ALICE_TWIN, [A, B, C], CH_C, None)
    assert again.already_here and again.log_out == () and not again.needs_confirmation
    moved = plan_login(ACME, ALICE, [A, C], CH_C, None)
    assert moved.already_here and moved.log_out == (A,)


def test_a_twinning_user_linked_to_the_maximum_cannot_log_in_elsewhere() -> None:
    b_linked = DeviceLogin(2, "acme-b", linked=True)
    with pytest.raises(ConfigError, match=r"^user 201 is permanently linked to 2 devices \(acme-a, acme-b\) "
                                          "and may use 2; unlink one first$"):
        plan_login(ACME_TWIN, ALICE_TWIN, [A_LINKED, b_linked], CH_C, None)


def test_a_channel_another_user_is_linked_to_cannot_be_taken_over() -> None:
    bob = ChannelOccupant(2, "202", "Bob", linked=False)
    assert plan_login(ACME, ALICE, [], CH_C, bob).replaces == bob
    with pytest.raises(ConfigError, match=r"^channel 'acme-c' is permanently linked to user 202 \(Bob\); "
                                          "unlink it first$"):
        plan_login(ACME, ALICE, [], CH_C, ChannelOccupant(2, "202", "Bob", linked=True))
    own = plan_login(ACME, ALICE, [DeviceLogin(3, "acme-c", linked=True)], CH_C,
                     ChannelOccupant(1, "201", "Alice", linked=True))
    assert own.already_here and own.replaces is None


def test_link_limits() -> None:
    check_link(ACME, ALICE, [A], CH_C)  # logged in elsewhere, not linked: fine
    with pytest.raises(ConfigError, match="^user 201 is already linked to acme-a, the maximum without twinning"):
        check_link(ACME, ALICE, [A_LINKED], CH_C)
    check_link(ACME_TWIN, ALICE_TWIN, [A_LINKED], CH_C)
    with pytest.raises(ConfigError, match="^user 201 is already linked to acme-a, acme-b, the maximum with"):
        check_link(ACME_TWIN, ALICE_TWIN, [A_LINKED, DeviceLogin(2, "acme-b", linked=True)], CH_C)
    check_link(ACME, ALICE, [DeviceLogin(3, "acme-c", linked=True)], CH_C)  # re-linking the same channel


# -- login policy (store) ------------------------------------------------------------------


def test_login_user_without_twinning_moves_the_user(store: Store, acme: Account) -> None:
    plan = store.login_user("acme", "201", "acme-b")
    assert [d.channel for d in plan.log_out] == ["acme-a"]
    assert channels(store, "201") == [("acme-b", False)]
    plan = store.login_user(acme.id, "202", "acme-b")
    assert plan.replaces == ChannelOccupant(store.user("acme", "201").id, "201", "Alice", False)
    assert channels(store, "201") == [] and channels(store, "202") == [("acme-b", False)]


def test_third_login_of_a_twinning_user_needs_confirmation(store: Store, acme: Account) -> None:
    twinning(store, "201")
    store.login_user("acme", "201", "acme-b")
    assert channels(store, "201") == [("acme-a", False), ("acme-b", False)]
    assert store.login_plan("acme", "201", "acme-c").needs_confirmation
    with pytest.raises(LoginNeedsConfirmation, match=r"^user 201 is already logged in on the maximum of 2 "
                                                     r"devices \(acme-a, acme-b\)$") as info:
        store.login_user("acme", "201", "acme-c")
    assert [d.channel for d in info.value.plan.log_out] == ["acme-a", "acme-b"]
    assert channels(store, "201") == [("acme-a", False), ("acme-b", False)]  # nothing written
    store.login_user("acme", "201", "acme-c", confirm_replace=True)
    assert channels(store, "201") == [("acme-c", False)]


def test_confirmation_names_every_device_but_logs_out_only_unlinked_ones(store: Store, acme: Account) -> None:
    twinning(store, "201")
    store.link_user("acme", "201", "acme-a")
    store.login_user("acme", "201", "acme-b")
    with pytest.raises(LoginNeedsConfirmation, match=r"maximum of 2 devices \(acme-a, acme-b\)$") as info:
        store.login_user("acme", "201", "acme-c")
    assert [d.channel for d in info.value.plan.log_out] == ["acme-b"]
    store.login_user("acme", "201", "acme-c", confirm_replace=True)
    assert channels(store, "201") == [("acme-a", True), ("acme-c", False)]


def test_linked_channels_stay_and_cannot_be_logged_out(store: Store, acme: Account) -> None:
    store.link_user("acme", "201", "acme-a")
    assert channels(store, "201") == [("acme-a", True)]
    store.login_user("acme", "201", "acme-b")  # no twinning: moves, but the link stays
    assert channels(store, "201") == [("acme-a", True), ("acme-b", False)]
    with pytest.raises(ConfigError, match="^user 201 is permanently linked to channel 'acme-a'; unlink first$"):
        store.logout_channel("acme", "acme-a")
    with pytest.raises(ConfigError, match=r"^channel 'acme-a' is permanently linked to user 201 \(Alice\)"):
        store.login_user("acme", "202", "acme-a")
    with pytest.raises(ConfigError, match=r"^channel 'acme-a' is permanently linked to user 201 \(Alice\)"):
        store.login("acme", "202", "acme-a")  # the policy-free placement refuses it too
    with pytest.raises(ConfigError, match=r"^channel 'acme-a' is permanently linked to user 201 \(Alice\)"):
        store.add_user("acme", "203", "Carol", "6943", channels=["acme-a"])
    store.login("acme", "201", "acme-a")  # logging in again where linked keeps the link
    assert ("acme-a", True) in channels(store, "201")
    assert store.logout_everywhere(store.user("acme", "201")) == ("acme-b",)
    assert channels(store, "201") == [("acme-a", True)]


def test_logout_channel_returns_the_user_and_logout_still_works(store: Store, acme: Account) -> None:
    alice = store.user("acme", "201")
    assert store.logout_channel(acme.id, "acme-a") == alice
    with pytest.raises(ConfigError, match="^no user is logged in on channel 'acme-a'$"):
        store.logout_channel("acme", "acme-a")
    store.login_user("acme", "201", "acme-a")
    assert store.logout("acme", "acme-a") == alice


def test_link_limits_in_the_store(store: Store, acme: Account) -> None:
    store.link_user("acme", "201", "acme-a")
    with pytest.raises(ConfigError, match="^user 201 is already linked to acme-a, the maximum without twinning"):
        store.link_user("acme", "201", "acme-b")
    twinning(store, "201")
    store.link_user("acme", "201", "acme-b")
    with pytest.raises(ConfigError, match="^user 201 is already linked to acme-a, acme-b, the maximum with"):
        store.link_user("acme", "201", "acme-c")
    with pytest.raises(ConfigError, match="^user 201 is linked to 2 channels; unlink all but one before"):
        store.update_user("acme", "201", twinning=False)
    with pytest.raises(ConfigError, match="^user 201 is linked to 2 channels; unlink all but one before"):
        store.update_account("acme", twinning=False)
    store.unlink_user("acme", "201", "acme-b")
    assert channels(store, "201") == [("acme-a", True), ("acme-b", False)]
    with pytest.raises(ConfigError, match="^user 201 is not linked to channel 'acme-b'$"):
        store.unlink_user("acme", "201", "acme-b")
    assert not store.update_account("acme", twinning=False).twinning


def test_link_on_a_twinning_user_at_the_maximum_needs_confirmation(store: Store, acme: Account) -> None:
    twinning(store, "201")
    store.login_user("acme", "201", "acme-b")
    with pytest.raises(LoginNeedsConfirmation):
        store.link_user("acme", "201", "acme-c")
    assert channels(store, "201") == [("acme-a", False), ("acme-b", False)]
    store.link_user("acme", "201", "acme-c", confirm_replace=True)
    assert channels(store, "201") == [("acme-c", True)]


# -- settings ----------------------------------------------------------------------------------


def test_update_account_and_user(store: Store, acme: Account) -> None:
    account = store.update_account("acme", twinning=True, park_timeout=60, park_recall_limit=0,
                                   park_first_slot=801, park_slots=20, dtmf_prefix="**", dtmf_timeout=2.5,
                                   max_fixed_devices=3, language="en", timezone="Europe/London")
    assert account == store.account("acme")
    assert (account.twinning, account.park_timeout, account.park_recall_limit, account.dtmf_prefix,
            account.dtmf_timeout, account.max_fixed_devices, account.language, account.timezone) == (
        True, 60, 0, "**", 2.5, 3, "en", "Europe/London")
    assert park_slot_range(account) == range(801, 821)
    user = store.update_user("acme", "201", name="Alice B", may_park=True, may_external=False,
                             may_international=True, may_time_config=True, may_record_prompts=True,
                             may_play_recordings=True, twinning=True)
    assert user == store.user("acme", "201")
    assert (user.name, user.may_park, user.may_external, user.may_international, user.may_time_config,
            user.may_record_prompts, user.may_play_recordings, user.twinning) == (
        "Alice B", True, False, True, True, True, True, True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "nothing to change: give at least one setting"),
        ({"park_timeout": 9}, "park timeout must be 10-3600 seconds, not 9"),
        ({"park_timeout": 3601}, "park timeout must be 10-3600 seconds, not 3601"),
        ({"park_recall_limit": -1}, "park recall limit must be 0-20, not -1"),
        ({"dtmf_timeout": 0.5}, "DTMF timeout must be 1-10 seconds, not 0.5"),
        ({"dtmf_prefix": ""}, "DTMF prefix '' must be 1-3 keys of 0-9, * and #"),
        ({"dtmf_prefix": "####"}, "DTMF prefix '####' must be 1-3 keys of 0-9, * and #"),
        ({"dtmf_prefix": "#a"}, "DTMF prefix '#a' must be 1-3 keys of 0-9, * and #"),
        ({"park_first_slot": 0}, "first park slot must be 1-9999, not 0"),
        ({"park_slots": 0}, "number of park slots must be 1-999, not 0"),
        ({"park_first_slot": 9950}, "park slots 9950-10048 go beyond 9999"),
        ({"max_fixed_devices": 0}, "max fixed devices must be 1-10, not 0"),
        ({"language": "de"}, "language must be one of nl, en, not 'de'"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_update_account_errors(store: Store, acme: Account, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        store.update_account("acme", **changes)
    assert str(info.value) == message
    assert store.account("acme") == acme


def test_update_user_errors(store: Store, acme: Account) -> None:
    with pytest.raises(ConfigError, match="^nothing to change"):
        store.update_user("acme", "201")
    with pytest.raises(ConfigError, match="^PIN 1111 is too easy to guess; choose another$"):
        store.update_user("acme", "201", pin="1111", may_park=True)
    with pytest.raises(ConfigError, match="^name must not be empty$"):
        store.update_user("acme", "201", name=" ")
    with pytest.raises(ConfigError, match="^user 299 does not exist in account 'acme'$"):
        store.update_user("acme", "299", may_park=True)
    assert not store.user("acme", "201").may_park  # nothing half-written


# -- privacy groups (pure) -------------------------------------------------------------------


def member(group_id: int, user_id: int, **rights: bool | int) -> PrivacyMember:
    return PrivacyMember(group_id, user_id, str(200 + user_id), f"user{user_id}", PrivacyRights(**rights))


def test_rights_apply_from_a_member_over_the_other_members_only() -> None:
    # 1 may pick up 2's calls; 2 has no rights over 1; 3 is in no group with 1.
    reception = PrivacyGroup(10, 1, 1, "Reception", (member(10, 1, pickup=True), member(10, 2)))
    assert may_pickup([reception], 1, 2)
    assert not may_pickup([reception], 2, 1)
    assert not may_pickup([reception], 1, 3)
    assert not may_pickup([reception], 1, 1)
    assert pickup_targets([reception], 1) == {2} and pickup_targets([reception], 2) == frozenset()


def test_rights_combine_over_every_shared_group() -> None:
    first = PrivacyGroup(10, 1, 1, "A", (member(10, 1, presence=True, notifications=True, notify_delay=9),
                                         member(10, 2)))
    second = PrivacyGroup(11, 1, 2, "B", (member(11, 1, retrieve_parked=True, notifications=True, notify_delay=4),
                                          member(11, 2), member(11, 3)))
    assert rights_over([first, second], 1, 2) == PrivacyRights(
        presence=True, notifications=True, notify_delay=4, retrieve_parked=True)
    assert rights_over([first, second], 1, 3) == PrivacyRights(
        notifications=True, notify_delay=4, retrieve_parked=True)
    assert rights_over([first, second], 2, 1) == PrivacyRights()


def test_parked_calls_are_retrieved_by_the_parker_or_with_the_right() -> None:
    group = PrivacyGroup(10, 1, 1, "A", (member(10, 1, retrieve_parked=True), member(10, 2, pickup=True)))
    assert may_retrieve_parked([], 2, 2)
    assert may_retrieve_parked([group], 1, 2)
    assert not may_retrieve_parked([group], 2, 1)


# -- privacy groups (store) -------------------------------------------------------------------


def test_privacy_groups_in_the_store(store: Store, acme: Account) -> None:
    reception = store.add_privacy_group("acme", "Reception")
    sales = store.add_privacy_group("acme", "Sales", number=5)
    assert (reception.number, sales.number) == (1, 5)
    assert store.add_privacy_group("acme", "Support").number == 2
    alice, bob = store.user("acme", "201"), store.user("acme", "202")
    added = store.set_privacy_member("acme", "reception", "201", pickup=True, notify_delay=5)
    assert added == PrivacyMember(reception.id, alice.id, "201", "Alice", PrivacyRights(pickup=True, notify_delay=5))
    store.set_privacy_member("acme", 1, "202", retrieve_parked=True)
    updated = store.set_privacy_member("acme", "1", "201", presence=True, pickup=False)
    assert updated.rights == PrivacyRights(presence=True, notify_delay=5)  # unnamed rights keep their value
    group = store.privacy_group("acme", "RECEPTION")
    assert [m.extension for m in group.members] == ["201", "202"]
    assert [g.name for g in store.list_privacy_groups("acme")] == ["Reception", "Support", "Sales"]
    assert store.privacy_groups_of_user(bob.id) == [group]
    assert may_retrieve_parked(store.privacy_groups_of_user(bob.id), bob.id, alice.id)
    assert not may_pickup(store.privacy_groups_of_user(bob.id), bob.id, alice.id)
    store.remove_privacy_member("acme", "Reception", "202")
    assert store.privacy_groups_of_user(bob.id) == []
    deleted = store.delete_privacy_group("acme", "Reception")
    assert deleted.members == (updated,)
    assert store.privacy_groups_of_user(alice.id) == []


@pytest.mark.parametrize(
    ("name", "number", "message"),
    [
        ("reception", None, "privacy group 'Reception' already exists in account 'acme'"),
        ("Other", 1, "privacy group number 1 is already used by 'Reception' in account 'acme'"),
        ("Other", 0, "privacy group number must be 1-99, not 0"),
        ("Other", 100, "privacy group number must be 1-99, not 100"),
        ("42", None, "privacy group name '42' is only digits; a number names a group by its number"),
        ("  ", None, "privacy group name must not be empty"),
        ("x" * 65, None, "privacy group name is longer than 64 characters"),
    ],
)
def test_add_privacy_group_errors(store: Store, acme: Account, name: str, number: int | None,
                                  message: str) -> None:
    store.add_privacy_group("acme", "Reception")
    with pytest.raises(ConfigError) as info:
        store.add_privacy_group("acme", name, number)
    assert str(info.value) == message
    assert len(store.list_privacy_groups("acme")) == 1


def test_privacy_group_numbers_run_out_at_99(store: Store, acme: Account) -> None:
    for number in range(1, 100):
        store.add_privacy_group("acme", f"g{number}", number)
    with pytest.raises(ConfigError, match="^account 'acme' has 99 privacy groups, the maximum$"):
        store.add_privacy_group("acme", "one too many")


def test_privacy_member_errors(store: Store, acme: Account) -> None:
    store.add_privacy_group("acme", "Reception")
    store.add_account("beta", "beta.example.com", 3)
    store.add_user("beta", "301", "Eve", "7054")
    with pytest.raises(ConfigError, match="^privacy group 'Nope' does not exist in account 'acme'$"):
        store.set_privacy_member("acme", "Nope", "201")
    with pytest.raises(ConfigError, match="^privacy group '7' does not exist in account 'acme'$"):
        store.delete_privacy_group("acme", 7)
    with pytest.raises(ConfigError, match="^user 301 does not exist in account 'acme'$"):
        store.set_privacy_member("acme", "Reception", "301")
    with pytest.raises(ConfigError, match="^notification delay must be 0-300 seconds, not 301$"):
        store.set_privacy_member("acme", "Reception", "201", notify_delay=301)
    with pytest.raises(ConfigError, match="^user 201 is not a member of privacy group 'Reception'$"):
        store.remove_privacy_member("acme", "Reception", "201")
    assert store.privacy_group("acme", "Reception").members == ()


# -- parked calls -----------------------------------------------------------------------------


def test_parked_call_records(store: Store, acme: Account) -> None:
    first = ParkedCall(acme.id, 702, "c2", "201", "0201234567", NOW, NOW + 120)
    second = ParkedCall(acme.id, 701, "c1", "202", "203 Carol", NOW + 1, NOW + 121)
    store.put_parked(first)
    store.put_parked(second)
    assert store.list_parked("acme") == [second, first]
    recalled = ParkedCall(acme.id, 702, "c2", "201", "0201234567", NOW, NOW + 240)
    store.put_parked(recalled)  # a new recall time replaces the record in its slot
    assert store.list_parked("acme") == [second, recalled]
    store.remove_parked(acme.id, 701)
    assert store.list_parked("acme") == [recalled]
    assert store.clear_parked() == [recalled]
    assert store.list_parked("acme") == [] and store.clear_parked() == []
    with pytest.raises(ConfigError, match="^account 'nope' does not exist$"):
        store.list_parked("nope")
