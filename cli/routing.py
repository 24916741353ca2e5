"""Routing commands (issue 5, SPEC §19): trunks, phone numbers, numberplan schemas,
numberplans, time schedule, holidays and manual override.

Times are entered and shown in the account's time zone. Commands that change one schema
take ``--schema N`` (default 1, the main schema); list commands show every schema unless
``--schema`` is given. See docs/routing.md.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from cli import _print_json, _print_table, _State, account, main, pass_state, user
from config.errors import ConfigError
from config.models import Account
from config.numberplan import ActivePlan, active_plan, schedule_gaps
from config.routing import (
    DAY_NAMES, MAIN_SCHEMA, MIN_TRUNK_PRIORITY, TRANSPORTS, PhoneNumber, ScheduleEntry, SchemaConfig, Trunk,
    format_clock, format_local, format_week_minute, normalise_number, parse_clock, parse_days, parse_local_datetime,
    parse_week_time,
)
from config.store import Store
from config.store_routing import TrunkStatus

T = TypeVar("T")

_schema_option = click.option("--schema", "schema", type=int, default=MAIN_SCHEMA, show_default=True,
                              help="Numberplan schema number.")
_schema_filter = click.option("--schema", "schema", type=int, default=None,
                              help="Only this schema (default: every schema of the account).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")


def _parsed(parse: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a parser of config.routing; its ValueError becomes the CLI's one-line error."""
    try:
        return parse(*args, **kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _schema_label(config: SchemaConfig) -> str:
    return f"schema {config.schema.number} ({config.schema.name})"


def _plan_label(config: SchemaConfig, plan: int | None) -> str:
    found = None if plan is None else config.plan(plan)
    return f"numberplan {plan}" + (f' "{found.name}"' if found else "")


def _configs(store: Store, acc: Account, schema: int | None) -> list[SchemaConfig]:
    numbers = [s.number for s in store.schemas(acc.id)] if schema is None else [schema]
    return [store.schema_config(acc.id, number) for number in numbers]


# -- account country ------------------------------------------------------------------------------


@account.command("country")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("country", required=False, metavar="[COUNTRY]")
@pass_state
def account_country(state: _State, account_name: str, country: str | None) -> None:
    """Show or set the country whose numbering rules normalise ACCOUNT's numbers (NL, BE, DE, GB, ...)."""
    store = state.store()
    acc = store.account(account_name)
    if country is None:
        click.echo(store.account_country(acc.id))
        return
    code = store.set_account_country(acc.id, country)
    click.echo(f"account {acc.name!r} now normalises numbers by the rules of {code}")


# -- trunks ------------------------------------------------------------------------------------------


@main.group()
def trunk() -> None:
    """SIP trunks: connections to a carrier, tried in priority order."""


def _trunk_summary(t: Trunk) -> str:
    auth = (", registers" if t.register else ", with credentials") if t.username else ""
    return f"{t.address} {t.transport}, priority {t.priority}{auth}"


@trunk.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("name")
@click.option("--host", required=True, metavar="HOST[:PORT]", help="The carrier's SIP server (port 5060 by default).")
@click.option("--transport", type=click.Choice(TRANSPORTS), default="udp", show_default=True)
@click.option("--username", default="", help="Digest username the carrier gave you.")
@click.option("--password", default="", help="Digest password the carrier gave you.")
@click.option("--register", is_flag=True, help="Register at the carrier (needs --username and --password).")
@click.option("--priority", type=int, default=MIN_TRUNK_PRIORITY, show_default=True,
              help="Fail-over order: lower is tried first.")
@pass_state
def trunk_add(state: _State, account_name: str, name: str, host: str, transport: str, username: str,
              password: str, register: bool, priority: int) -> None:
    """Add trunk NAME to ACCOUNT."""
    store = state.store()
    acc = store.account(account_name)
    t = store.add_trunk(acc.id, name, host, transport=transport, username=username, password=password,
                        register=register, priority=priority)
    click.echo(f"trunk {t.name!r} added to account {acc.name!r}: {_trunk_summary(t)}")


@trunk.command("set")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("name")
@click.option("--host", default=None, metavar="HOST[:PORT]", help="The carrier's SIP server.")
@click.option("--transport", type=click.Choice(TRANSPORTS), default=None)
@click.option("--username", default=None, help="Digest username ('' with --password '' removes both).")
@click.option("--password", default=None, help="Digest password.")
@click.option("--register/--no-register", default=None, help="Register at the carrier, or stop.")
@click.option("--priority", type=int, default=None, help="Fail-over order: lower is tried first.")
@pass_state
def trunk_set(state: _State, account_name: str, name: str, host: str | None, transport: str | None,
              username: str | None, password: str | None, register: bool | None, priority: int | None) -> None:
    """Change settings of trunk NAME; options not given stay as they are."""
    store = state.store()
    acc = store.account(account_name)
    t = store.update_trunk(acc.id, name, host=host, transport=transport, username=username, password=password,
                           register=register, priority=priority)
    click.echo(f"trunk {t.name!r} of account {acc.name!r}: {_trunk_summary(t)}")


@trunk.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@_json_option
@click.option("--passwords", is_flag=True, help="Also show the trunk passwords.")
@pass_state
def trunk_list(state: _State, account_name: str, as_json: bool, passwords: bool) -> None:
    """List the trunks of ACCOUNT in fail-over order, with what the running daemon knows
    of each (STATUS: up, down, registering, auth failed; unknown when no daemon monitors it)."""
    store = state.store()
    acc = store.account(account_name)
    zone = ZoneInfo(acc.timezone)
    trunks = store.trunks(acc.id)
    carried = {t.id: sum(1 for n in store.numbers(acc.id) if n.trunk_id == t.id) for t in trunks}
    statuses = store.trunk_statuses(acc.id)
    rows = [{"name": t.name, "host": t.host, "port": t.port, "transport": t.transport, "username": t.username,
             **({"password": t.password} if passwords else {}), "register": t.register, "priority": t.priority,
             "numbers": carried[t.id], **_status_fields(statuses.get(t.id), zone)} for t in trunks]
    if as_json:
        _print_json(rows)
        return
    _print_table(
        ("PRIORITY", "NAME", "HOST", "TRANSPORT", "USERNAME", *(["PASSWORD"] if passwords else []), "REGISTER",
         "NUMBERS", "STATUS"),
        ((t.priority, t.name, t.address, t.transport, t.username, *([t.password] if passwords else []),
          "yes" if t.register else "no", carried[t.id], _status_text(row)) for t, row in zip(trunks, rows)),
        f"account {acc.name!r} has no trunks (add one with: softswitch trunk add)")


def _status_fields(status: TrunkStatus | None, zone: ZoneInfo) -> dict[str, Any]:
    """``status``, ``status_detail`` and ``status_since`` (local time) of one trunk."""
    if status is None:
        return {"status": "unknown", "status_detail": "", "status_since": None}
    since = dt.datetime.fromtimestamp(status.since, zone).strftime("%Y-%m-%d %H:%M:%S")
    return {"status": status.state, "status_detail": status.detail, "status_since": since}


def _status_text(row: dict[str, Any]) -> str:
    """``down since 2026-05-04 10:31:07 (OPTIONS timed out)``; ``unknown`` without a daemon."""
    if row["status_since"] is None:
        return row["status"]
    detail = f" ({row['status_detail']})" if row["status_detail"] else ""
    return f"{row['status']} since {row['status_since']}{detail}"


@trunk.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("name")
@pass_state
def trunk_delete(state: _State, account_name: str, name: str) -> None:
    """Delete trunk NAME; the numbers it carried stay, without a trunk."""
    store = state.store()
    acc = store.account(account_name)
    carried = store.delete_trunk(acc.id, name)
    tail = f"; {_plural(carried, 'number')} of the account now have no trunk" if carried else ""
    click.echo(f"trunk {name!r} deleted from account {acc.name!r}{tail}")


# -- phone numbers ----------------------------------------------------------------------------------


@main.group()
def number() -> None:
    """Phone numbers (DIDs) of an account, stored in E.164 form."""


@number.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("phone_number", metavar="NUMBER")
@click.option("--trunk", "trunk_name", default=None, metavar="NAME", help="The trunk that delivers this number.")
@click.option("--description", default="", help="A note for administrators.")
@pass_state
def number_add(state: _State, account_name: str, phone_number: str, trunk_name: str | None,
               description: str) -> None:
    """Add NUMBER (+31201234567, or national 020 1234567) to ACCOUNT."""
    store = state.store()
    acc = store.account(account_name)
    added = store.add_number(acc.id, phone_number, trunk=trunk_name, description=description)
    via = f" (trunk {trunk_name})" if trunk_name else ""
    click.echo(f"{added.number} added to account {acc.name!r}{via}")


def _number_rows(store: Store, acc: Account) -> list[dict[str, Any]]:
    trunks = {t.id: t.name for t in store.trunks(acc.id)}
    users = {u.id: u for u in store.list_users(acc.name)}
    routed = {e.did: c.schema.number for c in _configs(store, acc, None) for e in c.entries}

    def row(n: PhoneNumber) -> dict[str, Any]:
        owner = users.get(n.user_id) if n.user_id is not None else None
        return {"number": n.number, "trunk": trunks.get(n.trunk_id) if n.trunk_id else None,
                "personal": owner.extension if owner else None, "schema": routed.get(n.number),
                "description": n.description}

    return [row(n) for n in store.numbers(acc.id)]


@number.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@_json_option
@pass_state
def number_list(state: _State, account_name: str, as_json: bool) -> None:
    """List the numbers of ACCOUNT: trunk, and the schema or user they belong to."""
    store = state.store()
    acc = store.account(account_name)
    rows = _number_rows(store, acc)
    if as_json:
        _print_json(rows)
        return

    def use(r: dict[str, Any]) -> str:
        if r["personal"]:
            return f"personal number of {r['personal']}"
        return f"schema {r['schema']}" if r["schema"] else "not routed"

    _print_table(("NUMBER", "TRUNK", "ROUTING", "DESCRIPTION"),
                 ((r["number"], r["trunk"], use(r), r["description"]) for r in rows),
                 f"account {acc.name!r} has no numbers (add one with: softswitch number add)")


@number.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("phone_number", metavar="NUMBER")
@pass_state
def number_delete(state: _State, account_name: str, phone_number: str) -> None:
    """Delete NUMBER from ACCOUNT and from every numberplan."""
    store = state.store()
    acc = store.account(account_name)
    e164 = _parsed(normalise_number, phone_number, store.account_country(acc.id))
    mapped = store.delete_number(acc.id, phone_number)
    tail = f" (removed from {_plural(mapped, 'numberplan')})" if mapped else ""
    click.echo(f"{e164} deleted from account {acc.name!r}{tail}")


@user.command("number")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("phone_number", metavar="NUMBER")
@click.option("--remove", is_flag=True, help="Unlink the personal number (the account keeps the number).")
@pass_state
def user_number(state: _State, account_name: str, extension: str, phone_number: str, remove: bool) -> None:
    """Make NUMBER the personal number of user EXT (or unlink it with --remove).

    A new number is added to the account; an existing one must be in no numberplan.
    """
    store = state.store()
    acc = store.account(account_name)
    if remove:
        n = store.remove_personal_number(acc.id, extension, phone_number)
        click.echo(f"{n.number} is no longer a personal number of user {extension}; it stays a number of "
                   f"account {acc.name!r} (delete it with: softswitch number delete)")
        return
    n = store.set_personal_number(acc.id, extension, phone_number)
    click.echo(f"{n.number} is now the personal number of user {extension}")


# -- schemas ------------------------------------------------------------------------------------------


@main.group()
def schema() -> None:
    """Numberplan schemas: sets of numberplans with their own time configuration."""


@schema.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("name")
@pass_state
def schema_add(state: _State, account_name: str, name: str) -> None:
    """Add a schema called NAME to ACCOUNT; it gets the next number."""
    store = state.store()
    acc = store.account(account_name)
    added = store.add_schema(acc.id, name)
    click.echo(f"schema {added.number} ({added.name}) added to account {acc.name!r}")


@schema.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@_json_option
@pass_state
def schema_list(state: _State, account_name: str, as_json: bool) -> None:
    """List the schemas of ACCOUNT."""
    store = state.store()
    acc = store.account(account_name)
    rows = [{"schema": c.schema.number, "name": c.schema.name, "numberplans": len(c.plans),
             "numbers": len({e.did for e in c.entries}), "schedule_entries": len(c.schedule),
             "holidays": len(c.holidays), "override": c.override} for c in _configs(store, acc, None)]
    if as_json:
        _print_json(rows)
        return
    _print_table(("SCHEMA", "NAME", "NUMBERPLANS", "NUMBERS", "SCHEDULE", "HOLIDAYS", "OVERRIDE"),
                 ((r["schema"], r["name"], r["numberplans"], r["numbers"], r["schedule_entries"], r["holidays"],
                   r["override"]) for r in rows), "")


@schema.command("rename")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("number", metavar="SCHEMA", type=int)
@click.argument("name")
@pass_state
def schema_rename(state: _State, account_name: str, number: int, name: str) -> None:
    """Rename schema SCHEMA (not schema 1, which carries the account's name)."""
    store = state.store()
    acc = store.account(account_name)
    renamed = store.rename_schema(acc.id, number, name)
    click.echo(f"schema {renamed.number} of account {acc.name!r} is now called {renamed.name!r}")


@schema.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("number", metavar="SCHEMA", type=int)
@pass_state
def schema_delete(state: _State, account_name: str, number: int) -> None:
    """Delete schema SCHEMA with its numberplans, schedule, holidays and override (never schema 1)."""
    store = state.store()
    acc = store.account(account_name)
    gone = store.delete_schema(acc.id, number)
    dids = len({e.did for e in gone.entries})
    click.echo(f"{_schema_label(gone)} deleted with {_plural(len(gone.plans), 'numberplan')}, "
               f"{_plural(len(gone.schedule), 'schedule entry', 'schedule entries')} and "
               f"{_plural(len(gone.holidays), 'holiday')}"
               + (f"; {_plural(dids, 'number')} it routed are no longer routed" if dids else ""))


# -- numberplans --------------------------------------------------------------------------------------


@main.group()
def numberplan() -> None:
    """Numberplans: which extension each phone number reaches, by time of day."""


@numberplan.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@click.option("--name", required=True, help="Name of the numberplan, e.g. Day, Night, Christmas.")
@_schema_option
@pass_state
def numberplan_add(state: _State, account_name: str, plan: int, name: str, schema: int) -> None:
    """Add numberplan PLAN (1-99) to a schema of ACCOUNT."""
    store = state.store()
    acc = store.account(account_name)
    added = store.add_numberplan(acc.id, schema, plan, name)
    click.echo(f'numberplan {added.number} "{added.name}" added to schema {schema} of account {acc.name!r}')


@numberplan.command("rename")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@click.argument("name")
@_schema_option
@pass_state
def numberplan_rename(state: _State, account_name: str, plan: int, name: str, schema: int) -> None:
    """Rename numberplan PLAN."""
    store = state.store()
    acc = store.account(account_name)
    renamed = store.rename_numberplan(acc.id, schema, plan, name)
    click.echo(f'numberplan {renamed.number} of schema {schema} is now called "{renamed.name}"')


def _active_now(config: SchemaConfig, zone: ZoneInfo) -> ActivePlan:
    return active_plan(config, dt.datetime.now(dt.timezone.utc), zone)


@numberplan.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@_schema_filter
@_json_option
@pass_state
def numberplan_list(state: _State, account_name: str, schema: int | None, as_json: bool) -> None:
    """List the numberplans of ACCOUNT; the one active now is marked with its reason."""
    store = state.store()
    acc = store.account(account_name)
    zone = ZoneInfo(acc.timezone)
    rows = []
    for config in _configs(store, acc, schema):
        now = _active_now(config, zone)
        rows += [{"schema": config.schema.number, "plan": p.number, "name": p.name,
                  "numbers": len(config.plan_entries(p.number)),
                  "active": now.reason if now.plan == p.number else None} for p in config.plans]
    if as_json:
        _print_json(rows)
        return
    _print_table(("SCHEMA", "PLAN", "NAME", "NUMBERS", "ACTIVE NOW"),
                 ((r["schema"], r["plan"], r["name"], r["numbers"], f"yes ({r['active']})" if r["active"] else "")
                  for r in rows),
                 f"account {acc.name!r} has no numberplans (add one with: softswitch numberplan add)")


@numberplan.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@_schema_option
@pass_state
def numberplan_delete(state: _State, account_name: str, plan: int, schema: int) -> None:
    """Delete numberplan PLAN (refused while the schedule, a holiday or the override uses it)."""
    store = state.store()
    acc = store.account(account_name)
    gone = store.delete_numberplan(acc.id, schema, plan)
    click.echo(f'numberplan {gone.number} "{gone.name}" deleted from schema {schema} of account {acc.name!r}')


@numberplan.command("copy")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("source", metavar="FROM", type=int)
@click.argument("target", metavar="TO", type=int)
@click.option("--name", default=None, help="Name of the target (default: kept, or 'FROM's name (copy)' when new).")
@_schema_option
@pass_state
def numberplan_copy(state: _State, account_name: str, source: int, target: int, name: str | None,
                    schema: int) -> None:
    """Copy the numbers of numberplan FROM onto TO (TO is overwritten, or created)."""
    store = state.store()
    acc = store.account(account_name)
    copied = store.copy_numberplan(acc.id, schema, source, target, name)
    count = len(store.schema_config(acc.id, schema).plan_entries(target))
    click.echo(f'numberplan {source} copied onto numberplan {copied.number} "{copied.name}" '
               f"({_plural(count, 'number')})")


@numberplan.command("map")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@click.argument("did", metavar="NUMBER")
@click.argument("extension", metavar="EXT")
@click.option("--prefix", default="", help="Display prefix shown on the answering phone.")
@_schema_option
@pass_state
def numberplan_map(state: _State, account_name: str, plan: int, did: str, extension: str, prefix: str,
                   schema: int) -> None:
    """In numberplan PLAN, route calls to NUMBER to extension EXT."""
    store = state.store()
    acc = store.account(account_name)
    entry = store.map_number(acc.id, schema, plan, did, extension, prefix)
    shown = f" with prefix {entry.prefix!r}" if entry.prefix else ""
    click.echo(f"numberplan {plan} of schema {schema}: {entry.did} → {entry.extension}{shown}")


@numberplan.command("unmap")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@click.argument("did", metavar="NUMBER")
@_schema_option
@pass_state
def numberplan_unmap(state: _State, account_name: str, plan: int, did: str, schema: int) -> None:
    """Remove NUMBER from numberplan PLAN."""
    store = state.store()
    acc = store.account(account_name)
    entry = store.unmap_number(acc.id, schema, plan, did)
    click.echo(f"numberplan {plan} of schema {schema}: {entry.did} removed (it went to {entry.extension})")


@numberplan.command("show")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@_schema_option
@_json_option
@pass_state
def numberplan_show(state: _State, account_name: str, plan: int, schema: int, as_json: bool) -> None:
    """Show where each number goes in numberplan PLAN."""
    store = state.store()
    acc = store.account(account_name)
    config = store.schema_config(acc.id, schema)
    found = config.plan(plan)
    if found is None:
        raise ConfigError(f"numberplan {plan} does not exist in {_schema_label(config)}")
    names = {u.extension: u.name for u in store.list_users(acc.name)}
    rows = [{"number": e.did, "extension": e.extension, "name": names.get(e.extension, ""), "prefix": e.prefix}
            for e in config.plan_entries(plan)]
    if as_json:
        _print_json(rows)
        return
    click.echo(f'numberplan {plan} "{found.name}" of {_schema_label(config)}')
    _print_table(("NUMBER", "EXTENSION", "NAME", "PREFIX"),
                 ((r["number"], r["extension"], r["name"], repr(r["prefix"]) if r["prefix"] else "") for r in rows),
                 "no numbers (add one with: softswitch numberplan map)")


def _active_line(config: SchemaConfig, active: ActivePlan) -> str:
    if active.plan is None:
        return f"{_schema_label(config)}: no active numberplan ({active.detail})"
    return f"{_schema_label(config)}: {_plan_label(config, active.plan)} — {active.detail}"


@numberplan.command("active")
@click.argument("account_name", metavar="ACCOUNT")
@_schema_filter
@click.option("--at", "at_text", default=None, metavar="'YYYY-MM-DD HH:MM'",
              help="Ask about this moment (account time zone) instead of now.")
@_json_option
@pass_state
def numberplan_active(state: _State, account_name: str, schema: int | None, at_text: str | None,
                      as_json: bool) -> None:
    """Show which numberplan is active and why: manual override, holiday or time schedule."""
    store = state.store()
    acc = store.account(account_name)
    zone = ZoneInfo(acc.timezone)
    at = dt.datetime.now(zone) if at_text is None else _parsed(parse_local_datetime, at_text, zone)
    results = [(config, active_plan(config, at, zone)) for config in _configs(store, acc, schema)]
    if as_json:
        _print_json([{"schema": c.schema.number, "plan": a.plan, "reason": a.reason, "detail": a.detail,
                      "source_id": a.source_id, "at": at.isoformat()} for c, a in results])
        return
    for config, active in results:
        click.echo(_active_line(config, active))


# -- time schedule -----------------------------------------------------------------------------------


@main.group()
def schedule() -> None:
    """The weekly time schedule of a schema: which numberplan is active when."""


@schedule.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@click.option("--days", default=None, help="Per-day entry: weekdays, e.g. mon-fri or sat,sun.")
@click.option("--from", "start", default=None, metavar="HH:MM", help="Per-day entry: start time.")
@click.option("--to", "end", default=None, metavar="HH:MM",
              help="Per-day entry: end time (24:00 = midnight; earlier than --from = the next day).")
@click.option("--period", nargs=2, default=None, metavar="'DAY HH:MM' 'DAY HH:MM'",
              help="Per-period entry across the week, e.g. --period 'fri 18:00' 'mon 08:00'.")
@_schema_option
@pass_state
def schedule_add(state: _State, account_name: str, plan: int, days: str | None, start: str | None,
                 end: str | None, period: tuple[str, str] | None, schema: int) -> None:
    """Make numberplan PLAN active at the given times each week."""
    store = state.store()
    acc = store.account(account_name)
    per_day = days is not None or start is not None or end is not None
    if period and per_day:
        raise ConfigError("give either --period or --days/--from/--to, not both")
    if period:
        entry = store.add_period_entry(acc.id, schema, plan, _parsed(parse_week_time, period[0]),
                                       _parsed(parse_week_time, period[1], end=True))
    elif days is not None and start is not None and end is not None:
        entry = store.add_day_entry(acc.id, schema, plan, _parsed(parse_days, days), _parsed(parse_clock, start),
                                    _parsed(parse_clock, end, end=True))
    else:
        raise ConfigError("a schedule entry needs --days, --from and --to, or --period START END")
    config = store.schema_config(acc.id, schema)
    click.echo(f"schedule entry {entry.id} added to {_schema_label(config)}: {entry.describe()} uses "
               f"{_plan_label(config, plan)}")


def _entry_json(schema_number: int, entry: ScheduleEntry) -> dict[str, Any]:
    if entry.kind == "period":
        start, end = format_week_minute(entry.start), format_week_minute(entry.end, end=True)
    else:
        start, end = format_clock(entry.start), format_clock(entry.end)
    return {"id": entry.id, "schema": schema_number, "plan": entry.plan, "kind": entry.kind,
            "days": [DAY_NAMES[d] for d in sorted(entry.days)], "start": start, "end": end,
            "text": entry.describe()}


def _gap_warning(config: SchemaConfig) -> str | None:
    gaps = schedule_gaps(config.schedule)
    if not gaps:
        return None
    if not config.schedule:
        return f"warning: {_schema_label(config)} has no time schedule: no numberplan is active unless set by " \
               "a holiday or the override"
    start, end = gaps[0]
    return (f"warning: the time schedule of {_schema_label(config)} has {_plural(len(gaps), 'gap')} with no "
            f"numberplan, the first {format_week_minute(start)} → {format_week_minute(end, end=True)}")


@schedule.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@_schema_filter
@_json_option
@pass_state
def schedule_list(state: _State, account_name: str, schema: int | None, as_json: bool) -> None:
    """List the time-schedule entries; warns (on stderr) about times with no numberplan."""
    store = state.store()
    acc = store.account(account_name)
    configs = _configs(store, acc, schema)
    entries = [(c, e) for c in configs for e in sorted(c.schedule, key=lambda e: e.intervals()[0])]
    if as_json:
        _print_json([_entry_json(c.schema.number, e) for c, e in entries])
    else:
        _print_table(("ID", "SCHEMA", "WHEN", "NUMBERPLAN"),
                     ((e.id, c.schema.number, e.describe(), _plan_label(c, e.plan)) for c, e in entries),
                     f"account {acc.name!r} has no time schedule (add entries with: softswitch schedule add)")
    for config in configs:
        warning = _gap_warning(config)
        if warning:
            click.echo(warning, err=True)


@schedule.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("entry_id", metavar="ENTRY_ID", type=int)
@pass_state
def schedule_delete(state: _State, account_name: str, entry_id: int) -> None:
    """Delete time-schedule entry ENTRY_ID (see schedule list)."""
    store = state.store()
    acc = store.account(account_name)
    entry = store.delete_schedule_entry(acc.id, entry_id)
    click.echo(f"schedule entry {entry.id} deleted ({entry.describe()} used numberplan {entry.plan})")


# -- holidays ------------------------------------------------------------------------------------------


@main.group()
def holiday() -> None:
    """Holiday table: a numberplan for a stretch of dates (beats the time schedule)."""


@holiday.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@click.option("--from", "start", required=True, metavar="'YYYY-MM-DD HH:MM'", help="Start (account time zone).")
@click.option("--to", "end", required=True, metavar="'YYYY-MM-DD HH:MM'", help="End (account time zone).")
@click.option("--description", default="", help="What the holiday is, e.g. Christmas.")
@_schema_option
@pass_state
def holiday_add(state: _State, account_name: str, plan: int, start: str, end: str, description: str,
                schema: int) -> None:
    """Make numberplan PLAN active from --from to --to."""
    store = state.store()
    acc = store.account(account_name)
    zone = ZoneInfo(acc.timezone)
    added = store.add_holiday(acc.id, schema, plan, _parsed(parse_local_datetime, start, zone),
                              _parsed(parse_local_datetime, end, zone), description)
    config = store.schema_config(acc.id, schema)
    about = f" ({added.description})" if added.description else ""
    click.echo(f"holiday {added.id} added to {_schema_label(config)}: {_plan_label(config, plan)} from "
               f"{format_local(added.start, zone)} to {format_local(added.end, zone)}{about}")


@holiday.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@_schema_filter
@_json_option
@pass_state
def holiday_list(state: _State, account_name: str, schema: int | None, as_json: bool) -> None:
    """List the holidays of ACCOUNT, with whether each is past, current or upcoming."""
    store = state.store()
    acc = store.account(account_name)
    zone = ZoneInfo(acc.timezone)
    now = time.time()

    def status(start: float, end: float) -> str:
        return "expired" if end <= now else "current" if start <= now else "upcoming"

    rows = [{"id": h.id, "schema": c.schema.number, "plan": h.plan, "from": format_local(h.start, zone),
             "to": format_local(h.end, zone), "description": h.description, "status": status(h.start, h.end)}
            for c in _configs(store, acc, schema) for h in c.holidays]
    if as_json:
        _print_json(rows)
        return
    _print_table(("ID", "SCHEMA", "PLAN", "FROM", "TO", "STATUS", "DESCRIPTION"),
                 ((r["id"], r["schema"], r["plan"], r["from"], r["to"], r["status"], r["description"])
                  for r in rows),
                 f"account {acc.name!r} has no holidays")


@holiday.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("holiday_id", metavar="ID", type=int)
@pass_state
def holiday_delete(state: _State, account_name: str, holiday_id: int) -> None:
    """Delete holiday ID (see holiday list)."""
    store = state.store()
    acc = store.account(account_name)
    gone = store.delete_holiday(acc.id, holiday_id)
    click.echo(f"holiday {gone.id}{f' ({gone.description})' if gone.description else ''} deleted")


@holiday.command("purge")
@click.argument("account_name", metavar="ACCOUNT")
@pass_state
def holiday_purge(state: _State, account_name: str) -> None:
    """Delete the holidays of ACCOUNT that have ended."""
    store = state.store()
    acc = store.account(account_name)
    count = store.purge_holidays(acc.id, time.time())
    click.echo(f"removed {_plural(count, 'expired holiday')} from account {acc.name!r}")


# -- manual override ------------------------------------------------------------------------------------


@main.group()
def override() -> None:
    """Manual override: force a numberplan regardless of holidays and schedule."""


@override.command("set")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("plan", type=int)
@_schema_option
@pass_state
def override_set(state: _State, account_name: str, plan: int, schema: int) -> None:
    """Make numberplan PLAN active until the override is cleared."""
    store = state.store()
    acc = store.account(account_name)
    store.set_override(acc.id, schema, plan)
    config = store.schema_config(acc.id, schema)
    click.echo(f"{_schema_label(config)}: {_plan_label(config, plan)} is active until the override is cleared")


@override.command("clear")
@click.argument("account_name", metavar="ACCOUNT")
@_schema_option
@pass_state
def override_clear(state: _State, account_name: str, schema: int) -> None:
    """Return to the holidays and the time schedule."""
    store = state.store()
    acc = store.account(account_name)
    previous = store.clear_override(acc.id, schema)
    config = store.schema_config(acc.id, schema)
    if previous is None:
        click.echo(f"{_schema_label(config)} has no override; the holidays and time schedule decide")
        return
    click.echo(f"{_schema_label(config)}: override of {_plan_label(config, previous)} cleared; "
               "the holidays and time schedule decide again")

