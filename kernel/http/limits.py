"""Request limits: per-client rate limits on public endpoints, and a body read timeout.

Public endpoints (``/t/*``, ``/hooks/*``, ``/sources/*``) need no token, so anybody can
call them: each client address gets a token bucket (``[server] public_rate_per_second``
tokens a second, up to ``public_burst``), held in memory by each process; an empty
bucket answers 429 with ``Retry-After``. Behind a load balancer every request comes from
its address: list it in ``[server] trusted_proxies`` and the client is read from
``X-Forwarded-For`` instead.

Every request body is read under ``[server] request_timeout_seconds``: a client that
sends it too slowly gets a 408 and its connection is closed (body size is bounded by
``max_body_bytes``, a 413). The front door (:mod:`statusflow.http.front_door`) applies
both.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import HttpVersion11, hdrs, web

from statusflow.engine import metrics
from statusflow.http.middlewares import error_response
from statusflow.serving.config import Settings

PUBLIC_PREFIXES = ("/t/", "/hooks/", "/sources/")
MAX_CLIENTS = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_public(path: str) -> bool:
    """Whether ``path`` is a rate-limited public endpoint."""
    return path.startswith(PUBLIC_PREFIXES)


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second, at most ``burst`` held."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def take(self, key: str) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be."""
        now = self._clock()
        tokens, updated = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._forget_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (their clients are as good as new)."""
        refill = self.burst / self.rate
        self._buckets = {
            key: value for key, value in self._buckets.items() if now - value[1] < refill
        }


def client_address(request: web.Request, trusted: Sequence[Network]) -> str:
    """The client's address: the peer's, or from ``X-Forwarded-For`` via a trusted proxy."""
    peer = request.remote or ""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class PublicRateLimit:
    """The public endpoints' limit per client address (a rate of 0 turns it off)."""

    def __init__(self, settings: Settings) -> None:
        self.buckets = TokenBuckets(settings.public_rate_per_second, settings.public_burst)
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self.enabled = settings.public_rate_per_second > 0

    def applies(self, path: str) -> bool:
        """Whether requests to ``path`` are counted (on, and a public endpoint)."""
        return self.enabled and is_public(path)

    def refusal(self, request: web.Request) -> web.Response | None:
        """Take a token from the client's bucket: ``None``, or a 429 with ``Retry-After``
        when the bucket is empty."""
        wait = self.buckets.take(client_address(request, self.trusted))
        if wait <= 0.0:
            return None
        metrics.RATE_LIMITED.inc()
        response = error_response(
            429, "too_many_requests", "too many requests from this address; retry later"
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response


async def read_slow_body(request: web.Request, timeout: float) -> web.StreamResponse | None:
    """Read a body that did not come with the headers, within ``timeout`` seconds:
    ``None``, or the 408 sent (its connection closed) when it took longer. The body is
    then in aiohttp's cache, where the handler reads it."""
    try:
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError:
        return await answer_and_close(
            request,
            408,
            "request_timeout",
            f"the request body took longer than {timeout:g} s to arrive",
        )
    return None


ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


def expect_handler(settings: Settings) -> ExpectHandler:
    """The routes' ``Expect: 100-continue`` handler: a declared body over
    ``max_body_bytes`` is refused with a 413 instead of being invited with a ``100``."""
    limit = settings.max_body_bytes

    async def expect_within_limit(request: web.Request) -> web.StreamResponse | None:
        declared = request.content_length
        if declared is not None and declared > limit:
            return await answer_and_close(
                request, 413, "body_too_large", f"the request body is larger than {limit} bytes"
            )
        expect = request.headers.get(hdrs.EXPECT, "")
        if expect.lower() != "100-continue":
            return await answer_and_close(
                request, 417, "expectation_failed", f"unknown Expect: {expect}"
            )
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer's own size starts after it
        return None

    return expect_within_limit


async def answer_and_close(
    request: web.Request, status: int, code: str, message: str
) -> web.StreamResponse:
    """Answer with a JSON error, then close the connection at once: aiohttp would
    otherwise linger, reading what is left of the body for up to ten more seconds."""
    response = error_response(status, code, message)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response
