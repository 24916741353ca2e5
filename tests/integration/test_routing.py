"""Routing through the real daemon with SIPp as the carrier (issue 5; SPEC §4, §19, §29).

The carrier lives at its own loopback address, ``127.0.0.2``: the switch knows a trunk's
calls by the source IP (``TrunkManager.match_inbound``), and the pjsua2 phones are on
127.0.0.1, so a trunk there would claim every phone's call as inbound. SIPp plays both
sides of the trunk:

- ``carrier_uas.xml`` is the far end of outbound calls: it answers the switch's OPTIONS
  keep-alive probes and checks the INVITE's Request-URI, From, P-Asserted-Identity and
  Privacy against ``-set`` values (a mismatch fails SIPp's call, so its exit code is 1);
- ``carrier_reject.xml`` is a carrier that is up but refuses calls (fail-over);
- ``carrier_uac.xml`` delivers an inbound call to a DID and checks the final status.

The UAS scenarios run until the test stops them with SIGUSR1 (probes arrive at any time,
so ``-m`` cannot count the test's calls); exit code 0 then means no call failed, and
the message trace says how many INVITEs arrived.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

import cli

from .daemon import HOST, Daemon, Sipp
from .phones import Call, Phone, PhoneLab, rms_level
from .test_calls import connect, talk
from .test_login import keyed_service_call

pytestmark = pytest.mark.integration

CARRIER_HOST = "127.0.0.2"
ZONE = ZoneInfo("Europe/Amsterdam")  # the account's time zone (the default)
COMPANY = "+31201234567"  # the account's first DID: its company number
DID_NATIONAL = "0201234567"  # COMPANY as a Dutch carrier sends it
MOBILE = "0612345678"  # an external number, as a user dials it
MOBILE_E164 = "+31612345678"
#: Bounded run of one SIPp carrier scenario, in seconds.
CARRIER_TIMEOUT_S = 40


# --------------------------------------------------------------------------- the carrier


_started: list[Sipp] = []


@pytest.fixture(autouse=True)
def _stop_carriers() -> Iterator[None]:
    """A failed test leaves no SIPp behind (Sipp.stop: SIGTERM, which `timeout` passes on)."""
    yield
    while _started:
        _started.pop().stop()


def carrier_port() -> int:
    """A UDP port that was free on the carrier's address a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CARRIER_HOST, 0))
        return int(s.getsockname()[1])


def carrier(scenario: str, tmp_path: Path, *, port: int | None = None, remote: str | None = None,
            sets: dict[str, str] | None = None, keys: dict[str, str] | None = None,
            calls: int = 1000, **kwargs) -> Sipp:
    """A SIPp run at the carrier's address (``-i``/``-mi`` 127.0.0.2), ``-set`` globals for the checks."""
    extra = ["-i", CARRIER_HOST, "-mi", CARRIER_HOST]
    for name, value in (sets or {}).items():
        extra += ["-set", name, value]
    sipp = Sipp(scenario, tmp_path, remote, local_port=port or carrier_port(), keys=keys, calls=calls,
                timeout_s=CARRIER_TIMEOUT_S, recv_timeout_ms=CARRIER_TIMEOUT_S * 1000, extra=extra, **kwargs)
    _started.append(sipp)
    return sipp


def carrier_uas(tmp_path: Path, port: int, *, ruri: str, from_: str, pai: str, privacy: str = "",
                answer_probes: bool = True) -> Sipp:
    """The far end of outbound calls, expecting these identity values (see carrier_uas.xml);
    without ``answer_probes`` it ignores the keep-alive, so the switch believes it down."""
    return carrier("carrier_uas.xml", tmp_path, port=port, sets={
        "want_ruri": ruri, "want_from": from_, "want_pai": pai, "want_privacy": privacy,
        "probes": "answer" if answer_probes else "ignore"}).start()


