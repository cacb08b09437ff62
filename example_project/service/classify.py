"""Review triage: is a customer review negative, neutral or positive?

The classifier is a ``transformers`` text-classification pipeline, loaded from a
checkpoint folder exactly as it would be from a hub name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import pipeline

from .settings import device


class ReviewClassifier:
    """Labels reviews with one of the checkpoint's labels."""

    def __init__(self, checkpoint: Path) -> None:
        self.pipeline = pipeline(
            "text-classification", model=str(checkpoint), tokenizer=str(checkpoint), device=device()
        )
        self.pipeline.model.eval()
        self.labels = tuple(self.pipeline.model.config.id2label.values())

    def classify(self, reviews: Sequence[str], batch_size: int = 1) -> list[str]:
        """One label per review; ``batch_size`` reviews go through the model at a time."""
        results = self.pipeline(list(reviews), batch_size=batch_size, truncation=True)
        return [result["label"] for result in results]
