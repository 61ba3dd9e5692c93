"""What the server says about itself when it starts: one line with the version, the
database (never its credentials), whether auth is on and the plugins loaded; and a
warning when it listens beyond this machine with no token."""

from __future__ import annotations

import ipaddress
import socket
from importlib import metadata

import pluggy
import structlog

from statusflow.registry import KERNEL_PLUGINS
from statusflow.serving.config import Settings

log = structlog.get_logger("statusflow.serve")


def version() -> str:
    """statusflow's installed version (``unknown`` from a bare checkout)."""
    try:
        return metadata.version("statusflow")
    except metadata.PackageNotFoundError:
        return "unknown"


def database_label(url: str) -> str:
    """The database URL without user, password or query, e.g. ``sqlite:///abs/path.db``
    or ``postgresql://db.internal:5432/statusflow``: safe for logs and messages."""
    from sqlalchemy.engine import make_url  # SQLAlchemy only when a URL is shown

    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy reads: whatever follows the credentials
        return url.split("@")[-1].split("?")[0]
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:///{parsed.database}" if parsed.database else "sqlite:// (in memory)"
    where = parsed.host or ""
    if parsed.port is not None:
        where += f":{parsed.port}"
    return f"{backend}://{where}/{parsed.database or ''}"


def auth_enabled(settings: Settings) -> bool:
    """Whether the API asks for a token (plain tokens or named keys)."""
    return settings.auth_enabled


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is this machine's loopback ("" and
    ``0.0.0.0`` are every interface: not loopback)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback for *_, address in found
    )


def announce(settings: Settings, pm: pluggy.PluginManager) -> None:
    """Log the start-up line (``server.started``), and warn when the API is open to
    other machines (``server.unprotected``) or their links would point nowhere."""
    plugins = sorted(
        name
        for name, plugin in pm.list_name_plugin()
        if plugin is not None and name not in KERNEL_PLUGINS  # blocked names map to None
    )
    log.info(
        "server.started",
        version=version(),
        host=settings.host,
        port=settings.port,
        public_url=settings.base_url,
        database=database_label(settings.database_url),
        auth=auth_enabled(settings),
        plugins=plugins,
    )
    loopback = is_loopback(settings.host)
    if not loopback and not auth_enabled(settings):
        log.warning(
            "server.unprotected",
            host=settings.host,
            hint="anyone who reaches this address can use the whole API: set [auth] tokens "
            "(or STATUSFLOW_TOKENS), or listen on 127.0.0.1",
        )
    if settings.public_url is None and settings.host in ("0.0.0.0", "::", ""):
        log.warning(  # nobody outside can call a webhook URL or open a tracking link there
            "server.public_url_missing",
            public_url=settings.base_url,
            hint="set [server] public_url to the address stores and mail clients reach",
        )
