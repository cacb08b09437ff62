"""Unit tests for pytest_energy.baseline: the TOML file, its validation and atomic saves."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.baseline import (
    DEFAULT_HISTORY,
    SCHEMA_VERSION,
    UNIT,
    Baseline,
    BaselineEntry,
    RunSummary,
    Update,
    dumps,
    load,
    parse,
    save,
    update,
)
from pytest_energy.errors import BaselineError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]

HW = "NVIDIA H100 80GB HBM3 x1"
HW2 = "Intel Xeon 8480+ (RAPL)"


def entry(*samples: float, meter: str = "nvml", **kw: object) -> BaselineEntry:
    return BaselineEntry(
        samples=samples or (0.01, 0.012, 0.011),
        meter=meter,
        estimated=bool(kw.get("estimated", False)),
        pytest_energy_version=str(kw.get("version", "0.1.0")),
        inferences=int(kw.get("inferences", 64)),  # type: ignore[call-overload]
        tokens=kw.get("tokens"),  # type: ignore[arg-type]
    )


def sample_baseline() -> Baseline:
    return Baseline(
        {
            HW: {
                "tests/test_llm.py::test_generate[bs=8]": entry(0.0121, 0.0123, 0.0119, tokens=512),
                "tests/test_llm.py::test_embed": entry(0.5, estimated=False, inferences=1),
            },
            HW2: {"tests/test_llm.py::test_embed": entry(1.5, 1.25, meter="rapl")},
        }
    )


def append(hw: str, nodeid: str, value: BaselineEntry) -> dict[str, dict[str, Update]]:
    """An update that appends ``value``'s run to the stored history."""
    return {hw: {nodeid: Update(value, replace_history=False)}}


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- round trip -------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    original = sample_baseline()
    save(path, original)
    loaded = load(path)
    assert loaded == original
    assert loaded.entries == original.entries
    assert len(loaded) == 3
    got = loaded.get(HW, "tests/test_llm.py::test_generate[bs=8]")
    assert got is not None
    assert got.samples == (0.0121, 0.0123, 0.0119)
    assert got.tokens == 512
    assert loaded.get(HW2, "tests/test_llm.py::test_embed") == entry(1.5, 1.25, meter="rapl")
    assert loaded.get("other hw", "tests/test_llm.py::test_embed") is None
    assert loaded.hardware_for("tests/test_llm.py::test_embed") == sorted([HW, HW2])


def test_saved_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, sample_baseline())
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# pytest-energy baseline")
    data = tomllib.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    table = data["hardware"][HW]["tests/test_llm.py::test_generate[bs=8]"]
    assert table["unit"] == UNIT
    assert table["kwh_per_1000"] == 0.0121  # median, written for reviewers
    assert table["samples"] == [0.0121, 0.0123, 0.0119]
    assert table["estimated"] is False
    assert "tokens" not in data["hardware"][HW]["tests/test_llm.py::test_embed"]


def test_kwh_per_1000_is_recomputed_on_load(tmp_path: Path) -> None:
    text = dumps(Baseline({HW: {"t": entry(1.0, 2.0, 3.0)}})).replace(
        "kwh_per_1000 = 2.0", "kwh_per_1000 = 99.0"
    )
    assert "99.0" in text
    got = parse(text, tmp_path / "b.toml").get(HW, "t")
    assert got is not None
    assert got.kwh_per_1000 == 2.0


def test_output_is_sorted_and_independent_of_insertion_order() -> None:
    a = Baseline(
        {
            HW: {"b": entry(1.0), "a": entry(2.0)},
            HW2: {"z": entry(3.0), "c": entry(4.0)},
        }
    )
    b = Baseline(
        {
            HW2: {"c": entry(4.0), "z": entry(3.0)},
            HW: {"a": entry(2.0), "b": entry(1.0)},
        }
    )
    assert dumps(a) == dumps(b)
    headers = [line for line in dumps(a).splitlines() if line.startswith("[")]
    # hardware keys, then node ids, in sorted order ("Intel" < "NVIDIA")
    assert headers == [
        f'[hardware."{HW2}".c]',
        f'[hardware."{HW2}".z]',
        f'[hardware."{HW}".a]',
        f'[hardware."{HW}".b]',
    ]


def test_save_is_byte_identical_for_same_content(tmp_path: Path) -> None:
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    save(one, sample_baseline())
    reordered = Baseline(
        {
            hw: dict(reversed(list(t.items())))
            for hw, t in reversed(list(sample_baseline().entries.items()))
        }
    )
    save(two, reordered)
    assert one.read_bytes() == two.read_bytes()
    assert b"\r\n" not in one.read_bytes()


@pytest.mark.parametrize(
    "nodeid",
    [
        'tests/test_q.py::test_quotes[it\'s "quoted"]',
        "tests/test_b.py::test_brackets[[nested]]",
        "tests/test_u.py::test_unicode[ünïcødé-日本語-😀]",
        "tests/test_p.py::test_param[bs=8-fp16-model=bert.base]",
        "tests/test_p.py::TestClass::test_method[a\\b]",
        "tests/test_p.py::test_ws[tab\there]",
        "tests/test_p.py::test_dots[1.5-2.5]",
        "",
    ],
)
def test_awkward_node_ids_round_trip(tmp_path: Path, nodeid: str) -> None:
    path = tmp_path / "b.toml"
    original = Baseline({'GPU "quoted" [x1] ü': {nodeid: entry(0.25)}})
    save(path, original)
    assert load(path) == original


