"""Run the real softswitch daemon, its CLI and SIPp as subprocesses for integration tests.

- :class:`Daemon` starts ``python -m softswitch --db DB serve ...`` on 127.0.0.1, waits
  until the SIP port answers an OPTIONS request (RFC 3261 section 11: any response
  proves a SIP stack is listening) and stops it with SIGTERM, escalating to SIGKILL of
  that one pid only after a bounded wait.
- :func:`cli` runs ``python -m softswitch --db DB ...`` (the administration CLI).
- :func:`provision_acme` creates the standard test tenant through the CLI.
- :class:`Sipp` runs one bounded SIPp 3.6 scenario from ``tests/integration/sipp``.
- :func:`free_udp_port` and :func:`allocate_rtp_range` hand out loopback ports.

Everything binds to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
#: Bounded wait for the daemon to answer OPTIONS after start, in seconds.
DAEMON_START_TIMEOUT_S = 15.0
#: Bounded wait for the daemon to exit after SIGTERM before SIGKILL, in seconds.
DAEMON_STOP_TIMEOUT_S = 10.0
#: Interval between OPTIONS probes while the daemon starts, in seconds.
PROBE_INTERVAL_S = 0.2
#: Bound on one CLI invocation, in seconds.
CLI_TIMEOUT_S = 60.0
#: Daemon RTP ranges are carved from [RTP_POOL_LO, RTP_POOL_HI); phones use ports above
#: (see phones.PHONE_RTP_BASE).
RTP_POOL_LO = 20000
RTP_POOL_HI = 50000
#: Ports per daemon RTP range by default (two per endpoint: RTP and RTCP).
RTP_RANGE_SIZE = 200
#: Text in a log that betrays an uncaught Python exception.
TRACEBACK_MARKER = "Traceback (most recent call last)"
#: Extra seconds the outer `timeout` grants SIPp beyond its own -timeout.
SIPP_OUTER_GRACE_S = 10
#: -key values every run gets unless overridden: SIPp refuses a scenario that uses an
#: undefined keyword ([rtp] in uac_call.xml, [expires] in register_auth.xml).
SIPP_DEFAULT_KEYS = {"rtp": "no", "expires": "300"}


# --------------------------------------------------------------------------- ports


def free_udp_port(host: str = HOST) -> int:
    """An ephemeral UDP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_port_pair(host: str = HOST) -> int:
    """An even UDP port ``p`` with ``p`` and ``p + 1`` free (an RTP/RTCP pair)."""
    for _ in range(100):
        port = free_udp_port(host) & ~1
        if _udp_ports_free(host, range(port, port + 2)):
            return port
    raise RuntimeError("no free even UDP port pair on loopback")


def _udp_ports_free(host: str, ports: Sequence[int] | range) -> bool:
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(s)
            s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for s in sockets:
            s.close()


_handed_out: set[int] = set()


def allocate_rtp_range(size: int = RTP_RANGE_SIZE, host: str = HOST) -> tuple[int, int]:
    """A fresh (lo, hi) port range, even ``lo``, all ports bindable now, never handed out twice
    in this process.  The starting block depends on the pid so that parallel test
    processes tend to use different blocks."""
    blocks = (RTP_POOL_HI - RTP_POOL_LO) // size
    first = os.getpid() % blocks
    for i in range(blocks):
        block = (first + i) % blocks
        if block in _handed_out:
            continue
        lo = RTP_POOL_LO + block * size
        if _udp_ports_free(host, range(lo, lo + size)):
            _handed_out.add(block)
            return lo, lo + size - 1
    raise RuntimeError(f"no free RTP range of {size} ports in [{RTP_POOL_LO}, {RTP_POOL_HI})")


# --------------------------------------------------------------------------- CLI


def softswitch_command(db: Path | str, *args: str) -> list[str]:
    return [sys.executable, "-m", "softswitch", "--db", str(db), *map(str, args)]


