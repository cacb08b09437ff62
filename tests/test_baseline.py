"""Unit tests for pytest_energy.baseline: the TOML file, its validation, merges and locked,
atomic updates."""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
import time
from pathlib import Path

import filelock
import pytest
import tomllib
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_energy.baseline import (
    DEFAULT_HISTORY,
    SCHEMA_VERSION,
    Baseline,
    Update,
    dumps,
    load,
    parse,
    replace_all,
    update,
)
from pytest_energy.devicelock import write_holder
from pytest_energy.errors import BaselineError
from pytest_energy.record import Provenance, Record, RunSummary, Work

HW = "NVIDIA H100 80GB HBM3 x1"
HW2 = "Intel Xeon 8480+ (RAPL)"
LOCK_S = 30.0


def entry(
    *samples: float,
    nodeid: str = "t",
    hw: str = HW,
    meter: str = "nvml",
    estimated: bool = False,
    inferences: int = 64,
    tokens: int | None = None,
    images: int | None = None,
    runs: tuple[RunSummary, ...] = (),
    version: str = "0.1.0",
) -> Record:
    return Record(
        nodeid=nodeid,
        provenance=Provenance(meter=meter, hardware=hw, estimated=estimated),
        samples=samples or (0.01, 0.012, 0.011),
        work=Work(inferences, tokens, images),
        runs=runs,
        version=version,
    )


def baseline_of(*records: Record) -> Baseline:
    entries: dict[str, dict[str, Record]] = {}
    for record in records:
        entries.setdefault(record.hardware, {})[record.nodeid] = record
    return Baseline(entries)


def sample_baseline() -> Baseline:
    return baseline_of(
        entry(0.0121, 0.0123, 0.0119, nodeid="tests/test_llm.py::test_generate[bs=8]", tokens=512),
        entry(0.5, nodeid="tests/test_llm.py::test_embed", inferences=1),
        entry(1.5, 1.25, nodeid="tests/test_llm.py::test_embed", hw=HW2, meter="rapl"),
    )


def append(record: Record) -> dict[tuple[str, str], Update]:
    """An update that appends ``record``'s run to the stored history."""
    return {(record.hardware, record.nodeid): Update(record)}


def save(path: Path, baseline: Baseline) -> None:
    replace_all(path, baseline, lock_timeout_s=LOCK_S)


def write(
    path: Path, updates: dict[tuple[str, str], Update], history: int = DEFAULT_HISTORY
) -> None:
    update(path, updates, history=history, lock_timeout_s=LOCK_S)


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def run(kwh: float, date: str = "2026-12-01", windows: int = 3, spread: float = 1.5) -> RunSummary:
    return RunSummary(kwh_per_1000=kwh, windows=windows, spread_pct=spread, date=date)


# -- round trip -------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    save(path, sample_baseline())
    assert load(path) == sample_baseline()


SCHEMA_3_ENTRY = """\
[hardware."NVIDIA H100 80GB HBM3 x1"."tests/test_llm.py::test_generate[bs=8]"]
kwh_per_1000 = 0.0123
samples = [0.0121, 0.0123, 0.0124]
meter = "nvml"
estimated = false
deterministic = false
inferences = 64
tokens = 512
images = 4
pytest_energy_version = "0.3.0"
runs = [
    ["2026-11-30", 0.0125, 10, 1.1],
    ["2026-12-01", 0.0123, 3, 1.2],
]
"""


def test_the_layout_is_exactly_what_is_written() -> None:
    record = entry(
        0.0121,
        0.0123,
        0.0124,
        nodeid="tests/test_llm.py::test_generate[bs=8]",
        tokens=512,
        images=4,
        runs=(run(0.0125, "2026-11-30", 10, 1.1), run(0.0123, "2026-12-01", 3, 1.2)),
        version="0.3.0",
    )
    text = dumps(baseline_of(record))
    assert text.startswith("# pytest-energy baseline")
    assert '\nschema_version = 3\nunit = "kWh/1000 inferences"\n' in text
    assert "# runs: one line per recorded run, oldest first: [date (UTC)" in text
    assert text.endswith("\n" + SCHEMA_3_ENTRY)
    assert parse(text) == baseline_of(record)
    # what any TOML reader sees: one array per run, newest last
    table = tomllib.loads(text)["hardware"][HW]["tests/test_llm.py::test_generate[bs=8]"]
    assert table["runs"][-1] == ["2026-12-01", 0.0123, 3, 1.2]
    assert table["images"] == 4


