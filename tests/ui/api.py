"""Calls to a test server's API for the board's tests (with the board's token)."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession

from tests.ui.conftest import TOKEN, Board


async def call(
    board: Board, method: str, path: str, body: Any = None, token: str = TOKEN
) -> tuple[int, Any]:
    """``method path`` with ``body`` as JSON: the status and the decoded answer."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        ClientSession() as http,
        http.request(method, board.url(path), json=body, headers=headers) as response,
    ):
        answer = await response.json() if response.status != 204 else None
        return response.status, answer
