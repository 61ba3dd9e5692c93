"""Plugins from a folder, without packaging (``--plugins-dir``, ``[plugins] dirs``).

Every ``NAME.py`` module and every ``NAME/`` package (a folder with ``__init__.py``) in
the folder is the plugin ``NAME``, loaded like an entry point's module: the registry
treats a :class:`DirPlugin` as it treats an ``EntryPoint`` (``name``, ``load()``, and
``dist`` that is ``None``). Names starting with ``_`` or ``.`` are skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from statusflow.errors import StartupError


@dataclass(frozen=True)
class DirPlugin:
    """A plugin module or package found in a plugins folder."""

    name: str
    path: Path
    """The ``NAME.py`` file or the ``NAME/`` folder."""

    dist = None  # no distribution: read as an entry point's ``dist`` is

    @property
    def module_name(self) -> str:
        """Its name in ``sys.modules``: its own, so that two folders never share one."""
        digest = hashlib.sha256(str(self.path).encode()).hexdigest()[:12]
        safe = "".join(c if c.isalnum() else "_" for c in self.name)
        return f"_statusflow_plugins_dir_{safe}_{digest}"

    def load(self) -> ModuleType:
        """Import it once per process, as ``EntryPoint.load()`` does.

        :raises ImportError: it fails to import; the message names the file (and the line).
        """
        loaded = sys.modules.get(self.module_name)
        if loaded is not None:
            return loaded
        package = self.path.is_dir()
        source = self.path / "__init__.py" if package else self.path
        spec = importlib.util.spec_from_file_location(
            self.module_name,
            source,
            submodule_search_locations=[str(self.path)] if package else None,
        )
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
            raise ImportError(f"{source}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module  # relative imports of a package need it
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            for name in [m for m in sys.modules if m.split(".")[0] == self.module_name]:
                del sys.modules[name]
            raise ImportError(f"{_place(exc, source)}: {type(exc).__name__}: {exc}") from exc
        return module


def _place(exc: BaseException, source: Path) -> str:
    """``FILE, line N`` of the plugin's own code where ``exc`` arose, else the file."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}"
    folder = str(source.parent) if source.name == "__init__.py" else str(source)
    own = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(folder)]
    return f"{own[-1].filename}, line {own[-1].lineno}" if own else str(source)


def find_dir_plugins(dirs: Iterable[str]) -> list[DirPlugin]:
    """The plugins of each folder, in order of the folders, then of names.

    :raises StartupError: a folder does not exist, or two plugins have one name.
    """
    found: dict[str, DirPlugin] = {}
    for folder in dirs:
        root = Path(folder).resolve()
        if not root.is_dir():
            raise StartupError(f"plugins folder {folder} does not exist or is not a folder")
        for path in sorted(root.iterdir()):
            plugin = _plugin_at(path)
            if plugin is None:
                continue
            other = found.get(plugin.name)
            if other is not None:
                raise StartupError(
                    f"plugin {plugin.name!r} is found twice: {other.path} and {path} "
                    "(a plugin's name is its file's or its folder's: rename one)"
                )
            found[plugin.name] = plugin
    return list(found.values())


def _plugin_at(path: Path) -> DirPlugin | None:
    if path.name.startswith(("_", ".")):
        return None
    if path.is_file() and path.suffix == ".py":
        return DirPlugin(path.stem, path)
    if path.is_dir() and (path / "__init__.py").is_file():
        return DirPlugin(path.name, path)
    return None
