"""The board's static files: the vendored libraries (pinned) and statusflow's own."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

STATIC = Path(__file__).parent / "static"

VENDORED = {
    "htmx.min.js": ("htmx.org", "2.0.11"),
    "Sortable.min.js": ("sortablejs", "1.15.7"),
}
"""Files taken from the npm registry: file -> (package, version); ``static/SHA256SUMS``
pins their bytes, ``static/README.md`` says how to update them."""


@cache
def asset(name: str) -> str:
    """The URL of a file of ``static/``, versioned by its content."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/ui/static/{name}?v={digest}"
