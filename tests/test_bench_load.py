"""The load generator's lean HTTP/1.1 client (``bench/load.py``) against real loopback servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import orjson
import pytest
from aiohttp import web

from bench.dataset import Template
from bench.load import (
    CHUNKED,
    UNTIL_CLOSE,
    HttpConnection,
    LoadSpec,
    Target,
    generate,
    parse_chunked,
    parse_head,
    run_loop,
)

RESULT_KEYS = {
    "requests",
    "successes",
    "events_per_s",
    "latency_ms",
    "errors",
    "by_type",
    "duplicates_sent",
    "warmup_requests",
    "client_cpu_seconds",
    "duration",
}

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Collector:
    """A listener that queues what a connection reports: ``(status, body)`` or a failure."""

    def __init__(self) -> None:
        self.results: asyncio.Queue[tuple[int, bytes] | str] = asyncio.Queue()

    def on_response(self, status: int, body: bytes) -> None:
        """Queue the response."""
        self.results.put_nowait((status, body))

    def on_failure(self, outcome: str) -> None:
        """Queue the failure's name."""
        self.results.put_nowait(outcome)

    async def next(self) -> tuple[int, bytes] | str:
        """The next report, within a second."""
        return await asyncio.wait_for(self.results.get(), 1.0)


async def open_connection(port: int, collector: Collector) -> HttpConnection:
    """A lean client connection to the loopback ``port``."""
    return await HttpConnection.open(collector, "127.0.0.1", port)


def spec_for(url: str, types: dict[str, float], **overrides: Any) -> LoadSpec:
    """A short load (0.05 s warm-up, 0.3 s measured) over events of ``types`` (weights)."""
    templates = [asdict(Template(t, "order", w, with_data=False)) for t, w in types.items()]
    settings: dict[str, Any] = {
        "url": url,
        "concurrency": 4,
        "warmup": 0.05,
        "duration": 0.3,
        "seed": 7,
        "tag": "t",
        "orders": 50,
        "contacts": 10,
        "templates": templates,
        "request_timeout": 2.0,
    }
    settings.update(overrides)
    return LoadSpec(**settings)


# --- an aiohttp server answering by event type ----------------------------------------


class EventServer:
    """``POST /api/events``: the event's type picks the answer; remembers the peers seen."""

    def __init__(self) -> None:
        self.peers: set[Any] = set()
        self.received: dict[str, int] = {}
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer by the event's ``type``."""
        raw = await request.read()
        self.bodies.append(raw)
        event = orjson.loads(raw)
        kind = event["type"]
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        self.received[kind] = self.received.get(kind, 0) + 1
        if kind == "missing":
            return web.json_response({"error": "unknown order"}, status=404)
        if kind == "invalid":
            return web.json_response({"error": "invalid"}, status=422)
        if kind == "slow":
            await asyncio.sleep(1.0)
        if kind == "chunked":
            response = web.StreamResponse(status=200)
            response.content_type = "application/json"
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b'{"id": ')
            await response.write(orjson.dumps(event["id"]))
            await response.write(b"}")
            await response.write_eof()
            return response
        answer = web.json_response({"id": event["id"], "stored": True})
        if kind == "close":
            answer.force_close()
        return answer


