"""Every workspace member declares what it imports (issue 9): a service that imports FastAPI
says so in its own pyproject.toml instead of getting it through the shared package, and a
package that is only used by tests stays out of the product's dependencies."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = {
    "shared": "microcred_shared", "services/assessment": "microcred_assessment",
    "services/issuance": "microcred_issuance", "services/registry": "microcred_registry",
    "services/notify": "microcred_notify", "deploy/local": "microcred_devstack",
    "testkit": "microcred_testkit",
}
WORKSPACE = {pkg: path for path, pkg in MEMBERS.items()}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_distributions(package_dir: Path, own: str) -> set[str]:
    dists = packages_distributions()
    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == own or top in sys.stdlib_module_names or top == "__future__":
                    continue
                if top in WORKSPACE:
                    found.add(_normal(top.replace("_", "-")))
                    continue
                candidates = dists.get(top, [top])
                if len(candidates) > 1:  # a namespace package (opentelemetry): by file
                    candidates = [_owner(name) or candidates[0]]
                found.update(_normal(d) for d in candidates)
    return found


@cache
def _files() -> dict[str, str]:
    out = {}
    for dist in distributions():
        for f in dist.files or ():
            out[str(Path(dist.locate_file(f)).resolve())] = dist.metadata["Name"]
    return out


def _owner(module: str) -> str | None:
    """The distribution that installed `module` (the longest importable prefix)."""
    parts = module.split(".")
    while parts:
        try:
            spec = importlib.util.find_spec(".".join(parts))
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and spec.origin != "namespace":
            return _files().get(str(Path(spec.origin).resolve()))
        parts.pop()
    return None


def declared(member: str) -> set[str]:
    project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]
    return {_normal(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0])
            for d in project.get("dependencies", [])}


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_a_member_declares_every_package_it_imports(member: str) -> None:
    package = MEMBERS[member]
    imported = imported_distributions(ROOT / member / "src" / package, package)
    missing = imported - declared(member)
    assert not missing, f"{member} imports {sorted(missing)} without declaring them"


def test_the_services_do_not_depend_on_test_tools() -> None:
    for member in ("services/assessment", "services/issuance", "services/registry",
                   "services/notify", "shared"):
        assert not declared(member) & {"aiosmtpd", "microcred-testkit", "microcred-devstack",
                                       "pytest", "hypothesis"}, member
