"""pytest_energy.counts against the real outputs of tiny transformers and diffusers models.

Where a sequence ends is set through generate's own mechanisms (tiny_hf.EndAt, a logits
processor; tiny_hf.StopAfter, a stopping criterion), so each expected count follows from
the test's setup, not from the code under test. Output formats checked against
transformers 5.x ``generation/utils.py`` (``GenerateDecoderOnlyOutput`` and the beam and
encoder-decoder outputs; ``_sample`` writes ``pad_token_id`` after a sequence's EOS) and
diffusers' pipeline outputs (``StableDiffusionPipelineOutput.images``,
``TextToVideoSDPipelineOutput.frames``: ``(batch, frames, ...)``).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import Any

import pytest

from pytest_energy.counts import DIFFUSERS, GENERATE, PIPELINE, Counts, infer, resolve
from pytest_energy.errors import MeasurementError

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
import tiny_hf  # noqa: E402  (imports transformers)

# --------------------------------------------------------------------------------------
# Without any ML library
# --------------------------------------------------------------------------------------


def test_the_module_imports_no_ml_library() -> None:
    code = (
        "import sys\n"
        "from pytest_energy.counts import infer\n"
        "print(infer([1, 2, 3], fn=len, args=([1, 2, 3],), kwargs={}))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'diffusers', 'numpy', 'PIL')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"
    assert "inferences=None" in out


@pytest.mark.parametrize("output", [None, "text", [1, 2], {"label": "x"}, 3.5])
def test_an_unknown_output_gives_no_counts(output: object) -> None:
    counts = infer(output, fn=print, args=(), kwargs={})
    assert (counts.inferences, counts.tokens, counts.images, counts.source) == (
        None,
        None,
        None,
        "",
    )
    assert "is not an output pytest-energy reads counts from" in counts.notes[0]


def test_a_given_count_wins_and_the_origin_of_each_is_kept() -> None:
    inferred = Counts(inferences=4, tokens=40, source=GENERATE)
    used = resolve(inferred, inferences=2)
    assert (used.inferences, used.tokens, used.images) == (2, 40, None)
    assert used.origin == {"inferences": "given", "tokens": "inferred"}
    assert resolve(inferred).origin == {"inferences": "inferred", "tokens": "inferred"}
    assert resolve(Counts(), inferences=1, images=3).origin == {
        "inferences": "given",
        "images": "given",
    }


def test_inferences_neither_given_nor_inferred_is_an_error_naming_the_fix() -> None:
    with pytest.raises(MeasurementError, match=r"could not be read .* Pass inferences=N\.$"):
        resolve(Counts(notes=("a list is not an output pytest-energy reads counts from.",)))
    with pytest.raises(MeasurementError, match="holds 0 results"):
        resolve(Counts(inferences=0, images=0, source=DIFFUSERS))


def test_counts_add_up_and_an_unknown_count_stays_unknown() -> None:
    total = Counts(2, 10, None, GENERATE) + Counts(1, None, None, GENERATE, ("tokens: x.",))
    assert total == Counts(3, None, None, GENERATE, ("tokens: x.",))


# --------------------------------------------------------------------------------------
# transformers generate: decoder-only (GPT-2)
# --------------------------------------------------------------------------------------

#: Prompts of different lengths, so a batch of them is left-padded.
PROMPTS = ["the kettle arrived late and the box was bad", "the lamp", "a red mug"]
MAX_NEW = 6


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    return tiny_hf.gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def batch(gpt2: tuple[Any, Any]) -> Any:
    _, tokenizer = gpt2
    encoded = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    assert (encoded["attention_mask"] == 0).any()  # left padding is really there
    return encoded


def generate(model: Any, ends: list[int | None], width: int, repeat: int = 1, **kwargs: Any) -> Any:
    processor = tiny_hf.EndAt(ends, tiny_hf.EOS, width, repeat)
    settings = dict(max_new_tokens=MAX_NEW, do_sample=False)
    return model.generate(
        logits_processor=transformers.LogitsProcessorList([processor]), **{**settings, **kwargs}
    )


def expected_tokens(ends: list[int | None], repeat: int = 1) -> int:
    return repeat * sum(MAX_NEW if end is None else end + 1 for end in ends)


@pytest.mark.parametrize("as_dict", [False, True], ids=["tensor", "return_dict_in_generate"])
def test_generate_counts_each_sequence_up_to_its_eos_without_the_padding(
    gpt2: tuple[Any, Any], batch: Any, as_dict: bool
) -> None:
    model, _ = gpt2
    ends = [1, 3, None]
    width = batch["input_ids"].shape[1]
    kwargs = dict(batch, return_dict_in_generate=as_dict)
    output = generate(model, ends, width, **kwargs)
    sequences = output.sequences if as_dict else output
    assert isinstance(output, transformers.generation.GenerateDecoderOnlyOutput) == as_dict
    # GPT-2 set-up: the padding after an EOS is the EOS token itself
    assert model.generation_config.pad_token_id == model.generation_config.eos_token_id
    assert sequences[0, width + 2 :].tolist() == [tiny_hf.EOS] * (MAX_NEW - 2)
    assert sequences.shape == (3, width + MAX_NEW)

    counts = infer(output, fn=model.generate, args=(), kwargs=kwargs)
    assert counts == Counts(inferences=3, tokens=expected_tokens(ends), source=GENERATE)
    assert counts.tokens == 2 + 4 + 6 != 3 * MAX_NEW


def test_the_prompt_may_come_positionally_as_inputs_or_through_a_partial(
    gpt2: tuple[Any, Any], batch: Any
) -> None:
    model, _ = gpt2
    ends = [0, None, 2]
    width = batch["input_ids"].shape[1]
    mask = batch["attention_mask"]
    output = generate(model, ends, width, input_ids=batch["input_ids"], attention_mask=mask)
    want = Counts(inferences=3, tokens=expected_tokens(ends), source=GENERATE)
    ids = batch["input_ids"]
    assert infer(output, fn=model.generate, args=(ids,), kwargs={"attention_mask": mask}) == want
    assert infer(output, fn=model.generate, args=(), kwargs={"inputs": ids}) == want
    bound = functools.partial(model.generate, ids, attention_mask=mask)
    assert infer(output, fn=bound, args=(), kwargs={}) == want


def test_an_eos_list_ends_a_sequence_at_a_token_the_model_emits(
    gpt2: tuple[Any, Any], batch: Any
) -> None:
    """No forcing: one run without EOS shows which tokens the model emits; a second run
    makes one of them an EOS, with a padding token of its own."""
    model, _ = gpt2
    width = batch["input_ids"].shape[1]
    settings = dict(batch, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=tiny_hf.PAD)
    free = model.generate(**settings, eos_token_id=None)[:, width:].tolist()
    emitted = next(t for t in free[0] if t != tiny_hf.PAD)
    stop = [emitted, tiny_hf.UNK]
    ended = model.generate(**settings, eos_token_id=stop)
    expected = sum(next((i + 1 for i, t in enumerate(row) if t in stop), len(row)) for row in free)
    assert expected < 3 * MAX_NEW
    assert tiny_hf.PAD in ended[0, width:].tolist()  # padded after its EOS
    counts = infer(ended, fn=model.generate, args=(), kwargs={**settings, "eos_token_id": stop})
    assert (counts.inferences, counts.tokens) == (3, expected)


def test_beam_search_counts_the_returned_sequences(gpt2: tuple[Any, Any], batch: Any) -> None:
    model, _ = gpt2
    ends = [1, 3, 0]
    width = batch["input_ids"].shape[1]
    kwargs = dict(batch, num_beams=3, num_return_sequences=2, return_dict_in_generate=True)
    output = generate(model, ends, width, repeat=3, **kwargs)
    assert isinstance(output, transformers.generation.GenerateBeamDecoderOnlyOutput)
    counts = infer(output, fn=model.generate, args=(), kwargs=kwargs)
    assert counts == Counts(inferences=6, tokens=expected_tokens(ends, repeat=2), source=GENERATE)


def test_sampled_return_sequences_are_inferences(gpt2: tuple[Any, Any], batch: Any) -> None:
    model, _ = gpt2
    ends = [2, None, 0]
    width = batch["input_ids"].shape[1]
    kwargs = dict(batch, do_sample=True, num_return_sequences=3)
    output = generate(model, ends, width, repeat=3, **kwargs)
    counts = infer(output, fn=model.generate, args=(), kwargs=kwargs)
    assert counts == Counts(inferences=9, tokens=expected_tokens(ends, repeat=3), source=GENERATE)


def test_inputs_embeds_outputs_hold_no_prompt(gpt2: tuple[Any, Any], batch: Any) -> None:
    model, _ = gpt2
    ends = [None, 1, 4]
    embeds = model.get_input_embeddings()(batch["input_ids"])
    kwargs = dict(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
    output = generate(model, ends, 0, **kwargs)
    assert output.shape == (3, MAX_NEW)
    counts = infer(output, fn=model.generate, args=(), kwargs=kwargs)
    assert counts.tokens == expected_tokens(ends)


def test_a_stopping_criterion_leaves_batched_tokens_unknown(
    gpt2: tuple[Any, Any], batch: Any
) -> None:
    model, tokenizer = gpt2
    width = batch["input_ids"].shape[1]
    stop = transformers.StoppingCriteriaList([tiny_hf.StopAfter(3, width)])
    kwargs = dict(batch, stopping_criteria=stop)
    counts = infer(
        generate(model, [None] * 3, width, **kwargs), fn=model.generate, args=(), kwargs=kwargs
    )
    assert (counts.inferences, counts.tokens) == (3, None)
    assert "stop_strings or stopping_criteria" in counts.notes[0]

    one = tokenizer(PROMPTS[:1], return_tensors="pt")
    width = one["input_ids"].shape[1]
    stop = transformers.StoppingCriteriaList([tiny_hf.StopAfter(3, width)])
    kwargs = dict(one, stopping_criteria=stop)
    output = generate(model, [None], width, **kwargs)
    assert infer(output, fn=model.generate, args=(), kwargs=kwargs).tokens == 3


def test_without_the_model_or_the_call_tokens_are_unknown(
    gpt2: tuple[Any, Any], batch: Any
) -> None:
    model, _ = gpt2
    width = batch["input_ids"].shape[1]
    output = generate(model, [1, 1, 1], width, **batch, return_dict_in_generate=True)
    alone = infer(output)
    assert (alone.inferences, alone.tokens, alone.source) == (3, None, GENERATE)
    assert "the model is not known" in alone.notes[0]
    no_call = infer(output, fn=model.generate)
    assert no_call.tokens is None and "arguments" in no_call.notes[0]
    # a bare tensor is only a generate output when fn says so
    assert infer(output.sequences).source == ""


def test_a_prompt_the_output_does_not_start_with_gives_no_tokens(
    gpt2: tuple[Any, Any], batch: Any
) -> None:
    model, _ = gpt2
    width = batch["input_ids"].shape[1]
    output = generate(model, [1, 1, 1], width, **batch)
    other = dict(batch, input_ids=batch["input_ids"].flip(0))
    counts = infer(output, fn=model.generate, args=(), kwargs=other)
    assert (counts.inferences, counts.tokens) == (3, None)
    assert "do not start with the call's prompt" in counts.notes[0]


# --------------------------------------------------------------------------------------
# transformers generate: encoder-decoder (T5: the decoder starts with PAD; BART: with EOS)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["t5", "bart"])
def seq2seq(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return getattr(tiny_hf, request.param)(tmp_path_factory.mktemp(request.param))


ENCODER_IDS = [[8, 9, 10, 11], [12, 13, 0, 0]]


@pytest.mark.parametrize("as_dict", [False, True], ids=["tensor", "return_dict_in_generate"])
def test_encoder_decoder_outputs_skip_the_decoder_start_token(seq2seq: Any, as_dict: bool) -> None:
    ids = torch.tensor(ENCODER_IDS)
    kwargs = dict(input_ids=ids, attention_mask=(ids != 0).long(), return_dict_in_generate=as_dict)
    ends = [2, 0]
    output = generate(seq2seq, ends, 1, **kwargs)
    sequences = output.sequences if as_dict else output
    start = seq2seq.generation_config.decoder_start_token_id
    assert sequences[:, 0].tolist() == [start, start]
    counts = infer(output, fn=seq2seq.generate, args=(), kwargs=kwargs)
    assert counts == Counts(inferences=2, tokens=expected_tokens(ends), source=GENERATE)


@pytest.mark.parametrize("with_start", [True, False])
def test_a_decoder_prompt_is_skipped_whether_or_not_it_starts_with_the_start_token(
    seq2seq: Any, with_start: bool
) -> None:
    start = seq2seq.generation_config.decoder_start_token_id
    decoder = [[start, 20], [start, 21]] if with_start else [[20], [21]]
    ids = torch.tensor(ENCODER_IDS)
    kwargs = dict(
        input_ids=ids, attention_mask=(ids != 0).long(), decoder_input_ids=torch.tensor(decoder)
    )
    ends = [None, 1]
    output = generate(seq2seq, ends, 2, **kwargs)
    assert output[:, :2].tolist() == [[start, 20], [start, 21]]
    counts = infer(output, fn=seq2seq.generate, args=(), kwargs=kwargs)
    assert counts.tokens == expected_tokens(ends)


# --------------------------------------------------------------------------------------
# transformers pipelines
# --------------------------------------------------------------------------------------

REVIEWS = ["the kettle is good", "the lamp broke", "the box arrived late"]


@pytest.fixture(scope="module")
def classify(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tiny_hf.classifier(tmp_path_factory.mktemp("classifier"))


@pytest.mark.parametrize(
    ("inputs", "kwargs", "inferences"),
    [
        (REVIEWS, {}, 3),
        (REVIEWS, {"top_k": 2}, 3),
        (REVIEWS[0], {}, 1),
        (REVIEWS[0], {"top_k": 2}, 1),
        ({"text": REVIEWS[0], "text_pair": REVIEWS[1]}, {}, 1),
    ],
    ids=["list", "list-top_k", "text", "text-top_k", "text-pair"],
)
def test_a_pipeline_counts_its_inputs(
    classify: Any, inputs: Any, kwargs: dict[str, Any], inferences: int
) -> None:
    output = classify(inputs, **kwargs)
    counts = infer(output, fn=classify, args=(inputs,), kwargs=kwargs)
    assert counts == Counts(inferences=inferences, source=PIPELINE)
    assert infer(output, fn=classify, args=(), kwargs={"inputs": inputs, **kwargs}) == counts


def test_without_its_inputs_a_pipeline_output_is_counted_only_when_unambiguous(
    classify: Any,
) -> None:
    assert infer(classify(REVIEWS, top_k=2), fn=classify).inferences == 3  # one list per input
    flat = infer(classify(REVIEWS), fn=classify)  # a list of dicts: 3 inputs, or top_k=3?
    assert flat.inferences is None and "top_k" in flat.notes[0]


# --------------------------------------------------------------------------------------
# diffusers
# --------------------------------------------------------------------------------------

DESCRIPTIONS = ["a red mug", "a blue shirt"]


@pytest.fixture(scope="module")
def painter(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("diffusers")
    return tiny_hf.stable_diffusion(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def animator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "TextToVideoSDPipeline"):  # deprecated since diffusers 0.33
        pytest.skip("this diffusers has no TextToVideoSDPipeline to make a tiny video pipeline")
    return tiny_hf.text_to_video(tmp_path_factory.mktemp("video"))


@pytest.mark.parametrize("output_type", ["pil", "np", "pt", "latent"])
def test_a_diffusers_pipeline_makes_one_inference_per_image(painter: Any, output_type: str) -> None:
    kwargs = dict(num_inference_steps=1, num_images_per_prompt=2, output_type=output_type)
    output = painter(DESCRIPTIONS, **kwargs)
    want = Counts(inferences=4, images=4, source=DIFFUSERS)
    assert infer(output) == want
    assert infer(output, fn=painter, args=(DESCRIPTIONS,), kwargs=kwargs) == want
    plain = painter(DESCRIPTIONS, **kwargs, return_dict=False)
    assert isinstance(plain, tuple)
    assert infer(plain, fn=painter, args=(DESCRIPTIONS,), kwargs=kwargs) == want


@pytest.mark.parametrize("output_type", ["np", "pil", "pt"])
def test_a_video_is_one_inference_and_its_frames_are_images(
    animator: Any, output_type: str
) -> None:
    kwargs = dict(num_inference_steps=1, num_frames=3, output_type=output_type)
    output = animator(DESCRIPTIONS, **kwargs)
    want = Counts(inferences=2, images=6, source=DIFFUSERS)
    assert infer(output, fn=animator, args=(DESCRIPTIONS,), kwargs=kwargs) == want
    plain = animator(DESCRIPTIONS, **kwargs, return_dict=False)
    assert infer(plain, fn=animator, args=(DESCRIPTIONS,), kwargs=kwargs) == want


@pytest.mark.parametrize("output_type", ["pt", "latent"])
def test_a_video_tensor_of_unknown_layout_counts_no_frames(animator: Any, output_type: str) -> None:
    output = animator(DESCRIPTIONS, num_inference_steps=1, num_frames=3, output_type=output_type)
    counts = infer(output)  # without the call, 'pt' frames and latents look alike
    assert (counts.inferences, counts.images) == (2, None)
    assert "output_type" in counts.notes[0]
    if output_type == "latent":
        kwargs = dict(num_inference_steps=1, num_frames=3, output_type=output_type)
        assert infer(output, fn=animator, args=(DESCRIPTIONS,), kwargs=kwargs).images is None
