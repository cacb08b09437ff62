"""The service runs on CUDA when a GPU is present and on the CPU otherwise."""

from __future__ import annotations

import torch

from service.classify import ReviewClassifier
from service.generate import ReplyWriter
from service.imagine import ThumbnailPainter


def test_models_are_on_the_chosen_device(
    compute_device: torch.device,
    classifier: ReviewClassifier,
    reply_writer: ReplyWriter,
    painter: ThumbnailPainter,
) -> None:
    # No test calls torch.cuda.synchronize(): pytest-energy synchronises every CUDA device
    # before both meter reads of each window, so queued GPU work lands in its window.
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert compute_device.type == expected
    assert classifier.pipeline.model.device.type == expected
    assert reply_writer.model.device.type == expected
    assert painter.pipeline.device.type == expected
