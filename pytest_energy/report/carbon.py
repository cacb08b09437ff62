"""Carbon intensity of electricity, and the equivalents reports print next to kWh.

The intensity comes from one of two places, never from a guess:

* ``--energy-country=ISO3``: CodeCarbon's offline per-country energy-mix data
  (``codecarbon/data/private_infra/global_energy_mix.json``, field ``carbon_intensity`` in
  gCO2e/kWh). The file is located inside the installed ``codecarbon`` package without
  importing it, and read without any network access.
* ``--energy-carbon-intensity=G_PER_KWH``: the number given.

With neither, :func:`resolve` returns ``None`` and reports leave carbon out.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..record import J_PER_KWH, Record
from ..settings import Settings
from ..verdict import COMPARE, Result

#: Where the per-country data lives inside the ``codecarbon`` package.
ENERGY_MIX_FILE = ("data", "private_infra", "global_energy_mix.json")
CODECARBON_FIX = (
    "pip install 'pytest-energy[codecarbon]' or give the intensity directly with "
    "--energy-carbon-intensity=G_PER_KWH"
)


@dataclass(frozen=True)
class CarbonIntensity:
    """Grams of CO2-equivalent per kWh, and where the figure came from."""

    g_per_kwh: float
    source: str
    country: str | None = None


def energy_mix_path() -> Path:
    """The installed CodeCarbon package's per-country data file (codecarbon is not imported)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "--energy-country needs CodeCarbon's offline carbon-intensity data, but the "
            f"codecarbon package is not installed. Fix: {CODECARBON_FIX}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*ENERGY_MIX_FILE)
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "--energy-country needs CodeCarbon's offline carbon-intensity data, but the installed "
        f"codecarbon package has no {'/'.join(ENERGY_MIX_FILE)}. Fix: upgrade it "
        "(pip install -U 'pytest-energy[codecarbon]') or use --energy-carbon-intensity=G_PER_KWH"
    )


def country_intensity(country: str, data_path: Path | None = None) -> CarbonIntensity:
    """The carbon intensity of ``country`` (ISO 3166-1 alpha-3) from CodeCarbon's data.

    ``data_path`` replaces the installed data file (tests use a small one).
    """
    path = energy_mix_path() if data_path is None else data_path
    code = country.strip().upper()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"cannot read CodeCarbon's carbon-intensity data at {path} ({exc}). Fix: reinstall "
            "codecarbon (pip install --force-reinstall codecarbon) or use "
            "--energy-carbon-intensity=G_PER_KWH"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"CodeCarbon's carbon-intensity data at {path} is not a table of countries. Fix: "
            "reinstall codecarbon or use --energy-carbon-intensity=G_PER_KWH"
        )
    entry = data.get(code)
    if not isinstance(entry, dict):
        examples = ", ".join(c for c in ("FRA", "DEU", "USA", "IND") if c in data) or "FRA"
        raise ConfigError(
            f"--energy-country={country}: no country with ISO 3166-1 alpha-3 code {code!r} in "
            f"CodeCarbon's data ({len(data)} countries, e.g. {examples}). Fix: use the "
            "three-letter code of the country where the tests run, or give the intensity "
            "directly with --energy-carbon-intensity=G_PER_KWH"
        )
    value = entry.get("carbon_intensity")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(
            f"CodeCarbon's data at {path} has no usable carbon_intensity for {code} "
            f"(found {value!r}). Fix: use --energy-carbon-intensity=G_PER_KWH"
        )
    name = entry.get("country_name")
    year = entry.get("year")
    details = ", ".join(str(x) for x in (name, year) if x)
    source = f"CodeCarbon offline data for {code}" + (f" ({details})" if details else "")
    return CarbonIntensity(g_per_kwh=float(value), source=source, country=code)


def resolve(settings: Settings, data_path: Path | None = None) -> CarbonIntensity | None:
    """The intensity the settings ask for, or ``None`` when they ask for none.

    Raises :class:`~pytest_energy.errors.ConfigError` (codecarbon missing, unknown country).
    """
    if settings.carbon_intensity_g_per_kwh is not None:
        return CarbonIntensity(
            g_per_kwh=settings.carbon_intensity_g_per_kwh, source="--energy-carbon-intensity"
        )
    if settings.country:
        return country_intensity(settings.country, data_path)
    return None


def g_co2e(kwh: float, g_per_kwh: float | None) -> float | None:
    """Grams of CO2e for ``kwh``; ``None`` without an intensity."""
    return None if g_per_kwh is None else kwh * g_per_kwh


def phone_charges(kwh: float, phone_charge_kwh: float) -> float:
    """How many full smartphone charges ``kwh`` would make."""
    return kwh / phone_charge_kwh


@dataclass(frozen=True)
class Totals:
    """What a whole run measured, summed over every window of every test."""

    tests: int
    windows: int
    inferences: int
    energy_j: float
    g_co2e: float | None
    phone_charges: float

    @property
    def kwh(self) -> float:
        return self.energy_j / J_PER_KWH


def _metered(result: Result) -> list[Record]:
    """The records whose windows a result metered: an ``energy.compare`` metered both sides."""
    v = result.verdict
    if v.check == COMPARE and v.reference is not None:
        return [result.record, v.reference]
    return [result.record]


def totals(results: Sequence[Result], g_per_kwh: float | None, phone_charge_kwh: float) -> Totals:
    records = [record for r in results for record in _metered(r)]
    energy_j = math.fsum(record.energy_j for record in records)
    kwh = energy_j / J_PER_KWH
    return Totals(
        tests=len({r.nodeid for r in results}),
        windows=sum(len(record.windows) for record in records),
        inferences=sum(record.inferences for record in records),
        energy_j=energy_j,
        g_co2e=g_co2e(kwh, g_per_kwh),
        phone_charges=phone_charges(kwh, phone_charge_kwh),
    )
