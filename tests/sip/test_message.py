"""Parsing, validating and serialising SIP messages (RFC 3261 §7, §8.2, §20, §25)."""
from __future__ import annotations

import pytest

from softswitch.sip.errors import (
    FramingError, MessageTooLarge, ParseError, UnsupportedUriScheme, VersionNotSupported,
)
from softswitch.sip.headers import CSeq, Via, canonical_name, parse_uint, split_list
from softswitch.sip.message import (
    MAX_HEADER_LINES, MAX_MESSAGE_BYTES, Headers, Request, Response, make_response, parse_message,
)

BASE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm1\r\n"
    "Max-Forwards: 70\r\n"
    "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: msg-1@192.0.2.1\r\n"
    "CSeq: 10 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.1>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def parse_request(text: str, body: bytes = b"") -> Request:
    msg = parse_message(text.encode() + body)
    assert isinstance(msg, Request)
    return msg


# ---------------------------------------------------------------------------------- headers
def test_compact_forms() -> None:
    text = (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKc1\r\n"
        "f: <sip:alice@example.com>;tag=1\r\n"
        "t: <sip:bob@example.com>\r\n"
        "i: compact@x\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "m: <sip:alice@192.0.2.1>\r\n"
        "k: replaces, timer\r\n"
        "c: text/plain\r\n"
        "l: 2\r\n\r\nhi"
    )
    req = parse_request(text)
    req.check()
    assert req.call_id == "compact@x"
    assert req.from_.tag == "1" and req.to.uri.user == "bob"
    assert req.top_via.branch == "z9hG4bKc1"
    assert req.headers.values("Supported") == ["replaces", "timer"]
    assert req.content_type == "text/plain" and req.body == b"hi"
    assert [n for n, _ in req.headers][:3] == ["Via", "From", "To"]  # canonical names
    assert canonical_name("CALL-id") == "Call-ID" and canonical_name("X-Foo") == "X-Foo"


def test_case_insensitive_names_and_lookup() -> None:
    req = parse_request(BASE.replace("Call-ID:", "cAlL-iD:"))
    assert req.headers.get("call-id") == "msg-1@192.0.2.1"
    assert "CALL-ID" in req.headers and "i" in req.headers
    assert req.headers.get("X-Missing", "dflt") == "dflt"


def test_folding_joins_with_one_space() -> None:
    req = parse_request(BASE.replace("Call-ID: msg-1@192.0.2.1\r\n",
                                     "Call-ID: msg-1@192.0.2.1\r\nSubject: one\r\n  two\r\n\tthree\r\n"))
    assert req.headers.get("Subject") == "one two three"


def test_leading_continuation_line_rejected() -> None:
    with pytest.raises(ParseError):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n")


def test_multi_value_split_and_separate_fields() -> None:
    req = parse_request(BASE.replace(
        "Contact: <sip:alice@192.0.2.1>\r\n",
        "Contact: <sip:a@h1>, \"Last, First\" <sip:b@h2>;q=0.5\r\n"
        "Contact: sip:c@h3;expires=60\r\n"
        "Route: <sip:p1;lr>,<sip:p2;lr>\r\n"
        "Authorization: Digest username=\"a\", realm=\"r\", nonce=\"n\"\r\n"))
    assert [c.uri.user for c in req.contacts] == ["a", "b", "c"]
    assert req.contacts[1].display == "Last, First" and req.contacts[1].params == {"q": "0.5"}
    assert req.contacts[2].params == {"expires": "60"}
    assert req.headers.values("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    # not a list header: the commas inside one credential are not separators
    assert req.headers.values("Authorization") == ['Digest username="a", realm="r", nonce="n"']
    assert len(req.headers.fields("Contact")) == 2


def test_split_list_quotes_and_angles() -> None:
    assert split_list('"a,b" <sip:x>, <sip:y;p=1,2>, z') == ['"a,b" <sip:x>', "<sip:y;p=1,2>", "z"]
    assert split_list(r'"esc \" , still" <sip:x>, y') == [r'"esc \" , still" <sip:x>', "y"]
    assert split_list(" , a ,, b ,") == ["a", "b"]
    with pytest.raises(ParseError):
        split_list('"unterminated, x')


def test_headers_editing() -> None:
    h = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("To", "<sip:x@y>"), ("X-A", "1"), ("X-A", "2")])
    h.prepend("Via", "SIP/2.0/UDP b;branch=z9hG4bK2")
    assert h.fields("Via") == ["SIP/2.0/UDP b;branch=z9hG4bK2", "SIP/2.0/UDP a;branch=z9hG4bK1"]
    h.set("x-a", "3")
    assert h.fields("X-A") == ["3"]
    h.remove("X-A")
    assert "X-A" not in h
    h.prepend("Record-Route", "<sip:p;lr>")  # absent: goes on top
    assert next(iter(h))[0] == "Record-Route"
    c = h.copy()
    c.add("X-B", "b")
    assert "X-B" not in h and len(c) == len(h) + 1


