"""``statusflow new-plugin NAME [--dir DIR]``: a ready-to-install plugin distribution.

Writes ``statusflow-NAME/`` from the templates in ``templates/new_plugin`` (package data,
filled in with :class:`string.Template`): ``pyproject.toml`` with the entry point in the
group ``statusflow``, the package ``statusflow_NAME`` with one event type and one
trigger type, a README, and tests that use the ``statusflow_app`` fixture.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from importlib.resources import files
from pathlib import Path
from string import Template

from statusflow.registry import ENTRY_POINT_GROUP

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

FILES = {  # where each template goes, inside statusflow-NAME/
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "{package}/__init__.py": "plugin.py.tmpl",
    "tests/test_{name}.py": "test_plugin.py.tmpl",
}


@dataclass(frozen=True)
class Skeleton:
    """The names a new plugin's files are written with."""

    name: str

    @property
    def distribution(self) -> str:
        return f"statusflow-{self.name.replace('_', '-')}"

    @property
    def package(self) -> str:
        return f"statusflow_{self.name}"

    def values(self) -> dict[str, str]:
        """What the templates' ``${...}`` stand for."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "package": self.package,
            "event": f"{self.name}.happened",
            "title": f"{self.name.replace('_', ' ').capitalize()} happened",
            "statusflow_version": _statusflow_version(),
        }


def _statusflow_version() -> str:
    """``MAJOR.MINOR`` of the installed statusflow: the skeleton's lowest requirement."""
    try:
        return ".".join(version("statusflow").split(".")[:2])
    except PackageNotFoundError:  # pragma: no cover - statusflow runs, so it is installed
        return "0.1"


def check_name(name: str) -> None:
    """A plugin name users can write in ``[plugins]``, that no installed plugin has.

    :raises ValueError: saying what a good name is.
    """
    if not NAME.fullmatch(name):
        hint = f" (try {re.sub(r'[^a-z0-9_]', '_', name.lower())!r})" if name else ""
        raise ValueError(
            f"plugin name {name!r} is not usable: lower-case letters, digits and '_', "
            f"starting with a letter, at most 40 characters{hint}"
        )
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name in installed:
        raise ValueError(
            f"plugin name {name!r} is taken by an installed plugin (see `statusflow plugins`)"
        )


def write_skeleton(name: str, where: Path) -> Path:
    """Write ``statusflow-NAME/`` into ``where``; its path.

    :raises ValueError: a bad or taken name, or the folder exists already.
    """
    check_name(name)
    skeleton = Skeleton(name)
    root = where / skeleton.distribution
    if root.exists():
        raise ValueError(f"{root} exists already: nothing written")
    values = skeleton.values()
    templates = files("statusflow.cli") / "templates" / "new_plugin"
    rendered = {
        root / target.format(**values): Template(
            (templates / source).read_text(encoding="utf-8")
        ).substitute(values)
        for target, source in FILES.items()
    }
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``new-plugin`` command's arguments."""
    command = commands.add_parser(
        "new-plugin", help="write a ready-to-install plugin distribution statusflow-NAME/"
    )
    command.add_argument("name", metavar="NAME", help="the plugin's name, e.g. parcels")
    command.add_argument(
        "--dir", default=".", help="the folder to write statusflow-NAME/ into (default: .)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the skeleton; say where, and what to do next."""
    try:
        root = write_skeleton(args.name, Path(args.dir))
    except ValueError as exc:
        sys.stderr.write(f"statusflow new-plugin: {exc}\n")
        return 2
    sys.stdout.write(
        f"wrote {root}\n"
        f"next: cd {root} && pip install -e '.[test]' && pytest\n"
        "      then `statusflow plugins` lists it; see docs/writing-plugins.md\n"
    )
    return 0
