"""JSON Schemas of the API's request bodies: checked on input, published in OpenAPI."""

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
        "semantics": {"enum": list(SEMANTICS)},
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
