"""``statusflow orders|triggers|events ...``: a running server, from a terminal.

Each command sends a request or two (:class:`~statusflow.cli.client.Client`) and prints
what came back for people (:mod:`statusflow.cli.show`), or as JSON with ``--json``.
Failures print one line on stderr and exit with the codes of :mod:`.client`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from statusflow.cli import show
from statusflow.cli.client import REFUSED, Client, CliError

DEFAULT_URL = "http://127.0.0.1:8080"
COMMANDS = ("orders", "triggers", "events")


def _common() -> argparse.ArgumentParser:
    """The options every command here takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=DEFAULT_URL, help=f"the server's base URL (default {DEFAULT_URL})"
    )
    common.add_argument("--token", help="API token (or $STATUSFLOW_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the server's JSON")
    return common


def add_parsers(commands: Any) -> None:
    """Add ``orders``, ``triggers`` and ``events`` to the ``statusflow`` subcommands."""
    common = _common()

    orders = commands.add_parser("orders", help="read orders").add_subparsers(
        dest="action", required=True
    )
    show_order = orders.add_parser("show", parents=[common], help="an order and its timeline")
    show_order.add_argument("id", help="the order's id")
    find = orders.add_parser(
        "find", parents=[common], help="orders by id, phone or email, newest first"
    )
    find.add_argument("q", nargs="?", help="an order id, a phone (any format) or an email")
    find.add_argument("--status", help="only orders in this status (its id)")
    find.add_argument("--limit", type=int, default=50, help="orders per page (1-500)")
    find.add_argument("--cursor", help="the page after this one (a cursor printed before)")

    triggers = commands.add_parser("triggers", help="list and edit triggers").add_subparsers(
        dest="action", required=True
    )
    triggers.add_parser("list", parents=[common], help="every trigger")
    add = triggers.add_parser(
        "add",
        parents=[common],
        help="create a trigger",
        description="Example: statusflow triggers add call.missed P --setting line=sales "
        "--when amount gte 100",
    )
    add.add_argument("type", help="the trigger type (statusflow plugins lists them)")
    add.add_argument("status", help="the target status (its id)")
    add.add_argument("--name", help="a name for people")
    add.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting (VALUE as JSON when it parses, else text); repeatable",
    )
    add.add_argument(
        "--when",
        action="append",
        nargs=3,
        default=[],
        metavar=("FIELD", "OP", "VALUE"),
        help="a condition, e.g. --when amount gte 100; repeatable",
    )
    add.add_argument(
        "--allow-backwards", action="store_true", help="may move orders to an earlier status"
    )
    add.add_argument("--disabled", action="store_true", help="create it disabled")
    for name, text in (
        ("disable", "disable a trigger"),
        ("enable", "enable a trigger"),
        ("rm", "delete a trigger"),
    ):
        one = triggers.add_parser(name, parents=[common], help=text)
        one.add_argument("id", type=int, help="the trigger's id")

    events = commands.add_parser("events", help="post events, and see why they did what they did")
    actions = events.add_subparsers(dest="action", required=True)
    post = actions.add_parser(
        "post", parents=[common], help="post an event or a list of events (JSON)"
    )
    post.add_argument("file", help="a JSON file, or - for standard input")
    post.add_argument(
        "--dry-run", action="store_true", help="evaluate and show the trace; store nothing"
    )
    why = actions.add_parser("why", parents=[common], help="an event's trace, as a table")
    why.add_argument("id", help="the event's id")


def run(args: argparse.Namespace) -> int:
    """Run ``args``' command; its exit code (failures reported on stderr)."""
    token = args.token or os.environ.get("STATUSFLOW_TOKEN") or None
    client = Client(args.url, token)
    handler = HANDLERS[(args.command, args.action)]
    try:
        out = handler(client, args)
    except CliError as exc:
        sys.stderr.write(f"statusflow {args.command} {args.action}: {exc.message}\n")
        return exc.code
    if out:
        sys.stdout.write(out + "\n")
    return 0


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _names(client: Client, triggers: bool = False) -> show.Names:
    return show.Names(client.get("/api/statuses"), client.get("/api/triggers") if triggers else ())


def _id(value: str) -> str:
    """A path segment: an id may hold any character."""
    return quote(value, safe="")


# --- orders --------------------------------------------------------------------------------


def order_show(client: Client, args: argparse.Namespace) -> str:
    found = client.get(f"/api/orders/{_id(args.id)}")
    entries = client.get(f"/api/orders/{_id(args.id)}/timeline")
    if args.json:
        return _json({"order": found, "timeline": entries})
    names = _names(client, triggers=True)
    return f"{show.order(found, names)}\n\n{show.timeline(entries, names)}"


