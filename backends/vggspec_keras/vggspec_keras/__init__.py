"""vggspec's Keras 3 backend. Importing this package does not import Keras."""

from vggspec_keras.backend import KerasBackend

__all__ = ["KerasBackend"]
