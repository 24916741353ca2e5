"""Store methods for routing (issue 5, SPEC §19); mixed into ``config.store.Store``.

Trunks, phone numbers (DIDs, personal numbers of users), numberplan schemas with their
numberplans, DID → extension entries, time schedule, holidays and manual override.

Every method takes the account by id (the daemon and the 915 IVR know ids; the CLI
looks the name up first) and numbers in any form the account's country allows (see
``config.routing.normalise_number``); they are stored as E.164. Each write is one
transaction; invalid input raises ``ConfigError`` and writes nothing. Invariants kept
here, beyond the foreign keys of migration 5:

- a DID belongs to one account, and to at most one schema (the schema of the plans
  that map it); a personal number is in no numberplan;
- schema 1 exists for every account and is neither renamed nor deleted;
- time-schedule entries of a schema never overlap (the error names both entries);
- schedule entries, holidays and the override refer to numberplans that exist.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from config.errors import ConfigError
from config.models import Account, User
from config.routing import (
    MAIN_SCHEMA, MAX_DESCRIPTION_LENGTH, MAX_PREFIX_LENGTH, MAX_SCHEMA, MAX_TRUNK_PRIORITY,
    MIN_TRUNK_PRIORITY, TRANSPORTS, AccountRouting, Holiday, Numberplan, NumberplanSchema, PhoneNumber,
    PlanEntry, ScheduleEntry, SchemaConfig, Trunk, check_country, check_plan_number, day_entry, find_overlap,
    format_week_minute, normalise_number, parse_host_port, period_entry,
)

MAX_NAME_LENGTH = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

_TRUNK_COLS = "id, account_id, name, host, port, transport, username, password, register, priority"
_NUMBER_COLS = "id, account_id, number, description, trunk_id, user_id"
_SCHEMA_COLS = "id, account_id, number, name"

# What the daemon's trunk monitor (softswitch.trunks) reports per trunk; "unknown" until the
# first answer to OPTIONS, "registering" until a registering trunk's first 2xx to REGISTER.
TRUNK_STATES = ("unknown", "registering", "up", "down", "auth failed")
MAX_STATUS_DETAIL_LENGTH = 200  # the detail quotes the carrier's reason phrase; bounded


@dataclass(frozen=True)
class TrunkStatus:
    """The running daemon's view of one trunk (table ``trunk_status``, cleared at start)."""

    trunk_id: int
    state: str  # one of TRUNK_STATES
    detail: str  # why: "OPTIONS timed out", "403 Forbidden", "registered for 300 s"
    since: float  # unix time of the last change of state or detail


