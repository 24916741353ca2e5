"""The per-channel limit on failed 901/902 logins (softswitch.features.login)."""
from __future__ import annotations

import pytest

from softswitch.features import login


@pytest.fixture(autouse=True)
def _fresh() -> None:
    login._failures.clear()


def test_the_sixth_failure_within_the_window_blocks_the_channel() -> None:
    for i in range(login.MAX_FAILURES - 1):
        login._failures[7].append(1000.0 + i)
    assert not login._blocked(7, 1010.0)
    login._failures[7].append(1010.0)
    assert login._blocked(7, 1011.0)
    assert not login._blocked(8, 1011.0)  # per channel


def test_old_failures_expire_with_the_window() -> None:
    for i in range(login.MAX_FAILURES):
        login._failures[7].append(1000.0 + i)
    last = 1000.0 + login.MAX_FAILURES - 1
    assert login._blocked(7, last + login.FAILURE_WINDOW - 10)
    assert not login._blocked(7, 1000.0 + login.FAILURE_WINDOW + 0.5)  # the first one expired
