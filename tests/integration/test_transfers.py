"""Transfers, ## codes and three-way calls with real phones (issue 4 scope 4, 5 and its
bad input; SPEC §28 and its ## table).

Tenant acme: 201 Alice, 202 Bob, 203 Carol, each logged in on their own channel. Every
scenario ends with the parties that should be talking hearing each other: each phone
plays its own tone (Alice 600 Hz, Bob 1100 Hz, Carol 1700 Hz) and the far side's
recording must carry it (FFT, +/-10 Hz). A held party must hear the music on hold (not
silence); a three-way call must give each party both other tones at once.

The phones' transfer key is pjsua2's ``xfer`` (REFER, RFC 3515) and ``xferReplaces``
(REFER with Replaces, RFC 3891); the ## codes are keyed as RFC 4733 events
(``dial_dtmf``) or as one SIP INFO per key (``send_info_dtmf``), as desk phones send them.

What is not here: a transfer target that rings until the feature ring timeout
(``FEATURE_RING_TIMEOUT``, 30 s, twice for the recall) would make one test last over a
minute; the fallbacks are driven by a target that declines (486) or has no device
registered instead, which takes the same path in ``blind_transfer``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Union

import numpy as np
import pytest

from .phones import (
    SILENCE_RMS, Call, PhoneLab, RemoteCall, assert_music_on_hold, assert_tone, read_wav, rms_level,
    spawn_phone_process,
)
from .test_calls import ALICE_HZ, BOB_HZ, connect

pytestmark = pytest.mark.integration

#: Carol's tone: far from Alice's and Bob's and from the music on hold's notes.
CAROL_HZ = 1700
#: Bound on every signalling or media wait; prompts take about 2 s.
SIGNAL_S = 10.0
#: Length of one recording taken while waiting for audio to arrive, in milliseconds.
LISTEN_MS = 600
#: Length of the recordings that prove a steady state (the three-way mix), in milliseconds.
RECORD_MS = 1500
#: Pause between two SIP INFO digits: a desk phone sends the next key after the previous
#: INFO was answered, which on loopback takes well under this.
INFO_KEY_GAP_MS = 150
#: Two tones in a mix: each peak within this of its frequency (as ``assert_tone``).
TONE_TOLERANCE_HZ = 10.0
#: The second tone of a mix must be at least this fraction of the first (both audible).
MIN_SECOND_TONE_RATIO = 0.25
#: Spectral peaks closer than this belong to the same tone (window leakage).
PEAK_SEPARATION_HZ = 100.0

AnyCall = Union[Call, RemoteCall]
EXTENSIONS = {"alice": "201", "bob": "202", "carol": "203"}


# --------------------------------------------------------------------------- helpers


def start(daemon, lab: PhoneLab, *names: str, trace: bool = False):
    """A daemon and one registered phone per name (alice 201, bob 202, carol 203);
    ``trace``: the daemon logs every SIP message (see ``sent_to``)."""
    switch = daemon(extra_args=("--trace-sip",) if trace else ())
    phones = []
    for name in names:
        phone = lab.phone(name)
        assert switch.register(phone, EXTENSIONS[name]) == 200
        phones.append(phone)
    return switch, phones


def sent_to(switch, port: int) -> list[str]:
    """Start line and headers of every SIP message the daemon sent to 127.0.0.1:``port``
    (the daemon runs with --trace-sip)."""
    pattern = re.compile(rf"send \d+ bytes to udp:127\.0\.0\.1:{port}\n(.*?)(?:\r?\n\r?\n|\Z)", re.S)
    return pattern.findall(switch.log_text())


def responses_to(switch, port: int, method: str) -> list[int]:
    """The statuses of the responses to ``method`` requests the daemon sent to ``port``."""
    cseq = re.compile(rf"^CSeq:\s*\d+\s+{method}\s*$", re.M | re.I)
    return [int(m.split(" ", 2)[1]) for m in sent_to(switch, port) if m.startswith("SIP/2.0 ") and cseq.search(m)]


def requests_to(switch, port: int, method: str) -> list[str]:
    return [m for m in sent_to(switch, port) if m.startswith(f"{method} ")]


def wait_log(switch, lab: PhoneLab, text: str, count: int = 1, timeout: float = SIGNAL_S) -> None:
    """Wait until the daemon logged ``text`` (at least ``count`` times)."""
    lab.wait_for(lambda: switch.log_text().count(text) >= count, timeout,
                 f"{count}x {text!r} in the daemon log\n{switch.log_tail()}")


def listen_until(lab: PhoneLab, call: AnyCall, check: Callable[[Path], None], tmp_path: Path, tag: str,
                 timeout: float = SIGNAL_S) -> None:
    """Record short stretches of what ``call`` receives until ``check(wav)`` passes.

    A change the switch makes (a relay after a transfer, the end of a prompt) reaches the
    phone a moment later; this waits for it instead of guessing how long it takes.
    """
    attempts = 0
    last = "nothing recorded yet"

    def heard() -> bool:
        nonlocal attempts, last
        attempts += 1
        call.start_recording(tmp_path / f"{tag}-{attempts}.wav")
        lab.pump(LISTEN_MS)
        if call.state == "DISCONNECTED":
            raise AssertionError(f"{call!r} ended while waiting for {tag}")
        wav = call.stop_recording()
        assert wav is not None
        try:
            check(wav)
        except AssertionError as exc:
            last = str(exc)
            return False
        return True

    try:
        lab.wait_for(heard, timeout, f"{tag} on {call!r}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last recording: {last}") from None


def hears(lab: PhoneLab, call: AnyCall, freq: float, tmp_path: Path, tag: str) -> None:
    """``call`` receives the tone ``freq``."""
    listen_until(lab, call, lambda wav: assert_tone(wav, freq, skip_s=0.05), tmp_path, tag)


def hears_music_on_hold(lab: PhoneLab, call: AnyCall, tmp_path: Path, tag: str) -> None:
    listen_until(lab, call, lambda wav: assert_music_on_hold(wav, skip_s=0.05), tmp_path, tag)


def hears_a_prompt(lab: PhoneLab, call: AnyCall, tmp_path: Path, tag: str) -> None:
    """``call`` receives sound while its partner sends silence: the switch speaks to it."""
    def audible(wav: Path) -> None:
        level = rms_level(wav, skip_s=0.05)
        assert level >= SILENCE_RMS, f"{wav}: silence (RMS {level:.0f}) where a prompt was expected"

    listen_until(lab, call, audible, tmp_path, tag)


def talking(lab: PhoneLab, tmp_path: Path, tag: str, x: tuple[AnyCall, float], y: tuple[AnyCall, float]) -> None:
    """The two calls hear each other's tone (each call already plays its own)."""
    (call_x, hz_x), (call_y, hz_y) = x, y
    hears(lab, call_x, hz_y, tmp_path, f"{tag}-x")
    hears(lab, call_y, hz_x, tmp_path, f"{tag}-y")


