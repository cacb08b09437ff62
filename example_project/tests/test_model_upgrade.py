"""Guarding a model upgrade: the v2 classifier is deeper and wider than v1.

Two ways to catch an upgrade that costs more energy:

1. The stored baseline. Run the normal suite with EXAMPLE_MODEL_VERSION=v2: the
   ``classifier`` fixture loads v2, and every classification test is compared with the
   v1 figures in energy-baseline.toml, and fails as regressed.
2. ``energy.compare`` (this file): meter v1 and v2 side by side in one run, no baseline
   needed. Useful in the pull request that proposes the upgrade. Under the suite's
   roofline meter each side gets one window and the modelled ratio decides: v2 costs
   +130.9% per review at batch 8, against a 1% tolerance.

This test is expected to fail, so it is marked ``upgrade_demo`` and deselected by
pytest.ini; run it with ``pytest example_project -m upgrade_demo``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from service import models
from service.classify import ReviewClassifier
from service.settings import Settings


@pytest.fixture(scope="module")
def classifier_v1(service_settings: Settings) -> ReviewClassifier:
    return ReviewClassifier(models.classifier_checkpoint(replace(service_settings, version="v1")))


@pytest.fixture(scope="module")
def classifier_v2(service_settings: Settings) -> ReviewClassifier:
    return ReviewClassifier(models.classifier_checkpoint(replace(service_settings, version="v2")))


@pytest.mark.upgrade_demo
def test_v2_costs_no_more_than_v1(
    classifier_v1: ReviewClassifier,
    classifier_v2: ReviewClassifier,
    reviews: list[str],
    energy,
) -> None:
    energy.compare(
        lambda: classifier_v1.classify(reviews, batch_size=8),
        lambda: classifier_v2.classify(reviews, batch_size=8),
        inferences=len(reviews),
    )
