"""Fuzzing the baseline reader: nothing but BaselineError may come out of a bad file.

The fast part of ``benchmarks/fuzz_baseline.py`` (1,000 mutated files, about a second; the
script runs 10,000 or more), a grammar-shaped Hypothesis fuzz, and one reproducer per
crash the fuzzer has found so far (each fixed, kept as a regression test).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from benchmark_scripts import load_script
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.baseline import parse
from pytest_energy.errors import BaselineError

FAST_COUNT = 1_000
FAST_SEED = 0


@pytest.fixture(scope="module")
def fuzz_module() -> ModuleType:
    return load_script("fuzz_baseline")


@pytest.fixture(scope="module")
def report(fuzz_module: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return fuzz_module.fuzz(FAST_COUNT, seed=FAST_SEED, directory=tmp_path_factory.mktemp("fuzz"))


def test_fuzz_raises_nothing_but_baseline_error(report: Any) -> None:
    assert report.count == FAST_COUNT
    assert [(c.mutations, c.error) for c in report.crashes] == []
    assert report.unclear == []  # every BaselineError names the file, the cause and a fix
    assert report.accepted_invalid == []  # what loads is finite, >= 0, re-serialisable, TOML
    assert report.modified == 0  # load() never writes


def test_fuzz_valid_files_still_load(report: Any) -> None:
    assert report.benign_failed == []
    assert report.benign_ok >= 100


def test_fuzz_reader_agrees_with_tomllib_and_across_line_ends(report: Any) -> None:
    assert report.refused_valid_toml == []
    assert report.line_ends_differ == []
    assert report.crlf_checked > FAST_COUNT // 2
    if report.tomllib_checked:  # Python 3.11+
        assert report.tomllib_checked == report.hostile


def test_fuzz_exercises_every_mutation_and_both_outcomes(
    report: Any, fuzz_module: ModuleType
) -> None:
    for name in fuzz_module.MUTATORS:
        assert report.by_mutation[name] >= 100, name
        assert report.rejected_by_mutation[name] > 0, name
    assert report.loaded > 0  # some mutations keep a valid baseline
    assert report.rejected > FAST_COUNT // 2


def test_fuzz_seeds_cover_every_schema(fuzz_module: ModuleType) -> None:
    import random

    texts = [data.decode("utf-8") for data, _ in fuzz_module.seeds(random.Random(0))]
    for version in (1, 2, 3):
        assert any(f"schema_version = {version}\n" in t for t in texts), version
    assert all(parse(t, Path("b.toml")) is not None for t in texts)


_HEAD = (
    'schema_version = 1\n[hardware."GPU"."tests/t.py::test_x"]\nmeter = "nvml"\nestimated = false\n'
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            _HEAD + "samples = [1" + "0" * 400 + "]\n",
            id="integer-sample-beyond-float-range",
        ),
        pytest.param(
            _HEAD + "samples = [1]\ninferences = " + "9" * 5000 + "\n",
            id="integer-literal-over-4300-digits",
        ),
        pytest.param(
            _HEAD + "samples = [1]\nx = " + "[" * 5000 + "]" * 5000 + "\n",
            id="deeply-nested-arrays",
        ),
    ],
)
def test_known_crash_reproducer(text: str) -> None:
    with pytest.raises(BaselineError, match=r"^energy baseline b\.toml: "):
        parse(text, Path("b.toml"))


#: Pieces of baseline files; Hypothesis strings them together into near-baselines.
_TOKENS = [
    "schema_version",
    "hardware",
    '"GPU"',
    "'GPU'",
    '"tests/t.py::test_x[1]"',
    "samples",
    "meter",
    "estimated",
    "inferences",
    "tokens",
    "unit",
    "kwh_per_1000",
    "pytest_energy_version",
    " = ",
    "=",
    " ",
    "\n",
    "[",
    "]",
    "[[",
    "]]",
    ".",
    ",",
    "{",
    "}",
    "1",
    "0",
    "-1",
    "0.5",
    "1e-3",
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    '"nvml"',
    '"kWh/1000 inferences"',
    "'lit'",
    '""',
    "# c",
    "1979-05-27",
    "2",
    '"0.1.0"',
]


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from(["", "schema_version = 1\n", "schema_version = 1\n[hardware.GPU.t]\n"]),
    tokens=st.lists(st.sampled_from(_TOKENS), max_size=40),
)
def test_token_soup_loads_or_raises_baseline_error(head: str, tokens: list[str]) -> None:
    try:
        parse(head + "".join(tokens), Path("b.toml"))
    except BaselineError as exc:
        assert str(exc).startswith("energy baseline b.toml: ")


def test_huge_integer_kwh_per_1000_is_a_baseline_error(tmp_path: Path) -> None:
    text = _HEAD + "samples = [1]\nkwh_per_1000 = 1" + "0" * 400 + "\n"
    with pytest.raises(BaselineError, match="kwh_per_1000 = a number too large for a float"):
        parse(text, tmp_path / "energy-baseline.toml")