def strongest_two_tones(wav: Path, skip_s: float = 0.3) -> tuple[float, float, float]:
    """The two strongest spectral peaks at least PEAK_SEPARATION_HZ apart: (f1, f2, |f2|/|f1|)."""
    data, rate = read_wav(wav)
    data = data[int(skip_s * rate):]
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    spectrum[0] = 0.0
    bin_hz = rate / data.size
    first = int(np.argmax(spectrum))
    reach = int(PEAK_SEPARATION_HZ / bin_hz)
    rest = spectrum.copy()
    rest[max(0, first - reach): first + reach + 1] = 0.0
    second = int(np.argmax(rest))
    return first * bin_hz, second * bin_hz, float(spectrum[second] / spectrum[first])


def assert_two_tones(wav: Path, a: float, b: float) -> None:
    """The recording carries both tones ``a`` and ``b`` (a mix), each clearly audible."""
    level = rms_level(wav)
    assert level >= SILENCE_RMS, f"{wav}: silence (RMS {level:.0f}) where {a} + {b} Hz were expected"
    f1, f2, ratio = strongest_two_tones(wav)
    found = sorted((f1, f2))
    expected = sorted((a, b))
    assert all(abs(f - e) <= TONE_TOLERANCE_HZ for f, e in zip(found, expected)), (
        f"{wav}: strongest tones {found[0]:.1f} and {found[1]:.1f} Hz, expected {expected} Hz")
    assert ratio >= MIN_SECOND_TONE_RATIO, (
        f"{wav}: {f2:.1f} Hz is only {ratio:.2f} of {f1:.1f} Hz (one party is barely heard)")


