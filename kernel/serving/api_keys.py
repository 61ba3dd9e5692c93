"""API keys: ``[auth] tokens`` (full access) and named ``[[auth.keys]]`` with scopes.

Only the SHA-256 digest of a token is kept in memory; a request's token is hashed once
and compared with every digest in constant time (:func:`hmac.compare_digest`). Start-up
errors name the key and the rule it breaks, never a token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statusflow.errors import StartupError
from statusflow.types import API_SCOPES

PLAIN_TOKEN = "token"
"""The key name of the plain ``[auth] tokens`` (in the audit log and the access log);
no ``[[auth.keys]]`` may take it."""

KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "scopes"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"},
        "token": {"type": "string", "minLength": 1},
        "token_sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": list(API_SCOPES)},
        },
    },
}
"""One ``[[auth.keys]]`` table (checked within the configuration's schema)."""


def token_digest(token: str) -> bytes:
    """The SHA-256 digest of a token (a header's bytes that are not UTF-8 arrive as lone
    surrogates: they are hashed as they came)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class ApiKey:
    """A credential: a named key with its scopes, or a plain token (every scope)."""

    name: str
    digest: bytes
    """SHA-256 of the token: the token itself is not kept."""
    scopes: frozenset[str]

    def __repr__(self) -> str:  # never the digest, in a traceback or a log
        return f"ApiKey(name={self.name!r}, scopes={sorted(self.scopes)})"

    @classmethod
    def from_token(cls, name: str, token: str, scopes: Iterable[str] = API_SCOPES) -> ApiKey:
        return cls(name, token_digest(token), frozenset(scopes))

    def allows(self, scope: str) -> bool:
        """Whether this key may call a route that needs ``scope`` (``admin`` includes
        ``read``)."""
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)


def keys_from_config(tables: Sequence[Mapping[str, Any]]) -> tuple[ApiKey, ...]:
    """The ``[[auth.keys]]`` tables (already checked against :data:`KEY_SCHEMA`) as keys.

    :raises StartupError: a key with both or neither of ``token`` and ``token_sha256``,
        two keys of one name, or the reserved name ``token``.
    """
    keys: list[ApiKey] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        name = table["name"]
        where = f"configuration error at auth.keys.{index} (key {name!r})"
        if name in seen:
            raise StartupError(f"{where}: another key has the same name")
        if name == PLAIN_TOKEN:
            raise StartupError(f"{where}: the name {PLAIN_TOKEN!r} stands for the plain tokens")
        seen.add(name)
        given = [k for k in ("token", "token_sha256") if k in table]
        if len(given) != 1:
            raise StartupError(f"{where}: give exactly one of token and token_sha256")
        if "token" in table:
            digest = token_digest(table["token"])
        else:
            digest = bytes.fromhex(table["token_sha256"])
        keys.append(ApiKey(name, digest, frozenset(table["scopes"])))
    return tuple(keys)


def credentials(tokens: Iterable[str], keys: Iterable[ApiKey]) -> tuple[ApiKey, ...]:
    """Every credential the server accepts: the plain tokens (every scope) and the keys.

    :raises StartupError: two keys, or a key and a plain token, share a token (which
        one a request used would be unknowable).
    """
    accepted = [ApiKey.from_token(PLAIN_TOKEN, token) for token in dict.fromkeys(tokens)]
    for key in keys:
        clash = next((k for k in accepted if hmac.compare_digest(k.digest, key.digest)), None)
        if clash is not None:
            mate = "a plain token" if clash.name == PLAIN_TOKEN else f"key {clash.name!r}"
            raise StartupError(
                f"configuration error at auth.keys: key {key.name!r} has the same token as {mate}"
            )
        accepted.append(key)
    return tuple(accepted)


def find(given: str | None, accepted: Sequence[ApiKey]) -> ApiKey | None:
    """The credential whose token is ``given``: compared with every one, in constant
    time per credential, whichever matches."""
    if given is None:
        return None
    digest = token_digest(given)
    match: ApiKey | None = None
    for key in accepted:
        if hmac.compare_digest(digest, key.digest) and match is None:
            match = key
    return match