def order_find(client: Client, args: argparse.Namespace) -> str:
    params = {"q": args.q, "status": args.status, "limit": str(args.limit), "cursor": args.cursor}
    page = client.get("/api/orders", params)
    if args.json:
        return _json(page)
    names = _names(client)
    rows = [
        (o["id"], names.status(o["status"]), o.get("created_at"), show.party(o.get("contact")))
        for o in page["items"]
    ]
    out = show.table(("ID", "STATUS", "CREATED", "CONTACT"), rows) if rows else "no order found"
    if page.get("next"):
        out += f"\n\nmore: add --cursor {page['next']}"
    return out


# --- triggers ------------------------------------------------------------------------------


def trigger_list(client: Client, args: argparse.Namespace) -> str:
    found = client.get("/api/triggers")
    if args.json:
        return _json(found)
    if not found:
        return "no trigger"
    names = _names(client)
    rows = [
        (
            t["id"],
            t["type"],
            names.status(t["status"]),
            _state(t),
            t.get("name") or "",
            _settings(t),
        )
        for t in found
    ]
    return show.table(("ID", "TYPE", "TARGET", "STATE", "NAME", "SETTINGS AND CONDITIONS"), rows)


def _state(trigger: dict[str, Any]) -> str:
    if trigger.get("active") is False:
        return f"inactive: {trigger.get('inactive_reason')}"
    state = "enabled" if trigger.get("enabled") else "disabled"
    return state + (", backwards" if trigger.get("allow_backwards") else "")


def _settings(trigger: dict[str, Any]) -> str:
    parts = [f"{k}={show.compact(v)}" for k, v in (trigger.get("settings") or {}).items()]
    parts += [
        f"{c.get('field')} {c.get('op')} {show.compact(c.get('value'))}"
        for c in trigger.get("conditions") or ()
    ]
    return "; ".join(parts) or "-"


def _value(text: str) -> Any:
    """JSON when it parses (``100``, ``true``, ``["a"]``), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def trigger_add(client: Client, args: argparse.Namespace) -> str:
    settings = {}
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--setting {item!r}: write KEY=VALUE", REFUSED)
        settings[key] = _value(value)
    body: dict[str, Any] = {
        "type": args.type,
        "status": args.status,
        "allow_backwards": args.allow_backwards,
        "enabled": not args.disabled,
        "settings": settings,
        "conditions": [{"field": f, "op": o, "value": _value(v)} for f, o, v in args.when],
    }
    if args.name is not None:
        body["name"] = args.name
    made = client.request("POST", "/api/triggers", body)
    if args.json:
        return _json(made)
    names = _names(client)
    out = f"trigger {made['id']} added: {made['type']} -> {names.status(made['status'])}"
    if made.get("webhook_url"):
        out += f"\nwebhook URL: {made['webhook_url']}"
    return out


def trigger_enabled(enabled: bool) -> Any:
    def handle(client: Client, args: argparse.Namespace) -> str:
        made = client.request("PATCH", f"/api/triggers/{args.id}", {"enabled": enabled})
        if args.json:
            return _json(made)
        return f"trigger {args.id} {'enabled' if enabled else 'disabled'}"

    return handle


def trigger_rm(client: Client, args: argparse.Namespace) -> str:
    client.request("DELETE", f"/api/triggers/{args.id}")
    return _json({"deleted": args.id}) if args.json else f"trigger {args.id} deleted"


# --- events --------------------------------------------------------------------------------


def _read_events(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {source}: {exc}", REFUSED) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        where = "standard input" if source == "-" else source
        raise CliError(f"{where} is not JSON: {exc}", REFUSED) from None


def event_post(client: Client, args: argparse.Namespace) -> str:
    body = _read_events(args.file)
    params = {"dry_run": "true"} if args.dry_run else None
    answer = client.request("POST", "/api/events", body, params=params)
    if args.json:
        return _json(answer)
    names = _names(client, triggers=True)
    results = answer if isinstance(answer, list) else [answer]
    return "\n\n".join(show.result(r, names) for r in results)


def event_why(client: Client, args: argparse.Namespace) -> str:
    found = client.get(f"/api/events/{_id(args.id)}")
    if args.json:
        return _json(found)
    return show.event(found, _names(client, triggers=True))


HANDLERS = {
    ("orders", "show"): order_show,
    ("orders", "find"): order_find,
    ("triggers", "list"): trigger_list,
    ("triggers", "add"): trigger_add,
    ("triggers", "disable"): trigger_enabled(False),
    ("triggers", "enable"): trigger_enabled(True),
    ("triggers", "rm"): trigger_rm,
    ("events", "post"): event_post,
    ("events", "why"): event_why,
}
