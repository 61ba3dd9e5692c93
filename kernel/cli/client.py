"""The HTTP client of the commands that talk to a running server (``statusflow orders``,
``triggers``, ``events``): one JSON request at a time on the standard library, every
failure a :class:`CliError` with a message for people and an exit code.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

TIMEOUT = 30.0
"""Seconds a request may take."""

# exit codes (docs/cli.md)
REFUSED = 1
"""The server answered with an error (400, 409, 413, 422, 5xx...), or the input is bad."""
UNREACHABLE = 3
"""No answer: the server is down, the URL is wrong, or it timed out."""
UNAUTHORIZED = 4
"""401 or 403: no token, a wrong one, or one without the scope."""
NOT_FOUND = 5
"""404: no such order, trigger or event."""


class CliError(Exception):
    """A failure to report on stderr (never with a traceback) and exit with ``code``."""

    def __init__(self, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Client:
    """Requests to the server at ``url``, with the bearer ``token`` when there is one."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, params: Mapping[str, str | None] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str | None] | None = None,
    ) -> Any:
        """The decoded JSON answer (``None`` for an empty one, as a 204's).

        :raises CliError: the server could not be reached or answered with an error.
        """
        url = self.base + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _refused(method, path, exc) from None
        except OSError as exc:  # URLError, a refused connection, a timeout
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach {self.base}: {reason}", UNREACHABLE) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(f"{method} {path}: the answer is not JSON") from None


def _refused(method: str, path: str, exc: urllib.error.HTTPError) -> CliError:
    """The server's error, as its JSON error body says it (or the HTTP reason)."""
    status = exc.code
    try:
        error = json.loads(exc.read()).get("error") or {}
    except (ValueError, AttributeError, OSError):
        error = {}
    message = str(error.get("message") or exc.reason or "error")
    text = f"{status}: {message}"
    details = error.get("details")
    if status == 422 and details:
        text += "\n" + _details(details)
    if status == 401:
        return CliError(text + " (pass --token or set STATUSFLOW_TOKEN)", UNAUTHORIZED)
    if status == 403:
        return CliError(text, UNAUTHORIZED)
    if status == 404:
        return CliError(text, NOT_FOUND)
    return CliError(f"{method} {path}: {text}", REFUSED)


def _details(details: Any) -> str:
    """A 422's details, one line each (a list of ``{path, message}``, or any JSON)."""
    if isinstance(details, list) and all(isinstance(d, dict) for d in details):
        lines = []
        for detail in details:
            where = detail.get("path")
            message = detail.get("message", json.dumps(detail))
            lines.append(f"  {where}: {message}" if where else f"  {message}")
        return "\n".join(lines)
    return "  " + json.dumps(details)
