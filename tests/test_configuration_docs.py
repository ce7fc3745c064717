"""README.md's Configuration table lists exactly the environment variables the code reads.

What the code reads is found by scanning the source, not by running it: many reads happen only on some
path (a crash point, the demo's `--port` default, production-only settings), and a run would miss
them. The scan is made complete by two rules it enforces: every read goes through an envconfig reader
(no raw `os.environ.get`, `os.getenv` or `os.environ[...]`), and every reader is called with a literal
name. The readers' own record (envconfig.NAMES_READ) cross-checks the scan on a real settings load.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import envconfig
from devstack.processes import base_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
READERS = {name for name in vars(envconfig) if name.startswith("env_")}
# envconfig itself reads os.environ; the readers' tests read made-up names held in a constant.
NOT_SCANNED = {ROOT / "envconfig.py", ROOT / "tests" / "test_envconfig.py"}


def python_files() -> Iterator[Path]:
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in {"var", "node_modules"}]
        for name in files:
            path = Path(folder) / name
            if name.endswith(".py") and path not in NOT_SCANNED:
                yield path


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _is_name(node.value, "os")


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _raw_read(node: ast.AST) -> bool:
    """os.getenv(...), os.environ.get/pop(...), os.environ[...] as a value, `... in os.environ`, and
    os.environ.setdefault(...) except Django's own DJANGO_SETTINGS_MODULE convention."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        func = node.func
        if func.attr == "getenv" and _is_name(func.value, "os"):
            return True
        if _is_environ(func.value) and func.attr in {"get", "pop"}:
            return True
        if _is_environ(func.value) and func.attr == "setdefault":
            first = node.args[0] if node.args else None
            return not (isinstance(first, ast.Constant) and first.value == "DJANGO_SETTINGS_MODULE")
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        return _is_environ(node.value)
    if isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
        return any(_is_environ(side) for side in node.comparators)
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == "os"
        and any(alias.name in {"environ", "getenv"} for alias in node.names)
    )


def scan() -> tuple[set[str], list[str]]:
    """The variable names read through envconfig readers, and every read the scan cannot name."""
    names: set[str] = set()
    problems: list[str] = []
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        # The local names of readers in this file: `from envconfig import env_int [as x]`.
        local = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "envconfig"
            for alias in node.names
        }
        for node in ast.walk(tree):
            if _raw_read(node):
                problems.append(f"{where}:{node.lineno}: reads the environment around envconfig")
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = local.get(func.id) if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Attribute) and _is_name(func.value, "envconfig"):
                called = func.attr
            if called not in READERS:
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
            else:
                problems.append(f"{where}:{node.lineno}: {called} without a literal variable name")
    return names, problems


def documented() -> list[str]:
    """The variable of each row of the table in README.md's Configuration section."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past header and rule
    names = []
    for row in rows:
        match = re.fullmatch(r"\| `([A-Z][A-Z0-9_]*)` \|[^|]+\|[^|]+\|", row)
        assert match, f"README.md Configuration row is not | `NAME` | default | meaning |: {row}"
        names.append(match.group(1))
    return names


def test_every_environment_read_goes_through_envconfig_with_a_literal_name():
    names, problems = scan()
    assert not problems, "\n".join(problems)
    assert "DATABASE_URL" in names and "SHOP_CRASH_AT" in names  # the scan reaches settings and jobkit


def test_the_readme_documents_every_variable_read_and_nothing_else():
    read, _ = scan()
    table = documented()
    assert len(table) == len(set(table)), "a variable is documented twice"
    assert sorted(read - set(table)) == [], "read but not in README.md's Configuration table"
    assert sorted(set(table) - read) == [], "in README.md's Configuration table but never read"


def test_what_settings_read_when_they_load_is_what_the_scan_found():
    # A fresh process: this one's record holds whatever other tests have read.
    probe = "import json, django, envconfig; django.setup(); print(json.dumps(sorted(envconfig.NAMES_READ)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=base_env(), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    scanned, _ = scan()
    assert {
        "SHOP_VAR_DIR",
        "DATABASE_URL",
        "LOG_LEVEL",
    } <= loaded  # devstack.runtime and settings, first to last
    assert sorted(loaded - scanned) == [], "read while settings load, but invisible to the scan"
