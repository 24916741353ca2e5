"""The ``config_version`` triggers every configuration table gets (migrations 3-6).

Any INSERT, UPDATE or DELETE on such a table bumps the single ``config_version`` row, so
the daemon's configuration cache (``Directory``) is dropped exactly when an administrator
changes something, from any connection, and not by the daemon's own runtime writes.
"""
from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils


def add_config_version_triggers(db: sqlite_utils.Database, tables: Iterable[str]) -> None:
    for table in tables:
        for event in ("INSERT", "UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER {table}_{event.lower()}_config_version AFTER {event} ON {table} "
                       "BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; END")
