"""Board sessions: an encrypted, HttpOnly, SameSite cookie (``aiohttp-session``).

The cookie holds the SHA-256 digest of the token that signed in (never the token), the
CSRF token of the session, and nothing else. Each request finds the key again among the
configured ones, so a key removed from the configuration signs its sessions out at the
next restart. The cookie is encrypted and authenticated with Fernet under a key derived
from the server's signing key (the same on every instance of one database) and expires
after ``[ui] session_hours``.
"""

from __future__ import annotations

import hmac
import secrets
import warnings
from typing import Any

from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_session import Session, get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from statusflow.http.keys import ACCEPTED_KEYS, SERVICES, SETTINGS
from statusflow.http.middlewares import Handler
from statusflow.serving.api_keys import ApiKey
from statusflow.ui.keys import PARENT
from statusflow.ui.user import User

# aiohttp-session keeps its objects on the request under plain string keys, which aiohttp
# 3.10+ warns about once per key: a library's choice, not a fault of ours.
warnings.filterwarnings("ignore", category=NotAppKeyWarning, module="aiohttp_session")

COOKIE = "statusflow_session"
DIGEST = "key"
CSRF = "csrf"


def _storage(app: web.Application) -> EncryptedCookieStorage:
    parent = app[PARENT]
    settings = parent[SETTINGS]
    return EncryptedCookieStorage(
        parent[SERVICES].derive_key("ui-session"),
        cookie_name=COOKIE,
        path="/ui",
        max_age=int(settings.ui_session_hours * 3600),
        secure=settings.base_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )


class Sessions:
    """``aiohttp-session``'s middleware, its storage made at the first request (the
    signing key is read from the database at start-up, after the routes are mounted)."""

    def __init__(self) -> None:
        self._middleware: Any = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._middleware is None:
            self._middleware = session_middleware(_storage(request.app))
        response: web.StreamResponse = await self._middleware(request, handler)
        return response


def _key(digest: str, accepted: tuple[ApiKey, ...]) -> ApiKey | None:
    try:
        raw = bytes.fromhex(digest)
    except ValueError:
        return None
    found = None
    for key in accepted:
        if hmac.compare_digest(raw, key.digest) and found is None:
            found = key
    return found


async def current_user(request: web.Request) -> User | None:
    """The signed-in user, :meth:`User.anyone` when no token is configured, or ``None``
    (sign-in needed)."""
    accepted = request.app[PARENT][ACCEPTED_KEYS]
    if not accepted:
        return User.anyone()
    session = await get_session(request)
    digest = session.get(DIGEST)
    key = _key(digest, accepted) if isinstance(digest, str) else None
    if key is None:
        return None
    return User(key.name, key.scopes)


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, made when the session gets its first page."""
    session = await get_session(request)
    token = session.get(CSRF)
    if not isinstance(token, str):
        token = session[CSRF] = secrets.token_urlsafe(32)
    return token


async def sign_in(request: web.Request, key: ApiKey) -> Session:
    """A new session (a new cookie and CSRF token: no fixation) for ``key``."""
    session = await new_session(request)
    session[DIGEST] = key.digest.hex()
    session[CSRF] = secrets.token_urlsafe(32)
    return session


async def sign_out(request: web.Request) -> None:
    """Forget the session (the cookie is cleared in the answer)."""
    session = await get_session(request)
    session.invalidate()