# ---------------------------------------------------------------------------------- structured values
def test_via_parse_and_str() -> None:
    via = Via.parse("SIP / 2.0 / tcp [2001:db8::1]:5061 ; branch = z9hG4bKv ;rport;received=192.0.2.9")
    assert (via.transport, via.host, via.port) == ("TCP", "[2001:db8::1]", 5061)
    assert via.branch == "z9hG4bKv" and via.params["rport"] is None
    assert via.sent_by == ("[2001:db8::1]", 5061)
    assert str(via) == "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKv;rport;received=192.0.2.9"
    assert Via.parse(str(via)) == via
    for bad in ("SIP/2.0/UDP", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP host:x", "garbage", "SIP/2.0/UDP ;branch=1"):
        with pytest.raises(ParseError):
            Via.parse(bad)


def test_cseq() -> None:
    assert CSeq.parse(" 0009\t INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(4, "BYE")) == "4 BYE"
    assert CSeq.parse(f"{2**31 - 1} ACK").seq == 2**31 - 1
    for bad in (f"{2**31} ACK", "1", "x INVITE", "-1 INVITE", "1 IN VITE", "\u00b2 INVITE"):
        with pytest.raises(ParseError):
            CSeq.parse(bad)


def test_parse_uint() -> None:
    assert parse_uint(" 007 ", "x") == 7
    assert parse_uint("0" * 100, "x") == 0
    assert parse_uint("9" * 5000, "x") == 10**20  # clamped, caller decides
    with pytest.raises(ParseError):
        parse_uint("9" * 5000, "x", maximum=10)
    with pytest.raises(ParseError):
        parse_uint("11", "x", maximum=10)
    for bad in ("", "+1", "1e3", "\u0661", "1 2"):
        with pytest.raises(ParseError):
            parse_uint(bad, "x")


def test_max_forwards_and_expires() -> None:
    req = parse_request(BASE.replace("Max-Forwards: 70", "Max-Forwards: 0")
                        .replace("CSeq:", "Expires: 99999999999999\r\nCSeq:"))
    assert req.max_forwards == 0
    assert req.expires == 2**32 - 1
    req2 = parse_request(BASE.replace("Max-Forwards: 70", "Max-Forwards: 256"))
    with pytest.raises(ParseError):
        req2.check()
    assert parse_request(BASE).expires is None


# ---------------------------------------------------------------------------------- start line / framing
def test_request_and_response_start_lines() -> None:
    req = parse_request(BASE)
    assert (req.method, req.uri_text, req.version) == ("INVITE", "sip:bob@example.com", "SIP/2.0")
    resp = parse_message(b"SIP/2.0 486 Busy Here, really\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
    assert isinstance(resp, Response) and resp.status == 486 and resp.reason == "Busy Here, really"
    assert "486" in repr(resp)


@pytest.mark.parametrize("start", [
    "SIP/2.0 99 Too small", "SIP/2.0 700 Too big", "SIP/2.0 2000 OK", "SIP/3.0 200 OK", "SIP/2.0 2x0 OK",
])
def test_bad_status_lines(start: str) -> None:
    with pytest.raises(ParseError):
        parse_message(f"{start}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n".encode())


def test_version_not_supported_carries_request() -> None:
    with pytest.raises(VersionNotSupported) as info:
        parse_message(BASE.replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1).encode())
    assert info.value.status_code == 505
    assert info.value.message.call_id == "msg-1@192.0.2.1"


def test_malformed_request_line_keeps_method() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(BASE.replace("INVITE sip:", "ACK  sip:", 1).encode())
    assert info.value.message.method == "ACK"


def test_leading_crlf_and_bare_lf() -> None:
    req = parse_request("\r\n\r\n" + BASE)
    assert req.method == "INVITE"
    lf = parse_message(BASE.replace("\r\n", "\n").encode())
    assert isinstance(lf, Request) and lf.call_id == "msg-1@192.0.2.1"


def test_content_length_frames_datagram() -> None:
    req = parse_request(BASE.replace("Content-Length: 0", "Content-Length: 3"), b"abcdef")
    assert req.body == b"abc"
    with pytest.raises(FramingError) as info:
        parse_message(BASE.replace("Content-Length: 0", "Content-Length: 30").encode() + b"short")
    assert info.value.status_code == 400 and info.value.message.method == "INVITE"
    no_cl = BASE.replace("Content-Length: 0\r\n", "")
    assert parse_request(no_cl, b"rest").body == b"rest"  # UDP: the rest of the datagram
    stream = parse_message(no_cl.encode() + b"rest", datagram=False)
    assert stream.body == b""  # stream: no Content-Length means 0


def test_limits() -> None:
    with pytest.raises(MessageTooLarge):
        parse_message(b"x" * (MAX_MESSAGE_BYTES + 1))
    many = BASE.replace("CSeq:", "X-A: 1\r\n" * (MAX_HEADER_LINES + 1) + "CSeq:")
    with pytest.raises(MessageTooLarge):
        parse_message(many.encode())
    with pytest.raises(ParseError):
        parse_message(b"OPTIONS sip:a@b SIP/2.0")  # nothing after the start line


def test_bad_header_name() -> None:
    with pytest.raises(ParseError):
        parse_message(BASE.replace("Max-Forwards:", "Max Forwards:").encode())
    with pytest.raises(ParseError):
        parse_message(BASE.replace("Max-Forwards: 70", "no colon here").encode())


# ---------------------------------------------------------------------------------- check()
@pytest.mark.parametrize("edit", [
    ("Call-ID: msg-1@192.0.2.1\r\n", ""),
    ("CSeq: 10 INVITE", "CSeq: 10 BYE"),
    ("To: <sip:bob@example.com>\r\n", "To: <sip:bob@example.com>\r\nTo: <sip:eve@example.com>\r\n"),
    ("From: \"Alice\"", "From: Alice Smith,"),
    ("Contact: <sip:alice@192.0.2.1>", "Contact: <sip:alice@192.0.2.1"),
    ("Call-ID: msg-1@192.0.2.1", "Call-ID: "),
    ("sip:bob@example.com SIP", "sip:bob@example.com?Subject=x SIP"),
    ("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm1\r\n", ""),
])
def test_check_rejects_with_400(edit: tuple[str, str]) -> None:
    req = parse_request(BASE.replace(*edit, 1))
    with pytest.raises(ParseError) as info:
        req.check()
    assert info.value.status_code == 400


def test_check_unsupported_scheme() -> None:
    req = parse_request(BASE.replace("INVITE sip:bob@example.com", "INVITE tel:+15551234"))
    with pytest.raises(UnsupportedUriScheme) as info:
        req.check()
    assert info.value.status_code == 416


def test_check_accepts_valid() -> None:
    req = parse_request(BASE)
    req.check()
    resp = make_response(req, 200, to_tag="x")
    resp.check()


# ---------------------------------------------------------------------------------- serialise / respond
def test_serialize_round_trip() -> None:
    req = parse_request(BASE.replace("Content-Length: 0", "l: 4") + "", b"body")
    data = req.serialize()
    assert data.endswith(b"\r\n\r\nbody")
    assert b"Content-Length: 4\r\n" in data and b"\r\nl:" not in data
    again = parse_message(data)
    assert isinstance(again, Request)
    assert list(again.headers) == list(req.headers) and again.body == req.body
    assert again.serialize() == data
    assert bytes(again) == data


def test_serialize_sets_content_length_from_body() -> None:
    req = Request("MESSAGE", "sip:bob@example.com", [("Content-Length", "99"), ("Call-ID", "x")], body="héllo".encode())
    data = req.serialize()
    assert data.count(b"Content-Length") == 1 and b"Content-Length: 6\r\n" in data
    assert data.startswith(b"MESSAGE sip:bob@example.com SIP/2.0\r\n")


def test_serialize_keeps_non_utf8_bytes() -> None:
    raw = BASE.replace("Call-ID:", "X-Raw: \xff\xfe\r\nCall-ID:").encode("latin-1")
    req = parse_message(raw)
    assert req.serialize() == raw


def test_make_response_copies_and_tags() -> None:
    text = BASE.replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm1\r\n",
                        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKm1\r\nVia: SIP/2.0/TCP p;branch=z9hG4bKp\r\n")
    req = parse_request(text)
    resp = make_response(req, 180, to_tag="t123", headers=[("Server", "softswitch")])
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.headers.fields("Via") == req.headers.fields("Via")
    assert resp.headers.get("From") == req.headers.get("From")
    assert resp.call_id == req.call_id
    assert resp.headers.get("CSeq") == "10 INVITE"
    assert resp.to.tag == "t123" and resp.to.uri == req.to.uri
    assert resp.headers.get("Server") == "softswitch"
    assert resp.headers.get("Contact") is None and resp.headers.get("Max-Forwards") is None
    assert resp.serialize().startswith(b"SIP/2.0 180 Ringing\r\n")


def test_make_response_no_tag_on_100_and_keeps_existing_tag() -> None:
    req = parse_request(BASE)
    assert make_response(req, 100, to_tag="t").to.tag is None
    tagged = parse_request(BASE.replace("To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=old"))
    resp = make_response(tagged, 200, to_tag="new")
    assert resp.to.tag == "old" and resp.headers.get("To").count("tag=") == 1
    assert make_response(req, 200).to.tag is None  # no tag asked for, none added
    assert make_response(req, 299).reason == ""  # unknown code: empty reason phrase
    assert make_response(req, 480, "Gone Fishing").reason == "Gone Fishing"


def test_response_reason_phrase_sanitised() -> None:
    err = ParseError("bad\r\nthing\x00")
    assert "\r" not in err.reason_phrase and "\n" not in err.reason_phrase
    assert err.reason_phrase.startswith("Bad Request (bad")


def test_request_uri_setter_and_repr() -> None:
    req = parse_request(BASE)
    assert "INVITE" in repr(req) and "msg-1@192.0.2.1" in repr(req)
    req.uri = req.uri.with_(host="example.org", port=5070)
    assert req.uri_text == "sip:bob@example.org:5070"
    assert req.start_line() == "INVITE sip:bob@example.org:5070 SIP/2.0"
