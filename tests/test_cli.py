"""The ``pytest-energy`` command: show, compare, merge, and their exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import report_data as data

from pytest_energy import __version__
from pytest_energy import baseline as baseline_io
from pytest_energy.baseline import Baseline
from pytest_energy.cli import main
from pytest_energy.record import Record, RunSummary
from pytest_energy.report import json as json_report
from pytest_energy.report.common import RunInfo
from pytest_energy.settings import Settings
from pytest_energy.verdict import Result

A100 = "NVIDIA A100-SXM4-40GB x1"
BERT = "tests/test_bert.py::test_embed[bs=16]"
LLM = "tests/test_llm.py::test_generate[llama-3-8b]"


@pytest.fixture(autouse=True)
def _away_from_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare reads the pytest configuration of the current directory: use an empty one."""
    monkeypatch.chdir(tmp_path)


def write_report(path: Path, results: list[Result], settings: Settings | None = None) -> Path:
    info = RunInfo.create(results, settings=settings, now=data.NOW)
    path.write_text(json_report.render(results, info), encoding="utf-8")
    return path


def save(path: Path, *records: Record) -> Path:
    entries: dict[str, dict[str, Record]] = {}
    for record in records:
        entries.setdefault(record.hardware, {})[record.nodeid] = record
    baseline_io.replace_all(path, Baseline(entries), lock_timeout_s=10)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def bert(kwh: float, hardware: str = data.GPU, meter: str = "nvml", **kw: object) -> Result:
    return data.result(BERT, data.windows(kwh), hardware=hardware, meter=meter, **kw)  # type: ignore[arg-type]


# -- show ---------------------------------------------------------------------------------


def baseline_file(path: Path) -> Path:
    return save(
        path,
        data.entry(0.0020, nodeid=BERT),
        data.entry(0.40, nodeid=LLM),
        data.entry(
            0.00041,
            count=3,
            meter="codecarbon",
            estimated=True,
            nodeid="tests/test_cpu.py::test_tiny_mlp",
            hardware=data.CPU,
        ),
    )


def test_show_lists_entries_by_hardware(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = baseline_file(tmp_path / "b.toml")
    code, out, err = run(capsys, "show", path)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{path}: 3 entries on 2 hardware"
    assert lines.index(f"[{data.CPU}]") < lines.index(f"[{data.GPU}]")
    assert "test  " in lines[3] and "kWh/1000" in lines[3] and "figures" in lines[3]
    cpu = next(line for line in lines if "test_tiny_mlp" in line)
    assert cpu.split() == [
        "tests/test_cpu.py::test_tiny_mlp",
        "0.0004059",
        "3",
        "192",
        "-",
        "-",
        "codecarbon",
        "estimated",
        __version__,
        # its run history: one run, no spread, no date
        "1",
        "-",
        "0.0004059",
        "-",
    ]
    gpu = next(line for line in lines if "test_embed" in line)
    assert gpu.split()[:9] == [BERT, "0.002", "8", "512", "-", "-", "nvml", "measured", __version__]


def test_show_lists_each_entrys_recorded_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tuple(
        RunSummary(kwh, 10, 1.0, f"2026-11-{day:02d}")
        for day, kwh in ((27, 0.00200), (28, 0.00204), (30, 0.00196))
    )
    entry = data.entry(0.00196, count=10, nodeid=BERT)
    path = save(
        tmp_path / "b.toml", Record(BERT, entry.provenance, (0.00196,) * 10, entry.work, runs)
    )
    code, out, _ = run(capsys, "show", path)
    assert code == 0
    (line,) = [x for x in out.splitlines() if x.startswith(BERT)]
    assert line.split()[9:] == ["3", "2%", "0.002", "0.00204", "0.00196", "2026-11-30"]
    assert "run medians (oldest first)" in out


def test_show_defaults_to_the_baseline_in_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "show")
    assert code == 2
    assert "energy-baseline.toml does not exist" in err
    baseline_file(tmp_path / "energy-baseline.toml")
    code, out, _ = run(capsys, "show")
    assert code == 0 and out.startswith("energy-baseline.toml: 3 entries")


