"""SIP trunks in the daemon: registration at the carrier, OPTIONS keep-alive, up/down status.

Two layers, in the aioquic manner:

``TrunkLink`` is the state machine of one trunk and does no I/O: it takes ``now``, the
responses and timeouts of the requests it asked to send, and timer calls; it hands out
requests to send, status changes and its next deadline.

- Outbound registration (RFC 3261 §10.2) when the trunk has ``register`` set: REGISTER
  ``sip:HOST`` with To/From ``sip:USERNAME@HOST``, our Contact and ``Expires:
  REGISTER_EXPIRES``; one Call-ID and increasing CSeq for every refresh (§10.2.4).
  401/407 is answered with digest credentials (§22.2, RFC 7616 §3.4: ``qop=auth`` when
  offered, a fresh cnonce, the nonce count incremented each time the nonce is reused).
  Re-registration at ``REFRESH_FRACTION`` of the expiry the carrier granted (§10.2.1.1:
  the Contact's ``expires`` parameter, else the Expires header); 423 is answered once
  with the carrier's Min-Expires (§10.2.8). Failures are retried after
  ``retry_delay()``: 30 s, 60 s, 120 s … at most 10 min.
- Keep-alive: an OPTIONS request (§11) every ``keepalive`` seconds. Any response means
  the carrier is reachable; a probe still unanswered when the next is due, or a
  transaction timeout, means it is not.

State (``TrunkState``): ``up`` (reachable; and registered, for a registering trunk),
``down`` (unreachable, or registration failed for another reason than credentials),
``auth failed`` (403, or a challenge to credentials we computed for the carrier's own
fresh challenge), ``registering`` (first registration under way), ``unknown`` (no
answer yet to the first OPTIONS). A registering trunk is up only while registered.

``TrunkManager`` is the asyncio shell: it loads the trunks of every account, re-reads
them when ``config_version`` changes (polled once a second), resolves host names, runs
one link per trunk (its requests go through ``SipCore.send_request``, the transaction
events come back to the trunk's worker), logs each change of state and writes it into
``trunk_status`` through the writer thread. Call routing asks it which trunk an inbound
request came from (``match_inbound``) and which trunks to try outbound (``candidates``).
"""
from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from config.routing import DEFAULT_SIP_PORT, Trunk

from .sip.digest import Challenge, build_authorization, parse_challenge
from .sip.errors import ParseError
from .sip.message import Request, Response
from .sip.transaction import ClientTransaction, Peer, ResponseReceived, TransactionTimedOut
from .sip.uri import NameAddr, Uri

log = logging.getLogger(__name__)

REGISTER_EXPIRES = 300  # seconds we ask the carrier to keep our registration
REFRESH_FRACTION = 0.8  # re-register when this part of the granted expiry has passed
MIN_REFRESH_DELAY = 5.0  # a carrier granting a few seconds must not make us loop
MAX_MIN_EXPIRES = 86_400  # a 423's Min-Expires above a day is not followed
KEEPALIVE_INTERVAL = 30.0  # seconds between OPTIONS probes
KEEPALIVE_ENV = "SOFTSWITCH_TRUNK_KEEPALIVE"  # overrides KEEPALIVE_INTERVAL (tests use ~1 s)
RETRY_FIRST = 30.0  # first retry after a failed registration; doubles per failure
RETRY_MAX = 600.0
MAX_CHALLENGES = 3  # challenges answered for one registration before giving up
CONFIG_POLL_INTERVAL = 1.0  # seconds between config_version checks
RESOLVE_INTERVAL = 600.0  # host names are resolved again at least this often
RESOLVE_TIMEOUT = 5.0  # seconds one host name may take to resolve
UNREGISTER_WAIT = 2.0  # close() waits this long for the answers to Expires: 0
MAX_DETAIL_LENGTH = 120  # a detail quotes the carrier's reason phrase; bounded
USER_AGENT = "softswitch"


class TrunkState(enum.Enum):
    UNKNOWN = "unknown"
    REGISTERING = "registering"
    UP = "up"
    DOWN = "down"
    AUTH_FAILED = "auth failed"


