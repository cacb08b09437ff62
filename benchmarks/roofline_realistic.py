"""Modelled energy of realistic inference workloads under the roofline meter, beside
published measurements.

    PYTHONPATH=. python benchmarks/roofline_realistic.py

The models are built on torch's ``meta`` device from the published configs (bert-base-uncased,
gpt2, Stable Diffusion 1.5 with the example project's "realistic" sizes): no weights are
allocated or downloaded and no arithmetic is done, but every operation is dispatched with its
real shapes and dtypes, which is all the meter needs. It runs in well under a minute on a CPU.

Workloads (one inference each):

- text classification: bert-base-uncased, one sequence of 128 tokens, batch 1.
- text generation: gpt2 (124M), a 64-token prompt and 64 new tokens, greedy, KV cache
  (a prefill of 64 positions then 63 one-token decode steps; the LM head on the last
  position only, as ``generate`` does).
- image generation: Stable Diffusion 1.5 at 512x512: the CLIP text encoder on 2 x 77
  tokens (prompt + empty prompt), 50 UNet steps on a batch of 2 64x64 latents
  (classifier-free guidance), one VAE decode.

Published measurements: Luccioni, Jernite and Strubell, "Power Hungry Processing: Watts
Driving the Cost of AI Deployment?" (FAccT 2024), Table 2: mean kWh per 1,000 inferences
over the models of each task, measured with CodeCarbon (GPU, CPU and RAM together) on an
NVIDIA A100-SXM4-80GB node: text classification 0.002, text generation 0.047, image
generation 2.907.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pytest_energy.meters.roofline import RooflineMeter

J_PER_KWH = 3.6e6
PUBLISHED_KWH_PER_1000 = {
    "text classification": 0.002,
    "text generation": 0.047,
    "image generation": 2.907,
}
TARGETS = ("A100-SXM-80GB", "H100-SXM")


def classification(dtype: torch.dtype) -> Callable[[], object]:
    from transformers import BertConfig, BertForSequenceClassification

    with torch.device("meta"):
        model = BertForSequenceClassification(BertConfig(num_labels=2)).to(dtype).eval()
        ids = torch.zeros(1, 128, dtype=torch.long)
    return lambda: model(input_ids=ids).logits


def generation(dtype: torch.dtype, prompt: int = 64, new_tokens: int = 64) -> Callable[[], object]:
    from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config()).to(dtype).eval()
        ids = torch.zeros(1, prompt, dtype=torch.long)
        one = torch.zeros(1, 1, dtype=torch.long)

    def run() -> object:
        cache = DynamicCache()
        out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        for _ in range(new_tokens - 1):
            out = model(input_ids=one, cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits

    return run


def image(dtype: torch.dtype, steps: int = 50) -> Callable[[], object]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            in_channels=4,
            out_channels=4,
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=512,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                num_hidden_layers=12,
                num_attention_heads=12,
                intermediate_size=3072,
                hidden_act="quick_gelu",
            )
        )
        unet, vae, text = (m.to(dtype).eval() for m in (unet, vae, text))
        tokens = torch.zeros(2, 77, dtype=torch.long)
        latents = torch.zeros(2, 4, 64, 64, dtype=dtype)
        timestep = torch.zeros((), dtype=torch.long)

    def run() -> object:
        context = text(input_ids=tokens).last_hidden_state
        sample = latents
        for _ in range(steps):
            noise = unet(sample, timestep, encoder_hidden_states=context).sample
            sample = sample + noise  # stands in for guidance and the scheduler step
        return vae.decode(sample[:1] / 0.18215).sample

    return run


WORKLOADS: dict[str, tuple[str, Callable[[torch.dtype], Callable[[], object]]]] = {
    "text classification": ("bert-base, 128 tokens", classification),
    "text generation": ("gpt2, 64+64 tokens", generation),
    "image generation": ("SD-1.5 512x512, 50 steps", image),
}


def main() -> None:
    print(f"torch {torch.__version__}; models on the meta device; one inference each")
    header = (
        f"{'task':<20} {'workload':<26} {'dtype':<5} {'target':<14} {'GFLOP':>10} "
        f"{'GB moved':>9} {'kernels':>8} {'kWh/1000':>10} {'published':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for task, (label, build) in WORKLOADS.items():
        for dtype, dname in ((torch.float32, "fp32"), (torch.float16, "fp16")):
            run = build(dtype)
            for target in TARGETS:
                meter = RooflineMeter(target)
                with torch.inference_mode(), meter.observe():
                    run()
                joules = next(iter(meter.read().values()))
                counts = meter.counters()
                kwh_per_1000 = joules * 1000 / J_PER_KWH
                published = PUBLISHED_KWH_PER_1000[task]
                print(
                    f"{task:<20} {label:<26} {dname:<5} {target:<14} "
                    f"{counts['flops'] / 1e9:>10.1f} {counts['bytes'] / 1e9:>9.2f} "
                    f"{counts['kernels']:>8.0f} {kwh_per_1000:>10.3g} {published:>9.3g} "
                    f"{kwh_per_1000 / published:>6.3f}"
                )


if __name__ == "__main__":
    main()
