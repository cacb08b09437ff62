"""pytest-xdist support, registered only when xdist is active.

Records need nothing here: they ride on each test's report (see ``hooks.py``). What xdist
needs is ``--energy-gpu-per-worker``: each worker must see its own GPU in
``CUDA_VISIBLE_DEVICES`` before any of its code runs, because the CUDA runtime reads the
variable once, when it initialises, and a worker's conftest may initialise it (a
``torch.cuda.is_available()`` is enough). So the controller sets the variable in each
worker's process as the process is spawned, before the worker imports pytest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest

from . import scaleout
from .errors import ConfigError

#: Runs in a freshly spawned worker process: set the environment it receives.
_SET_ENVIRONMENT = "import os\nos.environ.update(channel.receive())\n"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def active(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller or worker."""
    return is_worker(config) or bool(
        config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None)
    )


class GpuPinning:
    """Controller hooks that pin worker ``gwN`` to the N-th visible GPU at spawn."""

    def __init__(self) -> None:
        self.pins: dict[str, dict[str, str]] = {}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        try:
            self.pins = scaleout.worker_environments(os.environ, len(specs))
        except ConfigError as exc:
            raise pytest.UsageError(f"pytest-energy: {exc}") from None

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_newgateway(self, gateway: Any) -> None:
        environment = self.pins.get(str(gateway.id))
        if environment:
            channel = gateway.remote_exec(_SET_ENVIRONMENT)
            channel.send(environment)
            channel.waitclose()