def test_a_new_field_reaches_the_file_and_back(tmp_path: Path) -> None:
    """``images`` (0.2 kept ``tokens`` but dropped ``images``) and the roofline's engine
    and target travel through the baseline like every stored field."""
    record = Record(
        nodeid="t",
        provenance=Provenance(
            meter="roofline",
            hardware="NVIDIA H100 SXM (roofline v3, eager)",
            estimated=True,
            deterministic=True,
            engine="eager",
            target="H100-SXM",
        ),
        samples=(0.5,),
        work=Work(4, None, 4),
    )
    path = tmp_path / "b.toml"
    save(path, baseline_of(record))
    got = load(path).get(record.hardware, "t")
    assert got == record
    assert got is not None and got.images == 4 and got.provenance.engine == "eager"


def test_kwh_per_1000_is_recomputed_on_load() -> None:
    text = dumps(baseline_of(entry(0.5, 0.25, 1.0))).replace(
        "kwh_per_1000 = 0.5", "kwh_per_1000 = 9"
    )
    got = parse(text).get(HW, "t")
    assert got is not None and got.kwh_per_1000 == 0.5


def test_output_is_sorted_and_independent_of_insertion_order() -> None:
    a = entry(1.0, nodeid="a")
    b = entry(2.0, nodeid="b")
    c = entry(3.0, nodeid="c", hw=HW2)
    one = dumps(Baseline({HW2: {"c": c}, HW: {"b": b, "a": a}}))
    two = dumps(Baseline({HW: {"a": a, "b": b}, HW2: {"c": c}}))
    assert one == two
    # hardware sorted ("Intel ..." before "NVIDIA ..."), then tests
    assert one.index(".c]") < one.index(".a]") < one.index(".b]")


@pytest.mark.parametrize(
    "nodeid",
    [
        'tests/t.py::test_x[a"b]',
        "tests/t.py::test_x[back\\slash]",
        "tests/t.py::test_x[tab\there]",
        "tests/t.py::test_x[new\nline]",
        "tests/t.py::test_x[café-µs→]",
        "tests/t.py::test_x[\x7f\x00]",
    ],
)
def test_awkward_node_ids_round_trip(tmp_path: Path, nodeid: str) -> None:
    path = tmp_path / "b.toml"
    save(path, baseline_of(entry(1.0, nodeid=nodeid)))
    assert load(path).get(HW, nodeid) == entry(1.0, nodeid=nodeid)


def test_empty_baseline_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, Baseline())
    assert load(path) == Baseline()


