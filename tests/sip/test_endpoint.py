"""SipEndpoint: the sans-IO transaction layer, fed bytes and a fake ``now`` (RFC 3261 §17, §18)."""
from __future__ import annotations

import itertools
import random

import pytest

from softswitch.sip.endpoint import (
    MessageRejected, RequestReceived, SipEndpoint, StrayResponseReceived,
)
from softswitch.sip.message import Request, Response, make_response, parse_message
from softswitch.sip.transaction import (
    T1, AckMissing, InviteServerTransaction, ResponseReceived, State, TransactionTerminated,
    TransactionTimedOut,
)

PEER = ("udp", "192.0.2.50", 5062)
OURS = "SIP/2.0/UDP 192.0.2.1:5060"


def invite_bytes(*, branch: str | None = "z9hG4bKinv1", method: str = "INVITE", cseq: int = 1,
                 via_host: str = "192.0.2.50:5062", via_params: str = "", call_id: str = "c1@host",
                 to_tag: str = "", extra: str = "", body: bytes = b"") -> bytes:
    branch_param = f";branch={branch}" if branch else ""
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host}{branch_param}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@192.0.2.50:5062>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def sent(ep: SipEndpoint) -> list[Request | Response]:
    out = []
    for data, peer in ep.datagrams_to_send():
        assert peer == PEER
        out.append(parse_message(data))
    return out


def only_request(ep: SipEndpoint) -> RequestReceived:
    events = list(ep.events())
    assert [type(e).__name__ for e in events] == ["RequestReceived"], events
    return events[0]


def run_timers(ep: SipEndpoint, until: float) -> None:
    while (deadline := ep.next_deadline()) is not None and deadline <= until:
        ep.handle_timer(deadline)


# ---------------------------------------------------------------------------------- Via
def test_received_added_when_host_differs() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(via_host="phone.example.com"), PEER, now=0.0)
    ev = only_request(ep)
    via = ev.request.top_via
    assert via.params["received"] == "192.0.2.50"
    assert "rport" not in via.params
    assert ev.peer == PEER


def test_rport_filled_in() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(via_host="10.0.0.7:5060", via_params=";rport"), PEER, now=0.0)
    ev = only_request(ep)
    via = ev.request.top_via
    assert via.params["rport"] == "5062" and via.params["received"] == "192.0.2.50"
    # the stamped Via travels into our responses (§18.2.2)
    ep.respond(ev.transaction, make_response(ev.request, 180, to_tag="t"), now=0.0)
    [resp] = sent(ep)
    assert resp.top_via.params == {"branch": "z9hG4bKinv1", "rport": "5062", "received": "192.0.2.50"}


def test_no_received_when_host_matches() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(), PEER, now=0.0)
    assert "received" not in only_request(ep).request.top_via.params


def test_only_top_via_stamped() -> None:
    ep = SipEndpoint()
    extra = "Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKlower\r\n"
    ep.receive(invite_bytes(via_host="10.0.0.7", via_params=";rport", extra=extra), PEER, now=0.0)
    vias = only_request(ep).request.vias
    assert len(vias) == 2 and "received" not in vias[1].params


# ---------------------------------------------------------------------------------- server side
def test_retransmitted_request_absorbed_and_last_response_resent() -> None:
    ep = SipEndpoint()
    data = invite_bytes(method="OPTIONS")
    ep.receive(data, PEER, now=0.0)
    ev = only_request(ep)
    ep.receive(data, PEER, now=0.5)
    assert list(ep.events()) == [] and sent(ep) == []
    assert ep.stats["retransmissions_absorbed"] == 1
    ev.transaction.to_tag = "x1"
    ok = ev.transaction.respond(200, now=0.6)  # txn.respond() reaches the wire too
    assert [r.status for r in sent(ep)] == [200]
    ep.receive(data, PEER, now=1.0)
    assert [bytes(r) for r in sent(ep)] == [bytes(ok)]
    assert ep.stats["retransmissions_absorbed"] == 2
    assert list(ep.events()) == []
    # Timer J: 64·T1, then the transaction is forgotten
    assert ep.next_deadline() == pytest.approx(0.6 + 64 * T1)
    ep.handle_timer(0.6 + 64 * T1)
    assert ep.server_txns == {}
    assert [type(e) for e in ep.events()] == [TransactionTerminated]
    assert ep.next_deadline() is None


