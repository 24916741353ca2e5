"""The configuration and runtime-state store: the only module that opens the database.

SQLite in WAL mode (the CLI writes while the daemon reads), ``foreign_keys=ON`` and a
busy timeout. Every write method is ONE ``BEGIN IMMEDIATE`` transaction: it either
happens completely or not at all. The daemon notices writes made by another process
(the CLI) through ``data_version()`` (SQLite ``PRAGMA data_version``).

Errors an administrator (or a phone) can cause raise ``ConfigError``, a ``ValueError``
with one precise human-readable line; nothing is written when it is raised.

Exceptions::

    ValueError
     └── ConfigError        bad input or a missing/duplicate object; nothing written

Registrar data follows RFC 3261 §10.3 (one binding per (address-of-record, contact));
here the address-of-record is a channel. The lookups on the REGISTER path
(``account_by_domain``, ``channel_by_username``, ``bindings``, ``save_binding``) are
plain indexed sqlite3 statements; sqlite-utils serves the schema and admin paths.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
import secrets
import sqlite3
import string
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from config import features, schema
from config.errors import ConfigError
from config.features import check_new_pin, check_pin_format, is_trivial_pin
from config.store_features import FeatureStore
from config.store_reach import ReachStore
from config.store_routing import RoutingStore
from config.models import Account, Binding, Cdr, Channel, ChannelStatus, LiveCall, User

logger = logging.getLogger(__name__)

DEFAULT_DB_PATH = "softswitch.db"
BUSY_TIMEOUT_S = 5.0  # how long a writer waits for another process's write lock
EXTENSION_DIGITS = (3, 4, 5)  # SPEC §1
LANGUAGES = ("nl", "en")  # prompt languages shipped in media/sounds/prompts
DEFAULT_LANGUAGE = "nl"
DEFAULT_TIMEZONE = "Europe/Amsterdam"
# Service codes (SPEC §1) an extension of that length may not take.
RESERVED_EXTENSIONS: dict[int, frozenset[str]] = {
    # 900-929 keep room for service codes; 112 is the emergency number.
    3: frozenset({*(str(n) for n in range(900, 930)), "112"}),
    4: frozenset({"1233"}),  # personal voicemail of the calling user
}
GENERATED_PASSWORD_LENGTH = 20  # 62 symbols ** 20 ≈ 119 bits
MAX_NAME_LENGTH = 64
MAX_USERNAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 128
MAX_DOMAIN_LENGTH = 253  # RFC 1035 §2.3.4
MAX_CDR_LIMIT = 100_000
CSV_COLUMNS = ("channel", "password", "extension", "name", "pin")

_PASSWORD_ALPHABET = string.ascii_letters + string.digits
_ACCOUNT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# RFC 3261 §25.1 "unreserved" user characters, minus the marks that confuse admins.
_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DOMAIN_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

_ACCOUNT_COLS = (
    "id, name, domain, digits, language, timezone, twinning, park_timeout, park_recall_limit, "
    "park_first_slot, park_slots, dtmf_prefix, dtmf_timeout, max_fixed_devices"
)
_CHANNEL_COLS = "id, account_id, username, password, max_bindings"
_USER_COLS = (
    "id, account_id, extension, name, pin, twinning, may_park, may_time_config, may_external, "
    "may_international, may_record_prompts, may_play_recordings"
)
_BINDING_COLS = (
    "channel_id, contact, expires_at, source, user_agent, call_id, cseq, q, instance, registered_at"
)
_CDR_COLS = (
    "id, account_id, call_id, caller, callee, started_at, answered_at, ended_at, disposition, "
    "hangup_by, sip_status, caller_name, answered_by, quality"
)

_SQL_ACCOUNT_BY_DOMAIN = f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE domain = ?"
_SQL_ACCOUNT_BY_ID = f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE id = ?"
_SQL_CHANNEL_BY_USERNAME = (
    f"SELECT {_CHANNEL_COLS} FROM channels WHERE account_id = ? AND username = ?"
)
_SQL_BINDINGS = (
    f"SELECT {_BINDING_COLS} FROM bindings WHERE channel_id = ? AND expires_at > ? "
    "ORDER BY q DESC, registered_at DESC, id DESC"
)
_SQL_UPSERT_BINDING = (
    f"INSERT INTO bindings ({_BINDING_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (channel_id, contact) DO UPDATE SET expires_at = excluded.expires_at, "
    "source = excluded.source, user_agent = excluded.user_agent, call_id = excluded.call_id, "
    "cseq = excluded.cseq, q = excluded.q, instance = excluded.instance, "
    "registered_at = excluded.registered_at"
)
# Keep the saved contact and the newest others up to max_bindings: a new device
# replaces the oldest one.
_SQL_TRIM_BINDINGS = (
    "DELETE FROM bindings WHERE channel_id = ?1 AND id NOT IN ("
    " SELECT id FROM bindings WHERE channel_id = ?1"
    " ORDER BY contact = ?2 DESC, registered_at DESC, id DESC"
    " LIMIT (SELECT max_bindings FROM channels WHERE id = ?1))"
)


MAX_BINDINGS_PER_CHANNEL = 10  # a channel is one device; a few bindings for a device's several interfaces


def _account_from_row(row: Sequence[object]) -> Account:
    """An Account from a row of _ACCOUNT_COLS (SQLite has no booleans: twinning is 0/1)."""
    return Account(*row[:6], bool(row[6]), *row[7:])  # type: ignore[arg-type]


def _user_from_row(row: Sequence[object]) -> User:
    """A User from a row of _USER_COLS: the columns after the PIN are all 0/1 flags."""
    return User(*row[:5], *(bool(flag) for flag in row[5:]))  # type: ignore[arg-type]


def generate_password(length: int = GENERATED_PASSWORD_LENGTH) -> str:
    """A random alphanumeric SIP password from ``secrets``."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def _random_pin() -> str:
    while True:  # terminates fast: fewer than 1% of PINs are trivial
        pin = "".join(secrets.choice(string.digits) for _ in range(secrets.choice((4, 5, 6))))
        if not is_trivial_pin(pin):
            return pin


