"""Counts of work read from what an inference call returned. No pytest here.

:func:`infer` looks at the value a call returned, and at the call when it is known, and
says how many inferences, tokens and images it holds. It recognises three kinds of output,
by their real types (looked up in ``sys.modules``, so nothing is imported here):

* **transformers ``generate``**: a tensor of token ids, or a ``GenerateOutput``
  (``return_dict_in_generate=True``; greedy, sampled and beam outputs alike). One returned
  sequence is one inference, so ``num_return_sequences`` multiplies the inferences and
  beams that are not returned are not counted. Tokens are the new tokens of each sequence:
  the prompt is skipped (decoder-only outputs repeat it; encoder-decoder outputs start with
  the decoder start token instead), and a sequence ends at its first EOS, which is counted,
  so the padding ``generate`` writes after it is not. Counting tokens needs the model
  (``fn`` a bound ``model.generate``) for its EOS ids, and the call's arguments for the
  prompt; the output must start with that prompt, or no token count is given.
* **transformers pipelines** (``fn`` a ``Pipeline``): the number of inputs. A ``list`` is a
  batch of ``len(list)`` inputs (a chat, a list of messages, is one input); anything else,
  a tuple included, is one input, as ``Pipeline.__call__`` treats it. No tokens.
* **diffusers pipeline outputs**: ``.images`` (a list of PIL images or arrays, or a batch
  array or tensor) gives as many inferences as images; ``.frames`` (one entry per video)
  gives one inference per video and one image per frame.

A count that cannot be read is ``None``, and :attr:`Counts.notes` says why; an output of
another kind gives no counts at all. Nothing here guesses.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .errors import MeasurementError

Origin = Literal["given", "inferred"]

GENERATE = "transformers generate"
PIPELINE = "transformers pipeline"
DIFFUSERS = "diffusers pipeline"


@dataclass(frozen=True)
class Counts:
    """What one call produced: ``None`` for a count that is not known."""

    inferences: int | None = None
    tokens: int | None = None
    images: int | None = None
    source: str = ""
    """What was recognised (:data:`GENERATE`, :data:`PIPELINE`, :data:`DIFFUSERS`), or ``""``."""
    notes: tuple[str, ...] = ()
    """Why a count is ``None``, one sentence each, for the user."""

    def __add__(self, other: Counts) -> Counts:
        """The counts of two calls together; a count unknown in either is unknown."""

        def plus(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        sources = [s for s in (self.source, other.source) if s]
        return Counts(
            inferences=plus(self.inferences, other.inferences),
            tokens=plus(self.tokens, other.tokens),
            images=plus(self.images, other.images),
            source=", ".join(dict.fromkeys(sources)),
            notes=tuple(dict.fromkeys(self.notes + other.notes)),
        )


@dataclass(frozen=True)
class Resolved:
    """The counts a window uses, and where each came from."""

    inferences: int
    tokens: int | None
    images: int | None
    origin: Mapping[str, Origin]
    """``"given"`` or ``"inferred"`` for each count that has a value."""


def resolve(
    inferred: Counts,
    *,
    inferences: int | None = None,
    tokens: int | None = None,
    images: int | None = None,
) -> Resolved:
    """Merge the counts the user gave with the inferred ones: a given count always wins.

    Raises :class:`MeasurementError` when the number of inferences is neither given nor
    inferred as a positive number.
    """
    origin: dict[str, Origin] = {}
    values: dict[str, int | None] = {}
    for name, given in (("inferences", inferences), ("tokens", tokens), ("images", images)):
        value = given if given is not None else getattr(inferred, name)
        values[name] = value
        if value is not None:
            origin[name] = "given" if given is not None else "inferred"
    count = values["inferences"]
    if count is None or (inferences is None and count < 1):
        found = (
            "it could not be read from what the function returned"
            if count is None
            else f"the {inferred.source} output it returned holds {count} results"
        )
        why = "".join(f" {note}" for note in inferred.notes)
        raise MeasurementError(
            f"the energy fixture needs the number of inferences one call does, and {found}."
            f"{why} Pass inferences=N."
        )
    return Resolved(
        inferences=count, tokens=values["tokens"], images=values["images"], origin=origin
    )


def infer(
    output: object,
    *,
    fn: object = None,
    args: Sequence[object] | None = None,
    kwargs: Mapping[str, object] | None = None,
) -> Counts:
    """The counts in ``output``, which ``fn(*args, **kwargs)`` returned.

    ``fn`` may be a bound ``model.generate``, a transformers or diffusers pipeline, or a
    ``functools.partial`` of one. ``args`` and ``kwargs`` both ``None`` means the call's
    arguments are not known (``energy.produced(output)``); pass ``()`` and ``{}`` for a
    call without arguments.
    """
    call = _Call.of(fn, args, kwargs)
    if _isinstance(output, "diffusers.utils.outputs", "BaseOutput"):
        return _diffusers(output, call)
    if _isinstance(call.fn, "diffusers.pipelines.pipeline_utils", "DiffusionPipeline"):
        if isinstance(output, tuple) and output:
            return _diffusers_value(output[0], call, video=_is_video(output[0]))
        return _unrecognised(output)
    if _isinstance(call.fn, "transformers.pipelines.base", "Pipeline"):
        return _pipeline(output, call)
    model = _generating_model(call.fn)
    if _isinstance(output, "transformers.utils.generic", "ModelOutput"):
        sequences = getattr(output, "sequences", None)
        if sequences is not None:
            return _generate(sequences, model, call)
    elif model is not None and _is_array(output):
        return _generate(output, model, call)
    return _unrecognised(output)


# ---------------------------------------------------------------------------------------
# The call
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """The callable, and its arguments by parameter name (``None``: not known)."""

    fn: Any
    arguments: Mapping[str, Any] | None
    first: str | None = None
    """The name of the callable's first positional parameter."""

    @staticmethod
    def of(fn: object, args: Sequence[object] | None, kwargs: Mapping[str, object] | None) -> _Call:
        known = args is not None or kwargs is not None
        positional = list(args or ())
        named = dict(kwargs or {})
        while isinstance(fn, functools.partial):
            positional = [*fn.args, *positional]
            named = {**fn.keywords, **named}
            fn = fn.func
        try:
            signature = inspect.signature(fn)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return _Call(fn, named if known and not positional else None)
        first = next(
            (
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ),
            None,
        )
        if not known:
            return _Call(fn, None, first)
        try:
            bound = signature.bind_partial(*positional, **named)
        except TypeError:  # the call itself would have failed
            return _Call(fn, None, first)
        bound.apply_defaults()
        arguments: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(value)
            else:
                arguments[name] = value
        return _Call(fn, arguments, first)