def finish(sipp: Sipp) -> int:
    """Stop a carrier UAS gracefully (SIGUSR1: no new calls, current ones finish); its exit code."""
    assert sipp.process is not None
    wrapper = sipp.process.pid
    try:  # Sipp runs `timeout ... sipp`: the signal is for SIPp, the wrapper's only child
        children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    except FileNotFoundError:
        children = []  # SIPp and its wrapper are done already
    for pid in children:
        os.kill(int(pid), signal.SIGUSR1)
    return sipp.wait()


def trace(sipp: Sipp) -> str:
    """A SIPp run's message trace (-trace_msg): every message it sent and received."""
    return sipp.message_file.read_text(errors="replace") if sipp.message_file.exists() else ""


def refusal_received(sipp: Sipp) -> str:
    """The status line of the first failure response in a SIPp run's message trace."""
    found = re.search(r"^SIP/2\.0 [3-6]\d\d [^\r\n]*", trace(sipp), flags=re.MULTILINE)
    return found.group(0) if found else ""


def invites_received(sipp: Sipp) -> list[str]:
    """The Request-URIs of the INVITEs in a SIPp run's message trace."""
    return re.findall(r"^INVITE (\S+) SIP/2\.0", trace(sipp), flags=re.MULTILINE)


def carrier_idle(tmp_path: Path, port: int) -> Sipp:
    """The carrier's signalling port when the test expects no outbound call: it answers the
    keep-alive probes (the trunk is up) and fails on any INVITE."""
    return carrier_uas(tmp_path, port, ruri="no INVITE expected", from_="-", pai="-")


def inbound_call(switch: Daemon, tmp_path: Path, did: str, *, status: int, caller: str = MOBILE,
                 rtp: bool = False, duration_ms: int = 0) -> Sipp:
    """The carrier sends a call to ``did`` from another port of its address; the call must end
    with ``status`` (carrier_uac.xml)."""
    return carrier("carrier_uac.xml", tmp_path, remote=f"{HOST}:{switch.sip_port}", calls=1, service=did,
                   duration_ms=duration_ms, keys={"caller": caller, "rtp": "yes" if rtp else "no"},
                   sets={"want_status": str(status)}).start()


# --------------------------------------------------------------------------- configuration


def admin(switch: Daemon, *args: str) -> str:
    """``softswitch --db DB ARGS`` in this process (the same click commands as the subprocess
    CLI, without a second of interpreter start-up per command); its stdout."""
    result = CliRunner().invoke(cli.main, ["--db", str(switch.db_path), *map(str, args)])
    assert result.exit_code == 0, f"softswitch {' '.join(args)}: {result.output}{result.exception or ''}"
    return result.stdout


def admin_json(switch: Daemon, *args: str) -> Any:
    return json.loads(admin(switch, *args, "--json"))


def add_trunk(switch: Daemon, port: int, name: str = "carrier", priority: int = 1) -> None:
    admin(switch, "trunk", "add", "acme", name, "--host", f"{CARRIER_HOST}:{port}", "--priority", str(priority))


def wait_trunk(switch: Daemon, lab: PhoneLab, name: str, state: str, timeout: float = 5.0) -> dict:
    """Wait until ``trunk list`` shows trunk ``name`` in ``state`` (written behind by the daemon)."""
    deadline = time.monotonic() + timeout
    while True:
        row = next(r for r in admin_json(switch, "trunk", "list", "acme") if r["name"] == name)
        if row["status"] == state or time.monotonic() > deadline:
            break
        lab.pump(100)
    assert row["status"] == state, (row, switch.log_tail())
    return row


def local(day: dt.date, clock: str = "00:00") -> str:
    """A local time as the CLI takes it: "YYYY-MM-DD HH:MM"."""
    return f"{day.isoformat()} {clock}"


def today() -> dt.date:
    return dt.datetime.now(ZONE).date()


def weekday_name(day: dt.date) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]


