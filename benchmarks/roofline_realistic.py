"""Modelled energy of realistic and tiny inference workloads under the roofline meter:
figures per inference, kernels, and the share of the energy that is overhead (host and launch).

    python benchmarks/roofline_realistic.py [--quick]

``--quick`` skips Stable Diffusion (the slowest workload to count).

The models are built on torch's ``meta`` device from the published configs (bert-base-uncased,
gpt2, Stable Diffusion 1.5 with the example project's "realistic" sizes): no weights are
allocated or downloaded and no arithmetic is done, but every operation is dispatched with its
real shapes and dtypes, which is all the meter needs. It runs in well under a minute on a CPU.

Workloads (one inference each):

- text classification: bert-base-uncased, one sequence of 128 tokens, batch 1.
- text generation: gpt2 (124M), a 64-token prompt then 64 greedy decode steps with a KV
  cache, through ``pytest_energy.generation.run`` (the LM head on the last position only).
- image generation: Stable Diffusion 1.5 at 512x512: the CLIP text encoder on 2 x 77
  tokens (prompt + empty prompt), 50 UNet steps on a batch of 2 64x64 latents
  (classifier-free guidance), one VAE decode.

Tiny workloads (what test suites run): the example project's v1 classifier (BERT 2 x 64)
on a batch of 8 reviews of 32 tokens, and a tiny ViT (2 layers x 64, 32 x 32 images, 8 x 8
patches) on one image. On a real GPU these are launch-bound, and so is the model: almost all
of their modelled energy is overhead.

Published measurements, for scale only (another scope: a whole 8-GPU node with CPU and RAM,
not one GPU board): Luccioni, Jernite and Strubell, "Power Hungry Processing: Watts
Driving the Cost of AI Deployment?" (FAccT 2024), Table 2: mean kWh per 1,000 inferences
over the models of each task, measured with CodeCarbon (GPU, CPU and RAM together) on an
NVIDIA A100-SXM4-80GB node: text classification 0.002, text generation 0.047, image
generation 2.907.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import _common  # this checkout's pytest_energy; the example's configs
import torch

from pytest_energy.meters.roofline import RooflineMeter

J_PER_KWH = 3.6e6
PUBLISHED_KWH_PER_1000 = {
    "text classification": 0.002,
    "text generation": 0.047,
    "image generation": 2.907,
}
TARGETS = ("A100-SXM-80GB", "H100-SXM")


Runner = Callable[[RooflineMeter], object]


def classification(dtype: torch.dtype) -> Runner:
    from transformers import BertConfig, BertForSequenceClassification

    with torch.device("meta"):
        model = BertForSequenceClassification(BertConfig(num_labels=2)).to(dtype).eval()
        ids = torch.zeros(1, 128, dtype=torch.long)
    return lambda meter: model(input_ids=ids).logits


def generation(dtype: torch.dtype, prompt: int = 64, new_tokens: int = 64) -> Runner:
    from transformers import GPT2Config, GPT2LMHeadModel

    from pytest_energy import generation as generate

    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config()).to(dtype).eval()

    def run(meter: RooflineMeter) -> object:
        return generate.run(
            model,
            batch_size=1,
            prompt_tokens=prompt,
            new_tokens=new_tokens,
            mark=lambda _: None,
            meter=meter,
        )

    return run


def tiny_classifier(dtype: torch.dtype) -> Runner:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(**_common.example_models().CLASSIFIER[("tiny", "v1")])
    with torch.device("meta"):
        model = BertForSequenceClassification(config).to(dtype).eval()
        ids = torch.zeros(8, 32, dtype=torch.long)
    return lambda meter: model(input_ids=ids).logits


def tiny_vit(dtype: torch.dtype) -> Runner:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=32,
        patch_size=8,
        num_labels=10,
    )
    with torch.device("meta"):
        model = ViTForImageClassification(config).to(dtype).eval()
        images = torch.zeros(1, 3, 32, 32, dtype=dtype)
    return lambda meter: model(pixel_values=images).logits


def image(dtype: torch.dtype, steps: int = 50) -> Runner:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        sd15 = _common.example_models().IMAGE["realistic"]  # the example's realistic size
        unet = UNet2DConditionModel(**sd15["unet"])
        vae = AutoencoderKL(**sd15["vae"])
        text = CLIPTextModel(CLIPTextConfig(**sd15["text"]))
        unet, vae, text = (m.to(dtype).eval() for m in (unet, vae, text))
        tokens = torch.zeros(2, 77, dtype=torch.long)
        latents = torch.zeros(2, 4, 64, 64, dtype=dtype)
        timestep = torch.zeros((), dtype=torch.long)

    def run(meter: RooflineMeter) -> object:
        context = text(input_ids=tokens).last_hidden_state
        sample = latents
        for _ in range(steps):
            noise = unet(sample, timestep, encoder_hidden_states=context).sample
            sample = sample + noise  # stands in for guidance and the scheduler step
        return vae.decode(sample[:1] / 0.18215).sample

    return run


WORKLOADS: dict[str, tuple[str, Callable[[torch.dtype], Runner], int]] = {
    # task: (workload, builder, inferences per run)
    "text classification": ("bert-base, 128 tokens", classification, 1),
    "text generation": ("gpt2, 64+64 tokens", generation, 1),
    "image generation": ("SD-1.5 512x512, 50 steps", image, 1),
    "tiny classifier": ("example v1 2x64, 8 x 32 tok", tiny_classifier, 8),
    "tiny vit": ("ViT 2x64, 32x32, 1 image", tiny_vit, 1),
}
TARGETS = ("A100-SXM-80GB", "H100-SXM")
ENGINES = ("eager", "compiled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip Stable Diffusion")
    args = parser.parse_args()
    print(f"torch {torch.__version__}; models on the meta device; one inference each")
    header = (
        f"{'task':<20} {'workload':<28} {'dtype':<5} {'target':<14} {'engine':<8} "
        f"{'GFLOP':>9} {'GB':>7} {'kernels':>8} {'J/inf':>9} {'kWh/1000':>9} "
        f"{'overhead':>8} {'published':>9}"
    )
    print(header)
    print("-" * len(header))
    for task, (label, build, inferences) in WORKLOADS.items():
        if args.quick and task == "image generation":
            continue
        for dtype, dname in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            run = build(dtype)
            for target in TARGETS:
                for engine in ENGINES:
                    meter = RooflineMeter(target, engine=engine)
                    with torch.inference_mode(), meter.observe():
                        run(meter)
                    joules = next(iter(meter.read().values()))
                    counts = meter.counters()
                    per = joules / inferences
                    published = PUBLISHED_KWH_PER_1000.get(task)
                    print(
                        f"{task:<20} {label:<28} {dname:<5} {target:<14} {engine:<8} "
                        f"{counts['flops'] / 1e9 / inferences:>9.2f} "
                        f"{counts['bytes'] / 1e9 / inferences:>7.3f} "
                        f"{counts['kernels'] / inferences:>8.0f} {per:>9.3g} "
                        f"{per * 1000 / J_PER_KWH:>9.3g} "
                        f"{counts['energy_j:overhead'] / joules:>8.0%} "
                        f"{'-' if published is None else f'{published:g}':>9}"
                    )


if __name__ == "__main__":
    main()
