"""Meta-tests that keep the plugin contract honest (as datasette's ``test_docs.py`` does).

Every hook spec of ``kernel/hookspecs.py`` has a docstring with its parameters and
``:return:``, a section of ``docs/hooks.md`` whose example is taken from a real file, and
at least one implementation in a plugin that the test suite runs (the built-in plugins,
the kernel's own, the contrib distributions, or a test plugin).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

from statusflow import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS_DOC = ROOT / "docs" / "hooks.md"
HOOKS = sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "statusflow_spec"))
# where plugins live that the test suite exercises
PLUGIN_SOURCES = ("plugins", "kernel", "contrib", "tests")


def _sections() -> dict[str, str]:
    text = HOOKS_DOC.read_text()
    parts = re.split(r"^## `(\w+)`\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _is_hookimpl(decorator: ast.expr) -> bool:
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    if isinstance(decorator, ast.Attribute):
        return decorator.attr == "hookimpl"
    return isinstance(decorator, ast.Name) and decorator.id == "hookimpl"


@cache
def _implementations_in(path: Path) -> frozenset[str]:
    """The names of the ``@hookimpl`` functions and methods of a Python file."""
    tree = ast.parse(path.read_text(), str(path))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(_is_hookimpl(d) for d in node.decorator_list)
    )


def _implementations() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for folder in PLUGIN_SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "hookspecs.py" or {"build", ".venv"} & set(path.parts):
                continue
            for name in _implementations_in(path):
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def _quoted_in_order(block: str, source: Path, what: str) -> None:
    """Every line of ``block`` is a line of ``source``, in order ("..." skips lines)."""
    lines = source.read_text().splitlines()
    position = 0
    for line in block.splitlines():
        if not line.strip() or line.strip() == "...":
            continue
        try:
            position = lines.index(line, position) + 1
        except ValueError:
            pytest.fail(f"{what}: line not found (in order) in {source}: {line!r}")


def test_every_hook_spec_has_a_docstring_with_params_and_return():
    assert len(HOOKS) >= 10, HOOKS
    for name in HOOKS:
        spec = getattr(hookspecs, name)
        doc = inspect.getdoc(spec) or ""
        assert ":return:" in doc, f"{name}: no ':return:' in its docstring"
        for param in inspect.signature(spec).parameters:
            assert f":param {param}:" in doc, f"{name}: parameter {param!r} is not documented"
        assert name in hookspecs.__all__, f"{name} is missing from hookspecs.__all__"


def test_every_hook_spec_has_a_section_in_docs_hooks_md():
    sections = _sections()
    assert sorted(sections) == HOOKS, "docs/hooks.md must have one section per hook, no more"
    index = HOOKS_DOC.read_text().split("\n## ", 1)[0]
    for name in HOOKS:
        assert f"[`{name}`](#{name})" in index, f"{name} is missing from the table of hooks"


@pytest.mark.parametrize("name", HOOKS)
def test_each_section_says_when_what_and_shows_a_real_example(name):
    section = _sections()[name]
    params = list(inspect.signature(getattr(hookspecs, name)).parameters)
    assert section.lstrip().startswith(f"```python\n{name}("), (
        "the section opens with the signature"
    )
    for param in params:
        assert f"| `{param}` |" in section, f"argument {param!r} is not in the table"
    assert "**When.**" in section and "**Returns.**" in section
    # the example is taken from a real file, unchanged ("..." skips lines)
    match = re.search(
        r"Example from \[`([^`]+)`\]\(\.\./\1\)[^`]*```python\n(.*?)```", section, re.S
    )
    assert match, "no 'Example from [`path`](../path):' followed by a Python block"
    _quoted_in_order(match.group(2), ROOT / match.group(1), f"{name}: example")
    assert re.search(rf"def {name}\(", match.group(2)), "the example implements the hook"
    # it links to plugins that implement the hook
    links = re.findall(r"\]\(\.\./([^)#]+)\)", section)
    for link in links:
        assert (ROOT / link).is_file(), f"{name}: broken link {link}"
    users = [
        link for link in links if link.endswith(".py") and name in _implementations_in(ROOT / link)
    ]
    assert users, f"{name}: the section links to no file that implements the hook"


def test_the_hooks_marked_may_be_async_are_the_ones_the_kernel_awaits():
    docstrings = {name: inspect.getdoc(getattr(hookspecs, name)) or "" for name in HOOKS}
    marked = {name for name, doc in docstrings.items() if "*may be async*" in doc}
    table = re.findall(r"^\| \[`(\w+)`\]\(#\1\) \|.*\| (yes|no) \|$", HOOKS_DOC.read_text(), re.M)
    assert len(table) == len(HOOKS)
    assert marked == {name for name, answer in table if answer == "yes"} == hookspecs.ASYNC_HOOKS


def test_the_class_plugin_example_quotes_its_file():
    intro = HOOKS_DOC.read_text().split("\n## ", 1)[0]
    match = re.search(
        r"\*\*A plugin with state is a class\.\*\*.*?```python\n(.*?)```\n\n"
        r"\(from \[`([^`]+)`\]",
        intro,
        re.S,
    )
    assert match, "the intro shows a class plugin, quoted from a real file"
    _quoted_in_order(match.group(1), ROOT / match.group(2), "hooks.md's class plugin")


def test_every_hook_spec_is_implemented_by_a_plugin_the_tests_exercise():
    found = _implementations()
    missing = [name for name in HOOKS if not found.get(name)]
    assert not missing, f"hooks that no plugin implements: {missing}"


# --- docs/writing-plugins.md: the walk-through's plugin works as written -------------------

WRITING_PLUGINS = ROOT / "docs" / "writing-plugins.md"


def _walkthrough_files() -> dict[str, str]:
    """The files of the walk-through: its code blocks marked ``title="PATH"``."""
    pattern = r'^```\w+ title="([^"]+)"\n(.*?)^```$'
    return dict(re.findall(pattern, WRITING_PLUGINS.read_text(), re.S | re.M))


async def test_the_writing_plugins_walkthrough_builds_a_working_plugin(
    statusflow_app, tmp_path, monkeypatch
):
    files = _walkthrough_files()
    assert set(files) == {
        "pyproject.toml",
        "statusflow_parcels/__init__.py",
        "tests/test_parcels.py",
    }
    project = tomllib.loads(files["pyproject.toml"])["project"]
    entry_points = project["entry-points"]["statusflow"]
    assert entry_points == {"parcels": "statusflow_parcels"}
    # the distribution as pip would install it: the package and its .dist-info
    site = tmp_path / "site"
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    info = site / f"statusflow_parcels-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"{name} = {module}" for name, module in entry_points.items()]
    (info / "entry_points.txt").write_text("[statusflow]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(site))
    spec = importlib.util.spec_from_file_location(
        "walkthrough_tests", site / "tests/test_parcels.py"
    )
    assert spec is not None and spec.loader is not None
    tests = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(tests)
        names = [name for name in vars(tests) if name.startswith("test_")]
        assert len(names) == 5, names
        for name in names:  # each with the fixtures it asks for (SQLite here)
            function = getattr(tests, name)
            assert list(inspect.signature(function).parameters) == ["statusflow_app"], name
            await function(statusflow_app)
    finally:
        sys.modules.pop("statusflow_parcels", None)


# --- contrib/statusflow-reviews/README.md: the worked example quotes its real files ------

REVIEWS = ROOT / "contrib" / "statusflow-reviews"


def test_the_reviews_worked_example_quotes_its_files_as_they_are():
    text = (REVIEWS / "README.md").read_text()
    quotes = re.findall(r"^From \[`([^`]+)`\]\(\1\):\n\n```\w+\n(.*?)^```$", text, re.S | re.M)
    assert len(quotes) >= 6, "the README quotes each file it walks through"
    for path, block in quotes:
        _quoted_in_order(block, REVIEWS / path, "README.md")
    assert "contrib/statusflow-reviews/README.md" in WRITING_PLUGINS.read_text().replace(
        "../", ""
    ), "docs/writing-plugins.md points at the worked example"


def test_the_action_type_section_quotes_its_file_as_it_is():
    text = WRITING_PLUGINS.read_text()
    section = text.split("## 9. An action type", 1)[1].split("\n## ", 1)[0]
    match = re.search(
        r"^From \[`([^`]+)`\]\(\.\./\1\):\n\n```python\n(.*?)^```$", section, re.S | re.M
    )
    assert match, "the section quotes a real action type"
    _quoted_in_order(match.group(2), ROOT / match.group(1), "writing-plugins.md, section 9")
    assert "def register_action_types(" in match.group(2)


def test_every_link_and_picture_in_the_docs_points_at_a_file_of_the_repo():
    """README.md and docs/**/*.md: each relative link and image (``docs/ui/*.png``, which
    ``make screenshots`` writes) names a file that exists; nothing points outside."""
    root = Path(__file__).resolve().parents[1]
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    link = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
    checked = 0
    for page in pages:
        for target in link.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            assert path.is_relative_to(root), (page.name, target)
            assert path.exists(), f"{page.relative_to(root)} points at a missing {target}"
            checked += 1
    pictures = re.findall(r"!\[[^\]]*\]\((ui/[^)]+\.png)\)", (root / "docs/ui.md").read_text())
    assert len(pictures) >= 10 and checked > len(pictures)
