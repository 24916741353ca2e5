"""Calls through the real daemon between real pjsua2 phones, with media checked by FFT.

Each test starts ``softswitch serve`` on loopback (fixture ``daemon``) with tenant acme
(201 Alice, 202 Bob, 203 Carol, each logged in on their own channel) and drives it with
pjsua2 phones. "Audio flows" means: each side plays its own tone and the other side's
recording has that tone's frequency.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from .phones import assert_music_on_hold, assert_tone, spawn_phone_process

pytestmark = pytest.mark.integration

ALICE_HZ, BOB_HZ = 600, 1100


def talk(lab, a, b, tmp_path: Path, tag: str, seconds_ms: int = 1500) -> None:
    """Both sides play a tone; each recording must carry the other side's tone."""
    a.play_tone(ALICE_HZ)
    b.play_tone(BOB_HZ)
    a.start_recording(tmp_path / f"{tag}-a.wav")
    b.start_recording(tmp_path / f"{tag}-b.wav")
    lab.pump(seconds_ms)
    assert_tone(a.stop_recording(), BOB_HZ)
    assert_tone(b.stop_recording(), ALICE_HZ)


def cli_json(switch, lab, *args: str, until=lambda rows: True, timeout: float = 3.0):
    """``softswitch ARGS --json``, re-read until ``until(rows)`` holds: the daemon writes live
    calls and CDRs behind (every 0.25 s), not on the signalling path."""
    deadline = time.monotonic() + timeout
    while True:
        rows = json.loads(switch.cli(*args, "--json").stdout)
        if until(rows) or time.monotonic() > deadline:
            return rows
        lab.pump(100)


def connect(switch, lab, caller_phone, callee_phone, number: str):
    call = caller_phone.dial(number)
    incoming = callee_phone.wait_incoming(5)
    incoming.answer(200)
    call.wait_state("CONFIRMED", 5)
    incoming.wait_state("CONFIRMED", 5)
    call.wait_media(5)
    incoming.wait_media(5)
    return call, incoming


def test_call_between_extensions_with_two_way_audio_live_list_and_cdr(daemon, phone_lab, tmp_path):
    switch = daemon()
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    assert switch.register(alice, "201") == 200
    assert switch.register(bob, "202") == 200

    listed = json.loads(switch.cli("channel", "list", "acme", "--json").stdout)
    by_name = {row["channel"]: row for row in listed}
    assert by_name["acme-201"]["registered"] is True and by_name["acme-203"]["registered"] is False

    call = alice.dial("202")
    incoming = bob.wait_incoming(5)
    assert "Alice" in incoming.remote_uri and "201@acme.test" in incoming.remote_uri  # caller ID
    call.wait_state("EARLY", 5)  # 180 relayed to the caller
    incoming.answer(200)
    call.wait_state("CONFIRMED", 5)
    incoming.wait_media(5)
    call.wait_media(5)

    live = cli_json(switch, phone_lab, "calls", until=lambda rows: rows and rows[0]["state"] == "answered")
    assert [(c["caller"], c["callee"], c["state"]) for c in live] == [("201", "202", "answered")]

    talk(phone_lab, call, incoming, tmp_path, "talk")

    call.hangup()
    incoming.wait_state("DISCONNECTED", 5)  # the BYE reached Bob through the switch
    assert cli_json(switch, phone_lab, "calls", until=lambda rows: rows == []) == []
    [cdr] = cli_json(switch, phone_lab, "cdr", "acme", until=bool)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"], cdr["hangup_by"]) == ("201", "202", "ANSWERED", "caller")
    # call quality: RTP relayed both ways (and, once the phones sent RTCP, their loss/jitter)
    assert cdr["quality"]["caller"]["packets_in"] > 20 and cdr["quality"]["callee"]["packets_in"] > 20
    assert cdr["quality"]["caller"]["packets_out"] > 20 and cdr["quality"]["callee"]["packets_out"] > 20


def test_hold_from_the_phone_plays_music_on_hold_to_the_other_party(daemon, phone_lab, tmp_path):
    """SPEC §28 / issue 4 scope 9: the switch answers the hold re-INVITE itself; the other
    party stays in sendrecv and hears music on hold (not silence) until the resume."""
    switch = daemon()
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    switch.register(alice, "201")
    switch.register(bob, "202")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")

    call.hold()
    call.wait_media_dir("sendonly", 5)
    held = cli_json(switch, phone_lab, "calls", until=lambda rows: rows and rows[0]["state"] == "held")
    assert held[0]["state"] == "held"
    assert incoming.media_dir() == "sendrecv"
    incoming.start_recording(tmp_path / "held-bob.wav")
    phone_lab.pump(1500)
    assert_music_on_hold(incoming.stop_recording())

    call.unhold()
    call.wait_media_dir("sendrecv", 5)
    talk(phone_lab, call, incoming, tmp_path, "resumed")

    incoming.hold()  # the other direction: Bob holds, Alice hears the music
    incoming.wait_media_dir("sendonly", 5)
    call.start_recording(tmp_path / "held-alice.wav")
    phone_lab.pump(1500)
    assert_music_on_hold(call.stop_recording())
    incoming.unhold()
    incoming.wait_media_dir("sendrecv", 5)
    talk(phone_lab, call, incoming, tmp_path, "resumed-again")

    incoming.hangup()  # the callee ends this one
    call.wait_state("DISCONNECTED", 5)
    [cdr] = cli_json(switch, phone_lab, "cdr", "acme", until=bool)
    assert cdr["hangup_by"] == "callee"