def hears_silence(lab: PhoneLab, call: AnyCall, tmp_path: Path, tag: str) -> None:
    """``call`` receives nothing audible while its partner plays a tone (the switch stopped
    relaying; what the phone had buffered may still play out for a moment)."""
    def silent(wav: Path) -> None:
        level = rms_level(wav, skip_s=0.05)
        assert level < SILENCE_RMS, f"{wav}: RMS {level:.0f} where silence was expected"

    listen_until(lab, call, silent, tmp_path, tag)


def key_info(lab: PhoneLab, call: Call, keys: str) -> None:
    """Key ``keys`` as a desk phone does: one SIP INFO per key, one after the other."""
    for key in keys:
        call.send_info_dtmf(key)
        lab.pump(INFO_KEY_GAP_MS)


def conversation(switch, lab: PhoneLab, tmp_path: Path, caller, callee, number: str, caller_hz: float,
                 callee_hz: float) -> tuple[Call, Call]:
    """``caller`` calls ``callee`` on ``number``; both play their tone and hear the other's.

    Keys are pressed once the conversation is audible, as a person would; keys right
    behind the ACK have a test of their own.
    """
    call, incoming = connect(switch, lab, caller, callee, number)
    call.play_tone(caller_hz)
    incoming.play_tone(callee_hz)
    talking(lab, tmp_path, "conversation", (call, caller_hz), (incoming, callee_hz))
    return call, incoming


def ring_and_answer(phone, timeout: float = SIGNAL_S) -> Call:
    """The next call ringing on ``phone`` (a transfer target, a recall), answered."""
    incoming = phone.wait_incoming(timeout)
    incoming.answer(200)
    incoming.wait_state("CONFIRMED", timeout)
    incoming.wait_media(timeout)
    return incoming


# --------------------------------------------------------------------------- REFER


def test_blind_transfer_by_refer(daemon, phone_lab, tmp_path):
    """Bob's transfer key sends Alice to Carol: 202, NOTIFY 200, Bob released by the switch's
    BYE; Alice hears music on hold while Carol rings; then Alice and Carol talk."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol", trace=True)
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.xfer("203")
    assert at_bob.wait_transfer_status(SIGNAL_S) == 200, at_bob.transfer_status
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)  # Bob never hung up: the switch sent BYE
    assert responses_to(switch, bob.port, "REFER") == [202]
    assert len(requests_to(switch, bob.port, "BYE")) == 1
    ringing = carol.wait_incoming(SIGNAL_S)
    assert "201" in ringing.remote_uri, ringing.remote_uri  # Carol sees who is coming
    hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-waits")

    ringing.answer(200)
    ringing.wait_state("CONFIRMED", SIGNAL_S)
    ringing.wait_media(SIGNAL_S)
    ringing.play_tone(CAROL_HZ)
    talking(phone_lab, tmp_path, "alice-carol", (to_bob, ALICE_HZ), (ringing, CAROL_HZ))

    to_bob.hangup()
    ringing.wait_state("DISCONNECTED", SIGNAL_S)


@pytest.mark.parametrize("refer_on", ["held-call", "consultation-call"])
def test_attended_transfer_by_refer_with_replaces(daemon, phone_lab, tmp_path, refer_on):
    """Bob holds Alice (she hears the music), calls Carol, then presses transfer: Alice and
    Carol talk, both of Bob's calls end. A phone may send the REFER on either call with
    Replaces naming the other (pjsua2 ``a.xferReplaces(b)``: REFER on a, Replaces = b)."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob", trace=True)
    carol = spawn_phone_process("carol", lab=phone_lab)  # 4 calls per pjsua2 process at most
    try:
        assert switch.register(carol, "203") == 200
        to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)
        at_bob.hold()
        at_bob.wait_media_dir("sendonly", SIGNAL_S)
        hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-held")

        consult = bob.dial("203")
        at_carol = carol.wait_incoming(SIGNAL_S, answer=200)
        consult.wait_state("CONFIRMED", SIGNAL_S)
        consult.wait_media(SIGNAL_S)
        at_carol.wait_media(SIGNAL_S)
        consult.play_tone(BOB_HZ)
        at_carol.play_tone(CAROL_HZ)
        talking(phone_lab, tmp_path, "bob-carol", (consult, BOB_HZ), (at_carol, CAROL_HZ))

        refer_call = at_bob if refer_on == "held-call" else consult
        other_call = consult if refer_on == "held-call" else at_bob
        refer_call.xfer_replaces(other_call)
        assert refer_call.wait_transfer_status(SIGNAL_S) == 200, (refer_call.transfer_status, switch.log_tail())
        at_bob.wait_state("DISCONNECTED", SIGNAL_S)
        consult.wait_state("DISCONNECTED", SIGNAL_S)

        talking(phone_lab, tmp_path, "alice-carol", (to_bob, ALICE_HZ), (at_carol, CAROL_HZ))
        assert (to_bob.state, at_carol.state) == ("CONFIRMED", "CONFIRMED")
        assert requests_to(switch, alice.port, "BYE") == [] and requests_to(switch, carol.port, "BYE") == []
        to_bob.hangup()
        at_carol.wait_state("DISCONNECTED", SIGNAL_S)
    finally:
        carol.close()


