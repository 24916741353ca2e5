"""Store methods for REACH (SPEC §4, §29); mixed into ``config.store.Store``.

Each write is one transaction and checks everything before it writes: unknown users,
profiles, statuses and devices (a device must be a channel of the account), bad
destinations and times, overlapping schedule entries, timeouts outside 5..300 s. Text
that does not parse raises ``ValueError`` in config/reach.py; it leaves here as
``ConfigError`` with the same one line.

The default profile and the "available" status are created when first needed (by any
write for the user); ``reach_config`` reads a user without them as if they existed.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from config import reach
from config.errors import ConfigError
from config.models import Account, Channel, User
from config.reach import (ClassMapping, DeviceOverride, ForwardOverride, ManualStatus, Profile, ReachConfig,
                          RingGroup, ScheduleEntry)

_PROFILE_COLS = ("name, colour, ring, forward_always, forward_busy, forward_noanswer, noanswer_timeout, "
                 "forward_unreachable, caller_id, forward_caller_id, dnd, call_waiting")
_PROFILE_COLUMNS = frozenset(reach.SETTING_FIELDS) | {"colour"}


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """Parsing errors of config/reach.py become ConfigError (same message)."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _timestamp(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _datetime(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)


def _days_mask(days: Iterable[int]) -> int:
    return sum(1 << day for day in set(days))


def _mask_days(mask: int) -> frozenset[int]:
    return frozenset(day for day in range(7) if mask & (1 << day))


def _ring_json(groups: Sequence[RingGroup]) -> str:
    return json.dumps([{"devices": list(g.devices), "timeout": g.timeout} for g in groups])


def _ring_groups(text: str | None) -> tuple[RingGroup, ...] | None:
    if text is None:
        return None
    return tuple(RingGroup(tuple(g["devices"]), g["timeout"]) for g in json.loads(text))


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _profile(row: Sequence) -> Profile:
    (name, colour, ring, always, busy, noanswer, timeout, unreachable, caller_id, forward_caller_id,
     dnd, call_waiting) = row
    return Profile(name, colour, _ring_groups(ring), always, busy, noanswer, timeout, unreachable, caller_id,
                   forward_caller_id, _bool(dnd), _bool(call_waiting))