def test_show_rejects_a_corrupt_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.toml"
    path.write_text("schema_version = 3\n[hardware.x.y]\nsamples = [-1.0]\n", encoding="utf-8")
    code, out, err = run(capsys, "show", path)
    assert (code, out) == (2, "")
    assert err.startswith(f"pytest-energy show: energy baseline {path}: ")
    assert "Fix the file by hand" in err


def test_show_rejects_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_report(tmp_path / "r.json", [bert(0.002)])
    code, _, err = run(capsys, "show", path)
    assert code == 2
    assert "is a JSON report, not a baseline" in err and "pytest-energy merge" in err


# -- compare ------------------------------------------------------------------------------


def test_compare_reports_regression_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_report(tmp_path / "old.json", [bert(0.0020)])
    new = write_report(tmp_path / "new.json", [bert(0.0024)])
    code, out, err = run(capsys, "compare", old, new)
    assert (code, err) == (1, "")
    row = next(line for line in out.splitlines() if line.startswith(BERT))
    assert row.split()[-5:] == ["0.0024", "+20.0%", "prediction", "3%", "regressed"]
    assert out.rstrip().endswith("1 regression(s) in 1 compared test(s).")
    assert (
        "rule: the gate's, per record: tolerance 3% for measured and estimated figures, 1% for "
        "modelled ones (default); alpha 0.01 (default)"
    ) in out


def test_compare_within_tolerance_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_report(tmp_path / "old.json", [bert(0.0020)])
    new = write_report(tmp_path / "new.json", [bert(0.0024)])
    code, out, _ = run(capsys, "compare", old, new, "--tolerance", "25%")
    assert code == 0
    assert "+20.0%  prediction 25%  ok" in out
    assert out.rstrip().endswith("No regression in 1 compared test(s).")


def test_compare_improvement_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_report(tmp_path / "old.json", [bert(0.0024)])
    new = write_report(tmp_path / "new.json", [bert(0.0020)])
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 0 and "improved" in out


def test_compare_report_against_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = baseline_file(tmp_path / "b.toml")
    new = write_report(tmp_path / "new.json", [bert(0.0024), data.result(LLM, data.windows(0.40))])
    code, out, _ = run(capsys, "compare", base, new)
    assert code == 1
    assert f"OLD: {base} (baseline)" in out and f"NEW: {new} (report)" in out
    assert "missing: not in NEW" in next(
        line for line in out.splitlines() if "test_tiny_mlp" in line
    )


def test_compare_detects_kind_by_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = baseline_file(tmp_path / "baseline.txt")
    new = write_report(tmp_path / "new.out", [bert(0.0020)])
    code, out, _ = run(capsys, "compare", base, new)
    assert code == 0
    assert "(baseline)" in out and "(report)" in out


def test_compare_other_hardware_is_not_comparable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_report(tmp_path / "old.json", [bert(0.0010, hardware=A100)])
    new = write_report(tmp_path / "new.json", [bert(0.0024)])
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 0
    assert f"not comparable: OLD has it only on {A100}" in out
    assert "missing: not in NEW" in out
    assert out.rstrip().endswith("No regression in 0 compared test(s).")


