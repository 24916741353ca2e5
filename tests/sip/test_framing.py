"""StreamFramer: RFC 3261 §18.3 stream framing and RFC 5626 §3.5.1 CRLF keep-alives."""
from __future__ import annotations

import pytest

from softswitch.sip.errors import FramingError, MessageTooLarge, SipError
from softswitch.sip.framing import MAX_HEADER_BYTES, StreamFramer
from softswitch.sip.message import MAX_BODY_BYTES, Request, parse_message


def message(body: bytes = b"", call_id: str = "f1", content_length: str | None = None) -> bytes:
    cl = str(len(body)) if content_length is None else content_length
    return (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKfr1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=1\r\n"
        "To: <sip:bob@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"Content-Length: {cl}\r\n\r\n"
    ).encode() + body


def test_one_message_in_one_chunk() -> None:
    framer = StreamFramer()
    data = message(b"hello")
    assert framer.feed(data) == [data]
    assert framer.feed(b"") == []


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50])
def test_split_into_chunks(size: int) -> None:
    framer = StreamFramer()
    data = message(b"body\r\n\r\nwith blank line")  # the body's CRLFCRLF must not end anything
    out: list[bytes] = []
    for i in range(0, len(data), size):
        out += framer.feed(data[i:i + size])
    assert out == [data]
    msg = parse_message(out[0], datagram=False)
    assert isinstance(msg, Request) and msg.body == b"body\r\n\r\nwith blank line"


def test_two_messages_in_one_chunk_and_a_half() -> None:
    framer = StreamFramer()
    a, b, c = message(b"A", "a"), message(b"BB", "b"), message(b"CCC", "c")
    assert framer.feed(a + b + c[:20]) == [a, b]
    assert framer.feed(c[20:]) == [c]


def test_body_split_from_header() -> None:
    framer = StreamFramer()
    data = message(b"0123456789")
    head_len = data.index(b"\r\n\r\n") + 4
    assert framer.feed(data[:head_len + 3]) == []
    assert framer.feed(data[head_len + 3:]) == [data]


def test_keepalive_pings_counted() -> None:
    framer = StreamFramer()
    data = message()
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.pings == 1
    assert framer.feed(b"\r\n\r\n\r\n\r\n" + data + b"\r\n\r\n") == [data]
    assert framer.pings == 4


def test_keepalive_split_across_chunks() -> None:
    framer = StreamFramer()
    for piece in (b"\r", b"\n", b"\r\n"):
        assert framer.feed(piece) == []
    assert framer.pings == 1
    data = message()
    assert framer.feed(b"\r\n\r" + b"\n" + data) == [data]
    assert framer.pings == 2


def test_single_crlf_is_not_a_ping() -> None:
    framer = StreamFramer()
    data = message()
    assert framer.feed(b"\r\n" + data) == [data]  # §7.5: CRLF before a start line is ignored
    assert framer.pings == 0


def test_missing_content_length_means_empty_body() -> None:
    framer = StreamFramer()
    data = message().replace(b"Content-Length: 0\r\n", b"")
    assert framer.feed(data + b"OPTIONS") == [data]
    assert parse_message(data, datagram=False).body == b""


def test_compact_content_length() -> None:
    framer = StreamFramer()
    data = message(b"xyz").replace(b"Content-Length: 3", b"l: 3")
    assert framer.feed(data) == [data]


def test_oversize_header_without_end() -> None:
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:x SIP/2.0\r\n")
    with pytest.raises(MessageTooLarge) as info:
        for _ in range(MAX_HEADER_BYTES // 100 + 2):
            framer.feed(b"X-Pad: " + b"a" * 91 + b"\r\n")
    assert info.value.status_code == 513


def test_oversize_header_with_end_in_one_chunk() -> None:
    framer = StreamFramer()
    data = message().replace(b"CSeq:", b"X-Pad: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\r\nCSeq:")
    with pytest.raises(MessageTooLarge):
        framer.feed(data)


def test_oversize_body_rejected_before_buffering() -> None:
    framer = StreamFramer()
    with pytest.raises(MessageTooLarge):
        framer.feed(message(content_length=str(MAX_BODY_BYTES + 1)))


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "\u00b2"])
def test_bad_content_length(value: str) -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError) as info:
        framer.feed(message(content_length=value))
    assert info.value.status_code == 400


def test_absurd_content_length_is_a_sip_error_not_a_value_error() -> None:
    framer = StreamFramer()
    with pytest.raises(SipError):
        framer.feed(message(content_length="9" * 6000))
