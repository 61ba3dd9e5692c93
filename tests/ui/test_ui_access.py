"""The board's door: sign-in with a token, sessions, sign-out, cross-site requests
refused, ``GET /`` to the board, ``[ui] enabled = false``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from aiohttp import ClientSession, CookieJar
from playwright.async_api import Page, expect

from statusflow.ui.assets import STATIC, VENDORED
from tests.ui.conftest import TOKEN, StartBoard, sign_in

READER = "reader-token-2b81"


async def test_sign_in_and_out(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    await page.goto(board.url("/"))
    await expect(page.get_by_label("Token")).to_be_visible()
    await page.get_by_label("Token").fill("not-" + TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    await page.goto(board.url("/ui/"))
    await expect(page.get_by_label("Token")).to_be_visible()  # still signed out

    await sign_in(page, board)
    await expect(page.get_by_role("region", name="Paid")).to_be_visible()
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["statusflow_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert TOKEN not in session["value"]

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Token")).to_be_visible()
    await page.goto(board.url("/ui/statuses"))
    await expect(page.get_by_label("Token")).to_be_visible()


async def test_a_scoped_key_is_read_only(start_board: StartBoard, page: Page) -> None:
    keys = ({"name": "reader", "token": READER, "scopes": ["read"]},)
    from statusflow.serving.api_keys import keys_from_config

    board = await start_board(tokens=(TOKEN,), keys=keys_from_config(keys), enable=("payment",))
    await sign_in(page, board, READER)
    await expect(page.get_by_text("Signed in as reader (read-only)")).to_be_visible()


async def test_no_sign_in_without_tokens(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=("payment",))
    await page.goto(board.url("/"))
    await expect(page.get_by_role("region", name="New")).to_be_visible()
    assert await page.get_by_label("Token").count() == 0


async def test_a_cross_site_post_is_refused(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    await sign_in(page, board)
    # A page of another origin (another port of the loopback) posts to the board.
    other = await start_board(enable=("payment",))
    await page.goto(other.url("/healthz"))
    await page.set_content(
        f'<form method="post" action="{board.url("/ui/sign-out")}">'
        '<button type="submit">Go</button></form>'
    )
    await page.get_by_role("button", name="Go").click()
    await expect(page.locator("body")).to_contain_text("Refused")
    await page.goto(board.url("/ui/"))
    await expect(page.get_by_role("region", name="Paid")).to_be_visible()  # still signed in


async def test_changes_need_the_session_token(start_board: StartBoard) -> None:
    board = await start_board(enable=("payment",))
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:  # an IP's cookies
        page = await (await http.get(board.url("/ui/"))).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert token is not None
        for headers, data in (
            ({}, {}),
            ({}, {"csrf_token": "forged"}),
            ({"Origin": "http://evil.example"}, {"csrf_token": token.group(1)}),
            ({"Sec-Fetch-Site": "cross-site"}, {"csrf_token": token.group(1)}),
        ):
            response = await http.post(board.url("/ui/sign-out"), data=data, headers=headers)
            assert response.status == 403, (headers, data)
        response = await http.post(
            board.url("/ui/sign-out"), data={"csrf_token": token.group(1)}, allow_redirects=False
        )
        assert response.status == 303


async def test_the_board_can_be_switched_off(start_board: StartBoard) -> None:
    board = await start_board(enable=("payment",), ui_enabled=False)
    async with ClientSession() as http:
        for path in ("/", "/ui/", "/ui/sign-in"):
            response = await http.get(board.url(path), allow_redirects=False)
            assert response.status == 404, path
            assert (await response.json())["error"]["code"] == "not_found"


async def test_pages_keep_to_themselves(start_board: StartBoard) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    async with ClientSession() as http:
        response = await http.get(board.url("/ui/sign-in"))
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["Cache-Control"] == "no-store"
        response = await http.get(board.url("/ui/sign-in?next=//evil.example/"))
        assert 'value="/ui/"' in await response.text()


def test_the_vendored_files_are_the_pinned_ones() -> None:
    sums = {}
    for line in (STATIC / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name] = digest
    assert set(VENDORED) <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    readme = (STATIC / "README.md").read_text()
    for name, (package, version) in VENDORED.items():
        assert f"`{package}`" in readme and version in readme, name
    assert re.search(r"^/\*! Sortable 1\.15\.7", (STATIC / "Sortable.min.js").read_text())
    ours = {p.name for p in Path(STATIC).iterdir()} - set(sums) - {"README.md", "SHA256SUMS"}
    own = {"app.js", "app.css", "board.js", "board.css", "orders.css", "pages.css"}
    assert ours == own, "a vendored file without its checksum"
    for name in ours:
        assert not re.search(r"https?://", (STATIC / name).read_text()), name
