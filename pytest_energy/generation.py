"""Greedy generation with a KV cache on synthetic tokens, for ``energy.generate``.

What :func:`run` does, precisely:

1. **Prompt.** ``batch_size`` sequences of ``prompt_tokens`` synthetic, deterministic token
   ids (``(7919 * i + 13) mod vocab_size``, no padding) on the model's device (meta or real).
2. **Prefill.** One forward pass over the whole prompt that fills the KV cache and computes
   the logits of the last position only, then the greedy (argmax) choice of the first new
   token. ``mark("prefill")`` is called right after it.
3. **Decode.** Exactly ``new_tokens`` decode steps. A step is one forward pass of the latest
   token of every sequence at the next position, reading the whole KV cache and appending
   that position to it, and the greedy choice of the next token from its logits. End-of-
   sequence tokens are ignored. So decode produces ``batch_size * new_tokens`` tokens.

The ids returned are the prompt, the prefill's token and one token per decode step:
``(batch_size, prompt_tokens + 1 + new_tokens)``.

The KV cache follows the meter's ``engine`` (``"eager"`` unless the meter says otherwise):
under ``eager`` transformers' ``DynamicCache``, whose concatenation copies the cache every
step, as eager transformers does; under ``compiled`` a cache preallocated for the whole
sequence, as serving engines keep it (vLLM's paged cache): a step writes only its own
position (one slice copy) and attention reads the filled part.

Under the ``roofline`` meter, a model on ``meta`` takes a shortcut with the same figures:
each operation of a decode step costs an affine function of the context length, so the
first four steps are run (and counted), the per-operation growth per position is read off
steps 1 to 3 and checked to be the same between them, and every later step's operations are
counted from it exactly, in integers. If the steps are not affine (a model whose step
changes shape), every step is run, and so is every step of a model with a sliding or
chunked attention window shorter than the sequence (past the window a step stops growing).
Any other meter, or real tensors, run every step.

Deterministic: the same model, counts and meter give the same operations every time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .errors import MeasurementError

#: Decode steps run before the shortcut extrapolates: step 0, then 1 to 3 to read and check
#: the growth per position.
SAMPLED_STEPS = 4
_MULTIPLIER = 7919  # a prime: synthetic ids spread over the vocabulary


def _count_problem(name: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number, got {value!r}"
    if value < 1:
        return f"{name} must be at least 1, got {value}"
    return None


def check(model: object, batch_size: int, prompt_tokens: int, new_tokens: int) -> None:
    """Raise MeasurementError (one paragraph) unless ``model`` is a transformers causal LM
    and the counts are whole numbers of at least 1 that fit its context."""
    problems = [
        p
        for p in (
            _count_problem("batch_size", batch_size),
            _count_problem("prompt_tokens", prompt_tokens),
            _count_problem("new_tokens", new_tokens),
        )
        if p
    ]
    if problems:
        raise MeasurementError(
            f"energy.generate: {'; '.join(problems)}. Pass the number of sequences, the prompt "
            "length and the number of decode steps, e.g. energy.generate(model, "
            "batch_size=8, prompt_tokens=512, new_tokens=256)."
        )
    config = getattr(model, "config", None)
    can_generate = getattr(model, "can_generate", None)
    if (
        config is None
        or not callable(can_generate)
        or not can_generate()
        or getattr(config, "is_encoder_decoder", False)
        or not isinstance(getattr(config, "vocab_size", None), int)
    ):
        raise MeasurementError(
            f"energy.generate needs a transformers causal language model (a decoder with "
            f"generate(), such as AutoModelForCausalLM.from_config(...)), got "
            f"{type(model).__name__}. It runs a prefill and greedy decode steps with a KV "
            "cache on synthetic token ids; for other models, measure a forward pass with "
            "energy(fn, ...) instead."
        )
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    length = prompt_tokens + 1 + new_tokens
    if isinstance(limit, int) and length > limit:
        raise MeasurementError(
            f"energy.generate: prompt_tokens + new_tokens + 1 = {length} positions exceed "
            f"the model's {limit} (config max_position_embeddings); use a shorter prompt or "
            "fewer new tokens, or a config with a longer context."
        )


def _window(config: Any) -> int | None:
    """The smallest attention window of the model (sliding or chunked); None when all full."""
    windows = []
    if getattr(config, "use_sliding_window", True) and getattr(config, "sliding_window", None):
        windows.append(int(config.sliding_window))
    if getattr(config, "attention_chunk_size", None):
        windows.append(int(config.attention_chunk_size))
    return min(windows) if windows else None


def _affine(model: Any, length: int) -> bool:
    """Whether every decode step's ops grow linearly with the context: no attention window
    that the sequence outgrows (past a sliding window, a step stops growing)."""
    window = _window(model.config)
    return window is None or window >= length


def _device(model: Any) -> Any:
    for parameter in model.parameters():
        return parameter.device
    return getattr(model, "device", "cpu")


def _preallocated_cache(model: Any, capacity: int) -> Any:
    """A cache preallocated for ``capacity`` positions, writing each new position in place."""
    import torch
    from transformers import StaticCache
    from transformers.cache_utils import Cache, DynamicLayer

    config = model.config
    layer_types = getattr(config, "layer_types", None) or ()
    if _window(config) is not None or any(t != "full_attention" for t in layer_types):
        # windowed or other layer types: transformers' own preallocated cache
        return StaticCache(config=config, max_cache_len=capacity)

    class PreallocatedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
        """Storage for ``capacity`` positions; ``update`` copies the new positions into it and
        returns views of the filled part, so attention reads only what is cached."""

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.length = 0

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            self.device = key_states.device
            batch, heads = key_states.shape[:2]
            self.storage = tuple(
                torch.empty(
                    (batch, heads, capacity, states.shape[-1]),
                    dtype=states.dtype,
                    device=states.device,
                )
                for states in (key_states, value_states)
            )
            self.is_initialized = True

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start, end = self.length, self.length + key_states.shape[-2]
            for storage, states in zip(self.storage, (key_states, value_states), strict=True):
                storage[:, :, start:end].copy_(states)
            self.length = end
            self.keys, self.values = (storage[:, :, :end] for storage in self.storage)
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def get_max_length(self) -> int:
            return capacity

    return Cache(layers=[PreallocatedLayer() for _ in range(config.num_hidden_layers)])


def _cache(model: Any, engine: str, capacity: int) -> Any:
    from transformers import DynamicCache

    if engine == "compiled":
        return _preallocated_cache(model, capacity)
    return DynamicCache(config=model.config)


def _forward(model: Any) -> Callable[[Any, Any], Any]:
    """One forward pass with the cache, keeping only the last position's logits."""
    parameters = inspect.signature(model.forward).parameters
    extra = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    # transformers 5.2x names the cache argument `cache`; earlier 5.x `past_key_values`
    cache_name = "cache" if "cache" in parameters else "past_key_values"

    def forward(ids: Any, cache: Any) -> Any:
        out = model(input_ids=ids, use_cache=True, **{cache_name: cache}, **extra)
        return out.logits[:, -1:].argmax(-1)

    return forward


