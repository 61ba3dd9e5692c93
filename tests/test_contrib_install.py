"""A contrib distribution, really pip-installed, is found with no change to kernel or config.

``pip install --target`` puts ``statusflow-twilio`` (built from ``contrib/`` by pip, as a
user's ``pip install ./contrib/statusflow-twilio`` would) into a throwaway folder; the
``statusflow`` command, with that folder on ``PYTHONPATH``, lists it enabled, and a
configuration that disables it lists it disabled. The folder comes first on the path, so
the listing is of this copy even where ``make test`` also installed it into the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import pip_install_copy

ROOT = Path(__file__).resolve().parents[1]
CONTRIB = ROOT / "contrib" / "statusflow-twilio"
STATUSFLOW = Path(sys.executable).with_name("statusflow")


def _env(site: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STATUSFLOW_CONFIG", "STATUSFLOW_DATABASE_URL", "PYTHONPATH")
    }
    env["PYTHONPATH"] = str(site)
    return env


def test_a_pip_installed_contrib_plugin_is_listed_and_can_be_disabled(tmp_path):
    site = pip_install_copy(CONTRIB, tmp_path)
    assert (site / "statusflow_twilio" / "__init__.py").is_file()

    config = tmp_path / "disable.toml"
    config.write_text('[plugins]\ndisable = ["twilio"]\n')
    where = "import importlib.metadata as m; print(m.distribution('statusflow-twilio')._path)"
    commands = [
        [str(STATUSFLOW), "plugins", "--json"],
        [str(STATUSFLOW), "plugins", "--json", "--config", str(config)],
        [sys.executable, "-c", where],
    ]
    processes = [
        subprocess.Popen(
            command,
            env=_env(site),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    results = [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs, strict=True)]
    for code, _out, err in results:
        assert code == 0, err
    enabled = {p["name"]: p for p in json.loads(results[0][1])}
    disabled = {p["name"]: p for p in json.loads(results[1][1])}
    assert enabled["twilio"] == {
        "name": "twilio",
        "distribution": "statusflow-twilio",
        "version": "0.1.0",
        "trigger_types": [],
        "enabled": True,
    }
    assert "introspection_failed" not in results[0][2], "the plugin must import cleanly"
    assert disabled["twilio"]["enabled"] is False
    assert all(p["enabled"] for name, p in disabled.items() if name != "twilio")
    assert Path(results[2][1].strip()).parent == site
