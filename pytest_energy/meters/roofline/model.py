"""The time and power model: from an operation's FLOPs and bytes to modelled joules.

For one kernel on the target GPU (a :class:`~.profiles.Profile`)::

    busy_s   = max(flops / peak[dtype], bytes / memory_bandwidth)     the roofline
    time_s   = busy_s + launch_s
    energy_j = board_power_w * busy_s + idle_power_w * launch_s

That is: while the kernel runs at its roofline the board draws its power limit, and during
the per-kernel launch gap it draws idle power. Equivalently, power is
``idle + (board - idle) * utilisation`` over ``time_s``, with utilisation ``busy_s / time_s``.

``peak[dtype]`` is the tensor-core peak of the operation's dtype for matrix products,
convolutions and attention, and the vector fp32 peak (fp64 for float64) for every other
operation.

Energies are returned as whole multiples of :data:`ENERGY_QUANTUM_J` (2**-30 J, about 0.93 nJ),
so sums are exact integers that do not depend on the order in which operations are added,
and a cumulative total converted to float joules is exact up to 2**23 J (8.4 MJ): the
difference of two readings around a window is then exact too, whatever ran before it.
"""

from __future__ import annotations

import math

from .profiles import Profile

ENERGY_QUANTUM_EXP = -30
ENERGY_QUANTUM_J = 2.0**ENERGY_QUANTUM_EXP

FORMULA = (
    "per kernel: busy = max(FLOPs / dense peak[dtype], bytes / memory bandwidth); "
    "energy = board power x busy + idle power x launch cost"
)


def vector_key(dtype_key: str) -> str:
    """The peak that non-matrix operations run at: fp64 for float64, else vector fp32."""
    return "fp64" if dtype_key == "fp64" else "fp32"


def busy_s(profile: Profile, flops: int, nbytes: int, peak_key: str) -> float:
    """Roofline time of one kernel, without the launch cost."""
    return max(flops / profile.peak(peak_key), nbytes / profile.memory_bandwidth_b_s)


def kernel_time_s(profile: Profile, flops: int, nbytes: int, peak_key: str) -> float:
    """Modelled wall time of one kernel, launch cost included."""
    return busy_s(profile, flops, nbytes, peak_key) + profile.launch_s


def kernel_energy_units(profile: Profile, flops: int, nbytes: int, peak_key: str) -> int:
    """Modelled energy of one kernel in whole units of :data:`ENERGY_QUANTUM_J`."""
    busy = busy_s(profile, flops, nbytes, peak_key)
    energy_j = profile.board_power_w * busy + profile.idle_power_w * profile.launch_s
    return round(math.ldexp(energy_j, -ENERGY_QUANTUM_EXP))


def joules(units: int) -> float:
    """Energy units as float joules (exact below 2**23 J)."""
    return math.ldexp(units, ENERGY_QUANTUM_EXP)
