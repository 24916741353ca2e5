"""Call parking, call pickup and moving a call with real phones (issue 4 scope 3, 6, 7;
SPEC §5, §7, §28).

Tenant acme: 201 Alice, 202 Bob, 203 Carol, each logged in on their own channel. Every
scenario that ends in a conversation ends with the two parties that should be talking
hearing each other's tone (FFT, ``talk``). What the switch keeps about parked calls is
read back through ``softswitch parked acme --json``; what it sent on the wire (the
CANCEL's Reason) through the daemon's SIP trace.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from .phones import SILENCE_RMS, assert_music_on_hold, assert_tone, read_wav, rms_level
from .test_calls import ALICE_HZ, BOB_HZ, cli_json, connect, talk

pytestmark = pytest.mark.integration

#: Tone of Bob's second device in the *9 test, distinct from his first device's BOB_HZ.
SECOND_DEVICE_HZ = 1500
#: Bound on signalling waits; generous because the prompts take a few seconds.
SIGNAL_S = 10.0
#: The longest silence Alice may hear while Bob moves the call to another device
#: (issue 4 scope 3: "no re-INVITE glitch the remote can hear beyond a short gap").
MAX_MOVE_GAP_S = 1.0
#: Analysis window for the gap measurement, in seconds.
GAP_WINDOW_S = 0.05
COMPLETED_ELSEWHERE = 'Reason: SIP;cause=200;text="Call completed elsewhere"'


# --------------------------------------------------------------------------- helpers


def start(daemon, phone_lab, *names: str, extra_args: tuple[str, ...] = ()):
    """A daemon and one registered phone per name (alice 201, bob 202, carol 203)."""
    switch = daemon(extra_args=extra_args)
    extensions = {"alice": "201", "bob": "202", "carol": "203"}
    phones = []
    for name in names:
        phone = phone_lab.phone(name)
        assert switch.register(phone, extensions[name]) == 200
        phones.append(phone)
    return switch, phones


def parked(switch, lab, until=lambda rows: True) -> list[dict]:
    """``softswitch parked acme --json`` (the daemon writes the slots behind)."""
    return cli_json(switch, lab, "parked", "acme", until=until, timeout=5)


def wait_log(switch, lab, text: str, timeout: float = SIGNAL_S) -> None:
    """Wait until the daemon logged ``text``."""
    lab.wait_for(lambda: text in switch.log_text(), timeout, f"{text!r} in the daemon log")


def park_with_code(switch, lab, parker_call, tmp_path: Path, tag: str) -> None:
    """The parker keys ##7: the switch announces the slot, then hangs the parker up."""
    parker_call.start_recording(tmp_path / f"{tag}-announcement.wav")
    parker_call.dial_dtmf("##7")
    parker_call.wait_state("DISCONNECTED", SIGNAL_S + 10)
    announcement = parker_call.stop_recording()
    assert announcement is not None
    lab.wait_for(lambda: _wav_finalised(announcement), 3, f"{announcement} to be finalised")
    # the slot number was spoken before the BYE (the parked party plays no tone here, so
    # what the parker heard is the announcement)
    assert rms_level(announcement, skip_s=0.0) > SILENCE_RMS, switch.log_tail()


def _wav_finalised(path: Path) -> bool:
    """pjsua writes the WAV lengths when the recorder is destroyed (at the call's end)."""
    head = path.read_bytes()[:8]
    return len(head) == 8 and int.from_bytes(head[4:8], "little") == path.stat().st_size - 8


def hears(lab, call, freq: float, tmp_path: Path, tag: str, timeout: float = SIGNAL_S) -> None:
    """Wait until ``call`` receives ``freq`` (a prompt it was hearing is over)."""
    attempt = 0

    def tone_arrived() -> bool:
        nonlocal attempt
        attempt += 1
        call.start_recording(tmp_path / f"{tag}-{attempt}.wav")
        lab.pump(400)
        try:
            assert_tone(call.stop_recording(), freq, skip_s=0.05)
        except AssertionError:
            return False
        return True

    lab.wait_for(tone_arrived, timeout, f"{freq} Hz on {call!r}")


