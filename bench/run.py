"""SIP signalling benchmarks of softswitch against Kamailio and sippy (``make bench``).

Measured side by side in one run, every server pinned to core 1 (``taskset``) and every
SIPp process on core 0, all on 127.0.0.1 inside a private network namespace
(``unshare -n``, so ports never collide with anything else on the machine):

* authenticated registrations/s: REGISTER -> 401 -> REGISTER with digest (RFC 3261 §22.4,
  MD5, qop=auth) -> 200; softswitch and Kamailio (registrar with digest auth, usrloc in
  memory). sippy has no registrar with local digest users, so it is not measured here.
* call setups/s: INVITE -> 100/180/200 -> ACK -> BYE -> 200 with no RTP; softswitch and
  Kamailio answer the first INVITE with 407 and verify Proxy-Authorization (RFC 3261 §22.3),
  Kamailio as a record-routing stateful proxy; sippy's ``b2bua_simple`` forwards every call
  to the UAS without authentication.
* call setups/s with media: the caller plays a 7 s G.711 A-law pcap, the callee echoes
  it; softswitch relays (anchors) all RTP. The peers do not anchor media without an
  rtpproxy/rtpengine, so only softswitch is measured.

Each figure is the highest step of a fixed-rate ladder (SIPp ``-r``) at which every call
succeeded with zero failed transactions and zero retransmissions, and the offered rate was
actually reached. CPU per operation comes from the server's utime+stime (/proc/PID/stat,
all its processes) during that step. A py-spy profile of softswitch under each load says
where the time goes. ``--write-docs`` replaces the "SIP signalling" section of
docs/benchmarks.md with the results (other sections are kept).

Usage: python bench/run.py [--quick] [--write-docs] [--only register,calls,media,profile]
"""
from __future__ import annotations

import abc
import argparse
import collections
import csv
import datetime
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SIPP_DIR = BENCH / "sipp"
KAMAILIO_TEMPLATE = BENCH / "kamailio" / "kamailio.cfg.in"
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_SECTION = "## SIP signalling"
PYTHON = sys.executable

SERVER_CORE = "1"
LOADGEN_CORE = "0"
HOST = "127.0.0.1"
SERVER_PORT = 5060
UAS_PORT = 5080
UAC_PORT = 5070
UAS_MEDIA_PORT = 6000
UAC_MEDIA_PORT = 7000
RTP_RANGE = "20000-59999"
DOMAIN = "bench.test"
FIRST_EXTENSION = 2000
USERS = 2000  # channels c-2000 .. c-3999, each with a user logged in (extension = number)
CALLEE = FIRST_EXTENSION  # the SIPp UAS registers as channel c-2000
PCAP = "/usr/share/sip-tester/g711a.pcap"
BUFF_SIZE = "4194304"
KAMAILIO_CHILDREN = 4

# rate ladders (operations per second); a run stops at the first step that fails twice
REGISTER_LADDER = [250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000,
                   14000, 16000, 18000, 20000, 24000]
CALL_LADDER = [25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1700,
               2000]
MEDIA_LADDER = [5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 125, 150]
STEP_SECONDS = 4.0  # each step offers rate * STEP_SECONDS operations
MEDIA_STEP_SECONDS = 10.0  # calls last ~8.3 s: long enough to reach the steady concurrency
MIN_ACHIEVED = 0.9  # a step passes only when the achieved rate is >= 90 % of the offered one
PROFILE_SECONDS = 8
SAMPLING_RATE = 250  # py-spy samples per second
CLK_TCK = os.sysconf("SC_CLK_TCK")
_STEP_NO = itertools.count(1)


# ---------------------------------------------------------------------------- processes
def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def descendants(pid: int) -> list[int]:
    """pid and all its descendants (Kamailio forks its workers)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its descendants, in seconds."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def sip_ping(port: int, timeout: float = 0.3) -> bool:
    """True when something answers an OPTIONS on 127.0.0.1:port."""
    msg = (f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:9;rport;branch=z9hG4bK{time.time_ns()}\r\n"
           f"From: <sip:ping@{DOMAIN}>;tag=p\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: {time.time_ns()}@bench\r\n"
           f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind((HOST, 0))
        try:
            s.sendto(msg, (HOST, port))
            s.recvfrom(65535)
            return True
        except OSError:
            return False


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        if sip_ping(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer OPTIONS on port {port} within {timeout} s")


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---------------------------------------------------------------------------- servers
class Server(abc.ABC):
    """A SIP server under test, pinned to SERVER_CORE."""

    name = "?"
    does_auth = True
    registers = True

    def __init__(self, work: Path):
        self.work = work
        self.proc: subprocess.Popen | None = None
        self.log_path = work / f"{self.slug}.log"

    @property
    def slug(self) -> str:
        return self.name.lower().split()[0]

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The server's command line (without the taskset prefix)."""

    def start(self) -> None:
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *self.command()], stdout=self._logf,
                                     stderr=subprocess.STDOUT, cwd=self.work, start_new_session=True,
                                     env=self.env())
        try:
            wait_for_port(SERVER_PORT, self.proc, self.name)
        except Exception:
            self.stop()
            raise

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_problems(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(r"\b(ERROR|CRITICAL|Traceback|ALERT)\b", line)]


