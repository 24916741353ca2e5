"""Store methods of the in-call features (issue 4), mixed into ``config.store.Store``.

- Logins on devices: ``login_user`` applies ``config.features.plan_login`` (hotdesking,
  twinning, permanent links; SPEC §3.6, §3.7, §29) in one transaction; ``link_user`` /
  ``unlink_user``, ``logout_channel`` / ``logout_everywhere``, ``change_pin``.
- Privacy groups (SPEC §5): groups, members and their rights; the daemon reads a user's
  groups with ``privacy_groups_of_user`` and decides with ``config.features.rights_over``.
- Parked calls (SPEC §7): runtime records the daemon writes from its writer thread and
  ``softswitch parked`` reads.

Every write method is one ``BEGIN IMMEDIATE`` transaction (``self._write()``); a
``ConfigError`` leaves the database as it was. Methods the daemon calls take an account
id (int) as well as an account name (str).
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from config import features
from config.errors import ConfigError
from config.features import (
    ChannelOccupant, DeviceLogin, LoginNeedsConfirmation, LoginPlan, ParkedCall, PrivacyGroup,
    PrivacyMember, PrivacyRights,
)
from config.models import Account, Channel, User

logger = logging.getLogger(__name__)

AccountRef = str | int  # an account's name, or its id

_RIGHTS = ("pickup", "presence", "notifications", "notify_delay", "retrieve_parked")
_MEMBER_SELECT = (
    "SELECT m.group_id, m.user_id, u.extension, u.name, "
    f"{', '.join('m.' + r for r in _RIGHTS)} "
    "FROM privacy_group_members m JOIN users u ON u.id = m.user_id "
)
_PARKED_COLS = "account_id, slot, call_id, parker_extension, parked_party, parked_at, recall_at"


class _Planned(NamedTuple):
    """A login plan with what it was made from, inside one write transaction."""

    user: User
    channel: Channel
    current: list[DeviceLogin]
    plan: LoginPlan


def _member(row: tuple) -> PrivacyMember:
    group_id, user_id, extension, name, pickup, presence, notifications, delay, retrieve = row
    rights = PrivacyRights(bool(pickup), bool(presence), bool(notifications), int(delay), bool(retrieve))
    return PrivacyMember(group_id, user_id, extension, name, rights)


class FeatureStore:
    """Logins with the hotdesk/twinning policy, privacy groups and parked calls."""

    # Provided by config.store.Store, which mixes this class in.
    _conn: sqlite3.Connection
    if TYPE_CHECKING:
        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def account(self, name: str) -> Account: ...
        def account_by_id(self, account_id: int) -> Account | None: ...
        def user_on_channel(self, channel_id: int) -> User | None: ...
        def _user(self, account: Account, extension: str | int) -> User: ...
        def _channel(self, account: Account, username: str) -> Channel: ...
        def _login(self, channel: Channel, user: User) -> None: ...

    def _account_ref(self, account: AccountRef) -> Account:
        if isinstance(account, int):
            found = self.account_by_id(account)
            if found is None:
                raise ConfigError(f"account {account} does not exist")
            return found
        return self.account(account)

    def user(self, account: AccountRef, extension: str | int) -> User:
        """The user with this extension (901 after the extension is typed), or ConfigError."""
        return self._user(self._account_ref(account), extension)

    # -- logins on devices (SPEC §3.6, §3.7, §29) ---------------------------------------

    def user_logins(self, user_id: int) -> list[DeviceLogin]:
        """The channels the user is logged in on, oldest login first, with their link flag
        (902 asks "this device or all" when there are several)."""
        rows = self._conn.execute(
            "SELECT l.channel_id, c.username, l.linked, l.logged_in_at "
            "FROM logins l JOIN channels c ON c.id = l.channel_id WHERE l.user_id = ? "
            "ORDER BY l.logged_in_at, c.id",
            (user_id,),
        )
        return [DeviceLogin(cid, username, bool(linked), at) for cid, username, linked, at in rows]

    def _occupant(self, channel_id: int) -> ChannelOccupant | None:
        row = self._conn.execute(
            "SELECT u.id, u.extension, u.name, l.linked FROM logins l JOIN users u ON u.id = l.user_id "
            "WHERE l.channel_id = ?",
            (channel_id,),
        ).fetchone()
        return None if row is None else ChannelOccupant(row[0], row[1], row[2], bool(row[3]))

    def _check_takeover(self, channel: Channel, user: User) -> None:
        """For every way a user lands on a channel (login, ``user add --channel``, import)."""
        features.check_takeover(channel, user.id, self._occupant(channel.id))

    def _plan(self, account: AccountRef, extension: str | int, channel_username: str, *,
              link: bool = False) -> _Planned:
        acc = self._account_ref(account)
        user = self._user(acc, extension)
        channel = self._channel(acc, channel_username)
        current = self.user_logins(user.id)
        if link:
            features.check_link(acc, user, current, channel)
        plan = features.plan_login(acc, user, current, channel, self._occupant(channel.id))
        return _Planned(user, channel, current, plan)

    def login_plan(self, account: AccountRef, extension: str | int, channel_username: str) -> LoginPlan:
        """What ``login_user`` would do, without doing it: 901 asks for confirmation when
        ``needs_confirmation`` before it logs the user in."""
        return self._plan(account, extension, channel_username).plan

    def login_user(self, account: AccountRef, extension: str | int, channel_username: str, *,
                   confirm_replace: bool = False) -> LoginPlan:
        """Log a user in on a channel by the hotdesk/twinning policy; returns what it did.

        Raises ``LoginNeedsConfirmation`` (a ConfigError) when a twinning user is already on
        the maximum number of devices and ``confirm_replace`` is false.
        """
        with self._write():
            planned = self._plan(account, extension, channel_username)
            self._apply_login(planned, confirm_replace)
        return planned.plan

    def _apply_login(self, planned: _Planned, confirm_replace: bool) -> None:
        plan, user, channel = planned.plan, planned.user, planned.channel
        if plan.needs_confirmation and not confirm_replace:
            raise LoginNeedsConfirmation(user, plan, planned.current)
        self._conn.executemany(
            "DELETE FROM logins WHERE channel_id = ? AND user_id = ? AND linked = 0",
            [(d.channel_id, user.id) for d in plan.log_out],
        )
        self._login(channel, user)
        logger.info("user %s (account %d) logged in on channel %s%s", user.extension, user.account_id,
                    channel.username,
                    f", logged out of {', '.join(d.channel for d in plan.log_out)}" if plan.log_out else "")

    def link_user(self, account: AccountRef, extension: str | int, channel_username: str, *,
                  confirm_replace: bool = False) -> LoginPlan:
        """Log the user in on the channel for good (zero-touch): they cannot log out there.

        At most 1 linked channel per user, 2 with twinning (SPEC §29); the login itself
        follows the same policy (and confirmation) as ``login_user``.
        """
        with self._write() as conn:
            planned = self._plan(account, extension, channel_username, link=True)
            self._apply_login(planned, confirm_replace)
            conn.execute("UPDATE logins SET linked = 1 WHERE channel_id = ?", (planned.channel.id,))
        return planned.plan

    def unlink_user(self, account: AccountRef, extension: str | int, channel_username: str) -> None:
        """End the permanent link; the user stays logged in on the channel."""
        with self._write() as conn:
            acc = self._account_ref(account)
            user = self._user(acc, extension)
            channel = self._channel(acc, channel_username)
            if conn.execute("UPDATE logins SET linked = 0 WHERE channel_id = ? AND user_id = ? AND linked = 1",
                            (channel.id, user.id)).rowcount == 0:
                raise ConfigError(f"user {user.extension} is not linked to channel {channel.username!r}")

    def logout_channel(self, account: AccountRef, channel_username: str) -> User:
        """Log whoever is on the channel out (902 "this device"); returns that user.
        Refused on a channel the user is permanently linked to."""
        with self._write() as conn:
            channel = self._channel(self._account_ref(account), channel_username)
            occupant = self._occupant(channel.id)
            user = self.user_on_channel(channel.id)
            if occupant is None or user is None:
                raise ConfigError(f"no user is logged in on channel {channel_username!r}")
            if occupant.linked:
                raise ConfigError(
                    f"user {user.extension} is permanently linked to channel {channel.username!r}; unlink first"
                )
            conn.execute("DELETE FROM logins WHERE channel_id = ?", (channel.id,))
        logger.info("user %s (account %d) logged out of channel %s", user.extension, user.account_id,
                    channel.username)
        return user

    def logout_everywhere(self, user: User) -> tuple[str, ...]:
        """Log the user out of every channel they are not linked to (902 "all devices");
        returns the usernames of those channels."""
        with self._write() as conn:
            gone = tuple(d for d in self.user_logins(user.id) if not d.linked)
            conn.executemany("DELETE FROM logins WHERE channel_id = ? AND user_id = ?",
                             [(d.channel_id, user.id) for d in gone])
        names = tuple(d.channel for d in gone)
        logger.info("user %s (account %d) logged out of %s", user.extension, user.account_id,
                    ", ".join(names) or "no channel")
        return names

    def change_pin(self, account: AccountRef, extension: str | int, new_pin: str) -> User:
        """The user chooses a new PIN (901 after PIN 0000, voicemail options): trivial PINs,
        0000 included, are refused (SPEC §29)."""
        pin = features.check_new_pin(new_pin)
        with self._write() as conn:
            user = self._user(self._account_ref(account), extension)
            conn.execute("UPDATE users SET pin = ? WHERE id = ?", (pin, user.id))
        return replace(user, pin=pin)

    # -- privacy groups (SPEC §5) -----------------------------------------------------------

    def add_privacy_group(self, account_name: str, name: str, number: int | None = None) -> PrivacyGroup:
        """Create a group; without ``number`` it gets the lowest free number (1..99)."""
        name = features.check_privacy_group_name(name)
        if number is not None:
            features.check_privacy_group_number(number)
        with self._write() as conn:
            account = self.account(account_name)
            taken = {row[0]: row[1] for row in conn.execute(
                "SELECT number, name FROM privacy_groups WHERE account_id = ?", (account.id,))}
            clash = next((n for n in taken.values() if n.casefold() == name.casefold()), None)
            if clash is not None:
                raise ConfigError(f"privacy group {clash!r} already exists in account {account.name!r}")
            if number is None:
                number = self._free_group_number(account, taken)
            elif number in taken:
                raise ConfigError(
                    f"privacy group number {number} is already used by {taken[number]!r} in account {account.name!r}"
                )
            group_id = conn.execute(
                "INSERT INTO privacy_groups (account_id, number, name, created_at) VALUES (?, ?, ?, ?)",
                (account.id, number, name, time.time()),
            ).lastrowid
        return PrivacyGroup(int(group_id), account.id, number, name)

    @staticmethod
    def _free_group_number(account: Account, taken: dict[int, str]) -> int:
        free = next((n for n in range(1, features.MAX_PRIVACY_GROUP_NUMBER + 1) if n not in taken), None)
        if free is None:
            raise ConfigError(
                f"account {account.name!r} has {features.MAX_PRIVACY_GROUP_NUMBER} privacy groups, the maximum"
            )
        return free

    def _group_row(self, account: Account, group: str | int) -> tuple[int, int, str]:
        """(id, number, name) of a group given by number (int or digits) or by name."""
        text = str(group).strip()
        column, value = ("number", int(text)) if text.isdigit() else ("name", text)
        row = self._conn.execute(
            f"SELECT id, number, name FROM privacy_groups WHERE account_id = ? AND {column} = ?",
            (account.id, value),
        ).fetchone()
        if row is None:
            raise ConfigError(f"privacy group {text!r} does not exist in account {account.name!r}")
        return row

    def _members(self, where: str, args: tuple) -> dict[int, list[PrivacyMember]]:
        members: dict[int, list[PrivacyMember]] = {}
        for row in self._conn.execute(f"{_MEMBER_SELECT} WHERE {where} ORDER BY u.extension", args):
            members.setdefault(row[0], []).append(_member(row))
        return members

    def privacy_group(self, account_name: str, group: str | int) -> PrivacyGroup:
        """One group, by number or name, with its members (by extension)."""
        account = self.account(account_name)
        group_id, number, name = self._group_row(account, group)
        members = self._members("m.group_id = ?", (group_id,)).get(group_id, [])
        return PrivacyGroup(group_id, account.id, number, name, tuple(members))

    def list_privacy_groups(self, account_name: str) -> list[PrivacyGroup]:
        """The account's groups by number, with their members."""
        account = self.account(account_name)
        rows = self._conn.execute(
            "SELECT id, number, name FROM privacy_groups WHERE account_id = ? ORDER BY number", (account.id,)
        ).fetchall()
        members = self._members(
            "m.group_id IN (SELECT id FROM privacy_groups WHERE account_id = ?)", (account.id,))
        return [PrivacyGroup(gid, account.id, number, name, tuple(members.get(gid, ()))) for gid, number, name in rows]

    def privacy_groups_of_user(self, user_id: int) -> list[PrivacyGroup]:
        """Every group the user is a member of, with all its members: what the daemon hands
        to ``config.features.rights_over`` / ``may_pickup`` / ``may_retrieve_parked``."""
        rows = self._conn.execute(
            "SELECT g.id, g.account_id, g.number, g.name FROM privacy_groups g "
            "JOIN privacy_group_members m ON m.group_id = g.id WHERE m.user_id = ? ORDER BY g.number",
            (user_id,),
        ).fetchall()
        members = self._members(
            "m.group_id IN (SELECT group_id FROM privacy_group_members WHERE user_id = ?)", (user_id,))
        return [PrivacyGroup(gid, aid, number, name, tuple(members.get(gid, ()))) for gid, aid, number, name in rows]

    def delete_privacy_group(self, account_name: str, group: str | int) -> PrivacyGroup:
        """Delete a group and its memberships; returns it as it was."""
        with self._write() as conn:
            found = self.privacy_group(account_name, group)
            conn.execute("DELETE FROM privacy_groups WHERE id = ?", (found.id,))
        return found

    def set_privacy_member(
        self,
        account_name: str,
        group: str | int,
        extension: str | int,
        *,
        pickup: bool | None = None,
        presence: bool | None = None,
        notifications: bool | None = None,
        notify_delay: int | None = None,
        retrieve_parked: bool | None = None,
    ) -> PrivacyMember:
        """Add a user to a group, or change the rights of a member: a right left at None
        keeps its value (off for a new member)."""
        if notify_delay is not None:
            features.check_notify_delay(notify_delay)
        given = {"pickup": pickup, "presence": presence, "notifications": notifications,
                 "notify_delay": notify_delay, "retrieve_parked": retrieve_parked}
        changes = {k: int(v) for k, v in given.items() if v is not None}
        with self._write() as conn:
            account = self.account(account_name)
            group_id = self._group_row(account, group)[0]
            user = self._user(account, extension)
            conn.execute("INSERT OR IGNORE INTO privacy_group_members (group_id, user_id) VALUES (?, ?)",
                         (group_id, user.id))
            if changes:
                conn.execute(
                    f"UPDATE privacy_group_members SET {', '.join(f'{k} = ?' for k in changes)} "
                    "WHERE group_id = ? AND user_id = ?",
                    (*changes.values(), group_id, user.id),
                )
            row = conn.execute(f"{_MEMBER_SELECT} WHERE m.group_id = ? AND m.user_id = ?",
                               (group_id, user.id)).fetchone()
        return _member(row)

    def remove_privacy_member(self, account_name: str, group: str | int, extension: str | int) -> None:
        with self._write() as conn:
            account = self.account(account_name)
            group_id, _, name = self._group_row(account, group)
            user = self._user(account, extension)
            if conn.execute("DELETE FROM privacy_group_members WHERE group_id = ? AND user_id = ?",
                            (group_id, user.id)).rowcount == 0:
                raise ConfigError(f"user {user.extension} is not a member of privacy group {name!r}")

    # -- parked calls (SPEC §7): runtime records of the daemon ------------------------------

    def put_parked(self, record: ParkedCall) -> None:
        """Publish a parked call (or its new recall time) in its slot."""
        with self._write() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO parked_calls ({_PARKED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.account_id, record.slot, record.call_id, record.parker_extension,
                 record.parked_party, record.parked_at, record.recall_at),
            )

    def remove_parked(self, account_id: int, slot: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM parked_calls WHERE account_id = ? AND slot = ?", (account_id, slot))

    def clear_parked(self) -> list[ParkedCall]:
        """Forget every parked call (the daemon, when it starts); returns the records left by
        the previous run, so it can log the calls that were dropped."""
        with self._write() as conn:
            left = [ParkedCall(*row) for row in conn.execute(
                f"SELECT {_PARKED_COLS} FROM parked_calls ORDER BY account_id, slot")]
            conn.execute("DELETE FROM parked_calls")
        return left

    def list_parked(self, account_name: str) -> list[ParkedCall]:
        account = self.account(account_name)
        rows = self._conn.execute(
            f"SELECT {_PARKED_COLS} FROM parked_calls WHERE account_id = ? ORDER BY slot", (account.id,))
        return [ParkedCall(*row) for row in rows]
