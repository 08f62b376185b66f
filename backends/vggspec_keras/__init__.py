"""vggspec's Keras 3 backend. Importing this package does not import Keras.

``load_model(path)`` loads a ``.keras`` file that vggspec saved, LRN layer included.
Importing the package gives TensorFlow vggspec's settings (quiet start-up, no oneDNN
re-ordering of sums) unless the environment already sets them, before Keras can load it:
see :mod:`vggspec_keras.environment`.
"""

from vggspec_keras.environment import set_tensorflow_environment

set_tensorflow_environment()

from vggspec_keras.backend import KerasBackend, load_model  # noqa: E402  (after the environment is set)

__all__ = ["KerasBackend", "load_model"]