def _isinstance(value: object, module: str, name: str) -> bool:
    """``isinstance(value, module.name)`` if that module is loaded; it is never imported."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(value, cls)


def _is_array(value: object) -> bool:
    return _isinstance(value, "torch", "Tensor") or _isinstance(value, "numpy", "ndarray")


def _shape(value: object) -> tuple[int, ...] | None:
    if not _is_array(value):
        return None
    return tuple(int(n) for n in value.shape)  # type: ignore[attr-defined]


def _note(count: str, why: str) -> str:
    """Why ``count`` was not read, as one sentence for the user."""
    return f"{count.capitalize()} not read from the output: {why}."


def _unrecognised(output: object) -> Counts:
    kind = type(output)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return Counts(
        notes=(
            f"A {name} is not an output pytest-energy reads "
            "counts from (it reads transformers generate outputs, transformers pipelines "
            "and diffusers pipeline outputs).",
        )
    )


# ---------------------------------------------------------------------------------------
# transformers generate
# ---------------------------------------------------------------------------------------


def _generating_model(fn: object) -> Any:
    """The model whose bound ``generate`` ``fn`` is, or ``None``."""
    model = getattr(fn, "__self__", None)
    if getattr(fn, "__name__", None) != "generate" or model is None:
        return None
    if not _isinstance(model, "transformers.generation.utils", "GenerationMixin"):
        return None
    return model


def _token_rows(value: object) -> list[list[int]] | None:
    """A 2-D array of token ids as lists of ints, or ``None``."""
    rows = value.tolist() if _is_array(value) else value  # type: ignore[attr-defined]
    if not isinstance(rows, list):
        return None
    for row in rows:
        if not isinstance(row, list) or not all(type(token) is int for token in row):
            return None
    return rows


def _token_ids(value: object) -> frozenset[int] | None:
    """An ``eos_token_id`` setting (an int, a list of ints, a tensor) as a set of ids."""
    if value is None:
        return frozenset()
    if _is_array(value):
        value = value.tolist()  # type: ignore[attr-defined]
    if type(value) is int:
        return frozenset((value,))
    if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
        return frozenset(value)
    return None


def _setting(model: Any, arguments: Mapping[str, Any], name: str) -> Any:
    """A generation setting as ``generate`` resolves it: the keyword argument, then the
    ``generation_config`` argument, then the model's ``generation_config``."""
    if name in arguments:
        return arguments[name]
    for config in (arguments.get("generation_config"), getattr(model, "generation_config", None)):
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def _generate(sequences: object, model: Any, call: _Call) -> Counts:
    rows = _token_rows(sequences)
    if rows is None:
        return Counts(
            source=GENERATE,
            notes=(
                _note("inferences", "the generated sequences are not a 2-D tensor of token ids"),
            ),
        )
    counts = Counts(inferences=len(rows), source=GENERATE)
    tokens, why = _new_tokens(rows, model, call)
    if tokens is None:
        return replace(counts, notes=(_note("tokens", why),))
    return replace(counts, tokens=tokens)


