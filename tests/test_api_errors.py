"""One error shape: ``details`` always a list of ``{"path", "message"}`` (JSON Pointers
into the body, ``?name`` for a query parameter), stable codes, messages for people (no
library's words), the closest known names for a misspelt one; a query parameter that an
``/api/*`` route does not take is a 422 that changes nothing; 405 carries ``Allow``; the
``Server`` header names no version."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from statusflow import Route, hookimpl
from statusflow.engine.validation import closest, pointer, schema_errors
from tests.helpers import Api, assert_error_shape, event


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # the error shape does not depend on the database


LEAKS = re.compile(
    r"isoformat|is not of type|required property|Additional properties|"
    r"should be non-empty|is too (short|long)|Traceback|\(\d\) The string|"
    r"unexpected character|JSONDecodeError|does not match '",
)
"""Words of Python's and the libraries' own messages, which must not reach a client."""


async def expect(api: Api, method: str, path: str, body: Any, status: int, code: str) -> Any:
    response = await api.client.request(method, path, json=body)
    answer = await response.json()
    assert response.status == status, (method, path, answer)
    error = assert_error_shape(answer, code)
    assert not LEAKS.search(error["message"]), error
    for problem in error["details"]:
        assert not LEAKS.search(problem["message"]), error
    return error


class Extras:
    """A plugin with two ``/api`` routes: one declaring its query parameters, one not."""

    @hookimpl
    def register_routes(self, register: Callable[[Route], None]) -> None:
        async def echo(request: web.Request) -> web.Response:
            return web.json_response(dict(request.query))

        register(Route("GET", "/api/extras/declared", echo, query=("colour", {"name": "size"})))
        register(Route("GET", "/api/extras/undeclared", echo))
        register(Route("GET", "/extras/public", echo))


async def test_an_unknown_query_parameter_is_a_422_naming_it_and_changes_nothing(make_client):
    api = Api(await make_client(enable=("payment", "outgoing_webhooks"), extra_plugins=[]))
    trigger = {"type": "payment.received", "status": "P"}
    error = await expect(
        api, "POST", "/api/triggers?dry_run=true", trigger, 422, "unknown_query_parameter"
    )
    assert "'dry_run'" in error["message"] and "POST /api/triggers" in error["message"]
    assert error["details"] == [
        {"path": "?dry_run", "message": "is not a query parameter of this operation"}
    ]
    assert await api.call("GET", "/api/triggers") == []
    # each unknown one is named; the known ones get the closest name
    error = await expect(
        api, "GET", "/api/moves?limt=5&after=0&x=1", None, 422, "unknown_query_parameter"
    )
    assert [p["path"] for p in error["details"]] == ["?limt", "?x"]
    assert "did you mean 'limit'?" in error["details"][0]["message"]
    order = {"id": "o1"}
    await api.call("POST", "/api/orders", order, expect=201)
    body = event(order_id="o1", id="e1")
    error = await expect(
        api, "POST", "/api/events?dry-run=true", body, 422, "unknown_query_parameter"
    )
    assert "did you mean 'dry_run'?" in error["details"][0]["message"]
    await api.get_event("e1", expect=404)
    # the declared ones are taken, whatever their value's case
    await api.call("POST", "/api/events?dry_run=true", body)
    await api.get_event("e1", expect=404)
    await api.call("GET", "/api/moves?after=0&limit=5")
    # a plugin route declares its parameters in its OpenAPI operation
    await api.call("GET", "/api/deliveries?state=pending&limit=5")
    error = await expect(
        api, "GET", "/api/deliveries?stat=pending", None, 422, "unknown_query_parameter"
    )
    assert "did you mean 'state'?" in error["details"][0]["message"]
    # a bad value of a known parameter has its own code
    error = await expect(api, "GET", "/api/moves?limit=0", None, 422, "bad_query_parameter")
    assert error["details"][0]["path"] == "?limit"
    error = await expect(api, "POST", "/api/events?dry_run=maybe", body, 422, "bad_query_parameter")
    assert error["details"] == [{"path": "?dry_run", "message": "must be true or false"}]


async def test_plugin_routes_declare_their_query_parameters(make_client):
    api = Api(await make_client(enable=("payment",), extra_plugins=[("extras", Extras())]))
    assert await api.call("GET", "/api/extras/declared?colour=red&size=2") == {
        "colour": "red",
        "size": "2",
    }
    error = await expect(
        api, "GET", "/api/extras/declared?color=red", None, 422, "unknown_query_parameter"
    )
    assert "did you mean 'colour'?" in error["details"][0]["message"]
    assert "it takes colour, size" in error["message"]
    # a route that declares none (neither Route.query nor OpenAPI parameters) takes none
    await api.call("GET", "/api/extras/undeclared")
    error = await expect(
        api, "GET", "/api/extras/undeclared?a=1", None, 422, "unknown_query_parameter"
    )
    assert "it takes none" in error["message"]
    # outside /api/ nothing is checked: a caller (a provider's webhook) may add its own
    assert await api.call("GET", "/extras/public?utm_source=x") == {"utm_source": "x"}
    # and the document lists what each takes
    document = await api.call("GET", "/api/openapi.json")
    parameters = document["paths"]["/api/extras/declared"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in parameters] == [("colour", "query"), ("size", "query")]
    assert "parameters" not in document["paths"]["/api/extras/undeclared"]["get"]


async def test_did_you_mean_for_types_fields_statuses_and_operators(make_client):
    api = Api(await make_client(enable=("payment", "calls")))
    await api.create_order("o1")
    cases: list[tuple[str, str, Any, str, str, str]] = [
        (
            "POST",
            "/api/events",
            event("payment.recieved", order_id="o1"),
            "unknown_event_type",
            "/type",
            "payment.received",
        ),
        (
            "POST",
            "/api/triggers",
            {"type": "call.mised", "status": "P"},
            "unknown_trigger_type",
            "/type",
            "call.missed",
        ),
        (
            "POST",
            "/api/triggers",
            {"type": "call.missed", "status": "p"},
            "unknown_status",
            "/status",
            "P",
        ),
        (
            "POST",
            "/api/triggers",
            {
                "type": "call.missed",
                "status": "P",
                "conditions": [{"field": "ammount", "op": "gt", "value": 1}],
            },
            "bad_conditions",
            "/conditions/0/field",
            "amount",
        ),
        (
            "POST",
            "/api/triggers",
            {
                "type": "call.missed",
                "status": "P",
                "conditions": [{"field": "data.line", "op": "eq", "value": "x"}],
            },
            "bad_conditions",
            "/conditions/0/field",
            "event.line",
        ),
        (
            "POST",
            "/api/triggers",
            {
                "type": "call.missed",
                "status": "P",
                "conditions": [{"field": "amount", "op": "gtee", "value": 1}],
            },
            "bad_conditions",
            "/conditions/0/op",
            "gte",
        ),
        (
            "POST",
            "/api/triggers",
            {"type": "call.missed", "status": "P", "setings": {}},
            "validation_failed",
            "/setings",
            "settings",
        ),
        (
            "POST",
            "/api/triggers",
            {"type": "call.missed", "status": "P", "settings": {"lines": "x"}},
            "bad_settings",
            "/settings/lines",
            "line",
        ),
        (
            "POST",
            "/api/orders",
            {"id": "o2", "contacts": {}},
            "validation_failed",
            "/contacts",
            "contact",
        ),
        ("PATCH", "/api/orders/o1", {"stauts": "P"}, "validation_failed", "/stauts", "status"),
        ("PATCH", "/api/orders/o1", {"status": "Paid"}, "unknown_status", "/status", "P"),
        (
            "POST",
            "/api/events",
            event(order_id="o1", ocurred_at="x"),
            "validation_failed",
            "/ocurred_at",
            "occurred_at",
        ),
    ]
    for method, path, body, code, where, meant in cases:
        error = await expect(api, method, path, body, 422, code)
        said = f"did you mean {meant!r}"
        assert said in error["message"] or said in error["details"][0]["message"], error
        assert error["details"][0]["path"] == where, error
    assert await api.triggers() == []
    assert await api.status_of("o1") == "N"


async def test_messages_are_for_people_and_paths_are_json_pointers(make_client):
    api = Api(await make_client(enable=("payment",)))
    await api.create_order("o1")
    bad = {
        "occurred_at": (event(order_id="o1", occurred_at="yesterday"), "bad_timestamp"),
        "phone": (event(contact={"phone": "call me"}), "bad_contact"),
        "email": (event(contact={"email": "nobody"}), "bad_contact"),
        "data": (event(order_id="o1", data={"amount": "ten"}), "bad_event_data"),
        "type": (event(order_id="o1", id=5), "validation_failed"),
        "required": ({"order_id": "o1"}, "validation_failed"),
    }
    for name, (body, code) in bad.items():
        error = await expect(api, "POST", "/api/events", body, 422, code)
        assert error["details"], (name, error)
    error = await expect(
        api,
        "POST",
        "/api/events",
        event(order_id="o1", occurred_at="yesterday"),
        422,
        "bad_timestamp",
    )
    assert error["details"] == [
        {
            "path": "/occurred_at",
            "message": "must be an ISO-8601 time with a time zone, such as 2026-11-27T10:00:00Z",
        }
    ]
    error = await expect(api, "POST", "/api/events", {"order_id": "o1"}, 422, "validation_failed")
    assert error["details"] == [{"path": "/type", "message": "is required"}]
    assert error["message"] == "event: /type is required"
    # an order's phones: the pointer names the one at fault
    order = {"id": "o2", "contact": {"phones": ["+14155550100", "not a phone"]}}
    error = await expect(api, "POST", "/api/orders", order, 422, "bad_contact")
    assert error["details"][0]["path"] == "/contact/phones/1"
    # several problems: all listed, the message says how many more
    error = await expect(
        api, "POST", "/api/orders", {"id": 5, "amount": "x", "fields": []}, 422, "validation_failed"
    )
    assert [p["path"] for p in error["details"]] == ["/amount", "/fields", "/id"]
    assert error["message"].endswith("(and 2 more problems: see details)"), error
    # malformed JSON: where, not the parser's words
    response = await api.client.post("/api/orders", data=b'{"id": ')
    error = assert_error_shape(await response.json(), "malformed_json")
    assert response.status == 400 and error["details"] == []
    assert error["message"].startswith("the request body is not valid JSON (line 1, column")
    # a pipeline with a repeated id: the second one is named
    pipeline = [
        {"id": "N", "name": "New", "sort": 1, "semantics": "process"},
        {"id": "N", "name": "Again", "sort": 2, "semantics": "success"},
    ]
    error = await expect(api, "PUT", "/api/statuses", pipeline, 422, "duplicate_status")
    assert error["details"] == [{"path": "/1/id", "message": "repeats the id of an earlier status"}]
    error = await expect(
        api,
        "PUT",
        "/api/statuses",
        [{**pipeline[0], "semantics": "maybe"}],
        422,
        "validation_failed",
    )
    assert error["details"] == [
        {"path": "/0/semantics", "message": 'must be one of "process", "success", "failure"'}
    ]


async def test_http_errors_have_the_shape_allow_and_a_quiet_server_header(make_client):
    client = await make_client(enable=("payment",))
    response = await client.delete("/api/statuses")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, PUT"
    error = assert_error_shape(await response.json(), "method_not_allowed")
    assert "DELETE" in error["message"] and "GET, PUT" in error["message"]
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert_error_shape(await response.json(), "not_found")
    for path in ("/healthz", "/api/statuses", "/api/nothing-here", "/api/docs"):
        response = await client.get(path)
        assert response.headers["Server"] == "statusflow", path
    small = await make_client(enable=("payment",), max_body_bytes=1000)
    response = await small.post("/api/orders", data=b"x" * 2000)
    assert response.status == 413
    assert_error_shape(await response.json(), "body_too_large")


async def test_a_plugins_details_in_the_earlier_form_are_dropped_not_passed_on(make_client):
    from statusflow import ApiError

    class Old:
        @hookimpl
        def register_routes(self, register: Callable[[Route], None]) -> None:
            async def old(request: web.Request) -> web.Response:
                raise ApiError(422, "validation_failed", "old style", {"field": "x"})

            register(Route("GET", "/api/old", old))

    client = await make_client(enable=("payment",), extra_plugins=[("old", Old())])
    response = await client.get("/api/old")
    assert response.status == 422
    assert assert_error_shape(await response.json(), "validation_failed")["details"] == []


def test_pointers_closest_names_and_schema_sentences() -> None:
    assert pointer() == ""
    assert pointer("events", 2, "a/b", "m~n") == "/events/2/a~1b/m~0n"
    assert closest("Ammount", ["amount", "currency"]) == ["amount"]
    assert closest("zzz", ["amount"]) == []
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["a"],
        "properties": {
            "a": {"type": ["string", "null"], "maxLength": 2},
            "b": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
            "c": {"enum": ["x", "y"]},
        },
    }
    assert schema_errors(schema, {"a": "abc", "b": [-1, "x"], "c": "z", "bb": 1}, "/s") == [
        {"path": "/s/a", "message": "must be at most 2 characters long"},
        {"path": "/s/b/0", "message": "must be at least 0"},
        {"path": "/s/b/1", "message": "must be an integer"},
        {"path": "/s/bb", "message": "is not a known field (did you mean 'b'?)"},
        {"path": "/s/c", "message": 'must be one of "x", "y"'},
    ]
    assert schema_errors(schema, {"b": []}) == [
        {"path": "/a", "message": "is required"},
        {"path": "/b", "message": "must not be an empty list"},
    ]
    assert schema_errors(schema, [1]) == [{"path": "", "message": "must be a JSON object"}]
