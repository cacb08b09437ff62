"""The test that was blind under the CPU-time estimate: a ``Linear`` layer 5% wider.

On a shared 2-core runner, the CodeCarbon estimate missed a ``torch.nn.Linear`` that grew
by 30%, and one that doubled. The ``roofline`` meter this suite runs with (pytest.ini)
models the layer's matrix product from its shapes and dtype, so the same code gives the
same kWh/1000 on every run, and the gate's default tolerance for a deterministic meter
is 1%. The 5% wider layer costs +4.9% (more outputs: more FLOPs, more weight bytes):

- ``test_linear_layer_energy`` records the layer in the baseline. Give the ``layer``
  fixture the wider layer and the normal run fails that test as regressed, +4.9%.
- ``test_wider_layer_is_caught`` meters both layers side by side with ``energy.compare``
  and fails with "the candidate costs +4.9%". It is expected to fail, so it carries the
  ``upgrade_demo`` marker, deselected by pytest.ini: run ``pytest example_project -m
  upgrade_demo``.

Under a sensor (``--energy-meter=nvml`` on a GPU runner) a layer this small is dwarfed
by the GPU's idle power; these tests are about the deterministic gate on CPU runners.
"""

from __future__ import annotations

import pytest
import torch

#: Inputs and outputs of the layer under test, and the rows of its input batch.
WIDTH = 2048
ROWS = 256


def linear(width_out: int, device: torch.device) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(WIDTH, width_out, device=device).eval()


@pytest.fixture(scope="module")
def batch(compute_device: torch.device) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(ROWS, WIDTH, device=compute_device)


@pytest.fixture(scope="module")
def layer(compute_device: torch.device) -> torch.nn.Linear:
    return linear(WIDTH, compute_device)


@pytest.fixture(scope="module")
def wider_layer(compute_device: torch.device) -> torch.nn.Linear:
    return linear(round(WIDTH * 1.05), compute_device)  # 5% more outputs and weights


@torch.inference_mode()
def forward(layer: torch.nn.Linear, batch: torch.Tensor) -> torch.Tensor:
    return layer(batch)


def test_linear_layer_energy(layer: torch.nn.Linear, batch: torch.Tensor, energy) -> None:
    """One inference is one row of the batch."""
    out = energy(forward, layer, batch, inferences=ROWS)
    assert out.shape == (ROWS, layer.out_features)


@pytest.mark.upgrade_demo
def test_wider_layer_is_caught(
    layer: torch.nn.Linear, wider_layer: torch.nn.Linear, batch: torch.Tensor, energy
) -> None:
    energy.compare(
        lambda: forward(layer, batch),
        lambda: forward(wider_layer, batch),
        inferences=ROWS,
    )
