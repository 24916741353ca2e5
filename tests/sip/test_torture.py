"""RFC 4475 torture messages fed to the sans-IO endpoint, one test per message.

The corpus is read where it lives (``$SIP_TORTURE_DIR``, default
``<repo>/../shared/sip-torture/rfc4475``) and is never copied into the project. Every
message is fed in memory to ``SipEndpoint.receive`` as a UDP datagram from 127.0.0.1:
no socket is ever opened with these bytes (they carry foreign addresses).

What the endpoint does, and what it leaves to the application layer
--------------------------------------------------------------------
The endpoint (transaction layer + stateless checks) answers 400 / 416 / 420 / 505 itself
and drops broken responses. These RFC 4475 behaviours are **not** the endpoint's job; the
messages below reach the TU as ``RequestReceived`` and the app team must implement them:

* intmeth, esc02 — unknown method: a UAS answers 501 Not Implemented with Allow (§3.1.1.2,
  §3.1.1.5). (mismatch02 is already answered 400 by the endpoint, which RFC 4475 allows.)
* invut — unknown Content-Type: a UAS answers 415 Unsupported Media Type with Accept (§3.3.6).
* sdp01 — Accept lists no type we can answer with: 406 Not Acceptable, no SDP body (§3.3.15).
* regaut01 — unknown Authorization scheme: the registrar ignores it and challenges with a
  scheme it knows (401), a non-registrar UA answers 405 (§3.3.7).
* unksm2 — REGISTER whose To is not a SIP/SIPS AOR: the registrar answers 400 (§3.3.4).
* escnull — the registrar stores two distinct contacts and must not truncate the AOR user at
  %00 (§3.1.1.4); cparam01/cparam02/regescrt — the registrar must keep contact params vs URI
  params apart and keep the escaped ``?Route=`` header in the binding (§3.3.12-14).
* zeromf — Max-Forwards: 0 is processed normally by an endpoint; a *proxy* (if we ever forward
  such a request) must answer 483 Too Many Hops instead (§3.3.11).
* bext01 — the endpoint answers as a UAS (Require tags); a proxy would list the
  Proxy-Require tags instead (§3.3.5).
* baddate — the endpoint ignores the Date header; code that uses Date must convert or reject.
* dblreq — only the REGISTER is delivered; nothing may forward the trailing octets.
* bcast — a stray 200 is passed up as ``StrayResponseReceived``; the B2BUA must discard it and
  never send anything to the Via's 255.255.255.255 (§3.3.10).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from softswitch.sip.endpoint import MessageRejected, RequestReceived, SipEndpoint, StrayResponseReceived
from softswitch.sip.message import Request, Response, parse_message
from softswitch.sip.transaction import ResponseReceived
from softswitch.sip.uri import unescape

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = REPO_ROOT / ".." / "shared" / "sip-torture" / "rfc4475"
CORPUS = Path(os.environ.get("SIP_TORTURE_DIR", str(DEFAULT_CORPUS))).resolve()
PEER = ("udp", "127.0.0.1", 5060)


def _manifest() -> list[dict[str, str]] | None:
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _manifest()
PARAMS = ([pytest.param(row, id=row["name"]) for row in ROWS] if ROWS is not None
          else [pytest.param(None, id="corpus-missing")])


@dataclass
class Outcome:
    events: list[object]
    sent: list[tuple[bytes, tuple[str, str, int]]]
    endpoint: SipEndpoint
    data: bytes

    @property
    def requests(self) -> list[RequestReceived]:
        return [e for e in self.events if isinstance(e, RequestReceived)]

    @property
    def rejected(self) -> list[MessageRejected]:
        return [e for e in self.events if isinstance(e, MessageRejected)]

    def request(self) -> Request:
        """The one request passed up, with a server transaction and nothing sent."""
        assert [type(e).__name__ for e in self.events] == ["RequestReceived"], self.events
        assert self.sent == []
        event = self.requests[0]
        assert event.transaction is not None and event.peer == PEER
        return event.request

    def response(self) -> Response:
        """The one response passed up (matching no transaction of ours), nothing sent."""
        assert self.sent == []
        ups = [e for e in self.events if isinstance(e, (StrayResponseReceived, ResponseReceived))]
        assert len(ups) == 1 and len(self.events) == 1, self.events
        return ups[0].response

    def answered(self, status: int) -> Response:
        """Rejected statelessly with ``status``: one response to the sender, no TU event."""
        assert self.requests == []
        assert [r.status for r in self.rejected] == [status], self.events
        assert len(self.sent) == 1, self.sent
        data, peer = self.sent[0]
        assert peer == PEER
        response = parse_message(data)
        assert isinstance(response, Response)
        assert response.status == status
        assert response.headers.values("Via"), "a response must carry the request's Via"
        to = response.headers.get("To")
        if to is not None:  # copied as received (it may be the broken part), plus our tag
            assert ";tag=" in to.replace(" ", ""), "a final response carries a To tag (§8.2.6.2)"
        return response

    def dropped(self) -> None:
        """An invalid response: discarded, nothing sent and nothing passed up as a response."""
        assert self.sent == []
        assert not [e for e in self.events if isinstance(e, (StrayResponseReceived, ResponseReceived))]
        assert [r.status for r in self.rejected] == [0]


def feed(name: str) -> Outcome:
    data = (CORPUS / f"{name}.dat").read_bytes()
    ep = SipEndpoint()
    ep.receive(data, PEER, now=0.0)
    return Outcome(list(ep.events()), ep.datagrams_to_send(), ep, data)


# ----------------------------------------------------------------------------------------
# §3.1.1 valid messages
# ----------------------------------------------------------------------------------------

def check_wsinv(o: Outcome) -> None:
    r = o.request()
    assert r.method == "INVITE"
    assert r.uri.user == "vivekg" and r.uri.host == "chair-dnrc.example.com"
    assert r.uri.params == {"unknownparam": None}
    assert r.to.uri.user == "vivekg" and r.to.tag == "1918181833n"
    assert r.from_.uri.host == "example.com" and r.from_.tag == "98asjd8"
    assert r.from_.display == 'J Rosenberg \\\\\\"'  # quoted-pairs kept as received
    assert r.max_forwards == 68
    assert (r.cseq.seq, r.cseq.method) == (9, "INVITE")
    assert r.call_id == "wsinv.ndaksdj@192.0.2.1"
    vias = r.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert r.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert r.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert r.headers.get("Subject") == ""
    assert r.headers.values("Route") == ["<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"]
    [contact] = r.contacts
    assert contact.uri.user == "jdrosen"
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert r.content_type == "application/sdp" and len(r.body) == 150


def check_intmeth(o: Outcome) -> None:
    r = o.request()
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert r.method == method and r.cseq.method == method
    assert r.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert r.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert r.uri.host == "example.com"
    assert r.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert r.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert r.from_.display == "token1~` token2'+_ token3*%!.-"
    assert r.from_.tag == "_token~1'+`*%!-."
    assert r.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert r.max_forwards == 255
    assert r.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def check_esc01(o: Outcome) -> None:
    r = o.request()
    # escapes are kept as received; unescaping once gives the user, never twice
    assert r.uri.user == "sips%3Auser%40example.com" and r.uri.host == "example.net"
    assert unescape(r.uri.user) == "sips:user@example.com"
    assert unescape(r.to.uri.user) == "user"
    assert unescape(r.from_.uri.user) == "I have spaces"
    [contact] = r.contacts
    assert unescape(contact.uri.user) == "caller"
    assert contact.uri.params["n%61me"] == "v%61lue%25%34%31"
    assert unescape(contact.uri.params["n%61me"]) == "value%41"  # not "valueA"


def check_escnull(o: Outcome) -> None:
    r = o.request()
    assert r.method == "REGISTER"
    users = [c.uri.user for c in r.contacts]
    assert users == ["%00", "%00%00"]
    assert [unescape(u) for u in users] == ["\x00", "\x00\x00"]  # two distinct contacts
    assert unescape(r.to.uri.user) == "null-\x00-null"  # not truncated at NUL


def check_esc02(o: Outcome) -> None:
    r = o.request()
    assert r.method == "RE%47IST%45R" and r.method != "REGISTER"
    assert r.to.display == "%Z%45"
    assert [c.uri.host for c in r.contacts] == ["host1.example.com", "host3.example.com"]
    # "C%6Fntact" is an extension header, not a third Contact
    assert r.headers.fields("C%6Fntact") == ["<sip:alias2@host2.example.com>"]
    assert r.top_via.branch == "z9hG4bK209%fzsnel234"


def check_lwsdisp(o: Outcome) -> None:
    r = o.request()
    assert r.from_.display == "caller"
    assert str(r.from_.uri) == "sip:caller@example.com" and r.from_.tag == "323"


def check_longreq(o: Outcome) -> None:
    r = o.request()
    assert len(r.vias) == 34
    assert r.to.display.startswith("I have a user name of extremeextreme")
    assert r.to.uri.port == 6000
    assert r.from_.tag.startswith("12982982982982")
    assert len(r.call_id) > 100
    assert len(r.body) == 150


def check_dblreq(o: Outcome) -> None:
    r = o.request()  # exactly one request: the trailing INVITE octets are ignored
    assert r.method == "REGISTER"
    assert r.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert r.body == b""  # Content-Length: 0 ends the message


def check_semiuri(o: Outcome) -> None:
    r = o.request()
    assert r.uri.user == "user;par=u%40example.net"
    assert unescape(r.uri.user) == "user;par=u@example.net"
    assert r.uri.host == "example.com" and r.uri.params == {}
    assert len(r.headers.values("Accept")) == 6


def check_transports(o: Outcome) -> None:
    r = o.request()
    assert [v.transport for v in r.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert r.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01(o: Outcome) -> None:
    r = o.request()
    length = int(r.headers.get("Content-Length"))
    assert length == 553 and len(r.body) == length
    assert r.body == o.data[o.data.index(b"\r\n\r\n") + 4:][:length]
    assert b"\x00" in r.body and r.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert r.content_type == "multipart/mixed"


def check_unreason(o: Outcome) -> None:
    resp = o.response()
    assert resp.status == 200
    assert resp.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def check_noreason(o: Outcome) -> None:
    resp = o.response()
    assert resp.status == 100 and resp.reason == ""


# ----------------------------------------------------------------------------------------
# §3.1.2 invalid messages
# ----------------------------------------------------------------------------------------

def answered(status: int) -> Callable[[Outcome], None]:
    def check(o: Outcome) -> None:
        o.answered(status)
    return check


def check_clerr(o: Outcome) -> None:
    resp = o.answered(400)
    assert resp.call_id.startswith("clerr.")


def check_scalar02(o: Outcome) -> None:
    resp = o.answered(400)
    assert "CSeq" in resp.reason


def check_baddate(o: Outcome) -> None:
    # RFC 4475 §3.1.2.12: rejecting is only required where Date matters; it does not here.
    r = o.request()
    assert r.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def check_badvers(o: Outcome) -> None:
    resp = o.answered(505)
    assert resp.call_id == "badvers.31417@c.example.com"


def check_mismatch02(o: Outcome) -> None:
    assert o.rejected and o.rejected[0].status in (400, 501)
    o.answered(o.rejected[0].status)


def check_dropped(o: Outcome) -> None:
    o.dropped()


# ----------------------------------------------------------------------------------------
# §3.2-3.4 transaction-layer and application-layer cases
# ----------------------------------------------------------------------------------------

def check_badbranch(o: Outcome) -> None:
    # The bare magic cookie carries no transaction id: the endpoint falls back to RFC 2543
    # matching (§17.2.3) and processes the request.
    r = o.request()
    assert r.top_via.branch == "z9hG4bK"
    txn = o.requests[0].transaction
    assert txn.key[0] == r.call_id  # RFC 2543 key, not the bare cookie
    o.endpoint.receive(o.data, PEER, now=0.1)  # a retransmission matches that transaction
    assert list(o.endpoint.events()) == []
    assert o.endpoint.stats["retransmissions_absorbed"] == 1


def check_insuf(o: Outcome) -> None:
    resp = o.answered(400)
    # no Call-ID/From/To to copy, but the sender still gets an answer (§3.3.1)
    assert resp.headers.get("Call-ID") is None and resp.headers.get("To") is None
    assert resp.cseq.seq == 193942


def check_unkscm(o: Outcome) -> None:
    o.answered(416)


def check_unksm2(o: Outcome) -> None:
    r = o.request()
    assert r.to.uri.scheme == "isbn" and not r.to.uri.is_sip
    assert r.from_.uri.scheme == "http" and r.from_.tag == "3234233"
    assert [c.uri.scheme for c in r.contacts] == ["name"]


def check_bext01(o: Outcome) -> None:
    resp = o.answered(420)
    tags = [t.lower() for t in resp.headers.values("Unsupported")]
    assert tags == ["nothingsupportsthis", "nothingsupportsthiseither"]
    assert "noproxiessupportthis" not in tags  # we are a UAS: only Require counts


def check_invut(o: Outcome) -> None:
    r = o.request()
    assert r.content_type == "application/unknownformat"
    assert r.body.startswith(b"<audio>") and len(r.body) == 40


def check_regaut01(o: Outcome) -> None:
    r = o.request()
    assert r.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def check_multi01(o: Outcome) -> None:
    resp = o.answered(400)
    assert "multiple" in resp.reason


def check_mcl01(o: Outcome) -> None:
    resp = o.answered(400)
    assert resp.call_id == "mcl01.fhn2323orihawfdoa3o4r52o3irsdf"


def check_bcast(o: Outcome) -> None:
    resp = o.response()
    assert [e for e in o.events if isinstance(e, StrayResponseReceived)]
    assert resp.vias[1].host == "255.255.255.255"
    assert o.endpoint.datagrams_to_send() == []  # nothing is forwarded anywhere


def check_zeromf(o: Outcome) -> None:
    r = o.request()
    assert r.max_forwards == 0


def check_cparam01(o: Outcome) -> None:
    r = o.request()
    [contact] = r.contacts
    assert contact.params == {"unknownparam": None}  # a contact-param ...
    assert contact.uri.params == {}  # ... never a url-parameter
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net"


def check_cparam02(o: Outcome) -> None:
    r = o.request()
    [contact] = r.contacts
    assert contact.uri.params == {"unknownparam": None}
    assert contact.params == {}
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net;unknownparam"


def check_regescrt(o: Outcome) -> None:
    r = o.request()
    [contact] = r.contacts
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def check_sdp01(o: Outcome) -> None:
    r = o.request()
    assert r.headers.values("Accept") == ["text/nobodyKnowsThis"]
    assert r.content_type == "application/sdp"


def check_inv2543(o: Outcome) -> None:
    r = o.request()
    assert r.method == "INVITE"
    assert r.top_via.branch is None
    assert r.from_.tag is None
    assert r.max_forwards is None
    assert r.headers.get("Content-Length") is None
    assert r.body == o.data[o.data.index(b"\r\n\r\n") + 4:]  # body = rest of the datagram
    assert r.body.startswith(b"v=0")
    txn = o.requests[0].transaction
    assert txn.key[0] == r.call_id  # RFC 2543 transaction matching


CHECKS: dict[str, Callable[[Outcome], None]] = {
    # §3.1.1 valid
    "wsinv": check_wsinv, "intmeth": check_intmeth, "esc01": check_esc01, "escnull": check_escnull,
    "esc02": check_esc02, "lwsdisp": check_lwsdisp, "longreq": check_longreq, "dblreq": check_dblreq,
    "semiuri": check_semiuri, "transports": check_transports, "mpart01": check_mpart01,
    "unreason": check_unreason, "noreason": check_noreason,
    # §3.1.2 invalid
    "badinv01": answered(400), "clerr": check_clerr, "ncl": answered(400), "scalar02": check_scalar02,
    "scalarlg": check_dropped, "quotbal": answered(400), "ltgtruri": answered(400),
    "lwsruri": answered(400), "lwsstart": answered(400), "trws": answered(400),
    "escruri": answered(400), "baddate": check_baddate, "regbadct": answered(400),
    "badaspec": answered(400), "baddn": answered(400), "badvers": check_badvers,
    "mismatch01": answered(400), "mismatch02": check_mismatch02, "bigcode": check_dropped,
    # §3.2-3.4 transaction / application layer
    "badbranch": check_badbranch, "insuf": check_insuf, "unkscm": check_unkscm, "novelsc": answered(416),
    "unksm2": check_unksm2, "bext01": check_bext01, "invut": check_invut, "regaut01": check_regaut01,
    "multi01": check_multi01, "mcl01": check_mcl01, "bcast": check_bcast, "zeromf": check_zeromf,
    "cparam01": check_cparam01, "cparam02": check_cparam02, "regescrt": check_regescrt,
    "sdp01": check_sdp01, "inv2543": check_inv2543,
}


def _require_corpus() -> list[dict[str, str]]:
    if ROWS is None:
        pytest.fail(f"RFC 4475 corpus not found: {CORPUS}/MANIFEST.tsv is missing. Set SIP_TORTURE_DIR "
                    f"to the rfc4475 directory (default {DEFAULT_CORPUS}).", pytrace=False)
    return ROWS


def test_corpus_is_complete() -> None:
    rows = _require_corpus()
    names = [row["name"] for row in rows]
    assert len(names) == 49 == len(set(names))
    assert set(names) == set(CHECKS)
    for name in names:
        assert (CORPUS / f"{name}.dat").is_file(), name


@pytest.mark.parametrize("row", PARAMS)
def test_torture_message(row: dict[str, str] | None) -> None:
    _require_corpus()
    assert row is not None
    name = row["name"]
    assert name in CHECKS, f"no expectation written for {name} ({row['expected']})"
    CHECKS[name](feed(name))
