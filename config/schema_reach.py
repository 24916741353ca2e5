"""Schema migration 6: the tables of REACH, the per-user reachability rules (SPEC §4, §29).

Every table belongs to one user and goes with it (ON DELETE CASCADE). Profile and
status names are unique per user, case-insensitively. A profile column left NULL
inherits from the user's default profile (model: config/reach.py). Devices are stored
as channel usernames (JSON), not channel ids: a device that is deleted or logged out
later simply stops ringing, and the evaluator falls back to all devices when a profile
names none that the user still has.

Every table is configuration, so every change bumps ``config_version`` (as migration 3
does for the core tables): the daemon drops its cached REACH configuration then,
including after it writes a *910 forward itself.
"""
from __future__ import annotations

import sqlite_utils

from config.schema_triggers import add_config_version_triggers

REACH_TABLES = ("reach_profiles", "reach_statuses", "reach_schedule", "reach_class_map",
                "reach_manual_status", "reach_forward_override", "reach_device_override",
                "reach_caller_ids", "reach_barring")

_STATEMENTS = (
    """
    CREATE TABLE reach_profiles (
        id                   INTEGER PRIMARY KEY,
        user_id              INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name                 TEXT NOT NULL COLLATE NOCASE,
        is_default           INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
        colour               TEXT NOT NULL DEFAULT '',
        ring                 TEXT,
        forward_always       TEXT,
        forward_busy         TEXT,
        forward_noanswer     TEXT,
        noanswer_timeout     INTEGER,
        forward_unreachable  TEXT,
        caller_id            TEXT,
        forward_caller_id    TEXT CHECK (forward_caller_id IN ('calling', 'called')),
        dnd                  INTEGER CHECK (dnd IN (0, 1)),
        call_waiting         INTEGER CHECK (call_waiting IN (0, 1)),
        UNIQUE (user_id, name)
    )
    """,
    "CREATE UNIQUE INDEX reach_profiles_one_default ON reach_profiles (user_id) WHERE is_default = 1",
    """
    CREATE TABLE reach_statuses (
        id       INTEGER PRIMARY KEY,
        user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name     TEXT NOT NULL COLLATE NOCASE,
        UNIQUE (user_id, name)
    )
    """,
    # days: bit d set = weekday d (Monday = 0), start/end in minutes of the day; days = 0
    # is a per-period entry with start/end in minutes of the week.
    """
    CREATE TABLE reach_schedule (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        status_id  INTEGER NOT NULL REFERENCES reach_statuses(id) ON DELETE CASCADE,
        days       INTEGER NOT NULL CHECK (days BETWEEN 0 AND 127),
        start_min  INTEGER NOT NULL,
        end_min    INTEGER NOT NULL
    )
    """,
    "CREATE INDEX reach_schedule_user ON reach_schedule (user_id)",
    """
    CREATE TABLE reach_class_map (
        status_id   INTEGER NOT NULL REFERENCES reach_statuses(id) ON DELETE CASCADE,
        call_class  TEXT NOT NULL,
        profile_id  INTEGER NOT NULL REFERENCES reach_profiles(id) ON DELETE CASCADE,
        PRIMARY KEY (status_id, call_class)
    )
    """,
    """
    CREATE TABLE reach_manual_status (
        user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        status_id  INTEGER NOT NULL REFERENCES reach_statuses(id) ON DELETE CASCADE,
        until      REAL
    )
    """,
    """
    CREATE TABLE reach_forward_override (
        user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        kind         TEXT NOT NULL CHECK (kind IN ('always', 'busy')),
        destination  TEXT NOT NULL,
        set_at       REAL NOT NULL
    )
    """,
    """
    CREATE TABLE reach_device_override (
        user_id  INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        devices  TEXT NOT NULL,
        until    REAL
    )
    """,
    """
    CREATE TABLE reach_caller_ids (
        user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        slot     TEXT NOT NULL CHECK (slot IN ('0', '2', '3', '4', '5', '6', '7', '8', '9')),
        number   TEXT NOT NULL,
        PRIMARY KEY (user_id, slot)
    )
    """,
    """
    CREATE TABLE reach_barring (
        user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        category  TEXT NOT NULL,
        PRIMARY KEY (user_id, category)
    )
    """,
)


def v6_reach(db: sqlite_utils.Database) -> None:
    """Version 6: REACH profiles, statuses, schedule, class mapping, overrides, dynamic
    caller IDs and call barring, each change bumping config_version."""
    for statement in _STATEMENTS:
        db.execute(statement)
    add_config_version_triggers(db, REACH_TABLES)