def run(
    model: Any,
    *,
    batch_size: int,
    prompt_tokens: int,
    new_tokens: int,
    mark: Callable[[str], None],
    meter: object,
    shortcut: bool | None = None,
) -> Any:
    """Prefill then exactly ``new_tokens`` greedy decode steps (module docstring); returns the
    ids, ``(batch_size, prompt_tokens + 1 + new_tokens)``.

    ``shortcut``: None takes it where it applies (the roofline meter, a model on meta);
    False runs every step; True requires the roofline meter.
    """
    import torch

    from .meters.roofline import RooflineMeter

    check(model, batch_size, prompt_tokens, new_tokens)
    device = _device(model)
    roofline = isinstance(meter, RooflineMeter)
    length = prompt_tokens + 1 + new_tokens
    if shortcut is None:
        shortcut = roofline and torch.device(device).type == "meta" and _affine(model, length)
    if shortcut and not roofline:
        raise MeasurementError(
            "energy.generate: the decode shortcut models the steps it skips, so it needs the "
            "roofline meter; run every step (shortcut=False) with a measuring meter."
        )
    engine = str(getattr(meter, "engine", "eager"))
    vocab = model.config.vocab_size
    forward = _forward(model)
    setup: AbstractContextManager[None] = meter.paused() if roofline else nullcontext()  # type: ignore[attr-defined]
    with torch.inference_mode():
        with setup:  # the synthetic prompt is not inference work
            prompt = (
                torch.arange(batch_size * prompt_tokens, device=device).mul_(_MULTIPLIER).add_(13)
                % vocab
            ).view(batch_size, prompt_tokens)
        cache = _cache(model, engine, length)
        token = forward(prompt, cache)
        mark("prefill")
        if shortcut:
            assert isinstance(meter, RooflineMeter)
            tokens = _decode_with_shortcut(meter, forward, token, cache, new_tokens)
        else:
            tokens = [token]
            for _ in range(new_tokens):
                token = forward(token, cache)
                tokens.append(token)
        return torch.cat([prompt, *tokens], dim=1)


