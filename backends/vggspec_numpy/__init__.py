"""vggspec's NumPy backend: the plan in plain NumPy, no deep-learning framework. The reference backend."""

from vggspec_numpy.backend import NumpyBackend

__all__ = ["NumpyBackend"]
