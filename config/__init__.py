"""Configuration: SQLite schema and migrations (``config.schema``), the store that reads
and writes it (``config.store.Store``), and the frozen models it returns
(``config.models``). Nothing here imports ``softswitch`` or ``media``.

Kept import-free on purpose: ``import config.models`` must not pull in sqlite.
"""
