"""Errors that the HTTP layer turns into the contract's JSON error format."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A client error: raised in a route handler (or by ``KernelServices.submit_event``),
    it is answered as ``{"error": {"code", "message", "details"}}`` with ``status``."""

    status: int
    """The HTTP status: 400, 401, 403, 404, 409, 413, 422, 503, ..."""
    code: str
    """A short machine-readable code, e.g. ``"invalid"``, ``"not_found"``."""
    message: str
    """What went wrong, for a person; never a secret."""
    details: Any
    """Optional JSON saying more (the field at fault, the problems found), or ``None``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def as_json(self) -> dict[str, Any]:
        """The error body of the contract."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(message: str, details: Any = None) -> ApiError:
    """A 422: valid JSON that breaks the rules."""
    return ApiError(422, "invalid", message, details)


def not_found(message: str, details: Any = None) -> ApiError:
    """A 404: an unknown resource."""
    return ApiError(404, "not_found", message, details)


def conflict(message: str, details: Any = None) -> ApiError:
    """A 409: the request conflicts with what is stored."""
    return ApiError(409, "conflict", message, details)


class StartupError(Exception):
    """The configuration or the set of plugins does not allow the service to start; its
    message names the plugin and the setting at fault. ``statusflow serve`` prints it and
    exits, and the pytest fixture ``statusflow_app`` raises it."""
