"""The load generator: C concurrent keep-alive HTTP connections for D seconds, in its own process.

Run by :func:`drive` as ``python -m bench.load SPEC.json RESULT.json``. Each of the C
workers posts one event at a time (a new one as soon as the previous answer arrived)
from its own deterministic :class:`~bench.dataset.EventFactory`. Requests that finish
during the warm-up are not counted. The process prints ``WINDOW_START`` and
``WINDOW_END`` on standard output when the measured window opens and closes, so the
parent can read the server's CPU time at those moments.

The load generator shares the machine's cores with the server it measures, so its HTTP
client is a lean one of its own rather than aiohttp's (which cost ~0.4 ms of CPU per
request): one :class:`HttpConnection` (an :class:`asyncio.Protocol`) per worker, the
request bytes built by concatenation, the response parsed with a few ``bytes`` searches,
and the next request written from the callback that completed the previous one; the
events themselves are made before the load starts (:data:`PREPARED_RATE`). Plain
``http://`` only. Failed requests are counted under the names of the aiohttp exceptions
the earlier client raised (``ClientConnectorError``, ``ServerDisconnectedError``,
``ClientOSError``, ``ClientResponseError``, ``ClientPayloadError``) or ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from math import ceil
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import orjson

from bench.dataset import EventFactory, Template
from bench.procs import ROOT, ResourceSampler, log_tail

CHUNKED = -1
""":attr:`HttpConnection.length` of a ``Transfer-Encoding: chunked`` body."""
UNTIL_CLOSE = -2
""":attr:`HttpConnection.length` of a body that ends when the server closes."""
MAX_HEAD = 64 * 1024
"""A longer response head is refused (``ClientResponseError``)."""
HEAD_CACHE = 1024
"""Response heads remembered with their parse: a server's heads repeat (they differ by Date
and Content-Length only), and a lookup is several times cheaper than :func:`parse_head`."""
PAUSE = 0.01
"""Seconds a worker waits after a failed request: the server is gone or stuck, do not spin."""
PREPARED_RATE = 4000.0
"""Events per second (all workers together) made before the load starts, for the warm-up
and the window. Made one by one between network callbacks, with cold CPU caches, an event
costs ~40 µs, as much as all the rest of a request; made in a tight loop before the
window, it costs ~12 µs and takes nothing from the server under test. (A 5 + 30 s run
at C=32 makes 140,000 requests in ~1.7 s, ~50 MB, before it starts.)"""
BATCH = 256
"""Events made at once when a worker has used up those made in advance."""

_HEX = b"0123456789abcdefABCDEF"


@dataclass
class LoadSpec:
    """Everything the load process needs."""

    url: str
    concurrency: int
    warmup: float
    duration: float
    seed: int
    tag: str
    orders: int
    contacts: int
    templates: list[dict[str, Any]]
    duplicate_share: float = 0.02
    unknown_share: float = 0.05
    request_timeout: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99, mean and max of ``values`` (in the same unit), 0 when empty."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": sum(ordered) / len(ordered),
        "max": ordered[-1],
    }


# --- the lean HTTP/1.1 client ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where to post: the address and the request bytes up to the Content-Length value."""

    host: str
    port: int
    prefix: bytes

    @classmethod
    def from_url(cls, url: str) -> Target:
        """The target of a ``http://host[:port]/path[?query]`` URL."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load generator only speaks plain http://, not {url!r}")
        port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        authority = host if port == 80 else f"{host}:{port}"
        prefix = (
            f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode("ascii")
        return cls(parts.hostname, port, prefix)

    def request(self, body: bytes) -> bytes:
        """The whole request posting ``body``."""
        return b"%s%d\r\n\r\n%s" % (self.prefix, len(body), body)


class ResponseListener(Protocol):
    """What an :class:`HttpConnection` reports to."""

    def on_response(self, status: int, body: bytes) -> None:
        """A complete response arrived (the connection may have closed: see ``closed``)."""

    def on_failure(self, outcome: str) -> None:
        """The request in flight failed; the connection is closed."""


def _header(lower_head: bytes, name: bytes) -> bytes | None:
    """The stripped value of header ``name`` (``b"\\r\\nname:"``) in a lower-cased head."""
    start = lower_head.find(name)
    if start < 0:
        return None
    start += len(name)
    end = lower_head.find(b"\r\n", start)
    return (lower_head[start:] if end < 0 else lower_head[start:end]).strip()


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """``(status, body length, keep-alive)`` of a response head (without its blank line).

    The length is :data:`CHUNKED` or :data:`UNTIL_CLOSE` when not given by Content-Length.
    Raises :class:`ValueError` on a malformed head.
    """
    if not head.startswith(b"HTTP/1.") or head[12:13] not in (b" ", b"\r", b""):
        raise ValueError(f"not an HTTP/1.x status line: {head[:40]!r}")
    status = int(head[9:12])
    if not 100 <= status <= 999:
        raise ValueError(f"bad status {status}")
    lower = head.lower()
    keep_alive = head[7:8] != b"0"  # HTTP/1.1 keeps the connection, 1.0 does not
    connection = _header(lower, b"\r\nconnection:")
    if connection is not None:
        tokens = {t.strip() for t in connection.split(b",")}
        keep_alive = b"close" not in tokens and (keep_alive or b"keep-alive" in tokens)
    if status < 200 or status in (204, 304):
        return status, 0, keep_alive
    coding = _header(lower, b"\r\ntransfer-encoding:")
    if coding is not None:
        if coding.rsplit(b",", 1)[-1].strip() == b"chunked":
            return status, CHUNKED, keep_alive
        return status, UNTIL_CLOSE, False
    length = _header(lower, b"\r\ncontent-length:")
    if length is None:
        return status, UNTIL_CLOSE, False
    if not length.isdigit():
        raise ValueError(f"bad Content-Length {length!r}")
    return status, int(length), keep_alive


def parse_chunked(data: bytes | bytearray) -> tuple[bytes, int] | None:
    """``(body, bytes used)`` of a complete chunked body at the start of ``data``.

    ``None`` while incomplete; :class:`ValueError` when malformed. Chunk extensions and
    trailers are skipped.
    """
    parts: list[bytes] = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(data[pos:eol]).split(b";", 1)[0].strip()
        if not size_text or size_text.strip(_HEX):
            raise ValueError(f"bad chunk size {size_text!r}")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            while True:  # trailer fields, up to a blank line
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(data) < pos + size + 2:
            return None
        if data[pos + size : pos + size + 2] != b"\r\n":
            raise ValueError("a chunk does not end with CRLF")
        parts.append(bytes(data[pos : pos + size]))
        pos += size + 2


_parsed_heads: dict[bytes, tuple[int, int, bool]] = {}
"""The :data:`HEAD_CACHE`: response heads already parsed."""


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 client connection with at most one request in flight.

    :meth:`send` writes a request; the response is parsed as it arrives (Content-Length,
    chunked, or up to the close) and handed to the listener's ``on_response``. A response
    with ``Connection: close`` (or from HTTP/1.0 without keep-alive) closes the connection
    before the listener hears of it, so the listener reconnects. A connection lost, or a
    response that cannot be parsed, with a request in flight goes to ``on_failure``.
    """

    __slots__ = (
        "body",
        "closed",
        "head",
        "keep_alive",
        "length",
        "listener",
        "received",
        "status",
        "transport",
        "waiting",
    )

    def __init__(self, listener: ResponseListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiting = False
        self.head = b""  # the start of a response head, until its blank line arrives
        self.status = 0  # 0 until the head is parsed
        self.length = 0
        self.keep_alive = True
        self.body: list[bytes] | bytearray = []
        self.received = 0

    @classmethod
    async def open(cls, listener: ResponseListener, host: str, port: int) -> HttpConnection:
        """A new connection to ``host:port``, ready to :meth:`send`.

        (uvloop calls ``connection_made`` only after ``create_connection`` has returned.)
        """
        loop = asyncio.get_running_loop()
        transport, conn = await loop.create_connection(lambda: cls(listener), host, port)
        conn.transport = transport
        return conn

    # asyncio.Protocol (both asyncio's and uvloop's transports set TCP_NODELAY themselves)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Parse what arrived: a head (and body), or more of a body."""
        if not self.waiting:
            self.close(abort=True)  # nothing was asked: a server talking out of turn
        elif self.status:
            self._body(data)
        elif self.head:
            head, self.head = self.head, b""
            self._start(head + data)
        else:
            self._start(data)

    def connection_lost(self, exc: Exception | None) -> None:
        """A body up to the close is complete; any other request in flight failed."""
        self.closed = True
        if not self.waiting:
            return
        if exc is None and self.status and self.length == UNTIL_CLOSE:
            assert isinstance(self.body, list)
            self._complete(b"".join(self.body), extra=False)
            return
        self.waiting = False
        self.listener.on_failure("ServerDisconnectedError" if exc is None else "ClientOSError")

    # the client side

    def send(self, request: bytes) -> None:
        """Write ``request``; its response will come to the listener."""
        assert self.transport is not None and not self.closed and not self.waiting
        self.waiting = True
        self.transport.write(request)

    def close(self, abort: bool = False) -> None:
        """Close (``abort``: at once, with a reset); a request in flight is dropped unreported."""
        self.closed = True
        self.waiting = False
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def fail(self, outcome: str) -> None:
        """Give up the request in flight (e.g. on a timeout): abort, report ``outcome``."""
        if self.waiting:
            self.close(abort=True)
            self.listener.on_failure(outcome)

    # parsing

    def _start(self, data: bytes) -> None:
        """A response starts at the beginning of ``data``."""
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD:
                    self.fail("ClientResponseError")
                else:
                    self.head = data
                return
            head = data[:end]
            parsed = _parsed_heads.get(head)
            if parsed is None:
                try:
                    parsed = parse_head(head)
                except ValueError:
                    self.fail("ClientResponseError")
                    return
                if len(_parsed_heads) >= HEAD_CACHE:
                    _parsed_heads.clear()
                _parsed_heads[head] = parsed
            status, length, keep_alive = parsed
            data = data[end + 4 :]
            if status >= 200:
                break
            if not data:  # 1xx: an interim answer, the real one follows
                return
        self.status, self.length, self.keep_alive = status, length, keep_alive
        if len(data) == length:  # the usual case: the whole body is here
            self._complete(data, extra=False)
        else:
            self.body = bytearray() if length == CHUNKED else []
            self.received = 0
            self._body(data)

    def _body(self, data: bytes) -> None:
        """More of the body."""
        length = self.length
        body = self.body
        if length == CHUNKED:
            assert isinstance(body, bytearray)
            body += data
            try:
                parsed = parse_chunked(body)
            except ValueError:
                self.fail("ClientPayloadError")
                return
            if parsed is not None:
                self._complete(parsed[0], extra=parsed[1] < len(body))
            return
        assert isinstance(body, list)
        body.append(data)
        self.received += len(data)
        if length == UNTIL_CLOSE or self.received < length:
            return
        whole = b"".join(body)
        self._complete(whole[:length], extra=len(whole) > length)

    def _complete(self, body: bytes, extra: bool) -> None:
        """A whole response: reset, close unless kept alive, then tell the listener."""
        status = self.status
        keep_alive = self.keep_alive and not extra  # bytes after the answer: out of step
        self.status = 0
        self.body = []
        self.waiting = False
        if not keep_alive:
            self.close()
        self.listener.on_response(status, body)


# --- the load -------------------------------------------------------------------------


class Tally:
    """The figures of the measured window, shared by the workers."""

    def __init__(self) -> None:
        self.window_start = 0.0  # time.monotonic(), set before the load starts
        self.window_end = 0.0
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.by_type: Counter[str] = Counter()
        self.duplicates = 0
        self.warmup_requests = 0

    def count(
        self, outcome: str, event_type: str, duplicate: bool, sent: float, done: float
    ) -> None:
        """One finished request: in the warm-up, in the window, or after it (not counted)."""
        if done < self.window_start:
            self.warmup_requests += 1
        elif done <= self.window_end:
            self.statuses[outcome] += 1
            self.by_type[event_type] += 1
            self.duplicates += duplicate
            if outcome[0] == "2":
                self.latencies.append((done - sent) * 1000.0)


class Worker:
    """One of the C connections: posts the factory's events one after another until the end.

    While the connection lasts, each response's callback counts it and writes the next
    request at once; :meth:`run` only steps in to (re)connect and to pause after failures.
    """

    __slots__ = (
        "conn",
        "duplicate",
        "event_type",
        "events",
        "factory",
        "failed",
        "finished",
        "sent",
        "tally",
        "target",
        "timeout",
    )

    def __init__(self, target: Target, factory: EventFactory, tally: Tally, timeout: float) -> None:
        self.target = target
        self.factory = factory
        self.tally = tally
        self.timeout = timeout
        self.conn: HttpConnection | None = None
        self.events: list[tuple[str, bytes, bool]] = []  # the next requests, last first
        self.event_type = ""
        self.duplicate = False
        self.sent = 0.0
        self.failed = False
        self.finished: asyncio.Future[None] | None = None

    def prepare(self, count: int) -> None:
        """Make the factory's next ``count`` events, and their requests, now, in one go.

        (The request is a new, right-sized ``bytes``: orjson's bodies keep 4 KiB each.)
        """
        made, request = self.factory.next, self.target.request
        events = []
        for _ in range(count):
            event_type, body, duplicate = made()
            events.append((event_type, request(body), duplicate))
        events.reverse()
        self.events[:0] = events

    def next_request(self) -> tuple[str, bytes, bool]:
        """The next event's type, request and duplicate flag: made in advance, or now."""
        if not self.events:
            self.prepare(BATCH)
        return self.events.pop()

    async def run(self, start: float) -> None:
        """Post from ``start`` (``time.monotonic()``) until the window's end."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        end = self.tally.window_end
        try:
            while time.monotonic() < end:
                self.event_type, request, self.duplicate = self.next_request()
                self.sent = time.monotonic()
                conn = self.conn
                if conn is None or conn.closed:
                    try:
                        async with asyncio.timeout(self.timeout):
                            conn = await HttpConnection.open(
                                self, self.target.host, self.target.port
                            )
                    except TimeoutError:
                        self._failed("timeout")
                    except OSError:
                        self._failed("ClientConnectorError")
                    else:
                        self.conn = conn
                    if self.failed:
                        self.failed = False
                        await asyncio.sleep(PAUSE)
                        continue
                assert conn is not None
                self.finished = loop.create_future()
                conn.send(request)
                await self.finished
                if self.failed:
                    self.failed = False
                    await asyncio.sleep(PAUSE)
        finally:
            self.finished = None
            if self.conn is not None:
                self.conn.close()

    def check_timeout(self, now: float) -> None:
        """Fail the request in flight if it has run longer than the timeout."""
        conn = self.conn
        if conn is not None and conn.waiting and now - self.sent > self.timeout:
            conn.fail("timeout")

    def on_response(self, status: int, body: bytes) -> None:
        """Count the answer; post the next event at once if the connection and window last."""
        done = time.monotonic()
        self.tally.count(str(status), self.event_type, self.duplicate, self.sent, done)
        conn = self.conn
        if done < self.tally.window_end and conn is not None and not conn.closed:
            try:
                self.event_type, request, self.duplicate = self.next_request()
            except Exception as exc:  # not lost in the protocol's callback: run() raises it
                if self.finished is not None and not self.finished.done():
                    self.finished.set_exception(exc)
                return
            self.sent = time.monotonic()
            conn.send(request)
        else:
            self._wake()

    def on_failure(self, outcome: str) -> None:
        """Count the failure; :meth:`run` pauses, then reconnects."""
        self._failed(outcome)
        self._wake()

    def _failed(self, outcome: str) -> None:
        """Count a failed request; :meth:`run` will pause."""
        self.failed = True
        self.tally.count(outcome, self.event_type, self.duplicate, self.sent, time.monotonic())

    def _wake(self) -> None:
        """Hand control back to :meth:`run`."""
        finished = self.finished
        if finished is not None and not finished.done():
            finished.set_result(None)


async def _watch(workers: list[Worker], every: float) -> None:
    """Time out the requests in flight, checking every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        for worker in workers:
            worker.check_timeout(now)


async def generate(spec: LoadSpec) -> dict[str, Any]:
    """Drive the load described by ``spec``; return the counts and latencies."""
    loop = asyncio.get_running_loop()
    target = Target.from_url(spec.url)
    templates = [Template(**t) for t in spec.templates]
    cpu_marks: dict[str, float] = {}
    tally = Tally()

    def mark(name: str) -> None:
        cpu_marks[name] = time.process_time()
        sys.stdout.write(f"{name}\n")
        sys.stdout.flush()

    workers = [
        Worker(
            target,
            EventFactory(
                templates,
                orders=spec.orders,
                contacts=spec.contacts,
                seed=spec.seed,
                worker=index,
                tag=spec.tag,
                duplicate_share=spec.duplicate_share,
                unknown_share=spec.unknown_share,
            ),
            tally,
            spec.request_timeout,
        )
        for index in range(spec.concurrency)
    ]
    for worker in workers:
        worker.prepare(ceil(PREPARED_RATE * (spec.warmup + spec.duration) / spec.concurrency))
    start = time.monotonic() + 0.2
    tally.window_start = start + spec.warmup
    tally.window_end = start + spec.warmup + spec.duration
    now = time.monotonic()
    loop.call_later(tally.window_start - now, mark, "WINDOW_START")
    loop.call_later(tally.window_end - now, mark, "WINDOW_END")
    watchdog = asyncio.create_task(_watch(workers, min(0.1, spec.request_timeout / 10)))
    try:
        await asyncio.gather(*(worker.run(start) for worker in workers))
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        await asyncio.sleep(0)  # let the closed transports finish closing

    statuses = tally.statuses
    successes = sum(n for s, n in statuses.items() if s.startswith("2"))
    return {
        "requests": sum(statuses.values()),
        "successes": successes,
        "events_per_s": successes / spec.duration,
        "latency_ms": percentiles(tally.latencies),
        "errors": {s: n for s, n in sorted(statuses.items()) if not s.startswith("2")},
        "by_type": dict(sorted(tally.by_type.items())),
        "duplicates_sent": tally.duplicates,
        "warmup_requests": tally.warmup_requests,
        "client_cpu_seconds": cpu_marks.get("WINDOW_END", 0.0) - cpu_marks.get("WINDOW_START", 0.0),
        "duration": spec.duration,
    }


def run_loop(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run ``main`` on uvloop when installed (cheaper per request), else on asyncio's loop."""
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    return runner(main)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.load SPEC.json RESULT.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m bench.load SPEC.json RESULT.json\n")
        return 2
    spec = LoadSpec(**orjson.loads(Path(args[0]).read_bytes()))
    result = run_loop(generate(spec))
    Path(args[1]).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


def drive(
    spec: LoadSpec, server_pid: int, workdir: Path, name: str, database: str | None = None
) -> dict[str, Any]:
    """Run the load process against a server; add the server's CPU and memory to its result.

    :param server_pid: the server process, whose process tree is measured.
    :param name: names the spec, result and log files in ``workdir``.
    :param database: a PostgreSQL database name, whose backends' CPU is measured too.
    """
    spec_path = workdir / f"{name}.spec.json"
    result_path = workdir / f"{name}.result.json"
    log_path = workdir / f"{name}.load.log"
    spec_path.write_bytes(orjson.dumps(asdict(spec)))
    sampler = ResourceSampler(server_pid, database)
    sampler.start()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.load", str(spec_path), str(result_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            text=True,
        )
    limit = spec.warmup + spec.duration + spec.request_timeout + 60
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "WINDOW_START":
                sampler.mark_start()
            elif line.strip() == "WINDOW_END":
                sampler.mark_end()
        code = proc.wait()
    finally:
        watchdog.cancel()
        usage = sampler.finish()
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"the load generator failed ({code}):\n{log_tail(log_path)}")
    result: dict[str, Any] = orjson.loads(result_path.read_bytes())
    result.update(
        cpu_seconds=usage.cpu_seconds,
        cpu_percent=usage.cpu_percent,
        peak_rss_mb=usage.peak_rss_mb,
        measured_wall_seconds=usage.wall_seconds,
    )
    result["database_cpu_seconds"] = usage.database_cpu_seconds
    # CPU that neither the server, its PostgreSQL backends nor the load generator used:
    # other work on the machine (PostgreSQL's background writers and the benchmark's own
    # sampling included, a few percent). Much of it means disturbed figures.
    result["other_cpu_seconds"] = max(
        0.0,
        usage.machine_busy_seconds
        - usage.cpu_seconds
        - usage.database_cpu_seconds
        - result["client_cpu_seconds"],
    )
    return result


if __name__ == "__main__":
    raise SystemExit(main())
