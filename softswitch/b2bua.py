"""Calls through the B2BUA: parties, their legs and endpoints, and how they are connected.

A **Call** starts with an INVITE from a device (the UAS leg towards the caller) and one
UAC leg per registered device of the callee (parallel forking: twinning rings every
device of the user). Once answered the call holds **parties**: one per SIP dialog, each
with its own media endpoint of the switch (media is always anchored). Features change
who talks to whom without touching the far ends' SDP:

    caller ──leg── [ep a] ══ relay ══ [ep b] ──leg── callee          (a normal call)
    caller ──leg── [ep a] ◄─ music on hold                           (held, parked, consulting)
    A, B, C ──legs── [eps] ══ mix-minus conference                   (##3)

* ``partner`` pairs the parties that are in conversation; ``_connect(p, q)`` relays them
  (unless one side holds), ``_music(p)`` plays music on hold to a party.
* Hold from a phone (re-INVITE sendonly/inactive) is answered by the switch itself: the
  partner hears music on hold, the holder silence; sendrecv resumes the relay.
* DTMF of internal users' parties goes through a ``DtmfCodeParser``: ``##`` codes never
  reach the partner, other key presses are passed on (RFC 4733 or SIP INFO).
* Feature modules in ``softswitch.features`` (transfer, parking, pickup, move, login) act
  on calls through the verbs below; parties may move from one call to another
  (attended transfer, pickup, ``*9``, retrieving a parked call).

Call life: routing → ring (first 2xx wins, the others get CANCEL with Reason "Call
completed elsewhere", RFC 3326) → answered → features → the last party leaves → CDR.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.models import Account, Cdr, LiveCall, User

from .features.codes import BadCode, DtmfCodeParser, Feature, FeatureCodes, PassThrough
from .session import Leg, UacLeg, UasLeg
from .sip.message import Request, Response
from .sip.sdp import (
    TELEPHONE_EVENT, NoCommonCodec, SdpError, SessionDescription, build_answer, build_offer, direction_of, rewrite,
)
from .sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from media.engine import Endpoint, Playback

    from .server import SipCore

log = logging.getLogger(__name__)

RING_TIMEOUT = 60.0  # seconds a call rings before the caller gets 480 (REACH will refine)
FEATURE_RING_TIMEOUT = 30.0  # a transfer target, a recall: then the next rule applies
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'
DEFAULT_TE_PT = 101
G711 = ("PCMU", "PCMA")


@dataclass(frozen=True)
class Target:
    """One device to ring: the contact to put in the Request-URI and where to send it."""

    contact: str
    peer: tuple[str, str, int]
    channel: str


@dataclass(frozen=True)
class Codec:
    """The audio codec a party negotiated, and its telephone-event payload type."""

    pt: int
    name: str
    clock: int
    te_pt: int | None

    def offer_codecs(self) -> list[tuple[int, str, int]]:
        """What to offer a new device that will be relayed to this party: this codec first,
        the other G.711 law next (the relay translates PCMU <-> PCMA), telephone-event."""
        codecs = [(self.pt, self.name, self.clock)]
        if self.name.upper() in G711:
            other = "PCMA" if self.name.upper() == "PCMU" else "PCMU"
            codecs.append((8 if other == "PCMA" else 0, other, 8000))
        codecs.append((self.te_pt or DEFAULT_TE_PT, TELEPHONE_EVENT, self.clock))
        return codecs

    def answer_preference(self) -> list[str]:
        names = [self.name]
        if self.name.upper() in G711:
            names += [n for n in G711 if n != self.name.upper()]
        return [*names, TELEPHONE_EVENT]


def codec_of(sdp: SessionDescription) -> Codec | None:
    """The first audio codec of an answer (what will flow) and its telephone-event pt."""
    audio = sdp.audio()
    if audio is None or audio.port == 0:
        return None
    te_pt = None
    chosen = None
    for pt in audio.formats:
        desc = audio.codec(pt)
        if desc is None:
            continue
        if desc[0].lower() == TELEPHONE_EVENT:
            te_pt = te_pt if te_pt is not None else pt
        elif chosen is None:
            chosen = (pt, desc[0], desc[1])
    if chosen is None:
        return None
    return Codec(chosen[0], chosen[1], chosen[2], te_pt)


class Party:
    """One side of a call: a SIP dialog (leg), the switch endpoint facing it, and who is there."""

    def __init__(self, call: "Call", leg: Leg, ep: "Endpoint", *, user: User | None, channel: str,
                 number: str, name: str) -> None:
        self.call = call
        self.leg = leg
        self.ep = ep
        self.user = user
        self.channel = channel
        self.number = number  # what the other side sees: extension or external number
        self.name = name
        self.codec: Codec | None = None
        self.phone_hold = False  # its phone put the call on hold (re-INVITE sendonly/inactive)
        self.code_hold = False  # it held its partner with ##
        self.playback: "Playback | None" = None
        self.mode = "new"  # bridged, music, silent, conference, prompt
        self.dtmf_task: asyncio.Task[Any] | None = None
        self.joined_at = time.time()

    def __repr__(self) -> str:
        return f"<Party {self.number} {self.leg.label} {self.mode}>"

    @property
    def label(self) -> str:
        return self.leg.label

    @property
    def gone(self) -> bool:
        return self.leg.state == "terminated"

    def apply_sdp(self, sdp: SessionDescription, *, codec_from: SessionDescription | None = None) -> None:
        """The far end's address from ``sdp``; the codec from ``codec_from`` (the answer)."""
        audio = sdp.audio()
        if audio is not None:
            address = sdp.media_address(audio)
            if address and audio.port and address not in ("0.0.0.0", "::"):
                self.ep.set_remote(address, audio.port, audio.rtcp_port)
        codec = codec_of(codec_from or sdp)
        if codec is not None and codec != self.codec:
            try:
                self.ep.set_codec(codec.pt, codec.name, codec.clock, telephone_event_pt=codec.te_pt)
                self.codec = codec
            except Exception as exc:  # MediaError: a codec we relay but cannot decode
                log.info("%s: %s; features that play or listen are off for this party", self.label, exc)


