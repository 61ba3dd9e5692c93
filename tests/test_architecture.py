"""docs/architecture.md shows the layout as it is, and the kernel proper stays small.

The tree in the first code block of the page must name every module of ``kernel/`` and
``plugins/`` (migration revisions, the skeleton's templates and packages' empty
``__init__.py`` aside), and name nothing
that is not there; the kernel proper (the top of ``kernel/``: hook specs, types, errors,
the registry, the folder loader and the hook runner) stays about 1,700 lines (it grew
by the action types, a fourth kind of hook, and by the board's pages of plugins).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
KERNEL_PROPER = ("__init__", "hookspecs", "types", "errors", "registry", "hooks")
KERNEL_PROPER_MAX_LINES = 1_680


def _tree() -> list[str]:
    """Every path the tree names (``kernel/engine/intake.py``, ``plugins/chat.py``, ...)."""
    block = DOC.read_text().split("```\n", 2)[1]
    paths: list[str] = []
    folders: list[tuple[int, str]] = []  # (indent, folder path) of the open folders
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        names = [n.strip() for n in line.strip().split() if re.fullmatch(r"[\w.]+/?", n)]
        first = line.strip().split()[0] if line.strip() else ""
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else ""
        if first.endswith("/"):
            folders.append((indent, parent + first))
            paths.append(parent + first)
            continue
        # a line of file names only (``payment.py  orders.py ...``), or one file and its words
        files = [n for n in names if n.endswith(".py")]
        if files and all(n.endswith(".py") for n in line.strip().split()):
            paths.extend(parent + n for n in files)
        elif first.endswith(".py"):
            paths.append(parent + first)
    return paths


def _modules() -> set[str]:
    found = set()
    for top in ("kernel", "plugins"):
        for path in (ROOT / top).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or "/templates/" in relative:
                continue
            if path.name == "__init__.py" and len(path.read_text().splitlines()) <= 5:
                continue  # a package's one-line docstring or re-export: its folder is named
            found.add(relative)
    return found


def test_the_tree_names_every_module_and_only_those() -> None:
    named = set(_tree())
    modules = _modules()
    assert modules - named == set(), "modules missing from docs/architecture.md"
    ghosts = {p for p in named if p.endswith(".py")} - modules
    assert ghosts == set(), "docs/architecture.md names modules that do not exist"
    for folder in {p for p in named if p.endswith("/")}:
        assert (ROOT / folder).is_dir(), folder


def test_the_kernel_proper_stays_small() -> None:
    lines = {
        name: len((ROOT / "kernel" / f"{name}.py").read_text().splitlines())
        for name in KERNEL_PROPER
    }
    assert sum(lines.values()) <= KERNEL_PROPER_MAX_LINES, lines
    top = {p.stem for p in (ROOT / "kernel").glob("*.py")}
    assert top - set(KERNEL_PROPER) <= {"timestamps"}, "a new module at the top of kernel/"


def test_every_folder_of_python_files_is_a_listed_package() -> None:
    """setup.cfg lists the packages by hand (two folders map onto one package): a folder
    missing there would be left out of the wheel, or warned about."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = set()
    for top, package in (("kernel", "statusflow"), ("plugins", "statusflow.plugins")):
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]:
            if folder.is_dir() and any(folder.glob("*.py")) and "__pycache__" not in folder.parts:
                relative = folder.relative_to(ROOT / top).parts
                found.add(".".join((package, *relative)))
    assert found - listed == set(), "folders of Python files missing from setup.cfg"
    for name in listed:  # data-only folders (the skeleton's templates) may be listed too
        parts = name.split(".")
        top = "plugins" if parts[:2] == ["statusflow", "plugins"] else "kernel"
        rest = parts[2:] if top == "plugins" else parts[1:]
        assert (ROOT / top).joinpath(*rest).is_dir(), name