def test_compare_judges_a_roofline_report_by_the_deterministic_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """+2% of a deterministic meter's figure regresses, as the gate says (0.2's CLI applied
    3% and printed "Mann-Whitney U" whatever rule decided)."""
    from pytest_energy.record import Provenance
    from pytest_energy.settings import Rule
    from pytest_energy.verdict import judge

    def modelled(kwh: float) -> Result:
        hardware = "NVIDIA H100 SXM (roofline v3, eager)"
        provenance = Provenance("roofline", hardware, estimated=True, deterministic=True)
        windows = data.windows(kwh, count=1)
        record = Record.of_windows(BERT, provenance, windows)
        return Result(record, judge(record, None, Rule(1.0, 0.01, None, True)))

    old = write_report(tmp_path / "old.json", [modelled(0.0020)])
    new = write_report(tmp_path / "new.json", [modelled(0.00204)])
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 1, out
    row = next(line for line in out.splitlines() if line.startswith(BERT))
    assert row.split()[-4:] == ["+2.0%", "deterministic", "1%", "regressed"]


def test_compare_other_meter_is_not_comparable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_report(tmp_path / "old.json", [bert(0.0010, meter="rapl")])
    new = write_report(tmp_path / "new.json", [bert(0.0024)])
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 0
    assert "not comparable: the baseline was recorded with meter 'rapl'" in out


def test_compare_new_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_report(tmp_path / "old.json", [])
    new = write_report(tmp_path / "new.json", [bert(0.0024)])
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 0 and "new: not in OLD" in out


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"oops": ', "is not valid JSON"),
        ('{"format": "something-else"}', "is not a pytest-energy report"),
        ("schema_version = 3\n[hardware\n", "is not valid TOML"),
    ],
)
def test_compare_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    good = write_report(tmp_path / "good.json", [bert(0.002)])
    bad = tmp_path / ("bad.toml" if "TOML" in expected else "bad.json")
    bad.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "compare", good, bad)
    assert (code, out) == (2, "")
    assert err.startswith("pytest-energy compare: ")
    assert expected in err


def test_compare_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_report(tmp_path / "good.json", [bert(0.002)])
    code, _, err = run(capsys, "compare", tmp_path / "nope.json", good)
    assert code == 2
    assert "nope.json does not exist" in err and "--energy-json=PATH" in err


def test_compare_bad_option_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_report(tmp_path / "good.json", [bert(0.002)])
    code, _, err = run(capsys, "compare", good, good, "--alpha", "2")
    assert code == 2
    assert "expected a probability strictly between 0 and 1" in err


# -- merge --------------------------------------------------------------------------------


def test_merge_reports_from_a_gpu_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h100 = write_report(
        tmp_path / "h100.json", [bert(0.0020), data.result(LLM, data.windows(0.4, tokens=512))]
    )
    a100 = write_report(tmp_path / "a100.json", [bert(0.0031, hardware=A100)])
    out_path = tmp_path / "energy-baseline.toml"
    code, out, err = run(capsys, "merge", out_path, h100, a100)
    assert (code, err) == (0, "")
    assert out == f"wrote 3 entries on 2 hardware to {out_path} (from 2 input(s))\n"
    merged = baseline_io.load(out_path)
    assert sorted(merged.entries) == [A100, data.GPU]
    entry = merged.get(data.GPU, LLM)
    assert entry is not None
    assert entry.samples == pytest.approx(data.result(LLM, data.windows(0.4)).record.samples)
    assert entry.tokens == 512 * 8 and entry.inferences == 64 * 8
    assert entry.meter == "nvml" and entry.estimated is False
    assert entry.version == __version__
    assert merged.get(A100, BERT) is not None


def test_merge_baselines_and_reports_identical_duplicates_are_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = baseline_file(tmp_path / "b.toml")
    same = tmp_path / "copy.toml"
    same.write_bytes(base.read_bytes())
    extra = write_report(tmp_path / "a100.json", [bert(0.0031, hardware=A100)])
    out_path = tmp_path / "merged.toml"
    code, _, _ = run(capsys, "merge", out_path, base, same, extra)
    assert code == 0
    assert len(baseline_io.load(out_path)) == 4


