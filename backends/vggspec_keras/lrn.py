"""Local response normalization across channels (the paper's configuration A-LRN) as a Keras 3 layer.

Written with ``keras.ops`` only, so it runs under every Keras backend
(TensorFlow, PyTorch, JAX). Importing this module imports Keras; the backend
imports it lazily.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vggspec")
class LocalResponseNormalization(keras.layers.Layer):
    """``torch.nn.LocalResponseNorm(size, alpha, beta, k)`` on a channels-last tensor.

    For every position and channel c::

        out[..., c] = x[..., c] / (k + alpha / size * sum(x[..., j] ** 2 for j in window(c))) ** beta

    where ``window(c)`` is channels ``c - size // 2 ... c + (size - 1) // 2``,
    zero padded at both edges (channels outside the tensor count as 0).

    The same function in TensorFlow (odd ``size`` only, as TF's window is
    always symmetric)::

        tf.nn.local_response_normalization(x, depth_radius=(size - 1) // 2, bias=k,
                                           alpha=alpha / size, beta=beta)

    because TF divides by ``(bias + alpha' * sum)^beta`` over ``2 * depth_radius + 1``
    channels: its ``alpha'`` is already divided by the window size, torch's is not.
    The paper (after Krizhevsky et al., 2012) uses size 5, alpha 1e-4, beta 0.75, k 2.

    Input and output: ``(..., channels)``, any float dtype; no weights.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"LocalResponseNormalization: expected size >= 1, received size={size}")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs):
        channels = inputs.shape[-1]
        squared = ops.square(inputs)
        # Zero padding on the channel axis only: size // 2 before, (size - 1) // 2 after (as torch).
        padding = [[0, 0]] * (len(inputs.shape) - 1) + [[self.size // 2, (self.size - 1) // 2]]
        padded = ops.pad(squared, padding)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        divisor = ops.power(self.k + (self.alpha / self.size) * window_sum, self.beta)
        return inputs / divisor

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}