def test_missing_file_is_empty_baseline(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.toml") == Baseline()
    assert files_in(tmp_path) == []


_samples = st.lists(
    st.floats(min_value=0.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=6
).map(tuple)
_run = st.builds(
    RunSummary,
    kwh_per_1000=st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
    windows=st.integers(1, 2**40),
    spread_pct=st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
    date=st.sampled_from(["", "2026-12-01", "1999-02-28", "2028-02-29", "0001-01-01"]),
)
_name = st.text(min_size=1, max_size=20).filter(lambda s: s < "\ud800" or True)
_key = st.text(min_size=1, max_size=20)


@st.composite
def _records(draw: st.DrawFn) -> Baseline:
    records = []
    for hw in draw(st.lists(_key, max_size=3, unique=True)):
        for nodeid in draw(st.lists(_key, min_size=1, max_size=3, unique=True)):
            records.append(
                Record(
                    nodeid=nodeid,
                    provenance=Provenance(
                        meter=draw(st.text(min_size=1, max_size=10)),
                        hardware=hw,
                        estimated=draw(st.booleans()),
                        deterministic=draw(st.booleans()),
                        engine=draw(st.none() | st.sampled_from(["eager", "compiled"])),
                    ),
                    samples=draw(_samples),
                    work=Work(
                        draw(st.integers(1, 2**40)),
                        draw(st.none() | st.integers(1, 2**40)),
                        draw(st.none() | st.integers(1, 2**40)),
                    ),
                    runs=tuple(draw(st.lists(_run, min_size=1, max_size=4))),
                    version=draw(st.text(max_size=8)),
                )
            )
    return baseline_of(*records)


def _encodable(baseline: Baseline) -> bool:
    return dumps(baseline).encode("utf-8", "surrogatepass") == dumps(baseline).encode(
        "utf-8", "replace"
    )


@settings(max_examples=80, deadline=None)
@given(_records())
def test_dumps_parse_round_trip_is_exact(original: Baseline) -> None:
    text = dumps(original)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are refused by the writer (tested below)
    parsed = parse(text)
    assert parsed == original
    for hw, tests in original.entries.items():
        for nodeid, want in tests.items():
            got = parsed.get(hw, nodeid)
            assert got is not None
            assert [x.hex() for x in got.samples] == [float(x).hex() for x in want.samples]
    assert dumps(parsed) == text
    # the writer's text is what any TOML reader reads: the same library checks it
    assert set(tomllib.loads(text).get("hardware", {})) == set(original.entries)


# -- merging ------------------------------------------------------------------------------


def test_merged_keeps_other_entries() -> None:
    base = sample_baseline()
    new = entry(9.0, nodeid="tests/new.py::test_y")
    merged = base.merged(append(new), history=5)
    assert merged.get(HW, "tests/new.py::test_y") == new
    for hw, tests in base.entries.items():
        for nodeid, old in tests.items():
            assert merged.get(hw, nodeid) == old
    assert len(merged) == len(base) + 1


def test_append_keeps_at_most_history_runs_newest_last() -> None:
    baseline = Baseline()
    for day in range(1, 8):
        new = entry(float(day), runs=(run(float(day), f"2026-12-0{day}"),))
        baseline = baseline.merged(append(new), history=3)
        got = baseline.get(HW, "t")
        assert got is not None
        assert [r.date for r in got.runs] == [
            f"2026-12-0{d}" for d in range(max(1, day - 2), day + 1)
        ]
        assert got.samples == (float(day),)  # samples are the latest run's


def test_a_three_run_history_merged_with_one_more_run_has_four_dated_runs() -> None:
    history = tuple(run(1.0 + d / 100, f"2026-11-2{d}") for d in range(3))
    old = baseline_of(entry(1.02, runs=history))
    new = entry(1.03, 1.04, runs=(run(1.035, "2026-12-01", windows=2),))
    got = old.merged(append(new), history=10).get(HW, "t")
    assert got is not None
    assert [r.date for r in got.runs] == ["2026-11-20", "2026-11-21", "2026-11-22", "2026-12-01"]
    assert got.samples == (1.03, 1.04)


def test_the_record_of_the_run_that_wrote_an_entry_changes_nothing() -> None:
    """``merge`` of a run's report into the baseline that run wrote is a no-op; an update
    of the plugin appends every run, identical ones too (a deterministic meter's)."""
    this_run = run(1.0, "2026-12-01", windows=2, spread=0.0)
    written = baseline_of(entry(1.0, 1.0, runs=(run(0.9, "2026-11-30"), this_run)))
    report_record = entry(1.0, 1.0, runs=(this_run,))
    known = {(HW, "t"): Update(report_record, known_run=True)}
    assert written.merged(known, history=5) == written
    again = written.merged(append(report_record), history=5).get(HW, "t")
    assert again is not None and again.runs[-2:] == (this_run, this_run)


def test_replace_history_starts_a_new_level() -> None:
    old = baseline_of(entry(1.0, runs=(run(1.0, "2026-11-01"), run(1.1, "2026-11-02"))))
    new = entry(2.0, 2.1, inferences=8, runs=(run(2.0, "2026-12-01"),))
    merged = old.merged({(HW, "t"): Update(new, replace_history=True)}, history=5)
    assert merged.get(HW, "t") == new
    appended = old.merged(append(new), history=5).get(HW, "t")
    assert appended is not None
    assert [r.kwh_per_1000 for r in appended.runs] == [1.0, 1.1, 2.0]
    assert appended.inferences == 8 and appended.samples == (2.0, 2.1)


@pytest.mark.parametrize(
    "change", [{"meter": "rapl"}, {"estimated": True}], ids=["other-meter", "estimated"]
)
def test_append_to_an_incomparable_entry_replaces_it(change: dict[str, object]) -> None:
    old = baseline_of(entry(1.0, runs=(run(1.0, "2026-11-01"), run(1.1, "2026-11-02"))))
    new = entry(2.0, runs=(run(2.0),), **change)  # type: ignore[arg-type]
    got = old.merged(append(new), history=5).get(HW, "t")
    assert got == new
    assert got is not None and len(got.runs) == 1


@pytest.mark.parametrize("history", [0, -1, True, 2.5])
def test_history_must_be_a_positive_whole_number(history: object) -> None:
    with pytest.raises(ValueError, match="history"):
        Baseline().merged(append(entry(1.0)), history=history)  # type: ignore[arg-type]


def test_a_new_run_is_stored_rounded() -> None:
    unrounded = RunSummary(0.012345678901, 10, 2.459670025013161, "2026-12-01")
    got = Baseline().merged(append(entry(1.0, runs=(unrounded,))), history=5).get(HW, "t")
    assert got is not None
    assert got.runs == (RunSummary(0.0123457, 10, 2.46, "2026-12-01"),)


def test_appending_a_run_changes_only_its_own_lines(tmp_path: Path) -> None:
    """A full history: the new run's line is added, the oldest run's line drops, and the
    entry's samples and median lines change; nothing else in the file moves."""
    import difflib

    path = tmp_path / "energy-baseline.toml"
    others = [entry(0.1 * i, nodeid=f"tests/t.py::test_{i}") for i in range(1, 5)]
    history = tuple(run(1.0 + d / 100, f"2026-11-2{d}") for d in range(5))
    save(path, baseline_of(*others, entry(0.5, 0.25, nodeid="tests/t.py::test_x", runs=history)))
    before = path.read_text(encoding="utf-8").splitlines()
    new = entry(1.2, 1.3, 1.1, nodeid="tests/t.py::test_x", runs=(run(1.2, "2026-12-01"),))
    write(path, append(new), history=5)
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
            '-    ["2026-11-20", 1.0, 3, 1.5],',
            '+    ["2026-12-01", 1.2, 3, 1.5],',
        ]
    )