def test_merge_conflict_exits_1_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = write_report(tmp_path / "job1.json", [bert(0.0020)])
    two = write_report(tmp_path / "job2.json", [bert(0.0022)])
    out_path = baseline_file(tmp_path / "energy-baseline.toml")
    before = out_path.read_bytes()
    code, out, _ = run(capsys, "merge", out_path, one, two)
    assert code == 1
    assert f"1 conflict(s); {out_path} was not written" in out
    assert (
        f"conflict: {BERT} on {data.GPU}: {one} has 0.002 kWh/1000 from 8 window(s) (nvml), "
        f"{two} has 0.0022" in out
    )
    assert out_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "energy-baseline.toml",
        "energy-baseline.toml.lock",  # from writing the committed baseline above
        "job1.json",
        "job2.json",
    ]


def test_merge_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_report(tmp_path / "good.json", [bert(0.002)])
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 7\n", encoding="utf-8")
    out_path = tmp_path / "out.toml"
    code, _, err = run(capsys, "merge", out_path, good, bad)
    assert code == 2
    assert "newer than this pytest-energy understands" in err
    assert not out_path.exists()
    code, _, err = run(capsys, "merge", out_path, tmp_path / "missing.json")
    assert code == 2 and "missing.json does not exist" in err
    assert not out_path.exists()


@pytest.mark.reliability("bad input", "pytest-energy command (merge, compare, show)")
def test_merge_keeps_the_hardware_out_has_and_the_inputs_do_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = baseline_file(tmp_path / "committed.toml")  # H100 (2 tests) and a CPU (1)
    a100 = write_report(tmp_path / "a100.json", [bert(0.0031, hardware=A100)])
    h100 = write_report(tmp_path / "h100.json", [bert(0.0025)])
    code, out, err = run(capsys, "merge", committed, a100, h100)
    assert (code, err) == (0, "")
    assert "kept from" in out
    merged = baseline_io.load(committed)
    assert sorted(merged.entries) == sorted([A100, data.CPU, data.GPU])
    assert len(merged) == 4  # the CPU entry and the H100 LLM entry kept, BERT updated, A100 added
    h100_bert = merged.get(data.GPU, BERT)
    assert h100_bert is not None and h100_bert.kwh_per_1000 == pytest.approx(0.0025)
    assert merged.get(data.GPU, LLM) == baseline_io.load(baseline_file(tmp_path / "x.toml")).get(
        data.GPU, LLM
    )
    assert len(h100_bert.runs) == 2  # the report's run was appended to the entry's history


def test_merge_replace_keeps_only_the_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = baseline_file(tmp_path / "committed.toml")
    a100 = write_report(tmp_path / "a100.json", [bert(0.0031, hardware=A100)])
    code, _, _ = run(capsys, "merge", "--replace", committed, a100)
    assert code == 0
    assert sorted(baseline_io.load(committed).entries) == [A100]


@pytest.mark.reliability("bad input", "pytest-energy command (merge, compare, show)")
def test_merge_refuses_to_write_a_baseline_over_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_report(tmp_path / "a100.json", [bert(0.0031, hardware=A100)])
    second = write_report(tmp_path / "h100.json", [bert(0.0025)])
    before = first.read_bytes()
    code, out, err = run(capsys, "merge", first, second)  # OUT forgotten
    assert (code, out) == (2, "")
    assert f"OUT {first} is a JSON report, not a baseline; refusing" in err
    assert "Did you forget OUT?" in err
    assert first.read_bytes() == before
    renamed = tmp_path / "report-without-suffix"
    renamed.write_bytes(before)
    code, _, err = run(capsys, "merge", renamed, second)
    assert code == 2 and "is a JSON report" in err
    assert renamed.read_bytes() == before
    code, _, err = run(capsys, "merge", tmp_path / "new.json", second)
    assert code == 2 and not (tmp_path / "new.json").exists()


