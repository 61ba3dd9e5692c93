"""Every error code the kernel and the built-in plugins answer, with its HTTP status.

A client branches on ``error.code``; this table is the list it can rely on
(``docs/api.md#error-codes`` shows it, and a test checks that every code raised in
``kernel/`` and ``plugins/`` is here and in the docs). Plugins may add codes of their own.
"""

from __future__ import annotations

ERROR_CODES: dict[str, tuple[int | None, str]] = {
    # 400
    "malformed_json": (400, "the body is not JSON, or is empty where JSON is required"),
    "unreadable_body": (400, "the body does not decode as its Content-Encoding says"),
    "bad_request": (400, "the request cannot be read"),
    # 401, 403
    "unauthorized": (401, "no valid bearer token (comes with WWW-Authenticate: Bearer)"),
    "forbidden": (403, "the token may not do this"),
    "missing_scope": (403, "the API key lacks the scope the route needs (with WWW-Authenticate)"),
    # 404
    "not_found": (404, "nothing at this path"),
    "order_not_found": (404, "no order has this id"),
    "trigger_not_found": (404, "no trigger has this id"),
    "event_not_found": (404, "no processed event has this id"),
    "webhook_not_found": (404, "no webhook.called trigger has this secret"),
    "tracking_link_not_found": (404, "the tracking link is unknown or tampered with"),
    "endpoint_not_found": (404, "no outgoing webhook endpoint has this id"),
    "delivery_not_found": (404, "no outgoing webhook delivery has this id"),
    # 405
    "method_not_allowed": (405, "the path does not take this method (comes with Allow)"),
    # 408
    "request_timeout": (408, "the body took longer than request_timeout_seconds"),
    # 409
    "conflict": (409, "the request conflicts with what is stored"),
    "order_exists": (409, "an order with this id exists"),
    "status_in_use": (409, "the new pipeline drops a status that orders or triggers use"),
    "endpoint_exists": (409, "an outgoing webhook endpoint with this id exists"),
    "endpoint_from_config": (409, "the endpoint is defined in the configuration file"),
    "delivery_pending": (409, "the delivery is still pending: it will be attempted anyway"),
    # 413, 415, 417
    "body_too_large": (413, "the body is larger than max_body_bytes"),
    "unsupported_media_type": (415, "this media type is not supported"),
    "expectation_failed": (417, "an Expect header other than 100-continue"),
    # 422
    "validation_failed": (422, "the body breaks the schema or a rule; details say where"),
    "unknown_query_parameter": (422, "a query parameter the operation does not take"),
    "invalid_cursor": (422, "a cursor that this list did not give, or for other filters"),
    "unknown_order": (422, "a list filter names an order that does not exist"),
    "bad_query_parameter": (422, "a query parameter's value is not valid"),
    "unknown_status": (422, "a status that the pipeline does not have"),
    "duplicate_status": (422, "two statuses with the same id or sort"),
    "unknown_event_type": (422, "an event type that no enabled plugin accepts here"),
    "bad_event_data": (422, "an event's data breaks its type's schema"),
    "bad_contact": (422, "a phone or email that cannot be an identifier"),
    "bad_timestamp": (422, "occurred_at is not an ISO-8601 time with a zone, or too far ahead"),
    "unknown_trigger_type": (422, "a trigger type that no enabled plugin has"),
    "bad_settings": (422, "a trigger's settings break its type's schema"),
    "bad_conditions": (422, "a trigger condition's field, operator or value is not valid"),
    # 429
    "too_many_requests": (429, "too many requests to a public route (comes with Retry-After)"),
    # 5xx
    "internal": (500, "the server failed on this request: a bug, logged with its traceback"),
    "unavailable": (503, "the database cannot be reached now; retry (Retry-After: 1)"),
    "not_ready": (503, "GET /readyz: the database does not answer or is behind"),
    "http_error": (None, "another HTTP error, of the status answered"),
}
"""``code: (HTTP status, when)``; ``None``: whatever status it comes with."""
