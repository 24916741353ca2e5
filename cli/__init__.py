"""``softswitch``: the administrator's command line (SPEC §2) and the daemon launcher.

Every administrative command opens the database through ``config.store.Store`` (which
creates and migrates it), does its work in one transaction and closes it. Errors the
administrator can cause are printed as one ``error: ...`` line on stderr with exit
status 1; nothing is half-written. List commands print a table, or with ``--json`` a
JSON array of objects for scripts.

``serve`` imports ``softswitch.server`` only when run, so the admin commands work
without the SIP stack.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import click

from config.features import LoginNeedsConfirmation, LoginPlan
from config.models import Account, Cdr, ChannelStatus, LiveCall, User
from config.store import DEFAULT_DB_PATH, LANGUAGES, ConfigError, Store

logger = logging.getLogger(__name__)

DB_ENVVAR = "SOFTSWITCH_DB"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_SIP_PORT = 5060
DEFAULT_RTP_PORTS = "10000-20000"
DEFAULT_RTP_TIMEOUT_S = 60.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_RTP_PORT = 1024
MAX_PORT = 65535


class _Cli(click.Group):
    """The root group: turns ConfigError and database errors into one stderr line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except sqlite3.Error as exc:
            click.echo(f"error: database {ctx.obj.db_path}: {exc}", err=True)
            ctx.exit(1)


class _State:
    """What the root command hands to subcommands: the database path, opened lazily."""

    def __init__(self, ctx: click.Context, db_path: str) -> None:
        self._ctx = ctx
        self.db_path = db_path
        self._store: Store | None = None

    def store(self) -> Store:
        if self._store is None:
            self._store = self._ctx.with_resource(Store(self.db_path))
        return self._store


pass_state = click.make_pass_decorator(_State)


def _print_json(rows: Sequence[dict[str, Any]]) -> None:
    click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))


def _print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], empty: str) -> None:
    text = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    text = [row + [""] * (len(headers) - len(row)) for row in text]
    if not text:
        click.echo(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    for row in [list(headers), *text]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _login_effects(plan: LoginPlan) -> str:
    """What else a login did, as a suffix: '; replaced 202 Bob; logged out of acme-a'."""
    parts = []
    if plan.replaces is not None:
        parts.append(f"replaced {plan.replaces.extension} {plan.replaces.name}")
    if plan.log_out:
        parts.append(f"logged out of {', '.join(d.channel for d in plan.log_out)}")
    return "".join(f"; {part}" for part in parts)


def _local_time(timestamp: float | None, zone: ZoneInfo) -> str:
    if timestamp is None:
        return ""
    return dt.datetime.fromtimestamp(timestamp, zone).strftime("%Y-%m-%d %H:%M:%S")


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "domain": account.domain,
        "digits": account.digits,
        "language": account.language,
        "timezone": account.timezone,
    }


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_path",
    envvar=DB_ENVVAR,
    default=DEFAULT_DB_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"SQLite database file (or set ${DB_ENVVAR}).",
)
@click.pass_context
def main(ctx: click.Context, db_path: str) -> None:
    """softswitch: a self-hosted business telephone system (SIP PBX).

    Administer accounts, channels and users, and run the daemon with `serve`.
    """
    ctx.obj = _State(ctx, db_path)


@main.command()
@pass_state
def init(state: _State) -> None:
    """Create the database (or bring its schema up to date)."""
    store = state.store()
    click.echo(f"database {state.db_path} is ready (schema version {store.schema_version()})")


# -- accounts -------------------------------------------------------------------------


@main.group()
def account() -> None:
    """Accounts: one customer organisation each, with its own SIP domain."""


@account.command("add")
@click.argument("name")
@click.option("--domain", required=True, help="SIP domain (digest realm) of the account.")
@click.option(
    "--digits",
    required=True,
    type=click.Choice(["3", "4", "5"]),
    help="Length of every extension; cannot be changed later.",
)
@click.option(
    "--language", type=click.Choice(LANGUAGES), default="nl", show_default=True,
    help="Language of the prompts.",
)
@click.option(
    "--timezone", default="Europe/Amsterdam", show_default=True,
    help="IANA time zone for schedules and CDR times.",
)
@pass_state
def account_add(
    state: _State, name: str, domain: str, digits: str, language: str, timezone: str
) -> None:
    """Add account NAME."""
    acc = state.store().add_account(name, domain, int(digits), language, timezone)
    click.echo(f"account {acc.name!r} added: domain {acc.domain}, {acc.digits}-digit extensions")


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def account_list(state: _State, as_json: bool) -> None:
    """List all accounts."""
    accounts = state.store().list_accounts()
    if as_json:
        _print_json([_account_json(a) for a in accounts])
        return
    _print_table(
        ("NAME", "DOMAIN", "DIGITS", "LANGUAGE", "TIMEZONE"),
        ((a.name, a.domain, a.digits, a.language, a.timezone) for a in accounts),
        "no accounts (add one with: softswitch account add)",
    )


