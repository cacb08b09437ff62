"""What the service reads from its environment: model size, model version, cache, device.

Every setting is an environment variable, so the same test suite runs on a laptop, on a
2-core CI runner and on a GPU box without editing code:

``EXAMPLE_MODEL_SIZE``
    ``tiny`` (default): models small enough for the whole suite to run in a few minutes on
    two CPU cores. ``realistic``: the sizes of bert-base, gpt2 and Stable Diffusion 1.5,
    meant for a GPU.
``EXAMPLE_MODEL_VERSION``
    ``v1`` (default) or ``v2``. v2 is the "upgrade" of the text classifier: deeper and
    wider, as a real upgrade often is. The other models have a single version.
``EXAMPLE_MODEL_CACHE``
    Where the built checkpoints are saved (default ``example_project/.model-cache``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

SIZES = ("tiny", "realistic")
VERSIONS = ("v1", "v2")
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".model-cache"


@dataclass(frozen=True)
class Settings:
    size: str
    version: str
    cache_dir: Path


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def from_environment() -> Settings:
    """Read the three environment variables; raises ValueError on an unknown value."""
    cache = os.environ.get("EXAMPLE_MODEL_CACHE", "").strip()
    return Settings(
        size=_choice("EXAMPLE_MODEL_SIZE", "tiny", SIZES),
        version=_choice("EXAMPLE_MODEL_VERSION", "v1", VERSIONS),
        cache_dir=Path(cache).expanduser().resolve() if cache else DEFAULT_CACHE,
    )


def device() -> torch.device:
    """The first CUDA GPU when there is one, otherwise the CPU.

    Nothing else in the service has to know: models are moved here once, at load time.
    GPU work is asynchronous, so a meter read right after ``model(...)`` returns could
    miss work still queued on the GPU; pytest-energy synchronises every CUDA device before
    both reads of each window, so the tests need no ``torch.cuda.synchronize()`` of their own.
    """
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
