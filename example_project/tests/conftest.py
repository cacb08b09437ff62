"""Fixtures that load the service's models once per session.

Loading a model (reading the checkpoint, moving weights to the GPU) costs energy too, but
it is not inference. pytest-energy never meters fixtures: only the windows a test opens
with the ``energy`` fixture, or the call phase of a test marked ``energy_budget``. So
every model is loaded here, in session-scoped fixtures, and the tests only run it.
"""

from __future__ import annotations

import pytest
import torch
from huggingface_hub.utils import disable_progress_bars
from transformers.utils import logging as transformers_logging

from service import models
from service.classify import ReviewClassifier
from service.generate import ReplyWriter
from service.imagine import ThumbnailPainter
from service.settings import Settings, device, from_environment

# Progress bars from loading and saving checkpoints only clutter the test output.
disable_progress_bars()
transformers_logging.disable_progress_bar()

#: 32 customer reviews: one batch at batch size 32, four at 8, thirty-two at 1.
REVIEWS = (
    "The kettle arrived quickly and boils water in two minutes. Great value.",
    "The lamp stopped working after a week and support never answered.",
    "Soft cotton shirt, fits well, the colour is exactly as in the photo.",
    "The box was damaged and the glass cups inside were broken.",
    "Comfortable shoes for long walks, but the laces are too short.",
    "Many pockets and a strong zip. I would buy this backpack again.",
    "The blender is loud and the lid leaks when it is full.",
    "Fast delivery, friendly courier, and the chair was easy to assemble.",
    "The headphones sound clear and the battery lasts all day.",
    "Wrong size sent twice. Please fix your stock before taking orders.",
    "It does what it says. Nothing more, nothing less.",
    "The mug is smaller than I expected but the glaze is lovely.",
    "Instructions were missing, so I found a video online instead.",
    "Arrived a day late, otherwise fine.",
    "The rug sheds everywhere. I vacuum it every morning.",
    "Perfect gift for my sister, she uses the teapot every day.",
    "The handle came loose after a month of normal use.",
    "Good price for the quality. The stitching looks solid.",
    "The screen protector has bubbles I cannot remove.",
    "Exactly what I ordered and well packed.",
    "The charger gets hot, which worries me a little.",
    "Beautiful colour, but the fabric creases easily.",
    "Customer service replaced the broken part within three days.",
    "The pan is heavy and heats evenly. Worth every penny.",
    "Too bright for a bedroom lamp, fine for a desk.",
    "The seller sent the wrong colour and asked me to keep it.",
    "Assembly took two hours and one screw was missing.",
    "Light, warm and it packs small. Great jacket for hiking.",
    "The zip broke on the second trip.",
    "I returned it; the refund came quickly.",
    "Smells of plastic for the first few days, then fine.",
    "Five stars. My kids love the board game.",
)

PROMPTS = (
    "Thank you for your review of the kettle.",
    "We are sorry the lamp stopped working.",
    "A courier will collect the parcel",
    "Please reply with your order number",
)

DESCRIPTIONS = (
    "A red ceramic mug with a wide handle on a wooden table.",
    "A blue canvas backpack with leather straps, white background.",
)

#: Denoising steps per image: the diffusers default of 50 at realistic size, a few at tiny size.
IMAGE_STEPS = {"tiny": 4, "realistic": 50}


@pytest.fixture(scope="session")
def reviews() -> list[str]:
    return list(REVIEWS)


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    return list(PROMPTS)


@pytest.fixture(scope="session")
def descriptions() -> list[str]:
    return list(DESCRIPTIONS)


@pytest.fixture(scope="session")
def service_settings() -> Settings:
    return from_environment()


@pytest.fixture(scope="session")
def compute_device() -> torch.device:
    """CUDA when available, else CPU: the device the service loads its models onto."""
    return device()


@pytest.fixture(scope="session", autouse=True)
def one_cpu_thread() -> None:
    """On the CPU, run inference on one thread: for wall time, not for the figures.

    The roofline meter models the torch operations from their shapes and dtypes, so its
    kWh/1000 are the same on one thread or two (checked: identical to the last digit).
    The wall time is not: on the shared 2-core VM, torch's worker threads that wait for a
    descheduled sibling spin, and the suite took 44 to 54 s on two threads against 14 to
    16 s on one. With ``--energy-meter=codecarbon``, which estimates from CPU time, the
    spinning would also count as energy: a busy neighbour made that estimate up to ten
    times higher on two threads.
    """
    if device().type == "cpu":
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def classifier(service_settings: Settings) -> ReviewClassifier:
    """The review classifier in the version under test (EXAMPLE_MODEL_VERSION)."""
    return ReviewClassifier(models.classifier_checkpoint(service_settings))


@pytest.fixture(scope="session")
def reply_writer(service_settings: Settings) -> ReplyWriter:
    return ReplyWriter(models.generator_checkpoint(service_settings))


@pytest.fixture(scope="session")
def painter(service_settings: Settings) -> ThumbnailPainter:
    return ThumbnailPainter(
        models.image_checkpoint(service_settings), steps=IMAGE_STEPS[service_settings.size]
    )
