"""``softswitch reach``: REACH, the per-user reachability rules (SPEC §4, §29).

Statuses (with a weekly schedule or set by hand) × call classes → profiles; profiles set
the ring sequence, forwards, caller ID, do-not-disturb and call waiting. ``reach show``
explains which status, class and profile apply to a call and what would ring, in order:
the administrator's main debugging tool. The model is in config/reach.py, the guide in
docs/reach.md. Every change is one transaction; show/list commands take ``--json``.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import click

from cli import _print_json, _print_table, _State, main, pass_state
from config import reach
from config.errors import ConfigError
from config.models import Account, User
from config.reach import Action, Profile, ReachConfig, ReachDecision, Settings

_FORWARD_KINDS = ("always", "busy", "noanswer", "unreachable")
_LABEL_WIDTH = 9
_VALUE_WIDTH = 15


@main.group("reach")
def reach_group() -> None:
    """REACH: per-user statuses, profiles, call classes, forwards and call barring."""


def _account_time(account: Account, text: str) -> datetime:
    """A local time argument ('2026-12-01 17:00') in the account's time zone."""
    try:
        return reach.parse_local_datetime(text, ZoneInfo(account.timezone))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _local(at: datetime | None, account: Account) -> str | None:
    return None if at is None else reach.format_local(at, ZoneInfo(account.timezone))


def _until_text(at: datetime | None, account: Account) -> str:
    return "until cleared" if at is None else f"until {_local(at, account)}"


# -- profiles -------------------------------------------------------------------------------


@reach_group.group("profile")
def profile_group() -> None:
    """Profiles: what happens to a call (ring sequence, forwards, caller ID, DND)."""


@profile_group.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("name")
@click.option("--colour", default="", help="A colour name (red) or #rrggbb, for the user's overview.")
@pass_state
def profile_add(state: _State, account_name: str, extension: str, name: str, colour: str) -> None:
    """Add profile NAME to user EXT; every setting is inherited from the default profile."""
    profile = state.store().add_reach_profile(account_name, extension, name, colour)
    click.echo(f"profile {profile.name!r} added to user {extension}; it inherits everything from default")


@profile_group.command("set")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("profile", metavar="PROFILE")
@click.option("--ring", metavar="SEQUENCE",
              help='Ring sequence, e.g. "acme-201:20;acme-202,acme-203:15": groups (;) ring in order, '
                   'devices (,) of a group together, :S seconds (else the ring time); "all" = all devices.')
@click.option("--forward-always", metavar="DEST", help="Forward every call: ext:NNN, ext:voicemail, +31… or 0….")
@click.option("--no-forward-always", is_flag=True, help="No unconditional forward (do not inherit one).")
@click.option("--forward-busy", metavar="DEST", help="Forward when busy (or do not disturb).")
@click.option("--no-forward-busy", is_flag=True, help="No forward on busy.")
@click.option("--forward-noanswer", metavar="DEST", help="Forward when the ring sequence is not answered.")
@click.option("--no-forward-noanswer", is_flag=True, help="No forward on no answer.")
@click.option("--noanswer-timeout", type=int, metavar="S",
              help="Ring time in seconds (5-300) of ring groups without their own timeout.")
@click.option("--forward-unreachable", metavar="DEST", help="Forward when no device can be reached.")
@click.option("--no-forward-unreachable", is_flag=True, help="No forward when unreachable.")
@click.option("--caller-id", metavar="NUM",
              help="Caller ID on external calls: a DID (+31…), company or anonymous.")
@click.option("--forward-caller-id", type=click.Choice(reach.FORWARD_CALLER_IDS),
              help="Caller ID on forwarded external calls: the calling or the called number.")
@click.option("--dnd/--no-dnd", default=None, help="Do not disturb.")
@click.option("--call-waiting/--no-call-waiting", default=None, help="Offer a second call while in a call.")
@click.option("--colour", help="A colour name or #rrggbb.")
@click.option("--inherit", multiple=True, metavar="SETTING",
              help="Unset SETTING (e.g. forward-busy): inherit it from default (repeatable).")
@pass_state
def profile_set(state: _State, account_name: str, extension: str, profile: str, **options: Any) -> None:
    """Change settings of PROFILE of user EXT ("default" is the default profile)."""
    values: dict[str, object] = {}
    for kind in _FORWARD_KINDS:
        destination, off = options.pop(f"forward_{kind}"), options.pop(f"no_forward_{kind}")
        if destination is not None and off:
            raise ConfigError(f"--forward-{kind} and --no-forward-{kind} contradict each other")
        if destination is not None or off:
            values[f"forward_{kind}"] = reach.NO_FORWARD if off else destination
    inherit = options.pop("inherit")
    values.update({name: value for name, value in options.items() if value is not None})
    updated = state.store().set_reach_profile(account_name, extension, profile, values, inherit)
    click.echo(f"profile {updated.name!r} of user {extension} updated")