# -- channels -------------------------------------------------------------------------


@main.group()
def channel() -> None:
    """VoIP channels: the SIP credentials of one device each."""


@channel.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("username", metavar="CHANNEL")
@click.option("--password", help="SIP password; a strong one is generated when omitted.")
@click.option("--max-bindings", default=1, show_default=True, type=int,
              help="Registered contacts kept for this channel; a new device replaces the oldest.")
@pass_state
def channel_add(state: _State, account_name: str, username: str, password: str | None,
                max_bindings: int) -> None:
    """Add channel CHANNEL to ACCOUNT and print its credentials."""
    store = state.store()
    ch = store.add_channel(account_name, username, password, max_bindings)
    acc = store.account(account_name)
    click.echo(f"channel:  {ch.username}")
    click.echo(f"password: {ch.password}")
    click.echo(f"domain:   {acc.domain}")


def _user_label(user: User | None) -> str:
    return "" if user is None else f"{user.extension} {user.name}"


def _channel_json(status: ChannelStatus, now: float, show_password: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"channel": status.channel.username}
    if show_password:
        row["password"] = status.channel.password
    first = status.bindings[0] if status.bindings else None
    row.update(
        registered=status.registered,
        user=None if status.user is None else status.user.extension,
        user_name=None if status.user is None else status.user.name,
        device=first.user_agent if first else None,
        lan=first.contact if first else None,
        wan=first.source if first else None,
        expires_in=round(first.expires_at - now) if first else None,
        bindings=[
            {
                "contact": b.contact,
                "source": b.source,
                "user_agent": b.user_agent,
                "expires_in": round(b.expires_at - now),
            }
            for b in status.bindings
        ],
    )
    return row


@channel.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--passwords", is_flag=True, help="Also show the SIP passwords.")
@pass_state
def channel_list(state: _State, account_name: str, as_json: bool, passwords: bool) -> None:
    """Show the channels of ACCOUNT: registered, device, LAN/WAN address, user."""
    statuses = state.store().list_channels(account_name)
    now = time.time()
    rows = [_channel_json(s, now, passwords) for s in statuses]
    if as_json:
        _print_json(rows)
        return
    headers = ["CHANNEL", *(["PASSWORD"] if passwords else []), "REGISTERED", "USER",
               "DEVICE", "LAN", "WAN", "EXPIRES"]
    table = []
    for status, row in zip(statuses, rows):
        lead = [row["channel"], *([row["password"]] if passwords else [])]
        lead += ["yes" if status.registered else "no", _user_label(status.user)]
        bindings = row["bindings"] or [None]
        for i, b in enumerate(bindings):
            cells = [b["user_agent"], b["contact"], b["source"], f"{b['expires_in']}s"] if b else []
            table.append((lead if i == 0 else [""] * len(lead)) + cells)
    _print_table(headers, table, f"account {account_name!r} has no channels")


# -- users ----------------------------------------------------------------------------


@main.group()
def user() -> None:
    """User extensions: a person with an extension number and a PIN."""


@user.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--name", required=True, help="Display name of the user.")
@click.option("--pin", required=True, help="PIN for 901 login and voicemail (digits, 4 or more).")
@click.option(
    "--channel", "channels", multiple=True, metavar="CHANNEL",
    help="Log the user in on this channel (repeatable).",
)
@pass_state
def user_add(
    state: _State, account_name: str, extension: str, name: str, pin: str,
    channels: tuple[str, ...],
) -> None:
    """Add user extension EXT to ACCOUNT."""
    u = state.store().add_user(account_name, extension, name, pin, channels)
    where = f", logged in on {', '.join(channels)}" if channels else ""
    click.echo(f"user {u.extension} ({u.name}) added to account {account_name!r}{where}")


@user.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def user_list(state: _State, account_name: str, as_json: bool) -> None:
    """List the users of ACCOUNT and the channels they are logged in on."""
    store = state.store()
    users = store.list_users(account_name)
    on = {u.id: [c.username for c in store.channels_of_user(u.id)] for u in users}
    if as_json:
        _print_json([{"extension": u.extension, "name": u.name, "channels": on[u.id]} for u in users])
        return
    _print_table(
        ("EXTENSION", "NAME", "CHANNELS"),
        ((u.extension, u.name, ", ".join(on[u.id])) for u in users),
        f"account {account_name!r} has no users",
    )


