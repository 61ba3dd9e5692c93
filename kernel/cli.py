"""The ``statusflow`` command: ``serve`` and ``plugins``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson
import structlog
from aiohttp import web

from kernel.config import load_settings
from kernel.errors import StartupError
from kernel.logs import configure_logging
from kernel.plugins import list_plugins

log = structlog.get_logger("statusflow.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statusflow", description="Order status automation")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--config", help="TOML configuration file (or $STATUSFLOW_CONFIG)")
    serve.add_argument("--host", help="listen on this address (overrides the file)")
    serve.add_argument("--port", type=int, help="listen on this port (overrides the file)")
    plugins = commands.add_parser("plugins", help="list the plugins found through entry points")
    plugins.add_argument("--config", help="TOML configuration file (or $STATUSFLOW_CONFIG)")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config).with_overrides(host=args.host, port=args.port)
    from kernel.web import init_app  # after the settings: a bad file fails fast

    app = init_app(settings)
    log.info(
        "server.starting", host=settings.host, port=settings.port, public_url=settings.base_url
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


def _plugins(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    infos = list_plugins(settings.disable, settings.enable)
    if args.json:
        sys.stdout.write(
            orjson.dumps([i.as_json() for i in infos], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return 0
    for info in infos:
        state = "enabled " if info.enabled else "disabled"
        types = ", ".join(info.trigger_types) or "-"
        sys.stdout.write(f"{info.name:<14} {state} {info.distribution} {info.version}  {types}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    configure_logging()
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        return _plugins(args)
    except StartupError as exc:
        log.error("startup.failed", error=str(exc))
        sys.stderr.write(f"statusflow: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
