"""The ``statusflow`` command: ``serve``, ``migrate``, ``plugins``, ``tail``, ``new-plugin``,
and ``orders``, ``triggers``, ``events`` for a running server (:mod:`.remote`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import structlog

from statusflow.cli import new_plugin, remote
from statusflow.cli.remote import DEFAULT_URL
from statusflow.engine.sinks import status_label
from statusflow.errors import StartupError
from statusflow.serving.announce import database_label, version
from statusflow.serving.config import Settings, load_settings, plugin_dirs
from statusflow.serving.logs import configure_logging
from statusflow.serving.plugin_catalog import list_plugins

log = structlog.get_logger("statusflow.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statusflow", description="Order status automation")
    parser.add_argument("--version", action="version", version=f"statusflow {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--config", help="TOML configuration file (or $STATUSFLOW_CONFIG)")
    _plugins_dir_option(serve)
    serve.add_argument("--host", help="listen on this address (overrides the file)")
    serve.add_argument("--port", type=int, help="listen on this port (overrides the file)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes serving the port (default 1)"
    )
    migrate = commands.add_parser("migrate", help="apply the database migrations, then exit")
    migrate.add_argument("--config", help="TOML configuration file (or $STATUSFLOW_CONFIG)")
    _plugins_dir_option(migrate)
    plugins = commands.add_parser("plugins", help="list the plugins found through entry points")
    plugins.add_argument("--config", help="TOML configuration file (or $STATUSFLOW_CONFIG)")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    _plugins_dir_option(plugins)
    tail = commands.add_parser("tail", help="follow the change feed of moves (GET /api/moves)")
    tail.add_argument(
        "--url", default=DEFAULT_URL, help=f"the server's base URL (default {DEFAULT_URL})"
    )
    tail.add_argument("--token", help="API token (or $STATUSFLOW_TOKEN)")
    tail.add_argument(
        "--after",
        default="end",
        help="start after this cursor; 0: from the first move; default: end (new moves only)",
    )
    tail.add_argument("--json", action="store_true", help="print one JSON object per move")
    tail.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    tail.add_argument("--once", action="store_true", help="print what is there, then exit")
    new_plugin.add_parser(commands)
    remote.add_parsers(commands)
    return parser


def _plugins_dir_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--plugins-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="load every NAME.py and NAME/ package in DIR as the plugin NAME (repeatable; "
        "added to [plugins] dirs)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration, with the command line's plugins folders added to its own."""
    settings = load_settings(args.config)
    extra = plugin_dirs(args.plugins_dir)
    return settings.with_overrides(plugin_dirs=settings.plugin_dirs + extra)


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args).with_overrides(host=args.host, port=args.port)
    if args.workers < 1:
        raise StartupError("--workers must be at least 1")
    from statusflow.serving.server import serve  # after the settings: a bad file fails fast

    return serve(settings, args.workers)


def _migrate(args: argparse.Namespace) -> int:
    from statusflow.serving.server import migrate_database

    settings = _settings(args)
    asyncio.run(migrate_database(settings))
    log.info("migrations.applied", database=database_label(settings.database_url))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    settings = _settings(args)
    infos = list_plugins(settings.disable, settings.enable, settings.plugin_dirs)
    if args.json:
        sys.stdout.write(
            orjson.dumps([i.as_json() for i in infos], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return 0
    width = max((len(info.name) for info in infos), default=14)
    for info in infos:
        state = "enabled " if info.enabled else "disabled"
        types = ", ".join(info.trigger_types) or "-"
        origin = info.path or f"{info.distribution} {info.version}"
        line = f"{info.name:<{width}} {state} {origin}  {types}"
        sys.stdout.write(line + "\n")
    return 0


def _move_line(move: dict[str, Any], names: Mapping[str, str]) -> str:
    """``CURSOR  AT  ORDER  N New -> P Paid  CAUSE``."""
    cause = "manual" if move.get("manual") else f"trigger {move.get('trigger_id')}"
    if move.get("event_id") is not None:
        cause += f", event {move['event_id']} ({move.get('event_type')})"
    shown = [status_label(move[end], names.get(move[end])) for end in ("from", "to")]
    return f"{move['cursor']}  {move['at']}  {move['order_id']}  {shown[0]} -> {shown[1]}  {cause}"


async def _status_names(session: Any, base: str) -> dict[str, str]:
    """The pipeline's names by status id (empty when it cannot be read: ids alone)."""
    try:
        async with session.get(base + "/api/statuses") as response:
            if response.status != 200:
                return {}
            return {s["id"]: s.get("name") or s["id"] for s in await response.json()}
    except Exception:  # the feed's own request says what is wrong with the server
        return {}


async def _follow(args: argparse.Namespace) -> int:
    import aiohttp

    token = args.token or os.environ.get("STATUSFLOW_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    cursor = str(args.after)
    base = args.url.rstrip("/")
    url = base + "/api/moves"
    async with aiohttp.ClientSession(headers=headers) as session:
        names = {} if args.json else await _status_names(session, base)
        while True:
            params = {"after": cursor, "limit": "1000"}
            try:
                async with session.get(url, params=params) as response:
                    body = await response.json(content_type=None)
                    if response.status != 200:
                        message = (body or {}).get("error", {}).get("message", response.reason)
                        sys.stderr.write(f"statusflow tail: {response.status}: {message}\n")
                        return 1
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                sys.stderr.write(f"statusflow tail: {url}: {exc}\n")
                if args.once:
                    return 1
                await asyncio.sleep(args.interval)
                continue
            moves = body["moves"]
            if not args.json and any(m[end] not in names for m in moves for end in ("from", "to")):
                names = await _status_names(session, base) or names  # the pipeline changed
            for move in moves:
                line = orjson.dumps(move).decode() if args.json else _move_line(move, names)
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
            cursor = body["next"]
            if moves and len(moves) == 1000:
                continue
            if args.once:
                return 0
            await asyncio.sleep(args.interval)


def _tail(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_follow(args))
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command in remote.COMMANDS:
        return remote.run(args)  # prints what it has to say, logs nothing
    try:
        configure_logging()
        if args.command == "serve":
            return _serve(args)
        if args.command == "migrate":
            return _migrate(args)
        if args.command == "tail":
            return _tail(args)
        if args.command == "new-plugin":
            return new_plugin.run(args)
        return _plugins(args)
    except StartupError as exc:  # said once, as a log line (the logs' format, if it is valid)
        with contextlib.suppress(StartupError):
            configure_logging()
        if not structlog.is_configured():
            configure_logging(level="info", json=False)
        log.error("startup.failed", error=str(exc))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
