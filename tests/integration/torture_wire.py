"""Feed the RFC 4475 corpus to a real daemon over UDP, inside a network namespace.

Run only as ``unshare -n python torture_wire.py CORPUS_DIR WORKDIR`` (the test does this):
the namespace has nothing but loopback, so nothing the daemon might send to an address
taken from a torture message can leave the machine. Prints one JSON object: for every
message the status lines the daemon answered with, plus whether it stayed up.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PORT = 5060


def main() -> None:
    corpus, work = Path(sys.argv[1]), Path(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    db = work / "torture.db"
    cli = [sys.executable, "-m", "softswitch", "--db", str(db)]
    subprocess.run(cli + ["account", "add", "example", "--domain", "example.com", "--digits", "3"],
                   check=True, capture_output=True)
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen(cli + ["serve", "--host", "127.0.0.1", "--sip-port", str(PORT),
                                     "--rtp-ports", "30000-30100", "--log-level", "DEBUG"],
                              stdout=log, stderr=subprocess.STDOUT)
    results: dict[str, list[str]] = {}
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _answers(sock):
            time.sleep(0.1)
        for path in sorted(corpus.glob("*.dat")):
            # a fresh socket per message: retransmitted answers to the previous one
            # (a 407 the corpus never ACKs) must not be counted for this one
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as one:
                one.bind(("127.0.0.1", 0))
                one.sendto(path.read_bytes(), ("127.0.0.1", PORT))
                results[path.stem] = _collect(one, 0.3)
        alive = _answers(sock)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(10)
    print(json.dumps({"results": results, "alive_after": alive, "exit_code": code}))


def _collect(sock: socket.socket, window: float) -> list[str]:
    out = []
    end = time.monotonic() + window
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except socket.timeout:
            break
        out.append(data.split(b"\r\n", 1)[0].decode("utf-8", "replace"))
    return out


def _answers(sock: socket.socket) -> bool:
    port = sock.getsockname()[1]
    probe = (f"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{time.time_ns()}\r\n"
             f"From: <sip:probe@example.com>;tag=p\r\nTo: <sip:example.com>\r\nCall-ID: probe-{time.time_ns()}\r\n"
             "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    sock.sendto(probe, ("127.0.0.1", PORT))
    return any(line.startswith("SIP/2.0 200") for line in _collect(sock, 0.5))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
