"""Fixtures of the board's tests: a real server on a loopback port, and Debian's Chromium
driven by Playwright's async API (never ``playwright install``).

Without a Chromium the browser tests skip, saying how to get one; under ``CI=true`` they
fail instead (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from statusflow.http import init_app
from statusflow.testing import settings_for

TOKEN = "board-token-7f3a9c"
"""The plain token the signed-in tests use."""


def chromium_path() -> str | None:
    """``$STATUSFLOW_CHROMIUM``, or Debian's ``chromium`` on the ``PATH``."""
    given = os.environ.get("STATUSFLOW_CHROMIUM")
    if given:
        return given
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium (Debian's), closed after the test."""
    path = chromium_path()
    if path is None:
        reason = (
            "no Chromium found for the browser tests: install Debian's chromium "
            "(apt-get install -y chromium) or set STATUSFLOW_CHROMIUM"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Board:
    """A statusflow server on a free loopback port, serving the board."""

    server: TestServer

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def app(self) -> web.Application:
        return self.server.app  # type: ignore[return-value]

    def url(self, path: str) -> str:
        return self.base + path


StartBoard = Callable[..., Awaitable[Board]]


@pytest.fixture
async def start_board(database_url: str) -> AsyncIterator[StartBoard]:
    """``await start_board(**settings)``: a real server on the test's database, closed
    after the test."""
    servers: list[TestServer] = []

    async def start(extra_plugins: Any = (), **overrides: Any) -> Board:
        overrides.setdefault("database_url", database_url)
        app = init_app(settings_for(**overrides), extra_plugins=extra_plugins)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Board(server)

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A browser context at 1280x800 (what the board is made for on a desk)."""
    made = await browser.new_context(viewport={"width": 1280, "height": 800})
    made.set_default_timeout(10_000)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    """A page of the context."""
    return await context.new_page()


async def sign_in(page: Page, board: Board, token: str = TOKEN) -> None:
    """Sign in through the form, as a person would."""
    await page.goto(board.url("/ui/"))
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(board.url("/ui/"))
