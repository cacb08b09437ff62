"""What the roofline meter sees that a CPU-time estimate cannot: small changes, exactly.

The ``roofline`` meter (``--energy-meter=roofline``) models what the torch operations of a
test would cost on a target GPU (H100 SXM by default) from their shapes and dtypes, so the
same code gives the same figure on every run. These tests use the meter directly, next to
the suite's configured meter, to show three things it catches:

- a layer 5% wider (the CPU-time estimate on a shared 2-core runner did not catch 2x);
- the v2 classifier upgrade;
- the batching win: batch 32 modelled cheaper per review than batch 1.

``test_wider_layer_caught_by_compare`` is the same check through ``energy.compare``: it
is expected to fail under roofline, so it carries the ``upgrade_demo`` marker and is
deselected by pytest.ini (run it with ``-m upgrade_demo --energy-meter=roofline``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

from service import models
from service.classify import ReviewClassifier
from service.settings import Settings

roofline = pytest.importorskip("pytest_energy.meters.roofline")

#: The gate's default tolerance for deterministic meters.
DETERMINISTIC_TOLERANCE = 0.01


def modelled_joules(fn: Callable[[], object]) -> float:
    """Modelled energy of one call of ``fn`` on the default target."""
    meter = roofline.RooflineMeter(roofline.DEFAULT_TARGET)
    with torch.inference_mode(), meter.observe():
        fn()
    return sum(meter.read().values())


@pytest.fixture(scope="module")
def layers() -> tuple[torch.nn.Linear, torch.nn.Linear, torch.Tensor]:
    torch.manual_seed(0)
    base = torch.nn.Linear(2048, 2048)
    wider = torch.nn.Linear(2048, 2150)  # 5% more outputs and weights
    return base, wider, torch.randn(256, 2048)


def test_a_5_percent_wider_layer_is_caught(layers) -> None:
    base, wider, x = layers
    before = modelled_joules(lambda: base(x))
    after = modelled_joules(lambda: wider(x))
    assert after / before - 1 > DETERMINISTIC_TOLERANCE
    # and the same code twice gives the same figure to the last digit
    assert modelled_joules(lambda: base(x)) == before


@pytest.mark.upgrade_demo
def test_wider_layer_caught_by_compare(layers, energy) -> None:
    base, wider, x = layers
    energy.compare(lambda: base(x), lambda: wider(x), inferences=len(x))


def test_v2_upgrade_is_modelled_costlier(service_settings: Settings, reviews: list[str]) -> None:
    v1 = ReviewClassifier(models.classifier_checkpoint(replace(service_settings, version="v1")))
    v2 = ReviewClassifier(models.classifier_checkpoint(replace(service_settings, version="v2")))
    before = modelled_joules(lambda: v1.classify(reviews, batch_size=8))
    after = modelled_joules(lambda: v2.classify(reviews, batch_size=8))
    assert after > before * (1 + DETERMINISTIC_TOLERANCE)


def test_batch_32_is_modelled_cheaper_per_review(
    classifier: ReviewClassifier, reviews: list[str]
) -> None:
    one_by_one = modelled_joules(lambda: classifier.classify(reviews, batch_size=1))
    batched = modelled_joules(lambda: classifier.classify(reviews, batch_size=32))
    assert batched < one_by_one / 2