def _setting_text(profile: Profile, name: str) -> str:
    """A profile's own setting as text; 'inherit' (custom) or the built-in value (default) when unset."""
    value = getattr(profile, name)
    if value is None:
        if not profile.is_default:
            return "inherit"
        value = getattr(reach.BUILTIN, name)
    return _value_text(name, value)


def _value_text(name: str, value: object) -> str:
    if name == "ring":
        return "all devices" if not value else reach.format_ring(value)  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == reach.NO_FORWARD:
        return "-"
    return str(value)


def _profile_json(profile: Profile, config: ReachConfig) -> dict[str, Any]:
    settings, inherited = reach.resolve_profile(profile, config.default)
    own = {name: getattr(profile, name) for name in reach.SETTING_FIELDS}
    own["ring"] = None if profile.ring is None else reach.format_ring(profile.ring)
    return {"name": profile.name, "colour": profile.colour, "default": profile.is_default, "settings": own,
            "inherited": [n.replace("_", "-") for n in inherited], "effective": _settings_json(settings)}


def _settings_json(settings: Settings) -> dict[str, Any]:
    values = {name: getattr(settings, name) for name in reach.SETTING_FIELDS}
    values["ring"] = [{"devices": list(g.devices), "timeout": g.timeout} for g in settings.ring]
    return values


@profile_group.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def profile_list(state: _State, account_name: str, extension: str, as_json: bool) -> None:
    """List the profiles of user EXT with their own settings ('inherit': from default)."""
    store = state.store()
    _, user = store.reach_user(account_name, extension)
    config = store.reach_config(user.id)
    profiles = (config.default, *config.profiles)
    if as_json:
        _print_json([_profile_json(p, config) for p in profiles])
        return
    _print_table(
        ("PROFILE", "COLOUR", "RING", "ALWAYS", "BUSY", "NO-ANSWER", "RING-TIME", "UNREACHABLE", "CALLER-ID",
         "FWD-CALLER-ID", "DND", "WAITING"),
        ((p.name, p.colour or "-", *(_setting_text(p, name) for name in reach.SETTING_FIELDS)) for p in profiles),
        "",
    )


@profile_group.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("name")
@pass_state
def profile_delete(state: _State, account_name: str, extension: str, name: str) -> None:
    """Delete profile NAME of user EXT and the class mappings that use it."""
    mappings = state.store().delete_reach_profile(account_name, extension, name)
    also = f" and {mappings} class mapping(s) that used it" if mappings else ""
    click.echo(f"profile {name!r} of user {extension} deleted{also}")


# -- statuses and the schedule --------------------------------------------------------------


@reach_group.group("status")
def status_group() -> None:
    """Statuses ("available", "in a meeting", …): chosen by hand or by the weekly schedule."""


@status_group.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("name")
@pass_state
def status_add(state: _State, account_name: str, extension: str, name: str) -> None:
    """Add status NAME to user EXT."""
    added = state.store().add_reach_status(account_name, extension, name)
    click.echo(f"status {added!r} added to user {extension}")


@status_group.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def status_list(state: _State, account_name: str, extension: str, as_json: bool) -> None:
    """List the statuses of user EXT with their schedule entries and class mappings."""
    store = state.store()
    account, user = store.reach_user(account_name, extension)
    config = store.reach_config(user.id)
    manual = config.manual
    rows = [{
        "status": name,
        "schedule": [e.label for e in config.schedule if e.status == name],
        "classes": {m.call_class: m.profile for m in config.class_map if m.status == name},
        "manual": manual is not None and manual.status == name,
        "manual_until": _local(manual.until, account) if manual is not None and manual.status == name else None,
    } for name in config.statuses]
    if as_json:
        _print_json(rows)
        return
    _print_table(
        ("STATUS", "SCHEDULE", "CLASSES", "MANUAL"),
        ((r["status"], "; ".join(r["schedule"]) or "-",
          ", ".join(f"{c} → {p}" for c, p in r["classes"].items()) or "-",
          _until_text(manual.until, account) if r["manual"] and manual else "")
         for r in rows),
        "",
    )