@dataclass(frozen=True)
class LinkStatus:
    """What is known about a trunk, why, and since when (loop time)."""

    state: TrunkState
    detail: str
    since: float


@dataclass(frozen=True)
class StatusChanged:
    """The state or its detail changed; ``old`` is None for the first status of a link."""

    old: LinkStatus | None
    new: LinkStatus


class _Registration(enum.Enum):
    OFF = "off"  # the trunk does not register
    PENDING = "pending"  # the first registration is under way
    REGISTERED = "registered"
    FAILED = "failed"
    AUTH_FAILED = "auth failed"


def retry_delay(failures: int) -> float:
    """Back-off after ``failures`` consecutive failed registrations: 30 s, 60 s, … 600 s."""
    return min(RETRY_FIRST * 2 ** max(failures - 1, 0), RETRY_MAX)


def keepalive_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """``SOFTSWITCH_TRUNK_KEEPALIVE`` seconds when set to a positive number, else 30 s."""
    text = environ.get(KEEPALIVE_ENV)
    if text is None:
        return KEEPALIVE_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        log.warning("%s=%r is not a positive number of seconds; using %g s", KEEPALIVE_ENV, text, KEEPALIVE_INTERVAL)
        return KEEPALIVE_INTERVAL
    return value


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_DETAIL_LENGTH]


