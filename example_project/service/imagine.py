"""Product thumbnails: draw an image from a text description with Stable Diffusion."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from PIL.Image import Image

from .settings import device


class ThumbnailPainter:
    def __init__(self, checkpoint: Path, steps: int) -> None:
        self.pipeline = StableDiffusionPipeline.from_pretrained(checkpoint).to(device())
        self.pipeline.set_progress_bar_config(disable=True)
        self.steps = steps
        #: Side of the square images in pixels: latent size times the VAE's upscaling.
        self.resolution = self.pipeline.unet.config.sample_size * self.pipeline.vae_scale_factor

    def paint(self, descriptions: Sequence[str], seed: int = 0) -> list[Image]:
        """One image per description, ``steps`` denoising steps each, from a fixed seed."""
        generator = torch.Generator(device=device()).manual_seed(seed)
        result = self.pipeline(
            list(descriptions), num_inference_steps=self.steps, generator=generator
        )
        return list(result.images)
