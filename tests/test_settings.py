"""Unit tests for pytest_energy.settings: the pure parsers, resolve() and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_energy.errors import ConfigError
from pytest_energy.settings import (
    DEFAULT_ALPHA,
    DEFAULT_BASELINE_NAME,
    DEFAULT_PHONE_CHARGE_KWH,
    DEFAULT_TOLERANCE_PCT,
    DEFAULT_WARMUP,
    Settings,
    options,
    parse_bool,
    parse_count,
    parse_country,
    parse_duration,
    parse_float,
    parse_meter,
    parse_percent,
    parse_positive_float,
    parse_probability,
    resolve,
)


def build(raw: dict[str, str], rootdir: Path) -> Settings:
    """resolve() for raw strings keyed by option name, all relative to ``rootdir``."""
    known = {opt.name for _, opt in options()}
    assert set(raw) <= known, set(raw) - known
    return resolve(
        lambda opt: raw.get(opt.name), lambda opt: None, invocation_dir=rootdir, rootdir=rootdir
    )


def test_config_error_is_a_value_error() -> None:
    # plugin.py relies on catching ValueError from the parsers
    assert issubclass(ConfigError, ValueError)


# -- parse_percent ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5.0),
        ("5%", 5.0),
        (" 5 % ", 5.0),
        ("0", 0.0),
        ("0%", 0.0),
        ("100", 100.0),
        ("100%", 100.0),
        ("2.5", 2.5),
        ("12.5%", 12.5),
    ],
)
def test_parse_percent_accepts(text: str, expected: float) -> None:
    assert parse_percent(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "-5",
        "-5%",
        "abc",
        "200%",
        "100.01",
        "nan",
        "inf",
        "-inf",
        "nan%",
        "",
        "%",
        "5%%",
        "5 percent",
    ],
)
def test_parse_percent_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a"):
        parse_percent(text)


@pytest.mark.parametrize("text", ["-5", "abc", "200%", "nan", "inf", "7 percent"])
def test_parse_percent_error_quotes_the_input(text: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_percent(text)
    assert repr(text) in str(excinfo.value)


@pytest.mark.parametrize("text", ["nan%", "5%%", "%"])
def test_parse_percent_error_quotes_the_input_with_percent_sign(text: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_percent(text)
    assert repr(text) in str(excinfo.value)


def test_parse_percent_range_message() -> None:
    with pytest.raises(ConfigError, match="between 0 and 100"):
        parse_percent("200%")


# -- parse_duration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5", 0.5),
        ("0.5s", 0.5),
        ("500ms", 0.5),
        ("0", 0.0),
        ("0ms", 0.0),
        ("2", 2.0),
        (" 250 ms ", 0.25),
        (".25s", 0.25),
        ("1e-3", 0.001),
    ],
)
def test_parse_duration_accepts(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["-1", "-0.5s", "abc", "1h", "1m", "5 min", "", "ms", "nan", "inf", "1.2.3"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="non-negative duration") as excinfo:
        parse_duration(text)
    assert repr(text) in str(excinfo.value)


def test_parse_duration_rejects_overflow_to_infinity() -> None:
    with pytest.raises(ConfigError):
        parse_duration("1e400")


# -- parse_count, parse_bool, parse_country and friends ---------------------------------


@pytest.mark.parametrize(
    ("text", "minimum", "expected"),
    [("3", 1, 3), (" 8 ", 1, 8), ("0", 0, 0), ("1", 1, 1), ("100", 0, 100)],
)
def test_parse_count_accepts(text: str, minimum: int, expected: int) -> None:
    value = parse_count(text, minimum=minimum)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("text", "minimum", "match"),
    [
        ("0", 1, "at least 1"),
        ("-1", 0, "at least 0"),
        ("1.5", 1, "whole number"),
        ("abc", 1, "whole number"),
        ("", 1, "whole number"),
    ],
)
def test_parse_count_rejects(text: str, minimum: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_count(text, minimum=minimum)


@pytest.mark.parametrize("text", ["1", "true", "TRUE", " yes ", "on", "True"])
def test_parse_bool_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off", "", "  "])
def test_parse_bool_false(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["maybe", "2", "y", "enabled"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="true or false"):
        parse_bool(text)


@pytest.mark.parametrize(("text", "expected"), [("FRA", "FRA"), ("deu", "DEU"), (" usa ", "USA")])
def test_parse_country_accepts(text: str, expected: str) -> None:
    assert parse_country(text) == expected


@pytest.mark.parametrize("text", ["FR", "FRAN", "F1A", "", "fr a", "123"])
def test_parse_country_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="alpha-3"):
        parse_country(text)


def test_parse_float_and_positive_float() -> None:
    assert parse_float(" -2.5 ") == -2.5
    assert parse_positive_float("56") == 56.0
    for text in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(ConfigError):
            parse_positive_float(text)


@pytest.mark.parametrize(
    ("text", "ok"), [("0.05", True), ("0", False), ("1", False), ("-0.1", False)]
)
def test_parse_probability(text: str, ok: bool) -> None:
    if ok:
        assert parse_probability(text) == 0.05
    else:
        with pytest.raises(ConfigError, match="strictly between 0 and 1"):
            parse_probability(text)


def test_parse_meter() -> None:
    assert parse_meter(" nvml ") == "nvml"
    assert parse_meter("mymod:factory") == "mymod:factory"
    with pytest.raises(ConfigError, match="meter name"):
        parse_meter("  ")


# -- build() ----------------------------------------------------------------------------


def test_build_defaults(tmp_path: Path) -> None:
    settings = build({}, tmp_path)
    assert settings == Settings(baseline_path=tmp_path / DEFAULT_BASELINE_NAME)
    assert settings.tolerance_pct is None  # resolved per test: the meter kind decides
    assert (
        settings.rule(deterministic=False, estimated=False).tolerance_pct == DEFAULT_TOLERANCE_PCT
    )
    assert settings.rule(deterministic=True, estimated=True).tolerance_pct == 1.0
    assert settings.alpha == DEFAULT_ALPHA
    assert settings.rounds is None  # auto
    assert settings.warmup == DEFAULT_WARMUP
    assert settings.phone_charge_kwh == DEFAULT_PHONE_CHARGE_KWH
    assert settings.min_time_s is None
    assert settings.meter == "auto"
    assert settings.json_path is None


def test_build_parses_every_setting(tmp_path: Path) -> None:
    raw = {
        "report": "yes",
        "baseline": "ci/base.toml",
        "update_baseline": "1",
        "tolerance": "7.5%",
        "alpha": "0.05",
        "meter": "rapl",
        "rounds": "12",
        "warmup": "0",
        "min_time": "250ms",
        "require_sensor": "true",
        "subtract_idle": "on",
        "device_lock": "no",
        "gpu_per_worker": "yes",
        "json": "out/energy.json",
        "markdown": "out/energy.md",
        "html": "out/energy.html",
        "country": "fra",
        "phone_charge_kwh": "0.012",
    }
    assert set(raw) | {"carbon_intensity"} <= {opt.name for _, opt in options()}
    settings = build(raw, tmp_path)
    assert settings == Settings(
        baseline_path=tmp_path / "ci" / "base.toml",
        report=True,
        update_baseline=True,
        tolerance_pct=7.5,
        alpha=0.05,
        meter="rapl",
        rounds=12,
        warmup=0,
        min_time_s=0.25,
        require_sensor=True,
        subtract_idle=True,
        device_lock=False,
        gpu_per_worker=True,
        json_path=tmp_path / "out" / "energy.json",
        markdown_path=tmp_path / "out" / "energy.md",
        html_path=tmp_path / "out" / "energy.html",
        country="FRA",
        phone_charge_kwh=0.012,
    )


def test_build_carbon_intensity(tmp_path: Path) -> None:
    assert build({"carbon_intensity": "56"}, tmp_path).carbon_intensity_g_per_kwh == 56.0


def test_build_keeps_absolute_paths(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    settings = build(
        {"baseline": str(elsewhere / "b.toml"), "json": str(elsewhere / "r.json")},
        tmp_path / "root",
    )
    assert settings.baseline_path == elsewhere / "b.toml"
    assert settings.json_path == elsewhere / "r.json"


def test_build_settings_are_frozen(tmp_path: Path) -> None:
    settings = build({}, tmp_path)
    with pytest.raises(AttributeError):
        settings.rounds = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "text", "option"),
    [
        ("tolerance", "abc", "--energy-tolerance / energy_tolerance: "),
        ("tolerance", "200%", "--energy-tolerance / energy_tolerance: "),
        ("min_time", "1h", "--energy-min-time / energy_min_time: "),
        ("rounds", "0", "--energy-rounds / energy_rounds: "),
        ("warmup", "-1", "--energy-warmup / energy_warmup: "),
        ("alpha", "1", "--energy-alpha / energy_alpha: "),
        ("report", "maybe", "--energy-report / energy_report: "),
        ("country", "FR", "--energy-country / energy_country: "),
        ("carbon_intensity", "-3", "--energy-carbon-intensity / energy_carbon_intensity: "),
        ("phone_charge_kwh", "0", "--energy-phone-charge-kwh / energy_phone_charge_kwh: "),
    ],
)
def test_build_error_names_the_option(tmp_path: Path, key: str, text: str, option: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build({key: text}, tmp_path)
    message = str(excinfo.value)
    assert message.startswith(option)
    assert repr(text) in message


def test_build_rejects_country_and_carbon_intensity_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build({"country": "FRA", "carbon_intensity": "56"}, tmp_path)
    message = str(excinfo.value)
    assert "--energy-country" in message
    assert "--energy-carbon-intensity" in message
    assert "only one" in message


# -- the options table --------------------------------------------------------------------


def test_every_settings_field_is_an_option_with_one_spelling() -> None:
    from dataclasses import fields

    table = dict(options())
    assert set(table) == {f.name for f in fields(Settings)}
    flags = {opt.flag for opt in table.values()}
    assert len(flags) == len(table)
    for opt in table.values():
        assert opt.flag == "--energy-" + opt.name.replace("_", "-")
        assert opt.dest == "energy_" + opt.name
        assert opt.help


def test_tolerance_resolution_marker_then_option_then_meter_kind(tmp_path: Path) -> None:
    settings = build({"tolerance": "4%"}, tmp_path)

    def tolerance(marker: float | None, deterministic: bool) -> float:
        return settings.rule(
            deterministic=deterministic, estimated=deterministic, marker_tolerance_pct=marker
        ).tolerance_pct

    assert tolerance(20.0, True) == 20.0
    assert tolerance(None, True) == 4.0
    assert tolerance(None, False) == 4.0


def test_rounds_auto_or_a_number(tmp_path: Path) -> None:
    assert build({"rounds": "auto"}, tmp_path).rounds is None
    assert build({"rounds": "7"}, tmp_path).rounds == 7


@pytest.mark.parametrize("report", ["json", "markdown", "html"])
def test_a_report_on_the_baseline_path_is_refused(tmp_path: Path, report: str) -> None:
    with pytest.raises(ConfigError, match=r"both name .*destroy the other"):
        build({report: "energy-baseline.toml"}, tmp_path)


def test_two_reports_on_one_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--energy-json and --energy-markdown both name"):
        build({"json": "out.txt", "markdown": "./out.txt"}, tmp_path)


def test_cli_paths_are_relative_to_the_invocation_dir_ini_paths_to_the_rootdir(
    tmp_path: Path,
) -> None:
    from pytest_energy.settings import resolve

    cli = {"json": "r.json"}
    ini = {"markdown": "r.md", "baseline": "b.toml"}
    settings = resolve(
        lambda opt: cli.get(opt.name),
        lambda opt: ini.get(opt.name, ""),
        invocation_dir=tmp_path / "here",
        rootdir=tmp_path / "root",
    )
    assert settings.json_path == tmp_path / "here" / "r.json"
    assert settings.markdown_path == tmp_path / "root" / "r.md"
    assert settings.baseline_path == tmp_path / "root" / "b.toml"


def test_a_flag_from_the_command_line_wins_over_the_ini(tmp_path: Path) -> None:
    from pytest_energy.settings import resolve

    settings = resolve(
        lambda opt: False if opt.name == "report" else None,
        lambda opt: True if opt.name == "report" else "",
        invocation_dir=tmp_path,
        rootdir=tmp_path,
    )
    assert settings.report is False


def test_max_rounds_can_go_below_the_adaptive_minimum(tmp_path: Path) -> None:
    from pytest_energy.settings import MIN_ADAPTIVE_ROUNDS

    assert build({"max_rounds": "2"}, tmp_path).max_rounds == 2 < MIN_ADAPTIVE_ROUNDS
    with pytest.raises(ConfigError, match="at least 1"):
        build({"max_rounds": "0"}, tmp_path)


def test_engine_and_tensor_parallel(tmp_path: Path) -> None:
    s = build({"engine": "Compiled", "tensor_parallel": "4"}, tmp_path)
    assert (s.engine, s.tensor_parallel) == ("compiled", 4)
    assert (Settings().engine, Settings().tensor_parallel) == ("eager", 1)
    with pytest.raises(ConfigError, match="--energy-engine / energy_engine: expected one of"):
        build({"engine": "vllm"}, tmp_path)
    with pytest.raises(ConfigError, match="--energy-tensor-parallel"):
        build({"tensor_parallel": "0"}, tmp_path)