class Call:
    """One call: its parties, how they are connected, and the features in charge."""

    def __init__(self, core: "SipCore", account: Account, caller: User | None, callee: User | None, uas: UasLeg,
                 *, caller_channel: str = "", dialled: str = ""):
        self.core = core
        self.account = account
        self.caller = caller
        self.callee = callee
        self.dialled = dialled or (callee.extension if callee else "")
        self.uas = uas
        uas.owner = self
        self.caller_channel = caller_channel
        self.caller_number = caller.extension if caller else ""
        self.caller_name = caller.name if caller else ""
        self.caller_anonymous = False
        self.display_prefix = ""
        self.call_id = uas.call_id
        self.forks: list[UacLeg] = []
        self.winner: UacLeg | None = None
        self.ep_a: Endpoint | None = None
        self.ep_b: Endpoint | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.state = "routing"  # routing, ringing, answered, ended
        self.ended = asyncio.get_running_loop().create_future()
        self.hangup_by = ""
        self.final_status = 0
        self.parties: list[Party] = []
        self.partner: dict[Party, Party] = {}
        self._by_leg: dict[Leg, Party] = {}
        self.conference: Any = None
        self.conference_members: list[Party] = []
        self.feature: Any = None  # the feature in charge (a consultation, a transfer), if any
        self.picked_up: asyncio.Future[Party] = asyncio.get_running_loop().create_future()
        self.offer: SessionDescription | None = None
        self.parked_slot: int | None = None
        self.eps: set[Endpoint] = set()  # the endpoints this call closes when it ends

    def __repr__(self) -> str:
        who = self.callee.extension if self.callee else self.dialled
        return f"<Call {self.caller_number}->{who} {self.state} {self.call_id}>"

    @property
    def codes(self) -> FeatureCodes:
        return self.core.feature_codes(self.account)

    # ------------------------------------------------------------------ the call's life
    async def run(self, destination: Any) -> None:
        try:
            await self._run(destination)
        except Exception:
            log.exception("[%s] call failed", self.call_id)
            self.uas.reject(500, "Server Internal Error")
            self.final_status = self.final_status or 500
        finally:
            await self._teardown()

    async def _run(self, destination: Any) -> None:
        try:
            offer = SessionDescription.parse(self.uas.remote_sdp) if self.uas.remote_sdp else None
        except SdpError as exc:
            self._fail(400, f"Bad Request (SDP: {exc})")
            return
        if offer is None or offer.audio() is None:
            # Delayed offer (INVITE without SDP) is not supported yet.
            self._fail(488, "Not Acceptable Here (an SDP offer with audio is required)")
            return
        self.offer = offer
        self.ep_a = await self.core.media.create_endpoint(f"{self.call_id}/a")
        self.ep_b = await self.core.media.create_endpoint(f"{self.call_id}/b")
        self.eps.update((self.ep_a, self.ep_b))
        self.core.track_endpoint(self.ep_a, self)
        self.core.track_endpoint(self.ep_b, self)
        _apply_remote(self.ep_a, offer)
        self.state = "ringing"
        self._publish()
        winner = await self._deliver(destination)
        if isinstance(winner, Party):  # picked up (*8) by another device
            await self._answer_picked_up(winner)
            await self.ended
            return
        if winner is None:
            return
        self.winner = winner
        for leg in self.forks:
            if leg is not winner:
                leg.cancel(COMPLETED_ELSEWHERE)
        try:
            answer = SessionDescription.parse(winner.remote_sdp)
        except SdpError as exc:
            log.warning("[%s] callee answered with bad SDP: %s", self.call_id, exc)
            self._fail(502, "Bad Gateway (callee SDP)")
            await winner.bye('SIP;cause=488;text="Bad SDP"')
            return
        caller_answer = rewrite(answer, address=self.core.media_host_for(self.uas.peer[1]), port=self.ep_a.rtp_port,
                                session_id=self.uas.sdp_session_id, session_version=self.uas.next_sdp_version())
        a = self.add_party(self.uas, self.ep_a, user=self.caller, channel=self.caller_channel,
                           number=self.caller_number, name=self.caller_name)
        channel = winner.label.rsplit("/", 1)[-1]
        if self.callee is not None and not channel.startswith("trunk:"):
            b = self.add_party(winner, self.ep_b, user=self.callee, channel=channel,
                               number=self.callee.extension, name=self.callee.name)
        else:
            b = self.add_party(winner, self.ep_b, user=None, channel=channel, number=self.dialled, name="")
        a.apply_sdp(offer, codec_from=answer)
        b.apply_sdp(answer)
        self.pair(a, b)
        self.answered_at = time.time()
        self.state = "answered"
        self.final_status = 200
        self._publish()
        log.info("[%s] %s answered on %s", self.call_id, b.number, winner.label)
        # listen for ## codes before the ACK: a key pressed at once arrives right behind it
        self.start_features(a)
        self.start_features(b)
        if not await self.uas.answer(caller_answer.serialize()):
            log.info("[%s] caller never ACKed the 200 OK; ending the call", self.call_id)
            self.hangup_by = "system"
            return
        await self.ended

    # ------------------------------------------------------------------ delivery (REACH, trunks)
    async def _deliver(self, destination: Any) -> UacLeg | Party | None:
        """Follow the destination: REACH ring plans and forwards for users (with a hop
        limit against forward loops), trunks in priority order for external numbers."""
        from . import delivery
        hops = 0
        while True:
            if isinstance(destination, delivery.Refused):
                log.info("[%s] refused: %d %s", self.call_id, destination.status, destination.reason)
                self._fail(destination.status, destination.reason)
                return None
            if isinstance(destination, delivery.ToExternal):
                return await self._ring_trunks(destination)
            user = destination.user
            self.callee = user
            decision = delivery.decide(self.core, self.account, destination)
            log.info("[%s] REACH %s: status %s, class %s, profile %s: %s", self.call_id, user.extension,
                     decision.status, decision.call_class, decision.profile, decision.action_reason)
            forward: str | None = None
            action = decision.action.value
            if action == "forward":
                forward = decision.destination
            elif action == "busy":
                self._fail(486, f"Busy Here ({user.extension}: do not disturb)")
                return None
            elif action == "reject":
                self._fail(433, "Anonymity Disallowed")
                return None
            elif action == "unavailable":
                self._fail(480, f"Temporarily Unavailable ({user.extension}: {decision.action_reason})")
                return None
            else:
                outcome = await self._ring_plan(user, decision)
                if outcome is None or isinstance(outcome, (UacLeg, Party)):
                    return outcome
                busy = outcome == "busy"
                forward = decision.forwards.busy if busy else decision.forwards.noanswer
                if forward is None:
                    if busy:
                        self._fail(486, None)
                    else:
                        self._fail(480, f"Temporarily Unavailable ({user.extension} did not answer)")
                    return None
            hops += 1
            if hops > delivery.MAX_FORWARD_HOPS:
                log.warning("[%s] forward loop: %d forwards, last at %s -> %s; giving up", self.call_id, hops - 1,
                            user.extension, forward)
                self._fail(486, f"Busy Here (forward loop at {user.extension})")
                return None
            log.info("[%s] %s forwards to %s", self.call_id, user.extension, forward)
            destination = delivery.resolve_forward(
                self.core, self.account, forward or "", forwarded_by=user, caller_number=self.caller_number,
                caller_name=self.caller_name, incoming=destination.incoming,
                forward_caller_id=decision.settings.forward_caller_id)

    async def _ring_plan(self, user: User, decision: Any) -> UacLeg | Party | str | None:
        """Ring the steps of a REACH decision in turn; "busy"/"noanswer" when nobody answered."""
        from . import delivery
        busy_everywhere = True
        rang = False
        for step in decision.ring:
            targets = delivery.targets_for_devices(self.core, user, step.devices)
            if not targets:
                continue
            rang = True
            outcome = await self._ring_step(targets, step.timeout, to_user=user)
            if outcome is None or isinstance(outcome, (UacLeg, Party)):
                return outcome
            failures = outcome
            busy_everywhere = busy_everywhere and bool(failures) and all(r.status in (486, 600) for r in failures)
        return "busy" if rang and busy_everywhere else "noanswer"

    def _from_header(self, *, domain: str) -> str:
        if self.caller_anonymous:
            return '"Anonymous" <sip:anonymous@anonymous.invalid>'
        name = f"{self.display_prefix}{self.caller_name}" if self.display_prefix else self.caller_name
        return f'"{_quote(name)}" <sip:{self.caller_number or "anonymous"}@{domain}>'

    async def _ring_step(self, targets: list[Target], timeout: float, *, to_user: User | None = None,
                         to_uri: str = "", credentials: tuple[str, str] | None = None,
                         extra_headers: tuple[tuple[str, str], ...] = (),
                         from_: str | None = None) -> UacLeg | Party | list[Response] | None:
        """Fork to ``targets``; the winner, a pickup, the failures, or None (caller gone)."""
        assert self.offer is not None and self.ep_b is not None
        legs = []
        for target in targets:
            host = self.core.media_host_for(target.peer[1])
            fork_offer = rewrite(self.offer, address=host, port=self.ep_b.rtp_port,
                                 session_id=self.uas.sdp_session_id + 1, session_version=1).serialize()
            to = to_uri or (f'"{_quote(to_user.name)}" <sip:{to_user.extension}@{self.account.domain}>'
                            if to_user else target.contact)
            leg = UacLeg(
                self.core, request_uri=target.contact, peer=target.peer,
                from_=from_ or self._from_header(domain=self.account.domain), to=to,
                offer=fork_offer, label=f"{self.call_id}/{target.channel}",
                max_forwards=max(0, (self.uas.txn.request.max_forwards or 70) - 1),
                extra_headers=extra_headers, credentials=credentials,
            )
            leg.owner = self
            self.forks.append(leg)
            legs.append(leg)
            leg.start()
        return await self._ring(legs, timeout)

    async def _ring_trunks(self, dest: Any) -> UacLeg | Party | None:
        """An external number through the account's trunks: next trunk on 408/5xx (fail-over)."""
        from . import delivery
        trunks = delivery.trunk_plan(self.core, self.account, dest)
        if not trunks:
            self._fail(503, delivery.no_trunk_reason(self.core, self.account)[:200])
            return None
        self.dialled = dest.number
        tried = [f"{t.name}: address not resolved" for t in trunks if self.core.trunks.peer_of(t) is None]
        for trunk, target, from_, to, headers in delivery.trunk_targets(self.core, self.account, dest):
            log.info("[%s] %s via trunk %s (caller ID %s%s)", self.call_id, dest.number, trunk.name,
                     dest.caller_number or "-", ", withheld" if dest.anonymous else "")
            outcome = await self._ring_step([target], delivery.TRUNK_RING_TIMEOUT, to_uri=to,
                                            credentials=self.core.trunks.credentials(trunk), extra_headers=headers,
                                            from_=from_)
            if outcome is None or isinstance(outcome, (UacLeg, Party)):
                return outcome
            statuses = [r.status for r in outcome]
            if outcome and all(st not in (408, 500, 502, 503, 504) for st in statuses):
                self._fail(*_best_failure(outcome))
                return None
            tried.append(f"{trunk.name}: {statuses[0] if statuses else 'no answer'}")
            log.warning("[%s] trunk %s failed (%s); trying the next", self.call_id, trunk.name,
                        statuses[0] if statuses else "no response")
        self._fail(503, f"Service Unavailable (every trunk failed: {'; '.join(tried)})"[:200])
        return None

    async def _ring(self, legs: list[UacLeg], timeout: float) -> UacLeg | Party | list[Response] | None:
        """Wait for the first 2xx (or a pickup); relay ringing; stop on CANCEL, timeout or all failing."""
        pending = {leg.final for leg in legs}
        failures: list[Response] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stops = {self.uas.cancelled, self.ended, self.picked_up}
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0 or any(f.done() for f in stops):
                break
            done, pending = await asyncio.wait(pending | stops, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            pending -= stops
            for fut in done:
                if fut in stops:
                    continue
                response: Response = fut.result()
                if 200 <= response.status < 300:
                    return next(leg for leg in legs if leg.final is fut)
                failures.append(response)
        if self.picked_up.done() and not self.uas.cancelled.done():
            for leg in self.forks:
                leg.cancel(COMPLETED_ELSEWHERE)
            return self.picked_up.result()
        for leg in legs:
            leg.cancel()
        if self.uas.cancelled.done():
            self.hangup_by = "caller"
            self.final_status = 487
            return None
        if self.ended.done():
            return None
        return failures

    async def _answer_picked_up(self, picker: Party) -> None:
        """*8: answer the caller ourselves with the codec the picker's device agreed on."""
        assert self.ep_a is not None and self.offer is not None and picker.codec is not None and self.caller
        try:
            answer = build_answer(self.offer, address=self.core.media_host_for(self.uas.peer[1]),
                                  port=self.ep_a.rtp_port, supported=picker.codec.answer_preference(),
                                  session_id=self.uas.sdp_session_id, session_version=self.uas.next_sdp_version())
        except NoCommonCodec:
            await picker.leg.bye('SIP;cause=488;text="No common codec with the caller"')
            self._fail(480, "Temporarily Unavailable (picked up by a device without a common codec)")
            return
        a = self.add_party(self.uas, self.ep_a, user=self.caller, channel=self.caller_channel,
                           number=self.caller.extension, name=self.caller.name)
        a.apply_sdp(self.offer, codec_from=answer)
        self.pair(a, picker)
        self.answered_at = time.time()
        self.state = "answered"
        self.final_status = 200
        self._publish()
        self.start_features(a)
        self.start_features(picker)
        if not await self.uas.answer(answer.serialize()):
            self.hangup_by = "system"
            self.end("system")
            return

    def _fail(self, status: int, reason: str | None = None) -> None:
        self.final_status = status
        self.uas.reject(status, reason)

    async def _teardown(self) -> None:
        self.state = "ended"
        tasks = []
        for party in list(self.parties):
            if party.dtmf_task is not None:
                party.dtmf_task.cancel()
            if party.leg.state == "confirmed":
                tasks.append(party.leg.bye(self._bye_reason()))
        for leg in [self.uas, *self.forks]:
            if leg.owner is not self:
                continue  # moved to another call (attended transfer, pickup, *9): not ours to end
            if leg.state == "confirmed" and leg not in self._by_leg:
                tasks.append(leg.bye(self._bye_reason()))
            elif isinstance(leg, UacLeg):
                leg.cancel()
        if self.feature is not None and hasattr(self.feature, "call_ended"):
            self.feature.call_ended(self)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        quality = self._quality()
        for ep in self.eps | {p.ep for p in self.parties}:
            self.core.untrack_endpoint(ep)
            await ep.close()
        self.core.call_ended(self, self._cdr(quality))

    def _bye_reason(self) -> str | None:
        if self.hangup_by == "rtp-timeout":
            return 'SIP;cause=408;text="RTP timeout"'
        if self.hangup_by == "shutdown":
            return 'SIP;cause=503;text="Switch shutting down"'
        return None

    def _quality(self) -> dict:
        """Per side: RTP packets the switch received/sent and, from that phone's RTCP
        receiver reports, the loss and jitter it experienced (RFC 3550 §6.4)."""
        keep = ("packets_in", "packets_out", "remote_fraction_lost", "remote_packets_lost", "remote_jitter_ms",
                "packets_lost", "jitter_ms")
        out = {}
        for side, ep in (("caller", self.ep_a), ("callee", self.ep_b)):
            if ep is not None and self.answered_at is not None:
                q = ep.quality()
                out[side] = {k: q[k] for k in keep if q.get(k) is not None}
        return out

    def _cdr(self, quality: dict | None = None) -> Cdr:
        if self.answered_at is not None:
            disposition = "ANSWERED"
        elif self.final_status == 487:
            disposition = "CANCELLED"
        elif self.final_status in (486, 600):
            disposition = "BUSY"
        elif self.final_status in (480, 408):
            disposition = "NO ANSWER"
        else:
            disposition = "FAILED"
        return Cdr(
            id=0, account_id=self.account.id, call_id=self.call_id, caller=self.caller_number,
            callee=self.callee.extension if self.callee else self.dialled, started_at=self.started_at,
            answered_at=self.answered_at, ended_at=time.time(), disposition=disposition, hangup_by=self.hangup_by,
            sip_status=self.final_status, caller_name=self.caller.name if self.caller else "",
            answered_by=self.winner.label.rsplit("/", 1)[-1] if self.winner else "",
            quality=quality or {},
        )

    def publish(self) -> None:
        self._publish()

    def _publish(self) -> None:
        """Show the call in ``softswitch calls`` (written behind, see CallJournal)."""
        if self.state == "ended":
            return
        state = self.state
        if state == "answered":
            if self.parked_slot is not None:
                state = f"parked {self.parked_slot}"
            elif self.feature is not None and getattr(self.feature, "state_name", ""):
                state = self.feature.state_name
            elif any(p.mode == "music" for p in self.parties):
                state = "held"
        legs = [p.label for p in self.parties] if self.parties else [leg.label for leg in [self.uas, *self.forks]]
        self.core.journal.put(LiveCall(
            call_id=self.call_id, account_id=self.account.id, caller=self.caller_number,
            callee=self.callee.extension if self.callee else self.dialled, state=state,
            started_at=self.started_at, answered_at=self.answered_at, legs=tuple(legs),
        ))

    def hangup(self, by: str) -> None:
        """End the call from outside (shutdown, RTP timeout)."""
        if not self.hangup_by:
            self.hangup_by = by
        if self.state in ("routing", "ringing"):
            self._fail(503 if by == "shutdown" else 480, "Service Unavailable" if by == "shutdown" else None)
        self.end(by)

    def end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    # ------------------------------------------------------------------ parties and media
    def add_party(self, leg: Leg, ep: "Endpoint", *, user: User | None, channel: str, number: str,
                  name: str) -> Party:
        party = Party(self, leg, ep, user=user, channel=channel, number=number, name=name)
        leg.owner = self
        self.parties.append(party)
        self._by_leg[leg] = party
        self.eps.add(ep)
        self.core.track_endpoint(ep, self)
        return party

    def adopt(self, party: Party) -> Party:
        """Move a party from its call into this one (transfer, pickup, *9, retrieval)."""
        old = party.call
        if old is not self:
            old._release(party)
            party.call = self
            party.leg.owner = self
            self.parties.append(party)
            self._by_leg[party.leg] = party
            old.eps.discard(party.ep)
            self.eps.add(party.ep)
            self.core.track_endpoint(party.ep, self)
            old._maybe_empty()
        return party

    def _release(self, party: Party) -> None:
        """Forget a party without hanging it up (it moves to another call)."""
        if party in self.parties:
            self.parties.remove(party)
        self._by_leg.pop(party.leg, None)
        other = self.partner.pop(party, None)
        if other is not None and self.partner.get(other) is party:
            del self.partner[other]
        if party in self.conference_members:
            self.conference_members.remove(party)
        if party.dtmf_task is not None:
            party.dtmf_task.cancel()
            party.dtmf_task = None

    def _maybe_empty(self) -> None:
        if self.state == "answered" and not self.parties:
            self.end("moved")

    def party_of(self, leg: Leg) -> Party | None:
        return self._by_leg.get(leg)

    def pair(self, p: Party, q: Party) -> None:
        """p and q are in conversation: relay them unless one of them holds."""
        for x in (p, q):
            old = self.partner.pop(x, None)
            if old is not None and self.partner.get(old) is x:
                del self.partner[old]
        self.partner[p] = q
        self.partner[q] = p
        self.refresh(p)

    def refresh(self, p: Party) -> None:
        """Apply the media state that p's situation calls for (and its partner's)."""
        if p.gone or p.mode == "conference":
            return
        q = self.partner.get(p)
        if q is None or q.gone:
            self.music(p)
            return
        if p.phone_hold or p.code_hold or q.phone_hold or q.code_hold:
            # the holder hears silence, the held party music on hold
            for x in (p, q):
                holder = x.phone_hold or x.code_hold
                (self.silence if holder else self.music)(x)
            return
        self._stop_playback(p)
        self._stop_playback(q)
        p.ep.set_hold(sending=True)
        q.ep.set_hold(sending=True)
        self.core.media.relay(p.ep, q.ep)
        p.mode = q.mode = "bridged"
        self._publish()

    def music(self, p: Party) -> None:
        if p.gone:
            return
        self.core.media.unrelay(p.ep)
        if p.mode == "music" and p.playback is not None and not p.playback.done.done():
            return
        self._stop_playback(p)
        try:
            p.playback = self.core.media.play(p.ep, self.core.music_on_hold)
            p.mode = "music"
        except Exception as exc:
            log.warning("[%s] no music on hold for %s: %s", self.call_id, p.label, exc)
            p.mode = "silent"
        self._publish()

    def silence(self, p: Party) -> None:
        self.core.media.unrelay(p.ep)
        self._stop_playback(p)
        p.mode = "silent"

    def _stop_playback(self, p: Party) -> None:
        if p.playback is not None:
            p.playback.stop()
            p.playback = None

    async def say(self, p: Party, prompts: list[str]) -> None:
        """Play prompts to p (its partner's audio is paused meanwhile), then restore its media."""
        if p.gone:
            return
        mode = p.mode
        self._stop_playback(p)
        try:
            playback = self.core.media.play(p.ep, prompts, lang=self.account.language)
        except Exception as exc:
            log.warning("[%s] cannot play %s to %s: %s", self.call_id, prompts, p.label, exc)
            return
        p.playback = playback
        await playback.done
        if p.playback is playback:
            p.playback = None
        if not p.gone and p in self.parties and mode in ("music", "bridged", "silent", "new"):
            if mode == "music":
                self.music(p)
            elif mode == "bridged":
                self.refresh(p)

    def join_conference(self, members: list[Party]) -> None:
        if self.conference is None:
            self.conference = self.core.media.conference()
        for p in members:
            self._stop_playback(p)
            p.phone_hold = p.code_hold = False
            self.core.media.unrelay(p.ep)
            self.conference.add(p.ep)
            p.mode = "conference"
            if p not in self.conference_members:
                self.conference_members.append(p)
        self._publish()

    def leave_conference(self, p: Party) -> None:
        if p in self.conference_members:
            self.conference_members.remove(p)
            if self.conference is not None and not p.ep.closed:
                self.conference.remove(p.ep)
            p.mode = "new"
        if len(self.conference_members) <= 2 and self.conference is not None:
            rest = list(self.conference_members)
            self.conference.close()
            self.conference = None
            self.conference_members.clear()
            for x in rest:
                x.mode = "new"
            if len(rest) == 2:
                self.pair(rest[0], rest[1])

    # ------------------------------------------------------------------ DTMF and ## codes
    def start_features(self, p: Party) -> None:
        """Listen to an internal user's key presses for ## codes (RFC 4733 and SIP INFO)."""
        if p.user is None or p.codec is None or p.dtmf_task is not None or p.gone:
            return
        try:
            events = p.ep.dtmf_events()
        except Exception as exc:
            log.info("[%s] no DTMF detection on %s: %s", self.call_id, p.label, exc)
            return
        p.ep.intercept_dtmf = True
        p.dtmf_task = self.core.spawn(self._dtmf_loop(p, events))

    async def _dtmf_loop(self, p: Party, events: Any) -> None:
        loop = asyncio.get_running_loop()
        parser = DtmfCodeParser(self.codes)
        iterator = events.__aiter__()
        while not p.gone:
            deadline = parser.deadline()
            try:
                if deadline is None:
                    digit, _ = await iterator.__anext__()
                else:
                    digit, _ = await asyncio.wait_for(iterator.__anext__(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                actions = parser.poll(loop.time())
            except StopAsyncIteration:
                return
            else:
                actions = parser.feed(digit, loop.time())
            for action in actions:
                try:
                    await self._dtmf_action(p.call, p, action)
                except Exception:
                    log.exception("[%s] feature code %s failed", self.call_id, action)

    @staticmethod
    async def _dtmf_action(call: "Call", p: Party, action: object) -> None:
        if isinstance(action, PassThrough):
            call._pass_digits(p, action.digits)
        elif isinstance(action, BadCode):
            log.info("[%s] %s keyed an invalid code %s: %s", call.call_id, p.number, action.digits, action.why)
            await call.say(p, ["invalid"])
        elif isinstance(action, Feature):
            from .features import incall
            # spawned: a consultation rings for a while, and ##0 must still be heard meanwhile
            call.core.spawn(incall.run_code(call, p, action.name, action.number))

    def _pass_digits(self, p: Party, digits: str) -> None:
        q = self.partner.get(p)
        if q is None or q.gone or q.mode != "bridged":
            return

        async def send() -> None:
            for d in digits:
                if q.codec is not None and q.codec.te_pt is not None and not q.ep.closed:
                    await q.ep.send_dtmf(d)
                elif q.leg.state == "confirmed":
                    await q.leg.request("INFO", body=f"Signal={d}\r\nDuration=160\r\n".encode(),
                                        content_type="application/dtmf-relay")

        self.core.spawn(send())

    # ------------------------------------------------------------------ LegOwner
    def leg_provisional(self, leg: UacLeg, response: Response) -> None:
        if self.state != "ringing" or leg not in self.forks:
            return
        if response.status == 183 and response.body and self.ep_a and self.ep_b:
            try:
                early = SessionDescription.parse(response.body)
            except SdpError:
                early = None
            if early is not None and early.audio() is not None:
                _apply_remote(self.ep_b, early)
                self.core.media.relay(self.ep_a, self.ep_b)
                sdp = rewrite(early, address=self.core.media_host_for(self.uas.peer[1]), port=self.ep_a.rtp_port,
                              session_id=self.uas.sdp_session_id, session_version=self.uas.next_sdp_version())
                self.uas.provisional(183, sdp.serialize())
                return
        self.uas.provisional(180)

    def leg_ended(self, leg: Leg, reason: str) -> None:
        if leg is self.uas and self.state in ("routing", "ringing"):
            if reason.startswith("cancel"):
                return  # _ring() sees uas.cancelled
            self.hangup_by = self.hangup_by or "caller"
            self.end(reason)
            return
        party = self._by_leg.get(leg)
        if party is None:
            return
        self.party_left(party, reason)

    def party_left(self, party: Party, reason: str) -> None:
        """A party hung up (BYE) or was dropped; decide what happens to the others."""
        if party not in self.parties:
            return
        if not self.hangup_by and len(self.parties) <= 2:
            self.hangup_by = "caller" if party.leg is self.uas else "callee"
        partner = self.partner.get(party)
        in_conference = party in self.conference_members
        self._release(party)
        self.eps.discard(party.ep)
        self.core.untrack_endpoint(party.ep)
        self.core.spawn(party.ep.close())
        log.info("[%s] %s left (%s)", self.call_id, party.label, reason)
        if self.feature is not None and self.feature.party_left(self, party, partner):
            self._publish()
            return
        if in_conference:
            self.leave_conference(party)
            if len(self.parties) <= 1:
                self._end_alone()
            return
        if partner is not None and partner in self.parties:
            # a two-party conversation ends when one side leaves
            self.core.spawn(self.drop(partner))
        if not self.parties:
            self.end(reason)
        self._publish()

    def _end_alone(self) -> None:
        for p in list(self.parties):
            self.core.spawn(self.drop(p))
        if not self.parties:
            self.end("alone")

    async def drop(self, party: Party, reason: str | None = None) -> None:
        """Hang up one party (BYE) and forget it."""
        if party in self.parties:
            self._release(party)
            self.eps.discard(party.ep)
            self.core.untrack_endpoint(party.ep)
        await party.leg.bye(reason or self._bye_reason())
        await party.ep.close()
        if not self.parties:
            self.end("dropped")

    def other(self, leg: Leg) -> Leg | None:
        party = self._by_leg.get(leg)
        if party is None:
            return None
        partner = self.partner.get(party)
        return partner.leg if partner else None

    async def leg_reinvite(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        """Answered by the switch: media is anchored, so a phone's hold/resume or new address
        only changes what the switch does (music on hold for the partner), not the other leg."""
        party = self._by_leg.get(leg)
        if party is None or party.codec is None:
            leg.answer_reinvite(txn, 491 if self.state != "answered" else 488)
            return
        if not request.body:
            # An offerless re-INVITE: we offer in the 200 OK (RFC 3261 §14.2), our current view.
            offer = build_offer(address=self.core.media_host_for(leg.peer[1]), port=party.ep.rtp_port,
                                codecs=party.codec.offer_codecs()[:1] + party.codec.offer_codecs()[-1:],
                                session_id=leg.sdp_session_id, session_version=leg.next_sdp_version())
            leg.answer_reinvite(txn, 200, offer.serialize())
            return
        try:
            offer = SessionDescription.parse(request.body)
            audio = offer.audio()
            direction = direction_of(audio, offer) if audio is not None else "inactive"
            try:
                answer = build_answer(offer, address=self.core.media_host_for(leg.peer[1]), port=party.ep.rtp_port,
                                      supported=party.codec.answer_preference(), session_id=leg.sdp_session_id,
                                      session_version=leg.next_sdp_version())
            except NoCommonCodec:
                answer = build_answer(offer, address=self.core.media_host_for(leg.peer[1]), port=party.ep.rtp_port,
                                      session_id=leg.sdp_session_id, session_version=leg.next_sdp_version())
        except SdpError as exc:
            leg.answer_reinvite(txn, 488, reason=f"Not Acceptable Here ({exc})")
            return
        party.apply_sdp(offer, codec_from=answer)
        held = direction in ("sendonly", "inactive")
        leg.answer_reinvite(txn, 200, answer.serialize())
        if held != party.phone_hold:
            party.phone_hold = held
            log.info("[%s] %s %s the call", self.call_id, party.number, "holds" if held else "resumes")
            if party.mode != "conference":
                self.refresh(party)
            self._publish()
        elif party.mode == "bridged":
            self.refresh(party)  # a new address or codec: re-apply the relay

    def leg_info(self, leg: Leg, request: Request) -> None:
        party = self._by_leg.get(leg)
        if party is None or not request.body:
            return
        content_type = request.headers.get("Content-Type") or ""
        if party.dtmf_task is not None:
            party.ep.feed_info_dtmf(content_type, request.body)  # through the ## parser
            return
        partner = self.partner.get(party)
        if partner is not None and partner.leg.state == "confirmed":
            self.core.spawn(partner.leg.request("INFO", body=request.body, content_type=content_type))

    async def leg_refer(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        from .features import transfer
        party = self._by_leg.get(leg)
        if party is None:
            leg.respond_in_dialog(txn, 481)
            return
        await transfer.on_refer(self, party, request, txn)


def _apply_remote(ep: "Endpoint", sdp: SessionDescription) -> None:
    audio = sdp.audio()
    if audio is None:
        return
    address = sdp.media_address(audio)
    if address and audio.port and address not in ("0.0.0.0", "::"):
        ep.set_remote(address, audio.port, audio.rtcp_port)


def _best_failure(failures: list[Response]) -> tuple[int, str | None]:
    """§16.7 step 6 in spirit: busy wins over 'unavailable'; 6xx over everything."""
    if not failures:
        return 480, "Temporarily Unavailable"
    statuses = [r.status for r in failures]
    for code in (600, 603, 486, 488):
        if code in statuses:
            return code, None
    if all(s == 408 for s in statuses):
        return 480, "Temporarily Unavailable (no device answered)"
    best = min(failures, key=lambda r: (r.status // 100 != 4, r.status))
    return best.status, best.reason


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
