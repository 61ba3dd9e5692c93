"""Who uses the board: the API key a sign-in proved, and what its scopes let it change."""

from __future__ import annotations

from dataclasses import dataclass

from statusflow.types import API_SCOPES


@dataclass(frozen=True)
class User:
    """A signed-in key (or everyone, when the API needs no token)."""

    key_name: str | None
    """The key's name for the audit log (``"token"`` for a plain token; ``None``: auth off)."""
    scopes: frozenset[str]

    @classmethod
    def anyone(cls) -> User:
        """The user when no token is configured: every scope, no name."""
        return cls(None, frozenset(API_SCOPES))

    def may(self, scope: str) -> bool:
        """Whether this user may do what needs ``scope`` (``admin`` includes ``read``)."""
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)

    @property
    def may_edit(self) -> bool:
        """Triggers, actions, statuses, orders and runs need ``admin``."""
        return self.may("admin")
