"""JSON Schemas of the API's bodies: the request schemas are the ones checked on input,
published as they are in OpenAPI (``http/openapi.py``), with the answers' schemas."""

from __future__ import annotations

from typing import Any

from statusflow.store.schema import SEMANTICS

ID = {"type": "string", "minLength": 1, "maxLength": 200}
ID_OR_INT = {"type": ["string", "integer"], "minLength": 1, "maxLength": 200}

PARTY: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": ["string", "integer", "null"], "maxLength": 200},
        "name": {"type": ["string", "null"], "maxLength": 500},
        "phones": {
            "type": "array",
            "maxItems": 50,
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
        },
        "emails": {
            "type": "array",
            "maxItems": 50,
            "items": {"type": "string", "minLength": 3, "maxLength": 320},
        },
    },
}

ORDER_PROPERTIES: dict[str, Any] = {
    "id": ID,
    "status": {"type": "string", "minLength": 1, "maxLength": 64},
    "responsible_id": {"type": ["string", "integer", "null"], "maxLength": 200},
    "amount": {"type": ["number", "null"]},
    "currency": {"type": ["string", "null"], "maxLength": 16},
    "contact": PARTY,
    "company": PARTY,
    "visitor_ids": {"type": "array", "maxItems": 200, "items": ID_OR_INT},
    "fields": {"type": "object"},
}

NEW_ORDER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id"],
    "properties": ORDER_PROPERTIES,
}

ORDER_AFTER_PATCH: dict[str, Any] = {**NEW_ORDER, "required": ["id", "status"]}

STATUS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "sort", "semantics"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "sort": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
        "semantics": {"type": "string", "enum": list(SEMANTICS)},
    },
}

STATUS_LIST: dict[str, Any] = {"type": "array", "minItems": 1, "maxItems": 1000, "items": STATUS}

TRIGGER_PROPERTIES: dict[str, Any] = {
    "type": {"type": "string", "minLength": 1, "maxLength": 100},
    "status": {"type": "string", "minLength": 1, "maxLength": 64},
    "name": {"type": "string", "maxLength": 200},
    "allow_backwards": {"type": "boolean"},
    "enabled": {"type": "boolean"},
    "settings": {"type": "object"},
    "conditions": {"type": "array", "maxItems": 50, "items": {"type": "object"}},
}

NEW_TRIGGER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "status"],
    "properties": TRIGGER_PROPERTIES,
}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also accepts ``null`` (a merge patch's way to remove a field)."""
    kind = schema.get("type")
    if kind is None or "enum" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    return schema if "null" in kinds else {**schema, "type": [*kinds, "null"]}


ORDER_PATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "a JSON Merge Patch (RFC 7396) of the order: null removes a field; "
    "the order it makes must be a valid order",
    "properties": {k: nullable(v) for k, v in ORDER_PROPERTIES.items() if k != "id"} | {"id": ID},
}

TRIGGER_PATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "a JSON Merge Patch (RFC 7396) of the trigger's editable fields",
    "properties": {k: nullable(v) for k, v in TRIGGER_PROPERTIES.items()}
    | {"id": {"type": ["integer", "string"]}},
}

# --- answers ---------------------------------------------------------------------------

STRING = {"type": "string"}
TIME = {"type": "string", "description": "ISO-8601 in UTC"}
STRINGS = {"type": "array", "items": STRING}
OBJECT = {"type": "object"}

ORDER: dict[str, Any] = {
    "type": "object",
    "required": [*ORDER_PROPERTIES, "created_at", "updated_at"],
    "properties": {
        **ORDER_PROPERTIES,
        "responsible_id": {"type": ["string", "integer", "null"]},
        "created_at": TIME,
        "updated_at": TIME,
    },
}

TRIGGER: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "type",
        "status",
        "name",
        "allow_backwards",
        "enabled",
        "settings",
        "conditions",
        "created_at",
        "active",
        "inactive_reason",
    ],
    "properties": {
        "id": {"type": "integer"},
        **TRIGGER_PROPERTIES,
        "created_at": TIME,
        "active": {"type": "boolean"},
        "inactive_reason": {"type": ["string", "null"]},
        "webhook_url": {"type": "string", "description": "for webhook.called triggers"},
    },
    "additionalProperties": True,
    "description": "a trigger; its plugin may add fields (webhook_url)",
}

