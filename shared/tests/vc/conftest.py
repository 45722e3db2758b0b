"""Keep Hypothesis's cache (example database, unicode tables) out of the work tree."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import configuration

configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "microcred-hypothesis")
