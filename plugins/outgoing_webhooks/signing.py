"""Signatures by the Standard Webhooks specification, made by its own library
(``standardwebhooks``), so that a receiver checks them with the library of its language.

Each request carries three headers:

- ``webhook-id``: the message id, the same at every attempt of one message (a delivery
  of outgoing webhooks, a run of the ``webhook.call`` action): receivers deduplicate on it;
- ``webhook-timestamp``: Unix seconds of this attempt, as ASCII digits;
- ``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over
  ``id + "." + timestamp + "." + body``, keyed with the secret's bytes.

A secret is ``whsec_`` and the base64 of 24 to 64 random bytes (:func:`new_secret` makes
one of 32); the key is the decoded bytes, not the text.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SIGNED_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
ATTEMPT_HEADER = "Statusflow-Attempt"
"""Not part of the specification nor of what is signed: which attempt this is (1, 2, ...)."""
PREFIX = "whsec_"
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64
SECRET_RULE = (
    f"must be {PREFIX} followed by the base64 of {MIN_KEY_BYTES} to {MAX_KEY_BYTES} "
    "random bytes (a Standard Webhooks secret; leave it out and one is made up)"
)


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a Standard Webhooks secret this plugin signs with, or
    ``None``. The message never shows the secret."""
    key = _key(secret)
    if key is None or not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return f"secret {SECRET_RULE}"
    return None


def _key(secret: str) -> bytes | None:
    if not secret.startswith(PREFIX):
        return None
    text = secret[len(PREFIX) :]
    try:  # strict: the library skips characters that are not base64, and so would a typo
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def sign(secret: str, msg_id: str, timestamp: datetime | int, body: bytes | str) -> dict[str, str]:
    """The three Standard Webhooks headers of the message ``msg_id`` with ``body``, sent
    at ``timestamp`` (an aware datetime or Unix seconds; each attempt has its own).

    :raises ValueError: ``secret`` is not a Standard Webhooks secret (:func:`secret_problem`).
    """
    problem = secret_problem(secret)
    if problem is not None:
        raise ValueError(problem)
    moment = (
        datetime.fromtimestamp(timestamp, UTC)
        if isinstance(timestamp, int)
        else timestamp.astimezone(UTC)
    )
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(int(moment.timestamp())),
        SIGNATURE_HEADER: Webhook(secret).sign(msg_id, moment, text),
    }