def test_empty_baseline_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, Baseline())
    assert load(path) == Baseline()
    assert len(load(path)) == 0


def test_missing_file_is_empty_baseline(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert load(path) == Baseline()
    assert not path.exists()


# -- merged / update --------------------------------------------------------------------


def test_merged_keeps_other_entries() -> None:
    old = sample_baseline()
    new_entry = entry(0.9, 0.8)
    merged = old.merged(
        {
            HW: {
                "tests/test_llm.py::test_embed": Update(new_entry, replace_history=True),
                "new": Update(entry(7.0), replace_history=False),
            }
        },
        history=DEFAULT_HISTORY,
    )
    assert merged.get(HW, "tests/test_llm.py::test_embed") == new_entry
    assert merged.get(HW, "new") == entry(7.0)
    assert merged.get(HW, "tests/test_llm.py::test_generate[bs=8]") == old.get(
        HW, "tests/test_llm.py::test_generate[bs=8]"
    )
    assert merged.get(HW2, "tests/test_llm.py::test_embed") == entry(1.5, 1.25, meter="rapl")
    assert len(merged) == 4
    # the original is untouched
    assert old.get(HW, "new") is None
    assert old.get(HW, "tests/test_llm.py::test_embed") == entry(0.5, inferences=1)


def test_merged_adds_new_hardware() -> None:
    merged = Baseline().merged(append("TPU v5", "t", entry(1.0)), history=DEFAULT_HISTORY)
    assert merged.entries == {"TPU v5": {"t": entry(1.0)}}


def test_update_keeps_entries_of_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, Baseline({HW2: {"existing": entry(3.0)}}))
    update(path, append(HW, "first", entry(1.0)), history=DEFAULT_HISTORY)
    # a second writer (e.g. another CI shard) that never saw "first"
    written = update(path, append(HW, "second", entry(2.0)), history=DEFAULT_HISTORY)
    final = load(path)
    assert final == written
    assert final.get(HW, "first") == entry(1.0)
    assert final.get(HW, "second") == entry(2.0)
    assert final.get(HW2, "existing") == entry(3.0)
    assert len(final) == 3


def test_update_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    update(path, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)
    assert load(path) == Baseline({HW: {"t": entry(1.0)}})


