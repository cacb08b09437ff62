"""Energy tests for review triage (text classification with a BERT pipeline).

One inference is one review classified, so budgets are kWh per 1,000 reviews.
"""

from __future__ import annotations

import pytest

from service.classify import ReviewClassifier
from service.settings import from_environment

#: kWh per 1,000 reviews, by batch size.
#: tiny: about three times the medians in the committed baseline (1.7e-6, 5.8e-7 and
#: 5.9e-7 on a 2-core AMD EPYC VM, CodeCarbon estimate, v1 classifier), which leaves room
#: for a slower or busier CPU. Smaller regressions are the baseline's job, not the budget's.
#: realistic: Power Hungry Processing's mean for text classification (0.002 kWh per
#: 1,000 inferences, whole A100 node); a bert-base classifier on a GPU should stay under it.
BUDGETS = {
    "tiny": {1: 5e-6, 8: 2e-6, 32: 2e-6},
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
    **kwargs)`` in several metered windows and returns the last result. ``inferences``
    counts what ONE call does: here, 32 reviews whatever the batch size.
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
    # Measured on 2 CPU cores: 0.25 to 0.35. Below 0.6 leaves room for noise and still
    # shows the point; on a GPU the ratio is much smaller.
    assert check.ratio < 0.6, f"batch 32 cost {check.ratio:.2f} times batch 1 per review"


#: Passes over the 32 reviews in test_triage_request_within_budget.
PASSES = 4


@pytest.mark.energy_budget(kwh=BUDGETS[8], inferences=PASSES * 32)
def test_triage_request_within_budget(classifier: ReviewClassifier, reviews: list[str]) -> None:
    """The shortest form: no fixture, and the test's call phase is metered as one window.

    ``inferences`` must match what the body does: PASSES passes over 32 reviews. Fixture
    setup (loading the classifier) is not metered.

    With one window the regression check has no spread to test: the ratio to the
    baseline alone decides, so one noisy window can fail the test (on the shared 2-core
    VM, single windows drifted by up to +76%). Prefer the fixture where regressions
    matter; ``energy_budget(..., tolerance="20%")`` widens the tolerance of one test.
    """
    assert len(reviews) == 32
    for _ in range(PASSES):
        labels = classifier.classify(reviews, batch_size=8)
    assert len(labels) == len(reviews)