# --------------------------------------------------------------------------- ## codes


def test_blind_transfer_by_code_in_rfc4733(daemon, phone_lab, tmp_path):
    """Bob keys ##1203#: he is released, Carol rings and talks to Alice."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.dial_dtmf("##1203#")
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)
    at_carol = ring_and_answer(carol)
    at_carol.play_tone(CAROL_HZ)
    talking(phone_lab, tmp_path, "alice-carol", (to_bob, ALICE_HZ), (at_carol, CAROL_HZ))
    assert to_bob.received_dtmf == [], "the code's keys reached Alice"

    at_carol.hangup()
    to_bob.wait_state("DISCONNECTED", SIGNAL_S)


def test_consultation_by_sip_info_completes_when_the_consulting_party_hangs_up(daemon, phone_lab, tmp_path):
    """On his own outgoing call Bob keys ##2203# as one INFO per key: Alice hears music on
    hold, Bob talks to Carol; Bob hangs up and Alice talks to Carol."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol", trace=True)
    to_alice, at_alice = conversation(switch, phone_lab, tmp_path, bob, alice, "201", BOB_HZ, ALICE_HZ)

    key_info(phone_lab, to_alice, "##2203#")
    at_carol = ring_and_answer(carol)
    at_carol.play_tone(CAROL_HZ)
    hears_music_on_hold(phone_lab, at_alice, tmp_path, "alice-held")
    talking(phone_lab, tmp_path, "bob-carol", (to_alice, BOB_HZ), (at_carol, CAROL_HZ))

    to_alice.hangup()
    talking(phone_lab, tmp_path, "alice-carol", (at_alice, ALICE_HZ), (at_carol, CAROL_HZ))
    assert at_alice.received_dtmf == [], "the code's keys reached Alice"
    assert requests_to(switch, alice.port, "INFO") == [], "the code's keys reached Alice's phone as INFO"

    at_alice.hangup()
    at_carol.wait_state("DISCONNECTED", SIGNAL_S)


def test_keys_pressed_as_soon_as_the_call_is_answered_are_codes_too(daemon, phone_lab, tmp_path):
    """A phone may key at once (a fast thumb, an auto-dialler): Bob's first INFO arrives
    right behind his ACK. It must already go to the ## parser, not to Alice."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol", trace=True)
    to_alice = bob.dial("201")
    at_alice = alice.wait_incoming(SIGNAL_S)
    at_alice.answer(200)
    to_alice.wait_state("CONFIRMED", SIGNAL_S)  # the ACK is on its way
    key_info(phone_lab, to_alice, "##2203#")

    at_carol = ring_and_answer(carol)
    assert requests_to(switch, alice.port, "INFO") == [], "the code's first key reached Alice's phone"
    to_alice.wait_media(SIGNAL_S)
    at_alice.wait_media(SIGNAL_S)
    at_alice.play_tone(ALICE_HZ)
    hears_music_on_hold(phone_lab, at_alice, tmp_path, "alice-held")
    to_alice.play_tone(BOB_HZ)
    at_carol.play_tone(CAROL_HZ)
    talking(phone_lab, tmp_path, "bob-carol", (to_alice, BOB_HZ), (at_carol, CAROL_HZ))

    at_carol.hangup()  # the consulted party leaves: Bob is back with Alice
    talking(phone_lab, tmp_path, "bob-alice", (to_alice, BOB_HZ), (at_alice, ALICE_HZ))
    to_alice.hangup()
    at_alice.wait_state("DISCONNECTED", SIGNAL_S)


def consult_carol(switch, lab: PhoneLab, tmp_path: Path, alice, bob, carol) -> tuple[Call, Call, Call]:
    """Alice calls Bob; Bob keys ##2203# and Carol answers. Returns the calls of Alice,
    Bob and Carol, each playing its owner's tone; Bob is talking to Carol."""
    to_bob, at_bob = conversation(switch, lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)
    at_bob.dial_dtmf("##2203#")
    at_carol = ring_and_answer(carol)
    at_carol.play_tone(CAROL_HZ)
    talking(lab, tmp_path, "consulting", (at_bob, BOB_HZ), (at_carol, CAROL_HZ))
    return to_bob, at_bob, at_carol