def sent_to(switch, port: int, method: str) -> list[str]:
    """The SIP requests ``method`` the daemon sent to 127.0.0.1:``port`` (needs --trace-sip)."""
    pattern = re.compile(rf"send \d+ bytes to udp:127\.0\.0\.1:{port}\n({method} .*?)(?:\r?\n\r?\n|\Z)", re.S)
    return pattern.findall(switch.log_text())


def privacy_group(switch, *members: tuple[str, ...]) -> None:
    """Privacy group "front" with members given as (extension, *rights flags)."""
    switch.cli("privacy-group", "add", "acme", "front")
    for extension, *rights in members:
        switch.cli("privacy-group", "member", "add", "acme", "front", extension, *rights)


def segment_frequency(samples: np.ndarray, rate: int) -> float:
    """Dominant frequency of a stretch of samples (Hann window)."""
    data = samples - samples.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum)) * rate / data.size


def longest_silence_s(samples: np.ndarray, rate: int) -> float:
    """The longest run of silent windows between the first and the last audible one."""
    size = int(GAP_WINDOW_S * rate)
    count = samples.size // size
    levels = np.sqrt(np.mean(np.square(samples[: count * size].reshape(count, size)), axis=1))
    loud = np.flatnonzero(levels >= SILENCE_RMS)
    assert loud.size, "the recording is silence"
    longest = run = 0
    for level in levels[loud[0]: loud[-1] + 1]:
        run = run + 1 if level < SILENCE_RMS else 0
        longest = max(longest, run)
    return longest * GAP_WINDOW_S


# --------------------------------------------------------------------------- parking


def test_park_by_code_music_on_hold_and_retrieve_by_the_parker(daemon, phone_lab, tmp_path):
    """##7 parks Alice in slot 701 (announced to Bob, who is released); Alice hears music
    on hold; Bob's *7701 brings her back."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    switch.cli("user", "set", "acme", "202", "--may-park")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")

    park_with_code(switch, phone_lab, incoming, tmp_path, "park")
    assert call.state == "CONFIRMED"
    [slot] = parked(switch, phone_lab, until=bool)
    assert (slot["slot"], slot["parked_by"]) == (701, "202"), slot
    assert "201" in slot["parked_party"]
    call.start_recording(tmp_path / "parked-alice.wav")
    phone_lab.pump(1500)
    assert_music_on_hold(call.stop_recording())

    retrieved = bob.dial("*7701")
    retrieved.wait_state("CONFIRMED", SIGNAL_S)
    retrieved.wait_media(SIGNAL_S)
    talk(phone_lab, call, retrieved, tmp_path, "retrieved")
    assert parked(switch, phone_lab, until=lambda rows: rows == []) == []

    retrieved.hangup()
    call.wait_state("DISCONNECTED", SIGNAL_S)


def test_park_code_without_the_right_keeps_the_call(daemon, phone_lab, tmp_path):
    """Bob has no "may park" right: ##7 gets a spoken refusal and the call goes on. The
    administrator grants the right: Bob's next ##7, in the same call, parks Alice."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    call.play_tone(ALICE_HZ)

    incoming.dial_dtmf("##7")
    wait_log(switch, phone_lab, "202 may not park calls")
    hears(phone_lab, incoming, ALICE_HZ, tmp_path, "after-refusal")  # the refusal prompt is over
    assert (call.state, incoming.state) == ("CONFIRMED", "CONFIRMED")
    talk(phone_lab, call, incoming, tmp_path, "still-connected")
    assert parked(switch, phone_lab) == []
    assert "parked 201" not in switch.log_text()

    switch.cli("user", "set", "acme", "202", "--may-park")
    call.stop_tone()
    park_with_code(switch, phone_lab, incoming, tmp_path, "park-with-the-right")
    assert [(r["slot"], r["parked_by"]) for r in parked(switch, phone_lab, until=bool)] == [(701, "202")]
    call.hangup()
    assert parked(switch, phone_lab, until=lambda rows: rows == []) == []


