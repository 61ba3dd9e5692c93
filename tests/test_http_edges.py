"""Requests no client library would send: raw bytes on a socket to the test server.

Each gets a JSON error with the contract's envelope (never a 500) and changes nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

from statusflow.http.keys import DATABASE
from tests.helpers import Api, assert_error_shape


async def raw_request(client: Any, head: bytes, body: bytes = b"") -> tuple[int, bytes, Any]:
    """Send ``head`` (request line and headers, without the blank line) and ``body``;
    the status, the answer's head and its JSON body (``None`` if not JSON)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(head + b"\r\nHost: x\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # read() ends at close
    finally:
        writer.close()
    answer_head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(answer_head.split(b" ")[1])
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    return status, answer_head, parsed


async def test_a_token_that_is_not_utf8_is_a_401(make_client):
    client = await make_client(enable=("payment",), tokens=("secret",))
    for token in (b"\xe9", b"secr\xffet", b"\xc3"):
        status, _, body = await raw_request(
            client, b"GET /api/statuses HTTP/1.1\r\nAuthorization: Bearer " + token
        )
        assert status == 401, token
        assert_error_shape(body, "unauthorized")


async def test_a_compressed_body_that_does_not_decompress_is_a_400(make_client):
    client = await make_client(enable=("payment",))
    api = Api(client)
    await api.create_order("o1")
    event = json.dumps({"type": "payment.received", "order_id": "o1", "id": "gz"}).encode()
    for encoding in (b"gzip", b"deflate"):
        status, _, body = await raw_request(
            client,
            b"POST /api/events HTTP/1.1\r\nContent-Type: application/json\r\n"
            + b"Content-Encoding: "
            + encoding
            + f"\r\nContent-Length: {len(event)}".encode(),
            event,  # sent as is: not what the header says
        )
        assert status == 400, (encoding, body)
        message = assert_error_shape(body, "unreadable_body")["message"]
        assert "cannot be read" in message and "\n" not in message, message
    assert await api.stored_event_count() == 0
    # the same event, really compressed, is read
    packed = gzip.compress(event)
    status, _, body = await raw_request(
        client,
        b"POST /api/events HTTP/1.1\r\nContent-Type: application/json\r\n"
        + f"Content-Encoding: gzip\r\nContent-Length: {len(packed)}".encode(),
        packed,
    )
    assert status == 200, body
    assert body["event_id"] == "gz"


async def test_a_declared_length_over_the_limit_is_a_413_before_the_body(make_client):
    """The client is told at once, before it sends (or waits to send) the body."""
    client = await make_client(enable=("payment",), max_body_bytes=1000)
    api = Api(client)
    await api.create_order("o1")
    for expect in (b"", b"\r\nExpect: 100-continue"):
        status, head, body = await raw_request(
            client,
            b"POST /api/events HTTP/1.1\r\nContent-Type: application/json\r\n"
            + b"Content-Length: 5242880"
            + expect,
            b'{"type": ',  # and no more: the answer must not wait for the rest
        )
        assert status == 413, (expect, head)
        assert_error_shape(body, "body_too_large")
    assert await api.stored_event_count() == 0


async def test_an_unknown_expectation_is_a_417(make_client):
    client = await make_client(enable=("payment",))
    status, _, body = await raw_request(
        client,
        b"POST /api/orders HTTP/1.1\r\nContent-Type: application/json\r\n"
        + b"Content-Length: 11\r\nExpect: coffee",
    )
    assert status == 417
    assert "coffee" in assert_error_shape(body, "expectation_failed")["message"]
    assert (await client.get("/api/orders/x")).status == 404


