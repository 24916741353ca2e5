"""Commands for the in-call features (issue 4): account and user feature settings, rights,
permanent links of users to channels, privacy groups (SPEC §5) and parked calls (SPEC §7).

They register on the groups of ``cli`` (``account``, ``user``) and on ``main``. Like every
administrative command, each writes one transaction and prints what it did; errors are
one ``error: ...`` line (``ConfigError``, turned into exit status 1 by ``cli._Cli``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import click

from cli import (
    LANGUAGES, _local_time, _login_effects, _print_json, _print_table, _State, account, main,
    pass_state, user,
)
from config.errors import ConfigError
from config.features import (
    LoginNeedsConfirmation, ParkedCall, PrivacyGroup, PrivacyMember, PrivacyRights, park_slot_range,
    twinning_enabled,
)
from config.models import Account, User

_USER_RIGHTS = (
    ("may_park", "park"),
    ("may_time_config", "time-config"),
    ("may_external", "external"),
    ("may_international", "international"),
    ("may_record_prompts", "record-prompts"),
    ("may_play_recordings", "play-recordings"),
)


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _describe(changes: dict[str, Any]) -> str:
    """'twinning on, park timeout 60' from the options that were given."""
    def text(value: Any) -> str:
        return _on_off(value) if isinstance(value, bool) else str(value)

    return ", ".join(f"{key.replace('_', ' ')} {text(value)}" for key, value in changes.items())


def _given(**options: Any) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _show(pairs: list[tuple[str, object]]) -> None:
    width = max(len(label) for label, _ in pairs) + 1
    for label, value in pairs:
        click.echo(f"{label + ':':<{width}} {value}".rstrip())


def _flag(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--NAME/--no-NAME``, None when not given (a setting left as it is)."""
    return click.option(f"--{name}/--no-{name}", default=None, help=help_text)


# -- account set / show ------------------------------------------------------------------


@account.command("set")
@click.argument("name", metavar="NAME")
@_flag("twinning", "Allow twinning in this account (users with twinning on may use several devices).")
@click.option("--max-fixed-devices", type=int, help="Devices a twinning user may be logged in on (default 2).")
@click.option("--park-timeout", type=int, metavar="SECONDS", help="Ring back the parker after this long (10-3600).")
@click.option("--park-recall-limit", type=int, metavar="N", help="Ring-backs before a parked call ends (0-20).")
@click.option("--park-first-slot", type=int, metavar="SLOT", help="First park slot (default 701).")
@click.option("--park-slots", type=int, metavar="N", help="Number of park slots (default 99: 701-799).")
@click.option("--dtmf-prefix", metavar="KEYS", help="Keys that start an in-call code (1-3 of 0-9*#; default ##).")
@click.option("--dtmf-timeout", type=float, metavar="SECONDS", help="Inter-key timeout of in-call codes (1-10).")
@click.option("--language", type=click.Choice(LANGUAGES), help="Language of the prompts.")
@click.option("--timezone", help="IANA time zone for schedules and CDR times.")
@pass_state
def account_set(state: _State, name: str, **options: Any) -> None:
    """Change the settings of account NAME; options not given stay as they are."""
    changes = _given(**options)
    acc = state.store().update_account(name, **changes)
    click.echo(f"account {acc.name!r} updated: {_describe(changes)}")


def _account_json(acc: Account) -> dict[str, Any]:
    slots = park_slot_range(acc)
    return {
        "name": acc.name, "domain": acc.domain, "digits": acc.digits, "language": acc.language,
        "timezone": acc.timezone, "twinning": acc.twinning, "max_fixed_devices": acc.max_fixed_devices,
        "park_timeout": acc.park_timeout, "park_recall_limit": acc.park_recall_limit,
        "park_first_slot": slots.start, "park_last_slot": slots.stop - 1,
        "dtmf_prefix": acc.dtmf_prefix, "dtmf_timeout": acc.dtmf_timeout,
    }


@account.command("show")
@click.argument("name", metavar="NAME")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_state
def account_show(state: _State, name: str, as_json: bool) -> None:
    """Show every setting of account NAME."""
    acc = state.store().account(name)
    data = _account_json(acc)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _show([
        ("account", acc.name), ("domain", acc.domain), ("digits", acc.digits),
        ("language", acc.language), ("timezone", acc.timezone), ("twinning", _on_off(acc.twinning)),
        ("max fixed devices", acc.max_fixed_devices), ("park timeout", f"{acc.park_timeout} s"),
        ("park recall limit", acc.park_recall_limit),
        ("park slots", f"{data['park_first_slot']}-{data['park_last_slot']}"),
        ("dtmf prefix", acc.dtmf_prefix), ("dtmf timeout", f"{acc.dtmf_timeout:g} s"),
    ])


# -- user set / show / link / unlink -------------------------------------------------------