def test_invite_2xx_ack_matched_by_call_id_and_cseq_stops_g() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(cseq=4), PEER, now=0.0)
    ev = only_request(ep)
    txn = ev.transaction
    assert isinstance(txn, InviteServerTransaction)
    ep.respond(txn, make_response(ev.request, 200, to_tag="b2"), now=0.0)
    assert [r.status for r in sent(ep)] == [200]
    run_timers(ep, 1.5)
    assert [r.status for r in sent(ep)] == [200, 200]  # Timer G: 0.5, 1.5
    ack = invite_bytes(method="ACK", branch="z9hG4bKack-new", cseq=4, to_tag="b2")
    ep.receive(ack, PEER, now=2.0)
    ack_ev = only_request(ep)
    assert ack_ev.request.method == "ACK" and ack_ev.transaction is None
    run_timers(ep, 100.0)
    assert sent(ep) == []  # no more 2xx retransmissions
    assert [type(e) for e in ep.events()] == [TransactionTerminated]  # Timer L, no AckMissing
    assert ep.server_txns == {}


def test_invite_2xx_never_acked() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(), PEER, now=0.0)
    ev = only_request(ep)
    ev.transaction.to_tag = "b2"
    ev.transaction.respond(200, now=0.0)  # through the transaction: endpoint still tracks it
    run_timers(ep, 100.0)
    statuses = [r.status for r in sent(ep)]
    assert statuses and set(statuses) == {200} and len(statuses) > 5
    assert [type(e) for e in ep.events()] == [AckMissing, TransactionTerminated]
    # a late ACK is still passed up (the TU decides), no transaction left to match
    ep.receive(invite_bytes(method="ACK", branch="z9hG4bKlate"), PEER, now=101.0)
    assert only_request(ep).transaction is None


def test_non_2xx_ack_absorbed_by_transaction() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(), PEER, now=0.0)
    ev = only_request(ep)
    ep.respond(ev.transaction, make_response(ev.request, 486, to_tag="b2"), now=0.0)
    sent(ep)
    # ACK for a non-2xx uses the INVITE's branch (§17.1.1.3)
    ep.receive(invite_bytes(method="ACK", to_tag="b2"), PEER, now=0.3)
    assert list(ep.events()) == []
    assert ev.transaction.state is State.CONFIRMED
    run_timers(ep, 100.0)
    assert sent(ep) == []
    assert ep.server_txns == {}


def test_cancel_finds_invite_server_transaction() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(branch="z9hG4bKcan1", cseq=9), PEER, now=0.0)
    invite_ev = only_request(ep)
    ep.receive(invite_bytes(branch="z9hG4bKcan1", cseq=9, method="CANCEL"), PEER, now=0.2)
    cancel_ev = only_request(ep)
    assert cancel_ev.transaction is not invite_ev.transaction  # CANCEL has its own transaction
    assert ep.find_invite_server(cancel_ev.request) is invite_ev.transaction
    ep.respond(cancel_ev.transaction, make_response(cancel_ev.request, 200, to_tag="t"), now=0.2)
    ep.respond(invite_ev.transaction, make_response(invite_ev.request, 487, to_tag="t"), now=0.2)
    assert [r.status for r in sent(ep)] == [200, 487]
    other = parse_message(invite_bytes(branch="z9hG4bKother", cseq=9, method="CANCEL"))
    assert ep.find_invite_server(other) is None


