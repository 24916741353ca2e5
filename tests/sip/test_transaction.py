"""The four RFC 3261 §17 transaction machines (+ RFC 6026 Accepted), driven with a fake clock.

Each machine is used directly: ``now`` is a number we choose, ``next_deadline()`` says when
to call ``timer_fired(now)``, ``outbox`` holds what went to the wire, ``events`` what went up.
"""
from __future__ import annotations

import pytest

from softswitch.sip.message import Request, Response, make_response, parse_message
from softswitch.sip.transaction import (
    INVITE_SERVER_GUARD,
    T1, T2, T4, AckMissing, InviteClientTransaction, InviteServerTransaction,
    NonInviteClientTransaction, NonInviteServerTransaction, ResponseReceived, State,
    TransactionTerminated, TransactionTimedOut,
)

UDP = ("udp", "192.0.2.10", 5060)
TCP = ("tcp", "192.0.2.10", 5060)
BRANCH = "z9hG4bK-test-1"


def make_request(method: str = "INVITE", cseq: int = 1, branch: str = BRANCH) -> Request:
    return Request(method, "sip:bob@example.com", [
        ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"),
        ("Route", "<sip:proxy.example.com;lr>"),
        ("Max-Forwards", "70"),
        ("From", "Alice <sip:alice@example.com>;tag=from1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "call-1@192.0.2.1"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:alice@192.0.2.1>"),
    ])


def response_to(request: Request, status: int, to_tag: str = "totag9") -> Response:
    return make_response(request, status, to_tag=to_tag)


def fire_until(txn, until: float) -> list[float]:
    """Run the timers up to ``until`` (inclusive); return the times at which they fired."""
    times = []
    while (deadline := txn.next_deadline()) is not None and deadline <= until:
        txn.timer_fired(deadline)
        times.append(deadline)
    return times


def wire(txn) -> list[bytes]:
    out = [data for data, peer in txn.outbox]
    assert all(peer == txn.peer for _, peer in txn.outbox)
    txn.outbox.clear()
    return out


def event_types(txn) -> list[str]:
    out = [type(e).__name__ for e in txn.events]
    txn.events.clear()
    return out


# ======================================================================================
# INVITE client (§17.1.1)
# ======================================================================================

