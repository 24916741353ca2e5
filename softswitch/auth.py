"""Digest authentication of devices against their channel credentials (RFC 3261 §22).

One place decides, for REGISTER (401/WWW-Authenticate) and for INVITE and other requests
(407/Proxy-Authenticate), whether a request comes from a channel of the account whose
domain is the realm. The outcome is a channel, or the response to send — one table maps
every failure to its status, like Kamailio's registrar reply table.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from config.models import Account, Channel

from .sip.digest import DigestChallenger, DigestError, VerifyResult, parse_credentials
from .sip.message import Request

log = logging.getLogger(__name__)


class AuthFailure(enum.Enum):
    NO_CREDENTIALS = "no credentials"
    OTHER_SCHEME = "unsupported authorization scheme"
    WRONG_REALM = "credentials for another realm"
    UNKNOWN_CHANNEL = "unknown channel"
    WRONG_PASSWORD = "wrong password"
    STALE_NONCE = "stale nonce"
    FOREIGN_NONCE = "nonce not issued by us"
    MALFORMED = "malformed credentials"


# failure → (status for REGISTER, status for other requests, send a fresh challenge?)
_REPLY = {
    AuthFailure.NO_CREDENTIALS: (401, 407, True),
    AuthFailure.OTHER_SCHEME: (401, 407, True),
    AuthFailure.WRONG_REALM: (401, 407, True),
    AuthFailure.STALE_NONCE: (401, 407, True),
    AuthFailure.FOREIGN_NONCE: (401, 407, True),
    AuthFailure.UNKNOWN_CHANNEL: (403, 403, False),
    AuthFailure.WRONG_PASSWORD: (403, 403, False),
    AuthFailure.MALFORMED: (400, 400, False),
}


@dataclass(frozen=True)
class AuthResult:
    channel: Channel | None
    status: int = 0
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    account: Account | None = None

    @property
    def ok(self) -> bool:
        return self.channel is not None


class ChannelStore:  # the slice of the directory this module needs (typing only)
    def channel_by_username(self, account_id: int, username: str) -> Channel | None: ...
    def account_by_domain(self, domain: str) -> Account | None: ...


class Authenticator:
    def __init__(self, store: ChannelStore, challenger: DigestChallenger):
        self.store = store
        self.challenger = challenger

    def identify(self, request: Request, domain: str, now: float) -> AuthResult:
        """Which account (by ``domain``, the AOR's host, else the Request-URI's host, since
        phones configured with the server's IP address put it there) and which of its
        channels sent ``request``: 404 for an unknown domain, else as ``authenticate``."""
        account = self.store.account_by_domain(domain) or self.store.account_by_domain(request.uri.host)
        if account is None:
            return AuthResult(None, 404, f"Not Found (unknown domain {domain[:64]})")
        result = self.authenticate(request, account, now)
        return AuthResult(result.channel, result.status, result.reason, result.headers, account)

    def authenticate(self, request: Request, account: Account, now: float) -> AuthResult:
        proxy = request.method != "REGISTER"
        header = "Proxy-Authorization" if proxy else "Authorization"
        realm = account.domain
        failure, channel = self._check(request, account, header, now)
        if failure is None:
            return AuthResult(channel)
        reg_status, other_status, challenge = _REPLY[failure]
        status = other_status if proxy else reg_status
        if failure not in (AuthFailure.NO_CREDENTIALS, AuthFailure.STALE_NONCE):
            log.info("auth %s for %s from %s in %s", failure.value, request.method,
                     request.headers.get("From"), realm)
        headers: tuple[tuple[str, str], ...] = ()
        if challenge:
            name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
            values = self.challenger.challenge(realm, now, stale=failure is AuthFailure.STALE_NONCE)
            headers = tuple((name, v) for v in values)
        reason = {401: "Unauthorized", 407: "Proxy Authentication Required"}.get(status)
        if reason is None:
            reason = f"Forbidden ({failure.value})" if status == 403 else f"Bad Request ({failure.value})"
        return AuthResult(None, status, reason, headers)

    def _check(self, request: Request, account: Account, header: str, now: float
               ) -> tuple[AuthFailure | None, Channel | None]:
        values = request.headers.fields(header)
        if not values:
            return AuthFailure.NO_CREDENTIALS, None
        creds = None
        for value in values:  # a phone may answer several challenges; take the one for our realm
            try:
                c = parse_credentials(value)
            except DigestError:
                return AuthFailure.MALFORMED, None
            if c.is_digest and c.realm == account.domain:
                creds = c
                break
            creds = creds or c
        assert creds is not None
        if not creds.is_digest:
            return AuthFailure.OTHER_SCHEME, None
        if creds.realm != account.domain:
            return AuthFailure.WRONG_REALM, None
        channel = self.store.channel_by_username(account.id, creds.username)
        if channel is None:
            return AuthFailure.UNKNOWN_CHANNEL, None
        result = self.challenger.verify(creds, method=request.method, password=channel.password, now=now)
        if result is VerifyResult.OK:
            return None, channel
        if result is VerifyResult.STALE:
            return AuthFailure.STALE_NONCE, None
        if result is VerifyResult.BAD_NONCE:
            return AuthFailure.FOREIGN_NONCE, None
        return AuthFailure.WRONG_PASSWORD, None
