"""Fixtures for integration tests: real phones (pjsua2) and the real daemon.

- ``phone_lab``: a fresh :class:`~tests.integration.phones.PhoneLab` per test.
- ``daemon``: a factory.  ``daemon()`` provisions tenant ``acme`` (domain ``acme.test``,
  3 digits, channels acme-201/202/203 with users 201 Alice, 202 Bob, 203 Carol logged
  in on them) through the CLI, starts ``softswitch serve`` on loopback with its own
  SIP port and RTP range, and returns the :class:`~tests.integration.daemon.Daemon`.
  At teardown every daemon is stopped with SIGTERM; the test fails if one exited
  non-zero or logged a Python traceback.
- ``acme``: the provisioned tenant's data (users, channels, passwords, PINs).

Typical use::

    def test_internal_call(daemon, phone_lab):
        switch = daemon()
        alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
        assert switch.register(alice, "201") == 200
        assert switch.register(bob, "202") == 200
        call = alice.dial("202")
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from .daemon import ACME, Daemon, Tenant, provision
from .phones import PhoneLab


@pytest.fixture
def phone_lab() -> Iterator[PhoneLab]:
    with PhoneLab() as lab:
        yield lab


@pytest.fixture
def acme() -> Tenant:
    return ACME


DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    started: list[Daemon] = []

    def start(*, tenant: Tenant | None = ACME, extra_args: Sequence[str] = (),
              db_path: Path | None = None, **kwargs: Any) -> Daemon:
        """Provision ``tenant`` (None: nothing) into a fresh database and start a daemon."""
        n = len(started)
        db = db_path if db_path is not None else tmp_path / f"softswitch-{n}.db"
        if tenant is not None:
            provision(db, tenant)
        d = Daemon(db, extra_args=extra_args, log_path=tmp_path / f"daemon-{n}.log", tenant=tenant, **kwargs)
        started.append(d)
        d.start()
        return d

    yield start

    problems: list[str] = []
    for d in started:
        died_early = d.process is not None and d.process.poll() is not None and not getattr(d, "stopped", False)
        d.stop()
        found = d.problems()
        if died_early:
            found.append("daemon was no longer running at teardown")
        if found:
            problems.append(f"{d!r}: {'; '.join(found)}\n--- {d.log_path} (tail)\n{d.log_tail(80)}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