def write_users_csv(path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["channel", "password", "extension", "name", "pin"])
        for ext in range(FIRST_EXTENSION, FIRST_EXTENSION + USERS):
            w.writerow([channel_of(ext), password_of(ext), ext, f"Bench {ext}", "4711"])


def channel_of(ext: int) -> str:
    return f"c-{ext}"


def password_of(ext: int) -> str:
    return f"pw{ext}x{(ext * 7919) % 100000:05d}"


class Softswitch(Server):
    name = "softswitch"

    def __init__(self, work: Path, profile_out: Path | None = None):
        super().__init__(work)
        self.db = work / "softswitch.db"
        if not self.db.exists():
            self._provision()

    def _provision(self) -> None:
        users = self.work / "users.csv"
        write_users_csv(users)
        cli = [PYTHON, "-m", "softswitch", "--db", str(self.db)]
        subprocess.run([*cli, "account", "add", "bench", "--domain", DOMAIN, "--digits", "4"], check=True,
                       stdout=subprocess.DEVNULL, cwd=ROOT)
        subprocess.run([*cli, "import", "bench", str(users)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)

    def command(self) -> list[str]:
        # SIPp 3.6.1 answers only the first challenge and knows only MD5 (MD5 is also what
        # Kamailio offers): same algorithm for both servers.
        return [PYTHON, "-m", "softswitch", "--db", str(self.db), "serve", "--host", HOST,
                "--sip-port", str(SERVER_PORT), "--rtp-ports", RTP_RANGE, "--log-level", "WARNING",
                "--digest-algorithms", "MD5"]


class Kamailio(Server):
    name = "Kamailio"

    def __init__(self, work: Path):
        super().__init__(work)
        self.cfg = work / "kamailio.cfg"
        dbdir = work / "kamailio-db"
        dbdir.mkdir(exist_ok=True)
        (dbdir / "version").write_text("id(int,auto) table_name(string) table_version(int) \n0:htable:2\n")
        rows = [f"{i}:{channel_of(ext)}:0:0:{password_of(ext)}:0"
                for i, ext in enumerate(range(FIRST_EXTENSION, FIRST_EXTENSION + USERS), 1)]
        (dbdir / "htable").write_text(
            "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) \n"
            + "\n".join(rows) + "\n")
        cfg = (KAMAILIO_TEMPLATE.read_text().replace("@PORT@", str(SERVER_PORT))
               .replace("@DBURL@", f"text://{dbdir}").replace("@CHILDREN@", str(KAMAILIO_CHILDREN)))
        self.cfg.write_text(cfg)

    def command(self) -> list[str]:
        return ["kamailio", "-DD", "-E", "-f", str(self.cfg), "-m", "256", "-M", "16", "-Y", str(self.work),
                "-P", str(self.work / "kamailio.pid")]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            pids = descendants(self.proc.pid)
            stop_process(self.proc)
            for p in pids:  # workers normally leave with their parent; make sure
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None

    def log_problems(self) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if re.search(r"\b(ERROR|CRITICAL|ALERT)\b", line)]


class Sippy(Server):
    name = "sippy"
    does_auth = False
    registers = False

    def env(self) -> dict[str, str]:
        # sippy logs every SIP message at INFO; the peers and softswitch run at WARNING
        return dict(os.environ, SIPLOG_LVL="ERR", SIPLOG_BEND="stderr")

    def command(self) -> list[str]:
        exe = shutil.which("b2bua_simple", path=str(Path(PYTHON).parent)) or shutil.which("b2bua_simple")
        if exe is None:
            raise RuntimeError("b2bua_simple not found (pip install sippy)")
        return [PYTHON, exe, "-f", "-l", HOST, "-p", str(SERVER_PORT), "-n", f"{HOST}:{UAS_PORT}",
                "-L", str(self.work / "sippy-sip.log")]


# ---------------------------------------------------------------------------- SIPp
@dataclass
class SippResult:
    ok: int = 0
    failed: int = 0
    retrans: int = 0
    unexpected: int = 0
    dead: int = 0
    elapsed: float = 0.0
    exit_code: int = 0
    errors: list[str] = field(default_factory=list)


def write_inf(path: Path, exts: list[int]) -> Path:
    path.write_text("SEQUENTIAL\n" + "".join(f"{channel_of(e)};{password_of(e)};\n" for e in exts))
    return path