@main.command()
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("username", metavar="CHANNEL")
@click.option("--replace", is_flag=True,
              help="A twinning user already on the maximum of devices: log out there (901's 'press 1').")
@pass_state
def login(state: _State, account_name: str, extension: str, username: str, replace: bool) -> None:
    """Log user EXT in on CHANNEL (as dialling 901 on the device would).

    Without twinning the user moves here from their other devices (except devices they
    are permanently linked to); with twinning they are added, up to the account's maximum.
    """
    try:
        plan = state.store().login_user(account_name, extension, username, confirm_replace=replace)
    except LoginNeedsConfirmation as exc:
        raise ConfigError(f"{exc}; add --replace to log in on {username} and out of "
                          f"{', '.join(d.channel for d in exc.plan.log_out)}") from None
    click.echo(f"user {extension} logged in on channel {username}{_login_effects(plan)}")


@main.command()
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("username", metavar="CHANNEL")
@pass_state
def logout(state: _State, account_name: str, username: str) -> None:
    """Log the user out of CHANNEL (as dialling 902 on the device would)."""
    state.store().logout(account_name, username)
    click.echo(f"channel {username} logged out")


# -- calls ----------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def calls(state: _State, as_json: bool) -> None:
    """Show the calls in progress (published by the running daemon)."""
    store = state.store()
    live = store.list_live_calls()
    names = {a.id: a.name for a in store.list_accounts()}
    now = time.time()

    def as_row(c: LiveCall) -> dict[str, Any]:
        return {
            "call_id": c.call_id,
            "account": names.get(c.account_id, str(c.account_id)),
            "caller": c.caller,
            "callee": c.callee,
            "state": c.state,
            "started_at": c.started_at,
            "answered_at": c.answered_at,
            "duration": round(max(0.0, now - c.started_at)),
            "legs": list(c.legs),
        }

    rows = [as_row(c) for c in live]
    if as_json:
        _print_json(rows)
        return
    _print_table(
        ("ACCOUNT", "CALLER", "CALLEE", "STATE", "DURATION", "CALL-ID"),
        ((r["account"], r["caller"], r["callee"], r["state"], f"{r['duration']}s", r["call_id"])
         for r in rows),
        "no calls in progress",
    )


@main.command()
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1),
              help="Show at most N records.")
@pass_state
def cdr(state: _State, account_name: str, as_json: bool, limit: int) -> None:
    """Show the call detail records of ACCOUNT, newest first."""
    store = state.store()
    zone = ZoneInfo(store.account(account_name).timezone)
    records = store.list_cdrs(account_name, limit)

    def as_row(r: Cdr) -> dict[str, Any]:
        return {
            "call_id": r.call_id,
            "caller": r.caller,
            "caller_name": r.caller_name,
            "callee": r.callee,
            "started_at": r.started_at,
            "answered_at": r.answered_at,
            "ended_at": r.ended_at,
            "start": _local_time(r.started_at, zone),
            "duration": round(r.duration),
            "billsec": round(r.billsec),
            "disposition": r.disposition,
            "hangup_by": r.hangup_by,
            "sip_status": r.sip_status,
            "answered_by": r.answered_by,
            "quality": r.quality,
        }

    rows = [as_row(r) for r in records]
    if as_json:
        _print_json(rows)
        return
    _print_table(
        ("START", "CALLER", "CALLEE", "DISPOSITION", "DURATION", "TALK", "HANGUP", "STATUS",
         "ANSWERED BY", "QUALITY"),
        ((r["start"], f"{r['caller']} {r['caller_name']}".strip(), r["callee"], r["disposition"],
          f"{r['duration']}s", f"{r['billsec']}s", r["hangup_by"], r["sip_status"] or "",
          r["answered_by"], _quality_text(r["quality"])) for r in rows),
        f"account {account_name!r} has no call records",
    )


def _quality_text(quality: dict[str, Any]) -> str:
    """'loss 0.0%/0.0% jitter 2/3 ms' from the phones' RTCP reports (caller/callee side)."""
    sides = [quality.get("caller") or {}, quality.get("callee") or {}]
    if not any(side.get("remote_fraction_lost") is not None or side.get("remote_jitter_ms") is not None
               for side in sides):
        return ""

    def fmt(value: Any, unit: str, scale: float = 1.0) -> str:
        return "-" if value is None else f"{value * scale:.{1 if unit == '%' else 0}f}{unit}"

    loss = "/".join(fmt(side.get("remote_fraction_lost"), "%", 100.0) for side in sides)
    jitter = "/".join(fmt(side.get("remote_jitter_ms"), "") for side in sides)
    return f"loss {loss} jitter {jitter} ms"