@pytest.mark.reliability("bad input", "pytest-energy command (merge, compare, show)")
def test_merge_a_baseline_with_the_report_of_the_run_that_wrote_it_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.2 reported "2 conflict(s)" here, comparing whole entries with their run dates."""
    result = data.result(BERT, data.windows(0.0024 / 7))  # samples with 17 digits
    report = write_report(tmp_path / "run.json", [result])
    baseline = tmp_path / "energy-baseline.toml"
    baseline_io.update(
        baseline,
        {(data.GPU, BERT): baseline_io.Update(result.record)},
        history=5,
        lock_timeout_s=10,
    )
    before = baseline.read_bytes()
    code, out, _ = run(capsys, "merge", baseline, baseline, report)
    assert code == 0, out
    assert baseline.read_bytes() == before
    out_path = tmp_path / "merged.toml"
    code, out, _ = run(capsys, "merge", out_path, baseline, report)
    assert code == 0, out
    assert "conflict" not in out
    assert out_path.read_bytes() == before


def test_merge_appends_a_reports_run_to_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 3-run dated history merged with one more run has 4 dated runs (0.2 replaced the
    history with the report's one undated run)."""
    history = tuple(RunSummary(0.002, 8, 1.0, f"2026-11-2{day}") for day in (7, 8, 9))
    entry = data.entry(0.002, nodeid=BERT)
    baseline = save(tmp_path / "energy-baseline.toml",
                    Record(BERT, entry.provenance, entry.samples, entry.work, history))  # fmt: skip
    report = write_report(tmp_path / "run.json", [bert(0.00201)])
    code, out, err = run(capsys, "merge", baseline, report)
    assert (code, err) == (0, ""), out
    merged = baseline_io.load(baseline).get(data.GPU, BERT)
    assert merged is not None
    dates = [r.date for r in merged.runs]
    assert dates[:3] == ["2026-11-27", "2026-11-28", "2026-11-29"] and len(dates) == 4
    assert dates[3] == "2025-01-15"  # the report's run, dated by its first window


@pytest.mark.parametrize(
    ("result", "why"),
    [
        (bert(0.0024, outcome="failed"), "failed its own assertion"),
        (data.result(BERT, data.windows(0.0024), baseline=data.entry(0.002)), "regressed"),
        (data.result(BERT, data.windows(0.002), budget_kwh=0.001), "over budget"),
    ],
)
def test_merge_records_only_what_an_update_would_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], result: Result, why: str
) -> None:
    report = write_report(tmp_path / "run.json", [result, bert(0.0031, hardware=A100)])
    out_path = tmp_path / "energy-baseline.toml"
    code, out, _ = run(capsys, "merge", out_path, report)
    assert code == 0, out
    merged = baseline_io.load(out_path)
    assert merged.get(data.GPU, BERT) is None, why
    assert merged.get(A100, BERT) is not None
    assert "not recorded: 1 test(s) that failed, went over budget or regressed" in out
    assert f"{BERT} on {data.GPU} ({report})" in out


def test_merge_waits_for_the_baseline_lock_and_gives_up_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import filelock

    baseline = baseline_file(tmp_path / "energy-baseline.toml")
    before = baseline.read_bytes()
    (tmp_path / "pytest.ini").write_text("[pytest]\nenergy_lock_timeout = 1.5s\n")
    report = write_report(tmp_path / "run.json", [bert(0.0031, hardware=A100)])
    lock = filelock.FileLock(str(baseline) + ".lock")
    lock.acquire()
    try:
        code, _, err = run(capsys, "merge", baseline, report)
    finally:
        lock.release()
    assert code == 2
    assert "pytest-energy merge: waiting for the baseline lock" in err
    assert "was not updated: gave up after" in err and "--energy-lock-timeout" in err
    assert baseline.read_bytes() == before


def test_merge_into_a_missing_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_report(tmp_path / "good.json", [bert(0.002)])
    code, _, err = run(capsys, "merge", tmp_path / "no" / "out.toml", good)
    assert code == 2
    assert "cannot be written" in err