class TestInviteClient:
    def test_timer_a_doubles_until_timer_b(self) -> None:
        req = make_request()
        txn = InviteClientTransaction(req, UDP, now=0.0)
        assert txn.state is State.CALLING
        assert wire(txn) == [req.serialize()]
        retransmits = []
        while (deadline := txn.next_deadline()) is not None:
            txn.timer_fired(deadline)
            if txn.outbox:
                retransmits.append(deadline)
                assert wire(txn) == [req.serialize()]
        # Timer A: T1, 2·T1, 4·T1 … after the previous one (never capped at T2 for INVITE)
        assert retransmits == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
        assert txn.state is State.TERMINATED
        assert event_types(txn) == ["TransactionTimedOut", "TransactionTerminated"]
        assert txn.created == 0.0

    def test_timer_b_is_64_t1(self) -> None:
        txn = InviteClientTransaction(make_request(), UDP, now=100.0)
        txn.timer_fired(131.99)
        assert txn.state is State.CALLING
        txn.timer_fired(100.0 + 64 * T1)
        assert txn.state is State.TERMINATED
        assert isinstance(txn.events[-2], TransactionTimedOut)

    def test_provisional_stops_retransmissions(self) -> None:
        req = make_request()
        txn = InviteClientTransaction(req, UDP, now=0.0)
        wire(txn)
        fire_until(txn, 0.5)
        assert len(wire(txn)) == 1
        ringing = response_to(req, 180)
        txn.response_received(ringing, now=0.7)
        assert txn.state is State.PROCEEDING
        assert txn.events == [ResponseReceived(txn, ringing)]
        assert txn.next_deadline() is None  # neither A nor B in Proceeding
        txn.timer_fired(100.0)
        assert wire(txn) == [] and txn.state is State.PROCEEDING

    def test_non_2xx_final_acked_by_transaction(self) -> None:
        req = make_request(cseq=7)
        txn = InviteClientTransaction(req, UDP, now=0.0)
        wire(txn)
        txn.response_received(response_to(req, 100), now=0.1)
        busy = response_to(req, 486, to_tag="busytag")
        txn.response_received(busy, now=1.0)
        assert txn.state is State.COMPLETED
        assert event_types(txn) == ["ResponseReceived", "ResponseReceived"]
        [ack_bytes] = wire(txn)
        ack = parse_message(ack_bytes)
        # §17.1.1.3: same Request-URI, Call-ID, From, single top Via (same branch),
        # To of the response (with its tag), CSeq number with method ACK, same Route.
        assert isinstance(ack, Request) and ack.method == "ACK"
        assert ack.uri_text == req.uri_text
        assert ack.headers.values("Via") == [req.headers.values("Via")[0]]
        assert ack.top_via.branch == BRANCH
        assert ack.to.tag == "busytag"
        assert ack.headers.get("To") == busy.headers.get("To")
        assert ack.headers.get("From") == req.headers.get("From")
        assert ack.call_id == req.call_id
        assert (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
        assert ack.headers.fields("Route") == req.headers.fields("Route")
        assert ack.body == b""

        # a retransmitted final response is ACKed again but not passed up
        txn.response_received(busy, now=2.0)
        assert wire(txn) == [ack_bytes]
        assert txn.events == []
        # Timer D: 32 s over UDP, then Terminated
        assert txn.next_deadline() == 1.0 + 32.0
        txn.timer_fired(32.9)
        assert txn.state is State.COMPLETED
        txn.timer_fired(33.0)
        assert txn.state is State.TERMINATED
        assert event_types(txn) == ["TransactionTerminated"]

    def test_2xx_moves_to_accepted_and_retransmissions_go_up(self) -> None:
        req = make_request()
        txn = InviteClientTransaction(req, UDP, now=0.0)
        wire(txn)
        ok = response_to(req, 200)
        txn.response_received(ok, now=2.0)
        assert txn.state is State.ACCEPTED
        assert wire(txn) == []  # the TU ACKs a 2xx, not the transaction
        assert txn.events == [ResponseReceived(txn, ok)]
        txn.events.clear()
        txn.response_received(ok, now=3.0)  # RFC 6026 §8.4: passed up again
        assert txn.events == [ResponseReceived(txn, ok)]
        txn.events.clear()
        txn.response_received(response_to(req, 486), now=3.5)  # not a 2xx: ignored
        assert txn.events == [] and wire(txn) == []
        # Timer M = 64·T1
        assert txn.next_deadline() == 2.0 + 64 * T1
        txn.timer_fired(2.0 + 64 * T1)
        assert txn.state is State.TERMINATED
        assert event_types(txn) == ["TransactionTerminated"]

    def test_tcp_no_retransmissions_and_timer_d_zero(self) -> None:
        req = make_request()
        txn = InviteClientTransaction(req, TCP, now=0.0)
        assert len(wire(txn)) == 1
        assert txn.next_deadline() == 64 * T1  # only Timer B
        fire_until(txn, 10.0)
        assert wire(txn) == []
        txn.response_received(response_to(req, 404), now=10.0)
        assert len(wire(txn)) == 1  # the ACK
        assert txn.next_deadline() == 10.0  # Timer D = 0 on reliable transports
        txn.timer_fired(10.0)
        assert txn.state is State.TERMINATED

    def test_tcp_timer_b(self) -> None:
        txn = InviteClientTransaction(make_request(), TCP, now=0.0)
        assert fire_until(txn, 40.0) == [32.0]
        assert event_types(txn) == ["TransactionTimedOut", "TransactionTerminated"]

    def test_cancel_request(self) -> None:
        req = make_request(cseq=5)
        txn = InviteClientTransaction(req, UDP, now=0.0)
        cancel = txn.cancel_request()
        assert cancel.method == "CANCEL" and cancel.uri_text == req.uri_text
        assert cancel.top_via.branch == BRANCH
        assert (cancel.cseq.seq, cancel.cseq.method) == (5, "CANCEL")
        assert cancel.headers.get("To") == req.headers.get("To")
        assert cancel.call_id == req.call_id
        assert cancel.headers.fields("Route") == req.headers.fields("Route")
        assert txn.key == (BRANCH, "INVITE")


# ======================================================================================
# non-INVITE client (§17.1.2)
# ======================================================================================

class TestNonInviteClient:
    def test_timer_e_doubles_capped_at_t2_then_timer_f(self) -> None:
        req = make_request("OPTIONS")
        txn = NonInviteClientTransaction(req, UDP, now=0.0)
        assert txn.state is State.TRYING
        assert wire(txn) == [req.serialize()]
        sends = []
        while (deadline := txn.next_deadline()) is not None:
            txn.timer_fired(deadline)
            if txn.outbox:
                sends.append(deadline)
                wire(txn)
        intervals = [b - a for a, b in zip([0.0] + sends, sends)]
        assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
        assert max(intervals) == T2
        assert sends[-1] < 32.0
        assert event_types(txn) == ["TransactionTimedOut", "TransactionTerminated"]
        assert txn.state is State.TERMINATED

    def test_proceeding_retransmits_every_t2(self) -> None:
        req = make_request("REGISTER")
        txn = NonInviteClientTransaction(req, UDP, now=0.0)
        wire(txn)
        trying = response_to(req, 100)
        txn.response_received(trying, now=0.2)
        assert txn.state is State.PROCEEDING
        assert txn.events == [ResponseReceived(txn, trying)]
        fired = fire_until(txn, 20.0)
        sends = [t for t in fired if t != 32.0]
        assert sends[0] == 0.5  # the E armed in Trying fires as scheduled ...
        assert [b - a for a, b in zip(sends, sends[1:])] == [T2] * (len(sends) - 1)  # ... then T2
        assert len(wire(txn)) == len(sends)
        fire_until(txn, 32.0)
        assert txn.state is State.TERMINATED  # Timer F also guards Proceeding

    def test_final_response_timer_k(self) -> None:
        req = make_request("BYE")
        txn = NonInviteClientTransaction(req, UDP, now=0.0)
        wire(txn)
        ok = response_to(req, 200)
        txn.response_received(ok, now=1.0)
        assert txn.state is State.COMPLETED
        assert event_types(txn) == ["ResponseReceived"]
        txn.response_received(ok, now=2.0)  # retransmission absorbed
        assert txn.events == []
        assert txn.next_deadline() == 1.0 + T4
        fire_until(txn, 100.0)
        assert wire(txn) == []  # no retransmission after the final response
        assert txn.state is State.TERMINATED
        assert event_types(txn) == ["TransactionTerminated"]

    def test_tcp(self) -> None:
        req = make_request("OPTIONS")
        txn = NonInviteClientTransaction(req, TCP, now=0.0)
        wire(txn)
        assert txn.next_deadline() == 64 * T1  # Timer F only, no E
        txn.response_received(response_to(req, 200), now=3.0)
        assert txn.next_deadline() == 3.0  # Timer K = 0
        txn.timer_fired(3.0)
        assert txn.state is State.TERMINATED


# ======================================================================================
# INVITE server (§17.2.1, RFC 6026 §8.7)
# ======================================================================================

def invite_server(peer=UDP, now: float = 0.0) -> InviteServerTransaction:
    req = make_request()
    return InviteServerTransaction(req, peer, (BRANCH, "192.0.2.1", 5060, "INVITE"), now)


class TestInviteServer:
    def test_provisional_retransmitted_on_request_retransmission(self) -> None:
        txn = invite_server()
        # only the guard against a TU that never answers runs while Proceeding
        assert txn.state is State.PROCEEDING and txn.next_deadline() == INVITE_SERVER_GUARD
        txn.request_received(txn.request, now=0.1)  # nothing sent yet: absorbed
        assert wire(txn) == []
        txn.to_tag = "srv1"
        ringing = txn.respond(180, now=0.2)
        assert ringing.to.tag == "srv1"
        assert wire(txn) == [ringing.serialize()]
        txn.request_received(txn.request, now=0.6)
        assert wire(txn) == [ringing.serialize()]
        assert txn.state is State.PROCEEDING

    def test_final_non_2xx_timer_g_then_h(self) -> None:
        txn = invite_server()
        txn.to_tag = "srv1"
        busy = txn.respond(486, now=0.0)
        assert txn.state is State.COMPLETED
        assert wire(txn) == [busy.serialize()]
        sends = []
        while (deadline := txn.next_deadline()) is not None:
            txn.timer_fired(deadline)
            if txn.outbox:
                sends.append(deadline)
                assert wire(txn) == [busy.serialize()]
        intervals = [b - a for a, b in zip([0.0] + sends, sends)]
        assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0] and max(intervals) == T2
        assert event_types(txn) == ["AckMissing", "TransactionTerminated"]

    def test_request_retransmission_in_completed_resends_final(self) -> None:
        txn = invite_server()
        busy = txn.respond(486, now=0.0)
        wire(txn)
        txn.request_received(txn.request, now=0.3)
        assert wire(txn) == [busy.serialize()]
        txn.respond(500, now=0.4)  # a second final response is not sent
        assert wire(txn) == []

    def test_ack_confirms_then_timer_i(self) -> None:
        txn = invite_server()
        txn.respond(404, now=0.0)
        wire(txn)
        ack = make_request("ACK")
        txn.request_received(ack, now=1.0)
        assert txn.state is State.CONFIRMED
        assert txn.next_deadline() == 1.0 + T4  # Timer I; G and H stopped
        txn.request_received(ack, now=2.0)  # retransmitted ACK absorbed
        txn.request_received(txn.request, now=2.0)  # so is a late INVITE retransmission
        assert wire(txn) == [] and txn.events == []
        txn.timer_fired(1.0 + T4)
        assert txn.state is State.TERMINATED
        assert event_types(txn) == ["TransactionTerminated"]

    def test_2xx_accepted_g_until_ack_then_timer_l(self) -> None:
        txn = invite_server()
        ok = txn.respond(200, now=0.0)
        assert txn.state is State.ACCEPTED
        assert wire(txn) == [ok.serialize()]
        assert fire_until(txn, 1.5) == [0.5, 1.5]
        assert wire(txn) == [ok.serialize()] * 2
        txn.request_received(txn.request, now=1.6)  # RFC 6026: INVITE retransmission absorbed
        assert wire(txn) == []
        txn.ack_2xx_received(now=2.0)
        assert fire_until(txn, 31.9) == []
        assert wire(txn) == []
        txn.timer_fired(64 * T1)  # Timer L
        assert txn.state is State.TERMINATED
        assert event_types(txn) == ["TransactionTerminated"]  # ACKed: no AckMissing

    def test_2xx_never_acked_reports_ack_missing(self) -> None:
        txn = invite_server()
        ok = txn.respond(200, now=0.0)
        wire(txn)
        fired = fire_until(txn, 64 * T1)
        sends = wire(txn)
        assert sends and all(s == ok.serialize() for s in sends)
        assert fired[-1] == 64 * T1
        assert event_types(txn) == ["AckMissing", "TransactionTerminated"]

    def test_ack_through_request_received_in_accepted_stops_g(self) -> None:
        txn = invite_server()
        txn.respond(200, now=0.0)
        wire(txn)
        txn.request_received(make_request("ACK"), now=0.2)
        assert fire_until(txn, 10.0) == []
        assert wire(txn) == []

    def test_tcp_no_g_h_32_i_zero(self) -> None:
        txn = invite_server(TCP)
        txn.respond(480, now=0.0)
        assert len(wire(txn)) == 1
        assert txn.next_deadline() == 64 * T1  # Timer H only
        txn.request_received(make_request("ACK"), now=1.0)
        assert txn.next_deadline() == 1.0  # Timer I = 0
        txn.timer_fired(1.0)
        assert txn.state is State.TERMINATED

    def test_tcp_2xx_never_acked(self) -> None:
        txn = invite_server(TCP)
        txn.respond(200, now=0.0)
        wire(txn)
        assert fire_until(txn, 100.0) == [64 * T1]
        assert wire(txn) == []
        assert event_types(txn) == ["AckMissing", "TransactionTerminated"]

    def test_on_sent_hook(self) -> None:
        txn = invite_server()
        seen = []
        txn.on_sent = seen.append
        txn.respond(180, now=0.0)
        txn.send(response_to(txn.request, 200), now=0.1)
        assert seen == [txn, txn]