# -- updates ----------------------------------------------------------------------------


def test_update_keeps_entries_of_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, baseline_of(entry(1.0, nodeid="theirs")))
    write(path, append(entry(2.0, nodeid="ours")))
    got = load(path)
    assert got.get(HW, "theirs") == entry(1.0, nodeid="theirs")
    assert got.get(HW, "ours") == entry(2.0, nodeid="ours")


def test_update_creates_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    write(path, append(entry(1.0)))
    assert load(path) == baseline_of(entry(1.0))


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
def test_update_refuses_invalid_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("schema_version = 1\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(BaselineError, match="bogus"):
        write(path, append(entry(1.0)))
    assert path.read_text(encoding="utf-8") == "schema_version = 1\nbogus = 1\n"


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, sample_baseline())
    save(path, baseline_of(entry(1.0)))  # over an existing file too
    assert files_in(tmp_path) == ["b.toml", "b.toml.lock"]
    assert load(path) == baseline_of(entry(1.0))


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
def test_save_into_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "does" / "not" / "exist" / "b.toml"
    with pytest.raises(BaselineError) as excinfo:
        write(path, append(entry(1.0)))
    message = str(excinfo.value)
    assert str(path) in message
    assert "cannot be written" in message and "--energy-baseline" in message
    assert not (tmp_path / "does").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_save_keeps_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    save(path, Baseline())
    path.chmod(0o640)
    save(path, sample_baseline())
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_new_file_gets_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    old = os.umask(0o022)
    try:
        save(path, sample_baseline())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_replace_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.toml"
    save(path, baseline_of(entry(1.0, nodeid="old")))
    before = path.read_bytes()
    calls: list[str] = []

    def failing_replace(src: str, dst: object) -> None:
        calls.append(str(src))
        assert Path(src).exists()  # the complete temp file was written before the rename
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BaselineError) as excinfo:
        save(path, sample_baseline())
    monkeypatch.undo()
    assert "No space left on device" in str(excinfo.value)
    assert len(calls) == 1
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["b.toml", "b.toml.lock"]


def test_an_interrupted_save_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.toml"
    save(path, baseline_of(entry(1.0, nodeid="old")))
    before = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(path, sample_baseline())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["b.toml", "b.toml.lock"]


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
    write(path, append(entry(1.0)))
    assert files_in(tmp_path) == sorted([*others, "energy-*.toml", "energy-*.toml.lock"])


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        (entry(float("inf")), "negative, NaN or infinite: inf"),
        (entry(float("nan"), 1.0), "negative, NaN or infinite: nan"),
        (entry(-1.0), "negative, NaN or infinite: -1.0"),
        (entry(1.0, runs=(run(1.0, windows=0),)), "windows = 0"),
        (entry(1.0, runs=(run(1.0, date="1 Dec"),)), "date = '1 Dec'"),
        (entry(1.0, runs=(run(1.0, date="0000-01-01"),)), "date = '0000-01-01'"),
    ],
    ids=["inf-sample", "nan-sample", "negative", "zero-windows", "bad-date", "year-0"],
)
def test_update_refuses_to_write_what_would_not_read_back(
    tmp_path: Path, bad: Record, needle: str
) -> None:
    path = tmp_path / "energy-baseline.toml"
    save(path, baseline_of(entry(1.0, nodeid="keep")))
    before = path.read_bytes()
    with pytest.raises(BaselineError) as excinfo:
        write(path, append(bad))
    message = str(excinfo.value)
    assert message.startswith(
        f"energy baseline {path}: was not written: the new content would not read back"
    )
    assert needle in message
    assert "The old file is left unchanged." in message
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["energy-baseline.toml", "energy-baseline.toml.lock"]