def test_rfc2543_matching_without_magic_cookie() -> None:
    ep = SipEndpoint()
    data = invite_bytes(branch=None, via_host="old.example.com")
    ep.receive(data, PEER, now=0.0)
    ev = only_request(ep)
    assert ev.transaction.key[0] == "c1@host"
    ep.receive(data, PEER, now=0.5)  # retransmission matched by Call-ID/From tag/CSeq/Via
    assert list(ep.events()) == []
    assert ep.stats["retransmissions_absorbed"] == 1
    cancel = parse_message(invite_bytes(branch=None, via_host="old.example.com", method="CANCEL"))
    cancel.headers.set("Via", ev.request.headers.get("Via"))  # as stamped on receipt
    assert ep.find_invite_server(cancel) is ev.transaction
    ep.respond(ev.transaction, make_response(ev.request, 603, to_tag="d"), now=1.0)
    sent(ep)
    ep.receive(invite_bytes(branch=None, via_host="old.example.com", method="ACK", to_tag="d"), PEER, now=1.2)
    assert list(ep.events()) == []
    assert ev.transaction.state is State.CONFIRMED


def test_rfc2543_ack_for_2xx_goes_to_the_tu() -> None:
    """An RFC 2543 ACK for a 2xx matches the INVITE's key; it must reach the TU and stop G."""
    ep = SipEndpoint()
    ep.receive(invite_bytes(branch=None), PEER, now=0.0)
    ev = only_request(ep)
    ep.respond(ev.transaction, make_response(ev.request, 200, to_tag="ok"), now=0.0)
    sent(ep)
    ep.receive(invite_bytes(branch=None, method="ACK", to_tag="ok"), PEER, now=0.2)
    ack_ev = only_request(ep)
    assert ack_ev.request.method == "ACK" and ack_ev.transaction is None
    run_timers(ep, 100.0)
    assert sent(ep) == []
    assert [type(e) for e in ep.events()] == [TransactionTerminated]


def test_cookie_only_branch_uses_rfc2543_matching() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(branch="z9hG4bK", call_id="one", method="OPTIONS"), PEER, now=0.0)
    ep.receive(invite_bytes(branch="z9hG4bK", call_id="two", method="OPTIONS"), PEER, now=0.0)
    events = list(ep.events())
    assert [type(e) for e in events] == [RequestReceived, RequestReceived]  # two transactions
    assert len(ep.server_txns) == 2


def test_require_unsupported_gets_420() -> None:
    ep = SipEndpoint(supported=frozenset({"replaces", "timer"}))
    ep.receive(invite_bytes(method="OPTIONS", extra="Require: Timer, 100rel, FooBar\r\n"), PEER, now=0.0)
    [resp] = sent(ep)
    assert resp.status == 420
    assert resp.headers.values("Unsupported") == ["100rel", "FooBar"]  # as received
    assert [e.status for e in ep.events()] == [420]
    assert ep.server_txns == {}
    ep.receive(invite_bytes(method="OPTIONS", branch="z9hG4bK2", extra="Require: replaces\r\n"), PEER, now=0.0)
    assert only_request(ep).request.method == "OPTIONS"


def test_bad_request_answered_statelessly() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(extra="Max-Forwards: 1\r\n"), PEER, now=0.0)
    [resp] = sent(ep)
    assert resp.status == 400 and resp.to.tag and resp.call_id == "c1@host"
    [rej] = list(ep.events())
    assert isinstance(rej, MessageRejected) and rej.status == 400 and rej.peer == PEER
    assert ep.server_txns == {} and ep.stats["rejected"] == 1


def test_malformed_ack_never_answered() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(method="ACK", extra="CSeq: 2 ACK\r\n"), PEER, now=0.0)
    ep.receive(invite_bytes(method="ACK").replace(b"ACK sip:", b"ACK  sip:", 1), PEER, now=0.0)
    assert sent(ep) == []
    assert [e.status for e in ep.events()] == [0, 0]


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1" * 5000, "9" * 5000])
def test_scalar_fields_never_crash(value: str) -> None:
    """Unicode digits and 5000-digit numbers are 400s, never a ValueError out of receive()."""
    for header in ("Content-Length", "CSeq", "Max-Forwards"):
        ep = SipEndpoint()
        data = invite_bytes(method="OPTIONS").decode()
        if header == "Content-Length":
            data = data.replace("Content-Length: 0", f"Content-Length: {value}")
        elif header == "CSeq":
            data = data.replace("CSeq: 1 OPTIONS", f"CSeq: {value} OPTIONS")
        else:
            data = data.replace("Max-Forwards: 70", f"Max-Forwards: {value}")
        ep.receive(data.encode(), PEER, now=0.0)
        assert [r.status for r in sent(ep)] == [400], header
    ep = SipEndpoint()
    data = invite_bytes(method="OPTIONS", via_host=f"192.0.2.50:{value}")
    ep.receive(data, PEER, now=0.0)
    assert [r.status for r in sent(ep)] == [400]