def _status_line(response: Response) -> str:
    return _printable(f"{response.status} {response.reason}".strip())


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class TrunkLink:
    """One trunk's registration and keep-alive as a sans-IO state machine (module docstring).

    Drive it with ``start(now)``, ``handle_timer(now)`` at ``next_deadline()``,
    ``response_received`` / ``request_timed_out`` for the requests of
    ``requests_to_send()``, and ``close(now)``; read ``status`` and ``status_changes()``.
    ``token`` makes Call-IDs, tags and cnonces (tests pass a predictable one).
    """

    def __init__(self, trunk: Trunk, contact: str, *, keepalive: float = KEEPALIVE_INTERVAL,
                 token: Callable[[], str] = lambda: secrets.token_hex(8)) -> None:
        self.trunk = trunk
        self.contact = contact
        try:
            self._contact_uri: Uri | None = NameAddr.parse(contact).uri
        except ParseError:
            self._contact_uri = None
        self.keepalive = keepalive
        self._token = token
        port = "" if trunk.port == DEFAULT_SIP_PORT else f":{trunk.port}"
        transport = ";transport=tcp" if trunk.transport == "tcp" else ""
        self.registrar_uri = f"sip:{_uri_host(trunk.host)}{port}{transport}"
        self.aor = f"sip:{trunk.username}@{_uri_host(trunk.host)}"
        self._outbox: list[Request] = []
        self._changes: list[StatusChanged] = []
        self.status: LinkStatus | None = None
        self.closing = False
        # keep-alive
        self._reachable: bool | None = None
        self._reach_detail = ""
        self._probe: Request | None = None  # the OPTIONS awaiting its answer
        self._next_probe: float | None = None
        # registration
        self._registration = _Registration.PENDING if trunk.register else _Registration.OFF
        self._reg_detail = ""
        self._call_id = f"{token()}@{USER_AGENT}"
        self._from_tag = token()
        self._cseq = 0
        self._register: Request | None = None  # the REGISTER awaiting its answer
        self._expires = REGISTER_EXPIRES  # what we ask for (raised by a 423)
        self._challenge: Challenge | None = None  # the carrier's last challenge, reused
        self._challenge_fresh = False  # the credentials in _register answer a challenge of this flow
        self._answer_header = "Authorization"
        self._nonce_count = 0
        self._challenges_answered = 0
        self._brief_retried = False
        self._failures = 0
        self._next_register: float | None = None
        self._registered_until: float | None = None

    def __repr__(self) -> str:
        state = self.status.state.value if self.status else "new"
        return f"<TrunkLink {self.trunk.name} {self.registrar_uri} {state}>"

    # -- the driver's side -------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Probe at once, register at once (when the trunk registers)."""
        self._send_probe(now)
        if self.trunk.register:
            self._send_register(now)
        self._update(now)

    def close(self, now: float) -> None:
        """Stop probing; unregister (Expires: 0) when registered or registering."""
        registered = self._registration is _Registration.REGISTERED or self._register is not None
        self.abandon()
        if registered:
            self._send_register(now, expires=0)

    def abandon(self) -> None:
        """Stop without unregistering (a successor registers the same address-of-record);
        answers still in flight are ignored."""
        self.closing = True
        self._next_probe = self._next_register = self._registered_until = None
        self._register = self._probe = None

    @property
    def done(self) -> bool:
        """Closed, and no unregistration is waiting for its answer."""
        return self.closing and self._register is None

    def next_deadline(self) -> float | None:
        deadlines = [t for t in (self._next_probe, self._next_register, self._registered_until) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self._next_probe is not None and now >= self._next_probe:
            if self._probe is not None:  # a whole interval without an answer
                self._set_reachable(False, "OPTIONS timed out", now)
            self._send_probe(now)
        if self._next_register is not None and now >= self._next_register:
            self._next_register = None
            self._send_register(now)
        if self._registered_until is not None and now >= self._registered_until:
            self._registered_until = None
            self._registration_failed(_Registration.FAILED, "registration expired without a refresh", now)
        self._update(now)

    def requests_to_send(self) -> list[Request]:
        out, self._outbox = self._outbox, []
        return out

    def status_changes(self) -> list[StatusChanged]:
        out, self._changes = self._changes, []
        return out

    def response_received(self, request: Request, response: Response, now: float) -> None:
        if response.status < 200:
            return
        if request.method == "OPTIONS":
            if request is self._probe:
                self._probe = None
            self._set_reachable(True, "", now)  # any answer proves a SIP server there (§11)
        elif request is self._register:
            self._register = None
            self._set_reachable(True, "", now)
            self._on_register_response(request, response, now)
        self._update(now)

    def request_timed_out(self, request: Request, now: float) -> None:
        if request is self._probe:
            self._probe = None
            self._set_reachable(False, "OPTIONS timed out", now)
        elif request is self._register:
            self._register = None
            if not self.closing:
                self._set_reachable(False, "REGISTER timed out", now)
                self._registration_failed(_Registration.FAILED, "REGISTER timed out", now)
        self._update(now)

    # -- keep-alive --------------------------------------------------------------------------

    def _send_probe(self, now: float) -> None:
        self._probe = Request("OPTIONS", self.registrar_uri, [
            ("Max-Forwards", "70"),
            ("From", f"{self.contact};tag={self._token()}"),
            ("To", f"<{self.registrar_uri}>"),
            ("Call-ID", f"{self._token()}@{USER_AGENT}"),
            ("CSeq", "1 OPTIONS"),
            ("Accept", "application/sdp"),
            ("User-Agent", USER_AGENT),
        ])
        self._outbox.append(self._probe)
        self._next_probe = now + self.keepalive

    def _set_reachable(self, reachable: bool, detail: str, now: float) -> None:
        came_back = reachable and self._reachable is False
        self._reachable, self._reach_detail = reachable, detail
        if came_back and self._registration is _Registration.FAILED and self._register is None and not self.closing:
            self._next_register = now  # the carrier is back: do not wait out the back-off

    # -- registration ------------------------------------------------------------------------

    def _send_register(self, now: float, *, expires: int | None = None, answering: bool = False) -> None:
        """A REGISTER of a new flow, or (``answering``) the same one again with credentials."""
        if not answering:
            self._challenges_answered = 0
            self._challenge_fresh = self._brief_retried = False
        self._cseq += 1
        value = self._expires if expires is None else expires
        headers = [
            ("Max-Forwards", "70"),
            ("From", f"<{self.aor}>;tag={self._from_tag}"),
            ("To", f"<{self.aor}>"),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", self.contact),
            ("Expires", str(value)),
            ("User-Agent", USER_AGENT),
        ]
        if self._challenge is not None:
            headers.append((self._answer_header, self._authorization()))
        self._register = Request("REGISTER", self.registrar_uri, headers)
        self._outbox.append(self._register)

    def _authorization(self) -> str:
        """Credentials for the cached challenge; RFC 7616 §3.4: nc counts uses of a nonce."""
        assert self._challenge is not None
        self._nonce_count += 1
        return build_authorization(self._challenge, username=self.trunk.username, password=self.trunk.password,
                                   method="REGISTER", uri=self.registrar_uri, cnonce=self._token(),
                                   nc=self._nonce_count)

    def _on_register_response(self, request: Request, response: Response, now: float) -> None:
        expires = int(request.headers.get("Expires") or "0")
        status = response.status
        if status in (401, 407):
            self._on_challenge(response, expires, now)
        elif status == 423 and not self._brief_retried and expires:
            self._on_interval_too_brief(response, now)
        elif self.closing:
            return  # the answer to Expires: 0; nothing more to do
        elif 200 <= status < 300:
            self._on_registered(response, expires, now)
        elif status == 403:
            self._registration_failed(_Registration.AUTH_FAILED, _status_line(response), now)
        else:
            self._registration_failed(_Registration.FAILED, f"REGISTER answered {_status_line(response)}", now)

    def _on_challenge(self, response: Response, expires: int, now: float) -> None:
        """§22.2: answer with credentials — unless ours, computed for the carrier's own fresh
        challenge, were just refused (the password is wrong), or it keeps challenging."""
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge, problem = self._pick_challenge(response.headers.fields(header))
        refused = self._challenge_fresh and challenge is not None and not challenge.stale
        if challenge is None or refused or self._challenges_answered >= MAX_CHALLENGES:
            if self.closing:
                return
            why = problem or (f"{_status_line(response)}: the carrier refused username {self.trunk.username!r}"
                              if refused else f"{_status_line(response)} after {MAX_CHALLENGES} answers")
            self._registration_failed(_Registration.AUTH_FAILED, why, now)
            return
        self._challenge, self._nonce_count = challenge, 0
        self._answer_header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self._challenges_answered += 1
        self._challenge_fresh = True
        self._send_register(now, expires=expires, answering=True)

    def _pick_challenge(self, values: list[str]) -> tuple[Challenge | None, str]:
        """The first Digest challenge we can answer (RFC 8760 §2.4: preferred first)."""
        problem = "the carrier's challenge is missing"
        for value in values:
            try:
                challenge = parse_challenge(value)
                build_authorization(challenge, username=self.trunk.username, password=self.trunk.password,
                                    method="REGISTER", uri=self.registrar_uri, cnonce="probe")
            except ValueError as exc:  # DigestError: malformed, or an algorithm/qop we lack
                problem = _printable(f"cannot answer the carrier's challenge: {exc}")
                continue
            return challenge, ""
        return None, problem

    def _on_interval_too_brief(self, response: Response, now: float) -> None:
        """§10.2.8: 423 names the shortest expiry the carrier accepts; ask for that, once."""
        text = (response.headers.get("Min-Expires") or "").strip()
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_MIN_EXPIRES:
            self._registration_failed(_Registration.FAILED, f"REGISTER answered {_status_line(response)} "
                                      f"with an unusable Min-Expires {_printable(text)!r}", now)
            return
        self._expires = int(text)
        self._brief_retried = True
        self._send_register(now, expires=self._expires, answering=True)

    def _on_registered(self, response: Response, expires: int, now: float) -> None:
        granted = self._granted_expiry(response, expires)
        if granted <= 0:
            self._registration_failed(_Registration.FAILED, "the carrier accepted the REGISTER but kept "
                                      "no binding for our Contact", now)
            return
        self._registration, self._failures = _Registration.REGISTERED, 0
        self._reg_detail = f"registered for {granted} s"
        self._registered_until = now + granted
        self._next_register = now + max(granted * REFRESH_FRACTION, MIN_REFRESH_DELAY)

    def _granted_expiry(self, response: Response, requested: int) -> int:
        """§10.2.4: the ``expires`` of our Contact in the 200, else its Expires header, else
        what we asked for."""
        try:
            contacts = response.contacts
        except ParseError:
            contacts = []  # a Contact we cannot read: the Expires header decides
        for contact in contacts:
            if self._contact_uri is not None and _same_contact(contact.uri, self._contact_uri):
                value = (contact.params.get("expires") or "").strip()
                if value.isascii() and value.isdigit():
                    return int(value)
                break
        try:
            header = response.expires
        except ParseError:
            header = None
        return requested if header is None else header

    def _registration_failed(self, outcome: _Registration, detail: str, now: float) -> None:
        """Not registered (any more): retry after the back-off."""
        self._registration, self._reg_detail = outcome, detail
        self._registered_until = None
        self._challenge_fresh = False
        self._failures += 1
        self._next_register = now + retry_delay(self._failures)

    # -- status --------------------------------------------------------------------------

    def _derive(self) -> tuple[TrunkState, str]:
        if self._reachable is False:
            return TrunkState.DOWN, self._reach_detail
        registration = self._registration
        if registration is _Registration.OFF:
            if self._reachable:
                return TrunkState.UP, "answers OPTIONS"
            return TrunkState.UNKNOWN, "waiting for the first answer to OPTIONS"
        if registration is _Registration.REGISTERED:
            return TrunkState.UP, self._reg_detail
        if registration is _Registration.AUTH_FAILED:
            return TrunkState.AUTH_FAILED, self._reg_detail
        if registration is _Registration.FAILED:
            return TrunkState.DOWN, self._reg_detail
        return TrunkState.REGISTERING, f"registering at {self.registrar_uri}"

    def _update(self, now: float) -> None:
        if self.closing:
            return
        state, detail = self._derive()
        old = self.status
        if old is not None and (old.state, old.detail) == (state, detail):
            return
        self.status = LinkStatus(state, detail, now)
        self._changes.append(StatusChanged(old, self.status))


def _same_contact(a: Uri, b: Uri) -> bool:
    """Registrars echo our Contact, perhaps re-spelled (case, default port, parameters)."""
    return ((a.user, a.host.lower().strip("[]"), a.port or DEFAULT_SIP_PORT)
            == (b.user, b.host.lower().strip("[]"), b.port or DEFAULT_SIP_PORT))


# ======================================================================================
# The asyncio shell
# ======================================================================================


class TrunkCore(Protocol):
    """What the manager uses of ``softswitch.server.SipCore``."""

    @property
    def store(self) -> Any: ...  # all_trunks(), config_version(), account_by_id()
    @property
    def writer(self) -> Any: ...  # set_trunk_status() on the writer thread's connection
    def send_request(self, request: Request, peer: Peer, owner: Any) -> ClientTransaction: ...
    def local_contact(self, peer: Peer) -> str: ...
    def write_behind(self, fn: Any, *args: Any) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...
    def now(self) -> float: ...


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_name(host: str, port: int) -> list[str]:
    """The IP addresses of host name ``host``, in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class _Worker:
    """One trunk in the daemon: its link, where the carrier is, the owner of its
    transactions (``SipCore.dispatch`` calls ``on_transaction_event``)."""

    def __init__(self, manager: TrunkManager, trunk: Trunk, label: str, addresses: list[str],
                 link: TrunkLink | None, status: LinkStatus) -> None:
        self.manager = manager
        self.trunk = trunk
        self.label = label  # "acme/carrier"
        self.addresses = addresses
        self.ips = {ip for ip in map(_ip, addresses) if ip is not None}
        self.link = link
        self.status = status
        self.timer: asyncio.TimerHandle | None = None
        self.retired = False

    def __repr__(self) -> str:
        return f"<trunk {self.label} {self.status.state.value}>"

    @property
    def peer(self) -> Peer | None:
        return (self.trunk.transport, self.addresses[0], self.trunk.port) if self.addresses else None

    def on_transaction_event(self, event: object) -> None:
        link = self.link
        if link is None:
            return
        if isinstance(event, ResponseReceived):
            response = event.response
            self.manager.drive(self, lambda now: link.response_received(event.transaction.request, response, now))
        elif isinstance(event, TransactionTimedOut):
            self.manager.drive(self, lambda now: link.request_timed_out(event.transaction.request, now))


class TrunkManager:
    """Registers and monitors every trunk of every account; see the module docstring.

    ``keepalive`` defaults to ``SOFTSWITCH_TRUNK_KEEPALIVE`` or 30 s; ``resolve`` (for host
    names; IP literals need none) and ``wall`` (the clock of ``trunk_status.updated_at``)
    are replaceable for tests.
    """

    def __init__(self, core: TrunkCore, *, keepalive: float | None = None,
                 poll_interval: float = CONFIG_POLL_INTERVAL, resolve: Resolver = resolve_name,
                 wall: Callable[[], float] = time.time, unregister_wait: float = UNREGISTER_WAIT) -> None:
        self.core = core
        self.keepalive = keepalive if keepalive is not None else keepalive_from_env()
        self._poll_interval = poll_interval
        self._unregister_wait = unregister_wait
        self._resolve = resolve
        self._wall = wall
        self._workers: dict[int, _Worker] = {}
        self._by_ip: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, list[_Worker]] = {}
        self._by_account: dict[int, list[_Worker]] = {}
        self._retiring: set[_Worker] = set()
        self._version: int | None = None
        self._resolved_at = -math.inf
        self._refresh_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._closing = False
        self._all_done = asyncio.Event()

    def __repr__(self) -> str:
        return f"<TrunkManager {len(self._workers)} trunk(s), keep-alive {self.keepalive:g} s>"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Forget the previous run's statuses; load the trunks and follow configuration
        changes in the background (a slow resolver must not delay the daemon's start)."""
        self.core.store.clear_trunk_status()
        self._poller = self.core.spawn(self._poll())

    async def close(self) -> None:
        """Stop probing, unregister (waiting at most ``unregister_wait`` seconds for the
        answers), forget the statuses. The SIP transport must still be open."""
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        now = self.core.now()
        for worker in self._workers.values():
            if worker.link is not None:
                worker.link.close(now)
                self.pump(worker)
        if not self._unfinished():
            self._all_done.set()
        try:
            await asyncio.wait_for(self._all_done.wait(), self._unregister_wait)
        except asyncio.TimeoutError:
            log.info("trunks: %d unregistration(s) unanswered at shutdown", len(self._unfinished()))
        for worker in [*self._workers.values(), *self._retiring]:
            if worker.timer is not None:
                worker.timer.cancel()
        self.core.store.clear_trunk_status()  # nobody monitors them any more

    def _unfinished(self) -> list[_Worker]:
        return [w for w in [*self._workers.values(), *self._retiring] if w.link is not None and not w.link.done]

    async def _poll(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the monitor must outlive a bad row or a resolver hiccup
                log.exception("trunks: reloading the configuration failed")
            await asyncio.sleep(self._poll_interval)

    # -- configuration --------------------------------------------------------------------

    async def refresh(self) -> None:
        """Reload when the configuration changed, or host names are due to be resolved
        again (every RESOLVE_INTERVAL; every keep-alive interval while one fails)."""
        async with self._refresh_lock:
            now = self.core.now()
            unresolved = any(not w.addresses for w in self._workers.values())
            due = now - self._resolved_at >= (self.keepalive if unresolved else RESOLVE_INTERVAL)
            version = self.core.store.config_version()
            if version == self._version and not due:
                return
            trunks = self.core.store.all_trunks()
            resolved = await asyncio.gather(*(self._addresses(t) for t in trunks))
            if self._closing:
                return
            self._version, self._resolved_at = version, now
            self._apply(trunks, resolved)

    async def _addresses(self, trunk: Trunk) -> list[str] | str:
        """The trunk's addresses, or why there are none."""
        literal = _ip(trunk.host)
        if literal is not None:
            return [str(literal)]
        try:
            found = await asyncio.wait_for(self._resolve(trunk.host, trunk.port), RESOLVE_TIMEOUT)
        except asyncio.TimeoutError:
            return f"cannot resolve {trunk.host}: no answer within {RESOLVE_TIMEOUT:g} s"
        except (OSError, UnicodeError) as exc:
            return _printable(f"cannot resolve {trunk.host}: {exc}")
        return found or f"{trunk.host} has no address"

    def _apply(self, trunks: list[Trunk], resolved: list[list[str] | str]) -> None:
        accounts: dict[int, str] = {}
        seen: set[int] = set()
        for trunk, addresses in zip(trunks, resolved):
            seen.add(trunk.id)
            if trunk.account_id not in accounts:
                account = self.core.store.account_by_id(trunk.account_id)
                accounts[trunk.account_id] = account.name if account else str(trunk.account_id)
            label = f"{accounts[trunk.account_id]}/{trunk.name}"
            old = self._workers.get(trunk.id)
            found = addresses if isinstance(addresses, list) else []
            if old is not None and _same_connection(old.trunk, trunk) and old.addresses == found:
                old.trunk, old.label = trunk, label  # priority or name: nothing to redo
                continue
            if old is not None:
                self._retire(old, successor=trunk)
            self._workers[trunk.id] = self._new_worker(trunk, label, addresses)
        for trunk_id in [i for i in self._workers if i not in seen]:
            self._retire(self._workers.pop(trunk_id), successor=None)
        self._by_ip, self._by_account = {}, {}  # the lookups of every INVITE
        for worker in self._workers.values():
            self._by_account.setdefault(worker.trunk.account_id, []).append(worker)
            for ip in worker.ips:
                self._by_ip.setdefault(ip, []).append(worker)

    def _new_worker(self, trunk: Trunk, label: str, addresses: list[str] | str) -> _Worker:
        now = self.core.now()
        if isinstance(addresses, str):
            worker = _Worker(self, trunk, label, [], None, LinkStatus(TrunkState.DOWN, addresses, now))
            self._report(worker, StatusChanged(None, worker.status))
            return worker
        peer: Peer = (trunk.transport, addresses[0], trunk.port)
        link = TrunkLink(trunk, self.core.local_contact(peer), keepalive=self.keepalive)
        worker = _Worker(self, trunk, label, addresses, link, LinkStatus(TrunkState.UNKNOWN, "", now))
        link.start(now)
        self.pump(worker)
        return worker

    def _retire(self, worker: _Worker, *, successor: Trunk | None) -> None:
        """Stop a removed or re-configured trunk. Its registration is withdrawn unless the
        successor registers the same address-of-record (its REGISTER replaces the binding,
        and an Expires: 0 racing it could remove the new one)."""
        worker.retired = True
        if worker.timer is not None:
            worker.timer.cancel()
        link = worker.link
        if link is None:
            return
        old = worker.trunk
        same_aor = successor is not None and successor.register and (
            successor.host, successor.port, successor.username) == (old.host, old.port, old.username)
        if same_aor:
            link.abandon()
            return
        link.close(self.core.now())
        self.pump(worker)
        if not link.done:
            self._retiring.add(worker)
            asyncio.get_running_loop().call_later(self._unregister_wait, self._retiring.discard, worker)

    # -- driving the links ------------------------------------------------------------------

    def pump(self, worker: _Worker) -> None:
        """Send what the link asks for, report its changes, re-arm its timer."""
        link, peer = worker.link, worker.peer
        if link is None or peer is None:
            return
        try:
            for request in link.requests_to_send():
                self.core.send_request(request, peer, worker)
            for change in link.status_changes():
                self._report(worker, change)
        except Exception:  # a bug here must not stop the other trunks or the SIP stack
            log.exception("trunk %s: sending failed", worker.label)
        if link.done:
            self._retiring.discard(worker)
            if self._closing and not self._unfinished():
                self._all_done.set()
            return
        self._arm(worker, link)

    def _arm(self, worker: _Worker, link: TrunkLink) -> None:
        deadline = link.next_deadline()
        if worker.timer is not None:
            if deadline is not None and worker.timer.when() == deadline:
                return
            worker.timer.cancel()
            worker.timer = None
        if deadline is not None and not worker.retired:
            worker.timer = asyncio.get_running_loop().call_at(deadline, self._on_timer, worker)

    def _on_timer(self, worker: _Worker) -> None:
        worker.timer = None
        if worker.link is not None:
            self.drive(worker, worker.link.handle_timer)

    def drive(self, worker: _Worker, step: Callable[[float], None]) -> None:
        """Feed the link one input (at ``now``), then pump; a bug is logged, never raised
        into the SIP stack's dispatch or the event loop."""
        try:
            step(self.core.now())
        except Exception:
            log.exception("trunk %s: handling an event failed", worker.label)
        self.pump(worker)

    def _report(self, worker: _Worker, change: StatusChanged) -> None:
        """Log the change and write it to ``trunk_status`` (unless the worker was replaced)."""
        if worker.retired or self._closing:
            return
        worker.status = new = change.new
        level = logging.WARNING if new.state in (TrunkState.DOWN, TrunkState.AUTH_FAILED) else logging.INFO
        if change.old is None:
            log.log(level, "trunk %s: %s (%s)", worker.label, new.state.value, new.detail)
        else:
            log.log(level, "trunk %s: %s -> %s (%s)", worker.label, change.old.state.value, new.state.value,
                    new.detail)
        self.core.write_behind(self.core.writer.set_trunk_status, worker.trunk.id, new.state.value, new.detail,
                               self._wall())

    # -- for call routing -------------------------------------------------------------------

    def status_of(self, trunk: Trunk) -> LinkStatus | None:
        worker = self._workers.get(trunk.id)
        return worker.status if worker else None

    def peer_of(self, trunk: Trunk) -> Peer | None:
        """Where requests to the trunk go: (transport, first resolved address, port);
        None while its host does not resolve (such a trunk is down, never a candidate)."""
        worker = self._workers.get(trunk.id)
        return worker.peer if worker else None

    @staticmethod
    def credentials(trunk: Trunk) -> tuple[str, str] | None:
        """(username, password) for answering the carrier's 401/407, or None."""
        return (trunk.username, trunk.password) if trunk.username else None

    def match_inbound(self, peer: Peer, account_id: int | None = None) -> Trunk | None:
        """The trunk a request from ``peer`` came from: one whose host resolves to the
        source IP, of ``account_id`` when given (the owner of the called DID — needed when
        several accounts use the same carrier); a trunk with the source port first, then
        by priority. None: not from any trunk."""
        ip = _ip(peer[1])
        if ip is None:
            return None
        matches = [w.trunk for w in self._by_ip.get(ip, ())
                   if account_id is None or w.trunk.account_id == account_id]
        if not matches:
            return None
        return min(matches, key=lambda t: (t.port != peer[2], t.priority, t.name, t.account_id))

    def candidates(self, account_id: int, *, include_down: bool = False) -> list[Trunk]:
        """The account's trunks to try for an outbound call, in order: up ones, then those
        not known yet (unknown, registering), each by priority then name. Down and
        auth-failed trunks are left out — a call fails over past them at once and gets
        503 when none is left (``status_of`` says why, for the log) — unless
        ``include_down`` (an emergency call tries everything): then they come last."""
        rank = {TrunkState.UP: 0, TrunkState.UNKNOWN: 1, TrunkState.REGISTERING: 1}
        if include_down:
            rank |= {TrunkState.DOWN: 2, TrunkState.AUTH_FAILED: 2}
        workers = [w for w in self._by_account.get(account_id, ()) if w.status.state in rank and w.peer is not None]
        workers.sort(key=lambda w: (rank[w.status.state], w.trunk.priority, w.trunk.name.lower()))
        return [w.trunk for w in workers]


def _same_connection(old: Trunk, new: Trunk) -> bool:
    """Whether a change leaves registration and keep-alive as they are (priority, name)."""
    return ((old.host, old.port, old.transport, old.username, old.password, old.register)
            == (new.host, new.port, new.transport, new.username, new.password, new.register))
