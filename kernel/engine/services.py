"""The services the kernel offers to plugins (:class:`kernel.KernelServices`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import orjson

from statusflow.engine.metrics import GaugeCallbacks
from statusflow.serving.config import Settings
from statusflow.store.statements import StoreSQL
from statusflow.types import TriggerView

if TYPE_CHECKING:
    from statusflow.engine.pipeline import Engine


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Services:
    """Built before the app starts (routes need it); bound to the database at start-up."""

    def __init__(
        self, settings: Settings, plugin_settings: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.settings = settings
        self._plugin_settings = dict(plugin_settings or {})
        self.public_url = settings.base_url
        self._key = b""
        self._engine: Engine | None = None
        self.gauges = GaugeCallbacks()

    def bind(self, engine: Engine, signing_key: bytes) -> None:
        """Attach the running engine and the signing key (done at start-up)."""
        self._engine = engine
        self._key = signing_key

    @property
    def engine(self) -> Engine:
        """The running engine."""
        if self._engine is None:
            raise RuntimeError("the service has not started")
        return self._engine

    def register_gauge(self, name: str, documentation: str, callback: Callable[[], Any]) -> None:
        self.gauges.register(name, documentation, callback)

    def plugin_config(self, name: str) -> Mapping[str, Any]:
        return self._plugin_settings.get(name, {})

    def config_table(self, name: str) -> Mapping[str, Any]:
        return self.settings.tables.get(name, {})

    def sign(self, payload: Mapping[str, Any]) -> str:
        body = _b64(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
        return f"{body}.{self._signature(body)}"

    def unsign(self, token: str) -> dict[str, Any] | None:
        body, _, signature = token.partition(".")
        if not body or not signature or not self._key:
            return None
        # bytes: compare_digest refuses str with non-ASCII characters (a 500 otherwise)
        if not hmac.compare_digest(signature.encode(), self._signature(body).encode()):
            return None
        try:
            payload = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        return payload if isinstance(payload, dict) else None

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (``"ui-session"``), derived from the signing key:
        every instance on one database derives the same one."""
        if not self._key:
            raise RuntimeError("the service has not started")
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def _signature(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    async def submit_event(
        self,
        event: Mapping[str, Any],
        *,
        only_trigger_id: int | None = None,
        store_unknown_order: bool = False,
    ) -> dict[str, Any]:
        results = await self.engine.process(
            [dict(event)],
            only_trigger_id=only_trigger_id,
            allow_private=True,
            store_unknown_order=store_unknown_order,
            listed=False,
        )
        return results[0]

    def read(self) -> AbstractAsyncContextManager[StoreSQL]:
        return self.engine.db.read()

    def write(self) -> AbstractAsyncContextManager[StoreSQL]:
        return self.engine.db.write()

    @property
    def dialect(self) -> str:
        return self.engine.db.dialect_name

    def status_name(self, status_id: str) -> str | None:
        return self.engine.status_name(status_id) if self._engine is not None else None

    async def order_exists(self, order_id: str) -> bool:
        async with self.engine.db.read() as sql:
            return await sql.order_exists(order_id)

    async def find_trigger_by_secret(self, secret: str) -> TriggerView | None:
        from statusflow.engine.decide import trigger_view

        async with self.engine.db.read() as sql:
            row = await sql.trigger_by_secret(secret)
        return None if row is None else trigger_view(row)
