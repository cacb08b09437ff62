"""Counts inferred from what the model returns, through pytest: ``energy(model.generate,
...)``, a pipeline, and ``energy.produced`` inside ``energy.measure()``, on tiny real models
built from configs (tests/tiny_hf.py). A meter that draws constant power, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
# Imported here, before any in-process run: pytester unloads what a run imported, and torch
# cannot be imported a second time in one process.
import tiny_hf  # noqa: F401
import torch  # noqa: F401

TESTS = Path(__file__).resolve().parent
BASE = (
    "--energy-meter=fakemeter:PoweredMeter",
    "--energy-min-time=0",
    "--energy-rounds=2",
    "--energy-json=energy.json",
    "-p",
    "no:cacheprovider",
)

SUITE = """
import pytest
import torch
import tiny_hf
from tiny_hf import EOS, EndAt


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return tiny_hf.gpt2(tmp_path_factory.mktemp("gpt2"))


def test_generate(energy, gpt2):
    model, tok = gpt2
    batch = tok(["the mug is good", "a lamp"], return_tensors="pt", padding=True)
    width = batch["input_ids"].shape[1]
    # the first prompt ends at its third new token, the second never: 3 + 6 new tokens
    ends = EndAt([2, None], EOS, prompt_width=width)
    out = energy(model.generate, **batch, max_new_tokens=6, do_sample=False,
                 logits_processor=[ends])
    assert out.shape[0] == 2


def test_generate_with_a_given_count(energy, gpt2):
    model, tok = gpt2
    batch = tok(["the mug is good"], return_tensors="pt")
    energy(model.generate, **batch, max_new_tokens=4, do_sample=False, tokens=99)


def test_produced_inside_measure(energy, gpt2):
    model, tok = gpt2
    batch = tok(["a lamp"], return_tensors="pt")
    with energy.measure():
        out = model.generate(**batch, max_new_tokens=5, do_sample=False,
                             logits_processor=[EndAt([None], EOS, batch["input_ids"].shape[1])])
        energy.produced(out, model.generate, **batch)


def test_a_plain_function_needs_its_count(energy):
    energy(lambda: torch.zeros(3))
"""


@pytest.fixture
def counts_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    from conftest import FAKE_METER

    pytester.makepyfile(fakemeter=FAKE_METER)
    pytester.syspathinsert()
    pytester.syspathinsert(TESTS)  # tiny_hf
    return pytester


def test_counts_are_read_from_generate_outputs(counts_pytester: pytest.Pytester) -> None:
    counts_pytester.makepyfile(test_generate_outputs=SUITE)
    result = counts_pytester.runpytest(*BASE)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*the energy fixture needs the number of inferences one call does*Pass inferences=N*"]
    )
    tests = {
        t["nodeid"].split("::")[1]: t
        for t in json.loads((counts_pytester.path / "energy.json").read_text())["tests"]
    }
    generate = tests["test_generate"]
    assert generate["counts"] == "inferred"
    assert [(w["inferences"], w["tokens"]) for w in generate["windows"]] == [(2, 9)] * len(
        generate["windows"]
    )
    assert generate["joules_per_token"] is not None
    given = tests["test_generate_with_a_given_count"]
    assert given["counts"] == "inferred"  # inferences were inferred, tokens given
    assert all(w["tokens"] == 99 and w["inferences"] == 1 for w in given["windows"])
    produced = tests["test_produced_inside_measure"]
    assert produced["counts"] == "inferred"
    assert (produced["inferences"], produced["tokens"]) == (1, 5)
    assert "test_a_plain_function_needs_its_count" not in tests


PIPELINE = """
import pytest
import tiny_hf


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return tiny_hf.classifier(tmp_path_factory.mktemp("clf"))


def test_triage(energy, classifier):
    energy(classifier, ["the mug is good", "the lamp broke", "a box arrived late"])
"""


def test_a_pipeline_counts_its_inputs(counts_pytester: pytest.Pytester) -> None:
    counts_pytester.makepyfile(test_pipeline=PIPELINE)
    counts_pytester.runpytest(*BASE).assert_outcomes(passed=1)
    (test,) = json.loads((counts_pytester.path / "energy.json").read_text())["tests"]
    assert test["counts"] == "inferred"
    assert {w["inferences"] for w in test["windows"]} == {3}