@user.command("set")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@_flag("twinning", "Let the user be logged in on several devices (needs the account's twinning).")
@_flag("may-park", "Right to park calls (##7, transfer to *7).")
@_flag("may-time-config", "Right to change the active numberplan (915).")
@_flag("may-external", "Right to call external numbers.")
@_flag("may-international", "Right to call international numbers.")
@_flag("may-record-prompts", "Right to record sound recordings (905).")
@_flag("may-play-recordings", "Right to play back call recordings.")
@click.option("--name", help="Display name of the user.")
@click.option("--pin", help="New PIN (4-12 digits, not trivial); 0000 makes the user choose one at the next login.")
@pass_state
def user_set(state: _State, account_name: str, extension: str, pin: str | None, **options: Any) -> None:
    """Change the name, PIN, twinning or rights of user EXT; options not given stay as they are."""
    changes = _given(**options)
    u = state.store().update_user(account_name, extension, pin=pin, **changes)
    said = [_describe(changes)] if changes else []
    if pin is not None:
        said.append("PIN to be chosen at the next login" if u.must_change_pin else "PIN changed")
    click.echo(f"user {u.extension} updated: {', '.join(said)}")


def _rights(u: User) -> list[str]:
    return [label for field, label in _USER_RIGHTS if getattr(u, field)]


def _privacy_rights_json(rights: PrivacyRights) -> dict[str, Any]:
    return {"pickup": rights.pickup, "presence": rights.presence, "notifications": rights.notifications,
            "notify_delay": rights.notify_delay, "retrieve_parked": rights.retrieve_parked}


def _privacy_rights_text(rights: PrivacyRights) -> str:
    words = [word for on, word in ((rights.pickup, "pickup"), (rights.presence, "presence"),
                                   (rights.retrieve_parked, "retrieve parked")) if on]
    if rights.notifications:
        words.append(f"notifications after {rights.notify_delay} s" if rights.notify_delay else "notifications")
    return ", ".join(words) or "no rights"


@user.command("show")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@pass_state
def user_show(state: _State, account_name: str, extension: str, as_json: bool) -> None:
    """Show user EXT: settings, rights, the devices they are on and their privacy groups."""
    store = state.store()
    acc = store.account(account_name)
    u = store.user(acc.id, extension)
    devices = store.user_logins(u.id)
    groups = [(g, g.member(u.id)) for g in store.privacy_groups_of_user(u.id)]
    if as_json:
        click.echo(json.dumps({
            "extension": u.extension, "name": u.name, "pin_must_change": u.must_change_pin,
            "twinning": u.twinning, "twinning_active": twinning_enabled(acc, u),
            "rights": {label: getattr(u, field) for field, label in _USER_RIGHTS},
            "devices": [{"channel": d.channel, "linked": d.linked, "logged_in_at": d.logged_in_at}
                        for d in devices],
            "privacy_groups": [{"number": g.number, "name": g.name, **_privacy_rights_json(m.rights)}
                               for g, m in groups if m is not None],
        }, indent=2, ensure_ascii=False))
        return
    twinning = _on_off(u.twinning)
    if u.twinning and not acc.twinning:
        twinning += " (inactive: the account has twinning off)"
    _show([
        ("user", f"{u.extension} {u.name}"), ("account", acc.name),
        ("PIN", "must be changed at the next login" if u.must_change_pin else "set"),
        ("twinning", twinning), ("rights", ", ".join(_rights(u)) or "none"),
        ("devices", ", ".join(f"{d.channel} (linked)" if d.linked else d.channel for d in devices) or "none"),
        ("privacy groups", "; ".join(f"{g.number} {g.name}: {_privacy_rights_text(m.rights)}"
                                     for g, m in groups if m is not None) or "none"),
    ])


@user.command("link")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("username", metavar="CHANNEL")
@click.option("--replace", is_flag=True,
              help="A twinning user already on the maximum of devices: log out there.")
@pass_state
def user_link(state: _State, account_name: str, extension: str, username: str, replace: bool) -> None:
    """Log user EXT in on CHANNEL for good: the device is theirs, they cannot log out there.

    At most one channel per user, two with twinning.
    """
    try:
        plan = state.store().link_user(account_name, extension, username, confirm_replace=replace)
    except LoginNeedsConfirmation as exc:
        raise ConfigError(f"{exc}; add --replace to link {username} and log out of "
                          f"{', '.join(d.channel for d in exc.plan.log_out)}") from None
    click.echo(f"user {extension} linked to channel {username}{_login_effects(plan)}")


@user.command("unlink")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("extension", metavar="EXT")
@click.argument("username", metavar="CHANNEL")
@pass_state
def user_unlink(state: _State, account_name: str, extension: str, username: str) -> None:
    """End the permanent link of user EXT to CHANNEL; the user stays logged in there."""
    state.store().unlink_user(account_name, extension, username)
    click.echo(f"user {extension} unlinked from channel {username} (still logged in there)")


# -- privacy groups (SPEC §5) ----------------------------------------------------------------


@main.group("privacy-group")
def privacy_group() -> None:
    """Privacy groups: users with rights over each other (pickup, presence, notifications,
    retrieving parked calls). A GROUP is given by its number or its name."""


@privacy_group.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("name", metavar="NAME")
@click.option("--number", type=int, help="Group number 1-99; the lowest free one when omitted.")
@pass_state
def privacy_group_add(state: _State, account_name: str, name: str, number: int | None) -> None:
    """Create privacy group NAME in ACCOUNT."""
    group = state.store().add_privacy_group(account_name, name, number)
    click.echo(f"privacy group {group.number} {group.name!r} added to account {account_name!r}")


