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
operation. Energies are returned as whole femtojoules so that sums are exact integers: the
total does not depend on the order in which operations are added.
"""

from __future__ import annotations

from .profiles import Profile

FJ_PER_J = 10**15

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


def kernel_energy_fj(profile: Profile, flops: int, nbytes: int, peak_key: str) -> int:
    """Modelled energy of one kernel in whole femtojoules."""
    busy = busy_s(profile, flops, nbytes, peak_key)
    energy_j = profile.board_power_w * busy + profile.idle_power_w * profile.launch_s
    return round(energy_j * FJ_PER_J)
