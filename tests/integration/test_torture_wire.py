"""RFC 4475 over the wire: every torture message sent to the real daemon over UDP.

The daemon runs inside ``unshare -n`` (a network namespace with only loopback), so an
address taken from a torture message can never be reached (TESTING.md, Safety). The
in-memory, one-test-per-message checks are in tests/sip/test_torture.py; this test proves
the running daemon answers the invalid ones as RFC 4475 says, drops the responses, and
stays up without a traceback.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("SIP_TORTURE_DIR", ROOT.parent / "shared" / "sip-torture" / "rfc4475"))

# RFC 4475 §3.1.2 / §3.3: what an element must answer.
EXPECTED = {
    "badaspec": {"400"}, "badinv01": {"400"}, "badvers": {"505"}, "clerr": {"400"}, "escruri": {"400"},
    "insuf": {"400"}, "ltgtruri": {"400"}, "lwsruri": {"400"}, "lwsstart": {"400"}, "mcl01": {"400"},
    "mismatch01": {"400"}, "mismatch02": {"400", "501"}, "multi01": {"400"}, "ncl": {"400"},
    "quotbal": {"400"}, "regbadct": {"400"}, "scalar02": {"400"}, "trws": {"400"}, "baddn": {"400"},
    "unkscm": {"416"}, "novelsc": {"416"}, "bext01": {"420"}, "unksm2": {"400"},
    "intmeth": {"501"}, "esc02": {"501"}, "zeromf": {"200"}, "badbranch": {"200"}, "transports": {"200"},
}
RESPONSES = {"bcast", "bigcode", "scalarlg", "noreason", "unreason"}  # never answered


def test_daemon_answers_the_torture_corpus_in_a_loopback_only_namespace(tmp_path):
    assert CORPUS.is_dir(), f"RFC 4475 corpus not found at {CORPUS} (set SIP_TORTURE_DIR)"
    proc = subprocess.run(["unshare", "-n", sys.executable, str(Path(__file__).with_name("torture_wire.py")),
                           str(CORPUS), str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    log = (tmp_path / "daemon.log").read_text(errors="replace")
    assert report["alive_after"] and report["exit_code"] == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    results = report["results"]
    assert len(results) == 49
    for name, answers in results.items():
        finals = [line.split(" ")[1] for line in answers if not line.startswith("SIP/2.0 1")]
        if name in RESPONSES:
            assert answers == [], f"{name}: a response must not be answered, got {answers}"
        elif name in EXPECTED:
            assert finals and finals[0] in EXPECTED[name], f"{name}: expected {EXPECTED[name]}, got {answers}"
        else:
            assert finals, f"{name}: a valid request must get a final response, got {answers}"
