"""The signature of a delivery, and how a receiver checks it.

The sender signs ``timestamp + "." + body`` with HMAC-SHA256 and the endpoint's secret:

- ``timestamp``: the ``Statusflow-Timestamp`` header, Unix seconds as ASCII digits;
- ``"."``: one byte, 0x2E;
- ``body``: the request body, byte for byte as received (UTF-8 JSON; do not parse and
  re-serialise it before checking);
- key: the endpoint's secret, UTF-8 encoded;
- ``Statusflow-Signature: sha256=<the digest as 64 lowercase hex digits>``.

Every attempt is signed afresh with the time of the attempt; the body (and the
``Statusflow-Delivery`` id in it) stays the same across attempts.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Statusflow-Signature"
TIMESTAMP_HEADER = "Statusflow-Timestamp"
DELIVERY_HEADER = "Statusflow-Delivery"
ATTEMPT_HEADER = "Statusflow-Attempt"
SCHEME = "sha256="
DEFAULT_TOLERANCE = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Statusflow-Signature`` header's value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return SCHEME + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent.

    :param tolerance: seconds the timestamp may differ from ``now``; a replayed request
        older than this is refused (receivers also drop delivery ids already seen).
    """
    if not timestamp_header or not signature_header:
        return False
    if not (timestamp_header.isascii() and timestamp_header.isdigit()):
        return False
    timestamp = int(timestamp_header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))
