"""Carbon intensity (CodeCarbon's offline data or a given figure), equivalents, totals."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import report_data as data

from pytest_energy.errors import ConfigError
from pytest_energy.report import carbon, terminal
from pytest_energy.settings import DEFAULT_PHONE_CHARGE_KWH, Settings


@pytest.fixture
def mix(tmp_path: Path) -> Path:
    """A small stand-in for CodeCarbon's global_energy_mix.json, with its real field names."""
    path = tmp_path / "global_energy_mix.json"
    path.write_text(
        json.dumps(
            {
                "FRA": {
                    "iso_code": "FRA",
                    "country_name": "France",
                    "carbon_intensity": 56.039,
                    "year": 2023,
                },
                "POL": {
                    "iso_code": "POL",
                    "country_name": "Poland",
                    "carbon_intensity": 662.0,
                    "year": 2023,
                },
                "XXX": {"iso_code": "XXX", "country_name": "Nowhere", "carbon_intensity": None},
            }
        ),
        encoding="utf-8",
    )
    return path


def settings(**kwargs: object) -> Settings:
    return Settings(baseline_path=Path("energy-baseline.toml"), **kwargs)  # type: ignore[arg-type]


def test_no_setting_means_no_carbon_figure() -> None:
    assert carbon.resolve(settings()) is None


def test_given_intensity_is_used_as_is() -> None:
    got = carbon.resolve(settings(carbon_intensity_g_per_kwh=250.0))
    assert got == carbon.CarbonIntensity(250.0, "--energy-carbon-intensity", None)


def test_country_from_the_data_file(mix: Path) -> None:
    got = carbon.resolve(settings(country="FRA"), data_path=mix)
    assert got == carbon.CarbonIntensity(
        56.039, "CodeCarbon offline data for FRA (France, 2023)", "FRA"
    )
    assert carbon.country_intensity("pol", mix).g_per_kwh == 662.0


def test_unknown_country_is_a_clear_error(mix: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        carbon.country_intensity("ZZZ", mix)
    message = str(excinfo.value)
    assert "--energy-country=ZZZ: no country with ISO 3166-1 alpha-3 code 'ZZZ'" in message
    assert "(3 countries, e.g. FRA)" in message
    assert "--energy-carbon-intensity=G_PER_KWH" in message


def test_country_without_a_usable_intensity(mix: Path) -> None:
    with pytest.raises(ConfigError, match="has no usable carbon_intensity for XXX"):
        carbon.country_intensity("XXX", mix)


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_unreadable_data_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "mix.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match="reinstall codecarbon"):
        carbon.country_intensity("FRA", path)


def test_codecarbon_missing_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # import codecarbon now fails
    with pytest.raises(ConfigError) as excinfo:
        carbon.resolve(settings(country="FRA"))
    message = str(excinfo.value)
    assert "codecarbon package is not installed" in message
    assert "pip install 'pytest-energy[codecarbon]'" in message
    assert "--energy-carbon-intensity=G_PER_KWH" in message


def test_installed_codecarbon_data_without_importing_it() -> None:
    if importlib.util.find_spec("codecarbon") is None:
        pytest.skip("codecarbon is not installed")
    loaded_before = "codecarbon" in sys.modules
    path = carbon.energy_mix_path()
    assert path.name == "global_energy_mix.json"
    france = carbon.country_intensity("FRA")
    assert france.country == "FRA"
    assert france.source.startswith("CodeCarbon offline data for FRA (France")
    assert 0 < france.g_per_kwh < 200  # nuclear-heavy grid
    assert ("codecarbon" in sys.modules) == loaded_before


def test_equivalents() -> None:
    assert carbon.g_co2e(0.5, 400.0) == 200.0
    assert carbon.g_co2e(0.5, None) is None
    assert carbon.phone_charges(0.044, DEFAULT_PHONE_CHARGE_KWH) == pytest.approx(2.0)
    assert DEFAULT_PHONE_CHARGE_KWH == 0.022


def test_totals_sum_every_window() -> None:
    results = data.results()
    total = carbon.totals(results, 100.0, 0.02)
    energy = sum(w.energy_j for r in results for w in r.record.windows)
    assert total.energy_j == pytest.approx(energy)
    assert total.kwh == pytest.approx(energy / 3.6e6)
    assert total.g_co2e == pytest.approx(energy / 3.6e6 * 100.0)
    assert total.phone_charges == pytest.approx(energy / 3.6e6 / 0.02)
    assert total.tests == 8
    assert total.windows == 59
    assert carbon.totals(results, None, 0.02).g_co2e is None


def test_terminal_totals_lines() -> None:
    lines = terminal.totals(data.results(), 56.039, 0.022, source=data.FRANCE.source)
    assert lines == [
        "total: 398,779 J (0.1108 kWh) in 59 windows of 8 tests (7 measured, 1 estimated)",
        "carbon: 6.208 gCO2e at 56.04 gCO2e/kWh, CodeCarbon offline data for FRA (France, 2023)",
        "equivalent: 5.035 smartphone charges (0.022 kWh per charge)",
    ]


def test_terminal_totals_without_intensity_and_small_runs() -> None:
    one = data.results()[:1]
    lines = terminal.totals(one, None, 0.012)
    assert lines[0] == "total: 4,424 J (0.001229 kWh) measured in 8 windows of 1 test"
    assert len(lines) == 2 and lines[1].endswith("(0.012 kWh per charge)")
    assert terminal.totals([], 100.0, 0.022) == []


def test_terminal_table_has_a_row_per_result() -> None:
    header, body = terminal.table(data.results())
    assert header[0] == "test" and len(body) == 8
    assert [row[0] for row in body] == [r.nodeid for r in data.results()]
    assert terminal.render([]) == []


def test_terminal_totals_never_use_exponents() -> None:
    tiny = [
        data.result("tests/test_t.py::test_tiny", data.windows(0.0000255, inferences=1, count=1))
    ]
    lines = terminal.totals(tiny, 56.039, 0.022)
    assert lines[0] == "total: 0.08996 J (0.00000002499 kWh) measured in 1 window of 1 test"
    assert not any("e-" in line or "e+" in line for line in lines), lines