def cli(db: Path | str, *args: Any, check: bool = True, timeout: float = CLI_TIMEOUT_S,
        cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``softswitch --db DB ARGS``; raises CalledProcessError (with output) if ``check``."""
    cmd = softswitch_command(db, *map(str, args))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            cwd=str(cwd) if cwd else str(Path(db).resolve().parent), check=False)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, cmd, output=result.stdout,
            stderr=f"{result.stderr}\n(command: {' '.join(cmd[1:])})")
    return result


# --------------------------------------------------------------------------- provisioning


@dataclasses.dataclass(frozen=True)
class SwitchUser:
    """A user extension logged in on its own channel (one device's SIP credentials)."""

    ext: str
    name: str
    pin: str
    channel: str
    password: str


@dataclasses.dataclass(frozen=True)
class Tenant:
    account: str
    domain: str
    digits: int
    users: tuple[SwitchUser, ...]

    def user(self, ext: str) -> SwitchUser:
        for u in self.users:
            if u.ext == ext:
                return u
        raise KeyError(ext)


ACME = Tenant(
    account="acme",
    domain="acme.test",
    digits=3,
    users=(
        SwitchUser("201", "Alice", "4711", "acme-201", "secret-201"),
        SwitchUser("202", "Bob", "4712", "acme-202", "secret-202"),
        SwitchUser("203", "Carol", "4713", "acme-203", "secret-203"),
    ),
)


def provision(db: Path | str, tenant: Tenant = ACME) -> Tenant:
    """Create ``tenant`` (account, one channel per user, users logged in on them) via the CLI."""
    cli(db, "account", "add", tenant.account, "--domain", tenant.domain, "--digits", str(tenant.digits))
    for u in tenant.users:
        cli(db, "channel", "add", tenant.account, u.channel, "--password", u.password)
        cli(db, "user", "add", tenant.account, u.ext, "--name", u.name, "--pin", u.pin,
            "--channel", u.channel)
    return tenant


def provision_acme(db: Path | str) -> Tenant:
    return provision(db, ACME)


# --------------------------------------------------------------------------- daemon


def _options_probe(host: str, port: int, local_port: int) -> bytes:
    tag = secrets.token_hex(4)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK-probe-{secrets.token_hex(6)};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:probe@{host}:{local_port}>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: probe-{secrets.token_hex(8)}@{host}\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Accept: application/sdp\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def sip_ping(host: str, port: int, timeout: float = PROBE_INTERVAL_S) -> bytes | None:
    """Send one OPTIONS over UDP; return the first SIP response's bytes, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.connect((host, port))
        s.settimeout(timeout)
        try:
            s.send(_options_probe(host, port, s.getsockname()[1]))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = s.recv(65535)
                if data.startswith(b"SIP/2.0 "):
                    return data
        except (TimeoutError, ConnectionRefusedError):
            return None
    return None


class DaemonError(RuntimeError):
    """The daemon did not start, or died."""


class Daemon:
    """The real softswitch daemon as a subprocess on 127.0.0.1."""

    def __init__(self, db_path: Path | str, sip_port: int | None = None,
                 rtp_ports: tuple[int, int] | None = None, extra_args: Sequence[str] = (),
                 log_path: Path | str | None = None, tenant: Tenant | None = None) -> None:
        self.db_path = Path(db_path)
        self.host = HOST
        self.sip_port = sip_port if sip_port is not None else free_udp_port()
        self.rtp_ports = rtp_ports if rtp_ports is not None else allocate_rtp_range()
        self.extra_args = tuple(extra_args)
        self.log_path = Path(log_path) if log_path else self.db_path.with_name(f"daemon-{self.sip_port}.log")
        self.tenant = tenant
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.stopped = False  # set by stop(): the test meant the daemon to exit

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<Daemon {self.host}:{self.sip_port} rtp={self.rtp_ports} pid={pid} rc={self.returncode}>"

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def command(self) -> list[str]:
        lo, hi = self.rtp_ports
        return softswitch_command(
            self.db_path, "serve", "--host", self.host, "--sip-port", str(self.sip_port),
            "--rtp-ports", f"{lo}-{hi}", "--log-level", "DEBUG", *self.extra_args)

    def start(self, timeout: float = DAEMON_START_TIMEOUT_S) -> None:
        """Start (or restart, after stop()) the daemon and wait until it answers OPTIONS."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.stopped = False
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=str(self.db_path.resolve().parent), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.returncode = self.process.returncode
                raise DaemonError(f"daemon exited with {self.returncode} during start-up:\n{self.log_tail()}")
            if sip_ping(self.host, self.sip_port) is not None:
                logger.info("daemon up: %r", self)
                return
            time.sleep(PROBE_INTERVAL_S / 2)
        self.stop()
        raise DaemonError(f"daemon did not answer OPTIONS on {self.host}:{self.sip_port} "
                          f"within {timeout:g} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = DAEMON_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, bounded wait, then SIGKILL of this pid only; returns the exit code."""
        proc = self.process
        if proc is None:
            return self.returncode
        self.stopped = True  # an intended stop, not a crash
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.error("daemon pid %s ignored SIGTERM for %s s; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait(timeout)
        self.returncode = proc.returncode
        return self.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def problems(self) -> list[str]:
        """What is wrong after stop(): non-zero exit, tracebacks in the log."""
        found = []
        if self.returncode not in (0, None):
            found.append(f"daemon exited with code {self.returncode}")
        if TRACEBACK_MARKER in self.log_text():
            found.append("daemon logged a Python traceback")
        return found

    # -- conveniences for tests

    def cli(self, *args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cli(self.db_path, *args, check=check)

    def user(self, ext: str) -> SwitchUser:
        if self.tenant is None:
            raise RuntimeError("this daemon was started without a provisioned tenant")
        return self.tenant.user(ext)

    def register(self, phone: Any, ext: str, timeout: float = 5.0, outbound_proxy: bool = False) -> int:
        """Register ``phone`` (a phones.Phone or RemotePhone) with the channel of user ``ext``."""
        assert self.tenant is not None
        u = self.user(ext)
        return int(phone.register(self.host, self.sip_port, self.tenant.domain, u.channel, u.password,
                                  timeout=timeout, outbound_proxy=outbound_proxy))


# --------------------------------------------------------------------------- SIPp


class Sipp:
    """One bounded SIPp run of a scenario in tests/integration/sipp (or a given path).

    ``remote`` is ``host:port`` for a UAC scenario, None for a UAS.  Keyword values are
    passed with ``-key``, the service (Request-URI user part) with ``-s``, an injection
    CSV with ``-inf``.  Every run is bounded by ``-m``, ``-timeout`` (with
    ``-timeout_error``), ``-recv_timeout`` and an outer ``timeout``.
    """

    def __init__(self, scenario: str | Path, workdir: Path | str, remote: str | None = None, *,
                 calls: int = 1, timeout_s: int = 20, recv_timeout_ms: int = 10000,
                 local_port: int | None = None, media_port: int | None = None,
                 service: str | None = None, inf: Path | str | None = None,
                 keys: Mapping[str, str] | None = None, duration_ms: int | None = None,
                 auth_uri: str | None = None, extra: Sequence[str] = ()) -> None:
        path = Path(scenario)
        self.scenario = path if path.is_absolute() or path.exists() else SIPP_DIR / path
        self.workdir = Path(workdir)
        self.local_port = local_port if local_port is not None else free_udp_port()
        self.media_port = media_port if media_port is not None else free_udp_port_pair()
        self.timeout_s = timeout_s
        stem = f"sipp-{self.scenario.stem}-{self.local_port}"
        self.error_file = self.workdir / f"{stem}-errors.log"
        self.message_file = self.workdir / f"{stem}-messages.log"
        self.output_file = self.workdir / f"{stem}-output.log"
        args = ["timeout", "-k", "5", str(timeout_s + SIPP_OUTER_GRACE_S), "sipp"]
        if remote:
            args.append(remote)
        args += ["-sf", str(self.scenario), "-i", HOST, "-p", str(self.local_port),
                 "-mi", HOST, "-mp", str(self.media_port), "-m", str(calls),
                 "-timeout", f"{timeout_s}s", "-timeout_error", "-recv_timeout", str(recv_timeout_ms),
                 "-nostdin", "-buff_size", "4194304",
                 "-trace_err", "-error_file", str(self.error_file),
                 "-trace_msg", "-message_file", str(self.message_file)]
        if service is not None:
            args += ["-s", service]
        if inf is not None:
            args += ["-inf", str(inf)]
        if duration_ms is not None:
            args += ["-d", str(duration_ms)]
        if auth_uri is not None:
            args += ["-auth_uri", auth_uri]
        for key, value in {**SIPP_DEFAULT_KEYS, **(keys or {})}.items():
            args += ["-key", key, str(value)]
        args += list(extra)
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<Sipp {self.scenario.name} port={self.local_port}>"

    @property
    def uri_host(self) -> str:
        return f"{HOST}:{self.local_port}"

    def start(self) -> Sipp:
        with open(self.output_file, "wb") as out:
            self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=str(self.workdir))
        return self

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for SIPp to finish (bounded by the outer timeout) and return its exit code."""
        assert self.process is not None
        if timeout is None:
            timeout = self.timeout_s + 2 * SIPP_OUTER_GRACE_S
        return self.process.wait(timeout)

    def run(self) -> int:
        return self.start().wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def report(self) -> str:
        """Output, errors and the message trace, for assertion messages."""
        parts = []
        for path in (self.output_file, self.error_file, self.message_file):
            if path.exists():
                text = path.read_text(errors="replace")
                parts.append(f"--- {path.name}\n{text[-6000:]}")
        return "\n".join(parts)


def write_inf(path: Path | str, rows: Sequence[Sequence[str]], mode: str = "SEQUENTIAL") -> Path:
    """Write a SIPp injection CSV (fields separated by ';')."""
    path = Path(path)
    path.write_text(mode + "\n" + "".join(";".join(row) + ";\n" for row in rows))
    return path
