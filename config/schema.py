"""The SQLite schema of the softswitch and the migrations that build it.

The schema is created and upgraded by code: ``MIGRATIONS`` is an ordered list of
functions, migration *n* (1-based) brings a database from version *n-1* to *n*. The
``schema_version`` table records every applied version with the time it was applied.
``migrate()`` runs the missing migrations inside ONE ``BEGIN IMMEDIATE`` transaction, so
two processes opening the same new database (daemon and CLI) cannot both migrate it,
and a failing migration leaves the database as it was.

This module never opens a database: ``config.store.Store`` owns the connection and hands
it in. Never edit a released migration; append a new one.

Version 1 holds the tables of the first milestone: accounts (tenants, SPEC §1), channels
(SIP credentials of one device, SPEC §21), bindings (registered contacts, RFC 3261 §10),
users and their logins on channels (SPEC §3), the numbering plan (extensions), CDRs and
the live-call snapshot the daemon publishes for ``softswitch calls``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import sqlite_utils

from config.schema_features import v4_features
from config.schema_reach import v6_reach
from config.schema_routing import v5_routing
from config.schema_triggers import add_config_version_triggers

logger = logging.getLogger(__name__)

Migration = Callable[[sqlite_utils.Database], None]


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the code (e.g. it is newer)."""


_V1_STATEMENTS = (
    """
    CREATE TABLE accounts (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        domain      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        digits      INTEGER NOT NULL CHECK (digits IN (3, 4, 5)),
        language    TEXT NOT NULL DEFAULT 'nl',
        timezone    TEXT NOT NULL DEFAULT 'Europe/Amsterdam',
        created_at  REAL NOT NULL
    )
    """,
    # The digest username is globally unique, so (account_id, username) is as well;
    # the composite unique index serves the REGISTER hot path lookup.
    """
    CREATE TABLE channels (
        id            INTEGER PRIMARY KEY,
        account_id    INTEGER NOT NULL REFERENCES accounts(id),
        username      TEXT NOT NULL UNIQUE,
        password      TEXT NOT NULL,
        max_bindings  INTEGER NOT NULL DEFAULT 1 CHECK (max_bindings >= 1),
        created_at    REAL NOT NULL,
        UNIQUE (account_id, username)
    )
    """,
    """
    CREATE TABLE bindings (
        id             INTEGER PRIMARY KEY,
        channel_id     INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
        contact        TEXT NOT NULL,
        expires_at     REAL NOT NULL,
        source         TEXT NOT NULL DEFAULT '',
        user_agent     TEXT NOT NULL DEFAULT '',
        call_id        TEXT NOT NULL DEFAULT '',
        cseq           INTEGER NOT NULL DEFAULT 0,
        q              REAL NOT NULL DEFAULT 1.0,
        instance       TEXT NOT NULL DEFAULT '',
        registered_at  REAL NOT NULL DEFAULT 0,
        UNIQUE (channel_id, contact)
    )
    """,
    "CREATE INDEX bindings_expires_at ON bindings (expires_at)",
    """
    CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts(id),
        extension   TEXT NOT NULL,
        name        TEXT NOT NULL,
        pin         TEXT NOT NULL,
        created_at  REAL NOT NULL,
        UNIQUE (account_id, extension)
    )
    """,
    # A channel holds at most one user (channel_id is the key); a user may be on several.
    """
    CREATE TABLE logins (
        channel_id    INTEGER PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
        user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        linked        INTEGER NOT NULL DEFAULT 0 CHECK (linked IN (0, 1)),
        logged_in_at  REAL NOT NULL
    )
    """,
    "CREATE INDEX logins_user_id ON logins (user_id)",
    """
    CREATE TABLE extensions (
        account_id  INTEGER NOT NULL REFERENCES accounts(id),
        number      TEXT NOT NULL,
        type        TEXT NOT NULL,
        target_id   INTEGER,
        PRIMARY KEY (account_id, number)
    )
    """,
    """
    CREATE TABLE cdrs (
        id           INTEGER PRIMARY KEY,
        account_id   INTEGER NOT NULL REFERENCES accounts(id),
        call_id      TEXT NOT NULL,
        caller       TEXT NOT NULL,
        caller_name  TEXT NOT NULL DEFAULT '',
        callee       TEXT NOT NULL,
        started_at   REAL NOT NULL,
        answered_at  REAL,
        ended_at     REAL NOT NULL,
        disposition  TEXT NOT NULL,
        hangup_by    TEXT NOT NULL DEFAULT '',
        sip_status   INTEGER NOT NULL DEFAULT 0,
        answered_by  TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX cdrs_account_started ON cdrs (account_id, started_at)",
    # Ephemeral: the daemon clears it at start and rewrites rows as calls change.
    """
    CREATE TABLE live_calls (
        call_id      TEXT PRIMARY KEY,
        account_id   INTEGER NOT NULL,
        caller       TEXT NOT NULL,
        callee       TEXT NOT NULL,
        state        TEXT NOT NULL,
        started_at   REAL NOT NULL,
        answered_at  REAL,
        legs         TEXT NOT NULL DEFAULT '[]',
        updated_at   REAL NOT NULL
    )
    """,
)


def _v1_initial(db: sqlite_utils.Database) -> None:
    """Version 1: accounts, channels, bindings, users, logins, extensions, cdrs, live calls."""
    for statement in _V1_STATEMENTS:
        db.execute(statement)


def _v2_cdr_quality(db: sqlite_utils.Database) -> None:
    """Call quality per CDR: packets relayed and the loss/jitter the phones reported by RTCP,
    as a JSON object (``{"caller": {...}, "callee": {...}}``); '{}' for older records."""
    db.execute("ALTER TABLE cdrs ADD COLUMN quality TEXT NOT NULL DEFAULT '{}'")


CONFIG_TABLES = ("accounts", "channels", "users", "logins", "extensions")


def _v3_config_version(db: sqlite_utils.Database) -> None:
    """A counter that every change to the configuration tables bumps (by trigger), so the
    daemon can cache accounts, channels and users and drop the cache exactly when the
    configuration changes — not when its own registrations or CDRs are written."""
    db.execute("CREATE TABLE config_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
    db.execute("INSERT INTO config_version (id, version) VALUES (1, 0)")
    add_config_version_triggers(db, CONFIG_TABLES)


# Migrations 4-6 live beside the store code that uses their tables.
MIGRATIONS: tuple[Migration, ...] = (_v1_initial, _v2_cdr_quality, _v3_config_version, v4_features, v5_routing,
                                     v6_reach)
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(db: sqlite_utils.Database) -> int:
    """The version recorded in ``schema_version``; 0 for a database never migrated."""
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite_utils.Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring ``db`` up to ``len(migrations)``; return the number of migrations applied.

    Idempotent: on an up-to-date database it only reads the version. Raises
    ``SchemaError`` when the database is newer than this code.
    """
    target = len(migrations)
    if current_version(db) == target:  # fast path, no write lock taken
        return 0
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated meanwhile.
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        version = current_version(db)
        if version > target:
            raise SchemaError(
                f"database schema version {version} is newer than this softswitch "
                f"(knows up to {target}); upgrade softswitch"
            )
        for number in range(version + 1, target + 1):
            logger.info("applying schema migration %d (%s)", number, migrations[number - 1].__name__)
            migrations[number - 1](db)
            db.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (number, time.time()),
            )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return target - version