def _decode_with_shortcut(
    meter: Any, forward: Callable[[Any, Any], Any], token: Any, cache: Any, new_tokens: int
) -> list[Any]:
    """Run the first decode steps, then count the rest from their per-position growth."""
    import torch

    tokens = [token]
    steps: list[list[Any]] = []
    for _ in range(min(new_tokens, SAMPLED_STEPS)):
        with meter.recording() as costs:
            token = forward(token, cache)
        tokens.append(token)
        steps.append([cost.record for cost in costs])
    remaining = new_tokens - len(steps)
    if remaining == 0:
        return tokens
    growth = _affine_growth(steps[1:])
    if growth is None:  # not affine in the context length: run every step
        for _ in range(remaining):
            token = forward(token, cache)
            tokens.append(token)
        return tokens
    last = steps[-1]
    counted: dict[tuple[Any, ...], int] = {}
    for ahead in range(1, remaining + 1):
        for record, (d_flops, d_bytes) in zip(last, growth, strict=True):
            key = (
                record.op_class,
                record.flops + d_flops * ahead,
                record.bytes + d_bytes * ahead,
                record.peak_key,
                record.fusible,
            )
            counted[key] = counted.get(key, 0) + 1
    from .meters.roofline.model import OpRecord

    meter.add(
        (meter.cost_of(OpRecord(c, f, b, p, 1, fu)), n) for (c, f, b, p, fu), n in counted.items()
    )
    with meter.paused():  # ids of the skipped steps: shape only, on meta
        tokens.extend(torch.empty_like(token) for _ in range(remaining))
    return tokens


def _affine_growth(steps: list[list[Any]]) -> list[tuple[int, int]] | None:
    """Per-operation growth of (flops, bytes) per decode step, when consecutive steps have
    the same operations and every operation grows by the same amount each step; else None."""
    if len(steps) < 3:
        return None
    first, second, third = steps[0], steps[1], steps[2]
    if not len(first) == len(second) == len(third):
        return None
    growth: list[tuple[int, int]] = []
    for a, b, c in zip(first, second, third, strict=True):
        if (a.op_class, a.peak_key, a.fusible) != (b.op_class, b.peak_key, b.fusible) or (
            b.op_class,
            b.peak_key,
            b.fusible,
        ) != (c.op_class, c.peak_key, c.fusible):
            return None
        step = (b.flops - a.flops, b.bytes - a.bytes)
        if (c.flops - b.flops, c.bytes - b.bytes) != step:
            return None
        growth.append(step)
    return growth
