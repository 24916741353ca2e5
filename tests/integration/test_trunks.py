"""Trunks against a carrier on loopback (SIPp as its registrar and keep-alive responder):
registration with digest authentication, up/down by OPTIONS, wrong credentials.

The daemon probes every second here (SOFTSWITCH_TRUNK_KEEPALIVE=1, read at start)."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .daemon import HOST, Daemon, Sipp

pytestmark = pytest.mark.integration

KEEPALIVE_S = "1"
STATUS_WAIT_S = 10.0  # bound on waiting for a status change (registration, one keep-alive round)


def carrier(tmp_path: Any) -> Sipp:
    """The carrier: answers until the test stops it (every probe is one SIPp call)."""
    return Sipp("trunk_carrier.xml", tmp_path, calls=100_000, timeout_s=60, recv_timeout_ms=10_000).start()


def trunk_row(switch: Daemon) -> dict[str, Any]:
    [row] = json.loads(switch.cli("trunk", "list", "acme", "--json").stdout)
    return row


def wait_for_status(switch: Daemon, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + STATUS_WAIT_S
    while (row := trunk_row(switch))["status"] != status and time.monotonic() < deadline:
        time.sleep(0.2)
    assert row["status"] == status, f"trunk is {row['status']} ({row['status_detail']}), not {status}:\n" \
                                    f"{switch.log_tail(40)}"
    return row


@pytest.fixture
def switch(daemon, monkeypatch) -> Daemon:
    """A daemon with one account and no phones (a trunk needs nothing else)."""
    monkeypatch.setenv("SOFTSWITCH_TRUNK_KEEPALIVE", KEEPALIVE_S)  # inherited by the daemon process
    running = daemon(tenant=None)
    running.cli("account", "add", "acme", "--domain", "acme.test", "--digits", "3")
    return running


def test_trunk_registers_with_digest_and_goes_down_when_the_carrier_stops(switch: Daemon, tmp_path) -> None:
    sipp = carrier(tmp_path)
    try:
        switch.cli("trunk", "add", "acme", "carrier", "--host", f"{HOST}:{sipp.local_port}",
                   "--username", "trunk-user", "--password", "trunk-secret", "--register")
        row = wait_for_status(switch, "up")  # picked up while running: no restart
        assert row["status_detail"] == "registered for 300 s"
        table = switch.cli("trunk", "list", "acme").stdout.splitlines()
        assert table[0].split()[-1] == "STATUS"
        assert " up since " in table[1] and table[1].endswith("(registered for 300 s)")
    finally:
        sipp.stop()
    assert sipp.poll() is not None
    row = wait_for_status(switch, "down")
    assert row["status_detail"] == "OPTIONS timed out"
    log = switch.log_text()
    assert "trunk acme/carrier: registering -> up (registered for 300 s)" in log
    assert "trunk acme/carrier: up -> down (OPTIONS timed out)" in log


def test_wrong_password_is_auth_failed(switch: Daemon, tmp_path) -> None:
    sipp = carrier(tmp_path)
    try:
        switch.cli("trunk", "add", "acme", "carrier", "--host", f"{HOST}:{sipp.local_port}",
                   "--username", "trunk-user", "--password", "not-the-secret", "--register")
        row = wait_for_status(switch, "auth failed")
        assert row["status_detail"] == "403 Forbidden"
    finally:
        sipp.stop()


def test_a_plain_trunk_is_up_while_the_carrier_answers_options(switch: Daemon, tmp_path) -> None:
    sipp = carrier(tmp_path)
    try:
        switch.cli("trunk", "add", "acme", "carrier", "--host", f"{HOST}:{sipp.local_port}")
        assert wait_for_status(switch, "up")["status_detail"] == "answers OPTIONS"
    finally:
        sipp.stop()
    wait_for_status(switch, "down")


def test_status_is_unknown_when_no_daemon_monitors_the_trunk(switch: Daemon, tmp_path) -> None:
    sipp = carrier(tmp_path)
    try:
        switch.cli("trunk", "add", "acme", "carrier", "--host", f"{HOST}:{sipp.local_port}")
        wait_for_status(switch, "up")
        switch.stop()  # a clean stop forgets what it knew
    finally:
        sipp.stop()
    row = trunk_row(switch)
    assert (row["status"], row["status_detail"], row["status_since"]) == ("unknown", "", None)