# ======================================================================================
# non-INVITE server (§17.2.2)
# ======================================================================================

class TestNonInviteServer:
    def make(self, peer=UDP) -> NonInviteServerTransaction:
        req = make_request("OPTIONS")
        return NonInviteServerTransaction(req, peer, (BRANCH, "192.0.2.1", 5060, "OPTIONS"), 0.0)

    def test_absorbs_retransmissions(self) -> None:
        txn = self.make()
        assert txn.state is State.TRYING
        txn.request_received(txn.request, now=0.5)  # Trying: absorbed silently
        assert wire(txn) == []
        trying = txn.respond(100, now=0.6)
        assert txn.state is State.PROCEEDING
        assert trying.to.tag is None  # no To tag on 100 (§8.2.6.1)
        wire(txn)
        txn.request_received(txn.request, now=1.0)
        assert wire(txn) == [trying.serialize()]
        ok = txn.respond(200, now=2.0)
        assert txn.state is State.COMPLETED
        assert wire(txn) == [ok.serialize()]
        txn.request_received(txn.request, now=3.0)
        assert wire(txn) == [ok.serialize()]
        txn.respond(500, now=3.5)  # after the final response nothing more is sent
        assert wire(txn) == []
        assert txn.events == []

    def test_timer_j_udp(self) -> None:
        txn = self.make()
        txn.respond(200, now=1.0)
        assert txn.next_deadline() == 1.0 + 64 * T1
        assert fire_until(txn, 100.0) == [33.0]
        assert wire(txn)[1:] == []  # no retransmissions of its own
        assert txn.state is State.TERMINATED
        assert isinstance(txn.events[-1], TransactionTerminated)

    def test_timer_j_tcp_zero(self) -> None:
        txn = self.make(TCP)
        txn.respond(404, now=1.0)
        assert txn.next_deadline() == 1.0
        txn.timer_fired(1.0)
        assert txn.state is State.TERMINATED


