"""Errors of the SIP core, each carrying the response a server answers with.

    SipError                      status_code / reason: what a UAS answers
     ├── ParseError               400  the peer sent something that is not SIP (RemoteProtocolError)
     │    └── FramingError        400  Content-Length and the datagram/stream disagree
     ├── VersionNotSupported      505
     ├── UnsupportedUriScheme     416
     ├── BadExtension             420  (carries the unsupported option tags)
     ├── TooManyHops              483
     └── MessageTooLarge          513
    LocalProtocolError            we misused the core (a bug of ours, never answered on the wire)

Like h11's RemoteProtocolError.error_status_hint, every remote error knows its status, so the
layer boundary (``softswitch.sip.endpoint``) turns it into a response or a silent drop and it
never escapes into the event loop.
"""
from __future__ import annotations


class SipError(Exception):
    status_code = 500
    reason = "Server Internal Error"

    def __init__(self, detail: str = "", *, status_code: int | None = None, reason: str | None = None):
        super().__init__(detail or self.reason)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        if reason is not None:
            self.reason = reason

    @property
    def reason_phrase(self) -> str:
        """Reason phrase for the response: the generic phrase plus the detail, single line."""
        if not self.detail:
            return self.reason
        text = f"{self.reason} ({self.detail})"
        return "".join(ch if ch.isprintable() else " " for ch in text)[:200]


class ParseError(SipError):
    status_code = 400
    reason = "Bad Request"


class FramingError(ParseError):
    pass


class VersionNotSupported(SipError):
    status_code = 505
    reason = "Version Not Supported"


class UnsupportedUriScheme(SipError):
    status_code = 416
    reason = "Unsupported URI Scheme"


class BadExtension(SipError):
    status_code = 420
    reason = "Bad Extension"

    def __init__(self, tags: list[str]):
        super().__init__(", ".join(tags))
        self.tags = tags


class TooManyHops(SipError):
    status_code = 483
    reason = "Too Many Hops"


class MessageTooLarge(SipError):
    status_code = 513
    reason = "Message Too Large"


class LocalProtocolError(Exception):
    """We asked the core to do something the protocol forbids (a bug of ours)."""