def test_three_way_call_each_party_hears_the_two_others(daemon, phone_lab, tmp_path):
    """##2 then ##3: Alice, Bob and Carol in one conference. A ## code has no one partner
    to act on there: Carol's ## hold is refused and changes nothing. When Bob leaves,
    Alice and Carol go on talking."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    to_bob, at_bob, at_carol = consult_carol(switch, phone_lab, tmp_path, alice, bob, carol)

    at_bob.dial_dtmf("##3")
    wait_log(switch, phone_lab, "three-way call")
    mixes = {"alice": (to_bob, BOB_HZ, CAROL_HZ), "bob": (at_bob, ALICE_HZ, CAROL_HZ),
             "carol": (at_carol, ALICE_HZ, BOB_HZ)}
    for name, (call, a, b) in mixes.items():
        listen_until(phone_lab, call, lambda wav, a=a, b=b: assert_two_tones(wav, a, b), tmp_path, f"mix-{name}")
    # and all three at once, over the same stretch of time
    for name, (call, _, _) in mixes.items():
        call.start_recording(tmp_path / f"together-{name}.wav")
    phone_lab.pump(RECORD_MS)
    for call, a, b in mixes.values():
        assert_two_tones(call.stop_recording(), a, b)

    at_carol.dial_dtmf("###")  # ## then #: hold at once
    wait_log(switch, phone_lab, "203 keyed ##hold")
    listen_until(phone_lab, at_carol, lambda wav: assert_two_tones(wav, ALICE_HZ, BOB_HZ), tmp_path, "mix-again")

    at_bob.hangup()
    talking(phone_lab, tmp_path, "alice-carol", (to_bob, ALICE_HZ), (at_carol, CAROL_HZ))
    assert "##hold from 203 refused: in a three-way call" in switch.log_text()
    to_bob.hangup()
    at_carol.wait_state("DISCONNECTED", SIGNAL_S)


def test_swap_twice_then_cancel_the_consultation(daemon, phone_lab, tmp_path):
    """##4 swaps who Bob talks to (the other hears music on hold); ##0 drops Carol and
    brings Bob back to Alice."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    to_bob, at_bob, at_carol = consult_carol(switch, phone_lab, tmp_path, alice, bob, carol)
    hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-held")

    at_bob.dial_dtmf("##4")
    wait_log(switch, phone_lab, "202 keyed ##swap")
    talking(phone_lab, tmp_path, "swapped", (at_bob, BOB_HZ), (to_bob, ALICE_HZ))
    hears_music_on_hold(phone_lab, at_carol, tmp_path, "carol-held")

    at_bob.dial_dtmf("##4")
    wait_log(switch, phone_lab, "202 keyed ##swap", count=2)
    talking(phone_lab, tmp_path, "swapped-back", (at_bob, BOB_HZ), (at_carol, CAROL_HZ))
    hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-held-again")

    at_bob.dial_dtmf("##0")
    at_carol.wait_state("DISCONNECTED", SIGNAL_S)
    talking(phone_lab, tmp_path, "back-to-alice", (at_bob, BOB_HZ), (to_bob, ALICE_HZ))
    assert to_bob.received_dtmf == [] and at_carol.received_dtmf == [], "the code's keys were passed on"

    to_bob.hangup()
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)


