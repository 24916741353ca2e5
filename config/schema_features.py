"""Schema migration 4: the configuration and runtime records of the in-call features (issue 4).

- users: the twinning flag and the rights of SPEC §3.4 (our default list). There is no
  "must change PIN" column: PIN ``0000`` means exactly that (SPEC §29).
- accounts: the account's twinning switch (SPEC §3.7), call-parking timers and slots
  (SPEC §7), the in-call ``##`` prefix and its timeout (SPEC §28), and the number of fixed
  devices a twinning user may be logged in on.
- privacy_groups / privacy_group_members (SPEC §5): per member the rights it gets over
  the other members of the group.
- parked_calls: runtime records the daemon writes (like live_calls, cleared when it
  starts) so that ``softswitch parked`` can show the slots.

The configuration tables get the config_version triggers of migration 3, so the daemon's
cache drops exactly when they change; parked_calls, like live_calls, does not.
Never edit this migration once released; append a new one.
"""
from __future__ import annotations

import sqlite_utils

from config.schema_triggers import add_config_version_triggers

_USER_COLUMNS = (
    "twinning INTEGER NOT NULL DEFAULT 0 CHECK (twinning IN (0, 1))",
    "may_park INTEGER NOT NULL DEFAULT 0 CHECK (may_park IN (0, 1))",
    "may_time_config INTEGER NOT NULL DEFAULT 0 CHECK (may_time_config IN (0, 1))",
    "may_external INTEGER NOT NULL DEFAULT 1 CHECK (may_external IN (0, 1))",
    "may_international INTEGER NOT NULL DEFAULT 0 CHECK (may_international IN (0, 1))",
    "may_record_prompts INTEGER NOT NULL DEFAULT 0 CHECK (may_record_prompts IN (0, 1))",
    "may_play_recordings INTEGER NOT NULL DEFAULT 0 CHECK (may_play_recordings IN (0, 1))",
)

_ACCOUNT_COLUMNS = (
    "twinning INTEGER NOT NULL DEFAULT 0 CHECK (twinning IN (0, 1))",
    "park_timeout INTEGER NOT NULL DEFAULT 120",
    "park_recall_limit INTEGER NOT NULL DEFAULT 3",
    "park_first_slot INTEGER NOT NULL DEFAULT 701",
    "park_slots INTEGER NOT NULL DEFAULT 99",
    "dtmf_prefix TEXT NOT NULL DEFAULT '##'",
    "dtmf_timeout REAL NOT NULL DEFAULT 3.0",
    "max_fixed_devices INTEGER NOT NULL DEFAULT 2",
)

_TABLES = (
    # Number and name are both unique per account; the name case-insensitively (the
    # column's NOCASE collation applies to the unique index).
    """
    CREATE TABLE privacy_groups (
        id          INTEGER PRIMARY KEY,
        account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        number      INTEGER NOT NULL CHECK (number BETWEEN 1 AND 99),
        name        TEXT NOT NULL COLLATE NOCASE,
        created_at  REAL NOT NULL,
        UNIQUE (account_id, number),
        UNIQUE (account_id, name)
    )
    """,
    """
    CREATE TABLE privacy_group_members (
        group_id         INTEGER NOT NULL REFERENCES privacy_groups(id) ON DELETE CASCADE,
        user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        pickup           INTEGER NOT NULL DEFAULT 0 CHECK (pickup IN (0, 1)),
        presence         INTEGER NOT NULL DEFAULT 0 CHECK (presence IN (0, 1)),
        notifications    INTEGER NOT NULL DEFAULT 0 CHECK (notifications IN (0, 1)),
        notify_delay     INTEGER NOT NULL DEFAULT 0 CHECK (notify_delay >= 0),
        retrieve_parked  INTEGER NOT NULL DEFAULT 0 CHECK (retrieve_parked IN (0, 1)),
        PRIMARY KEY (group_id, user_id)
    )
    """,
    # "Which groups is this user in": the daemon's question on every pickup and retrieval.
    "CREATE INDEX privacy_group_members_user_id ON privacy_group_members (user_id)",
    """
    CREATE TABLE parked_calls (
        account_id        INTEGER NOT NULL,
        slot              INTEGER NOT NULL,
        call_id           TEXT NOT NULL,
        parker_extension  TEXT NOT NULL,
        parked_party      TEXT NOT NULL DEFAULT '',
        parked_at         REAL NOT NULL,
        recall_at         REAL NOT NULL,
        PRIMARY KEY (account_id, slot)
    )
    """,
)

FEATURE_CONFIG_TABLES = ("privacy_groups", "privacy_group_members")


def v4_features(db: sqlite_utils.Database) -> None:
    """Version 4: user rights and twinning, account feature settings, privacy groups, parked calls."""
    for column in _USER_COLUMNS:
        db.execute(f"ALTER TABLE users ADD COLUMN {column}")
    for column in _ACCOUNT_COLUMNS:
        db.execute(f"ALTER TABLE accounts ADD COLUMN {column}")
    for statement in _TABLES:
        db.execute(statement)
    add_config_version_triggers(db, FEATURE_CONFIG_TABLES)