MOVE: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "from", "to", "trigger_id"],
    "properties": {
        "order_id": STRING,
        "from": STRING,
        "to": STRING,
        "trigger_id": {"type": ["integer", "null"]},
    },
}

TRACE_ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "trigger_id", "outcome", "reason"],
    "properties": {
        "order_id": STRING,
        "trigger_id": {"type": "integer"},
        "outcome": {"type": "string", "enum": ["moved", "skipped"]},
        "reason": STRING,
    },
}

EVENT_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["event_id", "duplicate", "order_ids", "moves"],
    "properties": {
        "event_id": STRING,
        "duplicate": {"type": "boolean"},
        "order_ids": STRINGS,
        "moves": {"type": "array", "items": MOVE},
        "dry_run": {"type": "boolean", "description": "true in a dry run's results"},
        "trace": {
            "type": "array",
            "items": TRACE_ENTRY,
            "description": "in a dry run's results",
        },
    },
}

EVENT_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "order_ids", "moves"],
    "properties": {
        "id": STRING,
        "type": STRING,
        "order_id": {"type": ["string", "null"]},
        "contact": {"type": ["object", "null"]},
        "data": {"type": ["object", "null"]},
        "occurred_at": {"type": ["string", "null"]},
        "received_at": TIME,
        "order_ids": STRINGS,
        "moves": {"type": "array", "items": MOVE},
    },
}

STORED_EVENT: dict[str, Any] = {
    "type": "object",
    "required": [*EVENT_SUMMARY["required"], "trace"],
    "properties": {
        **EVENT_SUMMARY["properties"],
        "trace": {"type": "array", "items": TRACE_ENTRY},
    },
}

TIMELINE_ENTRY: dict[str, Any] = {
    "type": "object",
    "required": ["at", "kind"],
    "additionalProperties": True,
    "description": "created: status; event: event_id, type, data, moved, occurred_at; "
    "status_changed: from, to, trigger_id, event_id, manual; plugins may add kinds",
    "properties": {
        "at": TIME,
        "kind": STRING,
        "status": STRING,
        "event_id": {"type": ["string", "null"]},
        "type": STRING,
        "data": OBJECT,
        "moved": {"type": "boolean"},
        "occurred_at": STRING,
        "from": STRING,
        "to": STRING,
        "trigger_id": {"type": ["integer", "null"]},
        "manual": {"type": "boolean"},
    },
}

PLUGIN: dict[str, Any] = {
    "type": "object",
    "required": ["name", "distribution", "version", "trigger_types", "enabled"],
    "properties": {
        "name": STRING,
        "distribution": {"type": ["string", "null"]},
        "version": {"type": ["string", "null"]},
        "trigger_types": STRINGS,
        "enabled": {"type": "boolean"},
        "path": {"type": "string", "description": "a plugin from a plugins folder"},
    },
}

TRIGGER_TYPE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "plugin", "title", "events", "settings_schema"],
    "properties": {
        "type": STRING,
        "plugin": STRING,
        "title": STRING,
        "events": STRINGS,
        "settings_schema": {"type": "object", "description": "a JSON Schema"},
    },
}

PROBLEM: dict[str, Any] = {
    "type": "object",
    "required": ["path", "message"],
    "properties": {
        "path": {
            "type": "string",
            "description": 'a JSON Pointer into the request body ("" the whole body), '
            "or ?NAME for a query parameter",
        },
        "message": STRING,
    },
}

HEALTH: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
}
CONDITIONS: dict[str, Any] = TRIGGER_PROPERTIES["conditions"]

NEW_ACTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "type"],
    "properties": {
        "status": {"type": "string", "minLength": 1, "maxLength": 64},
        "type": {"type": "string", "minLength": 1, "maxLength": 100},
        "name": {"type": "string", "maxLength": 200},
        "settings": {"type": "object"},
        "conditions": CONDITIONS,
        "delay": {"type": ["string", "null"], "maxLength": 64},
        "after_previous": {"type": "boolean"},
        "enabled": {"type": "boolean"},
        "position": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    },
}