def numberplans_day_and_night(switch: Daemon) -> None:
    """COMPANY on trunk "carrier": plan 1 "Day" → 201, plan 2 "Night" → 202; plan 1 all week."""
    admin(switch, "number", "add", "acme", COMPANY, "--trunk", "carrier")
    admin(switch, "numberplan", "add", "acme", "1", "--name", "Day")
    admin(switch, "numberplan", "add", "acme", "2", "--name", "Night")
    admin(switch, "numberplan", "map", "acme", "1", COMPANY, "201")
    admin(switch, "numberplan", "map", "acme", "2", COMPANY, "202")
    admin(switch, "schedule", "add", "acme", "1", "--days", "mon-sun", "--from", "00:00", "--to", "24:00")


def active_plan(switch: Daemon) -> dict:
    [row] = admin_json(switch, "numberplan", "active", "acme")
    return row


# --------------------------------------------------------------------------- 1. inbound DIDs


def answer_inbound(lab: PhoneLab, phone: Phone, sipp: Sipp, tmp_path: Path) -> None:
    """``phone`` rings, answers and hears the carrier's audio until the carrier hangs up."""
    incoming = phone.wait_incoming(5)
    incoming.answer(200)
    incoming.wait_state("CONFIRMED", 5)
    incoming.wait_media(5)
    incoming.start_recording(tmp_path / f"{phone.name}-inbound.wav")
    lab.pump(1500)
    heard = incoming.stop_recording()
    incoming.wait_state("DISCONNECTED", 10)  # the carrier's BYE, relayed
    assert sipp.wait() == 0, sipp.report()
    assert rms_level(heard) > 300, "the carrier's audio did not reach the phone"


def test_inbound_did_follows_the_active_numberplan(daemon, phone_lab, tmp_path):
    switch = daemon()
    port = carrier_port()
    add_trunk(switch, port)
    numberplans_day_and_night(switch)
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    assert switch.register(alice, "201") == 200
    assert switch.register(bob, "202") == 200
    probes = carrier_idle(tmp_path, port)
    wait_trunk(switch, phone_lab, "carrier", "up")

    # plan 1 (schedule, all week): the DID, sent in national form, rings Alice
    sipp = inbound_call(switch, tmp_path, DID_NATIONAL, status=200, rtp=True, duration_ms=2500)
    answer_inbound(phone_lab, alice, sipp, tmp_path)
    assert "inbound call on trunk carrier from +31612345678 to +31201234567 -> 201" in switch.log_text()

    # a holiday covering now with plan 2: the next call rings Bob
    day = today()
    admin(switch, "holiday", "add", "acme", "2", "--from", local(day), "--to", local(day + dt.timedelta(days=2)),
          "--description", "test holiday")
    active = active_plan(switch)
    assert (active["plan"], active["reason"]) == (2, "holiday"), active
    sipp = inbound_call(switch, tmp_path, DID_NATIONAL, status=200, rtp=True, duration_ms=2500)
    answer_inbound(phone_lab, bob, sipp, tmp_path)
    assert not alice.incoming

    # a DID of the account that no numberplan maps: 404
    admin(switch, "number", "add", "acme", "+31201234500", "--trunk", "carrier")
    sipp = inbound_call(switch, tmp_path, "0201234500", status=404)
    assert sipp.wait() == 0, sipp.report()
    assert refusal_received(sipp) == "SIP/2.0 404 Not Found (+31201234500 is in no numberplan)"

    # no holiday, and a schedule with a gap now (plan 1 only on the day after tomorrow): 480
    [holiday] = admin_json(switch, "holiday", "list", "acme")
    admin(switch, "holiday", "delete", "acme", str(holiday["id"]))
    [entry] = admin_json(switch, "schedule", "list", "acme")
    admin(switch, "schedule", "delete", "acme", str(entry["id"]))
    later = weekday_name(day + dt.timedelta(days=2))
    admin(switch, "schedule", "add", "acme", "1", "--days", later, "--from", "00:00", "--to", "24:00")
    sipp = inbound_call(switch, tmp_path, DID_NATIONAL, status=480)
    assert sipp.wait() == 0, sipp.report()
    assert refusal_received(sipp) == "SIP/2.0 480 Temporarily Unavailable (+31201234567: the schedule has a gap here)"
    assert not alice.incoming and not bob.incoming
    assert finish(probes) == 0, probes.report()
    assert invites_received(probes) == []