def test_lone_surrogate_in_a_test_id_is_a_baseline_error(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    with pytest.raises(BaselineError, match="is not valid Unicode"):
        write(path, append(entry(1.0, nodeid="tests/t.py::test_x[\udc80]")))
    assert not path.exists()


# -- the lock -------------------------------------------------------------------------------


def _held(path: Path) -> filelock.FileLock:
    lock = filelock.FileLock(str(path) + ".lock")
    lock.acquire()
    return lock


def test_a_held_lock_is_announced_then_gives_up_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    save(path, baseline_of(entry(1.0, nodeid="keep")))
    before = path.read_bytes()
    lock = _held(path)
    told: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(BaselineError) as excinfo:
            update(
                path,
                append(entry(2.0)),
                history=5,
                lock_timeout_s=1.5,
                on_wait=told.append,
            )
        waited = time.monotonic() - started
    finally:
        lock.release()
    message = str(excinfo.value)
    assert message.startswith(f"energy baseline {path}: was not updated: gave up after")
    assert "--energy-lock-timeout" in message and "run the update again" in message
    assert waited >= 1.5
    assert len(told) == 1 and "waiting for the baseline lock" in told[0]
    assert path.read_bytes() == before


def test_the_notice_names_the_holder_after_a_second(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    holder = filelock.FileLock(str(path) + ".lock", thread_local=False, on_acquired=write_holder)
    holder.acquire()
    told: list[str] = []
    releaser = threading.Timer(1.3, holder.release)
    releaser.start()
    try:
        update(path, append(entry(2.0)), history=5, lock_timeout_s=30, on_wait=told.append)
    finally:
        releaser.join()
    assert len(told) == 1
    assert f"held by PID {os.getpid()}" in told[0]
    assert load(path).get(HW, "t") == entry(2.0)


def test_read_only_lock_file_gets_lock_file_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a non-root user sees when ``<baseline>.lock`` is read-only (root cannot be
    refused, so the refusal is simulated at the lock library's public ``acquire``)."""
    path = tmp_path / "energy-baseline.toml"
    lock = tmp_path / "energy-baseline.toml.lock"
    lock.write_bytes(b"")
    lock.chmod(0o444)

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(lock))

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    with pytest.raises(BaselineError) as excinfo:
        write(path, append(entry(1.0)))
    message = str(excinfo.value)
    assert f"the lock file {lock} is read-only" in message
    assert "Remove the lock file" in message and "make it writable" in message
    assert not path.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_update_writes_through_a_symlink_and_locks_the_target(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "real-baseline.toml"
    save(target, baseline_of(entry(1.0, nodeid="old")))
    project = tmp_path / "project"
    project.mkdir()
    link = project / "energy-baseline.toml"
    link.symlink_to(Path("..") / "shared" / "real-baseline.toml")
    write(link, append(entry(2.0, nodeid="new")))
    assert link.is_symlink()
    assert load(target).get(HW, "new") == entry(2.0, nodeid="new")
    assert load(target).get(HW, "old") == entry(1.0, nodeid="old")
    assert (shared / "real-baseline.toml.lock").exists()
    assert files_in(project) == ["energy-baseline.toml"]  # no lock, no temp beside the link


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_save_through_a_dangling_symlink_creates_the_target(tmp_path: Path) -> None:
    link = tmp_path / "energy-baseline.toml"
    link.symlink_to("elsewhere.toml")
    assert load(link) == Baseline()
    write(link, append(entry(1.0)))
    assert link.is_symlink()
    assert load(tmp_path / "elsewhere.toml").get(HW, "t") == entry(1.0)


# -- reading: errors -------------------------------------------------------------------------

_VALID_ENTRY = (
    "kwh_per_1000 = 0.5\n"
    "samples = [0.5, 0.25]\n"
    'meter = "nvml"\n'
    "estimated = false\n"
    "inferences = 4\n"
    'pytest_energy_version = "0.1.0"\n'
    'runs = [["2026-12-01", 0.375, 2, 49.4]]\n'
)


def _doc(entry_body: str = _VALID_ENTRY, head: str = "schema_version = 3\n") -> str:
    return f'{head}\n[hardware."GPU"."tests/t.py::test_x"]\n{entry_body}'


def _replace(old: str, new: str) -> str:
    assert old in _VALID_ENTRY
    return _doc(_VALID_ENTRY.replace(old, new))


_RESTORE_HINT = "--energy-update-baseline"
_RUN = '"2026-12-01", 0.5, 2, 1.0'

BAD_FILES: list[tuple[str, str, str]] = [
    # id, content, text the message must contain
    ("not-toml", "this is [not toml\n", "is not valid TOML"),
    ("truncated", _doc()[: _doc().index("0.25")], "is not valid TOML"),
    ("truncated-string", _doc()[: _doc().index("nvml") + 2], "is not valid TOML"),
    ("schema-missing", _doc(head=""), "has no valid schema_version"),
    ("schema-zero", _doc(head="schema_version = 0\n"), "from 1; got 0)"),
    ("schema-string", _doc(head='schema_version = "1"\n'), "has no valid schema_version"),
    ("schema-bool", _doc(head="schema_version = true\n"), "has no valid schema_version"),
    ("schema-float", _doc(head="schema_version = 1.0\n"), "has no valid schema_version"),
    ("unknown-top-level", "schema_version = 3\nversion = 2\n", "unknown top-level key(s) version"),
    ("unit-top-level", 'schema_version = 3\nunit = "J"\n', "has unit 'J'"),
    ("hardware-not-table", 'schema_version = 3\nhardware = "GPU"\n', "'hardware' key that is not"),
    ("hw-not-table", "schema_version = 3\n[hardware]\nGPU = 3\n", "is not a table of tests"),
    (
        "entry-not-table",
        'schema_version = 3\n[hardware."GPU"]\n"tests/t.py::test_x" = [1, 2]\n',
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
    ("kwh-bad", _replace("kwh_per_1000 = 0.5", "kwh_per_1000 = -1"), "has kwh_per_1000 = -1"),
    ("estimated-string", _replace("false", '"false"'), "needs estimated = true or false"),
    ("estimated-missing", _replace("estimated = false\n", ""), "needs estimated = true or false"),
    ("deterministic-int", _doc(_VALID_ENTRY + "deterministic = 1\n"), "needs deterministic ="),
    ("unknown-entry-key", _doc(_VALID_ENTRY + "joules = 3\n"), "unknown key(s) joules"),
    ("per-entry-unit", _doc(_VALID_ENTRY + 'unit = "J"\n'), "unknown key(s) unit"),
    ("meter-empty", _replace('meter = "nvml"', 'meter = ""'), "needs a meter"),
    ("meter-missing", _replace('meter = "nvml"\n', ""), "needs a meter"),
    ("inferences-zero", _replace("inferences = 4", "inferences = 0"), "has inferences = 0"),
    ("inferences-bool", _replace("inferences = 4", "inferences = true"), "has inferences = True"),
    ("tokens-string", _doc(_VALID_ENTRY + 'tokens = "10"\n'), "has tokens = '10'"),
    ("images-negative", _doc(_VALID_ENTRY + "images = -1\n"), "has images = -1"),
    (
        "version-not-string",
        _replace('pytest_energy_version = "0.1.0"', "pytest_energy_version = 1"),
        "pytest_energy_version",
    ),
    ("runs-missing", _replace('runs = [["2026-12-01", 0.375, 2, 49.4]]\n', ""), "needs a runs"),
    ("runs-empty", _replace('[["2026-12-01", 0.375, 2, 49.4]]', "[]"), "non-empty runs array"),
    ("run-not-a-run", _replace('[["2026-12-01", 0.375, 2, 49.4]]', "[1]"), "runs[0] that is"),
    ("run-short", _replace('[["2026-12-01", 0.375, 2, 49.4]]', "[[1, 2]]"), "has 2 values"),
    ("run-kwh-nan", _replace("0.375, 2", "nan, 2"), "kwh_per_1000 = nan"),
    ("run-kwh-string", _replace("0.375, 2", '"0.375", 2'), "kwh_per_1000 = '0.375'"),
    ("run-kwh-huge-int", _replace("0.375, 2", "1" + "0" * 400 + ", 2"), "too large for a float"),
    ("run-windows-zero", _replace("0.375, 2,", "0.375, 0,"), "windows = 0"),
    ("run-windows-float", _replace("0.375, 2,", "0.375, 2.0,"), "windows = 2.0"),
    ("run-spread-inf", _replace("49.4]", "inf]"), "spread_pct = inf"),
    ("run-date-invalid", _replace("2026-12-01", "2026-13-01"), "date = '2026-13-01'"),
    ("run-date-feb-29", _replace("2026-12-01", "2026-02-29"), "date = '2026-02-29'"),
    ("run-date-year-0", _replace("2026-12-01", "0000-12-01"), "date = '0000-12-01'"),
    ("run-date-words", _replace("2026-12-01", "yesterday"), "date = 'yesterday'"),
    ("run-date-toml-year-0", _replace('"2026-12-01"', "0000-12-01"), "is not valid TOML"),
    ("duplicate-key", _doc(_VALID_ENTRY + 'meter = "rapl"\n'), "is not valid TOML"),
    ("duplicate-table", _doc() + _doc(head=""), "is not valid TOML"),
]


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(("content", "needle"), [pytest.param(c, n, id=i) for i, c, n in BAD_FILES])
def test_invalid_file_raises_the_same_error_whatever_the_line_endings(
    tmp_path: Path, content: str, needle: str, newline: str
) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_bytes(content.replace("\n", newline).encode("utf-8"))
    before = path.read_bytes()
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert message.startswith(f"energy baseline {path}: ")
    assert needle in message
    assert _RESTORE_HINT in message and "git checkout" in message  # the fix hint
    assert path.read_bytes() == before
    assert files_in(tmp_path) == ["energy-baseline.toml"]


def test_the_error_table_is_line_ending_independent(tmp_path: Path) -> None:
    """The same bad file gives the same message (beyond the TOML parser's own position
    report) with LF and CRLF endings: there is one reader."""
    for _, content, _ in BAD_FILES:
        messages = []
        for newline in ("\n", "\r\n"):
            try:
                parse(content.replace("\n", newline))
            except BaselineError as exc:
                messages.append(str(exc).split(" (")[0])
        assert len(messages) == 2 and messages[0] == messages[1], content


def test_valid_fixture_document_parses() -> None:
    # guards the BAD_FILES table: the unmodified document must be valid
    got = parse(_doc()).get("GPU", "tests/t.py::test_x")
    assert got == entry(
        0.5, 0.25, nodeid="tests/t.py::test_x", hw="GPU", inferences=4,
        runs=(RunSummary(0.375, 2, 49.4, "2026-12-01"),),
    )  # fmt: skip


def test_entry_error_names_the_entry() -> None:
    with pytest.raises(BaselineError) as excinfo:
        parse(_replace("[0.5, 0.25]", "[]"))
    assert 'entry [hardware.GPU."tests/t.py::test_x"]' in str(excinfo.value)


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
def test_newer_schema_version_says_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_text(_doc(head=f"schema_version = {SCHEMA_VERSION + 1}\n"), encoding="utf-8")
    with pytest.raises(BaselineError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert f"schema_version {SCHEMA_VERSION + 1}" in message
    assert "pip install -U pytest-energy" in message


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
def test_path_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.mkdir()
    with pytest.raises(BaselineError, match=r"is a directory.*--energy-baseline"):
        load(path)
    assert path.is_dir() and list(path.iterdir()) == []


@pytest.mark.reliability("bad input", "baseline file, unit (load)")
def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    content = b"schema_version = 3\n# caf\xe9 \xff\xfe\n"
    path.write_bytes(content)
    with pytest.raises(BaselineError, match="is not UTF-8"):
        load(path)
    assert path.read_bytes() == content


def _within(seconds: float, call: object) -> object:
    """Run ``call`` in a thread; fail (not hang) when it blocks, unblocking a FIFO reader."""
    box: list[object] = []

    def target() -> None:
        try:
            box.append(call())  # type: ignore[operator]
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return "blocked" if thread.is_alive() else box[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("operation", ["load", "update"])
def test_fifo_at_the_baseline_path_is_refused_not_opened(tmp_path: Path, operation: str) -> None:
    path = tmp_path / "energy-baseline.toml"
    os.mkfifo(path)
    if operation == "load":
        outcome = _within(10, lambda: load(path))
    else:
        outcome = _within(10, lambda: write(path, append(entry(1.0))))
    if outcome == "blocked":  # unblock the reader so the thread ends, then fail
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail(f"{operation}() blocked opening a FIFO")
    assert isinstance(outcome, BaselineError), outcome
    assert str(outcome).startswith(
        f"energy baseline {path}: is a FIFO (named pipe), not a regular file"
    )
    assert stat.S_ISFIFO(os.stat(path).st_mode)  # left alone


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="POSIX devices")
def test_device_at_the_baseline_path_is_refused() -> None:
    with pytest.raises(BaselineError, match="is a device, not a regular file"):
        load(Path("/dev/null"))


def test_utf8_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    text = dumps(sample_baseline())
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load(path) == sample_baseline()
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))  # PowerShell
    assert load(path) == sample_baseline()


def test_git_conflict_markers_are_named_with_the_fix(tmp_path: Path) -> None:
    ours = dumps(baseline_of(entry(1.0))).splitlines(keepends=True)
    theirs = dumps(baseline_of(entry(2.0))).splitlines(keepends=True)
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
    assert "Resolve the conflict" in message and "pytest-energy merge" in message


def test_conflict_markers_in_a_string_do_not_hide_a_valid_file() -> None:
    text = _doc(_VALID_ENTRY.replace('"0.1.0"', '"""a\n=======\nb"""'))
    got = parse(text).get("GPU", "tests/t.py::test_x")
    assert got is not None and got.version == "a\n=======\nb"


# -- older schemas ---------------------------------------------------------------------------

SCHEMA_2_FILE = """\
# pytest-energy baseline: kWh per 1,000 inferences, one sample per window.
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


def test_a_schema_2_file_of_0_2_loads_and_is_upgraded_on_write(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    path.write_text(SCHEMA_2_FILE, encoding="utf-8")
    nodeid = "tests/test_llm.py::test_generate[bs=8]"
    old = load(path).get(HW, nodeid)
    assert old is not None
    assert old.runs == (run(0.0125, "2026-11-30", 10, 1.1), run(0.0123, "2026-12-01", 3, 1.2))
    assert old.tokens == 512 and old.version == "0.2.0"
    new = entry(0.013, nodeid=nodeid, tokens=512, runs=(run(0.013, "2026-12-02"),))
    write(path, append(new))
    text = path.read_text(encoding="utf-8")
    assert "schema_version = 3\n" in text and 'unit = "kWh/1000 inferences"\n' in text
    got = load(path).get(HW, nodeid)
    assert got is not None
    assert [r.date for r in got.runs] == ["2026-11-30", "2026-12-01", "2026-12-02"]


def test_schema_2_array_of_tables_and_toml_dates_read_the_same() -> None:
    nodeid = "tests/test_llm.py::test_generate[bs=8]"
    text = SCHEMA_2_FILE.split("runs = [")[0] + "".join(
        f'\n[[hardware."{HW}"."{nodeid}".runs]]\n'
        f"kwh_per_1000 = {kwh}\nwindows = {w}\nspread_pct = {s}\ndate = {d}\n"
        for kwh, w, s, d in [(0.0125, 10, 1.1, "2026-11-30"), (0.0123, 3, 1.2, '"2026-12-01"')]
    )
    assert parse(text).get(HW, nodeid) == parse(SCHEMA_2_FILE).get(HW, nodeid)


def test_a_schema_1_file_reads_as_one_run_each_and_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "energy-baseline.toml"
    body = _VALID_ENTRY.replace('runs = [["2026-12-01", 0.375, 2, 49.4]]\n', "")
    path.write_text(_doc('unit = "kWh/1000 inferences"\n' + body, "schema_version = 1\n"))
    old = load(path).get("GPU", "tests/t.py::test_x")
    assert old is not None
    assert old.runs == (RunSummary(0.375, 2, 49.4, ""),)  # MAD 0.125 / median 0.375
    new = entry(0.4, 0.3, nodeid="tests/t.py::test_x", hw="GPU", inferences=4,
                runs=(RunSummary.of((0.4, 0.3), "2026-12-01"),))  # fmt: skip
    write(path, append(new))
    assert "schema_version = 3\n" in path.read_text(encoding="utf-8")
    got = load(path).get("GPU", "tests/t.py::test_x")
    assert got is not None and got.runs == (old.runs[0], new.runs[0])


def test_schema_1_entry_with_runs_is_an_unknown_key() -> None:
    text = _doc('unit = "kWh/1000 inferences"\n' + _VALID_ENTRY, "schema_version = 1\n")
    with pytest.raises(BaselineError, match=r"unknown key\(s\) runs"):
        parse(text)