def test_update_refuses_invalid_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("schema_version = 1\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(BaselineError, match="bogus"):
        update(path, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)
    assert path.read_text(encoding="utf-8") == "schema_version = 1\nbogus = 1\n"


# -- load errors ------------------------------------------------------------------------

_VALID_ENTRY = (
    'unit = "kWh/1000 inferences"\n'
    "kwh_per_1000 = 0.5\n"
    "samples = [0.5, 0.25]\n"
    'meter = "nvml"\n'
    "estimated = false\n"
    "inferences = 4\n"
    'pytest_energy_version = "0.1.0"\n'
)


def _doc(entry_body: str = _VALID_ENTRY, head: str = "schema_version = 1\n") -> str:
    return f'{head}\n[hardware."GPU"."tests/t.py::test_x"]\n{entry_body}'


def _replace(old: str, new: str) -> str:
    assert old in _VALID_ENTRY
    return _doc(_VALID_ENTRY.replace(old, new))


_RESTORE_HINT = "--energy-update-baseline"

BAD_FILES: list[tuple[str, str, str]] = [
    # id, content, text the message must contain
    ("not-toml", "this is [not toml\n", "is not valid TOML"),
    ("truncated", _doc()[: _doc().index("0.25")], "is not valid TOML"),
    ("truncated-string", _doc()[: _doc().index("nvml") + 2], "is not valid TOML"),
    ("schema-missing", _doc(head=""), "has no integer schema_version"),
    ("schema-zero", _doc(head="schema_version = 0\n"), "unknown schema_version 0"),
    ("schema-negative", _doc(head="schema_version = -1\n"), "unknown schema_version -1"),
    ("schema-string", _doc(head='schema_version = "1"\n'), "has no integer schema_version"),
    ("schema-bool", _doc(head="schema_version = true\n"), "has no integer schema_version"),
    ("schema-float", _doc(head="schema_version = 1.0\n"), "has no integer schema_version"),
    ("unknown-top-level", "schema_version = 1\nversion = 2\n", "unknown top-level key(s) version"),
    ("hardware-not-table", 'schema_version = 1\nhardware = "GPU"\n', "'hardware' key that is not"),
    ("hw-not-table", "schema_version = 1\n[hardware]\nGPU = 3\n", "is not a table of tests"),
    (
        "entry-not-table",
        'schema_version = 1\n[hardware."GPU"]\n"tests/t.py::test_x" = [1, 2]\n',
        "is not a table",
    ),
    ("samples-empty", _replace("[0.5, 0.25]", "[]"), "non-empty list of samples"),
    ("samples-not-list", _replace("[0.5, 0.25]", "0.5"), "non-empty list of samples"),
    ("samples-missing", _replace("samples = [0.5, 0.25]\n", ""), "non-empty list of samples"),
    ("samples-string", _replace("[0.5, 0.25]", '[0.5, "0.25"]'), "not a number: '0.25'"),
    ("samples-bool", _replace("[0.5, 0.25]", "[true]"), "not a number: True"),
    ("samples-negative", _replace("[0.5, 0.25]", "[0.5, -0.25]"), "negative, NaN or infinite"),
    ("samples-nan", _replace("[0.5, 0.25]", "[0.5, nan]"), "negative, NaN or infinite: nan"),
    ("samples-inf", _replace("[0.5, 0.25]", "[inf, 0.5]"), "negative, NaN or infinite: inf"),
    ("samples-neg-inf", _replace("[0.5, 0.25]", "[-inf]"), "negative, NaN or infinite"),
    ("estimated-string", _replace("false", '"false"'), "needs estimated = true or false"),
    ("estimated-int", _replace("false", "0"), "needs estimated = true or false"),
    ("estimated-missing", _replace("estimated = false\n", ""), "needs estimated = true or false"),
    ("unknown-entry-key", _doc(_VALID_ENTRY + "joules = 3\n"), "unknown key(s) joules"),
    ("unit-wrong", _replace('unit = "kWh/1000 inferences"', 'unit = "J"'), "has unit 'J'"),
    ("meter-empty", _replace('meter = "nvml"', 'meter = ""'), "needs a meter name"),
    ("meter-missing", _replace('meter = "nvml"\n', ""), "needs a meter name"),
    ("inferences-negative", _replace("inferences = 4", "inferences = -4"), "has inferences = -4"),
    ("inferences-bool", _replace("inferences = 4", "inferences = true"), "has inferences = True"),
    ("tokens-string", _doc(_VALID_ENTRY + 'tokens = "10"\n'), "has tokens = '10'"),
    (
        "version-not-string",
        _replace('pytest_energy_version = "0.1.0"', "pytest_energy_version = 1"),
        "pytest_energy_version that is not a string",
    ),
    ("duplicate-key", _doc(_VALID_ENTRY + 'meter = "rapl"\n'), "is not valid TOML"),
    ("duplicate-table", _doc() + _doc(head=""), "is not valid TOML"),
    (
        "duplicate-hardware-table",
        "schema_version = 1\n[hardware]\n[hardware]\n",
        "is not valid TOML",
    ),
]


@pytest.mark.parametrize(("content", "needle"), [pytest.param(c, n, id=i) for i, c, n in BAD_FILES])
def test_invalid_file_raises_and_is_left_unchanged(
    tmp_path: Path, content: str, needle: str
) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_bytes(content.encode("utf-8"))
    before = path.read_bytes()
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert needle in message
    assert _RESTORE_HINT in message and "git checkout" in message  # the fix hint
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["energy-baseline.toml"]


def test_valid_fixture_document_parses(tmp_path: Path) -> None:
    # guards the BAD_FILES table: the unmodified document must be valid
    got = parse(_doc(), tmp_path / "b.toml").get("GPU", "tests/t.py::test_x")
    assert got == BaselineEntry(
        samples=(0.5, 0.25),
        meter="nvml",
        estimated=False,
        pytest_energy_version="0.1.0",
        inferences=4,
    )


def test_entry_error_names_the_entry(tmp_path: Path) -> None:
    with pytest.raises(BaselineError) as excinfo:
        parse(_replace("[0.5, 0.25]", "[]"), tmp_path / "b.toml")
    assert 'entry [hardware.GPU."tests/t.py::test_x"]' in str(excinfo.value)


def test_newer_schema_version_says_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_text(_doc(head=f"schema_version = {SCHEMA_VERSION + 1}\n"), encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert f"schema_version {SCHEMA_VERSION + 1}" in message
    assert "Upgrade pytest-energy" in message
    assert "pip install -U pytest-energy" in message
    assert path.read_bytes() == before


def test_path_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.mkdir()
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "is a directory" in message
    assert "--energy-baseline" in message
    assert path.is_dir()
    assert list(path.iterdir()) == []


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    content = b"schema_version = 1\n# caf\xe9 \xff\xfe\n"
    path.write_bytes(content)
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "is not UTF-8" in message
    assert _RESTORE_HINT in message
    assert path.read_bytes() == content


# -- save errors and atomicity ----------------------------------------------------------


def test_save_into_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "does" / "not" / "exist" / "b.toml"
    with pytest.raises(BaselineError) as excinfo:
        save(path, sample_baseline())
    message = str(excinfo.value)
    assert str(path) in message
    assert "cannot be written" in message
    assert "--energy-baseline" in message
    assert not (tmp_path / "does").exists()


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, sample_baseline())
    save(path, Baseline({HW: {"t": entry(1.0)}}))  # overwrite an existing file too
    assert files_in(tmp_path) == ["b.toml"]
    assert load(path) == Baseline({HW: {"t": entry(1.0)}})


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_save_keeps_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("schema_version = 1\n", encoding="utf-8")
    path.chmod(0o640)
    save(path, sample_baseline())
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_replace_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.toml"
    save(path, Baseline({HW: {"old": entry(1.0)}}))
    before = path.read_bytes()
    calls: list[tuple[str, str]] = []

    def failing_replace(src: str, dst: object) -> None:
        calls.append((str(src), str(dst)))
        assert Path(src).exists()  # the complete temp file was written before the rename
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BaselineError) as excinfo:
        save(path, sample_baseline())
    monkeypatch.undo()
    message = str(excinfo.value)
    assert str(path) in message
    assert "No space left on device" in message
    assert len(calls) == 1
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["b.toml"]


def test_non_oserror_during_save_propagates_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.toml"
    save(path, Baseline({HW: {"old": entry(1.0)}}))
    before = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(path, sample_baseline())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["b.toml"]


