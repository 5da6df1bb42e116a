"""The import rules of the design, checked on the source so a violation fails the build."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "mockserver", "client")
PY_DIRS = (*PACKAGES, "tests", "loadtests", "examples")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name imported by a file (relative imports resolved to their package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                rel = path.relative_to(ROOT).parts[:-1]
                base = ".".join(("infoway_mock", *rel[: len(rel) - node.level + 1]))
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # `from infoway_mock import schemas` names the package in the alias.
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def _files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


def test_no_bare_top_level_imports() -> None:
    """Installed names live under infoway_mock.*: a bare `import schemas` would pick up a user's package."""
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files(*PY_DIRS)
        for line, mod in _imports(p)
        if mod.split(".")[0] in PACKAGES
    ]
    assert not bad, "\n".join(bad)


def test_mockserver_and_client_never_import_each_other() -> None:
    bad = []
    for pkg, other in (("mockserver", "client"), ("client", "mockserver")):
        for p in _files(pkg):
            for line, mod in _imports(p):
                if mod.startswith(f"infoway_mock.{other}"):
                    bad.append(f"{p.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_schemas_import_neither() -> None:
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files("schemas")
        for line, mod in _imports(p)
        if mod.startswith(("infoway_mock.mockserver", "infoway_mock.client"))
    ]
    assert not bad, "\n".join(bad)


def test_only_the_entry_points_import_the_server_module() -> None:
    """The server is the composition root: parts get narrow ports, they never reach into it."""
    allowed = {
        "mockserver/cli.py",
        "mockserver/background.py",
        "mockserver/__init__.py",
        "mockserver/server.py",
    }
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in _files("mockserver", "client", "schemas")
        if str(p.relative_to(ROOT)) not in allowed
        for line, mod in _imports(p)
        if mod == "infoway_mock.mockserver.server" or mod.startswith("infoway_mock.mockserver.server.")
    ]
    assert not bad, "\n".join(bad)


def test_commands_use_the_installed_names() -> None:
    """A bare `-m` package name only works from a checkout, and runs the same files under another name."""
    pattern = re.compile(r"""(-m\s+|["']-m["'],\s*["'])(schemas|mockserver|client)\b""")
    texts = [*_files(*PY_DIRS), ROOT / "Makefile", ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    bad = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in texts
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not bad, "\n".join(bad)