@pytest.fixture
async def event_server() -> AsyncIterator[tuple[EventServer, str, int]]:
    """The :class:`EventServer`, its events URL and port, on a free loopback port."""
    server = EventServer()
    app = web.Application()
    app.router.add_post("/api/events", server.handle)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{port}/api/events", port
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[int]:
    """A plain asyncio server on a free loopback port: its port; closed on the way out."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def load_against(handler: RawHandler) -> dict[str, Any]:
    """The load generator's result against a raw server answering with ``handler``."""
    async with raw_server(handler) as port:
        return await generate(spec_for(f"http://127.0.0.1:{port}/", {"ok": 1.0}))


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body."""
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"\r\ncontent-length: *(\d+)", head.lower())
    assert found, head
    return await reader.readexactly(int(found.group(1)))


# --- parsing ----------------------------------------------------------------------------


def test_parse_head() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12") == (200, 12, True)
    assert parse_head(b"HTTP/1.1 422 Unprocessable\r\ncontent-length:3\r\nConnection: close") == (
        422,
        3,
        False,
    )
    assert parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked") == (200, CHUNKED, True)
    assert parse_head(b"HTTP/1.1 200 OK\r\nX-A: b") == (200, UNTIL_CLOSE, False)
    assert parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0") == (200, 0, False)
    assert parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive")[2]
    assert parse_head(b"HTTP/1.1 204 No Content") == (204, 0, True)
    for bad in (
        b"HTTP/2 200",
        b"ICY 200 OK",
        b"HTTP/1.1 2xx OK",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1",
    ):
        with pytest.raises(ValueError):
            parse_head(bad)


def test_parse_chunked() -> None:
    data = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT"
    assert parse_chunked(data) == (b"Wikipedia", len(data) - 4)
    for end in range(len(data) - 4):
        assert parse_chunked(data[:end]) is None
    for bad in (b"zz\r\n", b"0x4\r\nWiki\r\n", b"4\r\nWikiXX"):
        with pytest.raises(ValueError):
            parse_chunked(bad)


def test_target_builds_the_request() -> None:
    target = Target.from_url("http://127.0.0.1:8080/api/events?x=1")
    assert (target.host, target.port) == ("127.0.0.1", 8080)
    assert target.request(b'{"a":1}') == (
        b"POST /api/events?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b'Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'
    )
    with pytest.raises(ValueError):
        Target.from_url("https://example.org/api/events")


# --- one connection ---------------------------------------------------------------------


async def test_connection_reads_status_and_body(event_server: tuple[EventServer, str, int]) -> None:
    server, url, port = event_server
    target = Target.from_url(url)
    collector = Collector()
    conn = await open_connection(port, collector)
    try:
        for kind, status in (("ok", 200), ("missing", 404), ("invalid", 422), ("chunked", 200)):
            conn.send(target.request(orjson.dumps({"id": f"e-{kind}", "type": kind})))
            answer = await collector.next()
            assert isinstance(answer, tuple)
            assert answer[0] == status, kind
            body = orjson.loads(answer[1])
            if status == 200:
                assert body["id"] == f"e-{kind}"
            assert not conn.closed
        conn.send(target.request(orjson.dumps({"id": "e-close", "type": "close"})))
        assert await collector.next() == (200, b'{"id": "e-close", "stored": true}')
        assert conn.closed  # Connection: close
    finally:
        conn.close()
    assert len(server.peers) == 1  # the first five requests shared one connection


async def test_connection_survives_fragments_interim_answers_and_close_delimited_bodies() -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
    ]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for answer in answers:
                await read_request(reader)
                for at in range(0, len(answer), 3):  # three bytes at a time
                    writer.write(answer[at : at + 3])
                    await writer.drain()
                    await asyncio.sleep(0.001)
        finally:
            writer.close()

    async with raw_server(handle) as port:
        collector = Collector()
        conn = await open_connection(port, collector)
        target = Target.from_url(f"http://127.0.0.1:{port}/")
        try:
            for expected in ((201, b"hello"), (200, b"Wikipedia"), (200, b"until the close")):
                conn.send(target.request(b"{}"))
                assert await collector.next() == expected
            assert conn.closed
        finally:
            conn.close()


async def test_connection_reports_a_server_that_hangs_up() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Len")  # half a head, then gone
        writer.close()

    async with raw_server(handle) as port:
        collector = Collector()
        conn = await open_connection(port, collector)
        try:
            conn.send(Target.from_url(f"http://127.0.0.1:{port}/").request(b"{}"))
            assert await collector.next() == "ServerDisconnectedError"
            assert conn.closed
        finally:
            conn.close()


# --- the whole load ---------------------------------------------------------------------


async def test_generate_counts_statuses_and_reconnects(
    event_server: tuple[EventServer, str, int],
) -> None:
    server, url, _ = event_server
    types = {"ok": 4.0, "missing": 1.0, "invalid": 1.0, "chunked": 1.0, "close": 1.0}
    result = await generate(spec_for(url, types))
    assert set(result) == RESULT_KEYS
    by_type, errors = result["by_type"], result["errors"]
    assert set(by_type) == set(types)
    assert errors == {"404": by_type["missing"], "422": by_type["invalid"]}
    assert result["successes"] == by_type["ok"] + by_type["chunked"] + by_type["close"]
    assert result["requests"] == sum(by_type.values()) > 50
    assert result["events_per_s"] == result["successes"] / 0.3
    assert result["warmup_requests"] > 0
    latency = result["latency_ms"]  # reported and ordered, whatever the machine's speed
    assert set(latency) >= {"p50", "max"} and latency["max"] >= latency["p50"] > 0
    assert result["client_cpu_seconds"] > 0  # a figure for the benchmark, not a test
    # every request reached the server; each "close" answer cost a new connection
    assert sum(server.received.values()) >= result["requests"] + result["warmup_requests"]
    assert len(server.peers) > server.received["close"]


async def test_generate_is_deterministic(event_server: tuple[EventServer, str, int]) -> None:
    server, url, _ = event_server
    spec = spec_for(url, {"ok": 1.0, "missing": 1.0}, concurrency=1, duplicate_share=0.2)
    await generate(spec)
    first, server.bodies = server.bodies, []
    await generate(spec)
    second = server.bodies
    shorter = min(len(first), len(second))
    assert shorter > 20
    assert first[:shorter] == second[:shorter]  # the same seed: the same events, in order
    assert len(set(first)) < len(first)  # duplicates were sent


async def test_generate_times_out_slow_requests(event_server: tuple[EventServer, str, int]) -> None:
    server, url, _ = event_server
    spec = spec_for(url, {"ok": 3.0, "slow": 1.0}, concurrency=2, request_timeout=0.15)
    result = await generate(spec)
    timeouts = result["errors"].get("timeout", 0)
    assert timeouts > 0
    assert set(result["errors"]) == {"timeout"}
    # a timed-out connection is dropped and the worker goes on over a new one (counts of
    # connections, not of requests per second: those depend on the machine's load)
    assert result["successes"] > 0
    assert len(server.peers) >= max(timeouts, 2)  # each timeout cost its connection


async def test_generate_survives_a_server_dropping_connections() -> None:
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                await read_request(reader)
                served += 1
                if served % 5 == 0:
                    return  # hang up without an answer
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    result = await load_against(handle)
    assert set(result["errors"]) == {"ServerDisconnectedError"}
    assert result["errors"]["ServerDisconnectedError"] > 0
    assert result["successes"] > 3 * result["errors"]["ServerDisconnectedError"]


def test_main_loop_runs_the_load() -> None:
    """The process's own loop (uvloop when installed) drives the same client."""

    async def load() -> dict[str, Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    await read_request(reader)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                    )
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        return await load_against(handle)

    result = run_loop(load())
    assert result["errors"] == {}
    assert result["successes"] == result["requests"] > 50