def _new_tokens(rows: list[list[int]], model: Any, call: _Call) -> tuple[int | None, str]:
    """New tokens summed over the sequences, or ``None`` and the reason."""
    if model is None:
        return None, "the model is not known (call model.generate itself through the fixture)"
    arguments = call.arguments
    if arguments is None:
        return None, "the call's arguments, and with them the prompt, are not known"
    if arguments.get("custom_generate") is not None:
        return None, "a custom_generate function decides what the output holds"
    eos = _token_ids(_setting(model, arguments, "eos_token_id"))
    if eos is None:
        return None, "the eos_token_id setting is not a token id or a list of them"
    stops = arguments.get("stopping_criteria") or _setting(model, arguments, "stop_strings")
    if stops and len(rows) > 1:
        return None, (
            "stop_strings or stopping_criteria can end a sequence without an EOS token, and "
            "in a batch the padding after such an end cannot be told from tokens"
        )
    prompts, why = _prompts(model, arguments)
    if prompts is None:
        return None, why
    width = _prefix_width(rows, prompts)
    if width is None:
        return None, "the generated sequences do not start with the call's prompt"
    total = 0
    for row in rows:
        new = row[width:]
        total += next((i + 1 for i, token in enumerate(new) if token in eos), len(new))
    return total, ""


def _prompts(model: Any, arguments: Mapping[str, Any]) -> tuple[list[list[list[int]]] | None, str]:
    """The ways each output row may start, per prompt row, as ``generate`` builds them."""
    config = getattr(model, "config", None)
    main_input = getattr(model, "main_input_name", "input_ids")
    if getattr(config, "is_encoder_decoder", False):
        start = _setting(model, arguments, "decoder_start_token_id")
        if start is None:
            start = _setting(model, arguments, "bos_token_id")
        if type(start) is not int:
            return None, "the decoder start token is not one token id"
        decoder = arguments.get("decoder_input_ids")
        if decoder is None and main_input != "input_ids":
            decoder = arguments.get("input_ids")
        if decoder is None:
            return [[[start]]], ""
        decoder_rows = _token_rows(decoder)
        if decoder_rows is None:
            return None, "decoder_input_ids is not a 2-D tensor of token ids"
        # generate prepends the start token to a decoder prompt that lacks it
        return [decoder_rows, [[start, *row] for row in decoder_rows]], ""
    if main_input != "input_ids":
        return None, f"the model's main input is {main_input}, not input_ids"
    prompt = arguments.get("inputs")
    if prompt is None:
        prompt = arguments.get("input_ids")
    if prompt is not None:
        prompt_rows = _token_rows(prompt)
        if prompt_rows is None:
            return None, "the prompt is not a 2-D tensor of token ids"
        return [prompt_rows], ""
    if arguments.get("inputs_embeds") is not None:
        return [[[]]], ""  # the output holds only the new tokens
    bos = _setting(model, arguments, "bos_token_id")
    if type(bos) is not int:
        return None, "there is no prompt and no single bos_token_id to start from"
    return [[[bos]]], ""


