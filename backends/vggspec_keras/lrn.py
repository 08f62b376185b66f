"""Local response normalization across channels (the paper's configuration A-LRN) as a Keras 3 layer.

Written with ``keras.ops`` only, so it runs under every Keras backend (TensorFlow, PyTorch, JAX).
This class is the one definition of the layer: ``vggspec codegen`` copies its source into the
Keras files it writes, so it imports nothing but ``keras`` and ``ops`` and says nothing of vggspec
in its body. Importing this module imports Keras; the backend imports it lazily.

The same function in TensorFlow (odd ``size`` only, as TF's window is always symmetric)::

    tf.nn.local_response_normalization(x, depth_radius=(size - 1) // 2, bias=k, alpha=alpha / size, beta=beta)

because TF divides by ``(bias + alpha' * sum)^beta`` over ``2 * depth_radius + 1`` channels: its
``alpha'`` is already divided by the window size, torch's is not.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vggspec")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels, as torch.nn.LocalResponseNorm(size, alpha, beta, k).

    On channels-last maps: out[..., c] = x[..., c] / (k + alpha / size * s) ** beta, where s sums x ** 2
    over the channels c - size // 2 ... c + (size - 1) // 2 (those outside the map count as 0).
    """

    def __init__(self, size: int, alpha: float, beta: float, k: float, **kwargs):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"LocalResponseNormalization: expected size >= 1, received size={size}")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs):
        channels = inputs.shape[-1]
        # zero padding on the channel axis only: size // 2 before, (size - 1) // 2 after
        padding = [[0, 0]] * (len(inputs.shape) - 1) + [[self.size // 2, (self.size - 1) // 2]]
        padded = ops.pad(ops.square(inputs), padding)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        return inputs / ops.power(self.k + (self.alpha / self.size) * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}
