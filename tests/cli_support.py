"""Shared helpers of the CLI tests: a CliRunner bound to one database, and the two
assertions every CLI test makes (success; one ``error:`` line with exit status 1)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

import cli


def invoker(db: str, monkeypatch: pytest.MonkeyPatch, *prefix: str) -> Callable[..., Result]:
    """``invoke(*args)`` runs ``softswitch --db DB *prefix *args`` in-process."""
    monkeypatch.delenv("SOFTSWITCH_DB", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli.main, ["--db", db, *prefix, *args])

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def fails(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {message}\n"
    assert result.stdout == ""
