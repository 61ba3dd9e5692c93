"""Checking a delivery of SendGrid's signed Event Webhook.

SendGrid signs ``timestamp + raw body`` with ECDSA P-256 (SHA-256) and sends the
signature (base64, DER) and the timestamp (Unix seconds) in two headers. The check
itself is the ``sendgrid`` library's ``EventWebhook.verify_signature``; this module adds
what the library leaves to its caller: reading the verification key as SendGrid's
dashboard shows it (or as PEM), refusing keys that are not P-256, and a replay window
on the timestamp.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE
"""``X-Twilio-Email-Event-Webhook-Signature``."""
TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP
"""``X-Twilio-Email-Event-Webhook-Timestamp``."""

_PEM_ARMOUR = re.compile(r"-----(BEGIN|END) PUBLIC KEY-----")
_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}$")


def load_key(text: str) -> EventWebhook:
    """An ``EventWebhook`` verifier for the verification key ``text``.

    ``text`` is the base64 key SendGrid shows (Mail Settings, Event Webhook, Signature
    Verification), or the same in a PEM ``PUBLIC KEY`` block; whitespace is ignored.

    :raises ValueError: the key cannot be read, or is not an ECDSA P-256 key (the
        message never repeats the key).
    """
    body = "".join(_PEM_ARMOUR.sub("", text).split())
    try:
        verifier = EventWebhook(body) if body else None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        verifier = None
    if verifier is None:
        raise ValueError(
            "is not a public key: paste the Event Webhook's verification key "
            "as SendGrid shows it (base64, starting with MFkw)"
        )
    key = verifier.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("is not an ECDSA P-256 public key, which SendGrid signs with")
    return verifier


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks deliveries against one verification key and a replay window."""

    webhook: EventWebhook
    max_age_seconds: int

    def problem(self, body: bytes, headers: Mapping[str, str], now: float) -> str | None:
        """``None`` when ``body`` is signed by the key within the window, else why not."""
        signature = headers.get(SIGNATURE_HEADER, "").strip()
        timestamp = headers.get(TIMESTAMP_HEADER, "").strip()
        if not signature or not timestamp:
            return f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required"
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            return "the body is not UTF-8 text, so SendGrid did not sign it"
        try:
            valid = self.webhook.verify_signature(payload, signature, timestamp)
        except (ValueError, TypeError, binascii.Error):  # not base64, not a DER signature
            valid = False
        if not valid:
            return f"{SIGNATURE_HEADER} does not sign this timestamp and body with the key"
        if not _UNIX_SECONDS.match(timestamp):
            return f"{TIMESTAMP_HEADER} is not a time in Unix seconds"
        age = now - int(timestamp)
        if age > self.max_age_seconds:
            return (
                f"{TIMESTAMP_HEADER} is {int(age)} seconds old, more than max_age_seconds "
                f"({self.max_age_seconds}): a replayed delivery is refused"
            )
        if -age > self.max_age_seconds:
            return f"{TIMESTAMP_HEADER} is {int(-age)} seconds in the future"
        return None