def test_bare_prefix_holds_and_resumes_the_other_party(daemon, phone_lab, tmp_path):
    """## and nothing for 3 s: Alice hears music on hold and Bob hears nothing of her;
    ## again resumes the conversation."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.dial_dtmf("##")
    wait_log(switch, phone_lab, "202 keyed ##hold")
    hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-held")
    hears_silence(phone_lab, at_bob, tmp_path, "bob-holding")

    at_bob.dial_dtmf("##")
    wait_log(switch, phone_lab, "202 keyed ##hold", count=2)
    talking(phone_lab, tmp_path, "resumed", (to_bob, ALICE_HZ), (at_bob, BOB_HZ))
    assert to_bob.received_dtmf == [], "the prefix reached Alice"

    to_bob.hangup()
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)


def test_consultation_after_a_code_hold_talks_to_the_target(daemon, phone_lab, tmp_path):
    """Bob first holds Alice with ## and then decides to consult Carol with ##2: the hold
    was for Alice, so Bob and Carol hear each other (not music); when Bob hangs up, Alice
    and Carol talk."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)
    at_bob.dial_dtmf("###")  # ## then # : hold at once
    wait_log(switch, phone_lab, "202 keyed ##hold")
    hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-held")

    at_bob.dial_dtmf("##2203#")
    at_carol = ring_and_answer(carol)
    at_carol.play_tone(CAROL_HZ)
    talking(phone_lab, tmp_path, "bob-carol", (at_bob, BOB_HZ), (at_carol, CAROL_HZ))
    hears_music_on_hold(phone_lab, to_bob, tmp_path, "alice-still-held")

    at_bob.hangup()
    talking(phone_lab, tmp_path, "alice-carol", (to_bob, ALICE_HZ), (at_carol, CAROL_HZ))
    to_bob.hangup()
    at_carol.wait_state("DISCONNECTED", SIGNAL_S)


def test_code_keys_are_not_passed_on_but_other_keys_are(daemon, phone_lab, tmp_path):
    """Bob keys ##1299# (no such extension): Alice gets none of those keys; the 5 Bob
    keys next reaches her (as RFC 4733, in order: nothing came before it)."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.dial_dtmf("##1299#")
    wait_log(switch, phone_lab, "no extension 299")
    at_bob.dial_dtmf("5")
    assert to_bob.wait_dtmf(1, SIGNAL_S) == "5", to_bob.received_dtmf
    talking(phone_lab, tmp_path, "still-connected", (to_bob, ALICE_HZ), (at_bob, BOB_HZ))
    assert to_bob.received_dtmf == ["5"]  # and no stray key arrived meanwhile

    to_bob.hangup()
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("keys, why", [("##9", "keyed an invalid code ##9"), ("##1299#", "no extension 299")],
                         ids=["unknown-function", "unknown-extension"])
def test_bad_code_plays_a_prompt_and_keeps_the_call(daemon, phone_lab, tmp_path, keys, why):
    """Junk after ## or a transfer to a number that does not exist: Bob hears a spoken
    prompt (Alice's phone never sends sound, so what Bob hears is the switch's), the switch
    logs why, and Alice and Bob go on talking."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    to_bob, at_bob = connect(switch, phone_lab, alice, bob, "202")
    at_bob.play_tone(BOB_HZ)
    hears(phone_lab, to_bob, BOB_HZ, tmp_path, "bob-heard")  # the call is up: Bob may key now

    at_bob.dial_dtmf(keys)
    wait_log(switch, phone_lab, why)
    hears_a_prompt(phone_lab, at_bob, tmp_path, "prompt")

    to_bob.play_tone(ALICE_HZ)
    talking(phone_lab, tmp_path, "still-connected", (to_bob, ALICE_HZ), (at_bob, BOB_HZ))
    assert (to_bob.state, at_bob.state) == ("CONFIRMED", "CONFIRMED")
    to_bob.hangup()
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)