@status_group.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("name")
@pass_state
def status_delete(state: _State, account_name: str, extension: str, name: str) -> None:
    """Delete status NAME of user EXT with its schedule entries and class mappings."""
    state.store().delete_reach_status(account_name, extension, name)
    click.echo(f"status {name!r} of user {extension} deleted with its schedule entries and class mappings")


@status_group.command("set")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("name")
@click.option("--until", metavar="TIME", help='End time in the account\'s time zone, e.g. "2026-12-01 17:00".')
@pass_state
def status_set(state: _State, account_name: str, extension: str, name: str, until: str | None) -> None:
    """Set the status of user EXT by hand; it overrides the schedule until TIME or cleared."""
    store = state.store()
    account, _ = store.reach_user(account_name, extension)
    end = None if until is None else _account_time(account, until)
    store.set_manual_status(account_name, extension, name, end)
    click.echo(f"user {extension} is {name!r} {_until_text(end, account)}")


@status_group.command("clear")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@pass_state
def status_clear(state: _State, account_name: str, extension: str) -> None:
    """Clear the manual status of user EXT: the schedule decides again."""
    if state.store().clear_manual_status(account_name, extension):
        click.echo(f"manual status of user {extension} cleared; the schedule applies")
    else:
        click.echo(f"user {extension} had no manual status")


@reach_group.group("schedule")
def schedule_group() -> None:
    """The weekly status schedule (account time zone, local wall time)."""


@schedule_group.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("status")
@click.option("--days", metavar="DAYS", help="Weekdays: mon, mon-fri, sat,sun.")
@click.option("--from", "start", metavar="HH:MM", help="Start time on those days.")
@click.option("--to", "end", metavar="HH:MM", help="End time; at or before --from: the next day.")
@click.option("--period", nargs=2, metavar='"DAY HH:MM" "DAY HH:MM"',
              help='A period across the week instead, e.g. "fri 18:00" "mon 08:00".')
@pass_state
def schedule_add(state: _State, account_name: str, extension: str, status: str, days: str | None,
                 start: str | None, end: str | None, period: tuple[str, str] | None) -> None:
    """Add a schedule entry: in that time user EXT has STATUS."""
    if period and (days or start or end):
        raise ConfigError("give either --period or --days/--from/--to, not both")
    if not period and not (days and start and end):
        raise ConfigError("give --days, --from and --to (or --period FROM TO)")
    first, last = period if period else (start, end)
    entry = state.store().add_reach_schedule(account_name, extension, status, first or "", last or "",
                                             None if period else days)
    click.echo(f"schedule entry {entry.id} added: {entry.label} → {entry.status!r}")


@schedule_group.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def schedule_list(state: _State, account_name: str, extension: str, as_json: bool) -> None:
    """List the schedule entries of user EXT."""
    store = state.store()
    _, user = store.reach_user(account_name, extension)
    entries = store.reach_config(user.id).schedule
    if as_json:
        _print_json([{"id": e.id, "status": e.status, "when": e.label, "per_period": e.per_period,
                      "days": [reach.DAY_NAMES[d] for d in sorted(e.days)], "start": e.start, "end": e.end}
                     for e in entries])
        return
    _print_table(("ID", "WHEN", "STATUS"), ((e.id, e.label, e.status) for e in entries),
                 f"user {extension} has no schedule entries: the status is {reach.DEFAULT_STATUS!r}")


@schedule_group.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("entry_id", metavar="ID", type=int)
@pass_state
def schedule_delete(state: _State, account_name: str, extension: str, entry_id: int) -> None:
    """Delete schedule entry ID of user EXT."""
    state.store().delete_reach_schedule(account_name, extension, entry_id)
    click.echo(f"schedule entry {entry_id} of user {extension} deleted")


# -- call classes ------------------------------------------------------------------------------


@reach_group.group("class")
def class_group() -> None:
    """Which profile handles a call: per (status, call class)."""


@class_group.command("map")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--status", required=True, help="The status.")
@click.option("--class", "call_class", required=True, metavar="CLASS",
              help="internal, external, anonymous, did:+31… or any.")
@click.option("--profile", required=True, help='The profile ("default" for the default profile).')
@pass_state
def class_map(state: _State, account_name: str, extension: str, status: str, call_class: str,
              profile: str) -> None:
    """In STATUS, calls of CLASS to user EXT use PROFILE."""
    state.store().map_reach_class(account_name, extension, status, call_class, profile)
    click.echo(f"user {extension}: status {status!r} × class {call_class} → profile {profile!r}")