def read_stat(stat: Path) -> dict[str, str]:
    try:
        lines = [ln for ln in stat.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    return dict(zip(header, lines[-1].split(";")))


def sipp_command(scenario: str, work: Path, tag: str, *, local_port: int, rate: float | None = None,
                 count: int | None = None, inf: Path | None = None, service: str | None = None,
                 media_port: int | None = None, timeout_s: float = 60, extra: list[str] = ()) -> list[str]:
    cmd = ["taskset", "-c", LOADGEN_CORE, "sipp", "-sf", str(SIPP_DIR / scenario), "-i", HOST,
           "-p", str(local_port), "-buff_size", BUFF_SIZE, "-nostdin", "-trace_stat", "-fd", "1",
           "-stf", str(work / f"{tag}.stat"), "-trace_err", "-error_file", str(work / f"{tag}.err"),
           "-timeout", f"{int(timeout_s)}s", "-recv_timeout", "20000", "-max_recv_loops", "5000",
           "-max_sched_loops", "5000"]
    if rate is not None:
        cmd += ["-r", str(int(rate)), "-rp", "1000", "-l", str(min(15000, max(2000, int(rate * 15))))]
    if count is not None:
        cmd += ["-m", str(count)]
    if inf is not None:
        cmd += ["-inf", str(inf), "-auth_uri", f"sip:{DOMAIN}"]
    if service is not None:
        cmd += ["-s", service]
    if media_port is not None:
        cmd += ["-mi", HOST, "-mp", str(media_port)]
    return [*cmd, *extra]


def run_sipp(cmd: list[str], work: Path, tag: str, target: str, timeout_s: float) -> SippResult:
    for suffix in (".stat", ".err"):
        (work / f"{tag}{suffix}").unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(["timeout", "-k", "5", str(int(timeout_s + 10)), *cmd, target],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work, timeout=timeout_s + 30)
        code = proc.returncode
        stderr = proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        code, stderr = -1, "outer timeout"
    elapsed = time.monotonic() - t0
    return parse_sipp(work, tag, code, elapsed, stderr)


def parse_sipp(work: Path, tag: str, code: int, elapsed: float, stderr: str = "") -> SippResult:
    st = read_stat(work / f"{tag}.stat")
    num = lambda k: int(float(st.get(k, "0") or 0))  # noqa: E731
    res = SippResult(ok=num("SuccessfulCall(C)"), failed=num("FailedCall(C)"), retrans=num("Retransmissions(C)"),
                     unexpected=num("FailedUnexpectedMessage(C)"), dead=num("DeadCallMsgs(C)"), elapsed=elapsed,
                     exit_code=code)
    err = work / f"{tag}.err"
    if err.exists():
        lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()]
        res.errors = lines[:12]
    if stderr.strip() and code not in (0, 1):
        res.errors.append(stderr.strip()[:300])
    return res


class Uas:
    """A SIPp UAS (the callee, extension 2000), kept running through one call benchmark."""

    def __init__(self, work: Path, tag: str, *, echo: bool):
        self.work, self.tag = work, tag
        extra = ["-rtp_echo"] if echo else []
        self.cmd = sipp_command("uas.xml", work, tag, local_port=UAS_PORT, media_port=UAS_MEDIA_PORT,
                                timeout_s=3600, extra=extra)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        for suffix in (".stat", ".err"):
            (self.work / f"{self.tag}{suffix}").unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.work,
                                     start_new_session=True)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"SIPp UAS exited at start ({self.proc.returncode}): {' '.join(self.cmd)}")

    def result(self) -> SippResult:
        return parse_sipp(self.work, self.tag, 0, 0.0)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: dump stats and quit
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def register_uas(work: Path) -> None:
    """Register channel c-2000 from the UAS's own port, so the binding's source is the UAS."""
    inf = write_inf(work / "uas-reg.csv", [CALLEE])
    cmd = sipp_command("register_auth.xml", work, "uas-register", local_port=UAS_PORT, rate=1, count=1, inf=inf,
                       timeout_s=10)
    res = run_sipp(cmd, work, "uas-register", f"{HOST}:{SERVER_PORT}", 10)
    if res.ok != 1:
        raise RuntimeError(f"the UAS could not register as {channel_of(CALLEE)}: {res}")


# ---------------------------------------------------------------------------- steps and ladders
@dataclass
class Step:
    rate: float
    offered: int
    ok: int
    failed: int
    retrans: int
    elapsed: float
    achieved: float
    server_cpu: float  # seconds
    loadgen_pct: float  # SIPp UAC CPU, % of one core
    cpu_pct: float  # % of one core during the step
    cpu_us_per_op: float
    loadgen_note: str
    passed: bool
    errors: list[str]
    uas_failed: int = 0
    uas_retrans: int = 0


@dataclass
class Ladder:
    server: str
    benchmark: str
    steps: list[Step] = field(default_factory=list)
    note: str = ""

    @property
    def best(self) -> Step | None:
        good = [s for s in self.steps if s.passed]
        return max(good, key=lambda s: s.achieved) if good else None

    @property
    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if not s.passed), None)


