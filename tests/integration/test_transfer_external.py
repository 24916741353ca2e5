"""Transfers to external numbers through a trunk (issue 4 scope 4: "transfers to external
numbers work once trunks exist"), with SIPp as the carrier (helpers of test_routing.py)."""
from __future__ import annotations

import pytest

from .test_calls import connect
from .test_routing import (
    CARRIER_HOST, COMPANY, MOBILE, MOBILE_E164, add_trunk, admin, carrier_port, carrier_uas, finish,
    invites_received, wait_trunk,
)

pytestmark = pytest.mark.integration


def test_blind_transfer_by_code_to_an_external_number_leaves_through_the_trunk(daemon, phone_lab, tmp_path):
    switch = daemon()
    port = carrier_port()
    add_trunk(switch, port)
    admin(switch, "number", "add", "acme", COMPANY, "--trunk", "carrier")
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    switch.register(alice, "201")
    switch.register(bob, "202")
    # the carrier sees the transferring user's company number, as for their own calls
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_=COMPANY, pai=COMPANY)
    wait_trunk(switch, phone_lab, "carrier", "up")

    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    incoming.dial_dtmf(f"##1{MOBILE}#")
    incoming.wait_state("DISCONNECTED", 10)  # Bob is released at once
    phone_lab.wait_for(lambda: "answered" in switch.log_text() and "xfer-ext" in switch.log_text(), 15,
                       "the carrier answering the transferred call")
    assert call.state == "CONFIRMED", switch.log_tail()
    call.hangup()
    assert finish(sipp) == 0, sipp.report()
    assert invites_received(sipp) == [f"sip:{MOBILE_E164}@{CARRIER_HOST}:{port}"]


def test_transfer_to_an_external_number_needs_the_right(daemon, phone_lab, tmp_path):
    switch = daemon()
    port = carrier_port()
    add_trunk(switch, port)
    admin(switch, "user", "set", "acme", "202", "--no-may-external")
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    switch.register(alice, "201")
    switch.register(bob, "202")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    incoming.xfer(MOBILE)
    assert incoming.wait_transfer_status(10) == 403  # the REFER itself is refused
    assert "may not call external numbers" in switch.log_text()
    assert call.state == "CONFIRMED" and incoming.state == "CONFIRMED"  # nothing changed