def test_retrieving_someone_elses_parked_call_needs_the_privacy_group_right(daemon, phone_lab, tmp_path):
    """Carol may retrieve Bob's parked call only with "retrieve parked calls" over Bob;
    an empty slot is 404."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    switch.cli("user", "set", "acme", "202", "--may-park")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    park_with_code(switch, phone_lab, incoming, tmp_path, "park")

    refused = carol.dial("*7701")  # (an empty slot would be 404)
    refused.wait_state("DISCONNECTED", SIGNAL_S)
    assert refused.last_status == 403, switch.log_tail()
    assert [row["slot"] for row in parked(switch, phone_lab)] == [701]  # still waiting

    privacy_group(switch, ("202",), ("203", "--retrieve-parked"))
    retrieved = carol.dial("*7701")
    retrieved.wait_state("CONFIRMED", SIGNAL_S)
    retrieved.wait_media(SIGNAL_S)
    talk(phone_lab, call, retrieved, tmp_path, "carol-retrieved")
    assert parked(switch, phone_lab, until=lambda rows: rows == []) == []

    empty = carol.dial("*7701")
    empty.wait_state("DISCONNECTED", SIGNAL_S)
    assert empty.last_status == 404, switch.log_tail()
    assert retrieved.state == "CONFIRMED"

    retrieved.hangup()
    call.wait_state("DISCONNECTED", SIGNAL_S)


def test_park_by_transfer_to_star_7(daemon, phone_lab, tmp_path):
    """The phone's transfer key with target *7 parks the partner; the transferor's call
    ends. The slots are the account's as configured now (changed during the call)."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    switch.cli("user", "set", "acme", "202", "--may-park")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    switch.cli("account", "set", "acme", "--park-first-slot", "801")

    incoming.xfer("*7")
    assert incoming.wait_transfer_status(SIGNAL_S) == 200
    incoming.wait_state("DISCONNECTED", SIGNAL_S + 10)
    [slot] = parked(switch, phone_lab, until=bool)
    assert (slot["slot"], slot["parked_by"]) == (801, "202"), slot
    assert call.state == "CONFIRMED"
    call.start_recording(tmp_path / "parked-alice.wav")
    phone_lab.pump(1500)
    assert_music_on_hold(call.stop_recording())

    retrieved = bob.dial("*7801")
    retrieved.wait_state("CONFIRMED", SIGNAL_S)
    retrieved.wait_media(SIGNAL_S)
    talk(phone_lab, call, retrieved, tmp_path, "retrieved")
    retrieved.hangup()
    call.wait_state("DISCONNECTED", SIGNAL_S)


def test_parked_call_not_retrieved_rings_the_parker_back(daemon, phone_lab, tmp_path):
    """After the account's park timeout the parker's phone rings; answering it is a
    conversation with the parked caller again."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    switch.cli("account", "set", "acme", "--park-timeout", "10")
    switch.cli("user", "set", "acme", "202", "--may-park")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    park_with_code(switch, phone_lab, incoming, tmp_path, "park")
    parked(switch, phone_lab, until=bool)

    recall = bob.wait_incoming(25)
    assert "201" in recall.remote_uri, recall.remote_uri  # Alice's call comes back
    recall.answer(200)
    recall.wait_state("CONFIRMED", SIGNAL_S)
    recall.wait_media(SIGNAL_S)
    talk(phone_lab, call, recall, tmp_path, "recalled")
    assert parked(switch, phone_lab, until=lambda rows: rows == []) == []
    recall.hangup()
    call.wait_state("DISCONNECTED", SIGNAL_S)


def test_stopping_the_switch_ends_parked_calls_with_bye(daemon, phone_lab, tmp_path):
    """Parked calls do not survive the daemon, but the caller is told: BYE at shutdown,
    and the slot list is empty once the daemon is gone and after it is back."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    switch.cli("user", "set", "acme", "202", "--may-park")
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    park_with_code(switch, phone_lab, incoming, tmp_path, "park")
    parked(switch, phone_lab, until=bool)

    assert switch.stop() == 0
    call.wait_state("DISCONNECTED", SIGNAL_S)
    assert parked(switch, phone_lab) == []
    switch.start()
    assert parked(switch, phone_lab) == []


