"""Import a script of benchmarks/ in a test: ``load_script("kill_loop")``.

The scripts are not a package. Their folder goes on ``sys.path`` once, as it is when a
script runs, so that a script's ``import _common`` and the test see one module each.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``name`` (imported once per process)."""
    folder = str(BENCHMARKS)
    if folder not in sys.path:
        sys.path.append(folder)
    module = importlib.import_module(name)
    assert Path(module.__file__ or "").resolve().parent == BENCHMARKS, module.__file__
    return module
