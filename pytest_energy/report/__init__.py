"""Renderers: pure functions from a list of :class:`~pytest_energy.results.EnergyResult`."""