class ReachStore:
    """REACH configuration per user: profiles, statuses, schedule, classes, overrides,
    dynamic caller IDs and call barring."""

    if TYPE_CHECKING:  # provided by config.store.Store
        _conn: sqlite3.Connection

        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def account(self, name: str) -> Account: ...
        def user_by_extension(self, account_id: int, extension: str) -> User | None: ...
        def channel_by_username(self, account_id: int, username: str) -> Channel | None: ...

    # -- reading ------------------------------------------------------------------------

    def reach_user(self, account_name: str, extension: str) -> tuple[Account, User]:
        """The account and user of ``extension``; ConfigError when either is unknown."""
        account = self.account(account_name)
        user = self.user_by_extension(account.id, str(extension).strip())
        if user is None:
            raise ConfigError(f"user {extension} does not exist in account {account.name!r}")
        return account, user

    def reach_config(self, user_id: int) -> ReachConfig:
        """Everything the evaluator needs for one user, in one read."""
        conn = self._conn
        rows = conn.execute(f"SELECT is_default, {_PROFILE_COLS} FROM reach_profiles WHERE user_id = ? "
                            "ORDER BY name", (user_id,)).fetchall()
        default = next((_profile(r[1:]) for r in rows if r[0]), Profile(reach.DEFAULT_PROFILE))
        statuses = [r[0] for r in conn.execute("SELECT name FROM reach_statuses WHERE user_id = ? ORDER BY id",
                                               (user_id,))]
        if reach.DEFAULT_STATUS not in statuses:
            statuses.insert(0, reach.DEFAULT_STATUS)
        manual = conn.execute("SELECT s.name, m.until FROM reach_manual_status m JOIN reach_statuses s "
                              "ON s.id = m.status_id WHERE m.user_id = ?", (user_id,)).fetchone()
        forward = conn.execute("SELECT kind, destination FROM reach_forward_override WHERE user_id = ?",
                               (user_id,)).fetchone()
        devices = conn.execute("SELECT devices, until FROM reach_device_override WHERE user_id = ?",
                               (user_id,)).fetchone()
        return ReachConfig(
            default=default,
            profiles=tuple(_profile(r[1:]) for r in rows if not r[0]),
            statuses=tuple(statuses),
            schedule=tuple(self._schedule(user_id)),
            class_map=tuple(ClassMapping(*r) for r in conn.execute(
                "SELECT s.name, m.call_class, p.name FROM reach_class_map m "
                "JOIN reach_statuses s ON s.id = m.status_id JOIN reach_profiles p ON p.id = m.profile_id "
                "WHERE s.user_id = ? ORDER BY s.id, m.call_class", (user_id,))),
            manual=None if manual is None else ManualStatus(manual[0], _datetime(manual[1])),
            forward_override=None if forward is None else ForwardOverride(*forward),
            device_override=None if devices is None else DeviceOverride(tuple(json.loads(devices[0])),
                                                                        _datetime(devices[1])),
            caller_ids=dict(conn.execute("SELECT slot, number FROM reach_caller_ids WHERE user_id = ? "
                                         "ORDER BY slot", (user_id,)).fetchall()),
            barring=frozenset(r[0] for r in conn.execute("SELECT category FROM reach_barring WHERE user_id = ?",
                                                         (user_id,))),
        )

    def _schedule(self, user_id: int) -> list[ScheduleEntry]:
        rows = self._conn.execute(
            "SELECT e.id, s.name, e.start_min, e.end_min, e.days FROM reach_schedule e "
            "JOIN reach_statuses s ON s.id = e.status_id WHERE e.user_id = ? ORDER BY e.id", (user_id,))
        return [ScheduleEntry(entry_id, status, start, end, _mask_days(days))
                for entry_id, status, start, end, days in rows]

    # -- lookups inside a write ---------------------------------------------------------------

    def _ensure_reach(self, user: User) -> None:
        """Create the default profile and the "available" status when first needed."""
        self._conn.execute("INSERT OR IGNORE INTO reach_profiles (user_id, name, is_default) VALUES (?, ?, 1)",
                           (user.id, reach.DEFAULT_PROFILE))
        self._conn.execute("INSERT OR IGNORE INTO reach_statuses (user_id, name) VALUES (?, ?)",
                           (user.id, reach.DEFAULT_STATUS))

    def _profile_id(self, user: User, name: str) -> int:
        row = self._conn.execute("SELECT id FROM reach_profiles WHERE user_id = ? AND name = ?",
                                 (user.id, name.strip())).fetchone()
        if row is None:
            raise ConfigError(f"user {user.extension} has no profile {name.strip()!r}")
        return int(row[0])

    def _status_id(self, user: User, name: str) -> int:
        row = self._conn.execute("SELECT id FROM reach_statuses WHERE user_id = ? AND name = ?",
                                 (user.id, name.strip())).fetchone()
        if row is None:
            raise ConfigError(f"user {user.extension} has no status {name.strip()!r}")
        return int(row[0])

    def _check_device(self, account: Account, username: str) -> str:
        if self.channel_by_username(account.id, username) is None:
            raise ConfigError(f"device {username!r} is not a channel of account {account.name!r}")
        return username

    def _check_destination(self, account: Account, user: User, text: str) -> str:
        destination = reach.check_destination(text.strip())
        number = destination[len("ext:"):]
        if destination.startswith("ext:") and destination != reach.VOICEMAIL:
            if len(number) != account.digits:
                raise ConfigError(f"destination {destination}: account {account.name!r} uses "
                                  f"{account.digits}-digit extensions")
            if number == user.extension:
                raise ConfigError(f"destination {destination} is user {user.extension} itself")
            if not self._conn.execute("SELECT 1 FROM extensions WHERE account_id = ? AND number = ?",
                                      (account.id, number)).fetchone():
                raise ConfigError(f"destination {destination}: extension {number} does not exist")
        return destination

    @staticmethod
    def _check_until(account: Account, until: datetime | None, now: datetime | None) -> float | None:
        if until is None:
            return None
        if until.tzinfo is None:
            raise ConfigError("end time needs a time zone")
        if until <= (now or datetime.now(timezone.utc)):
            raise ConfigError(f"end time {reach.format_local(until, ZoneInfo(account.timezone))} is in the past")
        return until.timestamp()

    # -- profiles ---------------------------------------------------------------------------

    def add_reach_profile(self, account_name: str, extension: str, name: str, colour: str = "") -> Profile:
        with _config_errors(), self._write() as conn:
            account, user = self.reach_user(account_name, extension)
            name = reach.check_name("profile", name)
            colour = reach.check_colour(colour) if colour else ""
            self._ensure_reach(user)
            taken = conn.execute("SELECT name FROM reach_profiles WHERE user_id = ? AND name = ?",
                                 (user.id, name)).fetchone()
            if taken:
                raise ConfigError(f"user {user.extension} already has a profile {taken[0]!r}")
            conn.execute("INSERT INTO reach_profiles (user_id, name, colour) VALUES (?, ?, ?)",
                         (user.id, name, colour))
        return Profile(name, colour)

    def set_reach_profile(self, account_name: str, extension: str, profile: str,
                          values: Mapping[str, object], inherit: Iterable[str] = ()) -> Profile:
        """Change settings of ``profile`` ("default" is the default profile).

        ``values`` maps setting names (``reach.SETTING_FIELDS`` or "colour", '-' or '_')
        to text (ring sequence, destinations, caller IDs), int (noanswer_timeout) or bool
        (dnd, call_waiting); a forward set to ``reach.NO_FORWARD`` is explicitly off.
        ``inherit`` names settings to unset: inherit from the default profile, or on the
        default profile return to the built-in value.
        """
        changes = {self._setting_name(k): v for k, v in values.items()}
        unset = [self._setting_name(k) for k in inherit]
        both = sorted(set(changes) & set(unset))
        if both:
            raise ConfigError(f"setting {both[0].replace('_', '-')} is both set and inherited")
        if "colour" in unset:
            raise ConfigError("colour is not inherited; set it to another colour instead")
        if not changes and not unset:
            raise ConfigError("nothing to change: give at least one setting")
        with _config_errors(), self._write() as conn:
            account, user = self.reach_user(account_name, extension)
            self._ensure_reach(user)
            profile_id = self._profile_id(user, profile)
            columns = {name: self._setting_value(account, user, name, value) for name, value in changes.items()}
            columns.update({name: None for name in unset})
            assignments = ", ".join(f"{name} = ?" for name in columns)
            conn.execute(f"UPDATE reach_profiles SET {assignments} WHERE id = ?", (*columns.values(), profile_id))
            row = conn.execute(f"SELECT {_PROFILE_COLS} FROM reach_profiles WHERE id = ?", (profile_id,)).fetchone()
        return _profile(row)

    @staticmethod
    def _setting_name(name: str) -> str:
        column = name.strip().replace("-", "_")
        if column not in _PROFILE_COLUMNS:
            known = ", ".join(f.replace("_", "-") for f in reach.SETTING_FIELDS)
            raise ConfigError(f"unknown setting {name!r}: known are {known}")
        return column

    def _setting_value(self, account: Account, user: User, name: str, value: object) -> object:
        """The column value for one setting, checked."""
        if name in ("dnd", "call_waiting"):
            return int(bool(value))
        if name == "noanswer_timeout":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"ring time {value!r} is not a whole number of seconds")
            return reach.check_timeout(value)
        text = str(value).strip()
        if name == "ring":
            groups = reach.parse_ring(text)
            for group in groups:
                for device in group.devices:
                    self._check_device(account, device)
            return _ring_json(groups)
        if name in reach.FORWARD_FIELDS:
            return text if text == reach.NO_FORWARD else self._check_destination(account, user, text)
        if name == "caller_id":
            return reach.check_caller_id(text)
        if name == "forward_caller_id":
            if text not in reach.FORWARD_CALLER_IDS:
                raise ConfigError(f"forward caller ID {text!r} is invalid: use calling or called")
            return text
        return reach.check_colour(text)

    def delete_reach_profile(self, account_name: str, extension: str, name: str) -> int:
        """Delete a custom profile and the class mappings that used it; returns their number."""
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            if name.strip().lower() == reach.DEFAULT_PROFILE:
                raise ConfigError("the default profile cannot be deleted (reset it with: reach clear)")
            profile_id = self._profile_id(user, name)
            mappings = conn.execute("SELECT COUNT(*) FROM reach_class_map WHERE profile_id = ?",
                                    (profile_id,)).fetchone()[0]
            conn.execute("DELETE FROM reach_profiles WHERE id = ?", (profile_id,))
        return int(mappings)

    # -- statuses, schedule, manual status ------------------------------------------------------

    def add_reach_status(self, account_name: str, extension: str, name: str) -> str:
        with _config_errors(), self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            name = reach.check_name("status", name)
            self._ensure_reach(user)
            taken = conn.execute("SELECT name FROM reach_statuses WHERE user_id = ? AND name = ?",
                                 (user.id, name)).fetchone()
            if taken:
                raise ConfigError(f"user {user.extension} already has a status {taken[0]!r}")
            conn.execute("INSERT INTO reach_statuses (user_id, name) VALUES (?, ?)", (user.id, name))
        return name

    def delete_reach_status(self, account_name: str, extension: str, name: str) -> None:
        """Delete a status with its schedule entries, class mappings and manual setting."""
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            if name.strip().lower() == reach.DEFAULT_STATUS:
                raise ConfigError(f"status {reach.DEFAULT_STATUS!r} is built in and cannot be deleted")
            conn.execute("DELETE FROM reach_statuses WHERE id = ?", (self._status_id(user, name),))

    def add_reach_schedule(self, account_name: str, extension: str, status: str, start: str, end: str,
                           days: str | None = None) -> ScheduleEntry:
        """A per-day entry (``days`` 'mon-fri', times 'HH:MM') or, without ``days``, a
        per-period entry (times 'fri 18:00'). Overlapping another entry is refused."""
        with _config_errors(), self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            self._ensure_reach(user)
            status_id = self._status_id(user, status)
            if days is None:
                day_set: frozenset[int] = frozenset()
                first, last = reach.parse_week_time(start), reach.parse_week_time(end)
            else:
                day_set = reach.parse_days(days)
                first, last = reach.parse_clock(start), reach.parse_clock(end, end=True)
            if first == last:
                raise ConfigError(f"schedule entry from {start} to {end} is empty")
            entry = ScheduleEntry(0, status.strip(), first, last, day_set)
            other = reach.first_overlap(entry, self._schedule(user.id))
            if other is not None:
                raise ConfigError(f"schedule entry {entry.label} overlaps entry {other.id} "
                                  f"({other.label}, status {other.status!r})")
            entry_id = conn.execute(
                "INSERT INTO reach_schedule (user_id, status_id, days, start_min, end_min) VALUES (?, ?, ?, ?, ?)",
                (user.id, status_id, _days_mask(day_set), first, last)).lastrowid
        return ScheduleEntry(int(entry_id), entry.status, first, last, day_set)

    def delete_reach_schedule(self, account_name: str, extension: str, entry_id: int) -> None:
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            if not conn.execute("DELETE FROM reach_schedule WHERE id = ? AND user_id = ?",
                                (entry_id, user.id)).rowcount:
                raise ConfigError(f"user {user.extension} has no schedule entry {entry_id}")

    def set_manual_status(self, account_name: str, extension: str, status: str,
                          until: datetime | None = None, now: datetime | None = None) -> None:
        """Set the status by hand; it overrides the schedule until ``until`` (or cleared)."""
        with self._write() as conn:
            account, user = self.reach_user(account_name, extension)
            self._ensure_reach(user)
            status_id = self._status_id(user, status)
            conn.execute("INSERT OR REPLACE INTO reach_manual_status (user_id, status_id, until) VALUES (?, ?, ?)",
                         (user.id, status_id, self._check_until(account, until, now)))

    def clear_manual_status(self, account_name: str, extension: str) -> bool:
        """Back to the schedule; False when no manual status was set."""
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            return bool(conn.execute("DELETE FROM reach_manual_status WHERE user_id = ?", (user.id,)).rowcount)

    # -- call classes -------------------------------------------------------------------------

    def map_reach_class(self, account_name: str, extension: str, status: str, call_class: str,
                        profile: str) -> None:
        """In ``status``, calls of ``call_class`` (or "any") use ``profile``."""
        with _config_errors(), self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            call_class = reach.check_call_class(call_class.strip())
            self._ensure_reach(user)
            conn.execute("INSERT OR REPLACE INTO reach_class_map (status_id, call_class, profile_id) "
                         "VALUES (?, ?, ?)",
                         (self._status_id(user, status), call_class, self._profile_id(user, profile)))

    def unmap_reach_class(self, account_name: str, extension: str, status: str, call_class: str) -> None:
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            status_id = self._status_id(user, status)
            if not conn.execute("DELETE FROM reach_class_map WHERE status_id = ? AND call_class = ?",
                                (status_id, call_class.strip())).rowcount:
                raise ConfigError(f"status {status.strip()!r} has no mapping for class {call_class.strip()!r}")

    # -- overrides ------------------------------------------------------------------------------

    def set_forward_override(self, account_name: str, extension: str, kind: str, destination: str) -> None:
        """The *910 forward: unconditional ("always") or on busy, until cleared."""
        if kind not in reach.FORWARD_KINDS:
            raise ConfigError(f"forward kind {kind!r} is invalid: use always or busy")
        with _config_errors(), self._write() as conn:
            account, user = self.reach_user(account_name, extension)
            destination = self._check_destination(account, user, destination)
            conn.execute("INSERT OR REPLACE INTO reach_forward_override (user_id, kind, destination, set_at) "
                         "VALUES (?, ?, ?, ?)", (user.id, kind, destination, time.time()))

    def clear_forward_override(self, account_name: str, extension: str) -> bool:
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            return bool(conn.execute("DELETE FROM reach_forward_override WHERE user_id = ?", (user.id,)).rowcount)

    def set_device_override(self, account_name: str, extension: str, devices: Sequence[str],
                            until: datetime | None = None, now: datetime | None = None) -> None:
        """Only ``devices`` ring until ``until`` (or cleared)."""
        names = [d.strip() for d in devices]
        if not names or not all(names):
            raise ConfigError("name at least one device (channel)")
        duplicate = next((d for i, d in enumerate(names) if d in names[:i]), None)
        if duplicate:
            raise ConfigError(f"device {duplicate!r} is listed twice")
        with self._write() as conn:
            account, user = self.reach_user(account_name, extension)
            for name in names:
                self._check_device(account, name)
            conn.execute("INSERT OR REPLACE INTO reach_device_override (user_id, devices, until) VALUES (?, ?, ?)",
                         (user.id, json.dumps(names), self._check_until(account, until, now)))

    def clear_device_override(self, account_name: str, extension: str) -> bool:
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            return bool(conn.execute("DELETE FROM reach_device_override WHERE user_id = ?", (user.id,)).rowcount)

    # -- dynamic caller IDs and call barring ----------------------------------------------------

    def set_caller_id_slot(self, account_name: str, extension: str, slot: str, number: str) -> None:
        """Dynamic caller ID ``slot`` (2-9 or 0), sent when the user dials #3<slot># first."""
        slot = str(slot).strip()
        if slot not in reach.CALLER_ID_SLOTS:
            raise ConfigError(f"slot {slot!r} is invalid: use 2-9 or 0 (#31# is reserved for anonymous)")
        with _config_errors(), self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            conn.execute("INSERT OR REPLACE INTO reach_caller_ids (user_id, slot, number) VALUES (?, ?, ?)",
                         (user.id, slot, reach.check_e164(number.strip(), "caller ID")))

    def remove_caller_id_slot(self, account_name: str, extension: str, slot: str) -> None:
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            if not conn.execute("DELETE FROM reach_caller_ids WHERE user_id = ? AND slot = ?",
                                (user.id, str(slot).strip())).rowcount:
                raise ConfigError(f"user {user.extension} has no dynamic caller ID in slot {slot}")

    def set_barring(self, account_name: str, extension: str, bar: Iterable[str] = (),
                    allow: Iterable[str] = ()) -> frozenset[str]:
        """Enable (``bar``) and disable (``allow``) barring categories; returns the result."""
        bar, allow = {c.strip() for c in bar}, {c.strip() for c in allow}
        unknown = sorted((bar | allow) - set(reach.BARRING_CATEGORIES))
        if unknown:
            raise ConfigError(f"unknown barring category {unknown[0]!r}: known are "
                              f"{', '.join(reach.BARRING_CATEGORIES)}")
        if bar & allow:
            raise ConfigError(f"category {sorted(bar & allow)[0]!r} is both barred and allowed")
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            conn.executemany("INSERT OR IGNORE INTO reach_barring (user_id, category) VALUES (?, ?)",
                             [(user.id, c) for c in sorted(bar)])
            conn.executemany("DELETE FROM reach_barring WHERE user_id = ? AND category = ?",
                             [(user.id, c) for c in sorted(allow)])
            rows = conn.execute("SELECT category FROM reach_barring WHERE user_id = ?", (user.id,))
            return frozenset(r[0] for r in rows)

    # -- clear REACH ----------------------------------------------------------------------------

    def clear_reach(self, account_name: str, extension: str) -> None:
        """Delete all custom profiles, statuses, schedule entries, class mappings and
        overrides, and reset the default profile. Dynamic caller IDs and call barring stay:
        they are numbers and restrictions, not reachability."""
        with self._write() as conn:
            _, user = self.reach_user(account_name, extension)
            for table in ("reach_profiles", "reach_statuses", "reach_manual_status", "reach_forward_override",
                          "reach_device_override"):
                conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user.id,))
            self._ensure_reach(user)