# -- validation: each returns the normalised value or raises ConfigError ------------------


def _check_account_name(name: str) -> str:
    if not _ACCOUNT_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"account name {name!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    labels = domain.split(".")
    if (
        not domain
        or len(domain) > MAX_DOMAIN_LENGTH
        or not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in labels)
    ):
        raise ConfigError(f"domain {domain!r} is not a valid host name")
    return domain


def _check_digits(digits: int) -> int:
    if digits not in EXTENSION_DIGITS:
        raise ConfigError(f"digits must be 3, 4 or 5, not {digits}")
    return digits


def _check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ConfigError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    return language


def _check_timezone(timezone: str) -> str:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {timezone!r}") from None
    return timezone


def _check_username(username: str) -> str:
    if not _USERNAME_RE.fullmatch(username) or len(username) > MAX_USERNAME_LENGTH:
        raise ConfigError(
            f"channel name {username!r} is invalid: use 1-{MAX_USERNAME_LENGTH} letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return username


def _check_password(password: str) -> str:
    if not password:
        raise ConfigError("password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ConfigError(f"password is longer than {MAX_PASSWORD_LENGTH} characters")
    if any(not ch.isprintable() or ch.isspace() for ch in password):
        raise ConfigError("password must not contain spaces or control characters")
    return password


def _check_extension(account: Account, extension: str | int) -> str:
    number = str(extension).strip()
    if not number.isascii() or not number.isdigit():
        raise ConfigError(f"extension {number!r} is not a number")
    if len(number) != account.digits:
        raise ConfigError(
            f"extension {number} has {len(number)} digits; "
            f"account {account.name!r} uses {account.digits}"
        )
    if number.startswith("0"):
        raise ConfigError(f"extension {number} starts with 0; 0 dials an external number")
    if number in RESERVED_EXTENSIONS.get(len(number), ()):
        raise ConfigError(f"extension {number} is a service code")
    return number


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ConfigError("name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"name is longer than {MAX_NAME_LENGTH} characters")
    return name


class Store(FeatureStore, RoutingStore, ReachStore):
    """Typed access to one softswitch database file (or ``":memory:"``).

    Not thread-safe: use it from the thread that created it (the event loop's).
    """

    def __init__(self, path: str | Path = DEFAULT_DB_PATH, *, any_thread: bool = False) -> None:
        """``any_thread=True``: the connection may be used from a thread other than the one
        that opened it (never from two at once) — the daemon's background writer."""
        self.path = str(path)
        # isolation_level=None: no implicit transactions; writes use _write().
        self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=not any_thread)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: no fsync per commit; a power cut may lose the last commits
            # (registrations, which phones renew) but never corrupts the database.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self.db = sqlite_utils.Database(self._conn, execute_plugins=False)
            try:
                schema.migrate(self.db)
            except schema.SchemaError as exc:
                raise ConfigError(str(exc)) from None
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def schema_version(self) -> int:
        return schema.current_version(self.db)

    def config_version(self) -> int:
        """Bumped by every change to accounts, channels, users, logins or extensions, from
        any connection (schema migration 3): the key for caching configuration."""
        return int(self._conn.execute("SELECT version FROM config_version WHERE id = 1").fetchone()[0])

    def data_version(self) -> int:
        """Changes whenever ANOTHER connection commits a write (PRAGMA data_version)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock first, so a concurrent
        writer waits (busy timeout) instead of failing on a stale snapshot."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- accounts ---------------------------------------------------------------------

    def add_account(
        self,
        name: str,
        domain: str,
        digits: int,
        language: str = DEFAULT_LANGUAGE,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> Account:
        name = _check_account_name(name)
        domain = _check_domain(domain)
        row = {
            "name": name,
            "domain": domain,
            "digits": _check_digits(digits),
            "language": _check_language(language),
            "timezone": _check_timezone(timezone),
            "created_at": time.time(),
        }
        with self._write():
            if self._account_row("name", name):
                raise ConfigError(f"account {name!r} already exists")
            other = self._account_row("domain", domain)
            if other:
                raise ConfigError(f"domain {domain!r} is already used by account {other.name!r}")
            account_id = self.db["accounts"].insert(row).last_pk
        return Account(account_id, name, domain, digits, language, timezone)

    def _account_row(self, column: str, value: object) -> Account | None:
        row = self._conn.execute(
            f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE {column} = ?", (value,)
        ).fetchone()
        return _account_from_row(row) if row else None

    def list_accounts(self) -> list[Account]:
        rows = self._conn.execute(f"SELECT {_ACCOUNT_COLS} FROM accounts ORDER BY name")
        return [_account_from_row(row) for row in rows]

    def account(self, name: str) -> Account:
        found = self._account_row("name", name)
        if found is None:
            raise ConfigError(f"account {name!r} does not exist")
        return found

    def account_by_domain(self, domain: str) -> Account | None:
        row = self._conn.execute(_SQL_ACCOUNT_BY_DOMAIN, (domain,)).fetchone()
        return _account_from_row(row) if row else None

    def account_by_id(self, account_id: int) -> Account | None:
        row = self._conn.execute(_SQL_ACCOUNT_BY_ID, (account_id,)).fetchone()
        return _account_from_row(row) if row else None

    def update_account(
        self,
        name: str,
        *,
        language: str | None = None,
        timezone: str | None = None,
        twinning: bool | None = None,
        park_timeout: int | None = None,
        park_recall_limit: int | None = None,
        park_first_slot: int | None = None,
        park_slots: int | None = None,
        dtmf_prefix: str | None = None,
        dtmf_timeout: float | None = None,
        max_fixed_devices: int | None = None,
    ) -> Account:
        """Change settings of an account (None leaves a setting as it is); returns the result.

        Turning twinning off is refused while a user is permanently linked to more than
        one channel (SPEC §29 allows that only with twinning).
        """
        checks = {
            "language": _check_language, "timezone": _check_timezone, "twinning": bool,
            "park_timeout": features.check_park_timeout,
            "park_recall_limit": features.check_park_recall_limit,
            "dtmf_prefix": features.check_dtmf_prefix, "dtmf_timeout": features.check_dtmf_timeout,
            "max_fixed_devices": features.check_max_fixed_devices,
            "park_first_slot": int, "park_slots": int,  # checked together below
        }
        given = {
            "language": language, "timezone": timezone, "twinning": twinning, "park_timeout": park_timeout,
            "park_recall_limit": park_recall_limit, "park_first_slot": park_first_slot,
            "park_slots": park_slots, "dtmf_prefix": dtmf_prefix, "dtmf_timeout": dtmf_timeout,
            "max_fixed_devices": max_fixed_devices,
        }
        changes = {key: checks[key](value) for key, value in given.items() if value is not None}
        if not changes:
            raise ConfigError("nothing to change: give at least one setting")
        with self._write() as conn:
            account = self.account(name)
            if park_first_slot is not None or park_slots is not None:
                features.check_park_slots(changes.get("park_first_slot", account.park_first_slot),
                                          changes.get("park_slots", account.park_slots))
            if twinning is False and account.twinning:
                self._check_single_links("account_id = ?", account.id)
            conn.execute(
                f"UPDATE accounts SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                (*changes.values(), account.id),
            )
            return self.account(name)

    def _check_single_links(self, where: str, value: int) -> None:
        """Refuse (before twinning goes off) when a user is linked to several channels."""
        row = self._conn.execute(
            "SELECT u.extension, COUNT(*) FROM logins l JOIN users u ON u.id = l.user_id "
            f"WHERE l.linked = 1 AND u.{where} GROUP BY u.id HAVING COUNT(*) > 1 ORDER BY u.extension",
            (value,),
        ).fetchone()
        if row is not None:
            raise ConfigError(
                f"user {row[0]} is linked to {row[1]} channels; unlink all but one before turning twinning off"
            )

    # -- channels ---------------------------------------------------------------------

    def add_channel(self, account_name: str, username: str, password: str | None = None,
                    max_bindings: int = 1) -> Channel:
        with self._write():
            return self._add_channel(self.account(account_name), username, password, max_bindings)

    def _add_channel(self, account: Account, username: str, password: str | None,
                     max_bindings: int = 1) -> Channel:
        """Insert a channel; the caller holds the write transaction."""
        if not 1 <= max_bindings <= MAX_BINDINGS_PER_CHANNEL:
            raise ConfigError(f"max bindings must be 1-{MAX_BINDINGS_PER_CHANNEL}, not {max_bindings}")
        username = _check_username(username)
        password = generate_password() if password is None else _check_password(password)
        if self._conn.execute("SELECT 1 FROM channels WHERE username = ?", (username,)).fetchone():
            raise ConfigError(f"channel {username!r} already exists")
        row = {
            "account_id": account.id,
            "username": username,
            "password": password,
            "max_bindings": max_bindings,
            "created_at": time.time(),
        }
        channel_id = self.db["channels"].insert(row).last_pk
        return Channel(channel_id, account.id, username, password, max_bindings)

    def channel_by_username(self, account_id: int, username: str) -> Channel | None:
        row = self._conn.execute(_SQL_CHANNEL_BY_USERNAME, (account_id, username)).fetchone()
        return Channel(*row) if row else None

    def channel_by_id(self, channel_id: int) -> Channel | None:
        row = self._conn.execute(
            f"SELECT {_CHANNEL_COLS} FROM channels WHERE id = ?", (channel_id,)
        ).fetchone()
        return Channel(*row) if row else None

    def _channel(self, account: Account, username: str) -> Channel:
        channel = self.channel_by_username(account.id, username)
        if channel is None:
            raise ConfigError(f"channel {username!r} does not exist in account {account.name!r}")
        return channel

    def list_channels(self, account_name: str) -> list[ChannelStatus]:
        """The channel overview (SPEC §21): live bindings and the logged-in user."""
        account = self.account(account_name)
        now = time.time()
        conn = self._conn
        channels = [
            Channel(*row)
            for row in conn.execute(
                f"SELECT {_CHANNEL_COLS} FROM channels WHERE account_id = ? ORDER BY username",
                (account.id,),
            )
        ]
        bindings: dict[int, list[Binding]] = {}
        for row in conn.execute(
            f"SELECT {', '.join('b.' + c for c in _BINDING_COLS.split(', '))} "
            "FROM bindings b JOIN channels c ON c.id = b.channel_id "
            "WHERE c.account_id = ? AND b.expires_at > ? "
            "ORDER BY b.q DESC, b.registered_at DESC, b.id DESC",
            (account.id, now),
        ):
            bindings.setdefault(row[0], []).append(Binding(*row))
        users = {
            row[0]: _user_from_row(row[1:])
            for row in conn.execute(
                f"SELECT l.channel_id, {', '.join('u.' + c for c in _USER_COLS.split(', '))} "
                "FROM logins l JOIN users u ON u.id = l.user_id WHERE u.account_id = ?",
                (account.id,),
            )
        }
        return [
            ChannelStatus(ch, tuple(bindings.get(ch.id, ())), users.get(ch.id)) for ch in channels
        ]

    # -- users and logins -------------------------------------------------------------

    def add_user(
        self,
        account_name: str,
        extension: str | int,
        name: str,
        pin: str | int,
        channels: Iterable[str] = (),
    ) -> User:
        """Add a user extension and log it in on ``channels`` (usernames)."""
        with self._write():
            account = self.account(account_name)
            user = self._add_user(account, extension, name, pin)
            for username in channels:
                self._login(self._channel(account, username), user)
        return user

    def _add_user(self, account: Account, extension: str | int, name: str, pin: str | int) -> User:
        """Insert a user and its 'user' extension; the caller holds the write transaction."""
        number = _check_extension(account, extension)
        name = _check_name(name)
        pin = check_pin_format(pin)
        taken = self._conn.execute(
            "SELECT type FROM extensions WHERE account_id = ? AND number = ?", (account.id, number)
        ).fetchone()
        if taken:
            raise ConfigError(f"extension {number} already exists in account {account.name!r}")
        user_id = (
            self.db["users"]
            .insert(
                {
                    "account_id": account.id,
                    "extension": number,
                    "name": name,
                    "pin": pin,
                    "created_at": time.time(),
                }
            )
            .last_pk
        )
        self.db["extensions"].insert(
            {"account_id": account.id, "number": number, "type": "user", "target_id": user_id}
        )
        return User(user_id, account.id, number, name, pin)

    def _login(self, channel: Channel, user: User) -> None:
        """Put ``user`` on ``channel``, replacing whoever is there; the caller holds the write
        transaction. A channel another user is permanently linked to is refused; the
        user's own link to it is kept."""
        self._check_takeover(channel, user)
        self._conn.execute(
            "INSERT INTO logins (channel_id, user_id, linked, logged_in_at) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (channel_id) DO UPDATE SET user_id = excluded.user_id, "
            "linked = CASE WHEN logins.user_id = excluded.user_id THEN logins.linked ELSE 0 END, "
            "logged_in_at = excluded.logged_in_at",
            (channel.id, user.id, time.time()),
        )

    def user_by_extension(self, account_id: int, extension: str) -> User | None:
        row = self._conn.execute(
            f"SELECT {_USER_COLS} FROM users WHERE account_id = ? AND extension = ?",
            (account_id, str(extension)),
        ).fetchone()
        return _user_from_row(row) if row else None

    def user_by_id(self, user_id: int) -> User | None:
        row = self._conn.execute(f"SELECT {_USER_COLS} FROM users WHERE id = ?", (user_id,)).fetchone()
        return _user_from_row(row) if row else None

    def _user(self, account: Account, extension: str | int) -> User:
        user = self.user_by_extension(account.id, str(extension).strip())
        if user is None:
            raise ConfigError(f"user {extension} does not exist in account {account.name!r}")
        return user

    def update_user(
        self,
        account_name: str,
        extension: str | int,
        *,
        name: str | None = None,
        pin: str | int | None = None,
        twinning: bool | None = None,
        may_park: bool | None = None,
        may_time_config: bool | None = None,
        may_external: bool | None = None,
        may_international: bool | None = None,
        may_record_prompts: bool | None = None,
        may_play_recordings: bool | None = None,
    ) -> User:
        """Change a user's name, PIN, twinning flag or rights (None leaves it as it is).

        The administrator may set PIN 0000 (the user must choose a new one at the next
        login, SPEC §29) but no other trivial PIN.
        """
        flags = {"twinning": twinning, "may_park": may_park, "may_time_config": may_time_config,
                 "may_external": may_external, "may_international": may_international,
                 "may_record_prompts": may_record_prompts, "may_play_recordings": may_play_recordings}
        changes: dict[str, object] = {k: int(v) for k, v in flags.items() if v is not None}
        if name is not None:
            changes["name"] = _check_name(name)
        if pin is not None:
            changes["pin"] = check_new_pin(pin, allow_reset=True)
        if not changes:
            raise ConfigError("nothing to change: give at least one setting")
        with self._write() as conn:
            account = self.account(account_name)
            user = self._user(account, extension)
            if twinning is False and user.twinning:
                self._check_single_links("id = ?", user.id)
            conn.execute(
                f"UPDATE users SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                (*changes.values(), user.id),
            )
            return self._user(account, user.extension)

    def list_users(self, account_name: str) -> list[User]:
        account = self.account(account_name)
        rows = self._conn.execute(
            f"SELECT {_USER_COLS} FROM users WHERE account_id = ? ORDER BY extension",
            (account.id,),
        )
        return [_user_from_row(row) for row in rows]

    def login(self, account_name: str, extension: str | int, channel_username: str) -> None:
        """Place a user on a channel WITHOUT the hotdesk/twinning policy: the user stays on
        their other channels (as ``user add --channel`` and the CSV import do). A channel
        another user is permanently linked to is still refused.

        901 and ``softswitch login`` use ``login_user``, which applies the policy.
        """
        with self._write():
            account = self.account(account_name)
            self._login(self._channel(account, channel_username), self._user(account, extension))

    def logout(self, account_name: str, channel_username: str) -> User:
        """Log whoever is on the channel out; see ``logout_channel`` (refused when linked)."""
        return self.logout_channel(account_name, channel_username)

    def user_on_channel(self, channel_id: int) -> User | None:
        row = self._conn.execute(
            f"SELECT {', '.join('u.' + c for c in _USER_COLS.split(', '))} "
            "FROM logins l JOIN users u ON u.id = l.user_id WHERE l.channel_id = ?",
            (channel_id,),
        ).fetchone()
        return _user_from_row(row) if row else None

    def channels_of_user(self, user_id: int) -> list[Channel]:
        rows = self._conn.execute(
            f"SELECT {', '.join('c.' + c for c in _CHANNEL_COLS.split(', '))} "
            "FROM logins l JOIN channels c ON c.id = l.channel_id WHERE l.user_id = ? "
            "ORDER BY l.logged_in_at, c.id",
            (user_id,),
        )
        return [Channel(*row) for row in rows]

    # -- bindings (RFC 3261 §10.3) ------------------------------------------------------

    def save_binding(self, binding: Binding) -> None:
        """Add or refresh a binding; beyond the channel's max_bindings the oldest go."""
        b = binding
        try:
            with self._write() as conn:
                conn.execute(
                    _SQL_UPSERT_BINDING,
                    (
                        b.channel_id, b.contact, b.expires_at, b.source, b.user_agent,
                        b.call_id, b.cseq, b.q, b.instance, b.registered_at,
                    ),
                )
                conn.execute(_SQL_TRIM_BINDINGS, (b.channel_id, b.contact))
        except sqlite3.IntegrityError:
            raise ConfigError(f"channel {b.channel_id} does not exist") from None

    def remove_binding(self, channel_id: int, contact: str) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM bindings WHERE channel_id = ? AND contact = ?", (channel_id, contact)
            )

    def remove_all_bindings(self, channel_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM bindings WHERE channel_id = ?", (channel_id,))

    def bindings(self, channel_id: int, now: float) -> list[Binding]:
        """Unexpired bindings, best first (highest q, then most recent)."""
        return [Binding(*row) for row in self._conn.execute(_SQL_BINDINGS, (channel_id, now))]

    def all_bindings(self, now: float) -> list[Binding]:
        """Every unexpired binding (the daemon's location service loads them at start)."""
        return [Binding(*row) for row in self._conn.execute(
            f"SELECT {_BINDING_COLS} FROM bindings WHERE expires_at > ? ORDER BY registered_at", (now,))]

    def apply_bindings(self, saves: Sequence[Binding], removals: Sequence[tuple[int, str]],
                       cleared: Sequence[int]) -> None:
        """Write a batch of registrar changes in ONE transaction (the daemon's write-behind).

        Order: whole channels cleared, single contacts removed, then upserts (each trimmed to
        the channel's max_bindings as in save_binding). Bindings of channels deleted in the
        meantime are skipped rather than failing the batch.
        """
        with self._write() as conn:
            for channel_id in cleared:
                conn.execute("DELETE FROM bindings WHERE channel_id = ?", (channel_id,))
            conn.executemany("DELETE FROM bindings WHERE channel_id = ? AND contact = ?", removals)
            existing = {row[0] for row in conn.execute("SELECT id FROM channels")} if saves else set()
            for b in saves:
                if b.channel_id not in existing:
                    continue
                conn.execute(_SQL_UPSERT_BINDING, (
                    b.channel_id, b.contact, b.expires_at, b.source, b.user_agent,
                    b.call_id, b.cseq, b.q, b.instance, b.registered_at,
                ))
                conn.execute(_SQL_TRIM_BINDINGS, (b.channel_id, b.contact))

    def purge_expired_bindings(self, now: float) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,)).rowcount

    # -- call records -----------------------------------------------------------------

    def add_cdr(
        self,
        account_id: int,
        call_id: str,
        caller: str,
        callee: str,
        started_at: float,
        answered_at: float | None,
        ended_at: float,
        disposition: str,
        hangup_by: str = "",
        sip_status: int = 0,
        caller_name: str = "",
        answered_by: str = "",
    ) -> int:
        """Write a call detail record; returns its id."""
        row = {
            "account_id": account_id,
            "call_id": call_id,
            "caller": caller,
            "caller_name": caller_name,
            "callee": callee,
            "started_at": started_at,
            "answered_at": answered_at,
            "ended_at": ended_at,
            "disposition": disposition,
            "hangup_by": hangup_by,
            "sip_status": sip_status,
            "answered_by": answered_by,
        }
        try:
            with self._write() as conn:
                return int(
                    conn.execute(
                        f"INSERT INTO cdrs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()),
                    ).lastrowid
                )
        except sqlite3.IntegrityError:
            raise ConfigError(f"account {account_id} does not exist") from None

    def list_cdrs(self, account_name: str, limit: int = 100) -> list[Cdr]:
        """The account's most recent CDRs, newest first."""
        if not 1 <= limit <= MAX_CDR_LIMIT:
            raise ConfigError(f"limit must be between 1 and {MAX_CDR_LIMIT}")
        account = self.account(account_name)
        rows = self._conn.execute(
            f"SELECT {_CDR_COLS} FROM cdrs WHERE account_id = ? "
            "ORDER BY started_at DESC, id DESC LIMIT ?",
            (account.id, limit),
        )
        return [Cdr(*row[:-1], quality=json.loads(row[-1] or "{}")) for row in rows]

    def put_live_call(self, call: LiveCall) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO live_calls (call_id, account_id, caller, callee, state, "
                "started_at, answered_at, legs, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.call_id, call.account_id, call.caller, call.callee, call.state,
                    call.started_at, call.answered_at, json.dumps(list(call.legs)), time.time(),
                ),
            )

    def apply_call_changes(self, live: Sequence[LiveCall], ended: Sequence[str], cdrs: Sequence[Cdr]) -> None:
        """The daemon's write-behind for calls: live-call upserts, removals and finished CDRs
        in ONE transaction (``Cdr.id`` is ignored; SQLite assigns it)."""
        now = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO live_calls (call_id, account_id, caller, callee, state, "
                "started_at, answered_at, legs, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.call_id, c.account_id, c.caller, c.callee, c.state, c.started_at, c.answered_at,
                  json.dumps(list(c.legs)), now) for c in live])
            conn.executemany("DELETE FROM live_calls WHERE call_id = ?", [(cid,) for cid in ended])
            conn.executemany(
                "INSERT INTO cdrs (account_id, call_id, caller, caller_name, callee, started_at, answered_at, "
                "ended_at, disposition, hangup_by, sip_status, answered_by, quality) "
                "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?)",
                [(c.account_id, c.call_id, c.caller, c.caller_name, c.callee, c.started_at, c.answered_at,
                  c.ended_at, c.disposition, c.hangup_by, c.sip_status, c.answered_by,
                  json.dumps(c.quality, sort_keys=True), c.account_id)
                 for c in cdrs])

    def remove_live_call(self, call_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM live_calls WHERE call_id = ?", (call_id,))

    def clear_live_calls(self) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM live_calls")

    def list_live_calls(self) -> list[LiveCall]:
        rows = self._conn.execute(
            "SELECT call_id, account_id, caller, callee, state, started_at, answered_at, legs "
            "FROM live_calls ORDER BY started_at, call_id"
        )
        return [LiveCall(*row[:7], legs=tuple(json.loads(row[7]))) for row in rows]

    # -- bulk -------------------------------------------------------------------------

    def import_csv(self, account_name: str, path: str | Path) -> int:
        """Import channels and users from CSV, all or nothing; returns the rows imported.

        Columns (header row required, any order): channel, password, extension, name,
        pin. An empty password is generated. With extension, name and pin all empty the
        row creates only the channel; otherwise it creates the user and logs it in on
        the channel.
        """
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                return self._import_rows(account_name, csv.DictReader(handle), str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a valid UTF-8 CSV file ({exc})") from None

    def _import_rows(self, account_name: str, reader: csv.DictReader, label: str) -> int:
        header = [(name or "").strip().lower() for name in (reader.fieldnames or ())]
        if not header:
            raise ConfigError(f"{label} is empty; the first line must name the columns")
        missing = [column for column in CSV_COLUMNS if column not in header]
        if missing:
            raise ConfigError(f"{label} line 1: missing column(s): {', '.join(missing)}")
        reader.fieldnames = header
        count = 0
        with self._write():
            account = self.account(account_name)
            for row in reader:
                values = {k: (row.get(k) or "").strip() for k in CSV_COLUMNS}
                if not any(values.values()):
                    continue  # blank line
                try:
                    self._import_row(account, values)
                except ConfigError as exc:
                    raise ConfigError(f"{label} line {reader.line_num}: {exc}") from None
                count += 1
        return count

    def _import_row(self, account: Account, values: dict[str, str]) -> None:
        channel = self._add_channel(account, values["channel"], values["password"] or None)
        if not (values["extension"] or values["name"] or values["pin"]):
            return
        self._login(channel, self._add_user(account, values["extension"], values["name"], values["pin"]))

    def ensure_demo(self) -> list[tuple[str, str, str, str]] | None:
        """On an empty database create the 'demo' account; None when not empty.

        Returns (channel, password, extension, name) rows for registering softphones.
        """
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM accounts LIMIT 1").fetchone():
                return None
            account = self._insert_demo_account()
            rows = []
            for extension, name in zip(DEMO_EXTENSIONS, DEMO_NAMES):
                channel = self._add_channel(account, f"demo-{extension}", None)
                user = self._add_user(account, extension, name, _random_pin())
                self._login(channel, user)
                rows.append((channel.username, channel.password, extension, name))
        logger.info("created demo account %r with %d channels", account.name, len(rows))
        return rows

    def _insert_demo_account(self) -> Account:
        account_id = self.db["accounts"].insert(
            {
                "name": DEMO_ACCOUNT,
                "domain": DEMO_DOMAIN,
                "digits": 3,
                "language": DEFAULT_LANGUAGE,
                "timezone": DEFAULT_TIMEZONE,
                "created_at": time.time(),
            }
        ).last_pk
        return Account(account_id, DEMO_ACCOUNT, DEMO_DOMAIN, 3)


DEMO_ACCOUNT = "demo"
DEMO_DOMAIN = "demo.softswitch.local"
DEMO_EXTENSIONS: Sequence[str] = ("201", "202", "203", "204")
DEMO_NAMES: Sequence[str] = ("Alice", "Bob", "Carol", "Dave")
