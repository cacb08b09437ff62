"""Energy tests for review triage (text classification with a BERT pipeline).

One inference is one review classified, so budgets are kWh per 1,000 reviews.
"""

from __future__ import annotations

import pytest

from service.classify import ReviewClassifier
from service.settings import from_environment

#: kWh per 1,000 reviews, by batch size.
#: tiny: about three times the roofline figures in the committed baseline (4.657e-5,
#: 1.192e-5 and 5.943e-6 for batch 1, 8 and 32: v1 classifier modelled on the default
#: target, H100 SXM; of the other shipped targets B200 models up to 1.9 times that, the
#: rest at most 1.07 times, all within these budgets). Roofline figures do not move between runs, so
#: the slack is not for noise: a budget is a cap on the model's cost, and the baseline,
#: at 1%, catches every smaller change.
#: realistic: Power Hungry Processing's mean for text classification (0.002 kWh per
#: 1,000 inferences, whole A100 node); a bert-base classifier on a GPU should stay under it.
BUDGETS = {
    "tiny": {1: 1.4e-4, 8: 3.6e-5, 32: 1.8e-5},
    "realistic": {1: 0.002, 8: 0.002, 32: 0.002},
}[from_environment().size]


@pytest.mark.parametrize(
    "batch_size",
    [pytest.param(size, marks=pytest.mark.energy_budget(kwh=kwh)) for size, kwh in BUDGETS.items()],
)
def test_energy_per_review_by_batch_size(
    classifier: ReviewClassifier, reviews: list[str], batch_size: int, energy
) -> None:
    """Each batch size is its own test, so each has its own budget and baseline entry.

    ``energy(fn, *args, inferences=N, **kwargs)`` warms up, then calls ``fn(*args,
    **kwargs)`` in metered windows and returns the last result: one window for a
    deterministic meter such as roofline, several for a sensor. ``inferences`` counts what
    ONE call does: here, 32 reviews whatever the batch size.
    """
    labels = energy(classifier.classify, reviews, batch_size=batch_size, inferences=len(reviews))
    assert len(labels) == len(reviews)
    assert set(labels) <= set(classifier.labels)


def test_batching_lowers_energy_per_review(
    classifier: ReviewClassifier, reviews: list[str], energy
) -> None:
    """Batch 32 costs far less per review than batch 1: fewer calls, fuller matrix products.

    ``energy.compare(current, candidate, ...)`` meters the two callables in alternating
    windows, so both see the same machine state. It fails the test if the candidate
    costs more than the current one, and returns the ratio of their medians.
    """
    check = energy.compare(
        lambda: classifier.classify(reviews, batch_size=1),
        lambda: classifier.classify(reviews, batch_size=32),
        inferences=len(reviews),
    )
    # roofline on the default target (H100 SXM) models batch 32 at 0.128 times batch 1
    # per review for v1 and 0.109 for v2, the same digits on every run: a deterministic
    # meter's ratio is exact. Every shipped target models 0.12 to 0.14 for v1; for v2 the
    # T4 models 0.29, the highest: there the larger model is limited by arithmetic, so
    # batching saves less. A tiny model's cost is mostly kernel launches, which batching
    # shares out.
    assert check.ratio < 0.4, f"batch 32 cost {check.ratio:.3f} times batch 1 per review"


#: Passes over the 32 reviews in test_triage_request_within_budget.
PASSES = 4


@pytest.mark.energy_budget(kwh=BUDGETS[8], inferences=PASSES * 32)
def test_triage_request_within_budget(classifier: ReviewClassifier, reviews: list[str]) -> None:
    """The shortest form: no fixture, and the test's call phase is metered as one window.

    ``inferences`` must match what the body does: PASSES passes over 32 reviews. Fixture
    setup (loading the classifier) is not metered.

    One window is all a deterministic meter such as roofline needs: the baseline's ratio
    decides, at 1%. With a sensor, one window has no spread to test and one noisy window
    can fail the test; prefer the fixture there, or widen this test's tolerance with
    ``energy_budget(..., tolerance="20%")``.
    """
    assert len(reviews) == 32
    for _ in range(PASSES):
        labels = classifier.classify(reviews, batch_size=8)
    assert len(labels) == len(reviews)
