"""Errors of the configuration layer (shared by the store and its feature mixins)."""
from __future__ import annotations


class ConfigError(ValueError):
    """Something an administrator or device asked for is invalid; nothing was written."""