def test_leading_zeros_are_just_zeros() -> None:
    ep = SipEndpoint()
    data = invite_bytes(method="OPTIONS").replace(b"CSeq: 1 ", b"CSeq: " + b"0" * 5000 + b"1 ")
    ep.receive(data, PEER, now=0.0)
    assert only_request(ep).request.cseq.seq == 1


def test_large_expires_clamped() -> None:
    ep = SipEndpoint()
    ep.receive(invite_bytes(method="REGISTER", extra="Expires: " + "9" * 5000 + "\r\n"), PEER, now=0.0)
    assert only_request(ep).request.expires == 2**32 - 1


# ---------------------------------------------------------------------------------- client side
def test_client_transaction_round_trip() -> None:
    branches = (f"z9hG4bKcl{i}" for i in itertools.count())
    ep = SipEndpoint(branch_factory=lambda: next(branches))
    req = Request("OPTIONS", "sip:bob@192.0.2.50", [
        ("Max-Forwards", "70"), ("From", "<sip:sw@example.com>;tag=s1"), ("To", "<sip:bob@example.com>"),
        ("Call-ID", "cl-1"), ("CSeq", "1 OPTIONS"),
    ])
    txn = ep.send_request(req, PEER, now=0.0, local_via=OURS)
    [out] = sent(ep)
    assert out.top_via.branch == "z9hG4bKcl0" and "rport" in out.top_via.params
    assert ep.next_deadline() == 0.5  # Timer E
    ep.handle_timer(0.5)
    assert len(sent(ep)) == 1
    resp = make_response(out, 200, to_tag="far")
    ep.receive(resp.serialize(), PEER, now=0.7)
    [ev] = list(ep.events())
    assert isinstance(ev, ResponseReceived) and ev.transaction is txn and ev.response.status == 200
    ep.receive(resp.serialize(), PEER, now=0.8)  # retransmission absorbed in Completed
    assert list(ep.events()) == []
    run_timers(ep, 10.0)
    assert ep.client_txns == {}
    assert [type(e) for e in ep.events()] == [TransactionTerminated]
    ep.receive(resp.serialize(), PEER, now=11.0)  # after Timer K: stray
    [stray] = list(ep.events())
    assert isinstance(stray, StrayResponseReceived) and stray.peer == PEER


def test_client_timeout_event() -> None:
    ep = SipEndpoint(branch_factory=lambda: "z9hG4bKto")
    req = Request("INVITE", "sip:bob@192.0.2.50", [
        ("Max-Forwards", "70"), ("From", "<sip:sw@example.com>;tag=s1"), ("To", "<sip:bob@example.com>"),
        ("Call-ID", "cl-2"), ("CSeq", "1 INVITE"),
    ])
    txn = ep.send_request(req, PEER, now=0.0, local_via=OURS)
    run_timers(ep, 100.0)
    assert len(sent(ep)) == 7  # original + Timer A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5
    assert [type(e) for e in ep.events()] == [TransactionTimedOut, TransactionTerminated]
    assert txn.terminated and ep.client_txns == {}


def test_unknown_response_is_stray() -> None:
    ep = SipEndpoint()
    req = parse_message(invite_bytes())
    resp = make_response(req, 180, to_tag="x")
    ep.receive(resp.serialize(), PEER, now=0.0)
    [ev] = list(ep.events())
    assert isinstance(ev, StrayResponseReceived) and ev.response.status == 180
    assert sent(ep) == []


