"""Errors that the HTTP layer turns into the contract's JSON error format."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A client error: raised in a route handler (or by ``KernelServices.submit_event``),
    it is answered as ``{"error": {"code", "message", "details"}}`` with ``status``."""

    status: int
    """The HTTP status: 400, 401, 403, 404, 409, 413, 422, 503, ..."""
    code: str
    """A stable snake_case code a client can branch on, e.g. ``"order_not_found"``
    (the table of codes: ``docs/api.md#error-codes``)."""
    message: str
    """What went wrong, for a person; never a secret."""
    details: list[dict[str, str]]
    """The problems found, each ``{"path", "message"}`` (``path`` a JSON Pointer into
    the body, ``?name`` for a query parameter); ``[]`` when none is field-specific.
    Anything else given here (the earlier ``dict`` form) is replaced by ``[]``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = problems(details)

    def as_json(self) -> dict[str, Any]:
        """The error body of the contract."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def problems(details: Any) -> list[dict[str, str]]:
    """``details`` as a list of ``{"path", "message"}`` (what is not of that shape is left out)."""
    if not isinstance(details, list):
        return []
    return [
        {"path": str(item["path"]), "message": str(item["message"])}
        for item in details
        if isinstance(item, dict) and "path" in item and "message" in item
    ]


def invalid(message: str, details: Any = None, code: str = "validation_failed") -> ApiError:
    """A 422: valid JSON that breaks the rules."""
    return ApiError(422, code, message, details)


def not_found(message: str, details: Any = None, code: str = "not_found") -> ApiError:
    """A 404: an unknown resource."""
    return ApiError(404, code, message, details)


def conflict(message: str, details: Any = None, code: str = "conflict") -> ApiError:
    """A 409: the request conflicts with what is stored."""
    return ApiError(409, code, message, details)


class StartupError(Exception):
    """The configuration or the set of plugins does not allow the service to start; its
    message names the plugin and the setting at fault. ``statusflow serve`` prints it and
    exits, and the pytest fixture ``statusflow_app`` raises it."""