# --------------------------------------------------------------------------- 2. outbound caller ID


def outbound_call(lab: PhoneLab, phone: Phone, dialled: str, sipp: Sipp) -> None:
    """``phone`` dials ``dialled``; the carrier answers; the caller hangs up; SIPp must be content."""
    call = phone.dial(dialled)
    call.wait_state("CONFIRMED", 5)
    call.hangup()
    assert finish(sipp) == 0, sipp.report()


def test_outbound_call_carries_the_company_or_personal_number_and_31_withholds_it(daemon, phone_lab, tmp_path):
    switch = daemon()
    port = carrier_port()
    add_trunk(switch, port)
    admin(switch, "number", "add", "acme", COMPANY, "--trunk", "carrier")
    alice = phone_lab.phone("alice")
    assert switch.register(alice, "201") == 200
    expected_uri = f"sip:{MOBILE_E164}@{CARRIER_HOST}:{port}"

    # the account's company number (its first DID) in From and P-Asserted-Identity
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_=COMPANY, pai=COMPANY)
    wait_trunk(switch, phone_lab, "carrier", "up")
    outbound_call(phone_lab, alice, MOBILE, sipp)
    assert invites_received(sipp) == [expected_uri]

    # her personal number, once her REACH profile sends it (the default profile sends "company")
    personal = "+31201234599"
    admin(switch, "user", "number", "acme", "201", personal)
    admin(switch, "reach", "profile", "set", "acme", "201", "default", "--caller-id", personal)
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_=personal, pai=personal)
    outbound_call(phone_lab, alice, MOBILE, sipp)
    assert invites_received(sipp) == [expected_uri]

    # #32#: dynamic caller ID 2, a number of the account
    dynamic = "+31201234502"
    admin(switch, "number", "add", "acme", dynamic, "--trunk", "carrier")
    admin(switch, "reach", "callerid", "acme", "201", "2", dynamic)
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_=dynamic, pai=personal)
    outbound_call(phone_lab, alice, "%2332%23" + MOBILE, sipp)
    assert invites_received(sipp) == [expected_uri]

    # #31#: From anonymous and Privacy: id; the identity is still asserted to the carrier
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_="anonymous", pai=personal, privacy="id")
    outbound_call(phone_lab, alice, "%2331%23" + MOBILE, sipp)
    assert invites_received(sipp) == [expected_uri]
    assert "caller ID withheld (#31#" in switch.log_text()


# --------------------------------------------------------------------------- 3. barring and rights


def refused(lab: PhoneLab, phone: Phone, dialled: str) -> tuple[int, str]:
    """Dial and wait for the switch's refusal: (status, reason phrase)."""
    call = phone.dial(dialled)
    call.wait_state("DISCONNECTED", 5)
    return call.last_status, call.last_reason