async def test_integers_beyond_64_bits_are_refused_not_rounded(make_client):
    """orjson reads them as floats: stored, they would be another number than the one
    sent. The 64-bit ones themselves are kept exactly."""
    client = await make_client(enable=("payment", "responsible"))
    api = Api(client)
    too_big = [
        ("POST", "/api/orders", b'{"id": "o1", "responsible_id": 18446744073709551616}'),
        ("POST", "/api/orders", b'{"id": "o1", "fields": {"n": [1, 100000000000000000000000]}}'),
        ("POST", "/api/orders", b'{"id": "o1", "amount": -9223372036854775809}'),
        (
            "POST",
            "/api/triggers",
            b'{"type": "responsible.changed", "status": "S",'
            b' "settings": {"responsible_id": 18446744073709551616}}',
        ),
        (
            "POST",
            "/api/events",
            b'{"type": "payment.received", "contact": {"contact_id": "c"},'
            b' "data": {"amount": 100000000000000000000}}',
        ),
    ]
    for method, path, body in too_big:
        response = await client.request(
            method, path, data=body, headers={"Content-Type": "application/json"}
        )
        answer = await response.json()
        assert response.status == 422, (path, body, answer)
        assert "64 bits" in assert_error_shape(answer, "validation_failed")["message"]
    assert (await client.get("/api/orders/o1")).status == 404
    assert await api.stored_event_count() == 0
    # at the edges of 64 bits, and long digit runs inside strings, all is kept as sent
    body = (
        b'{"id": "o2", "fields": {"max": 18446744073709551615, "min": -9223372036854775808,'
        b' "text": "12345678901234567890123"}}'
    )
    response = await client.post(
        "/api/orders", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["fields"] == {
        "max": 18446744073709551615,
        "min": -9223372036854775808,
        "text": "12345678901234567890123",
    }


async def test_a_database_that_cannot_be_written_is_a_503_to_retry(make_client, monkeypatch):
    """SQLite's write lock held past the busy wait (PostgreSQL down: the same answer):
    a 503 with Retry-After, nothing stored; the same event goes through afterwards."""
    import sqlite3

    from statusflow.store import sqlite as sqlitestore

    client = await make_client(enable=("payment",))
    db = client.app[DATABASE]
    if not db.is_sqlite:
        return  # PostgreSQL has no lock to hold from outside; see the classification test
    api = Api(client)
    await api.create_order("o1")
    monkeypatch.setattr(sqlitestore, "BUSY_WAIT", 0.3)
    blocker = sqlite3.connect(db.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        response = await client.post(
            "/api/events", json={"type": "payment.received", "order_id": "o1", "id": "e1"}
        )
        assert response.status == 503, await response.text()
        assert response.headers["Retry-After"] == "1"
        assert_error_shape(await response.json(), "unavailable")
    finally:
        blocker.close()  # rolls the blocking transaction back
    assert await api.stored_event_count() == 0
    result = await api.call(
        "POST", "/api/events", {"type": "payment.received", "order_id": "o1", "id": "e1"}
    )
    assert result["duplicate"] is False


def _sqlite_locked() -> BaseException:
    """The error SQLite raises for a write lock another connection holds."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        holder = sqlite3.connect(f"{folder}/locked.db", isolation_level=None)
        other = sqlite3.connect(f"{folder}/locked.db", isolation_level=None, timeout=0)
        try:
            holder.execute("BEGIN IMMEDIATE")
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                return exc
            raise AssertionError("the second writer was not refused")
        finally:
            other.close()
            holder.close()


def test_what_counts_as_the_database_being_unavailable():
    import aiohttp
    import asyncpg
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from statusflow.store.database import database_unavailable
    from statusflow.store.statements import CommitOutcomeUnknown

    def wrapped(cause: BaseException) -> BaseException:
        """As SQLAlchemy's asyncpg dialect raises it: the driver's error under an
        adapter's, under a DBAPIError."""
        try:
            raise Exception("adapter") from cause
        except Exception as adapter:
            return DBAPIError("SELECT 1", None, adapter)

    def during(handled: BaseException, raised: BaseException) -> BaseException:
        """``raised`` while ``handled`` was being handled (its context, not its cause)."""
        try:
            try:
                raise handled
            except BaseException:
                raise raised from None
        except BaseException as exc:
            return exc

    unavailable = [
        ConnectionRefusedError(111, "refused"),
        OSError(111, "Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.TooManyConnectionsError("too many clients"),
        wrapped(asyncpg.CannotConnectNowError("starting up")),
        _sqlite_locked(),
    ]
    for exc in unavailable:
        assert database_unavailable(exc), exc
    available = [
        ValueError("a bug"),
        KeyError("x"),
        OSError(2, "No such file"),
        __import__("sqlite3").OperationalError("no such table: orders"),
        IntegrityError("INSERT", None, Exception("unique")),
        wrapped(asyncpg.UniqueViolationError("duplicate key")),
        asyncpg.InterfaceError("the server expects 2 arguments, 1 was passed"),
        aiohttp.ClientOSError(111, "a plugin's call to another service was refused"),
        during(ConnectionResetError(104, "reset"), KeyError("a bug in the handler")),
        CommitOutcomeUnknown("COMMIT failed: connection reset"),
    ]
    for exc in available:
        assert not database_unavailable(exc), exc