def run_step(server: Server, scenario: str, work: Path, rate: float, seconds: float, *, inf: Path | None,
             service: str | None = None, media_port: int | None = None, uas: Uas | None = None,
             duration_s: float = 0.0) -> Step:
    count = max(1, int(rate * seconds))
    tag = f"{server.slug}-{Path(scenario).stem}-{int(rate)}-{next(_STEP_NO)}"
    timeout_s = seconds * 3 + duration_s + 20
    cmd = sipp_command(scenario, work, tag, local_port=UAC_PORT, rate=rate, count=count, inf=inf, service=service,
                       media_port=media_port, timeout_s=timeout_s)
    uas_before = uas.result() if uas else None
    cpu0 = cpu_seconds(server.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_sipp(cmd, work, tag, f"{HOST}:{SERVER_PORT}", timeout_s)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    loadgen_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    if uas is not None:
        time.sleep(1.2)  # let the UAS stat file catch up (written every second)
    cpu = cpu_seconds(server.pid) - cpu0 if server.alive() else float("nan")
    busy = max(res.elapsed - duration_s, 1e-3)
    achieved = res.ok / busy
    uas_failed = uas_retrans = 0
    if uas is not None and uas_before is not None:
        after = uas.result()
        uas_failed = after.failed - uas_before.failed
        uas_retrans = after.retrans - uas_before.retrans
    passed = (res.ok == count and res.failed == 0 and res.retrans == 0 and uas_failed == 0 and uas_retrans == 0
              and achieved >= MIN_ACHIEVED * rate and server.alive())
    errors = list(res.errors)
    if not server.alive():
        errors.append(f"{server.name} died (exit {server.proc.returncode if server.proc else '?'})")
    step = Step(rate=rate, offered=count, ok=res.ok, failed=res.failed, retrans=res.retrans, elapsed=res.elapsed,
                achieved=achieved, server_cpu=cpu, loadgen_pct=100 * loadgen_cpu / max(res.elapsed, 1e-3), cpu_pct=100 * cpu / max(res.elapsed, 1e-3),
                cpu_us_per_op=1e6 * cpu / max(res.ok, 1), loadgen_note="", passed=passed, errors=errors,
                uas_failed=uas_failed, uas_retrans=uas_retrans)
    log(f"  {server.name:10s} {Path(scenario).stem:22s} r={rate:>6g}/s  ok={res.ok}/{count} failed={res.failed} "
        f"retrans={res.retrans} uas_failed={uas_failed} uas_retrans={uas_retrans} achieved={achieved:.0f}/s "
        f"cpu={step.cpu_pct:.0f}% {step.cpu_us_per_op:.0f}us/op sipp={step.loadgen_pct:.0f}% {'PASS' if passed else 'FAIL'}")
    return step


def climb(ladder: Ladder, rates: list[float], attempt, retries: int = 1) -> Ladder:
    """Run the steps in order; stop at a step that fails retries+1 times."""
    for rate in rates:
        for attempt_no in range(retries + 1):
            step = attempt(rate)
            ladder.steps.append(step)
            if step.passed:
                break
        else:
            return ladder
    return ladder


# ---------------------------------------------------------------------------- benchmarks
def bench_register(server: Server, work: Path, rates: list[float], seconds: float) -> Ladder:
    ladder = Ladder(server.name, "register")
    if not server.registers:
        ladder.note = "not measured: no registrar with local digest users"
        return ladder
    inf = write_inf(work / "reg.csv", list(range(FIRST_EXTENSION + 1, FIRST_EXTENSION + USERS)))
    server.start()
    try:
        climb(ladder, rates, lambda r: run_step(server, "register_auth.xml", work, r, seconds, inf=inf))
    finally:
        ladder.note = "; ".join(server.log_problems()[:5])
        server.stop()
    return ladder


def bench_calls(server: Server, work: Path, rates: list[float], seconds: float, *, media: bool) -> Ladder:
    ladder = Ladder(server.name, "calls-media" if media else "calls")
    scenario = f"call_{'auth' if server.does_auth else 'noauth'}_{'media' if media else 'nomedia'}.xml"
    inf = write_inf(work / "callers.csv", list(range(FIRST_EXTENSION + 1, FIRST_EXTENSION + USERS)))
    server.start()
    uas = Uas(work, f"{server.slug}-uas{'-media' if media else ''}", echo=media)
    try:
        if server.registers:
            register_uas(work)
        uas.start()
        climb(ladder, rates, lambda r: run_step(
            server, scenario, work, r, seconds, inf=inf, service=str(CALLEE),
            media_port=UAC_MEDIA_PORT if media else None, uas=uas, duration_s=8.3 if media else 0.1))
    finally:
        uas.stop()
        ladder.note = "; ".join(server.log_problems()[:5])
        server.stop()
    return ladder


# ---------------------------------------------------------------------------- profiling
def profile_softswitch(work: Path, what: str, rate: float) -> dict:
    """py-spy (sampling, --nonblocking) of the daemon under a fixed load; self/inclusive time per function."""
    pyspy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if pyspy is None:
        return {"error": "py-spy not installed"}
    server = Softswitch(work)
    server.start()
    uas = None
    raw = work / f"profile-{what}.txt"
    try:
        if what == "register":
            inf = write_inf(work / "reg.csv", list(range(FIRST_EXTENSION + 1, FIRST_EXTENSION + USERS)))
            scenario, service = "register_auth.xml", None
        else:
            inf = write_inf(work / "callers.csv", list(range(FIRST_EXTENSION + 1, FIRST_EXTENSION + USERS)))
            register_uas(work)
            uas = Uas(work, f"profile-uas", echo=False)
            uas.start()
            scenario, service = "call_auth_nomedia.xml", str(CALLEE)
        count = int(rate * (PROFILE_SECONDS + 2))
        tag = f"profile-{what}"
        cmd = sipp_command(scenario, work, tag, local_port=UAC_PORT, rate=rate, count=count, inf=inf,
                           service=service, timeout_s=PROFILE_SECONDS * 4 + 20)
        sipp = subprocess.Popen(["timeout", str(PROFILE_SECONDS * 4 + 30), *cmd, f"{HOST}:{SERVER_PORT}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        time.sleep(1.0)
        spy = subprocess.run(["taskset", "-c", LOADGEN_CORE, pyspy, "record", "--nonblocking", "-r", str(SAMPLING_RATE),
                              "-d", str(PROFILE_SECONDS), "-f", "raw", "-o", str(raw), "-p", str(server.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=PROFILE_SECONDS + 30)
        sipp.wait(PROFILE_SECONDS * 4 + 40)
        res = parse_sipp(work, tag, sipp.returncode, 0)
        if spy.returncode != 0 or not raw.exists():
            return {"error": f"py-spy failed: {spy.stderr.decode(errors='replace')[-300:]}"}
    finally:
        if uas is not None:
            uas.stop()
        server.stop()
    prof = summarize_collapsed(raw)
    prof.update(rate=rate, load=what, sipp_ok=res.ok, sipp_failed=res.failed, sipp_retrans=res.retrans)
    return prof


AREAS = (  # (area, substrings of "function (file)") for the self-time breakdown, first match wins
    ("event loop, sockets, native code (uvloop, C)", ("Runner.run (", "run_until_complete", "uvloop")),
    ("SQLite store (config/store.py)", ("config/store.py", "sqlite")),
    ("digest auth (hashing, nonce HMAC, parsing credentials)", ("sip/digest.py", "hmac.py", "hashlib", "auth.py")),
    ("SIP parsing/building (softswitch/sip/message, headers, uri, sdp)", ("sip/message.py", "sip/headers.py",
                                                                        "sip/uri.py", "sip/sdp.py",
                                                                        "sip/framing.py")),
    ("transactions, dialogs, endpoint (softswitch/sip/)", ("sip/transaction.py", "sip/endpoint.py",
                                                           "sip/dialog.py", "sip/timers.py")),
    ("transport (softswitch/transport.py)", ("softswitch/transport.py",)),
    ("registrar, routing, B2BUA, legs", ("registrar.py", "routing.py", "b2bua.py", "session.py", "server.py")),
    ("media engine (RTP endpoints, relay)", ("media/",)),
    ("asyncio tasks/futures/timers", ("asyncio/",)),
    ("logging", ("logging/",)),
)
WRAPPER_FRAMES = ("click/", "run (uvloop", "run (softswitch/server.py)", "(cli/__init__.py)", "(run.py)", "runners.py", "<module>", "_run_module", "(runpy.py)")


def summarize_collapsed(path: Path, top: int = 16) -> dict:
    """Collapsed stacks ("f1 (file:line);f2 (...) count") -> self, inclusive and per-area shares."""
    selfc: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        selfc[leaf] += count
        areas[next((a for a, keys in AREAS if any(k in leaf for k in keys)), "other Python")] += count
        for fr in set(frames):
            if not any(w in fr for w in WRAPPER_FRAMES):
                incl[fr] += count
    pct = lambda c: round(100.0 * c / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total,
            "areas": [(name, pct(c)) for name, c in areas.most_common()],
            "self": [(name, pct(c)) for name, c in selfc.most_common(top)],
            "inclusive": [(name, pct(c)) for name, c in incl.most_common(top)]}


def _frame_name(frame: str) -> str:
    # "register (softswitch/registrar.py:58)" -> "register (softswitch/registrar.py)"
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, file = m.groups()
    for marker in ("site-packages/", "/work/main/", str(ROOT) + "/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{func} ({file})"


# ---------------------------------------------------------------------------- report
def versions() -> dict[str, str]:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    kam = re.search(r"kamailio ([\d.]+)", out(["kamailio", "-v"]))
    sipp = re.search(r"SIPp (v[\w.\-]*\w)", out(["sipp", "-v"]))
    from importlib.metadata import PackageNotFoundError, version
    try:
        sippy = version("sippy")
    except PackageNotFoundError:
        sippy = "?"
    try:
        loop = f"uvloop {version('uvloop')}"
    except PackageNotFoundError:
        loop = "asyncio"
    return {"date": datetime.date.today().isoformat(), "nproc": str(os.cpu_count()), "cpu": cpu,
            "kernel": platform.release(), "python": platform.python_version(), "event_loop": loop,
            "kamailio": kam.group(1) if kam else "?", "sippy": sippy, "sipp": sipp.group(1) if sipp else "?"}


def fmt_rate(step: Step | None) -> str:
    return f"{step.achieved:,.0f}" if step else "—"


def render(results: dict) -> str:
    v = results["machine"]
    lad = {(lr["server"], lr["benchmark"]): lr for lr in results["ladders"]}
    lines = [DOCS_SECTION, "",
             f"Measured by `make bench` (`bench/run.py`) on {v['date']}: {v['nproc']} × {v['cpu']}, Linux {v['kernel']}, "
             f"Python {v['python']} ({v['event_loop']}), Kamailio {v['kamailio']} (Debian), sippy {v['sippy']} (PyPI), "
             f"SIPp {v['sipp']}. Each server is pinned to core 1, SIPp to core 0 (`taskset`), all on 127.0.0.1 in a "
             f"private network namespace. A figure is the highest rate of a fixed-rate ladder at which every "
             f"operation succeeded with **zero failed transactions and zero retransmissions** (UAC and UAS), "
             f"sustained for {STEP_SECONDS:g} s per step; CPU/op is the server's utime+stime during that step divided "
             f"by the operations. \"Limit\" names what stopped the ladder.", ""]
    if results.get("quick"):
        lines += ["*(quick run: shortened ladders, figures are lower bounds)*", ""]

    def best(server: str, bench: str) -> Step | None:
        lr = lad.get((server, bench))
        if not lr:
            return None
        good = [Step(**s) for s in lr["steps"] if s["passed"]]
        return max(good, key=lambda s: s.achieved) if good else None

    def limit(server: str, bench: str) -> str:
        lr = lad.get((server, bench))
        if not lr:
            return "not run"
        if lr.get("note", "").startswith("not measured"):
            return lr["note"]
        fails = [Step(**s) for s in lr["steps"] if not s["passed"]]
        if not fails:
            return "end of ladder (not saturated)"
        f = fails[-1]
        why = []
        if f.failed:
            why.append(f"{f.failed} failed")
        if f.retrans:
            why.append(f"{f.retrans} retransmissions")
        if f.uas_failed or f.uas_retrans:
            why.append(f"UAS {f.uas_failed} failed/{f.uas_retrans} retrans")
        if f.ok and f.achieved < MIN_ACHIEVED * f.rate:
            why.append(f"only {f.achieved:,.0f}/s reached")
        why.append(f"server CPU {f.cpu_pct:.0f} %, SIPp CPU {f.loadgen_pct:.0f} %")
        if f.loadgen_pct > 90 and f.cpu_pct < 90:
            why.append("load generator bound")
        return f"at {f.rate:,.0f}/s: " + ", ".join(why)

    def row(label: str, server: str, bench: str, ref: Step | None = None) -> str:
        s = best(server, bench)
        if s is None:
            return f"| {label} | — | — | — | — | {limit(server, bench)} |"
        ratio = f"{s.achieved / ref.achieved:.2f}× sippy ·" if ref and ref.achieved else ""
        cap = 1e6 / s.cpu_us_per_op if s.cpu_us_per_op > 0 else 0
        return (f"| {label} | **{s.achieved:,.0f}** | {s.cpu_pct:.0f} % | {s.cpu_us_per_op:,.0f} µs | "
                f"{cap:,.0f} | {ratio} {limit(server, bench)} |")

    kam_r, kam_c, sp_c = best("Kamailio", "register"), best("Kamailio", "calls"), best("sippy", "calls")
    ss_r, ss_c = best("softswitch", "register"), best("softswitch", "calls")
    if kam_r and sp_c:
        lines += [f"This machine is slower than the one the goals were set on (Kamailio {kam_r.achieved:,.0f} "
                  f"authenticated REGISTERs/s here against ≈ 18,000 there, sippy {sp_c.achieved:,.0f} calls/s against "
                  f"≈ 350), so the goals are read as ratios to the peers measured in the same run:", ""]
        if ss_r:
            lines.append(f"* REGISTER: softswitch {ss_r.achieved:,.0f}/s = **{100 * ss_r.achieved / kam_r.achieved:.0f} %** "
                         f"of Kamailio (goal ≥ 28 %, i.e. ≥ {0.28 * kam_r.achieved:,.0f}/s here).")
        if ss_c:
            lines.append(f"* calls without media: softswitch {ss_c.achieved:,.0f}/s = **{ss_c.achieved / sp_c.achieved:.2f}×** "
                         f"sippy (goal ≥ 2×, i.e. ≥ {2 * sp_c.achieved:,.0f}/s here)"
                         + (f"; Kamailio {kam_c.achieved:,.0f}/s." if kam_c else "."))
        lines.append("")
    head = "| server | ops/s at 0 failures | server CPU | CPU per op | ops/s per core (1/CPU-per-op) | vs peer · limit |"
    sep = "|---|---|---|---|---|---|"
    lines += ["### Authenticated registrations per second", "",
              "REGISTER → 401 → REGISTER with digest (MD5, qop=auth) → 200, 2,000 channels round-robin, "
              "binding saved (softswitch: SQLite; Kamailio: usrloc in memory, password from an htable).", "",
              head, sep, row("softswitch", "softswitch", "register"),
              row("Kamailio (registrar, auth)", "Kamailio", "register"),
              "| sippy | — | — | — | — | no registrar with local digest users: not measured |", ""]
    kam_reg = best("Kamailio", "register")
    ss_reg = best("softswitch", "register")
    if kam_reg and ss_reg:
        lines += [f"softswitch reaches {100 * ss_reg.achieved / kam_reg.achieved:.0f} % of Kamailio's rate; per CPU "
                  f"second {100 * kam_reg.cpu_us_per_op / ss_reg.cpu_us_per_op:.0f} % of Kamailio's efficiency "
                  f"(goal: ≥ 5,000/s and ≥ 28 %).", ""]
    lines += ["### Call setups per second, no media", "",
              "INVITE → 100 → 180 → 200 → ACK → (100 ms) BYE → 200, SIPp UAS as the callee; no RTP (SDP offered and answered, "
              "softswitch still allocates and anchors two RTP endpoints per call).", "",
              head, sep,
              row("softswitch (B2BUA, 407 + auth)", "softswitch", "calls", best("sippy", "calls")),
              row("Kamailio (stateful proxy, 407 + auth, record-route)", "Kamailio", "calls"),
              row("sippy b2bua_simple (B2BUA, no auth)", "sippy", "calls"), ""]
    ss_call, sp_call = best("softswitch", "calls"), best("sippy", "calls")
    if ss_call and sp_call:
        lines += [f"softswitch/sippy = {ss_call.achieved / sp_call.achieved:.2f}× (goal ≥ 2×); note that sippy does "
                  f"no digest authentication (one transaction fewer per call).", ""]
    lines += ["### Call setups per second, media anchored", "",
              "Same flow, the caller plays `g711a.pcap` (7 s of G.711 A-law, 50 packets/s) and the callee echoes it; "
              "softswitch relays both directions (≈ 200 RTP packets/s per call through the server). Kamailio and sippy "
              "do not anchor media without an RTP proxy, so they are not measured here.", "",
              head, sep, row("softswitch", "softswitch", "calls-media"), ""]
    lines += ["### All steps", "", "<details><summary>every step of every ladder</summary>", "",
              "| server | benchmark | offered/s | ok/offered | failed | retrans (UAC/UAS) | achieved/s | CPU | µs/op |",
              "|---|---|---|---|---|---|---|---|---|"]
    for lr in results["ladders"]:
        for s in lr["steps"]:
            lines.append(f"| {lr['server']} | {lr['benchmark']} | {s['rate']:,.0f} | {s['ok']}/{s['offered']} | "
                         f"{s['failed']} | {s['retrans']}/{s['uas_retrans']} | {s['achieved']:,.0f} | "
                         f"{s['cpu_pct']:.0f} % | {s['cpu_us_per_op']:,.0f} |")
    lines += ["", "</details>", ""]
    for lr in results["ladders"]:
        if lr.get("note") and not lr["note"].startswith("not measured"):
            lines += [f"Log lines of {lr['server']} ({lr['benchmark']}): `{lr['note'][:400]}`", ""]
    lines += ["### Where the time goes", ""]
    for what, prof in results.get("profiles", {}).items():
        if "error" in prof:
            lines += [f"Profile under {what} load: {prof['error']}", ""]
            continue
        lines += [f"py-spy (`record --nonblocking`, {SAMPLING_RATE} Hz, {PROFILE_SECONDS} s, idle excluded) of the "
                  f"daemon under {prof['rate']:,.0f} {'registrations' if what == 'register' else 'calls'}/s "
                  f"({prof['samples']} samples; SIPp: {prof['sipp_ok']} ok, {prof['sipp_failed']} failed). "
                  f"Share of busy samples:", "",
                  "| area (self time) | % |", "|---|---|"]
        lines += [f"| {a} | {p} |" for a, p in prof.get("areas", [])]
        lines += ["", "| self time | % | inclusive (function and callees) | % |", "|---|---|---|---|"]
        selfs, incls = prof["self"], prof["inclusive"]
        for i in range(max(len(selfs), len(incls))):
            a = selfs[i] if i < len(selfs) else ("", "")
            b = incls[i] if i < len(incls) else ("", "")
            lines.append(f"| `{a[0]}` | {a[1]} | `{b[0]}` | {b[1]} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_docs(section: str, machine: dict) -> None:
    DOCS.parent.mkdir(exist_ok=True)
    if DOCS.exists():
        text = DOCS.read_text()
    else:
        text = (f"# Benchmarks\n\nMachine: {machine['nproc']} × {machine['cpu']}, Linux {machine['kernel']}, "
                f"Python {machine['python']}. Reproduce with `make bench` (SIP) and `make bench-media` (RTP relay).\n\n")
    start = text.find(DOCS_SECTION + "\n")
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        nxt = re.search(r"^## ", text[start + len(DOCS_SECTION):], re.MULTILINE)
        end = start + len(DOCS_SECTION) + nxt.start() if nxt else len(text)
        text = text[:start] + section + ("\n" + text[end:] if nxt else "")
    DOCS.write_text(text)


# ---------------------------------------------------------------------------- setup
def ensure_peers() -> None:
    if shutil.which("kamailio") is None:
        if os.geteuid() != 0:
            raise SystemExit("kamailio is missing: sudo apt-get install -y kamailio")
        log("installing Kamailio (Debian package)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "kamailio"], check=True, env=env)
        # the package may start a system service on 5060; the bench runs in its own namespace anyway
    try:
        import sippy  # noqa: F401
    except ImportError:
        log("installing sippy and py-spy (PyPI)")
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "sippy>=2.5", "py-spy>=0.3"], check=True)
    for tool in ("sipp", "taskset", "timeout"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install sip-tester util-linux coreutils)")


def in_private_netns(argv: list[str]) -> None:
    """Re-run this script inside a new network namespace with only loopback (root only)."""
    if os.environ.get("SOFTSWITCH_BENCH_NETNS") == "1" or os.geteuid() != 0 or shutil.which("unshare") is None:
        return
    env = dict(os.environ, SOFTSWITCH_BENCH_NETNS="1")
    script = 'ip link set lo up && exec "$@"'
    rc = subprocess.call(["unshare", "-n", "sh", "-c", script, "sh", PYTHON, str(Path(__file__).resolve()), *argv],
                         env=env)
    sys.exit(rc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short ladders (a smoke test, ~2 min)")
    ap.add_argument("--write-docs", action="store_true", help=f"update the '{DOCS_SECTION}' section of {DOCS}")
    ap.add_argument("--only", default="register,calls,media,profile",
                    help="comma-separated subset of register,calls,media,profile")
    ap.add_argument("--servers", default="softswitch,kamailio,sippy")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp stats)")
    ap.add_argument("--render", type=Path, help="only print (and with --write-docs write) the report of a saved "
                                                 "--json result")
    args = ap.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        section = render(saved)
        print(section)
        if args.write_docs:
            write_docs(section, saved["machine"])
        return
    ensure_peers()
    in_private_netns(sys.argv[1:])
    only = set(args.only.split(","))
    servers = set(args.servers.split(","))
    work = Path(tempfile.mkdtemp(prefix="softswitch-bench-"))
    log(f"work directory {work}")
    seconds = 2.0 if args.quick else STEP_SECONDS
    reg_rates = REGISTER_LADDER[::3] if args.quick else REGISTER_LADDER
    call_rates = CALL_LADDER[::3] if args.quick else CALL_LADDER
    media_rates = MEDIA_LADDER[:3] if args.quick else MEDIA_LADDER
    results: dict = {"machine": versions(), "quick": args.quick, "ladders": [], "profiles": {}}
    t_start = time.monotonic()
    try:
        def make(name: str) -> Server:
            return {"softswitch": Softswitch, "kamailio": Kamailio, "sippy": Sippy}[name](work)
        if "register" in only:
            for name in ("softswitch", "kamailio"):
                if name in servers:
                    log(f"REGISTER ladder: {name}")
                    results["ladders"].append(asdict_ladder(bench_register(make(name), work, reg_rates, seconds)))
        if "calls" in only:
            for name in ("softswitch", "kamailio", "sippy"):
                if name in servers:
                    log(f"call ladder (no media): {name}")
                    results["ladders"].append(asdict_ladder(bench_calls(make(name), work, call_rates, seconds,
                                                                        media=False)))
        if "media" in only and "softswitch" in servers:
            log("call ladder (media anchored): softswitch")
            results["ladders"].append(asdict_ladder(bench_calls(Softswitch(work), work, media_rates,
                                                                MEDIA_STEP_SECONDS / (2 if args.quick else 1),
                                                                media=True)))
        if "profile" in only:
            for what, ladder_name in (("register", "register"), ("calls", "calls")):
                best = next((lr for lr in results["ladders"]
                             if lr["server"] == "softswitch" and lr["benchmark"] == ladder_name), None)
                good = [s["achieved"] for s in best["steps"] if s["passed"]] if best else []
                rate = round(0.7 * max(good), -1) if good else (300 if what == "register" else 50)
                log(f"profiling softswitch under {what} load at {rate:g}/s")
                results["profiles"][what] = profile_softswitch(work, what, max(rate, 10))
    finally:
        results["elapsed_s"] = round(time.monotonic() - t_start)
        (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    section = render(results)
    print()
    print(section)
    if args.write_docs:
        write_docs(section, results["machine"])
        log(f"updated {DOCS}")
    log(f"done in {results['elapsed_s']} s; raw results in {work / 'results.json'}")
    if not args.keep and not os.environ.get("SOFTSWITCH_BENCH_KEEP"):
        for p in work.glob("*.db*"):
            p.unlink()


def asdict_ladder(ladder: Ladder) -> dict:
    return {"server": ladder.server, "benchmark": ladder.benchmark, "note": ladder.note,
            "steps": [asdict(s) for s in ladder.steps]}


if __name__ == "__main__":
    main()