def test_barring_and_the_external_right_refuse_with_403_but_112_always_reaches_the_trunk(daemon, phone_lab, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("SOFTSWITCH_TRUNK_KEEPALIVE", "1")  # unanswered probes: "down" within seconds
    switch = daemon()
    port = carrier_port()
    # a carrier that ignores the keep-alive but takes calls: the switch believes it down
    sipp = carrier_uas(tmp_path, port, ruri="112", from_=COMPANY, pai=COMPANY, answer_probes=False)
    add_trunk(switch, port)
    admin(switch, "number", "add", "acme", COMPANY, "--trunk", "carrier")
    alice = phone_lab.phone("alice")
    assert switch.register(alice, "201") == 200

    admin(switch, "reach", "barring", "acme", "201", "--bar", "premium")
    status, reason = refused(phone_lab, alice, "0900123456")
    assert status == 403 and "call barring" in reason and "0900" in reason, (status, reason)

    admin(switch, "user", "set", "acme", "201", "--no-may-external")
    status, reason = refused(phone_lab, alice, MOBILE)
    assert status == 403 and "may not call external numbers" in reason, (status, reason)

    # 112 is never barred, and tries even a trunk the keep-alive gave up on
    wait_trunk(switch, phone_lab, "carrier", "down")
    outbound_call(phone_lab, alice, "112", sipp)
    assert invites_received(sipp) == [f"sip:112@{CARRIER_HOST}:{port}"]  # and nothing else
    assert "emergency call 112 from acme-201" in switch.log_text()


# --------------------------------------------------------------------------- 4. fail-over


def test_calls_fail_over_to_the_next_trunk_and_get_503_when_every_trunk_is_down(daemon, phone_lab, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("SOFTSWITCH_TRUNK_KEEPALIVE", "1")  # a silent carrier is "down" within seconds
    switch = daemon()
    first, second = carrier_port(), carrier_port()
    rejecting = carrier("carrier_reject.xml", tmp_path, port=first).start()
    answering = carrier_uas(tmp_path, second, ruri=MOBILE_E164, from_=COMPANY, pai=COMPANY)
    add_trunk(switch, first, "first", priority=1)
    add_trunk(switch, second, "second", priority=2)
    admin(switch, "number", "add", "acme", COMPANY)
    alice = phone_lab.phone("alice")
    assert switch.register(alice, "201") == 200
    wait_trunk(switch, phone_lab, "first", "up")
    wait_trunk(switch, phone_lab, "second", "up")

    # the first trunk refuses with 503: the call goes on to the second
    call = alice.dial(MOBILE)
    call.wait_state("CONFIRMED", 5)
    call.hangup()
    assert finish(rejecting) == 0, rejecting.report()
    assert invites_received(rejecting) == [f"sip:{MOBILE_E164}@{CARRIER_HOST}:{first}"]
    assert switch.log_text().count("trunk first failed (503); trying the next") == 1

    # the first carrier is gone (its probes go unanswered): calls go straight to the second
    wait_trunk(switch, phone_lab, "first", "down")
    call = alice.dial(MOBILE)
    call.wait_state("CONFIRMED", 5)
    call.hangup()
    assert finish(answering) == 0, answering.report()
    assert invites_received(answering) == [f"sip:{MOBILE_E164}@{CARRIER_HOST}:{second}"] * 2

    # no carrier left: 503 with the reason, one log line per trunk
    wait_trunk(switch, phone_lab, "second", "down")
    status, reason = refused(phone_lab, alice, MOBILE)
    assert status == 503, (status, reason)
    assert "first" in reason and "second" in reason and "down" in reason, reason
    log = switch.log_text()
    assert log.count("trunk first of acme not tried") == 1 and log.count("trunk second of acme not tried") == 1


# --------------------------------------------------------------------------- 5. REACH ring sequence


def test_reach_ring_sequence_rings_the_second_device_after_the_first_groups_timeout(daemon, phone_lab, tmp_path):
    switch = daemon()
    admin(switch, "account", "set", "acme", "--twinning")
    admin(switch, "user", "set", "acme", "202", "--twinning")
    admin(switch, "login", "acme", "202", "acme-203")  # Bob on his desk phone and on a second device
    admin(switch, "reach", "profile", "set", "acme", "202", "default", "--ring", "acme-202:5;acme-203:5")
    alice, desk, second = phone_lab.phone("alice"), phone_lab.phone("bob-desk"), phone_lab.phone("bob-second")
    assert switch.register(alice, "201") == 200
    assert switch.register(desk, "202") == 200
    assert switch.register(second, "203") == 200  # channel acme-203, Bob logged in on it

    call = alice.dial("202")
    first = desk.wait_incoming(5)
    phone_lab.wait_for(lambda: bool(second.incoming) or first.state == "DISCONNECTED", 15,
                       "the first ring group to end or the second device to ring")
    assert first.state == "DISCONNECTED", "the second device rang while the first group was still ringing"
    assert first.last_status == 487  # CANCELled: its 5 s were up
    incoming = second.wait_incoming(5)
    incoming.answer(200)
    call.wait_state("CONFIRMED", 5)
    incoming.wait_state("CONFIRMED", 5)
    call.wait_media(5)
    incoming.wait_media(5)
    talk(phone_lab, call, incoming, tmp_path, "sequence")
    call.hangup()
    incoming.wait_state("DISCONNECTED", 5)
    assert "REACH 202: status available, class internal, profile default" in switch.log_text()


# --------------------------------------------------------------------------- 6. forwards


def test_forward_on_no_answer_and_on_busy_reach_an_external_number_and_a_loop_ends_busy(daemon, phone_lab,
                                                                                         tmp_path):
    switch = daemon()
    port = carrier_port()
    add_trunk(switch, port)
    admin(switch, "number", "add", "acme", COMPANY, "--trunk", "carrier")
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    assert switch.register(alice, "201") == 200
    assert switch.register(bob, "202") == 200
    expected_uri = f"sip:{MOBILE_E164}@{CARRIER_HOST}:{port}"

    # no answer within 5 s: forwarded through the trunk; the caller's ID is the calling
    # party's (Alice is internal: her outbound identity, the company number)
    admin(switch, "reach", "profile", "set", "acme", "202", "default", "--forward-noanswer", MOBILE,
          "--noanswer-timeout", "5")
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_=COMPANY, pai=COMPANY)
    wait_trunk(switch, phone_lab, "carrier", "up")
    call = alice.dial("202")
    ringing = bob.wait_incoming(5)
    phone_lab.wait_for(lambda: ringing.state == "DISCONNECTED" or call.state == "CONFIRMED", 10,
                       "Bob's ring time to end or the carrier to answer")
    assert (ringing.state, ringing.last_status) == ("DISCONNECTED", 487), "forwarded while Bob's phone rang"
    call.wait_state("CONFIRMED", 5)  # the carrier answered
    call.hangup()
    assert finish(sipp) == 0, sipp.report()
    assert invites_received(sipp) == [expected_uri]

    # busy: forwarded on busy, now with the called number (Bob's personal number) as caller ID
    bob_number = "+31201234588"
    admin(switch, "user", "number", "acme", "202", bob_number)
    admin(switch, "reach", "profile", "set", "acme", "202", "default", "--no-forward-noanswer",
          "--forward-busy", MOBILE, "--forward-caller-id", "called")
    sipp = carrier_uas(tmp_path, port, ruri=MOBILE_E164, from_=bob_number, pai=bob_number)
    call = alice.dial("202")
    bob.wait_incoming(5).answer(486)
    call.wait_state("CONFIRMED", 5)
    call.hangup()
    assert finish(sipp) == 0, sipp.report()
    assert invites_received(sipp) == [expected_uri]

    # 202 forwards to 203 and 203 to 202: the hop limit ends it busy, no phone rings
    admin(switch, "reach", "forward", "acme", "202", "--always", "ext:203")
    admin(switch, "reach", "forward", "acme", "203", "--always", "ext:202")
    status, reason = refused(phone_lab, alice, "202")
    assert status == 486 and "forward loop" in reason, (status, reason)
    assert not bob.incoming
    log = switch.log_text()
    assert 2 <= log.count("forwards to ext:") <= 6, log.count("forwards to ext:")


# --------------------------------------------------------------------------- 7. 915


def timeconfig_setup(switch: Daemon, lab: PhoneLab) -> tuple[Phone, dt.date]:
    """Plans 1 (Day → 201) and 2 (Night → 202); plan 1 all week except one hour two days from
    now, when plan 2 takes over (the next scheduled change). Alice registered; returns her
    phone and the day of that change."""
    admin(switch, "number", "add", "acme", COMPANY)
    admin(switch, "numberplan", "add", "acme", "1", "--name", "Day")
    admin(switch, "numberplan", "add", "acme", "2", "--name", "Night")
    admin(switch, "numberplan", "map", "acme", "1", COMPANY, "201")
    admin(switch, "numberplan", "map", "acme", "2", COMPANY, "202")
    change_day = today() + dt.timedelta(days=2)
    day = weekday_name(change_day)
    admin(switch, "schedule", "add", "acme", "1", "--period", f"{day} 10:00", f"{day} 09:00")
    admin(switch, "schedule", "add", "acme", "2", "--days", day, "--from", "09:00", "--to", "10:00")
    alice = lab.phone("alice")
    assert switch.register(alice, "201") == 200
    return alice, change_day


def active(switch: Daemon) -> tuple[int, str]:
    """The active numberplan of schema 1 now and why (override, holiday, schedule)."""
    row = active_plan(switch)
    return row["plan"], row["reason"]


def dial_915(lab: PhoneLab, phone: Phone, keys: list[str], tmp_path: Path) -> Call:
    """915 with its prompts played in full (about 20 s for a change), then the switch hangs up."""
    return keyed_service_call(lab, phone, "915", keys, tmp_path, timeout=40)


def test_915_needs_the_right_and_2_sets_a_permanent_override(daemon, phone_lab, tmp_path):
    switch = daemon()
    alice, _ = timeconfig_setup(switch, phone_lab)

    # without the time-configuration right: "not allowed", nothing changes
    call = dial_915(phone_lab, alice, ["2", "2#", "#"], tmp_path)
    assert call.prompt_level > 200, "no announcement was heard"
    assert "915 from 201 refused: no time-configuration right" in switch.log_text()
    assert active(switch) == (1, "schedule")

    # 2 permanent change, numberplan 2 #, confirm with #
    admin(switch, "user", "set", "acme", "201", "--may-time-config")
    dial_915(phone_lab, alice, ["2", "2#", "#"], tmp_path)
    assert active(switch) == (2, "override")
    assert "915 by 201: schema 1 numberplan 2 set permanently" in switch.log_text()


def test_915_1_changes_until_the_next_scheduled_change_and_3_restores_the_schedule(daemon, phone_lab, tmp_path):
    switch = daemon()
    alice, change_day = timeconfig_setup(switch, phone_lab)
    admin(switch, "user", "set", "acme", "201", "--may-time-config")

    # 1 temporary change: a holiday entry that ends when the schedule next changes
    dial_915(phone_lab, alice, ["1", "2#", "#"], tmp_path)
    assert active(switch) == (2, "holiday")
    [holiday] = admin_json(switch, "holiday", "list", "acme")
    assert (holiday["plan"], holiday["description"], holiday["to"]) == (
        2, "915 temporary change", local(change_day, "09:00")), holiday

    # 3: back to the schedule; the temporary change is gone
    dial_915(phone_lab, alice, ["3"], tmp_path)
    assert active(switch) == (1, "schedule")
    assert admin_json(switch, "holiday", "list", "acme") == []


# --------------------------------------------------------------------------- 8. *910


def test_star_910_sets_and_clears_an_unconditional_forward_from_the_phone(daemon, phone_lab, tmp_path):
    switch = daemon()
    alice, bob, carol = phone_lab.phone("alice"), phone_lab.phone("bob"), phone_lab.phone("carol")
    for phone, ext in ((alice, "201"), (bob, "202"), (carol, "203")):
        assert switch.register(phone, ext) == 200

    call = keyed_service_call(phone_lab, alice, "*910203", [], tmp_path)
    assert call.prompt_level > 200, "no confirmation was heard"
    assert admin(switch, "reach", "forward", "acme", "201").strip() == "user 201: *910 forward always → ext:203"

    # a call to Alice rings Carol
    out, incoming = connect(switch, phone_lab, bob, carol, "201")
    out.hangup()
    incoming.wait_state("DISCONNECTED", 5)
    assert not alice.incoming

    keyed_service_call(phone_lab, alice, "*910", [], tmp_path)
    assert admin(switch, "reach", "forward", "acme", "201").strip() == "user 201: no *910 forward"
    out, incoming = connect(switch, phone_lab, bob, alice, "201")
    out.hangup()
    incoming.wait_state("DISCONNECTED", 5)