def _prefix_width(rows: list[list[int]], candidates: list[list[list[int]]]) -> int | None:
    """The width of the prompt every output row starts with, trying each candidate.

    Output row ``r`` belongs to prompt ``r // k``: ``generate`` repeats each prompt ``k``
    times for ``num_return_sequences``.
    """
    for prompts in candidates:
        if not prompts or len(rows) % len(prompts):
            continue
        repeat = len(rows) // len(prompts)
        width = len(prompts[0])
        if all(len(p) == width for p in prompts) and all(
            row[:width] == prompts[r // repeat] and len(row) >= width for r, row in enumerate(rows)
        ):
            return width
    return None


# ---------------------------------------------------------------------------------------
# transformers pipelines
# ---------------------------------------------------------------------------------------


def _is_message(value: object) -> bool:
    """A chat message, as transformers' ``is_valid_message`` defines one."""
    return isinstance(value, dict) and "role" in value and "content" in value


def _pipeline(output: object, call: _Call) -> Counts:
    if not isinstance(output, (list, dict)):
        kind = type(output).__name__
        return Counts(
            source=PIPELINE,
            notes=(
                _note(
                    "inferences",
                    f"the pipeline returned a {kind}, as it does for a dataset or generator "
                    "input, whose results stream",
                ),
            ),
        )
    if call.arguments is not None and call.first is not None and call.first in call.arguments:
        inputs = call.arguments[call.first]
        if not isinstance(inputs, list) or (inputs and _is_message(inputs[0])):
            return Counts(inferences=1, source=PIPELINE)
        if not isinstance(output, list) or len(output) != len(inputs):
            return Counts(
                source=PIPELINE,
                notes=(
                    _note("inferences", "the pipeline returned no list of one result per input"),
                ),
            )
        return Counts(inferences=len(inputs), source=PIPELINE)
    # The inputs are not known: only an output that cannot mean anything else is counted.
    if isinstance(output, dict):
        return Counts(inferences=1, source=PIPELINE)
    if output and all(isinstance(item, list) for item in output):
        return Counts(inferences=len(output), source=PIPELINE)
    return Counts(
        source=PIPELINE,
        notes=(
            _note(
                "inferences",
                "without the call's inputs, a list of results may be one input's (top_k, "
                "several sequences) or one per input",
            ),
        ),
    )


# ---------------------------------------------------------------------------------------
# diffusers
# ---------------------------------------------------------------------------------------


def _diffusers(output: object, call: _Call) -> Counts:
    frames = getattr(output, "frames", None)
    if frames is not None:
        return _diffusers_value(frames, call, video=True)
    images = getattr(output, "images", None)
    if images is not None:
        return _diffusers_value(images, call, video=False)
    return _unrecognised(output)


def _is_image(value: object) -> bool:
    shape = _shape(value)
    return _isinstance(value, "PIL.Image", "Image") or (shape is not None and len(shape) == 3)


def _is_video(value: object) -> bool:
    shape = _shape(value)
    if shape is not None:
        return len(shape) == 5
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], (list, tuple))


def _output_type(call: _Call) -> str | None:
    value = call.arguments.get("output_type") if call.arguments is not None else None
    return value if isinstance(value, str) else None


def _diffusers_value(value: object, call: _Call, *, video: bool) -> Counts:
    """Counts from an ``images`` or ``frames`` value."""
    shape = _shape(value)
    if not video:
        if shape is not None and len(shape) == 4:
            return Counts(inferences=shape[0], images=shape[0], source=DIFFUSERS)
        if isinstance(value, (list, tuple)) and all(_is_image(item) for item in value):
            return Counts(inferences=len(value), images=len(value), source=DIFFUSERS)
        return Counts(
            source=DIFFUSERS,
            notes=(_note("images", "the value is not a list of images or a batch of them"),),
        )
    if shape is not None and len(shape) == 5:
        # np: (videos, frames, height, width, channels); pt: (videos, frames, channels, ...);
        # latent: (videos, channels, frames, ...) for most pipelines, packed for others.
        if _isinstance(value, "numpy", "ndarray") or _output_type(call) == "pt":
            return Counts(inferences=shape[0], images=shape[0] * shape[1], source=DIFFUSERS)
        return Counts(
            inferences=shape[0],
            source=DIFFUSERS,
            notes=(
                _note(
                    "images",
                    "a tensor of video frames holds latents or frames depending on "
                    "output_type, and output_type='pt' is not known for this call",
                ),
            ),
        )
    if isinstance(value, (list, tuple)) and value:
        if all(
            isinstance(clip, (list, tuple)) and all(_is_image(f) for f in clip) for clip in value
        ):
            return Counts(
                inferences=len(value), images=sum(len(clip) for clip in value), source=DIFFUSERS
            )
        if all(_is_array(clip) for clip in value):
            return Counts(
                inferences=len(value),
                source=DIFFUSERS,
                notes=(_note("images", "a list of one tensor per video holds latents"),),
            )
    return Counts(
        source=DIFFUSERS,
        notes=(_note("inferences", "the frames are not one list or array of frames per video"),),
    )
