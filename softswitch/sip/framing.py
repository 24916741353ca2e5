"""Message framing for stream transports (RFC 3261 §7.5, §18.3; RFC 5626 §3.5.1 keep-alives).

On TCP a message ends after Content-Length octets of body; the header is mandatory there.
CRLFs between messages are keep-alives: a double CRLF ("ping") is answered with one CRLF
("pong"). Every byte a peer can make us buffer is bounded.
"""
from __future__ import annotations

from .errors import FramingError, MessageTooLarge
from .message import MAX_BODY_BYTES, MAX_MESSAGE_BYTES

MAX_HEADER_BYTES = 16 * 1024  # a header section longer than this without its end is dropped


class StreamFramer:
    """Feed bytes, get complete message byte strings; raises on unrecoverable framing."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._crlfs = 0  # CRLFs seen since the last message or ping (a ping may span chunks)
        self.pings = 0  # CRLFCRLF keep-alives seen; the shell answers each with CRLF

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            # Leading CRLFs are keep-alives (§7.5: ignore CRLF before the start line;
            # RFC 5626 §3.5.1: CRLFCRLF is a ping). Count them across chunk boundaries.
            stripped = 0
            while self._buf[stripped : stripped + 2] == b"\r\n":
                stripped += 2
                self._crlfs += 1
                if self._crlfs == 2:
                    self.pings += 1
                    self._crlfs = 0
            if stripped:
                del self._buf[:stripped]
            if self._buf == b"\r":
                return out  # the rest of a CRLF is still on its way
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise MessageTooLarge("header section too long")
                return out
            if end > MAX_HEADER_BYTES:
                raise MessageTooLarge("header section too long")
            self._crlfs = 0
            head = bytes(self._buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    value = value.strip()
                    if not value.isdigit():
                        raise FramingError(f"bad Content-Length {value[:20]!r}")
                    # bound the digits before int(): a 5000-digit value is a ValueError there
                    if len(value.lstrip(b"0")) > len(str(MAX_BODY_BYTES)):
                        raise MessageTooLarge(f"Content-Length {value[:20]!r}")
                    length = int(value)
            if length > MAX_BODY_BYTES or end + 4 + length > MAX_MESSAGE_BYTES:
                raise MessageTooLarge(f"Content-Length {length}")
            total = end + 4 + length
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
