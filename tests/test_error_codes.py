"""The table of error codes is complete: every code that kernel/ and plugins/ can answer
is in ``statusflow.http.codes.ERROR_CODES`` and in docs/api.md's table, and no more."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from statusflow.http.codes import ERROR_CODES

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "kernel").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])

MAKERS = {
    "ApiError": 1,
    "invalid": 2,
    "not_found": 2,
    "conflict": 2,
    "error_response": 1,
    "_answer_and_close": 2,
    "_not_found": 2,
    "check": 4,
}
"""The functions that make an error of a code given to them: the code's position (or
the keyword ``code``)."""
CODE = re.compile(r"^[a-z]+(_[a-z]+)*$")


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _constants(tree: ast.Module) -> dict[str, str]:
    """A module's ``NAME = "text"`` assignments."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def codes_in(source: str) -> set[str]:
    """The codes a module's source gives to the error makers (literal strings, module
    constants, the defaults of ``code`` parameters, and the ``_HTTP_CODES`` table)."""
    tree = ast.parse(source)
    constants = _constants(tree)
    found: set[str] = set()

    def take(node: ast.expr) -> None:
        value = node.value if isinstance(node, ast.Constant) else None
        if isinstance(node, ast.Name):
            value = constants.get(node.id)
        if isinstance(value, str) and CODE.match(value):
            found.add(value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in MAKERS:
            position = MAKERS[_name(node.func)]
            if len(node.args) > position:
                take(node.args[position])
            for keyword in node.keywords:
                if keyword.arg == "code":
                    take(keyword.value)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args.args[-len(node.args.defaults) :] if node.args.defaults else []
            for argument, default in zip(arguments, node.args.defaults, strict=True):
                if argument.arg == "code":
                    take(default)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if _name(target) == "_HTTP_CODES" and isinstance(node.value, ast.Dict):
                for value in node.value.values:
                    if isinstance(value, ast.Tuple):
                        take(value.elts[0])
    return found


def raised_codes() -> dict[str, list[str]]:
    """Every code found in kernel/ and plugins/, with the files it is in."""
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        for code in codes_in(path.read_text()):
            found.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return found


def documented_codes() -> dict[str, str]:
    """The rows of docs/api.md's table of error codes: code -> status."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z_]+)` \| ([0-9]{3}|any) \|", section, re.MULTILINE))


def test_the_collector_finds_codes_in_each_form() -> None:
    source = """
BAD = "bad_thing"
def helper(message, code="default_code"): ...
raise ApiError(404, "a_code", "a message with spaces")
raise invalid("message", [], code=BAD)
check(SCHEMA, body, "what", "", "checked_code")
raise not_found("message", code="other_code")
_HTTP_CODES = {400: ("tuple_code", "said")}
"""
    assert codes_in(source) == {
        "bad_thing",
        "default_code",
        "a_code",
        "other_code",
        "tuple_code",
        "checked_code",
    }


def test_every_code_raised_is_in_the_table() -> None:
    raised = raised_codes()
    assert len(raised) >= 30, sorted(raised)  # the collector sees the kernel's codes
    for expected in ("order_not_found", "unknown_event_type", "bad_settings", "unauthorized"):
        assert expected in raised
    missing = {code: files for code, files in raised.items() if code not in ERROR_CODES}
    assert not missing, f"codes raised but not in ERROR_CODES: {missing}"


def test_the_docs_table_is_the_table_of_codes() -> None:
    documented = documented_codes()
    assert set(documented) == set(ERROR_CODES), (
        f"missing in docs/api.md: {sorted(set(ERROR_CODES) - set(documented))}; "
        f"not in ERROR_CODES: {sorted(set(documented) - set(ERROR_CODES))}"
    )
    for code, (status, _) in ERROR_CODES.items():
        assert documented[code] == ("any" if status is None else str(status)), code


def test_codes_are_stable_snake_case() -> None:
    for code in ERROR_CODES:
        assert CODE.match(code), code
