"""The ``softswitch`` command line, driven with click's CliRunner on a temporary database."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from config.models import Binding, LiveCall
from config.store import Store
from tests.cli_support import fails, invoker, ok


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.db")


@pytest.fixture
def run(db: str, monkeypatch: pytest.MonkeyPatch):
    return invoker(db, monkeypatch)




@pytest.fixture
def acme(run) -> None:
    ok(run("account", "add", "acme", "--domain", "acme.example.com", "--digits", "3"))


def test_init_creates_the_database(run, db: str) -> None:
    from config.schema import SCHEMA_VERSION

    assert ok(run("init")) == f"database {db} is ready (schema version {SCHEMA_VERSION})\n"
    assert Path(db).exists()
    assert f"schema version {SCHEMA_VERSION}" in ok(run("init"))  # idempotent


def test_db_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    result = CliRunner(env={"SOFTSWITCH_DB": str(path)}).invoke(cli.main, ["account", "list"])
    assert result.exit_code == 0 and path.exists()


@pytest.mark.parametrize(
    "args",
    [[], ["init"], ["account"], ["account", "add"], ["account", "list"], ["channel"],
     ["channel", "add"], ["channel", "list"], ["user"], ["user", "add"], ["user", "list"],
     ["login"], ["logout"], ["calls"], ["cdr"], ["import"], ["serve"]],
)
def test_every_command_has_help(run, args: list[str]) -> None:
    out = ok(run(*args, "--help"))
    assert out.startswith("Usage: ")


def test_account_add_and_list(run, acme) -> None:
    ok(run("account", "add", "beta", "--domain", "beta.example.com", "--digits", "4",
           "--language", "en"))
    table = ok(run("account", "list")).splitlines()
    assert table[0].split() == ["NAME", "DOMAIN", "DIGITS", "LANGUAGE", "TIMEZONE"]
    assert table[1].split() == ["acme", "acme.example.com", "3", "nl", "Europe/Amsterdam"]
    data = json.loads(ok(run("account", "list", "--json")))
    assert data == [
        {"name": "acme", "domain": "acme.example.com", "digits": 3, "language": "nl",
         "timezone": "Europe/Amsterdam"},
        {"name": "beta", "domain": "beta.example.com", "digits": 4, "language": "en",
         "timezone": "Europe/Amsterdam"},
    ]


def test_account_errors(run, acme) -> None:
    fails(run("account", "add", "acme", "--domain", "x.example.com", "--digits", "3"),
          "account 'acme' already exists")
    fails(run("account", "add", "x", "--domain", "acme.example.com", "--digits", "3"),
          "domain 'acme.example.com' is already used by account 'acme'")
    usage = run("account", "add", "x", "--domain", "x.example.com", "--digits", "6")
    assert usage.exit_code == 2 and "Invalid value for '--digits'" in usage.stderr
    assert json.loads(ok(run("account", "list", "--json")))[0]["name"] == "acme"
    assert len(json.loads(ok(run("account", "list", "--json")))) == 1


def test_empty_lists(run, acme) -> None:
    assert json.loads(ok(run("channel", "list", "acme", "--json"))) == []
    assert json.loads(ok(run("user", "list", "acme", "--json"))) == []
    assert json.loads(ok(run("calls", "--json"))) == []
    assert json.loads(ok(run("cdr", "acme", "--json"))) == []
    assert ok(run("calls")) == "no calls in progress\n"


def test_channel_add_prints_the_password(run, acme, db: str) -> None:
    out = ok(run("channel", "add", "acme", "acme-201"))
    password = out.splitlines()[1].split()[1]
    assert len(password) >= 16
    assert "acme.example.com" in out
    out = ok(run("channel", "add", "acme", "acme-202", "--password", "given-pw-1"))
    assert "password: given-pw-1" in out
    with Store(db) as store:
        account = store.account("acme")
        assert store.channel_by_username(account.id, "acme-201").password == password


def test_channel_errors(run, acme) -> None:
    ok(run("channel", "add", "acme", "acme-201"))
    fails(run("channel", "add", "acme", "acme-201"), "channel 'acme-201' already exists")
    fails(run("channel", "add", "nope", "x-1"), "account 'nope' does not exist")
    fails(run("channel", "list", "nope"), "account 'nope' does not exist")


def test_channel_list_shows_registration_and_user(run, acme, db: str) -> None:
    ok(run("channel", "add", "acme", "acme-201", "--password", "pw-201-secret"))
    ok(run("channel", "add", "acme", "acme-202"))
    ok(run("user", "add", "acme", "201", "--name", "Alice", "--pin", "4821",
           "--channel", "acme-201"))
    with Store(db) as store:
        channel = store.channel_by_username(store.account("acme").id, "acme-201")
        store.save_binding(Binding(channel.id, "sip:201@192.168.1.20:5060", time.time() + 600,
                                   "udp:203.0.113.7:40000", user_agent="Yealink T46U",
                                   registered_at=time.time()))
    rows = json.loads(ok(run("channel", "list", "acme", "--json")))
    first, second = rows
    assert first["channel"] == "acme-201" and first["registered"] is True
    assert (first["user"], first["user_name"]) == ("201", "Alice")
    assert first["device"] == "Yealink T46U"
    assert first["lan"] == "sip:201@192.168.1.20:5060" and first["wan"] == "udp:203.0.113.7:40000"
    assert 590 <= first["expires_in"] <= 600
    assert "password" not in first
    assert second["registered"] is False and second["user"] is None and second["bindings"] == []
    table = ok(run("channel", "list", "acme")).splitlines()
    assert table[0].split() == ["CHANNEL", "REGISTERED", "USER", "DEVICE", "LAN", "WAN", "EXPIRES"]
    assert "Yealink T46U" in table[1] and "yes" in table[1] and "201 Alice" in table[1]
    assert table[2].split() == ["acme-202", "no"]
    with_pw = ok(run("channel", "list", "acme", "--passwords"))
    assert "pw-201-secret" in with_pw
    assert json.loads(ok(run("channel", "list", "acme", "--json", "--passwords")))[0]["password"] == "pw-201-secret"


def test_user_add_list_login_logout(run, acme) -> None:
    ok(run("channel", "add", "acme", "acme-a"))
    ok(run("channel", "add", "acme", "acme-b"))
    out = ok(run("user", "add", "acme", "201", "--name", "Alice", "--pin", "4821",
                 "--channel", "acme-a", "--channel", "acme-b"))
    assert "logged in on acme-a, acme-b" in out
    ok(run("user", "add", "acme", "202", "--name", "Bob", "--pin", "5832"))
    assert json.loads(ok(run("user", "list", "acme", "--json"))) == [
        {"extension": "201", "name": "Alice", "channels": ["acme-a", "acme-b"]},
        {"extension": "202", "name": "Bob", "channels": []},
    ]
    ok(run("login", "acme", "202", "acme-b"))
    ok(run("logout", "acme", "acme-a"))
    users = json.loads(ok(run("user", "list", "acme", "--json")))
    assert [u["channels"] for u in users] == [[], ["acme-b"]]
    table = ok(run("user", "list", "acme")).splitlines()
    assert table[0].split() == ["EXTENSION", "NAME", "CHANNELS"]
    assert table[2].split() == ["202", "Bob", "acme-b"]


def test_user_errors(run, acme) -> None:
    ok(run("channel", "add", "acme", "acme-a"))
    fails(run("user", "add", "acme", "12", "--name", "X", "--pin", "4821"),
          "extension 12 has 2 digits; account 'acme' uses 3")
    fails(run("user", "add", "acme", "201", "--name", "X", "--pin", "12"),
          "PIN must be at least 4 digits")
    fails(run("user", "add", "acme", "201", "--name", "X", "--pin", "4821", "--channel", "zz"),
          "channel 'zz' does not exist in account 'acme'")
    assert json.loads(ok(run("user", "list", "acme", "--json"))) == []  # nothing half-written
    ok(run("user", "add", "acme", "201", "--name", "Alice", "--pin", "4821"))
    fails(run("user", "add", "acme", "201", "--name", "X", "--pin", "4821"),
          "extension 201 already exists in account 'acme'")
    fails(run("login", "acme", "299", "acme-a"), "user 299 does not exist in account 'acme'")
    fails(run("logout", "acme", "acme-a"), "no user is logged in on channel 'acme-a'")
    missing = run("user", "add", "acme", "202", "--pin", "4821")
    assert missing.exit_code == 2 and "Missing option '--name'" in missing.stderr


def test_calls_from_the_live_call_table(run, acme, db: str) -> None:
    with Store(db) as store:
        account = store.account("acme")
        store.put_live_call(LiveCall("call-1@x", account.id, "201", "202", "answered",
                                     time.time() - 5, time.time() - 3, ("a", "b")))
    rows = json.loads(ok(run("calls", "--json")))
    assert len(rows) == 1
    row = rows[0]
    assert (row["account"], row["caller"], row["callee"], row["state"]) == ("acme", "201", "202", "answered")
    assert row["legs"] == ["a", "b"] and 4 <= row["duration"] <= 6
    table = ok(run("calls")).splitlines()
    assert table[0].split() == ["ACCOUNT", "CALLER", "CALLEE", "STATE", "DURATION", "CALL-ID"]
    assert table[1].split()[:4] == ["acme", "201", "202", "answered"]


def test_cdr(run, acme, db: str) -> None:
    with Store(db) as store:
        account = store.account("acme")
        # 2023-11-14 22:13:20 UTC is 23:13:20 in Amsterdam
        for i in range(3):
            store.add_cdr(account.id, f"c{i}", "201", "202", 1_700_000_000.0 + i,
                          1_700_000_002.0 + i, 1_700_000_030.0 + i, "ANSWERED",
                          hangup_by="callee", sip_status=200, caller_name="Alice",
                          answered_by="acme-202")
    rows = json.loads(ok(run("cdr", "acme", "--json", "--limit", "2")))
    assert [r["call_id"] for r in rows] == ["c2", "c1"]
    assert rows[0]["start"] == "2023-11-14 23:13:22"
    assert (rows[0]["duration"], rows[0]["billsec"], rows[0]["disposition"]) == (30, 28, "ANSWERED")
    table = ok(run("cdr", "acme")).splitlines()
    assert len(table) == 4 and table[0].startswith("START")
    assert "201 Alice" in table[1] and "ANSWERED" in table[1] and "30s" in table[1]
    fails(run("cdr", "nope"), "account 'nope' does not exist")
    assert run("cdr", "acme", "--limit", "0").exit_code == 2


def test_import(run, acme, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("channel,password,extension,name,pin\n"
                    "acme-201,,201,Alice,4821\nacme-202,pw-202-secret,202,Bob,5832\n")
    out = ok(run("import", "acme", str(good)))
    assert out.startswith("imported 2 rows into account 'acme'")
    users = json.loads(ok(run("user", "list", "acme", "--json")))
    assert [(u["extension"], u["channels"]) for u in users] == [("201", ["acme-201"]),
                                                                ("202", ["acme-202"])]
    bad = tmp_path / "bad.csv"
    bad.write_text("channel,password,extension,name,pin\nacme-203,,203,Carol,4821\n"
                   "acme-204,,204,Dave,12\n")
    fails(run("import", "acme", str(bad)), f"{bad} line 3: PIN must be at least 4 digits")
    assert len(json.loads(ok(run("channel", "list", "acme", "--json")))) == 2
    fails(run("import", "acme", str(tmp_path / "none.csv")),
          f"cannot read {tmp_path / 'none.csv'}: No such file or directory")


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    module = types.ModuleType("softswitch.server")
    module.run = lambda **kwargs: calls.append(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "softswitch.server", module)
    return calls


def test_serve_passes_its_options_to_the_server(run, db: str, fake_server: list[dict]) -> None:
    ok(run("serve", "--host", "127.0.0.1", "--sip-port", "5070", "--rtp-ports", "30000-30100",
           "--log-level", "debug", "--trace-sip", "--rtp-timeout", "15", "--digest-algorithms", "sha-256"))
    assert fake_server == [{
        "store_path": db, "host": "127.0.0.1", "sip_port": 5070, "rtp_ports": (30000, 30100),
        "log_level": "DEBUG", "trace_sip": True, "rtp_timeout": 15.0, "digest_algorithms": ("SHA-256",), "log_format": "text",
    }]


def test_serve_refuses_unknown_digest_algorithms(run, fake_server: list[dict]) -> None:
    result = run("serve", "--digest-algorithms", "SHA-512")
    assert result.exit_code != 0 and "expected MD5 and/or SHA-256" in result.output
    assert fake_server == []


def test_channel_max_bindings(run) -> None:
    ok(run("account", "add", "acme", "--domain", "acme.test", "--digits", "3"))
    ok(run("channel", "add", "acme", "acme-201", "--max-bindings", "2"))
    fails(run("channel", "add", "acme", "acme-202", "--max-bindings", "0"), "max bindings must be 1-10, not 0")


def test_serve_defaults(run, db: str, fake_server: list[dict]) -> None:
    assert ok(run("serve")) == ""
    assert fake_server == [{
        "store_path": db, "host": "0.0.0.0", "sip_port": 5060, "rtp_ports": (10000, 20000),
        "log_level": "INFO", "trace_sip": False, "rtp_timeout": 60.0, "digest_algorithms": ("MD5", "SHA-256"), "log_format": "text",
    }]


def test_serve_demo_prints_the_credentials(run, db: str, fake_server: list[dict]) -> None:
    out = ok(run("serve", "--demo", "--sip-port", "5070"))
    assert "demo.softswitch.local" in out and "127.0.0.1:5070" in out
    with Store(db) as store:
        statuses = store.list_channels("demo")
    assert len(statuses) == 4
    for status in statuses:
        line = next(l for l in out.splitlines() if status.channel.username in l)
        assert line.split() == [status.channel.username, status.channel.password,
                                status.user.extension, status.user.name]
    again = ok(run("serve", "--demo"))  # not empty any more: shows the same credentials
    assert statuses[0].channel.password in again
    assert len(fake_server) == 2


def test_serve_bad_port_range_is_a_usage_error(run, fake_server: list[dict]) -> None:
    for bad in ("20000-10000", "10000", "80-90", "a-b"):
        result = run("serve", "--rtp-ports", bad)
        assert result.exit_code == 2 and "--rtp-ports" in result.stderr
    assert fake_server == []


def test_serve_without_server_module_is_one_error_line(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "softswitch.server", None)  # import raises ModuleNotFoundError
    result = run("serve")
    assert result.exit_code == 1
    assert result.stderr == "error: the SIP server (softswitch.server) is not installed\n"


def test_unusable_database_is_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.main, ["--db", str(tmp_path / "no" / "dir.db"), "account", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: database ") and result.stderr.count("\n") == 1


def test_python_dash_m_softswitch(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = subprocess.run(
        [sys.executable, "-m", "softswitch", "--db", str(db), "account", "list", "--json"],
        capture_output=True, text=True, timeout=60, cwd=Path(cli.__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
