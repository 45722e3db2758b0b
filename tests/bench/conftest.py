"""The benchmarks' own modules, loaded from their files (bench/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH_E2E = Path(__file__).parents[2] / "bench" / "e2e"


def load_bench_e2e(name: str) -> ModuleType:
    """bench/e2e/<name>.py as a module (registered, so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(f"bench_e2e_{name}", BENCH_E2E / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_e2e() -> Callable[[str], ModuleType]:
    return load_bench_e2e