@main.command("import")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False))
@pass_state
def import_(state: _State, account_name: str, path: str) -> None:
    """Import channels and users from a CSV file, all or nothing.

    The first line names the columns: channel,password,extension,name,pin. An empty
    password is generated; each user is logged in on the channel of its row.
    """
    count = state.store().import_csv(account_name, path)
    click.echo(f"imported {count} rows into account {account_name!r}")
    click.echo(f"show the passwords with: softswitch channel list {account_name} --passwords")


# -- the daemon -------------------------------------------------------------------------


def _parse_port_range(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    lo_text, sep, hi_text = value.partition("-")
    if sep and lo_text.isdigit() and hi_text.isdigit():
        lo, hi = int(lo_text), int(hi_text)
        if MIN_RTP_PORT <= lo < hi <= MAX_PORT:
            return lo, hi
    raise click.BadParameter(
        f"expected LO-HI with {MIN_RTP_PORT} <= LO < HI <= {MAX_PORT}, got {value!r}"
    )


def _print_demo(store: Store, rows: Sequence[tuple[str, str, str, str]], host: str, port: int) -> None:
    acc = store.account("demo")
    server = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    click.echo("Demo account ready. Register a softphone (e.g. Linphone, Zoiper, MicroSIP) with:")
    click.echo(f"  domain / realm: {acc.domain}")
    click.echo(f"  server (proxy): {server}:{port} (UDP; from another machine use this host's LAN address)")
    _print_table(
        ("  CHANNEL (username)", "PASSWORD", "EXTENSION", "NAME"),
        ([f"  {ch}", pw, ext, name] for ch, pw, ext, name in rows),
        "",
    )
    click.echo("Call another phone by dialling its extension (e.g. 202).")


def _demo_rows(store: Store) -> list[tuple[str, str, str, str]] | None:
    rows = store.ensure_demo()
    if rows is not None:
        return rows
    try:
        statuses = store.list_channels("demo")
    except ConfigError:
        return None
    return [
        (s.channel.username, s.channel.password, s.user.extension if s.user else "",
         s.user.name if s.user else "")
        for s in statuses
    ]


def _parse_algorithms(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(v.strip().upper() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in ("MD5", "SHA-256")]
    if not names or unknown:
        raise click.BadParameter(f"expected MD5 and/or SHA-256, got {value!r}")
    return names


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--sip-port", default=DEFAULT_SIP_PORT, show_default=True,
              type=click.IntRange(1, MAX_PORT), help="SIP port (UDP and TCP).")
@click.option("--rtp-ports", default=DEFAULT_RTP_PORTS, show_default=True,
              callback=_parse_port_range, metavar="LO-HI", help="UDP port range for RTP/RTCP.")
@click.option("--demo", is_flag=True, help="On an empty database create a demo account and print its credentials.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(LOG_LEVELS, case_sensitive=False), help="Logging level.")
@click.option("--trace-sip", is_flag=True, help="Log every SIP message sent and received.")
@click.option("--rtp-timeout", default=DEFAULT_RTP_TIMEOUT_S, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Hang up a call after this long without RTP.")
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
              help="Log lines as text or as one JSON object per line.")
@click.option("--digest-algorithms", default="MD5,SHA-256", show_default=True, callback=_parse_algorithms,
              metavar="LIST", help="Digest challenges offered, most preferred first (RFC 8760).")
@pass_state
def serve(
    state: _State, host: str, sip_port: int, rtp_ports: tuple[int, int], demo: bool,
    log_level: str, trace_sip: bool, rtp_timeout: float, digest_algorithms: tuple[str, ...],
    log_format: str,
) -> None:
    """Run the softswitch daemon (SIP registrar, proxy and B2BUA)."""
    store = state.store()
    if demo:
        rows = _demo_rows(store)
        if rows is None:
            click.echo("database is not empty and has no 'demo' account; no demo data created")
        else:
            _print_demo(store, rows, host, sip_port)
    store.close()  # the daemon opens its own connection
    try:  # lazy: the admin commands work without the SIP stack
        server = importlib.import_module("softswitch.server")
    except ModuleNotFoundError as exc:
        if exc.name not in ("softswitch.server", "softswitch"):
            raise
        raise ConfigError("the SIP server (softswitch.server) is not installed") from None
    server.run(
        store_path=state.db_path,
        host=host,
        sip_port=sip_port,
        rtp_ports=rtp_ports,
        log_level=log_level.upper(),
        trace_sip=trace_sip,
        rtp_timeout=rtp_timeout,
        digest_algorithms=digest_algorithms,
        log_format=log_format,
    )


# Command groups that live in their own modules register themselves on ``main``.
from cli import features as _features, reach as _reach, routing as _routing  # noqa: E402,F401


if __name__ == "__main__":  # pragma: no cover
    main()