def test_refusals_carry_the_right_status(daemon, phone_lab):
    switch = daemon()
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob", auto_ring=True)
    switch.register(alice, "201")
    switch.register(bob, "202")

    unknown = alice.dial("299")
    unknown.wait_state("DISCONNECTED", 5)
    assert unknown.last_status == 404

    unregistered = alice.dial("203")  # Carol has no registered device
    unregistered.wait_state("DISCONNECTED", 5)
    assert unregistered.last_status == 480

    busy = alice.dial("202")
    bob.wait_incoming(5).answer(486)
    busy.wait_state("DISCONNECTED", 5)
    assert busy.last_status == 486

    cancelled = alice.dial("202")
    ringing = bob.wait_incoming(5)
    cancelled.wait_state("EARLY", 5)
    cancelled.hangup()  # CANCEL
    ringing.wait_state("DISCONNECTED", 5)
    # every call that reached a user's REACH rules has a CDR (Carol unreachable: NO ANSWER)
    dispositions = [c["disposition"] for c in cli_json(switch, phone_lab, "cdr", "acme", until=lambda r: len(r) >= 3)]
    assert sorted(dispositions) == ["BUSY", "CANCELLED", "NO ANSWER"]


def test_wrong_password_and_unknown_domain_are_refused(daemon, phone_lab):
    switch = daemon()
    phone = phone_lab.phone("mallory")
    host, port = "127.0.0.1", switch.sip_port
    assert phone.register(host, port, "acme.test", "acme-201", "not-the-password") == 403
    other = phone_lab.phone("stranger")
    assert other.register(host, port, "nowhere.test", "acme-201", "secret-201") == 404


def test_parallel_ring_first_answer_wins_and_others_stop(daemon, phone_lab, tmp_path):
    switch = daemon()
    # Twinning (SPEC §3.7): Bob is logged in on his own channel and on Carol's: both ring.
    switch.cli("account", "set", "acme", "--twinning")
    switch.cli("user", "set", "acme", "202", "--twinning")
    switch.cli("login", "acme", "202", "acme-203")
    alice, bob1, bob2 = phone_lab.phone("alice"), phone_lab.phone("bob1"), phone_lab.phone("bob2")
    switch.register(alice, "201")
    switch.register(bob1, "202")
    switch.register(bob2, "203")

    call = alice.dial("202")
    ring1 = bob1.wait_incoming(5)
    ring2 = bob2.wait_incoming(5)
    ring2.answer(200)
    ring1.wait_state("DISCONNECTED", 5)  # CANCEL ("call completed elsewhere")
    call.wait_state("CONFIRMED", 5)
    ring2.wait_media(5)
    call.wait_media(5)
    talk(phone_lab, call, ring2, tmp_path, "fork")
    call.hangup()
    ring2.wait_state("DISCONNECTED", 5)
    [cdr] = cli_json(switch, phone_lab, "cdr", "acme", until=bool)
    assert cdr["answered_by"] == "acme-203"


def test_registrations_survive_a_restart(daemon, phone_lab, tmp_path):
    switch = daemon()
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    switch.register(alice, "201")
    switch.register(bob, "202")
    assert switch.stop() == 0
    switch.start()  # same database, same port: Bob does not register again
    call = alice.dial("202")
    incoming = bob.wait_incoming(5)
    incoming.answer(200)
    call.wait_state("CONFIRMED", 5)
    incoming.wait_media(5)
    call.wait_media(5)
    talk(phone_lab, call, incoming, tmp_path, "restart")
    call.hangup()
    incoming.wait_state("DISCONNECTED", 5)


def test_sigterm_ends_active_calls_with_bye(daemon, phone_lab):
    switch = daemon()
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    switch.register(alice, "201")
    switch.register(bob, "202")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    assert switch.stop() == 0  # SIGTERM; the daemon sends BYE on both legs before it exits
    call.wait_state("DISCONNECTED", 8)
    incoming.wait_state("DISCONNECTED", 8)
    assert "ending 1 call(s)" in switch.log_text()


def test_vanished_phone_is_hung_up_after_the_rtp_timeout(daemon, phone_lab):
    switch = daemon(extra_args=("--rtp-timeout", "2"))
    alice = phone_lab.phone("alice")
    switch.register(alice, "201")
    bob = spawn_phone_process("bob", lab=phone_lab)
    try:
        user = switch.user("202")
        assert bob.register("127.0.0.1", switch.sip_port, "acme.test", user.channel, user.password) == 200
        call = alice.dial("202")
        incoming = bob.wait_incoming(5, answer=200)
        call.wait_state("CONFIRMED", 5)
        call.wait_media(5)
        os.kill(bob.process.pid, signal.SIGKILL)  # pulled the plug: no BYE, no more RTP
        bob.process.join(5)
        call.wait_state("DISCONNECTED", 10)  # the switch sent BYE after 2 s without RTP
        assert incoming is not None
    finally:
        if bob.process.is_alive():
            bob.close()
    deadline = time.monotonic() + 5
    while "RTP timeout" not in switch.log_text() and "no RTP" not in switch.log_text() and time.monotonic() < deadline:
        phone_lab.pump(100)
    assert "no RTP" in switch.log_text()


def test_sha256_digest_only_for_registration_and_calls(daemon, phone_lab, tmp_path):
    """RFC 8760: with only SHA-256 offered, a SHA-256-capable phone registers and calls."""
    switch = daemon(extra_args=("--digest-algorithms", "SHA-256"))
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    assert switch.register(alice, "201") == 200
    assert switch.register(bob, "202") == 200
    call, incoming = connect(switch, phone_lab, alice, bob, "202")  # INVITE answered 407 first
    talk(phone_lab, call, incoming, tmp_path, "sha256", 1000)
    call.hangup()
    incoming.wait_state("DISCONNECTED", 5)