def _member_json(m: PrivacyMember) -> dict[str, Any]:
    return {"extension": m.extension, "name": m.name, **_privacy_rights_json(m.rights)}


@privacy_group.command("list")
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def privacy_group_list(state: _State, account_name: str, as_json: bool) -> None:
    """List the privacy groups of ACCOUNT and their members."""
    groups = state.store().list_privacy_groups(account_name)
    if as_json:
        _print_json([{"number": g.number, "name": g.name, "members": [_member_json(m) for m in g.members]}
                     for g in groups])
        return
    _print_table(
        ("NUMBER", "NAME", "MEMBERS"),
        ((g.number, g.name, ", ".join(m.extension for m in g.members)) for g in groups),
        f"account {account_name!r} has no privacy groups",
    )


@privacy_group.command("show")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("group", metavar="GROUP")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the members.")
@pass_state
def privacy_group_show(state: _State, account_name: str, group: str, as_json: bool) -> None:
    """Show the members of privacy GROUP with the rights each has over the others."""
    found: PrivacyGroup = state.store().privacy_group(account_name, group)
    if as_json:
        _print_json([_member_json(m) for m in found.members])
        return
    click.echo(f"privacy group {found.number} {found.name!r}")

    def yes(value: bool) -> str:
        return "yes" if value else "no"

    _print_table(
        ("EXTENSION", "NAME", "PICKUP", "PRESENCE", "NOTIFICATIONS", "DELAY", "RETRIEVE PARKED"),
        ((m.extension, m.name, yes(m.rights.pickup), yes(m.rights.presence), yes(m.rights.notifications),
          f"{m.rights.notify_delay}s", yes(m.rights.retrieve_parked)) for m in found.members),
        "no members (add one with: softswitch privacy-group member add)",
    )


@privacy_group.command("delete")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("group", metavar="GROUP")
@pass_state
def privacy_group_delete(state: _State, account_name: str, group: str) -> None:
    """Delete privacy GROUP (its members lose the rights it gave)."""
    found = state.store().delete_privacy_group(account_name, group)
    count = len(found.members)
    click.echo(f"privacy group {found.number} {found.name!r} deleted ({count} member{'s' * (count != 1)})")


@privacy_group.group("member")
def privacy_group_member() -> None:
    """Members of a privacy group and their rights."""


@privacy_group_member.command("add")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("group", metavar="GROUP")
@click.argument("extension", metavar="EXT")
@_flag("pickup", "May pick up calls ringing for the other members (*8, 908).")
@_flag("presence", "May see the other members' busy lamps.")
@_flag("notifications", "Gets notifications of the other members' incoming calls.")
@click.option("--notify-delay", type=int, metavar="SECONDS", help="Delay of those notifications (0-300).")
@_flag("retrieve-parked", "May retrieve calls the other members parked.")
@pass_state
def privacy_group_member_add(state: _State, account_name: str, group: str, extension: str,
                             **rights: Any) -> None:
    """Add user EXT to GROUP, or change the rights of a member (rights not given stay as
    they are; a new member starts with none)."""
    member = state.store().set_privacy_member(account_name, group, extension, **_given(**rights))
    click.echo(f"user {member.extension} in privacy group {group}: {_privacy_rights_text(member.rights)}")


@privacy_group_member.command("remove")
@click.argument("account_name", metavar="ACCOUNT")
@click.argument("group", metavar="GROUP")
@click.argument("extension", metavar="EXT")
@pass_state
def privacy_group_member_remove(state: _State, account_name: str, group: str, extension: str) -> None:
    """Remove user EXT from GROUP."""
    state.store().remove_privacy_member(account_name, group, extension)
    click.echo(f"user {extension} removed from privacy group {group}")


# -- parked calls (SPEC §7) -------------------------------------------------------------------


@main.command()
@click.argument("account_name", metavar="ACCOUNT")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@pass_state
def parked(state: _State, account_name: str, as_json: bool) -> None:
    """Show the calls parked in ACCOUNT's slots (published by the running daemon)."""
    store = state.store()
    zone = ZoneInfo(store.account(account_name).timezone)
    now = time.time()

    def as_row(p: ParkedCall) -> dict[str, Any]:
        return {"slot": p.slot, "parked_party": p.parked_party, "parked_by": p.parker_extension,
                "call_id": p.call_id, "parked_at": p.parked_at, "recall_at": p.recall_at,
                "since": _local_time(p.parked_at, zone), "recall_in": max(0, round(p.recall_at - now))}

    rows = [as_row(p) for p in store.list_parked(account_name)]
    if as_json:
        _print_json(rows)
        return
    _print_table(
        ("SLOT", "PARKED PARTY", "PARKED BY", "SINCE", "RECALL IN"),
        ((r["slot"], r["parked_party"], r["parked_by"], r["since"], f"{r['recall_in']}s") for r in rows),
        f"no calls parked in account {account_name!r}",
    )
