"""The OpenAPI document is one a generator can use: ``openapi-python-client`` makes a
typed client from a real server's document, and that client, with the bearer token,
creates an order and a trigger, posts an event and reads the result from the server."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.processes import Serve, clean_env

TOKEN = "client-test-token-7d1f"
PACKAGE = "statusflow_generated_client"
ALLOWED_WARNINGS = {"GET /t/o/{token}"}
"""Operations the generator may skip a part of: the open pixel answers a GIF, which it
does not model (an HTML client has no use for it either)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """``statusflow serve`` on a free loopback port, with ``[auth] tokens``."""
    folder = tmp_path_factory.mktemp("client")
    config = folder / "statusflow.toml"
    config.write_text(
        f'database_url = "sqlite:///{folder / "sf.db"}"\n'
        f'[auth]\ntokens = ["{TOKEN}"]\n'
        '[plugins]\nenable = ["payment", "calls", "email", "webhook"]\n'
    )
    served = Serve(config, clean_env(), folder / "serve.log")
    try:
        yield served
    finally:
        served.stop()


def document_of(server: Serve) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.base}/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


@pytest.fixture(scope="module")
def client_package(
    server: Serve, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str]]:
    """The generated package, imported; and what the generator warned about."""
    folder = tmp_path_factory.mktemp("generated")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document_of(server)))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE), done.stdout + done.stderr
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_the_document_is_valid_openapi(server: Serve) -> None:
    document = document_of(server)
    validate(document)
    ids = [
        operation["operationId"]
        for path_item in document["paths"].values()
        for operation in path_item.values()
    ]
    assert len(ids) == len(set(ids)), sorted(ids)


def test_the_generator_models_every_operation(client_package: tuple[Any, str]) -> None:
    _, said = client_package
    skipped = [
        line.removeprefix("WARNING parsing ").split(" within ")[0]
        for line in said.splitlines()
        if line.startswith("WARNING parsing ")
    ]
    assert set(skipped) <= ALLOWED_WARNINGS, said


def test_the_generated_client_drives_a_real_server(
    server: Serve, client_package: tuple[Any, str]
) -> None:
    package, _ = client_package
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    with (
        package.AuthenticatedClient(base_url=server.base, token=TOKEN) as client,
        package.Client(base_url=server.base) as anonymous,
    ):
        drive(client, anonymous, api.__name__, models)


def drive(client: Any, anonymous: Any, api: str, models: Any) -> None:
    """Create an order and a trigger, post an event, read the result."""
    create_order = importlib.import_module(f"{api}.orders.create_order")
    get_order = importlib.import_module(f"{api}.orders.get_order")
    timeline = importlib.import_module(f"{api}.orders.get_order_timeline")
    create_trigger = importlib.import_module(f"{api}.triggers.create_trigger")
    post_events = importlib.import_module(f"{api}.events.post_events")
    get_event = importlib.import_module(f"{api}.events.get_event")
    list_statuses = importlib.import_module(f"{api}.statuses.list_statuses")
    assert [s.id for s in list_statuses.sync(client=client)] == ["N", "P", "S", "F", "D"]

    order = create_order.sync(client=client, body=models.NewOrder(id="1001", amount=59.9))
    assert isinstance(order, models.Order), order
    assert (order.id, order.status, order.amount) == ("1001", "N", 59.9)

    trigger = create_trigger.sync(
        client=client,
        body=models.NewTrigger(type_="payment.received", status="P", name="paid"),
    )
    assert isinstance(trigger, models.Trigger), trigger
    assert trigger.active is True and trigger.type_ == "payment.received"

    event = models.Event(type_="payment.received", order_id="1001", id="pay-1")
    dry = post_events.sync(client=client, body=event, dry_run=True)
    assert isinstance(dry, models.EventResult) and dry.dry_run is True, dry
    assert [t.outcome for t in dry.trace] == ["moved"]
    result = post_events.sync(client=client, body=event)
    assert isinstance(result, models.EventResult), result
    assert result.order_ids == ["1001"] and not result.duplicate
    assert [(m.from_, m.to, m.trigger_id) for m in result.moves] == [("N", "P", trigger.id)]

    stored = get_event.sync(id="pay-1", client=client)
    assert isinstance(stored, models.StoredEvent), stored
    assert [t.reason for t in stored.trace] and stored.trace[0].outcome == "moved"
    assert get_order.sync(id="1001", client=client).status == "P"
    kinds = [entry.kind for entry in timeline.sync(id="1001", client=client)]
    assert kinds == ["created", "event", "status_changed"]

    # errors come typed too, and without the token every call is a 401
    missing = get_order.sync(id="nope", client=client)
    assert isinstance(missing, models.Error) and missing.error.code == "order_not_found"
    refused = get_order.sync_detailed(id="1001", client=anonymous)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.parsed.error.code == "unauthorized"
