"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``.

Meta signs the raw bytes of each POST with the app's App Secret. The check is the
standard library's ``hmac`` (``compare_digest``: constant time): Meta publishes no Python
library for its webhooks, and the third-party ones (``pywa``'s
``webhook_updates_validator``, for one) are these same few lines inside a whole bot
framework.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta sends with ``body``: ``sha256=`` and the lower-case hex."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def problem(body: bytes, header: str | None, app_secret: str) -> str | None:
    """``None`` when ``header`` signs ``body`` with ``app_secret``, else why not (never
    showing the secret or the expected signature)."""
    if not header:
        return f"no {HEADER} header"
    if not header.startswith(PREFIX):
        return f"{HEADER} does not start with {PREFIX!r}"
    expected = sign(body, app_secret).encode()
    # bytes: compare_digest refuses str with non-ASCII characters
    if not hmac.compare_digest(expected, header.strip().lower().encode()):
        return f"{HEADER} does not sign this body with [plugins.whatsapp] app_secret"
    return None
