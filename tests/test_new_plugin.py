"""``statusflow new-plugin NAME``: a distribution that installs, passes its own tests, and
is found through its entry point."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from statusflow.cli.new_plugin import write_skeleton
from tests.helpers import pip_install_copy
from tests.processes import clean_env, cli, outcomes

ROOT = Path(__file__).resolve().parents[1]


def test_the_skeleton_installs_passes_its_own_tests_and_is_listed(tmp_path):
    work = tmp_path / "work"
    [(code, out, err)] = outcomes(
        cli("new-plugin", "parcel_lockers", "--dir", str(work), env=clean_env(), cwd=tmp_path)
    )
    assert code == 0, err
    root = work / "statusflow-parcel-lockers"
    assert str(root) in out
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == [
        "README.md",
        "pyproject.toml",
        "statusflow_parcel_lockers/__init__.py",
        "tests/test_parcel_lockers.py",
    ]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["name"] == "statusflow-parcel-lockers"
    assert project["entry-points"]["statusflow"] == {"parcel_lockers": "statusflow_parcel_lockers"}

    site = pip_install_copy(root, tmp_path / "install")
    env = clean_env(PYTHONPATH=str(site))
    # its own tests, against the installed copy (-P: not the source folder it runs in)
    tests = subprocess.Popen(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (code, out, err), (listed, listing, _) = outcomes(
        tests, cli("plugins", "--json", env=env, cwd=tmp_path)
    )
    assert code == 0 and "3 passed" in out, out + err
    assert listed == 0
    plugins = {p["name"]: p for p in json.loads(listing)}
    assert plugins["parcel_lockers"] == {
        "name": "parcel_lockers",
        "distribution": "statusflow-parcel-lockers",
        "version": "0.1.0",
        "trigger_types": ["parcel_lockers.happened"],
        "enabled": True,
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Parcels", "try 'parcels'"),
        ("my-plugin", "try 'my_plugin'"),
        ("1st", "starting with a letter"),
        ("", "not usable"),
        ("payment", "taken by an installed plugin"),
    ],
)
def test_a_bad_or_taken_name_writes_nothing(tmp_path, name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_skeleton(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_left_alone_and_the_command_says_so(tmp_path):
    existing = tmp_path / "statusflow-parcels"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    [(code, _, err)] = outcomes(
        cli("new-plugin", "parcels", "--dir", str(tmp_path), env=clean_env(), cwd=tmp_path)
    )
    assert code == 2
    assert err == f"statusflow new-plugin: {existing} exists already: nothing written\n"
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]


def test_the_templates_are_package_data():
    """Every template ships with the distribution (``setup.cfg``'s ``packages`` and
    ``package_data``)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    package = "statusflow.cli.templates.new_plugin"
    assert package in config["options"]["packages"].split()
    folder = ROOT / "kernel" / "cli" / "templates" / "new_plugin"
    patterns = config["options.package_data"][package].split(",")
    shipped = {path for pattern in patterns for path in folder.glob(pattern.strip())}
    assert shipped and shipped == set(folder.iterdir())
