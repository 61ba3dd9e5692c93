"""The command line's basics (contract §5): ``--version`` and ``STATUSFLOW_TOKENS``."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from statusflow.errors import StartupError
from statusflow.serving.config import load_settings


def test_version_prints_the_installed_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statusflow.cli", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"statusflow {metadata.version('statusflow')}"


def test_tokens_from_the_environment_replace_the_files_list(tmp_path, monkeypatch) -> None:
    config = tmp_path / "statusflow.toml"
    config.write_text('[auth]\ntokens = ["from-the-file"]\n')
    monkeypatch.delenv("STATUSFLOW_TOKENS", raising=False)
    assert load_settings(config).tokens == ("from-the-file",)
    monkeypatch.setenv("STATUSFLOW_TOKENS", " one, two ,,")
    assert load_settings(config).tokens == ("one", "two")
    monkeypatch.setenv("STATUSFLOW_TOKENS", "")  # empty: as if unset
    assert load_settings(config).tokens == ("from-the-file",)


def test_a_tokens_variable_without_a_token_stops_start_up(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("STATUSFLOW_CONFIG", raising=False)
    monkeypatch.setenv("STATUSFLOW_TOKENS", " , ")  # never a silent "no auth"
    with pytest.raises(StartupError, match="STATUSFLOW_TOKENS holds no token"):
        load_settings(None)