@pytest.mark.parametrize("cls", [InviteClientTransaction, NonInviteClientTransaction])
def test_client_repr_and_key(cls) -> None:
    req = make_request("INVITE" if cls is InviteClientTransaction else "OPTIONS")
    txn = cls(req, UDP, now=0.0)
    assert txn.key == (BRANCH, req.method)
    assert req.method in repr(txn) and BRANCH in repr(txn)
    assert not txn.reliable and not txn.terminated


def test_events_are_facts_about_the_transaction() -> None:
    txn = invite_server()
    txn.respond(486, now=0.0)
    fire_until(txn, 64 * T1)
    missing, terminated = txn.events
    assert isinstance(missing, AckMissing) and missing.transaction is txn
    assert terminated.transaction is txn


def test_unanswered_server_transactions_are_dropped_by_the_guard() -> None:
    """A TU that never answers must not leak transactions (our guard, not RFC 3261)."""
    non_invite = NonInviteServerTransaction(make_request("OPTIONS"), UDP, ("k",), 0.0)
    non_invite.timer_fired(64 * T1)
    assert non_invite.terminated
    invite = invite_server()
    invite.timer_fired(INVITE_SERVER_GUARD - 1)
    assert not invite.terminated
    invite.timer_fired(INVITE_SERVER_GUARD)
    assert invite.terminated
