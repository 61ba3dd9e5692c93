"""``make screenshots``: PNGs of every board page in ``docs/ui/``, from the browser the
tests use (Debian's Chromium through Playwright).

Starts ``statusflow serve`` on a free loopback port with a temporary SQLite database and
a token, fills it through the HTTP API with a small shop's day (triggers of several
types, actions with delays, orders, events that moved and some that moved nothing, a
pending run), signs in through the form, and photographs each page at 1280x800, the
board also at a phone's width. Run it again after changing a page; docs/ui.md shows the
pictures.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "ui"
TOKEN = "screenshots-token-0d1e"


class Server:
    """``statusflow serve`` on a temporary database, until :meth:`stop`."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = workdir / "statusflow.toml"
        config.write_text(
            f'database_url = "sqlite:///{workdir / "shop.db"}"\n'
            f'[server]\npublic_url = "{self.base}"\n'
            f'[auth]\ntokens = ["{TOKEN}"]\n'
            '[plugins]\ndisable = ["visits"]\n'
        )
        self.log = (workdir / "serve.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "statusflow.cli",
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit(f"statusflow serve exited: see {self.log.name}") from None
                time.sleep(0.1)
        raise SystemExit("statusflow serve did not start in time")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def seed(server: Server) -> dict[str, str]:
    """A small shop's day; the ids the pictures need."""
    triggers = [
        {"type": "payment.received", "status": "P"},
        {"type": "shipment.shipped", "status": "S"},
        {
            "type": "email.link_clicked",
            "status": "P",
            "name": "Clicked the pay link",
            "settings": {"url": "https://shop.example/pay"},
        },
        {"type": "order.canceled", "status": "D", "enabled": False},
        {
            "type": "call.missed",
            "status": "N",
            "allow_backwards": True,
            "conditions": [{"field": "amount", "op": "gte", "value": 100}],
        },
    ]
    for trigger in triggers:
        server.call("POST", "/api/triggers", trigger)
    server.call(
        "POST",
        "/api/actions",
        {
            "status": "P",
            "type": "task.create",
            "delay": "PT2H",
            "settings": {"title": "Pack the order"},
        },
    )
    server.call(
        "POST",
        "/api/actions",
        {
            "status": "N",
            "type": "status.change",
            "delay": "P3D",
            "name": "No payment: cancel",
            "settings": {"status": "D"},
        },
    )
    contacts = [
        ("A-1001", "Ada Lovelace", "+1 415 555 0101", "ada@example.com", 120),
        ("A-1002", "Grace Hopper", "+1 415 555 0102", "grace@example.com", 80),
        ("A-1003", "Alan Turing", "+44 20 7946 0958", "alan@example.org", 240),
        ("A-1004", "Katherine Johnson", "+1 757 555 0199", "kj@example.net", 60),
    ]
    for order_id, name, phone, email, amount in contacts:
        server.call(
            "POST",
            "/api/orders",
            {
                "id": order_id,
                "amount": amount,
                "currency": "USD",
                "contact": {"name": name, "phones": [phone], "emails": [email]},
                "fields": {"channel": "web"},
            },
        )
    server.call(
        "POST",
        "/api/events",
        [
            {"type": "payment.received", "order_id": "A-1001", "data": {"amount": 120}},
            {
                "type": "email.link_clicked",
                "order_id": "A-1002",
                "data": {"url": "https://shop.example/unsubscribe"},
            },
            {"type": "call.missed", "contact": {"phone": "(415) 555-0101"}},
            {"type": "payment.received", "order_id": "A-1003"},
            {"type": "shipment.shipped", "order_id": "A-1003", "data": {"carrier": "UPS"}},
        ],
    )
    return {"order": "A-1001"}


Shot = Callable[[Page], Awaitable[None]]


async def nothing(page: Page) -> None:
    """Photograph the page as it loads."""


async def open_add_trigger(page: Page) -> None:
    await page.get_by_role("region", name="Paid").get_by_role("button", name="Add trigger").click()
    await page.wait_for_url("**/ui/triggers/new**")
    await page.get_by_label("Trigger type", exact=True).select_option("email.link_clicked")
    await page.get_by_label("Name", exact=True).fill("Clicked the invoice link")


async def try_an_event(page: Page) -> None:
    await page.get_by_label("Event type").select_option("payment.received")
    await page.get_by_label("Order id").fill("A-1002")
    await page.get_by_role("button", name="Try it").click()
    await page.get_by_text("nothing was stored", exact=False).first.wait_for()


async def shoot(server: Server, ids: dict[str, str], browser_path: str) -> list[Path]:
    pages: list[tuple[str, str, Shot, int]] = [
        ("board", "/ui/", nothing, 1280),
        ("board-phone", "/ui/", nothing, 390),
        ("add-trigger", "/ui/", open_add_trigger, 1280),
        ("orders", "/ui/orders", nothing, 1280),
        ("order", f"/ui/orders/{ids['order']}", nothing, 1280),
        ("events", "/ui/events", nothing, 1280),
        ("events-moved-nothing", "/ui/events?moved=false", nothing, 1280),
        ("try-an-event", "/ui/try", try_an_event, 1280),
        ("pipeline", "/ui/statuses", nothing, 1280),
        ("plugins", "/ui/plugins", nothing, 1280),
        ("deliveries", "/ui/deliveries", nothing, 1280),
    ]
    written = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=browser_path)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await page.goto(server.base + "/ui/")
        await page.screenshot(path=str(OUT / "sign-in.png"))
        written.append(OUT / "sign-in.png")
        await page.get_by_label("Token").fill(TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(server.base + "/ui/")
        for name, path, act, width in pages:
            await page.set_viewport_size({"width": width, "height": 800})
            await page.goto(server.base + path)
            await act(page)
            target = OUT / f"{name}.png"
            await page.screenshot(path=str(target), full_page=width < 1280)
            written.append(target)
        await browser.close()
    return written


def main() -> None:
    browser_path = os.environ.get("STATUSFLOW_CHROMIUM") or shutil.which("chromium")
    if browser_path is None:
        raise SystemExit("no Chromium: apt-get install -y chromium (or set STATUSFLOW_CHROMIUM)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="statusflow-screens-") as workdir:
        server = Server(Path(workdir))
        try:
            ids = seed(server)
            written = asyncio.run(shoot(server, ids, browser_path))
        finally:
            server.stop()
    for path in written:
        sys.stdout.write(f"{path.relative_to(ROOT)}\n")  # what it wrote


if __name__ == "__main__":
    main()
