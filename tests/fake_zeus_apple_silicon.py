"""A fake ``zeus_apple_silicon`` module for testing the apple meter off macOS.

It follows the library's Python API (github.com/ml-energy/zeus-apple-silicon, README "API
Reference" and ``bindings/energy_bindings.hpp``, release 1.1.0):

- ``AppleEnergyMonitor()`` subscribes to IOReport's "Energy Model" group and raises
  ``RuntimeError("Failed to create IOReport subscription.")`` when it cannot;
- ``get_cumulative_energy()`` returns an ``AppleEnergyMetrics`` counted "from an unspecified
  point fixed over the lifetime of the energy monitor";
- every ``AppleEnergyMetrics`` field is in millijoules (ints, or lists of ints per core or
  cluster), ``None`` where the chip lacks the channel (M5 has no GPU SRAM channel);
- ``begin_window(key, restart=False)`` / ``end_window(key)`` measure labelled windows.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field, fields, replace


@dataclass
class AppleEnergyMetrics:
    cpu_total_mj: int | None = None
    efficiency_cores_mj: list[int] | None = None
    performance_cores_mj: list[int] | None = None
    efficiency_cluster_mj: list[int] | None = None
    performance_cluster_mj: list[int] | None = None
    efficiency_core_manager_mj: int | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


def m3_pro() -> AppleEnergyMetrics:
    return AppleEnergyMetrics(
        cpu_total_mj=10_000,
        efficiency_cores_mj=[1_000] * 6,
        performance_cores_mj=[500] * 6,
        dram_mj=2_000,
        gpu_mj=3_000,
        gpu_sram_mj=100,
        ane_mj=0,
    )


@dataclass
class Chip:
    """What the fake IOReport reports; tests advance ``counters`` between reads."""

    counters: AppleEnergyMetrics = field(default_factory=m3_pro)
    subscribe_error: str | None = None
    read_error: str | None = None

    def spend(self, **mj: int) -> None:
        for name, value in mj.items():
            setattr(self.counters, name, getattr(self.counters, name) + value)


class FakeZeusAppleSilicon(types.ModuleType):
    def __init__(self, chip: Chip | None = None) -> None:
        super().__init__("zeus_apple_silicon")
        self.chip = chip or Chip()
        self.AppleEnergyMetrics = AppleEnergyMetrics
        library = self

        class AppleEnergyMonitor:
            def __init__(self) -> None:
                if library.chip.subscribe_error:
                    raise RuntimeError(library.chip.subscribe_error)
                self._windows: dict[str, AppleEnergyMetrics] = {}

            def get_cumulative_energy(self) -> AppleEnergyMetrics:
                if library.chip.read_error:
                    raise RuntimeError(library.chip.read_error)
                return replace(library.chip.counters)

            def begin_window(self, key: str, restart: bool = False) -> None:
                if key in self._windows and not restart:
                    raise RuntimeError("Measurement with specified key already exists.")
                self._windows[key] = self.get_cumulative_energy()

            def end_window(self, key: str) -> AppleEnergyMetrics:
                if key not in self._windows:
                    raise RuntimeError("No measurement with provided key had been started.")
                start, end = self._windows.pop(key), self.get_cumulative_energy()
                delta = AppleEnergyMetrics()
                for f in fields(AppleEnergyMetrics):
                    a, b = getattr(start, f.name), getattr(end, f.name)
                    if isinstance(a, int) and isinstance(b, int):
                        setattr(delta, f.name, b - a)
                return delta

        self.AppleEnergyMonitor = AppleEnergyMonitor