# -- property: dumps -> parse is exact --------------------------------------------------

_text = st.text(min_size=0, max_size=20)
_entry_strategy = st.builds(
    BaselineEntry,
    samples=st.lists(
        st.floats(min_value=0.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=6
    ).map(tuple),
    meter=st.text(min_size=1, max_size=10),
    estimated=st.booleans(),
    pytest_energy_version=_text,
    inferences=st.integers(0, 2**40),
    tokens=st.none() | st.integers(0, 2**40),
)
_baseline_strategy = st.dictionaries(
    _text, st.dictionaries(_text, _entry_strategy, min_size=1, max_size=3), max_size=3
).map(Baseline)


@settings(max_examples=60, deadline=None)
@given(_baseline_strategy)
def test_dumps_parse_round_trip(original: Baseline) -> None:
    text = dumps(original)
    parsed = parse(text, Path("energy-baseline.toml"))
    assert parsed == original
    for hw, tests in original.entries.items():
        for nodeid, want in tests.items():
            got = parsed.get(hw, nodeid)
            assert got is not None
            # bit-exact floats, not merely equal (0.0 vs -0.0 aside)
            assert [x.hex() for x in got.samples] == [float(x).hex() for x in want.samples]
    assert dumps(parsed) == text


def test_module_does_not_touch_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sub"
    path.mkdir()
    save(path / "b.toml", sample_baseline())
    assert files_in(tmp_path) == ["sub"]
    assert os.listdir(path) == ["b.toml"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_new_file_gets_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    old = os.umask(0o022)
    try:
        save(path, sample_baseline())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


# -- schema 2: run history ----------------------------------------------------------------------


def run(kwh: float, date: str = "2026-12-01", windows: int = 3, spread: float = 1.5) -> RunSummary:
    return RunSummary(kwh_per_1000=kwh, windows=windows, spread_pct=spread, date=date)


def with_runs(
    *runs: RunSummary, samples: tuple[float, ...] = (0.5, 0.25), **kw: object
) -> BaselineEntry:
    base = entry(*samples, **kw)
    return BaselineEntry(
        samples=base.samples,
        meter=base.meter,
        estimated=base.estimated,
        pytest_energy_version=base.pytest_energy_version,
        inferences=base.inferences,
        tokens=base.tokens,
        runs=runs,
    )


def test_run_summary_of() -> None:
    # median 1.0; absolute deviations 0.1, 0, 0.2 -> MAD 0.1; 1.4826 * 0.1 / 1.0 * 100
    got = RunSummary.of([1.1, 1.0, 0.8], "2026-12-01")
    assert got == RunSummary(1.0, 3, 14.8, "2026-12-01")
    assert RunSummary.of([0.5], "").spread_pct == 0.0
    assert RunSummary.of([0.0, 0.0], "").spread_pct == 0.0


def test_round_sample_is_six_significant_digits() -> None:
    from pytest_energy.stats import SAMPLE_DIGITS, round_sample

    assert SAMPLE_DIGITS == 6
    assert round_sample(0.0123456789) == 0.0123457
    assert round_sample(123456789.0) == 123457000.0
    assert round_sample(round_sample(1 / 3)) == round_sample(1 / 3)


def test_entry_without_runs_has_one_run_from_its_samples() -> None:
    got = entry(0.5, 0.25, 0.75)
    assert got.runs == (RunSummary.of((0.5, 0.25, 0.75), ""),)


SCHEMA_2_ENTRY = """\
schema_version = 2

[hardware."NVIDIA H100 80GB HBM3 x1"."tests/test_llm.py::test_generate[bs=8]"]
unit = "kWh/1000 inferences"
kwh_per_1000 = 0.0123
samples = [0.0121, 0.0123, 0.0124]
meter = "nvml"
estimated = false
inferences = 64
tokens = 512
pytest_energy_version = "0.2.0"
runs = [
    { kwh_per_1000 = 0.0125, windows = 10, spread_pct = 1.1, date = "2026-11-30" },
    { kwh_per_1000 = 0.0123, windows = 3, spread_pct = 1.2, date = "2026-12-01" },
]
"""


def test_schema_2_layout_is_exactly_what_is_written() -> None:
    e = BaselineEntry(
        samples=(0.0121, 0.0123, 0.0124),
        meter="nvml",
        estimated=False,
        pytest_energy_version="0.2.0",
        inferences=64,
        tokens=512,
        runs=(run(0.0125, "2026-11-30", 10, 1.1), run(0.0123, "2026-12-01", 3, 1.2)),
    )
    baseline = Baseline({HW: {"tests/test_llm.py::test_generate[bs=8]": e}})
    text = dumps(baseline)
    assert text.endswith(SCHEMA_2_ENTRY)
    assert text.startswith("# pytest-energy baseline")
    # what tomllib sees: runs is an array of tables, newest last
    table = tomllib.loads(text)["hardware"][HW]["tests/test_llm.py::test_generate[bs=8]"]
    assert table == e.to_toml()
    assert table["runs"][-1] == {
        "kwh_per_1000": 0.0123,
        "windows": 3,
        "spread_pct": 1.2,
        "date": "2026-12-01",
    }
    assert parse(text) == baseline


def test_array_of_tables_spelling_reads_the_same() -> None:
    text = SCHEMA_2_ENTRY.split("runs = [")[0] + "".join(
        f'\n[[hardware."{HW}"."tests/test_llm.py::test_generate[bs=8]".runs]]\n'
        f"kwh_per_1000 = {kwh}\nwindows = {w}\nspread_pct = {s}\ndate = {d}\n"
        for kwh, w, s, d in [(0.0125, 10, 1.1, "2026-11-30"), (0.0123, 3, 1.2, '"2026-12-01"')]
    )
    # a TOML date (unquoted) is accepted as well as a string
    got = parse(text).get(HW, "tests/test_llm.py::test_generate[bs=8]")
    assert got is not None
    assert got.runs == (run(0.0125, "2026-11-30", 10, 1.1), run(0.0123, "2026-12-01", 3, 1.2))
    assert got == parse(SCHEMA_2_ENTRY).get(HW, "tests/test_llm.py::test_generate[bs=8]")


def test_schema_1_file_reads_as_one_run_each_and_is_rewritten_as_schema_2(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_text(_doc(), encoding="utf-8")  # schema_version = 1, samples [0.5, 0.25]
    old = load(path).get("GPU", "tests/t.py::test_x")
    assert old is not None
    assert old.runs == (RunSummary(0.375, 2, 49.4, ""),)  # MAD 0.125 / median 0.375
    new_run = RunSummary.of((0.4, 0.3), "2026-12-01")
    update(
        path,
        append("GPU", "tests/t.py::test_x", with_runs(new_run, samples=(0.4, 0.3))),
        history=DEFAULT_HISTORY,
    )
    text = path.read_text(encoding="utf-8")
    assert "schema_version = 2\n" in text
    assert tomllib.loads(text)["schema_version"] == 2
    got = load(path).get("GPU", "tests/t.py::test_x")
    assert got is not None
    assert got.runs == (old.runs[0], new_run)
    assert got.samples == (0.4, 0.3)


def test_schema_1_entry_with_runs_is_an_unknown_key() -> None:
    text = _doc(
        _VALID_ENTRY + 'runs = [{ kwh_per_1000 = 1.0, windows = 1, spread_pct = 0.0, date = "" }]\n'
    )
    with pytest.raises(BaselineError, match=r"unknown key\(s\) runs"):
        parse(text)


def test_append_keeps_at_most_history_runs_newest_last() -> None:
    baseline = Baseline()
    for day in range(1, 8):
        new = with_runs(run(float(day), f"2026-12-0{day}"), samples=(float(day),))
        baseline = baseline.merged(append(HW, "t", new), history=3)
        got = baseline.get(HW, "t")
        assert got is not None
        assert [r.date for r in got.runs] == [
            f"2026-12-0{d}" for d in range(max(1, day - 2), day + 1)
        ]
        assert got.samples == (float(day),)  # samples are the latest run's


def test_replace_history_starts_a_new_level() -> None:
    old = Baseline({HW: {"t": with_runs(run(1.0, "2026-11-01"), run(1.1, "2026-11-02"))}})
    new = with_runs(run(2.0, "2026-12-01"), samples=(2.0, 2.1), inferences=8)
    merged = old.merged({HW: {"t": Update(new, replace_history=True)}}, history=5)
    assert merged.get(HW, "t") == new
    appended = old.merged(append(HW, "t", new), history=5).get(HW, "t")
    assert appended is not None
    assert [r.kwh_per_1000 for r in appended.runs] == [1.0, 1.1, 2.0]
    assert appended.inferences == 8 and appended.samples == (2.0, 2.1)


@pytest.mark.parametrize(
    "change", [{"meter": "rapl"}, {"estimated": True}], ids=["other-meter", "estimated"]
)
def test_append_to_an_incomparable_entry_replaces_it(change: dict[str, object]) -> None:
    old = Baseline({HW: {"t": with_runs(run(1.0, "2026-11-01"), run(1.1, "2026-11-02"))}})
    new = with_runs(run(2.0), samples=(2.0,), **change)
    got = old.merged(append(HW, "t", new), history=5).get(HW, "t")
    assert got == new
    assert len(got.runs) == 1


@pytest.mark.parametrize("history", [0, -1, True, 2.5])
def test_history_must_be_a_positive_whole_number(history: object) -> None:
    with pytest.raises(ValueError, match="history"):
        Baseline().merged(append(HW, "t", entry(1.0)), history=history)  # type: ignore[arg-type]


def test_appending_a_run_changes_only_its_own_lines(tmp_path: Path) -> None:
    """A full history: the new run's line is added, the oldest run's line drops, and the
    entry's samples and median lines change; nothing else in the file moves."""
    import difflib

    path = tmp_path / "energy-baseline.toml"
    others = {f"tests/t.py::test_{i}": with_runs(run(0.1 * i, "2026-11-01")) for i in range(5)}
    history = [run(1.0 + d / 100, f"2026-11-2{d}") for d in range(5)]
    save(path, Baseline({HW: {**others, "tests/t.py::test_x": with_runs(*history)}}))
    before = path.read_text(encoding="utf-8").splitlines()
    new_run = run(1.2, "2026-12-01")
    update(
        path,
        append(HW, "tests/t.py::test_x", with_runs(new_run, samples=(1.2, 1.3, 1.1))),
        history=5,
    )
    after = path.read_text(encoding="utf-8").splitlines()
    diff = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sorted(diff) == sorted(
        [
            "-kwh_per_1000 = 0.375",
            "+kwh_per_1000 = 1.2",
            "-samples = [0.5, 0.25]",
            "+samples = [1.2, 1.3, 1.1]",
            '-    { kwh_per_1000 = 1.0, windows = 3, spread_pct = 1.5, date = "2026-11-20" },',
            '+    { kwh_per_1000 = 1.2, windows = 3, spread_pct = 1.5, date = "2026-12-01" },',
        ]
    )


_RUN_OK = '{ kwh_per_1000 = 0.5, windows = 2, spread_pct = 1.0, date = "2026-12-01" }'


def _doc2(runs: str) -> str:
    body = _VALID_ENTRY + f"runs = {runs}\n"
    return _doc(body, head="schema_version = 2\n")


BAD_RUNS: list[tuple[str, str, str]] = [
    ("runs-missing", _doc(head="schema_version = 2\n"), "needs a non-empty runs array"),
    ("runs-empty", _doc2("[]"), "needs a non-empty runs array"),
    ("runs-not-array", _doc2("3"), "needs a non-empty runs array"),
    ("run-not-table", _doc2("[1]"), "runs[0] that is not a table"),
    ("run-unknown-key", _doc2(f"[{_RUN_OK[:-1]}, joules = 1 }}]"), "unknown key(s) joules"),
    (
        "run-missing-date",
        _doc2("[{ kwh_per_1000 = 0.5, windows = 2, spread_pct = 1.0 }]"),
        "lacks date",
    ),
    ("run-kwh-nan", _doc2(f"[{_RUN_OK.replace('= 0.5', '= nan')}]"), "kwh_per_1000 = nan"),
    ("run-kwh-negative", _doc2(f"[{_RUN_OK.replace('= 0.5', '= -0.5')}]"), "kwh_per_1000 = -0.5"),
    (
        "run-kwh-string",
        _doc2("[" + _RUN_OK.replace("= 0.5", '= "0.5"') + "]"),
        "kwh_per_1000 = '0.5'",
    ),
    ("run-kwh-huge-int", _doc2(f"[{_RUN_OK.replace('= 0.5', '= 1' + '0' * 400)}]"), "too large"),
    ("run-spread-inf", _doc2(f"[{_RUN_OK.replace('= 1.0', '= inf')}]"), "spread_pct = inf"),
    ("run-windows-zero", _doc2(f"[{_RUN_OK.replace('= 2,', '= 0,')}]"), "windows = 0"),
    ("run-windows-float", _doc2(f"[{_RUN_OK.replace('= 2,', '= 2.0,')}]"), "windows = 2.0"),
    ("run-windows-bool", _doc2(f"[{_RUN_OK.replace('= 2,', '= true,')}]"), "windows = True"),
    ("run-date-invalid", _doc2(f"[{_RUN_OK.replace('12-01', '13-01')}]"), "date = '2026-13-01'"),
    (
        "run-date-words",
        _doc2(f"[{_RUN_OK.replace('2026-12-01', 'yesterday')}]"),
        "date = 'yesterday'",
    ),
    (
        "run-date-int",
        _doc2(f"[{_RUN_OK.replace(chr(34) + '2026-12-01' + chr(34), '1')}]"),
        "date = 1",
    ),
    (
        "run-date-datetime",
        _doc2(f"[{_RUN_OK.replace(chr(34) + '2026-12-01' + chr(34), '2026-12-01T10:00:00')}]"),
        "date = datetime",
    ),
    ("second-run-bad", _doc2(f"[{_RUN_OK}, 7]"), "runs[1] that is not a table"),
]


@pytest.mark.parametrize(("content", "needle"), [pytest.param(c, n, id=i) for i, c, n in BAD_RUNS])
def test_invalid_run_raises_one_clear_error(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert message.startswith(f"energy baseline {path}: ")
    assert 'entry [hardware.GPU."tests/t.py::test_x"]' in message
    assert needle in message
    assert _RESTORE_HINT in message and "git checkout" in message
    assert "\n" not in message


def test_valid_run_fixture_parses() -> None:
    got = parse(_doc2(f"[{_RUN_OK}]")).get("GPU", "tests/t.py::test_x")
    assert got is not None and got.runs == (RunSummary(0.5, 2, 1.0, "2026-12-01"),)


_run_strategy = st.builds(
    RunSummary,
    kwh_per_1000=st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
    windows=st.integers(1, 2**40),
    spread_pct=st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
    date=st.sampled_from(["", "2026-12-01", "1999-02-28", "2028-02-29"]),
)


@settings(max_examples=60, deadline=None)
@given(
    _baseline_strategy,
    st.lists(_run_strategy, min_size=1, max_size=4).map(tuple),
)
def test_canonical_text_reads_the_same_as_any_toml(
    original: Baseline, runs: tuple[RunSummary, ...]
) -> None:
    """The fast reader of the canonical layout and the full TOML reader agree: a comment
    after the header makes the text non-canonical, so it goes through tomllib."""
    original = Baseline(
        {
            hw: {
                nodeid: BaselineEntry(
                    samples=e.samples,
                    meter=e.meter,
                    estimated=e.estimated,
                    pytest_energy_version=e.pytest_energy_version,
                    inferences=e.inferences,
                    tokens=e.tokens,
                    runs=runs,
                )
                for nodeid, e in tests.items()
            }
            for hw, tests in original.entries.items()
        }
    )
    text = dumps(original)
    fast = parse(text)
    slow = parse(text.replace("schema_version = 2\n", "schema_version = 2\n# slow path\n", 1))
    assert fast == slow == Baseline({hw: t for hw, t in original.entries.items() if t})
    assert tomllib.loads(text).get("hardware", {}) == {
        hw: {nodeid: e.to_toml() for nodeid, e in tests.items()}
        for hw, tests in original.entries.items()
        if tests
    }


# -- files: symlinks, odd file types, BOM, conflicts, locks, read-back --------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_update_writes_through_a_symlink_and_locks_the_target(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "real-baseline.toml"
    save(target, Baseline({HW: {"old": entry(1.0)}}))
    project = tmp_path / "project"
    project.mkdir()
    link = project / "energy-baseline.toml"
    link.symlink_to(Path("..") / "shared" / "real-baseline.toml")
    update(link, append(HW, "new", entry(2.0)), history=DEFAULT_HISTORY)
    assert link.is_symlink()
    assert load(target).get(HW, "new") == entry(2.0)
    assert load(target).get(HW, "old") == entry(1.0)
    assert (shared / "real-baseline.toml.lock").exists()
    assert files_in(project) == ["energy-baseline.toml"]  # no lock, no temp beside the link


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_save_through_a_dangling_symlink_creates_the_target(tmp_path: Path) -> None:
    link = tmp_path / "energy-baseline.toml"
    link.symlink_to("elsewhere.toml")
    assert load(link) == Baseline()
    update(link, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)
    assert link.is_symlink()
    assert load(tmp_path / "elsewhere.toml").get(HW, "t") == entry(1.0)


def test_stale_temp_cleanup_matches_the_name_exactly(tmp_path: Path) -> None:
    path = tmp_path / "energy-*.toml"
    others = [
        ".energy-gpu.toml.k3j4h5g6.tmp",  # another baseline's live temporary file
        ".energy-*.toml.x.toml.abcdefgh.tmp",
        ".energy-*.toml.short.tmp",
    ]
    for name in others:
        (tmp_path / name).write_text("in use", encoding="utf-8")
    (tmp_path / ".energy-*.toml.abcd_123.tmp").write_text("stale", encoding="utf-8")
    update(path, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)
    assert files_in(tmp_path) == sorted([*others, "energy-*.toml", "energy-*.toml.lock"])
    assert load(path).get(HW, "t") == entry(1.0)


def _within(seconds: float, call: object) -> object:
    """Run ``call`` in a thread; fail (not hang) when it blocks, unblocking a FIFO reader."""
    import threading

    box: list[object] = []

    def target() -> None:
        try:
            box.append(call())  # type: ignore[operator]
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return "blocked"
    return box[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("operation", ["load", "update"])
def test_fifo_at_the_baseline_path_is_refused_not_opened(tmp_path: Path, operation: str) -> None:
    path = tmp_path / "energy-baseline.toml"
    os.mkfifo(path)
    if operation == "load":
        outcome = _within(10, lambda: load(path))
    else:
        outcome = _within(
            10, lambda: update(path, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)
        )
    if outcome == "blocked":  # unblock the reader so the thread ends, then fail
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail(f"{operation}() blocked opening a FIFO")
    assert isinstance(outcome, BaselineError), outcome
    message = str(outcome)
    assert message.startswith(f"energy baseline {path}: is a FIFO (named pipe), not a regular file")
    assert "--energy-baseline" in message
    import stat

    assert stat.S_ISFIFO(os.stat(path).st_mode)  # left alone


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="POSIX devices")
def test_device_at_the_baseline_path_is_refused() -> None:
    with pytest.raises(BaselineError, match="is a device, not a regular file"):
        load(Path("/dev/null"))


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    text = dumps(sample_baseline())
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load(path) == sample_baseline()
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))  # PowerShell
    assert load(path) == sample_baseline()


def test_git_conflict_markers_are_named_with_the_fix(tmp_path: Path) -> None:
    ours = dumps(Baseline({HW: {"t": entry(1.0)}})).splitlines(keepends=True)
    theirs = dumps(Baseline({HW: {"t": entry(2.0)}})).splitlines(keepends=True)
    at = next(i for i, line in enumerate(ours) if line.startswith("kwh_per_1000"))
    text = "".join(
        [
            *ours[:at],
            "<<<<<<< HEAD\n",
            *ours[at : at + 2],
            "=======\n",
            *theirs[at : at + 2],
            ">>>>>>> feature/faster-model\n",
            *ours[at + 2 :],
        ]
    )
    path = tmp_path / "energy-baseline.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert message.startswith(f"energy baseline {path}: has unresolved git merge conflict markers")
    assert f"at line {at + 1}" in message
    assert "Resolve the conflict" in message
    assert "--energy-update-baseline" in message
    assert "pytest-energy merge" in message
    assert "Invalid statement" not in message


def test_conflict_markers_in_a_string_do_not_hide_a_valid_file() -> None:
    text = _doc(_VALID_ENTRY.replace('"0.1.0"', '"""a\n=======\nb"""'))
    got = parse(text).get("GPU", "tests/t.py::test_x")
    assert got is not None and got.pytest_energy_version == "a\n=======\nb"


def test_read_only_lock_file_gets_lock_file_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a non-root user sees when ``<baseline>.lock`` is read-only (root cannot be
    refused, so the refusal is simulated at the lock library's public ``acquire``)."""
    import filelock

    path = tmp_path / "energy-baseline.toml"
    lock = tmp_path / "energy-baseline.toml.lock"
    lock.write_bytes(b"")
    lock.chmod(0o444)

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(lock))

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    with pytest.raises(BaselineError) as excinfo:
        update(path, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)
    message = str(excinfo.value)
    assert f"the lock file {lock} is read-only" in message
    assert "Remove the lock file" in message and "make it writable" in message
    assert "directory writable" not in message
    assert not path.exists()


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="POSIX permissions; root ignores them"
)
def test_read_only_lock_file_for_real(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    lock = tmp_path / "energy-baseline.toml.lock"
    lock.write_bytes(b"")
    lock.chmod(0o444)
    with pytest.raises(BaselineError, match=r"is read-only.*Remove the lock file"):
        update(path, append(HW, "t", entry(1.0)), history=DEFAULT_HISTORY)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (entry(float("inf")), "negative, NaN or infinite: inf"),
        (entry(float("nan"), 1.0), "negative, NaN or infinite: nan"),
        (entry(-1.0), "negative, NaN or infinite: -1.0"),
        (entry(1.0, meter=""), "needs a meter name"),
        (with_runs(run(1.0, windows=0)), "windows = 0"),
        (with_runs(run(1.0, date="1 Dec")), "date = '1 Dec'"),
    ],
    ids=["inf-sample", "nan-sample", "negative", "empty-meter", "zero-windows", "bad-date"],
)
def test_update_refuses_to_write_what_would_not_read_back(
    tmp_path: Path, bad: BaselineEntry, needle: str
) -> None:
    path = tmp_path / "energy-baseline.toml"
    save(path, Baseline({HW: {"keep": entry(1.0)}}))
    before = path.read_bytes()
    with pytest.raises(BaselineError) as excinfo:
        update(path, append(HW, "t", bad), history=DEFAULT_HISTORY)
    message = str(excinfo.value)
    assert message.startswith(
        f"energy baseline {path}: was not written: the new content would not read back"
    )
    assert needle in message
    assert "The old file is left unchanged." in message
    assert path.read_bytes() == before
    assert load(path) == Baseline({HW: {"keep": entry(1.0)}})
    assert sorted(files_in(tmp_path)) == ["energy-baseline.toml", "energy-baseline.toml.lock"]


