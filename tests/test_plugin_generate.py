"""Production-size models on a CPU runner, through pytest: ``energy.generate`` on a model
built on ``meta`` under the roofline meter (its split into prefill and decode, in every
report), the engine and board count in the hardware key, and the refusal of a meta window
under a measuring meter."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")
# Imported here, before any in-process run: pytester unloads what a run imported, and torch
# cannot be imported a second time in one process.
import torch  # noqa: F401
import transformers  # noqa: F401

LLAMA = """
import pytest
import torch
import transformers

CONFIG = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, vocab_size=1000,
              max_position_embeddings=256)


@pytest.fixture(scope="module")
def model():
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG)).to(torch.bfloat16).eval()


def test_reply(energy, model):
    energy.generate(model, batch_size=4, prompt_tokens=32, new_tokens=8)
"""


def _tests(pytester: pytest.Pytester) -> list[dict[str, object]]:
    return json.loads((pytester.path / "energy.json").read_text())["tests"]  # type: ignore[no-any-return]


def test_generate_on_meta_is_modelled_and_split(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm=LLAMA)
    result = pytester.runpytest(
        "--energy-meter=roofline", "--energy-report", "--energy-json=energy.json",
        "--energy-markdown=energy.md", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    (test,) = _tests(pytester)
    assert (test["inferences"], test["tokens"]) == (4, 32)
    assert test["figures"] == "modelled" and test["engine"] == "eager"
    assert test["hardware"] == "NVIDIA H100 SXM (roofline v3, eager)"
    prefill, decode = test["prefill_j_per_inference"], test["decode_j_per_token"]
    assert isinstance(prefill, float) and isinstance(decode, float) and prefill > 0 < decode
    assert prefill * 4 + decode * 32 == pytest.approx(test["energy_j"], rel=1e-9)
    split = test["split_j_per_inference"]
    assert isinstance(split, dict) and set(split) >= {"matmul", "attention", "other", "overhead"}
    assert "J/token" in result.stdout.str()


def test_engine_and_boards_are_part_of_the_hardware_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm=LLAMA)
    args = ("--energy-meter=roofline", "--energy-json=energy.json", "-p", "no:cacheprovider")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    (eager,) = _tests(pytester)
    pytester.runpytest(
        *args, "--energy-engine=compiled", "--energy-tensor-parallel=2"
    ).assert_outcomes(passed=1)
    (compiled,) = _tests(pytester)
    assert compiled["hardware"] == "2x NVIDIA H100 SXM (roofline v3, compiled)"
    assert compiled["engine"] == "compiled"
    assert compiled["decode_j_per_token"] != eager["decode_j_per_token"]
    bad = pytester.runpytest("--energy-meter=roofline", "--energy-engine=vllm")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--energy-engine / energy_engine: expected one of eager, compiled" in bad.stderr.str()


def test_a_meta_model_under_a_measuring_meter_is_refused(meter_pytester: pytest.Pytester) -> None:
    """Under a sensor, a meta model measures only Python overhead: no figure is recorded."""
    meter_pytester.makepyfile(test_llm=LLAMA)
    result = meter_pytester.runpytest(
        "--energy-meter=fakemeter:PoweredMeter", "--energy-min-time=0", "--energy-rounds=2",
        "--energy-json=energy.json", "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*this window ran on torch's meta device*--energy-meter=roofline*"]
    )
    assert _tests(meter_pytester) == []
