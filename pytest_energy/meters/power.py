"""Energy from power samples: a trapezoid-rule integrator and a background poller.

Generic: it knows watts, seconds and domain names, nothing of where the samples come from. A
meter whose hardware reports power but no energy counter (an old NVIDIA GPU, for one) hands
:class:`PowerPoller` a function returning watts per domain and reads cumulative joules back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

DEFAULT_POLL_INTERVAL_S = 0.02
DEFAULT_THREAD_NAME = "pytest-energy-power-poller"


class PowerIntegrator:
    """Cumulative energy in joules per domain from power samples, by the trapezoid rule."""

    def __init__(self, domains: Sequence[str]) -> None:
        self._energy_j = dict.fromkeys(domains, 0.0)
        self._last: dict[str, tuple[float, float]] = {}

    def add(self, domain: str, time_s: float, power_w: float) -> None:
        """Record that ``domain`` drew ``power_w`` at ``time_s`` (a monotonic clock)."""
        if domain not in self._energy_j:
            raise KeyError(f"unknown domain {domain!r}")
        last = self._last.get(domain)
        if last is not None:
            last_time_s, last_power_w = last
            duration_s = time_s - last_time_s
            if duration_s < 0:
                raise ValueError(f"power sample for {domain!r} is older than the previous one")
            self._energy_j[domain] += 0.5 * (last_power_w + power_w) * duration_s
        self._last[domain] = (time_s, power_w)

    def energy_j(self) -> dict[str, float]:
        """Joules per domain since the first sample."""
        return dict(self._energy_j)


class PowerPoller:
    """Samples power on a daemon thread and integrates it.

    ``sample_power_w`` returns watts per domain. ``clock`` (seconds) is injectable so the
    integration can be driven step by step in tests with :meth:`sample`. ``thread_name`` names
    the background thread, so a meter's poller can be told apart from others. An exception in
    the thread stops it and is re-raised by the next :meth:`sample`.
    """

    def __init__(
        self,
        sample_power_w: Callable[[], Mapping[str, float]],
        domains: Sequence[str],
        *,
        interval_s: float = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        thread_name: str = DEFAULT_THREAD_NAME,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"poll interval must be positive, got {interval_s!r}")
        self.interval_s = interval_s
        self._sample_power_w = sample_power_w
        self._clock = clock
        self._thread_name = thread_name
        self._integrator = PowerIntegrator(domains)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def sample(self) -> dict[str, float]:
        """Take one sample now and return cumulative joules per domain."""
        if self._error is not None:
            raise self._error
        with self._lock:
            power_w = self._sample_power_w()
            now_s = self._clock()
            for domain, watts in power_w.items():
                self._integrator.add(domain, now_s, watts)
            return self._integrator.energy_j()

    def start(self) -> None:
        """Take the first sample and start the background thread."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception as exc:  # kept and raised by the next sample(), never dropped
                self._error = exc
                return

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread and wait for it; safe to call more than once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
