"""``/api/docs``: Swagger UI served from files in the package (pinned by their SHA-256),
the page public, the document behind the token; a fresh ``pip install`` serves it too."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from statusflow.http.docs_page import FILES, SWAGGER_UI_VERSION
from tests.helpers import assert_error_shape
from tests.processes import Serve, clean_env

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "kernel" / "http" / "static"
VENDORED = STATIC / "swagger-ui"
TOKEN = "docs-token-51c2"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


def checksums() -> dict[str, str]:
    """``SHA256SUMS``: file name -> digest."""
    found = {}
    for line in (VENDORED / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        found[name.lstrip("*")] = digest
    return found


def test_the_vendored_files_are_the_pinned_ones() -> None:
    sums = checksums()
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"} <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name
    vendored = {p.name for p in VENDORED.iterdir()} - {"SHA256SUMS", "README.md"}
    assert vendored == set(sums), "a vendored file without its checksum"
    assert f"swagger-ui-dist` {SWAGGER_UI_VERSION}" in (VENDORED / "README.md").read_text()


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in ("docs.html", "docs.js", "docs.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://", text), name
    page = (STATIC / "docs.html").read_text()
    assert set(re.findall(r'(?:src|href)="/api/docs/([^"]+)"', page)) <= set(FILES)


async def test_the_page_is_public_and_the_document_needs_the_token(make_client) -> None:
    client = await make_client(enable=("payment",), tokens=(TOKEN,))
    response = await client.get("/api/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert "/api/docs/swagger-ui-bundle.js" in page and 'id="token"' in page
    for name, (relative, media_type) in FILES.items():
        response = await client.get(f"/api/docs/{name}")
        assert response.status == 200, name
        assert response.content_type == media_type, name
        assert await response.read() == (STATIC / relative).read_bytes(), name
    response = await client.get("/api/docs/secrets.txt")
    assert response.status == 404
    assert_error_shape(await response.json(), "not_found")
    response = await client.get("/api/openapi.json")
    assert response.status == 401
    response = await client.get("/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    document = await response.json()
    assert not [path for path in document["paths"] if path.startswith("/api/docs")]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            guarded = path.startswith("/api/") or path == "/metrics"
            security = operation["security"]  # a bearer requirement lists the key's scope
            expected = [["bearer"]] if guarded else []
            assert [list(item) for item in security] == expected, (method, path)


def fetch(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_a_fresh_pip_install_serves_the_page(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("kernel", "plugins"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    env = clean_env(PYTHONPATH=str(site))
    where = subprocess.run(
        [sys.executable, "-c", "import statusflow; print(statusflow.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the work tree
    config = tmp_path / "statusflow.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "sf.db"}"\n[plugins]\nenable = ["payment"]\n'
    )
    server = Serve(config, env, tmp_path / "serve.log")
    try:
        status, media_type, page = fetch(f"{server.base}/api/docs")
        assert status == 200 and media_type.startswith("text/html")
        assert b"/api/docs/swagger-ui-bundle.js" in page
        sums = checksums()
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
            status, _, body = fetch(f"{server.base}/api/docs/{name}")
            assert hashlib.sha256(body).hexdigest() == sums[name], name
        served: Any = fetch(f"{server.base}/api/docs/docs.js")
        assert served[0] == 200
    finally:
        server.stop()