@class_group.command("unmap")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--status", required=True, help="The status.")
@click.option("--class", "call_class", required=True, metavar="CLASS", help="The call class.")
@pass_state
def class_unmap(state: _State, account_name: str, extension: str, status: str, call_class: str) -> None:
    """Remove the mapping of (STATUS, CLASS) of user EXT."""
    state.store().unmap_reach_class(account_name, extension, status, call_class)
    click.echo(f"user {extension}: status {status!r} × class {call_class} unmapped")


@class_group.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def class_list(state: _State, account_name: str, extension: str, as_json: bool) -> None:
    """List the class mappings of user EXT."""
    store = state.store()
    _, user = store.reach_user(account_name, extension)
    mappings = store.reach_config(user.id).class_map
    if as_json:
        _print_json([{"status": m.status, "class": m.call_class, "profile": m.profile} for m in mappings])
        return
    _print_table(("STATUS", "CLASS", "PROFILE"), ((m.status, m.call_class, m.profile) for m in mappings),
                 f"user {extension} has no class mappings: every call uses the default profile")


# -- overrides, caller IDs, barring, clear --------------------------------------------------------


@reach_group.command("forward")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--always", metavar="DEST", help="Forward every call (as *910 unconditional).")
@click.option("--busy", metavar="DEST", help="Forward when busy (as *910 on busy).")
@click.option("--clear", is_flag=True, help="Remove the *910 forward.")
@pass_state
def forward(state: _State, account_name: str, extension: str, always: str | None, busy: str | None,
            clear: bool) -> None:
    """Show or set the *910 forward of user EXT; it overrides the profile's forwards."""
    if sum(x is not None for x in (always, busy)) + clear > 1:
        raise ConfigError("give one of --always, --busy or --clear")
    store = state.store()
    if clear:
        removed = store.clear_forward_override(account_name, extension)
        click.echo(f"*910 forward of user {extension} {'cleared' if removed else 'was not set'}")
        return
    if always is not None or busy is not None:
        kind, destination = (reach.FORWARD_ALWAYS, always) if always is not None else (reach.FORWARD_BUSY, busy)
        store.set_forward_override(account_name, extension, kind, destination or "")
    _, user = store.reach_user(account_name, extension)
    override = store.reach_config(user.id).forward_override
    click.echo(f"user {extension}: no *910 forward" if override is None
               else f"user {extension}: *910 forward {override.kind} → {override.destination}")


@reach_group.command("devices")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("devices", required=False, metavar="DEVICE,DEVICE")
@click.option("--until", metavar="TIME", help='End time, e.g. "2026-12-01 17:00" (account time zone).')
@click.option("--clear", is_flag=True, help="Remove the device override.")
@pass_state
def devices_override(state: _State, account_name: str, extension: str, devices: str | None, until: str | None,
                     clear: bool) -> None:
    """Show or set the device override of user EXT: only these devices ring."""
    if clear and (devices or until):
        raise ConfigError("--clear takes no devices or --until")
    if until and not devices:
        raise ConfigError("--until needs the devices to ring")
    store = state.store()
    account, user = store.reach_user(account_name, extension)
    if clear:
        removed = store.clear_device_override(account_name, extension)
        click.echo(f"device override of user {extension} {'cleared' if removed else 'was not set'}")
        return
    if devices:
        end = None if until is None else _account_time(account, until)
        store.set_device_override(account_name, extension, devices.split(","), end)
    override = store.reach_config(user.id).device_override
    click.echo(f"user {extension}: no device override" if override is None else
               f"user {extension}: only {', '.join(override.devices)} ring {_until_text(override.until, account)}")


@reach_group.command("callerid")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("slot", required=False)
@click.argument("number", required=False)
@click.option("--remove", is_flag=True, help="Remove the number of SLOT.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (when listing).")
@pass_state
def callerid(state: _State, account_name: str, extension: str, slot: str | None, number: str | None,
             remove: bool, as_json: bool) -> None:
    """List, set or remove the dynamic caller IDs of user EXT (dialled as #3SLOT# before a number)."""
    store = state.store()
    if slot is not None:
        if remove == (number is not None):
            raise ConfigError("give SLOT NUMBER to set, or SLOT --remove to remove")
        if remove:
            store.remove_caller_id_slot(account_name, extension, slot)
            click.echo(f"dynamic caller ID {slot} of user {extension} removed")
        else:
            store.set_caller_id_slot(account_name, extension, slot, number or "")
            click.echo(f"user {extension}: #3{slot}# sends {number}")
        return
    if remove:
        raise ConfigError("--remove needs a SLOT")
    _, user = store.reach_user(account_name, extension)
    slots = store.reach_config(user.id).caller_ids
    if as_json:
        _print_json([{"slot": s, "number": n, "prefix": f"#3{s}#"} for s, n in slots.items()])
        return
    _print_table(("SLOT", "DIAL", "NUMBER"), ((s, f"#3{s}#", n) for s, n in slots.items()),
                 f"user {extension} has no dynamic caller IDs (#31# always withholds the number)")


