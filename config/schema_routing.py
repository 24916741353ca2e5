"""Schema migration 5: routing (issue 5, SPEC §19) — trunks, phone numbers, numberplans.

Adds ``accounts.country`` (numbering rules for E.164 normalisation, default NL) and the
tables below. Schema 1 ("main", named after the account) must exist for every account:
this migration creates it for existing accounts, and a trigger creates it for each new
one, so code that inserts accounts need not know about schemas.

Numberplans are keyed by (schema_id, number); schedule entries, holidays and the
override refer to a plan by that pair, so a plan that is still in use cannot be deleted
(foreign key) and deleting a schema cascades to everything in it.

Every table in ``ROUTING_TABLES`` is configuration: each change bumps ``config_version``
(migration 3), which the daemon uses as its cache key. ``trunk_status`` is not: the daemon
writes it (one row per monitored trunk, what ``softswitch trunk list`` shows under STATUS),
clears it at start like ``live_calls``, and a write there must not look like a change of
configuration.
"""
from __future__ import annotations

import sqlite_utils

from config.schema_triggers import add_config_version_triggers

ROUTING_TABLES = (
    "trunks", "phone_numbers", "numberplan_schemas", "numberplans", "numberplan_entries",
    "schedule_entries", "holidays", "numberplan_overrides",
)

_STATEMENTS = (
    "ALTER TABLE accounts ADD COLUMN country TEXT NOT NULL DEFAULT 'NL'",
    """
    CREATE TABLE trunks (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts(id),
        name        TEXT NOT NULL COLLATE NOCASE,
        host        TEXT NOT NULL,
        port        INTEGER NOT NULL DEFAULT 5060 CHECK (port BETWEEN 1 AND 65535),
        transport   TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp')),
        username    TEXT NOT NULL DEFAULT '',
        password    TEXT NOT NULL DEFAULT '',
        register    INTEGER NOT NULL DEFAULT 0 CHECK (register IN (0, 1)),
        priority    INTEGER NOT NULL DEFAULT 1,
        created_at  REAL NOT NULL,
        UNIQUE (account_id, name)
    )
    """,
    # number: E.164, unique across all accounts (a DID reaches exactly one customer).
    # user_id set: the number is that user's personal number and in no numberplan.
    """
    CREATE TABLE phone_numbers (
        id           INTEGER PRIMARY KEY,
        account_id   INTEGER NOT NULL REFERENCES accounts(id),
        number       TEXT NOT NULL UNIQUE,
        description  TEXT NOT NULL DEFAULT '',
        trunk_id     INTEGER REFERENCES trunks(id) ON DELETE SET NULL,
        user_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at   REAL NOT NULL
    )
    """,
    "CREATE INDEX phone_numbers_account ON phone_numbers (account_id)",
    "CREATE INDEX phone_numbers_trunk ON phone_numbers (trunk_id)",
    "CREATE INDEX phone_numbers_user ON phone_numbers (user_id)",
    """
    CREATE TABLE numberplan_schemas (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts(id),
        number      INTEGER NOT NULL CHECK (number BETWEEN 1 AND 99),
        name        TEXT NOT NULL COLLATE NOCASE,
        UNIQUE (account_id, number),
        UNIQUE (account_id, name)
    )
    """,
    """
    CREATE TABLE numberplans (
        id         INTEGER PRIMARY KEY,
        schema_id  INTEGER NOT NULL REFERENCES numberplan_schemas(id) ON DELETE CASCADE,
        number     INTEGER NOT NULL CHECK (number BETWEEN 1 AND 99),
        name       TEXT NOT NULL,
        UNIQUE (schema_id, number)
    )
    """,
    """
    CREATE TABLE numberplan_entries (
        plan_id    INTEGER NOT NULL REFERENCES numberplans(id) ON DELETE CASCADE,
        number_id  INTEGER NOT NULL REFERENCES phone_numbers(id) ON DELETE CASCADE,
        extension  TEXT NOT NULL,
        prefix     TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (plan_id, number_id)
    )
    """,
    "CREATE INDEX numberplan_entries_number ON numberplan_entries (number_id)",
    # Schedule entries and holidays are deleted by id (softswitch schedule delete ACCOUNT 3):
    # AUTOINCREMENT, so an id seen in an old listing never names a newer entry.
    # kind 'day': days is a bitmask (bit 0 = Monday), start/end minutes of the day (end
    # 1440 = 24:00, end <= start = into the next day). kind 'period': start/end minutes of
    # the week from Monday 00:00 (end <= start wraps past Sunday midnight).
    """
    CREATE TABLE schedule_entries (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        schema_id  INTEGER NOT NULL REFERENCES numberplan_schemas(id) ON DELETE CASCADE,
        plan       INTEGER NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('day', 'period')),
        days       INTEGER NOT NULL DEFAULT 0 CHECK (days BETWEEN 0 AND 127),
        start_minute  INTEGER NOT NULL,
        end_minute    INTEGER NOT NULL,
        FOREIGN KEY (schema_id, plan) REFERENCES numberplans (schema_id, number)
    )
    """,
    "CREATE INDEX schedule_entries_schema ON schedule_entries (schema_id, plan)",
    # starts_at/ends_at: unix time; entered in the account's local time.
    """
    CREATE TABLE holidays (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        schema_id    INTEGER NOT NULL REFERENCES numberplan_schemas(id) ON DELETE CASCADE,
        plan         INTEGER NOT NULL,
        starts_at    REAL NOT NULL,
        ends_at      REAL NOT NULL CHECK (ends_at > starts_at),
        description  TEXT NOT NULL DEFAULT '',
        FOREIGN KEY (schema_id, plan) REFERENCES numberplans (schema_id, number)
    )
    """,
    "CREATE INDEX holidays_schema ON holidays (schema_id, plan)",
    """
    CREATE TABLE numberplan_overrides (
        schema_id  INTEGER PRIMARY KEY REFERENCES numberplan_schemas(id) ON DELETE CASCADE,
        plan       INTEGER NOT NULL,
        set_at     REAL NOT NULL,
        FOREIGN KEY (schema_id, plan) REFERENCES numberplans (schema_id, number)
    )
    """,
    "CREATE INDEX numberplan_overrides_plan ON numberplan_overrides (schema_id, plan)",
    # Ephemeral, written by the daemon's trunk monitor (softswitch.trunks); updated_at is
    # the unix time of the last change of state or detail, i.e. "since when".
    """
    CREATE TABLE trunk_status (
        trunk_id    INTEGER PRIMARY KEY REFERENCES trunks(id) ON DELETE CASCADE,
        state       TEXT NOT NULL CHECK (state IN ('unknown', 'registering', 'up', 'down', 'auth failed')),
        detail      TEXT NOT NULL DEFAULT '',
        updated_at  REAL NOT NULL
    )
    """,
    "INSERT INTO numberplan_schemas (account_id, number, name) SELECT id, 1, name FROM accounts",
    """
    CREATE TRIGGER accounts_main_schema AFTER INSERT ON accounts
    BEGIN
        INSERT INTO numberplan_schemas (account_id, number, name) VALUES (NEW.id, 1, NEW.name);
    END
    """,
)


def v5_routing(db: sqlite_utils.Database) -> None:
    """Version 5: accounts.country, trunks and their live status, phone numbers, numberplan
    schemas with their numberplans, DID entries, time schedule, holidays and override;
    schema 1 per account."""
    for statement in _STATEMENTS:
        db.execute(statement)
    add_config_version_triggers(db, ROUTING_TABLES)