def test_malformed_response_dropped() -> None:
    ep = SipEndpoint()
    ep.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n", PEER, 0.0)
    [ev] = list(ep.events())
    assert isinstance(ev, MessageRejected) and ev.status == 0
    assert sent(ep) == []


# ---------------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n", b"\n", b"   ", b"\x00\x00"])
def test_keepalives_ignored(data: bytes) -> None:
    ep = SipEndpoint()
    ep.receive(data, PEER, now=0.0)
    assert list(ep.events()) == [] and sent(ep) == []
    assert ep.stats["received"] == 0


@pytest.mark.parametrize("data", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the UDP port
    bytes(range(256)),
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"INVITE\r\n\r\n",
    b"\xff\xfe" * 100,
])
def test_garbage_dropped(data: bytes) -> None:
    ep = SipEndpoint()
    ep.receive(data, PEER, now=0.0)
    events = list(ep.events())
    assert events and all(isinstance(e, MessageRejected) for e in events)
    assert ep.stats["parse_errors"] + ep.stats["rejected"] >= 1
    assert ep.server_txns == {}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        if not buf:
            break
        i = rng.randrange(len(buf))
        if op == 0:  # flip a byte
            buf[i] = rng.randrange(256)
        elif op == 1:  # truncate
            del buf[i:]
        elif op == 2:  # duplicate a slice
            j = min(len(buf), i + rng.randint(1, 40))
            buf[i:i] = buf[i:j]
        elif op == 3:  # drop a slice
            del buf[i:i + rng.randint(1, 10)]
        else:  # insert a separator that matters to the grammar
            buf[i:i] = rng.choice([b",", b";", b"\r\n", b" ", b"\"", b"<", b">", b":", b"%", b"\r\n "])
    return bytes(buf)


def test_fuzz_mutations_never_raise_or_leak() -> None:
    rng = random.Random(1234)
    seeds = [
        invite_bytes(body=b"v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\n", extra="Content-Type: application/sdp\r\n"),
        invite_bytes(method="REGISTER", via_params=";rport", extra="Expires: 3600\r\n"),
        invite_bytes(method="ACK", branch="z9hG4bKfz"),
        invite_bytes(method="CANCEL"),
        invite_bytes(branch=None),
        make_response(parse_message(invite_bytes()), 200, to_tag="z").serialize(),
        make_response(parse_message(invite_bytes(method="BYE")), 486, to_tag="z").serialize(),
    ]
    ep = SipEndpoint()
    for n in range(2000):
        data = _mutate(rng, rng.choice(seeds))
        now = n * 0.01
        peer = ("udp" if n % 3 else "tcp", "192.0.2.50", 5062)
        ep.receive(data, peer, now=now)
        for ev in ep.events():
            # act as the TU: answer every new request so no transaction waits for us forever
            if isinstance(ev, RequestReceived) and ev.transaction is not None:
                ev.transaction.to_tag = "fz"
                ev.transaction.respond(500 if n % 2 else 200, now=now)
        for out, _ in ep.datagrams_to_send():
            parse_message(out)  # everything we send must parse (we may send back their junk)
        if n % 100 == 0:
            ep.handle_timer(now)
    ep.handle_timer(2000 * 0.01 + 100)
    list(ep.events())
    ep.datagrams_to_send()
    assert ep.server_txns == {}
    assert ep.client_txns == {}
    assert ep._accepted == {}
    assert ep.stats["received"] > 1500


def test_same_branch_from_another_source_is_another_transaction() -> None:
    """Branch collisions between clients (or a replayed branch) do not merge transactions."""
    ep = SipEndpoint()
    data = invite_bytes(method="OPTIONS")
    ep.receive(data, PEER, now=0.0)
    ep.receive(data, ("udp", "192.0.2.99", 5062), now=0.1)
    events = [e for e in ep.events() if isinstance(e, RequestReceived)]
    assert len(events) == 2 and events[0].transaction is not events[1].transaction
    assert ep.stats["retransmissions_absorbed"] == 0