# -- entry point --------------------------------------------------------------------------


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["merge", "out.toml"]) == 2
    assert "usage: pytest-energy" in capsys.readouterr().err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pytest-energy {__version__}"
    assert main(["--help"]) == 0
    assert (
        "Exit status: 0 ok, 1 regression or conflict found, 2 bad input." in capsys.readouterr().out
    )


def test_runs_as_a_module(tmp_path: Path) -> None:
    path = baseline_file(tmp_path / "b.toml")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_energy.cli", "show", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "3 entries on 2 hardware" in done.stdout


# -- compare: the run's tolerance, the ini's, the option's ------------------------------------


def _pair(
    tmp_path: Path, tolerance_pct: float | None, new_kwh: float = 0.0021
) -> tuple[Path, Path]:
    """OLD and NEW reports of a +5% change (or to ``new_kwh``), recording ``tolerance_pct``."""
    paths = []
    for name, kwh in (("old.json", 0.0020), ("new.json", new_kwh)):
        results = [bert(kwh)]
        info = RunInfo.create(results, settings=Settings(tolerance_pct=tolerance_pct), now=data.NOW)
        path = tmp_path / name
        path.write_text(json_report.render(results, info), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.reliability("bad input", "pytest-energy command (merge, compare, show)")
def test_compare_uses_the_tolerance_recorded_in_the_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # +12%: beyond what the prior run-to-run spread explains for a one-run OLD (the gate's
    # rule), so the tolerance decides
    old, new = _pair(tmp_path, 15.0, new_kwh=0.00224)
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 0, out
    assert f"tolerance 15% (recorded in {new})" in out
    code, out, _ = run(capsys, "compare", old, new, "--tolerance", "3")
    assert code == 1 and "tolerance 3% (--tolerance)" in out


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\nenergy_tolerance = 10%\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nenergy_tolerance = "10"\n'),
        ("tox.ini", "[pytest]\nenergy_tolerance = 10\n"),
        ("setup.cfg", "[tool:pytest]\nenergy_tolerance = 10\n"),
    ],
)
@pytest.mark.reliability("bad input", "pytest-energy command (merge, compare, show)")
def test_compare_uses_the_ini_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str
) -> None:
    old, new = _pair(tmp_path, None)
    (tmp_path / name).write_text(text, encoding="utf-8")
    code, out, _ = run(capsys, "compare", old, new)
    assert code == 0, out
    assert f"tolerance 10% (energy_tolerance in {tmp_path / name})" in out


def test_compare_reads_the_ini_given_with_ini(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _pair(tmp_path, None)
    ini = tmp_path / "conf" / "pytest.ini"
    ini.parent.mkdir()
    ini.write_text("[pytest]\nenergy_tolerance = 10\nenergy_alpha = 0.05\n", encoding="utf-8")
    code, out, _ = run(capsys, "compare", old, new, "--ini", ini)
    assert code == 0, out
    assert f"alpha 0.05 (energy_alpha in {ini})" in out
    ini.write_text("[pytest]\nenergy_tolerance = lots\n", encoding="utf-8")
    code, _, err = run(capsys, "compare", old, new, "--ini", ini)
    assert code == 2 and "energy_tolerance" in err


@pytest.mark.reliability("fault", "output pipe closed early (show piped to head)")
def test_show_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = save(
        tmp_path / "big.toml",
        *(data.entry(0.002, nodeid=f"tests/test_many.py::test_{i}") for i in range(3000)),
    )
    done = subprocess.run(
        f"{sys.executable} -m pytest_energy.cli show {path} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
        executable="/bin/bash",
    )
    assert done.stdout == f"{path}: 3000 entries on 1 hardware\n"
    assert done.stderr == ""
    status = subprocess.run(
        f"{sys.executable} -m pytest_energy.cli show {path} | head -n 1 >/dev/null;"
        " echo ${PIPESTATUS[0]}",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
        executable="/bin/bash",
    )
    assert status.stdout.strip() == "141" and "Traceback" not in status.stderr
