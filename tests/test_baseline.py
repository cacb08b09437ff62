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