def test_refer_with_a_bad_target_or_replaces_keeps_the_call(daemon, phone_lab, tmp_path):
    """Each refused, and Alice and Bob stay connected after all of them:

    - REFER to 299 (no such extension): 404;
    - REFER with Replaces naming a dialog the switch does not have (Bob's direct call to a
      phone outside the switch): final NOTIFY 481;
    - Replaces naming the REFER's own dialog, or a dialog of another user (Alice's side
      of this call; RFC 3891 section 6: a Replaces must be authorised): final NOTIFY 403.
    """
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    outsider = phone_lab.phone("dave")  # not registered: reachable peer to peer only
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.xfer("299")
    assert at_bob.wait_transfer_status(SIGNAL_S) == 404, at_bob.transfer_status
    wait_log(switch, phone_lab, "no extension 299")

    direct = bob.call(outsider.uri)
    at_outsider = ring_and_answer(outsider)
    direct.wait_state("CONFIRMED", SIGNAL_S)
    at_bob.transfer_status.clear()
    at_bob.xfer_replaces(direct)
    assert at_bob.wait_transfer_status(SIGNAL_S) == 481, at_bob.transfer_status
    wait_log(switch, phone_lab, "no such dialog")
    direct.hangup()
    at_outsider.wait_state("DISCONNECTED", SIGNAL_S)

    at_bob.transfer_status.clear()
    at_bob.xfer_replaces(at_bob)
    assert at_bob.wait_transfer_status(SIGNAL_S) == 403, at_bob.transfer_status
    wait_log(switch, phone_lab, "names this very dialog")

    at_bob.transfer_status.clear()
    at_bob.xfer_replaces(to_bob)  # the same process holds Alice's phone: her dialog's tags
    assert at_bob.wait_transfer_status(SIGNAL_S) == 403, at_bob.transfer_status
    wait_log(switch, phone_lab, "names a call of 201")

    talking(phone_lab, tmp_path, "still-connected", (to_bob, ALICE_HZ), (at_bob, BOB_HZ))
    to_bob.hangup()
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)


def test_refer_while_the_call_is_being_transferred_gets_491(daemon, phone_lab, tmp_path):
    """While Carol rings for Bob's blind transfer, Alice's own transfer key is refused with
    491; the transfer goes on and Alice talks to Carol."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.xfer("203")
    assert at_bob.wait_transfer_status(SIGNAL_S) == 200, at_bob.transfer_status
    ringing = carol.wait_incoming(SIGNAL_S)
    to_bob.xfer("202")
    assert to_bob.wait_transfer_status(SIGNAL_S) == 491, to_bob.transfer_status
    wait_log(switch, phone_lab, "REFER from 201 while transferring")

    ringing.answer(200)
    ringing.wait_state("CONFIRMED", SIGNAL_S)
    ringing.wait_media(SIGNAL_S)
    ringing.play_tone(CAROL_HZ)
    talking(phone_lab, tmp_path, "alice-carol", (to_bob, ALICE_HZ), (ringing, CAROL_HZ))
    to_bob.hangup()
    ringing.wait_state("DISCONNECTED", SIGNAL_S)


def test_blind_transfer_not_answered_returns_to_the_transferor(daemon, phone_lab, tmp_path):
    """Carol is busy (486): the call comes back to Bob's phone as a call from Alice; he
    answers and they talk again."""
    switch, (alice, bob, carol) = start(daemon, phone_lab, "alice", "bob", "carol")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.dial_dtmf("##1203#")
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)
    carol.wait_incoming(SIGNAL_S).answer(486)
    recall = ring_and_answer(bob)
    assert "201" in recall.remote_uri, recall.remote_uri
    recall.play_tone(BOB_HZ)
    talking(phone_lab, tmp_path, "recalled", (to_bob, ALICE_HZ), (recall, BOB_HZ))

    recall.hangup()
    to_bob.wait_state("DISCONNECTED", SIGNAL_S)


def test_blind_transfer_not_answered_and_recall_refused_ends_the_call(daemon, phone_lab, tmp_path):
    """Carol has no registered device and Bob declines the recall: Alice's call ends."""
    switch, (alice, bob) = start(daemon, phone_lab, "alice", "bob")
    to_bob, at_bob = conversation(switch, phone_lab, tmp_path, alice, bob, "202", ALICE_HZ, BOB_HZ)

    at_bob.xfer("203")
    assert at_bob.wait_transfer_status(SIGNAL_S) == 200, at_bob.transfer_status
    at_bob.wait_state("DISCONNECTED", SIGNAL_S)
    bob.wait_incoming(SIGNAL_S).answer(486)
    to_bob.wait_state("DISCONNECTED", SIGNAL_S)
    wait_log(switch, phone_lab, "transfer failed: ending the call")