@reach_group.command("barring")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--bar", multiple=True, metavar="CATEGORY", help="Bar this category (repeatable).")
@click.option("--allow", multiple=True, metavar="CATEGORY", help="Allow this category again (repeatable).")
@pass_state
def barring(state: _State, account_name: str, extension: str, bar: tuple[str, ...],
            allow: tuple[str, ...]) -> None:
    """Show or change call barring of user EXT.

    Categories: premium, satellite, international, shared-cost, information, mobile,
    all-external (outgoing; 112 is never barred) and incoming-anonymous.
    """
    store = state.store()
    if bar or allow:
        enabled = store.set_barring(account_name, extension, bar, allow)
    else:
        _, user = store.reach_user(account_name, extension)
        enabled = store.reach_config(user.id).barring
    ordered = [c for c in reach.BARRING_CATEGORIES if c in enabled]
    click.echo(f"user {extension}: " + (f"barred: {', '.join(ordered)}" if ordered else "nothing barred"))


@reach_group.command("clear")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
@pass_state
def clear(state: _State, account_name: str, extension: str, yes: bool) -> None:
    """Clear REACH of user EXT: delete all profiles, statuses, schedule entries and overrides."""
    if not yes:
        raise ConfigError(f"clearing REACH of user {extension} cannot be undone; add --yes")
    state.store().clear_reach(account_name, extension)
    click.echo(f"REACH of user {extension} cleared: default profile reset, status {reach.DEFAULT_STATUS!r}")


# -- show ---------------------------------------------------------------------------------------


def _incoming_call(account: Account, caller: str | None, did: str | None) -> reach.IncomingCall:
    """--from: an extension (internal), a number (+31…/0…), 'anonymous' or nothing (external)."""
    try:
        dialled = None if did is None else reach.check_e164(did.strip(), "DID")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if caller is None:
        return reach.IncomingCall(internal=False, dialled_did=dialled)
    caller = caller.strip()
    if caller == reach.ANONYMOUS:
        return reach.IncomingCall(internal=False, anonymous=True, dialled_did=dialled)
    if caller.isdigit() and len(caller) == account.digits and not caller.startswith("0"):
        if dialled:
            raise ConfigError("an internal call (--from EXT) does not arrive on a DID (--did)")
        return reach.IncomingCall(internal=True, from_number=caller)
    if caller.startswith(("+", "0")) and caller[1:].isdigit():
        return reach.IncomingCall(internal=False, dialled_did=dialled, from_number=caller)
    raise ConfigError(f"--from {caller!r} is not an extension, a number (+31…, 0…) or 'anonymous'")


def _line(label: str, value: str, reason: str = "") -> str:
    text = f"{label:<{_LABEL_WIDTH}}{value}"
    if reason:
        text = f"{label:<{_LABEL_WIDTH}}{value:<{_VALUE_WIDTH - 1}} ({reason})"
    return text.rstrip()


def _profile_reason(decision: ReachDecision, default: Profile) -> str:
    """Why this profile, and which settings the default profile gave it (built-in values
    that merely pass through the default are not worth a mention)."""
    if decision.profile == reach.DEFAULT_PROFILE:
        return decision.profile_reason
    if len(decision.inherited) == len(reach.SETTING_FIELDS):
        return f"{decision.profile_reason}; inherits everything from default"
    given = [reach.SETTING_LABELS[n] for n in decision.inherited if getattr(default, n) is not None]
    if not given:
        return f"{decision.profile_reason}; inherits nothing the default profile sets"
    return f"{decision.profile_reason}; inherits {', '.join(given)} from default"


def _forwards_text(decision: ReachDecision) -> str:
    override = decision.forward_override
    parts = []
    for kind, label in (("always", "unconditional"), ("busy", "busy"), ("noanswer", "no answer"),
                        ("unreachable", "unreachable")):
        target = getattr(decision.forwards, kind)
        mark = " (*910)" if override is not None and override.kind == kind and target is not None else ""
        parts.append(f"{label} {target or '-'}{mark}")
    return "   ".join(parts)