@pytest.mark.parametrize("ending", ["caller-hangs-up", "retrieved"])
def test_ring_back_stops_when_the_parked_call_goes_away_meanwhile(daemon, phone_lab, tmp_path, ending):
    """While the recall rings Bob, Alice hangs up or Carol retrieves her: Bob's phone gets
    CANCEL (it must not ring on for a call that is no longer there)."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol", extra_args=("--trace-sip",))
    switch.cli("account", "set", "acme", "--park-timeout", "10")
    switch.cli("user", "set", "acme", "202", "--may-park")
    privacy_group(switch, ("202",), ("203", "--retrieve-parked"))
    call, incoming = connect(switch, phone_lab, alice, bob, "202")
    park_with_code(switch, phone_lab, incoming, tmp_path, "park")
    parked(switch, phone_lab, until=bool)
    recall = bob.wait_incoming(25)
    recall.wait_state("EARLY", SIGNAL_S)

    if ending == "caller-hangs-up":
        call.hangup()
        recall.wait_state("DISCONNECTED", SIGNAL_S)
    else:
        retrieved = carol.dial("*7701")
        retrieved.wait_state("CONFIRMED", SIGNAL_S)
        recall.wait_state("DISCONNECTED", SIGNAL_S)
        retrieved.wait_media(SIGNAL_S)
        talk(phone_lab, call, retrieved, tmp_path, "retrieved-during-recall")
    assert len(sent_to(switch, bob.port, "CANCEL")) == 1, switch.log_tail()
    assert parked(switch, phone_lab, until=lambda rows: rows == []) == []
    if ending == "retrieved":
        retrieved.hangup()
        call.wait_state("DISCONNECTED", SIGNAL_S)


def test_star_7_alone_retrieves_your_most_recently_parked_call(daemon, phone_lab, tmp_path):
    """Bob parks Alice (701), then Carol (702); *7 brings back Carol, Alice stays parked."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    switch.cli("user", "set", "acme", "202", "--may-park")
    alice_call, bob_leg = connect(switch, phone_lab, alice, bob, "202")
    park_with_code(switch, phone_lab, bob_leg, tmp_path, "park-alice")
    parked(switch, phone_lab, until=bool)
    carol_call, bob_leg = connect(switch, phone_lab, carol, bob, "202")
    park_with_code(switch, phone_lab, bob_leg, tmp_path, "park-carol")
    assert [r["slot"] for r in parked(switch, phone_lab, until=lambda rows: len(rows) == 2)] == [701, 702]

    retrieved = bob.dial("*7")
    retrieved.wait_state("CONFIRMED", SIGNAL_S)
    retrieved.wait_media(SIGNAL_S)
    talk(phone_lab, carol_call, retrieved, tmp_path, "latest")
    rows = parked(switch, phone_lab, until=lambda rows: len(rows) == 1)
    assert [(r["slot"], r["parked_by"]) for r in rows] == [(701, "202")]
    assert "201" in rows[0]["parked_party"]

    retrieved.hangup()
    carol_call.wait_state("DISCONNECTED", SIGNAL_S)
    alice_call.hangup()


# --------------------------------------------------------------------------- pickup


def test_pickup_of_a_named_extension_needs_the_right_and_stops_the_ringing(daemon, phone_lab, tmp_path):
    """*8202: refused (403) without the pickup right, Bob keeps ringing; with the right
    Carol gets Alice and Bob's phone gets CANCEL "completed elsewhere"; nothing ringing: 404."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol", extra_args=("--trace-sip",))
    call = alice.dial("202")
    ringing = bob.wait_incoming(SIGNAL_S)
    call.wait_state("EARLY", SIGNAL_S)

    refused = carol.dial("*8202")
    refused.wait_state("DISCONNECTED", SIGNAL_S)
    assert refused.last_status == 403, switch.log_tail()
    assert (ringing.state, call.state) == ("EARLY", "EARLY")  # still ringing

    privacy_group(switch, ("202",), ("203", "--pickup"))
    picked = carol.dial("*8202")
    picked.wait_state("CONFIRMED", SIGNAL_S)
    call.wait_state("CONFIRMED", SIGNAL_S)
    ringing.wait_state("DISCONNECTED", SIGNAL_S)
    assert ringing.last_status == 487, (ringing.last_status, ringing.last_reason)
    [cancel] = sent_to(switch, bob.port, "CANCEL")
    assert COMPLETED_ELSEWHERE in cancel, cancel
    picked.wait_media(SIGNAL_S)
    call.wait_media(SIGNAL_S)
    talk(phone_lab, call, picked, tmp_path, "picked")

    nothing = carol.dial("*8")
    nothing.wait_state("DISCONNECTED", SIGNAL_S)
    assert nothing.last_status == 404, switch.log_tail()
    assert picked.state == "CONFIRMED"

    picked.hangup()
    call.wait_state("DISCONNECTED", SIGNAL_S)


@pytest.mark.parametrize("code", ["*8", "*81", "908"], ids=["star8", "star8-group", "908"])
def test_pickup_variants_connect_the_picker_to_the_caller(daemon, phone_lab, tmp_path, code):
    """*8 alone, *8 + privacy group number (1: the first group) and the service code 908."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol", extra_args=("--trace-sip",))
    privacy_group(switch, ("202",), ("203", "--pickup"))
    call = alice.dial("202")
    ringing = bob.wait_incoming(SIGNAL_S)
    call.wait_state("EARLY", SIGNAL_S)

    picked = carol.dial(code)
    picked.wait_state("CONFIRMED", SIGNAL_S)
    call.wait_state("CONFIRMED", SIGNAL_S)
    ringing.wait_state("DISCONNECTED", SIGNAL_S)
    [cancel] = sent_to(switch, bob.port, "CANCEL")
    assert COMPLETED_ELSEWHERE in cancel, cancel
    picked.wait_media(SIGNAL_S)
    call.wait_media(SIGNAL_S)
    talk(phone_lab, call, picked, tmp_path, "picked")

    picked.hangup()
    call.wait_state("DISCONNECTED", SIGNAL_S)


