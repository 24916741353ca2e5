"""Hotdesking and twinning with real phones (issue 4 scope 1-2; SPEC §3.6, §3.7, §29).

A phone registers on a channel nobody is logged in on, dials 901 and keys extension + #
and PIN + # as RFC 4733 events (or SIP INFO); the switch answers, speaks its prompts,
logs the user in and hangs up. The database (``softswitch channel list --json``) is the
proof of the login; the recording of the call is the proof that prompts were spoken.
"""
from __future__ import annotations

import pytest

from .phones import rms_level
from .test_calls import cli_json, connect, talk

pytestmark = pytest.mark.integration


def add_device(switch, name: str) -> str:
    """A new channel (device) without a user; returns its username."""
    username = f"acme-{name}"
    switch.cli("channel", "add", "acme", username, "--password", f"secret-{name}")
    return username


def register_device(switch, phone, username: str) -> None:
    status = phone.register(switch.host, switch.sip_port, switch.tenant.domain, username,
                            f"secret-{username.split('-', 1)[1]}")
    assert status == 200


def user_on(switch, lab, channel: str, expected: str | None) -> dict:
    """Wait until ``channel`` shows ``expected`` as its user (None: nobody)."""
    def ok(rows):
        row = next((r for r in rows if r["channel"] == channel), None)
        return row is not None and row.get("user") == expected
    rows = cli_json(switch, lab, "channel", "list", "acme", until=ok, timeout=5)
    row = next(r for r in rows if r["channel"] == channel)
    assert row.get("user") == expected, (row, switch.log_tail())
    return row


def keyed_service_call(lab, phone, number: str, keys: list[str], tmp_path, *, info: bool = False,
                       pause_ms: int = 600, timeout: float = 25.0):
    """Dial a service code, key each group of digits after a pause, wait for the switch to hang up."""
    call = phone.dial(number)
    call.wait_state("CONFIRMED", 5)
    call.wait_media(5)
    call.start_recording(tmp_path / f"{phone.name}-{number}.wav")
    lab.pump(1000)
    call.prompt_level = rms_level(call.stop_recording(), skip_s=0.2)  # the first prompt
    for group in keys:
        lab.pump(pause_ms)
        if info:
            for digit in group:
                call.send_info_dtmf(digit)
                lab.pump(150)
        else:
            call.dial_dtmf(group)
    call.wait_state("DISCONNECTED", timeout)
    return call


def test_901_logs_a_user_in_by_dtmf_and_902_logs_out(daemon, phone_lab, tmp_path):
    switch = daemon()
    desk = add_device(switch, "204")
    phone = phone_lab.phone("hotdesk")
    register_device(switch, phone, desk)

    # nobody is logged in: only 901 (and 112) may be dialled
    refused = phone.dial("202")
    refused.wait_state("DISCONNECTED", 5)
    assert refused.last_status == 403
    emergency = phone.dial("112")
    emergency.wait_state("DISCONNECTED", 5)
    assert emergency.last_status == 503  # no trunk yet: said clearly, not 403

    call = keyed_service_call(phone_lab, phone, "901", ["202#", "4712#"], tmp_path)
    assert call.prompt_level > 200, "no prompt was heard"
    user_on(switch, phone_lab, desk, "202")
    # Bob has no twinning: the login moved him off his old desk
    user_on(switch, phone_lab, "acme-202", None)
    assert "logged in on channel acme-204 by 901" in switch.log_text()

    # the desk works as Bob's phone now: Alice calls 202 and it rings here
    alice = phone_lab.phone("alice")
    switch.register(alice, "201")
    out, incoming = connect(switch, phone_lab, alice, phone, "202")
    talk(phone_lab, out, incoming, tmp_path, "hotdesk")
    out.hangup()
    incoming.wait_state("DISCONNECTED", 5)

    # 902 with SIP INFO digits (a desk phone that only sends INFO)
    keyed_service_call(phone_lab, phone, "902", ["4712#"], tmp_path, info=True)
    user_on(switch, phone_lab, desk, None)


def test_901_wrong_pin_three_times_ends_the_call_and_is_logged(daemon, phone_lab, tmp_path):
    switch = daemon()
    desk = add_device(switch, "204")
    phone = phone_lab.phone("hotdesk")
    register_device(switch, phone, desk)
    keyed_service_call(phone_lab, phone, "901", ["203#", "1111#", "203#", "2222#", "299#", "4713#"], tmp_path,
                       pause_ms=900)
    user_on(switch, phone_lab, desk, None)
    log = switch.log_text()
    assert log.count("901 login failed on channel acme-204") == 3
    assert "unknown extension" in log and "wrong PIN" in log
    assert switch.alive()


def test_pin_0000_makes_the_user_choose_a_new_one(daemon, phone_lab, tmp_path):
    switch = daemon()
    switch.cli("user", "set", "acme", "203", "--pin", "0000")
    desk = add_device(switch, "204")
    phone = phone_lab.phone("hotdesk")
    register_device(switch, phone, desk)
    # 1234 is refused as too simple, 5820 is accepted
    keyed_service_call(phone_lab, phone, "901", ["203#", "0000#", "1234#", "5820#"], tmp_path, pause_ms=900)
    user_on(switch, phone_lab, desk, "203")
    assert "user 203 chose a new PIN" in switch.log_text()
    assert "new PIN refused" in switch.log_text()
    # the new PIN works for 902
    keyed_service_call(phone_lab, phone, "902", ["5820#"], tmp_path)
    user_on(switch, phone_lab, desk, None)


def test_twinning_third_login_and_902_this_or_all(daemon, phone_lab, tmp_path):
    switch = daemon()
    switch.cli("account", "set", "acme", "--twinning")
    switch.cli("user", "set", "acme", "202", "--twinning")
    second, third = add_device(switch, "204"), add_device(switch, "205")
    p2, p3 = phone_lab.phone("bob2"), phone_lab.phone("bob3")
    register_device(switch, p2, second)
    register_device(switch, p3, third)

    keyed_service_call(phone_lab, p2, "901", ["202#", "4712#"], tmp_path)
    user_on(switch, phone_lab, second, "202")
    user_on(switch, phone_lab, "acme-202", "202")  # twinning: still on the first device

    # a third device: "maximum reached, press 1" → logged in here, out of the others
    keyed_service_call(phone_lab, p3, "901", ["202#", "4712#", "1"], tmp_path, pause_ms=1500)
    user_on(switch, phone_lab, third, "202")
    user_on(switch, phone_lab, second, None)
    user_on(switch, phone_lab, "acme-202", None)

    # back on two devices, 902 asks "this device (1) or all (2)"
    switch.cli("login", "acme", "202", "acme-202")
    keyed_service_call(phone_lab, p3, "902", ["4712#", "1"], tmp_path, pause_ms=1500)
    user_on(switch, phone_lab, third, None)
    user_on(switch, phone_lab, "acme-202", "202")


def test_a_linked_user_cannot_log_out_there(daemon, phone_lab, tmp_path):
    switch = daemon()
    switch.cli("user", "link", "acme", "201", "acme-201")
    alice = phone_lab.phone("alice")
    switch.register(alice, "201")
    keyed_service_call(phone_lab, alice, "902", ["4711#"], tmp_path)
    user_on(switch, phone_lab, "acme-201", "201")
    assert "permanently linked" in switch.log_text()