def _ring_lines(decision: ReachDecision) -> list[str]:
    if decision.action is not Action.RING:
        where = f" → {decision.destination}" if decision.destination else ""
        return [_line("ring", f"nothing rings: {decision.action_reason}{where}")]
    steps = "   ".join(f"{i}. {', '.join(step.devices)} for {step.timeout:g} s"
                       for i, step in enumerate(decision.ring, 1))
    if decision.all_devices:
        steps += "   (no device of the user is enabled: all ring)"
    after = decision.forwards.noanswer
    then = f"forward on no answer → {after}" if after else "not answered: the caller hears 480 (no forward)"
    return [_line("ring", steps), _line("then", then)]


def _show_lines(account: Account, user: User, at: datetime, decision: ReachDecision, default: Profile,
                registered: dict[str, bool]) -> list[str]:
    zone = ZoneInfo(account.timezone)
    header = f"user {user.extension} {user.name} — {at.astimezone(zone):%a %Y-%m-%d %H:%M} {account.timezone}"
    devices = ", ".join(f"{d} ({'registered' if up else 'not registered'})" for d, up in registered.items())
    lines = [
        header,
        _line("status", decision.status, decision.status_reason),
        _line("class", decision.call_class, decision.class_reason),
        _line("profile", decision.profile, _profile_reason(decision, default)),
        _line("dnd", "on" if decision.dnd else "off"),
        _line("forward", _forwards_text(decision)),
        _line("devices", devices or "none: the user is not logged in on any device"),
    ]
    if decision.device_override is not None:
        override = decision.device_override
        only = f"only {', '.join(override.devices)} ring {_until_text(override.until, account)}"
        lines.append(_line("override", only))
    return lines + _ring_lines(decision)


def _show_json(account: Account, user: User, at: datetime, decision: ReachDecision,
               registered: dict[str, bool]) -> dict[str, Any]:
    forward_override = decision.forward_override
    device_override = decision.device_override
    return {
        "user": user.extension, "name": user.name, "at": _local(at, account), "timezone": account.timezone,
        "status": decision.status, "status_reason": decision.status_reason,
        "class": decision.call_class, "class_reason": decision.class_reason,
        "profile": decision.profile, "profile_reason": decision.profile_reason,
        "inherited": [n.replace("_", "-") for n in decision.inherited],
        "settings": _settings_json(decision.settings), "dnd": decision.dnd,
        "forwards": {k: getattr(decision.forwards, k) for k in _FORWARD_KINDS},
        "forward_override": None if forward_override is None else
        {"kind": forward_override.kind, "destination": forward_override.destination},
        "device_override": None if device_override is None else
        {"devices": list(device_override.devices), "until": _local(device_override.until, account)},
        "devices": [{"device": d, "registered": up} for d, up in registered.items()],
        "action": decision.action.value, "action_reason": decision.action_reason,
        "destination": decision.destination, "all_devices": decision.all_devices,
        "ring": [{"devices": list(s.devices), "timeout": s.timeout} for s in decision.ring],
    }


@reach_group.command("show")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--at", metavar="TIME", help='When, e.g. "2026-12-01 10:00" (account time zone); default now.')
@click.option("--from", "caller", metavar="CALLER", help="The caller: EXT (internal), +31…/0… or anonymous.")
@click.option("--did", metavar="+31…", help="The DID the external caller dialled.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_state
def show(state: _State, account_name: str, extension: str, at: str | None, caller: str | None,
         did: str | None, as_json: bool) -> None:
    """Explain how a call to user EXT is handled: status, class, profile, forwards, what rings.

    Assumes the user's devices are registered; the devices line says which are now.
    """
    store = state.store()
    account, user = store.reach_user(account_name, extension)
    when = datetime.now(timezone.utc) if at is None else _account_time(account, at)
    call = _incoming_call(account, caller, did)
    channels = store.channels_of_user(user.id)
    now = time.time()
    registered = {c.username: bool(store.bindings(c.id, now)) for c in channels}
    config = store.reach_config(user.id)
    decision = reach.evaluate(config, when, ZoneInfo(account.timezone), call, [c.username for c in channels])
    if as_json:
        click.echo(json.dumps(_show_json(account, user, when, decision, registered), indent=2, ensure_ascii=False))
        return
    for line in _show_lines(account, user, when, decision, config.default, registered):
        click.echo(line)