def test_lone_surrogate_in_a_test_id_is_a_baseline_error(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    with pytest.raises(
        BaselineError, match=r"test id 'tests/t.py::test_x\[\\udc80\]' is not valid Unicode"
    ):
        update(path, append(HW, "tests/t.py::test_x[\udc80]", entry(1.0)), history=DEFAULT_HISTORY)
    assert not path.exists()


@pytest.mark.parametrize(
    ("date", "ok"),
    [("2028-02-29", True), ("2026-02-29", False), ("2026-04-31", False), ("2026-12-31", True)],
)
def test_canonical_text_checks_the_calendar(date: str, ok: bool) -> None:
    text = SCHEMA_2_ENTRY.replace("2026-11-30", date)
    if ok:
        got = parse(text).get(HW, "tests/test_llm.py::test_generate[bs=8]")
        assert got is not None and got.runs[0].date == date
    else:
        with pytest.raises(BaselineError, match=f"has runs\\[0\\] that has date = '{date}'"):
            parse(text)


def _schema_1_text(baseline: Baseline) -> str:
    """What the schema-1 writer (tomli_w, no runs) wrote for ``baseline``."""
    import tomli_w

    document: dict[str, object] = {"schema_version": 1}
    hardware = {
        hw: {
            nodeid: {k: v for k, v in tests[nodeid].to_toml().items() if k != "runs"}
            for nodeid in sorted(tests)
        }
        for hw, tests in sorted(baseline.entries.items())
        if tests
    }
    if hardware:
        document["hardware"] = hardware
    return "# pytest-energy baseline\n# schema 1\n" + tomli_w.dumps(document)


@settings(max_examples=60, deadline=None)
@given(_baseline_strategy)
def test_schema_1_files_read_the_same_by_both_readers(original: Baseline) -> None:
    text = _schema_1_text(original)
    fast = parse(text)
    slow = parse(text.replace("schema_version = 1\n", "schema_version = 1\n# slow path\n", 1))
    assert fast == slow == Baseline({hw: t for hw, t in original.entries.items() if t})


def test_schema_1_entries_are_rewritten_as_schema_2_by_an_update(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_text(_schema_1_text(sample_baseline()), encoding="utf-8")
    assert "samples = [\n    0.0121,\n" in path.read_text(encoding="utf-8")
    assert load(path) == sample_baseline()
    update(path, append(HW, "new", entry(2.0)), history=DEFAULT_HISTORY)
    text = path.read_text(encoding="utf-8")
    assert text == dumps(load(path))
    assert "schema_version = 2\n" in text and "samples = [\n" not in text
    assert text.count("runs = [\n") == 4
    assert load(path) == Baseline(
        {**sample_baseline().entries, HW: {**sample_baseline().entries[HW], "new": entry(2.0)}}
    )


def test_a_new_run_is_stored_rounded() -> None:
    unrounded = RunSummary(0.012345678901, 10, 2.459670025013161, "2026-12-01")
    got = Baseline().merged(append(HW, "t", with_runs(unrounded)), history=5).get(HW, "t")
    assert got is not None
    assert got.runs == (RunSummary(0.0123457, 10, 2.46, "2026-12-01"),)
