"""``auto``: every real sensor available, else the estimate, and a note saying why.

Sensors are tried in the order of :data:`SENSORS`: NVIDIA GPUs (``nvml``), AMD GPUs
(``amdsmi``), Apple Silicon (``apple``), NVIDIA Jetson rails (``jetson``), then the CPU's RAPL
counters (``rapl``). Every one that works is used: with several (a GPU through NVML and the
CPU through RAPL), their domains are reported separately and summed. With none, CodeCarbon's
estimate is used and labelled as such. ``unavailable`` says why each other meter was not used,
and the session prints it once.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import MeterError, MeterUnavailable
from . import try_create
from .base import Meter, provenance, update_period_s

SENSORS = ("nvml", "amdsmi", "apple", "jetson", "rapl")
ESTIMATE = "codecarbon"


class CompositeMeter:
    """Several meters read as one; domain names must not collide.

    ``devices`` is the union of the devices each sub-meter's windows must hold, in order: a
    sub-meter's declared ``devices`` (``()`` for the per-process CPU estimate), else each of
    its domains qualified by its own hardware, learnt from one read now. The per-device locks
    are therefore the same whether a meter runs alone or inside ``auto``.
    """

    def __init__(self, meters: list[Meter]) -> None:
        if not meters:
            raise ValueError("CompositeMeter needs at least one meter")
        from ..devicelock import devices_of

        self.meters = meters
        self.name = "+".join(m.name for m in meters)
        self.hardware = " + ".join(m.hardware for m in meters)
        self.estimated = any(m.estimated for m in meters)
        self.update_period_s = max(update_period_s(m) for m in meters)
        self.provenance = "; ".join(provenance(m) for m in meters)
        devices: dict[str, None] = {}
        for meter in meters:
            declared = getattr(meter, "devices", None) is not None
            domains = () if declared else tuple(meter.read())
            devices.update(dict.fromkeys(devices_of(meter, domains)))
        self.devices: tuple[str, ...] = tuple(devices)

    def read(self) -> dict[str, float]:
        combined: dict[str, float] = {}
        for meter in self.meters:
            for domain, joules in meter.read().items():
                if domain in combined:
                    raise MeterError(f"meters {self.name!r} both report domain {domain!r}")
                combined[domain] = joules
        return combined

    def throttle_reasons(self) -> tuple[str, ...]:
        reasons: set[str] = set()
        for meter in self.meters:
            get = getattr(meter, "throttle_reasons", None)
            if get is not None:
                reasons.update(get())
        return tuple(sorted(reasons))

    def close(self) -> None:
        errors = []
        for meter in self.meters:
            try:
                meter.close()
            except Exception as exc:  # close every meter, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]


class AutoMeter(CompositeMeter):
    """Pick every available sensor, or the CodeCarbon estimate when there is none.

    ``unavailable`` maps each meter that was tried and not used to the reason.
    """

    def __init__(self, *, create: Callable[[str], Meter | MeterUnavailable] = try_create) -> None:
        chosen: list[Meter] = []
        self.unavailable: dict[str, str] = {}
        for spec in SENSORS:
            outcome = create(spec)
            if isinstance(outcome, MeterUnavailable):
                self.unavailable[spec] = outcome.reason
            else:
                chosen.append(outcome)
        if not chosen:
            outcome = create(ESTIMATE)
            if isinstance(outcome, MeterUnavailable):
                self.unavailable[ESTIMATE] = outcome.reason
                reasons = " ".join(f"{name}: {why}" for name, why in self.unavailable.items())
                raise MeterUnavailable(
                    "auto",
                    f"no energy sensor and no estimate is available on this machine. {reasons}",
                    "install the CodeCarbon extra for an estimate "
                    "(pip install 'pytest-energy[codecarbon]'), or the NVML extra on an NVIDIA "
                    "machine (pip install 'pytest-energy[nvml]').",
                )
            chosen.append(outcome)
        super().__init__(chosen)
