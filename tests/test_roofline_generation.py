"""pytest_energy.generation: prefill + exactly new_tokens greedy decode steps, the KV cache per
engine, and the roofline decode shortcut against the step-by-step count."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_energy import generation  # noqa: E402
from pytest_energy.errors import MeasurementError  # noqa: E402
from pytest_energy.meters.roofline import RooflineMeter  # noqa: E402

LLAMA = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 256,
}


def llama(device: str = "meta", dtype: torch.dtype = torch.float32) -> Any:
    with torch.device(device):
        torch.manual_seed(0)
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA)).to(dtype).eval()


def run(
    model: Any, meter: object, *, batch: int = 2, prompt: int = 16, new: int = 10, **options: Any
) -> tuple[Any, list[str]]:
    marks: list[str] = []
    ids = generation.run(
        model,
        batch_size=batch,
        prompt_tokens=prompt,
        new_tokens=new,
        mark=marks.append,
        meter=meter,
        **options,
    )
    return ids, marks


def figures(model: Any, *, engine: str = "eager", boards: int = 1, **options: Any) -> dict:  # type: ignore[type-arg]
    """Counters and energy of a roofline window running generation.run, at the mark and after."""
    meter = RooflineMeter("H100-SXM", engine=engine, tensor_parallel=boards)
    at_mark: dict[str, float] = {}

    def mark(_: str) -> None:
        at_mark.update(meter.counters())
        at_mark["joules"] = next(iter(meter.read().values()))

    with meter.observe():
        generation.run(model, mark=mark, meter=meter, **options)
    total = meter.counters()
    total["joules"] = next(iter(meter.read().values()))
    return {"prefill": at_mark, "total": total}


class NotAMeter:
    """Any meter works: generation only reads ``engine`` if the meter has one."""


# -- what a run is ---------------------------------------------------------------------------


def test_a_run_is_a_prefill_then_exactly_new_tokens_steps_on_real_tensors() -> None:
    model = llama("cpu")
    forwards: list[int] = []
    model.register_forward_hook(
        lambda module, args, kwargs, out: forwards.append(kwargs["input_ids"].shape[1]),
        with_kwargs=True,
    )
    marks: list[tuple[str, int]] = []
    ids = generation.run(
        model,
        batch_size=3,
        prompt_tokens=16,
        new_tokens=5,
        mark=lambda label: marks.append((label, len(forwards))),
        meter=NotAMeter(),
    )
    assert ids.shape == (3, 16 + 1 + 5)  # the prompt, the prefill's token, one per step
    assert marks == [("prefill", 1)]  # right after the prefill forward
    assert forwards == [16, 1, 1, 1, 1, 1]
    # greedy and deterministic: the same ids again; the prompt is synthetic
    again, _ = run(model, NotAMeter(), batch=3, prompt=16, new=5)
    assert torch.equal(ids, again)
    assert ids[:, :16].tolist() == (((torch.arange(48) * 7919 + 13) % 1000).view(3, 16).tolist())
    # the decoded tokens are the model's greedy choices
    with torch.inference_mode():
        logits = model(input_ids=ids[:, :17]).logits
    assert torch.equal(logits[:, -2].argmax(-1), ids[:, 16])


@pytest.mark.parametrize("engine", ["eager", "compiled"])
def test_both_caches_decode_the_same_tokens(engine: str) -> None:
    model = llama("cpu")

    class Engine:
        def __init__(self, name: str) -> None:
            self.engine = name

    eager, _ = run(model, Engine("eager"))
    other, _ = run(model, Engine(engine))
    assert torch.equal(eager, other)


def test_the_compiled_cache_writes_one_position_per_step() -> None:
    model = llama()
    config = model.config

    def decode_bytes(engine: str, new: int) -> float:
        out = figures(
            model, engine=engine, batch_size=2, prompt_tokens=16, new_tokens=new, shortcut=False
        )
        return out["total"]["bytes"] - out["prefill"]["bytes"]

    head = config.hidden_size // config.num_attention_heads
    # one more cached position, read by the next step's attention: keys and values, each layer
    position = config.num_hidden_layers * 2 * 2 * config.num_key_value_heads * head * 4
    compiled = [decode_bytes("compiled", n) for n in (4, 5, 6)]
    assert compiled[2] - compiled[1] - (compiled[1] - compiled[0]) == position
    eager = [decode_bytes("eager", n) for n in (4, 5, 6)]
    # the DynamicCache concatenation also reads and writes the whole cache every step
    assert eager[2] - eager[1] - (eager[1] - eager[0]) == 3 * position


# -- the shortcut -----------------------------------------------------------------------------


@pytest.mark.parametrize(("engine", "boards"), [("eager", 1), ("compiled", 1), ("compiled", 2)])
def test_the_shortcut_gives_the_step_by_step_energy_and_counts(engine: str, boards: int) -> None:
    model = llama()
    sizes = {"batch_size": 2, "prompt_tokens": 16, "new_tokens": 20}
    exact = figures(model, engine=engine, boards=boards, shortcut=False, **sizes)
    fast = figures(model, engine=engine, boards=boards, **sizes)  # meta + roofline: shortcut
    for phase in ("prefill", "total"):
        for key, value in exact[phase].items():
            assert fast[phase][key] == pytest.approx(value, rel=0.005, abs=0), (phase, key)
    assert fast == exact  # in fact exactly: each op is affine in the context length


@pytest.mark.parametrize("engine", ["eager", "compiled"])
def test_a_sliding_window_shorter_than_the_sequence_runs_every_step(engine: str) -> None:
    # past the window a step stops growing: extrapolating the first steps would be wrong
    config = transformers.MistralConfig(**{**LLAMA, "sliding_window": 16})
    with torch.device("meta"):
        model = transformers.MistralForCausalLM(config).eval()
    sizes = {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 30}
    assert figures(model, engine=engine, **sizes) == figures(
        model, engine=engine, shortcut=False, **sizes
    )


def test_the_shortcut_is_deterministic() -> None:
    model = llama(dtype=torch.bfloat16)
    sizes = {"batch_size": 4, "prompt_tokens": 32, "new_tokens": 40}
    assert figures(model, **sizes) == figures(model, **sizes)


def test_the_shortcut_needs_the_roofline_meter() -> None:
    with pytest.raises(MeasurementError, match="needs the roofline meter"):
        run(llama(), NotAMeter(), shortcut=True)


def test_gpt2_decode_counts_the_analytic_flops() -> None:
    config = transformers.GPT2Config()  # gpt2, 124M
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(config).eval()
    meter = RooflineMeter()
    with meter.observe():
        run(model, meter, batch=1, prompt=64, new=32)
    d, layers, vocab = config.n_embd, config.n_layer, config.vocab_size

    def forward(tokens: int, cached: int) -> int:
        pairs = tokens * (tokens + 1) // 2 if cached == 0 else tokens * (cached + tokens)
        return layers * (2 * tokens * 12 * d * d + 2 * pairs * 2 * d) + 2 * d * vocab

    expected = forward(64, 0) + sum(forward(1, 64 + i) for i in range(32))
    assert meter.tally().matmul_flops == expected


# -- check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"prompt_tokens": -3}, "prompt_tokens must be at least 1"),
        ({"new_tokens": 2.5}, "new_tokens must be a whole number, got 2.5"),
        ({"new_tokens": True}, "new_tokens must be a whole number"),
        ({"prompt_tokens": 200, "new_tokens": 100}, "301 positions exceed the model's 256"),
    ],
)
def test_bad_counts(counts: dict[str, object], message: str) -> None:
    sizes: dict[str, Any] = {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4, **counts}
    with pytest.raises(MeasurementError, match=message):
        generation.check(llama(), **sizes)


def test_only_causal_language_models() -> None:
    with torch.device("meta"):
        bert = transformers.BertModel(transformers.BertConfig(num_hidden_layers=1))
    for model in (bert, torch.nn.Linear(4, 4), object()):
        with pytest.raises(MeasurementError, match="needs a transformers causal language model"):
            generation.check(model, 1, 8, 4)
    generation.check(llama(), 1, 8, 4)