@contextlib.contextmanager
def _as_config_error() -> Iterator[None]:
    """Turn the pure layer's ValueError into the store's ConfigError."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _trunk(row: tuple) -> Trunk:
    return Trunk(*row[:8], register=bool(row[8]), priority=row[9])


def _days_mask(days: Iterable[int]) -> int:
    return sum(1 << day for day in set(days))


def _mask_days(mask: int) -> frozenset[int]:
    return frozenset(day for day in range(7) if mask & (1 << day))


def _check_label(value: str, what: str, limit: int, *, strip: bool = True) -> str:
    value = value.strip() if strip else value
    if len(value) > limit:
        raise ConfigError(f"{what} is longer than {limit} characters")
    if any(not ch.isprintable() for ch in value):
        raise ConfigError(f"{what} must not contain control characters")
    return value


def _check_name(value: str, what: str) -> str:
    value = _check_label(value, what, MAX_NAME_LENGTH)
    if not value:
        raise ConfigError(f"{what} must not be empty")
    return value


def _check_trunk_name(name: str) -> str:
    if not name or len(name) > MAX_NAME_LENGTH or not set(name) <= _NAME_CHARS or not name[0].isalnum():
        raise ConfigError(f"trunk name {name!r} is invalid: use 1-{MAX_NAME_LENGTH} letters, digits, '.', '_' "
                          "or '-', starting with a letter or digit")
    return name


def _aware_timestamp(moment: dt.datetime, what: str) -> float:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(f"the {what} of a holiday needs a time zone")
    return moment.timestamp()


class RoutingStore:
    """Routing configuration (trunks, numbers, numberplans); see the module docstring."""

    if TYPE_CHECKING:  # provided by config.store.Store
        _conn: sqlite3.Connection

        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def account_by_id(self, account_id: int) -> Account | None: ...
        def user_by_extension(self, account_id: int, extension: str) -> User | None: ...

    # -- helpers ------------------------------------------------------------------------

    def _routing_account(self, account_id: int) -> Account:
        account = self.account_by_id(account_id)
        if account is None:
            raise ConfigError(f"account {account_id} does not exist")
        return account

    @contextlib.contextmanager
    def _routing_snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one consistent state (a read transaction, unless the
        caller is already inside a transaction)."""
        conn = self._conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _normalise_did(self, account_id: int, number: str) -> str:
        with _as_config_error():
            return normalise_number(number, self.account_country(account_id))

    # -- account country -------------------------------------------------------------------

    def account_country(self, account_id: int) -> str:
        """The ISO country whose numbering rules normalise the account's numbers."""
        row = self._conn.execute("SELECT country FROM accounts WHERE id = ?", (account_id,)).fetchone()
        if row is None:
            raise ConfigError(f"account {account_id} does not exist")
        return str(row[0])

    def set_account_country(self, account_id: int, country: str) -> str:
        """Change the numbering rules for numbers entered from now on; stored numbers are
        E.164 already and stay as they are."""
        with _as_config_error():
            code = check_country(country)
        with self._write() as conn:
            self._routing_account(account_id)
            conn.execute("UPDATE accounts SET country = ? WHERE id = ?", (code, account_id))
        return code

    # -- trunks ------------------------------------------------------------------------------

    def add_trunk(self, account_id: int, name: str, host: str, *, transport: str = "udp", username: str = "",
                  password: str = "", register: bool = False, priority: int = MIN_TRUNK_PRIORITY) -> Trunk:
        """Add a trunk; ``host`` is ``host[:port]`` (port 5060 by default)."""
        name = _check_trunk_name(name)
        with _as_config_error():
            hostname, port = parse_host_port(host)
        trunk = self._checked_trunk(Trunk(0, account_id, name, hostname, port, transport, username, password,
                                          register, priority))
        with self._write() as conn:
            account = self._routing_account(account_id)
            if self._trunk_row(account_id, name) is not None:
                raise ConfigError(f"trunk {name!r} already exists in account {account.name!r}")
            trunk_id = conn.execute(
                "INSERT INTO trunks (account_id, name, host, port, transport, username, password, register, "
                "priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (account_id, trunk.name, trunk.host, trunk.port, trunk.transport, trunk.username, trunk.password,
                 int(trunk.register), trunk.priority, time.time())).lastrowid
        return Trunk(trunk_id, account_id, trunk.name, trunk.host, trunk.port, trunk.transport, trunk.username,
                     trunk.password, trunk.register, trunk.priority)

    @staticmethod
    def _checked_trunk(trunk: Trunk) -> Trunk:
        if trunk.transport not in TRANSPORTS:
            raise ConfigError(f"transport must be one of {', '.join(TRANSPORTS)}, not {trunk.transport!r}")
        if not MIN_TRUNK_PRIORITY <= trunk.priority <= MAX_TRUNK_PRIORITY:
            raise ConfigError(f"priority must be {MIN_TRUNK_PRIORITY}-{MAX_TRUNK_PRIORITY}, not {trunk.priority}")
        if bool(trunk.username) != bool(trunk.password):
            raise ConfigError("give both a username and a password for the trunk, or neither")
        if any(ch.isspace() or not ch.isprintable() for ch in trunk.username + trunk.password):
            raise ConfigError("trunk username and password must not contain spaces or control characters")
        if trunk.register and not trunk.username:
            raise ConfigError("registering at the carrier needs the trunk's username and password")
        return trunk

    def _trunk_row(self, account_id: int, name: str) -> Trunk | None:
        row = self._conn.execute(f"SELECT {_TRUNK_COLS} FROM trunks WHERE account_id = ? AND name = ?",
                                 (account_id, name)).fetchone()
        return _trunk(row) if row else None

    def _existing_trunk(self, account: Account, name: str) -> Trunk:
        trunk = self._trunk_row(account.id, name)
        if trunk is None:
            raise ConfigError(f"trunk {name!r} does not exist in account {account.name!r}")
        return trunk

    def update_trunk(self, account_id: int, name: str, *, host: str | None = None, transport: str | None = None,
                     username: str | None = None, password: str | None = None, register: bool | None = None,
                     priority: int | None = None) -> Trunk:
        """Change the given fields of a trunk (None = keep); empty username and password
        remove the credentials."""
        with self._write() as conn:
            old = self._existing_trunk(self._routing_account(account_id), name)
            hostname, port = old.host, old.port
            if host is not None:
                with _as_config_error():
                    hostname, port = parse_host_port(host)
            new = self._checked_trunk(Trunk(
                old.id, account_id, old.name, hostname, port, old.transport if transport is None else transport,
                old.username if username is None else username, old.password if password is None else password,
                old.register if register is None else register, old.priority if priority is None else priority))
            conn.execute(
                "UPDATE trunks SET host = ?, port = ?, transport = ?, username = ?, password = ?, register = ?, "
                "priority = ? WHERE id = ?",
                (new.host, new.port, new.transport, new.username, new.password, int(new.register), new.priority,
                 new.id))
        return new

    def delete_trunk(self, account_id: int, name: str) -> int:
        """Delete a trunk; returns how many of the account's numbers it carried (they now
        have no trunk)."""
        with self._write() as conn:
            trunk = self._existing_trunk(self._routing_account(account_id), name)
            carried = conn.execute("SELECT COUNT(*) FROM phone_numbers WHERE trunk_id = ?", (trunk.id,)).fetchone()[0]
            conn.execute("DELETE FROM trunks WHERE id = ?", (trunk.id,))
        return int(carried)

    def trunks(self, account_id: int) -> list[Trunk]:
        """The account's trunks in fail-over order: priority, then name."""
        rows = self._conn.execute(f"SELECT {_TRUNK_COLS} FROM trunks WHERE account_id = ? ORDER BY priority, name",
                                  (account_id,))
        return [_trunk(row) for row in rows]

    def all_trunks(self) -> list[Trunk]:
        """Every trunk of every account (the daemon registers and monitors them)."""
        rows = self._conn.execute(f"SELECT {_TRUNK_COLS} FROM trunks ORDER BY account_id, priority, name")
        return [_trunk(row) for row in rows]

    # -- trunk status (written by the daemon through its writer connection) -------------------

    def set_trunk_status(self, trunk_id: int, state: str, detail: str, since: float) -> None:
        """Record what the daemon knows about a trunk; a trunk deleted meanwhile is skipped
        (its row would break the foreign key, and nobody can list it any more)."""
        if state not in TRUNK_STATES:
            raise ValueError(f"trunk state {state!r} is not one of {', '.join(TRUNK_STATES)}")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO trunk_status (trunk_id, state, detail, updated_at) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM trunks WHERE id = ?) "
                "ON CONFLICT (trunk_id) DO UPDATE SET state = excluded.state, detail = excluded.detail, "
                "updated_at = excluded.updated_at",
                (trunk_id, state, detail[:MAX_STATUS_DETAIL_LENGTH], since, trunk_id))

    def clear_trunk_status(self) -> None:
        """Forget every trunk status: at daemon start and stop, when nobody monitors them."""
        with self._write() as conn:
            conn.execute("DELETE FROM trunk_status")

    def trunk_statuses(self, account_id: int) -> dict[int, TrunkStatus]:
        """Status of the account's trunks by trunk id; a trunk without a row is not (yet)
        monitored by a running daemon."""
        rows = self._conn.execute(
            "SELECT s.trunk_id, s.state, s.detail, s.updated_at FROM trunk_status s "
            "JOIN trunks t ON t.id = s.trunk_id WHERE t.account_id = ?", (account_id,))
        return {row[0]: TrunkStatus(*row) for row in rows}

    # -- phone numbers -----------------------------------------------------------------------

    def add_number(self, account_id: int, number: str, *, trunk: str | None = None,
                   description: str = "") -> PhoneNumber:
        """Add a DID to the account; unique across all accounts."""
        e164 = self._normalise_did(account_id, number)
        description = _check_label(description, "description", MAX_DESCRIPTION_LENGTH)
        with self._write() as conn:
            account = self._routing_account(account_id)
            trunk_id = None if trunk is None else self._existing_trunk(account, trunk).id
            self._refuse_taken(e164)
            number_id = conn.execute(
                "INSERT INTO phone_numbers (account_id, number, description, trunk_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (account_id, e164, description, trunk_id, time.time())).lastrowid
        return PhoneNumber(number_id, account_id, e164, description, trunk_id)

    def _refuse_taken(self, e164: str) -> None:
        owner = self.number_owner(e164)
        if owner is not None:
            raise ConfigError(f"{e164} is already a number of account "
                              f"{self._routing_account(owner.account_id).name!r}")

    def _account_number(self, account: Account, number: str) -> PhoneNumber:
        e164 = self._normalise_did(account.id, number)
        found = self.number_owner(e164)
        if found is None or found.account_id != account.id:
            raise ConfigError(f"{e164} is not a number of account {account.name!r} "
                              "(add it with: softswitch number add)")
        return found

    def numbers(self, account_id: int) -> list[PhoneNumber]:
        rows = self._conn.execute(f"SELECT {_NUMBER_COLS} FROM phone_numbers WHERE account_id = ? ORDER BY number",
                                  (account_id,))
        return [PhoneNumber(*row) for row in rows]

    def delete_number(self, account_id: int, number: str) -> int:
        """Delete a DID; returns from how many numberplans it was removed."""
        with self._write() as conn:
            found = self._account_number(self._routing_account(account_id), number)
            mapped = conn.execute("SELECT COUNT(*) FROM numberplan_entries WHERE number_id = ?",
                                  (found.id,)).fetchone()[0]
            conn.execute("DELETE FROM phone_numbers WHERE id = ?", (found.id,))
        return int(mapped)

    def number_owner(self, e164: str) -> PhoneNumber | None:
        """The account (and, for a personal number, the user) that owns an E.164 number."""
        row = self._conn.execute(f"SELECT {_NUMBER_COLS} FROM phone_numbers WHERE number = ?", (e164,)).fetchone()
        return PhoneNumber(*row) if row else None

    def personal_numbers(self, user_id: int) -> list[PhoneNumber]:
        rows = self._conn.execute(f"SELECT {_NUMBER_COLS} FROM phone_numbers WHERE user_id = ? ORDER BY number",
                                  (user_id,))
        return [PhoneNumber(*row) for row in rows]

    def set_personal_number(self, account_id: int, extension: str, number: str) -> PhoneNumber:
        """Make ``number`` the personal number of user ``extension``: a new DID of the
        account, or one it has that is in no numberplan."""
        e164 = self._normalise_did(account_id, number)
        with self._write() as conn:
            account = self._routing_account(account_id)
            user = self._routing_user(account, extension)
            found = self.number_owner(e164)
            if found is None:
                number_id = conn.execute(
                    "INSERT INTO phone_numbers (account_id, number, user_id, created_at) VALUES (?, ?, ?, ?)",
                    (account_id, e164, user.id, time.time())).lastrowid
                return PhoneNumber(number_id, account_id, e164, user_id=user.id)
            if found.account_id != account_id:
                raise ConfigError(f"{e164} is already a number of account "
                                  f"{self._routing_account(found.account_id).name!r}")
            if found.user_id is not None and found.user_id != user.id:
                other = conn.execute("SELECT extension FROM users WHERE id = ?", (found.user_id,)).fetchone()[0]
                raise ConfigError(f"{e164} is already the personal number of user {other}")
            self._refuse_mapped(found, "a personal number cannot be in a numberplan: unmap it first")
            conn.execute("UPDATE phone_numbers SET user_id = ? WHERE id = ?", (user.id, found.id))
        return PhoneNumber(found.id, account_id, e164, found.description, found.trunk_id, user.id)

    def remove_personal_number(self, account_id: int, extension: str, number: str) -> PhoneNumber:
        """Unlink a personal number from its user; the DID stays with the account."""
        with self._write() as conn:
            account = self._routing_account(account_id)
            user = self._routing_user(account, extension)
            found = self._account_number(account, number)
            if found.user_id != user.id:
                raise ConfigError(f"{found.number} is not a personal number of user {user.extension}")
            conn.execute("UPDATE phone_numbers SET user_id = NULL WHERE id = ?", (found.id,))
        return PhoneNumber(found.id, account_id, found.number, found.description, found.trunk_id)

    def _routing_user(self, account: Account, extension: str) -> User:
        user = self.user_by_extension(account.id, str(extension).strip())
        if user is None:
            raise ConfigError(f"user {extension} does not exist in account {account.name!r}")
        return user

    def _refuse_mapped(self, number: PhoneNumber, consequence: str) -> None:
        row = self._conn.execute(
            "SELECT s.number, s.name, p.number FROM numberplan_entries e JOIN numberplans p ON p.id = e.plan_id "
            "JOIN numberplan_schemas s ON s.id = p.schema_id WHERE e.number_id = ? ORDER BY s.number, p.number",
            (number.id,)).fetchone()
        if row is not None:
            raise ConfigError(f"{number.number} is in numberplan {row[2]} of schema {row[0]} ({row[1]}); {consequence}")

    # -- schemas -------------------------------------------------------------------------------

    def schemas(self, account_id: int) -> list[NumberplanSchema]:
        rows = self._conn.execute(
            f"SELECT {_SCHEMA_COLS} FROM numberplan_schemas WHERE account_id = ? ORDER BY number", (account_id,))
        return [NumberplanSchema(*row) for row in rows]

    def _schema_of_account(self, account: Account, number: int) -> NumberplanSchema:
        row = self._conn.execute(
            f"SELECT {_SCHEMA_COLS} FROM numberplan_schemas WHERE account_id = ? AND number = ?",
            (account.id, number)).fetchone()
        if row is None:
            raise ConfigError(f"schema {number} does not exist in account {account.name!r}")
        return NumberplanSchema(*row)

    def _refuse_schema_name(self, account: Account, name: str) -> None:
        row = self._conn.execute("SELECT number FROM numberplan_schemas WHERE account_id = ? AND name = ?",
                                 (account.id, name)).fetchone()
        if row is not None:
            raise ConfigError(f"schema {row[0]} of account {account.name!r} is already called {name!r}")

    def add_schema(self, account_id: int, name: str) -> NumberplanSchema:
        """Add a schema with the next free number."""
        name = _check_name(name, "schema name")
        with self._write() as conn:
            account = self._routing_account(account_id)
            self._refuse_schema_name(account, name)
            number = conn.execute("SELECT MAX(number) + 1 FROM numberplan_schemas WHERE account_id = ?",
                                  (account_id,)).fetchone()[0] or MAIN_SCHEMA
            if number > MAX_SCHEMA:
                raise ConfigError(f"account {account.name!r} already has {MAX_SCHEMA} schemas")
            schema_id = conn.execute("INSERT INTO numberplan_schemas (account_id, number, name) VALUES (?, ?, ?)",
                                     (account_id, number, name)).lastrowid
        return NumberplanSchema(schema_id, account_id, number, name)

    def rename_schema(self, account_id: int, number: int, name: str) -> NumberplanSchema:
        name = _check_name(name, "schema name")
        with self._write() as conn:
            account = self._routing_account(account_id)
            schema = self._schema_of_account(account, number)
            if number == MAIN_SCHEMA:
                raise ConfigError("schema 1 is the account's main schema: it keeps the account's name")
            if name.lower() != schema.name.lower():
                self._refuse_schema_name(account, name)
            conn.execute("UPDATE numberplan_schemas SET name = ? WHERE id = ?", (name, schema.id))
        return NumberplanSchema(schema.id, account_id, number, name)

    def delete_schema(self, account_id: int, number: int) -> SchemaConfig:
        """Delete a schema with its numberplans, entries, schedule, holidays and override;
        returns what was deleted."""
        with self._write() as conn:
            account = self._routing_account(account_id)
            schema = self._schema_of_account(account, number)
            if number == MAIN_SCHEMA:
                raise ConfigError("schema 1 is the account's main schema and cannot be deleted")
            deleted = self._load_schema_config(schema)
            conn.execute("DELETE FROM numberplan_schemas WHERE id = ?", (schema.id,))
        return deleted

    # -- numberplans -----------------------------------------------------------------------------

    def _numberplan_id(self, schema: NumberplanSchema, plan: int) -> int | None:
        row = self._conn.execute("SELECT id FROM numberplans WHERE schema_id = ? AND number = ?",
                                 (schema.id, plan)).fetchone()
        return None if row is None else int(row[0])

    def _existing_numberplan_id(self, schema: NumberplanSchema, plan: int) -> int:
        with _as_config_error():
            check_plan_number(plan)
        plan_id = self._numberplan_id(schema, plan)
        if plan_id is None:
            raise ConfigError(f"numberplan {plan} does not exist in schema {schema.number} ({schema.name}); "
                              "add it with: softswitch numberplan add")
        return plan_id

    def add_numberplan(self, account_id: int, schema: int, plan: int, name: str) -> Numberplan:
        with _as_config_error():
            check_plan_number(plan)
        name = _check_name(name, "numberplan name")
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            if self._numberplan_id(found, plan) is not None:
                raise ConfigError(f"numberplan {plan} already exists in schema {schema} ({found.name})")
            conn.execute("INSERT INTO numberplans (schema_id, number, name) VALUES (?, ?, ?)",
                         (found.id, plan, name))
        return Numberplan(plan, name)

    def rename_numberplan(self, account_id: int, schema: int, plan: int, name: str) -> Numberplan:
        name = _check_name(name, "numberplan name")
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            plan_id = self._existing_numberplan_id(found, plan)
            conn.execute("UPDATE numberplans SET name = ? WHERE id = ?", (name, plan_id))
        return Numberplan(plan, name)

    def numberplans(self, account_id: int, schema: int) -> list[Numberplan]:
        found = self._schema_of_account(self._routing_account(account_id), schema)
        rows = self._conn.execute("SELECT number, name FROM numberplans WHERE schema_id = ? ORDER BY number",
                                  (found.id,))
        return [Numberplan(*row) for row in rows]

    def delete_numberplan(self, account_id: int, schema: int, plan: int) -> Numberplan:
        """Delete a numberplan and its DID entries; refused while the schedule, a holiday or
        the override uses it."""
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            plan_id = self._existing_numberplan_id(found, plan)
            users = self._numberplan_users(found, plan)
            if users:
                raise ConfigError(f"numberplan {plan} of schema {schema} is used by {', '.join(users)}; "
                                  "delete or change those first")
            name = conn.execute("SELECT name FROM numberplans WHERE id = ?", (plan_id,)).fetchone()[0]
            conn.execute("DELETE FROM numberplans WHERE id = ?", (plan_id,))
        return Numberplan(plan, name)

    def _numberplan_users(self, schema: NumberplanSchema, plan: int) -> list[str]:
        """What refers to a plan: 'schedule entry 4 (mon-fri 08:00-18:00)', 'holiday 2 (…)', 'the override'."""
        conn = self._conn
        users = [f"schedule entry {entry.id} ({entry.describe()})"
                 for entry in self._schema_schedule(schema) if entry.plan == plan]
        users += [f"holiday {row[0]} ({row[1] or 'no description'})" for row in conn.execute(
            "SELECT id, description FROM holidays WHERE schema_id = ? AND plan = ? ORDER BY id", (schema.id, plan))]
        if conn.execute("SELECT 1 FROM numberplan_overrides WHERE schema_id = ? AND plan = ?",
                        (schema.id, plan)).fetchone():
            users.append("the manual override")
        return users

    def copy_numberplan(self, account_id: int, schema: int, source: int, target: int,
                        name: str | None = None) -> Numberplan:
        """Overwrite numberplan ``target`` with the DID entries of ``source`` (creating it,
        named ``name`` or after the source, when missing)."""
        if source == target:
            raise ConfigError(f"cannot copy numberplan {source} onto itself")
        with _as_config_error():
            check_plan_number(target)
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            source_id = self._existing_numberplan_id(found, source)
            source_name = conn.execute("SELECT name FROM numberplans WHERE id = ?", (source_id,)).fetchone()[0]
            target_id = self._numberplan_id(found, target)
            if target_id is None:
                target_name = _check_name(name or f"{source_name} (copy)", "numberplan name")
                target_id = conn.execute("INSERT INTO numberplans (schema_id, number, name) VALUES (?, ?, ?)",
                                         (found.id, target, target_name)).lastrowid
            else:
                target_name = conn.execute("SELECT name FROM numberplans WHERE id = ?", (target_id,)).fetchone()[0]
                if name is not None:
                    target_name = _check_name(name, "numberplan name")
                    conn.execute("UPDATE numberplans SET name = ? WHERE id = ?", (target_name, target_id))
                conn.execute("DELETE FROM numberplan_entries WHERE plan_id = ?", (target_id,))
            conn.execute("INSERT INTO numberplan_entries (plan_id, number_id, extension, prefix) "
                         "SELECT ?, number_id, extension, prefix FROM numberplan_entries WHERE plan_id = ?",
                         (target_id, source_id))
        return Numberplan(target, target_name)

    def map_number(self, account_id: int, schema: int, plan: int, number: str, extension: str,
                   prefix: str = "") -> PlanEntry:
        """Route ``number`` (a DID of the account) to ``extension`` while ``plan`` is active;
        replaces the plan's previous entry for that DID."""
        prefix = _check_label(prefix, "display prefix", MAX_PREFIX_LENGTH, strip=False)  # "Sales: " keeps its space
        with self._write() as conn:
            account = self._routing_account(account_id)
            found = self._schema_of_account(account, schema)
            plan_id = self._existing_numberplan_id(found, plan)
            did = self._account_number(account, number)
            if did.user_id is not None:
                owner = conn.execute("SELECT extension FROM users WHERE id = ?", (did.user_id,)).fetchone()[0]
                raise ConfigError(f"{did.number} is the personal number of user {owner}; "
                                  "a personal number cannot be in a numberplan")
            other = conn.execute(
                "SELECT s.number, s.name FROM numberplan_entries e JOIN numberplans p ON p.id = e.plan_id "
                "JOIN numberplan_schemas s ON s.id = p.schema_id WHERE e.number_id = ? AND s.id != ? LIMIT 1",
                (did.id, found.id)).fetchone()
            if other is not None:
                raise ConfigError(f"{did.number} is routed by schema {other[0]} ({other[1]}); "
                                  "a number belongs to one schema only")
            target = self._check_plan_target(account, extension)
            conn.execute(
                "INSERT INTO numberplan_entries (plan_id, number_id, extension, prefix) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (plan_id, number_id) DO UPDATE SET extension = excluded.extension, "
                "prefix = excluded.prefix", (plan_id, did.id, target, prefix))
        return PlanEntry(plan, did.number, target, prefix)

    def _check_plan_target(self, account: Account, extension: str) -> str:
        number = str(extension).strip()
        if not number.isascii() or not number.isdigit():
            raise ConfigError(f"extension {number!r} is not a number")
        if len(number) != account.digits:
            raise ConfigError(f"extension {number} has {len(number)} digits; account {account.name!r} "
                              f"uses {account.digits}")
        if not self._conn.execute("SELECT 1 FROM extensions WHERE account_id = ? AND number = ?",
                                  (account.id, number)).fetchone():
            raise ConfigError(f"extension {number} does not exist in account {account.name!r} "
                              "(numberplans route to existing extensions; so far those are user extensions)")
        return number

    def unmap_number(self, account_id: int, schema: int, plan: int, number: str) -> PlanEntry:
        with self._write() as conn:
            account = self._routing_account(account_id)
            found = self._schema_of_account(account, schema)
            plan_id = self._existing_numberplan_id(found, plan)
            did = self._account_number(account, number)
            row = conn.execute("SELECT extension, prefix FROM numberplan_entries WHERE plan_id = ? AND number_id = ?",
                               (plan_id, did.id)).fetchone()
            if row is None:
                raise ConfigError(f"{did.number} is not in numberplan {plan} of schema {schema}")
            conn.execute("DELETE FROM numberplan_entries WHERE plan_id = ? AND number_id = ?", (plan_id, did.id))
        return PlanEntry(plan, did.number, row[0], row[1])

    # -- time schedule -------------------------------------------------------------------------

    def _schema_schedule(self, schema: NumberplanSchema) -> list[ScheduleEntry]:
        rows = self._conn.execute(
            "SELECT id, plan, kind, start_minute, end_minute, days FROM schedule_entries WHERE schema_id = ? "
            "ORDER BY id", (schema.id,))
        return [ScheduleEntry(row[0], row[1], row[2], row[3], row[4], _mask_days(row[5])) for row in rows]

    def add_day_entry(self, account_id: int, schema: int, plan: int, days: Iterable[int], start: int,
                      end: int) -> ScheduleEntry:
        """A per-day entry: on ``days`` (0 = Monday) from ``start`` to ``end`` minutes of the
        day (``end`` 1440 = 24:00; ``end <= start`` = into the next day)."""
        with _as_config_error():
            entry = day_entry(plan, days, start, end)
        return self._add_schedule_entry(account_id, schema, entry)

    def add_period_entry(self, account_id: int, schema: int, plan: int, start: int, end: int) -> ScheduleEntry:
        """A per-period entry from week minute ``start`` to ``end`` (Monday 00:00 = 0; wraps
        past Sunday midnight when ``end <= start``)."""
        with _as_config_error():
            entry = period_entry(plan, start, end)
        return self._add_schedule_entry(account_id, schema, entry)

    def _add_schedule_entry(self, account_id: int, schema: int, entry: ScheduleEntry) -> ScheduleEntry:
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            self._existing_numberplan_id(found, entry.plan)
            clash = find_overlap(entry, self._schema_schedule(found))
            if clash is not None:
                other, minute = clash
                raise ConfigError(
                    f"schedule entry {entry.describe()} (numberplan {entry.plan}) overlaps entry {other.id}: "
                    f"{other.describe()} (numberplan {other.plan}), both cover {format_week_minute(minute)}")
            entry_id = conn.execute(
                "INSERT INTO schedule_entries (schema_id, plan, kind, days, start_minute, end_minute) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (found.id, entry.plan, entry.kind, _days_mask(entry.days), entry.start, entry.end)).lastrowid
        return ScheduleEntry(entry_id, entry.plan, entry.kind, entry.start, entry.end, entry.days)

    def delete_schedule_entry(self, account_id: int, entry_id: int) -> ScheduleEntry:
        with self._write() as conn:
            account = self._routing_account(account_id)
            row = conn.execute(
                "SELECT e.id, e.plan, e.kind, e.start_minute, e.end_minute, e.days FROM schedule_entries e "
                "JOIN numberplan_schemas s ON s.id = e.schema_id WHERE e.id = ? AND s.account_id = ?",
                (entry_id, account_id)).fetchone()
            if row is None:
                raise ConfigError(f"schedule entry {entry_id} does not exist in account {account.name!r}")
            conn.execute("DELETE FROM schedule_entries WHERE id = ?", (entry_id,))
        return ScheduleEntry(row[0], row[1], row[2], row[3], row[4], _mask_days(row[5]))

    # -- holidays and override -------------------------------------------------------------------

    def add_holiday(self, account_id: int, schema: int, plan: int, start: dt.datetime, end: dt.datetime,
                    description: str = "") -> Holiday:
        """``plan`` is active from ``start`` to ``end`` (aware datetimes) unless overridden;
        the 915 IVR's temporary change is such an entry."""
        starts_at, ends_at = _aware_timestamp(start, "start"), _aware_timestamp(end, "end")
        description = _check_label(description, "description", MAX_DESCRIPTION_LENGTH)
        with self._write() as conn:
            account = self._routing_account(account_id)
            if ends_at <= starts_at:
                zone = ZoneInfo(account.timezone)
                raise ConfigError(f"the holiday ends ({end.astimezone(zone):%Y-%m-%d %H:%M}) before it starts "
                                  f"({start.astimezone(zone):%Y-%m-%d %H:%M})")
            found = self._schema_of_account(account, schema)
            self._existing_numberplan_id(found, plan)
            holiday_id = conn.execute(
                "INSERT INTO holidays (schema_id, plan, starts_at, ends_at, description) VALUES (?, ?, ?, ?, ?)",
                (found.id, plan, starts_at, ends_at, description)).lastrowid
        return Holiday(holiday_id, plan, starts_at, ends_at, description)

    def delete_holiday(self, account_id: int, holiday_id: int) -> Holiday:
        with self._write() as conn:
            account = self._routing_account(account_id)
            row = conn.execute(
                "SELECT h.id, h.plan, h.starts_at, h.ends_at, h.description FROM holidays h "
                "JOIN numberplan_schemas s ON s.id = h.schema_id WHERE h.id = ? AND s.account_id = ?",
                (holiday_id, account_id)).fetchone()
            if row is None:
                raise ConfigError(f"holiday {holiday_id} does not exist in account {account.name!r}")
            conn.execute("DELETE FROM holidays WHERE id = ?", (holiday_id,))
        return Holiday(*row)

    def purge_holidays(self, account_id: int, now: float) -> int:
        """Delete the account's holidays that ended at or before ``now``; returns how many."""
        with self._write() as conn:
            self._routing_account(account_id)
            return int(conn.execute(
                "DELETE FROM holidays WHERE ends_at <= ? AND schema_id IN "
                "(SELECT id FROM numberplan_schemas WHERE account_id = ?)", (now, account_id)).rowcount)

    def set_override(self, account_id: int, schema: int, plan: int) -> None:
        """Make ``plan`` the active numberplan of the schema until the override is cleared."""
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            self._existing_numberplan_id(found, plan)
            conn.execute("INSERT INTO numberplan_overrides (schema_id, plan, set_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (schema_id) DO UPDATE SET plan = excluded.plan, set_at = excluded.set_at",
                         (found.id, plan, time.time()))

    def clear_override(self, account_id: int, schema: int) -> int | None:
        """Return the schema to holidays and time schedule; returns the plan that was forced."""
        with self._write() as conn:
            found = self._schema_of_account(self._routing_account(account_id), schema)
            row = conn.execute("DELETE FROM numberplan_overrides WHERE schema_id = ? RETURNING plan",
                               (found.id,)).fetchone()
        return None if row is None else int(row[0])

    # -- what the evaluator reads ----------------------------------------------------------------

    def _load_schema_config(self, schema: NumberplanSchema) -> SchemaConfig:
        conn = self._conn
        plans = tuple(Numberplan(*row) for row in conn.execute(
            "SELECT number, name FROM numberplans WHERE schema_id = ? ORDER BY number", (schema.id,)))
        entries = tuple(PlanEntry(*row) for row in conn.execute(
            "SELECT p.number, n.number, e.extension, e.prefix FROM numberplan_entries e "
            "JOIN numberplans p ON p.id = e.plan_id JOIN phone_numbers n ON n.id = e.number_id "
            "WHERE p.schema_id = ? ORDER BY p.number, n.number", (schema.id,)))
        holidays = tuple(Holiday(*row) for row in conn.execute(
            "SELECT id, plan, starts_at, ends_at, description FROM holidays WHERE schema_id = ? "
            "ORDER BY starts_at, id", (schema.id,)))
        override = conn.execute("SELECT plan FROM numberplan_overrides WHERE schema_id = ?", (schema.id,)).fetchone()
        return SchemaConfig(schema, plans, entries, tuple(self._schema_schedule(schema)), holidays,
                            None if override is None else int(override[0]))

    def schema_config(self, account_id: int, schema: int) -> SchemaConfig:
        """Everything ``config.numberplan`` needs about one schema, from one snapshot."""
        with self._routing_snapshot():
            return self._load_schema_config(self._schema_of_account(self._routing_account(account_id), schema))

    def account_routing(self, account_id: int) -> AccountRouting:
        """All schemas of the account with its time zone and country, from one snapshot:
        the daemon's per-account routing cache (keyed by ``config_version``)."""
        with self._routing_snapshot() as conn:
            account = self._routing_account(account_id)
            country = conn.execute("SELECT country FROM accounts WHERE id = ?", (account_id,)).fetchone()[0]
            schemas = tuple(self._load_schema_config(s) for s in self.schemas(account_id))
        return AccountRouting(account_id, account.timezone, country, schemas)

    def schema_of_did(self, e164: str) -> NumberplanSchema | None:
        """The schema whose numberplans route ``e164``; None when no plan maps it."""
        row = self._conn.execute(
            "SELECT s.id, s.account_id, s.number, s.name FROM phone_numbers n "
            "JOIN numberplan_entries e ON e.number_id = n.id JOIN numberplans p ON p.id = e.plan_id "
            "JOIN numberplan_schemas s ON s.id = p.schema_id WHERE n.number = ? LIMIT 1", (e164,)).fetchone()
        return NumberplanSchema(*row) if row else None