# --------------------------------------------------------------------------- *9 move


def test_move_the_call_to_another_device_keeps_the_remote_audio(daemon, phone_lab, tmp_path):
    """Bob talks to Alice on device 1 and dials *9 on device 2: device 2 takes over, device
    1's leg ends, and Alice hears Bob's first device, then his second, with a short gap."""
    switch = daemon(extra_args=("--trace-sip",))
    switch.cli("account", "set", "acme", "--twinning")
    switch.cli("user", "set", "acme", "202", "--twinning")
    switch.cli("login", "acme", "202", "acme-203")
    alice, bob1, bob2 = phone_lab.phone("alice"), phone_lab.phone("bob1"), phone_lab.phone("bob2")
    assert switch.register(alice, "201") == 200
    assert switch.register(bob1, "202") == 200
    assert switch.register(bob2, "203") == 200  # Carol's channel, where Bob is logged in too

    call = alice.dial("202")
    first = bob1.wait_incoming(SIGNAL_S)
    other_ring = bob2.wait_incoming(SIGNAL_S)
    first.answer(200)
    other_ring.wait_state("DISCONNECTED", SIGNAL_S)
    call.wait_state("CONFIRMED", SIGNAL_S)
    call.wait_media(SIGNAL_S)
    first.wait_media(SIGNAL_S)
    call.play_tone(ALICE_HZ)
    first.play_tone(BOB_HZ)
    hears(phone_lab, call, BOB_HZ, tmp_path, "before-move")

    call.start_recording(tmp_path / "alice-across-the-move.wav")
    phone_lab.pump(800)
    moved = bob2.dial("*9")
    moved.play_tone(SECOND_DEVICE_HZ)
    moved.wait_state("CONFIRMED", SIGNAL_S)
    first.wait_state("DISCONNECTED", SIGNAL_S)
    moved.wait_media(SIGNAL_S)
    phone_lab.pump(1500)
    across = call.stop_recording()

    samples, rate = read_wav(across)
    before, after = samples[int(0.1 * rate): int(0.5 * rate)], samples[-rate:]
    assert abs(segment_frequency(before, rate) - BOB_HZ) <= 10, "Alice did not hear device 1 before the move"
    assert abs(segment_frequency(after, rate) - SECOND_DEVICE_HZ) <= 10, "Alice does not hear device 2"
    gap = longest_silence_s(samples, rate)
    assert gap < MAX_MOVE_GAP_S, f"Alice heard {gap:.2f} s of silence during the move"
    assert call.state == "CONFIRMED"
    assert len(sent_to(switch, bob1.port, "INVITE")) == 1  # (the trace shows what was sent)
    assert sent_to(switch, alice.port, "INVITE") == []  # no re-INVITE: her RTP stream just goes on

    moved.start_recording(tmp_path / "device2.wav")
    phone_lab.pump(1500)
    assert_tone(moved.stop_recording(), ALICE_HZ)

    call.hangup()
    moved.wait_state("DISCONNECTED", SIGNAL_S)
