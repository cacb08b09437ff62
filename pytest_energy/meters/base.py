"""The public meter contract.

A meter reports *cumulative* energy in joules per domain. The measuring code takes the
difference of two ``read()`` calls around a window, so a meter never needs to know where a
window starts or ends. Third-party meters only have to satisfy :class:`Meter`; they do not
need to inherit from anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable


@runtime_checkable
class Meter(Protocol):
    """What pytest-energy needs from an energy source.

    ``name``
        Short identifier shown in reports and stored in baselines, e.g. ``"nvml"``.
    ``hardware``
        What is measured, e.g. ``"NVIDIA H100 80GB HBM3 x1"``. Baselines are kept per hardware.
    ``estimated``
        ``True`` when figures are modelled rather than read from a sensor.
    ``read()``
        Cumulative joules per domain (``"gpu:0"``, ``"cpu:package-0"`` ...). Values must never
        decrease between two calls on the same meter; the plugin rejects a window in which one does.
    ``close()``
        Release drivers, threads and file handles. Called once at the end of the session.

    Optional attributes, read with ``getattr`` and a default:

    ``update_period_s`` (float, default 0.0)
        How often the underlying counter refreshes, from 0 (unknown) to 60 s; anything else
        (NaN, negative, over a minute) is refused when the meter is created. Windows are
        calibrated to last several update periods, and a random phase offset of up to one
        period separates windows.
    ``provenance`` (str, default "")
        One sentence on how the figures are obtained, shown in reports.
    ``idle_power_w()`` (callable, optional)
        Used by ``--energy-subtract-idle``.
    ``devices`` (iterable of str, optional)
        The devices a window must hold exclusively (a per-device lock); ``()`` takes no
        lock, for meters that other processes cannot disturb. Default: every domain,
        qualified by ``hardware``. Name a device by what identifies the hardware (a GPU's
        UUID), not by the number this process gives it.
    ``deterministic`` (bool, default False)
        ``True`` when the figures depend only on the work done, never on noise (the
        ``roofline`` model). The plugin then takes one warm-up and one window per
        ``energy(fn, ...)`` call, skips the significance test and applies a 1% tolerance.
    ``observe()`` (callable, optional)
        Returns a context manager that is entered around the measured code of every
        window, strictly between its two reads: for meters that model the work they see.
    ``counters()`` (callable, optional)
        Cumulative work counters such as ``{"flops": ..., "bytes": ...}``; per-window
        differences are reported per inference.
    """

    name: str
    hardware: str
    estimated: bool

    def read(self) -> dict[str, float]: ...

    def close(self) -> None: ...


def update_period_s(meter: Meter) -> float:
    """The meter's counter update period in seconds, 0.0 when it does not say."""
    return float(getattr(meter, "update_period_s", 0.0) or 0.0)


def provenance(meter: Meter) -> str:
    """The meter's one-sentence description of how it obtains its figures."""
    text = getattr(meter, "provenance", "") or ""
    if text:
        return str(text)
    kind = "estimated" if meter.estimated else "measured"
    return f"{kind} by meter {meter.name!r} on {meter.hardware}"


def is_deterministic(meter: Meter) -> bool:
    """Whether the meter's figures depend only on the work (see :class:`Meter`)."""
    return getattr(meter, "deterministic", False) is True


def observe(meter: Meter) -> AbstractContextManager[object]:
    """The meter's ``observe()`` context, or one that does nothing."""
    method = getattr(meter, "observe", None)
    return method() if callable(method) else contextlib.nullcontext()


def counters(meter: Meter) -> dict[str, float]:
    """The meter's cumulative work counters as plain floats; ``{}`` when it has none."""
    method = getattr(meter, "counters", None)
    if not callable(method):
        return {}
    values: Mapping[str, float] = method()
    return {str(name): float(value) for name, value in values.items()}
