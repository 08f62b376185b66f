"""The activations a plan may name, written once: each name with what it computes.

A spec's ``activation`` (after every convolution and hidden dense layer) is one of
:data:`ACTIVATIONS`; its ``classifier_activation`` one of :data:`CLASSIFIER_ACTIVATIONS` (or
none, for logits). Every framework's table maps each name to its own object
(:data:`vggspec.frameworks.torch_modules.ACTIVATIONS`, :data:`vggspec.frameworks.keras_layers.ACTIVATIONS`,
the ONNX backend's nodes); the tests hold each of them, and the schema's enum, to these lists.
"""

from __future__ import annotations

ACTIVATIONS: dict[str, str] = {
    "relu": "max(x, 0)",
    "relu6": "min(max(x, 0), 6)",
    "elu": "x where x > 0, else exp(x) - 1 (alpha 1)",
    "selu": "1.0507... · (x where x > 0, else 1.6733... · (exp(x) - 1))",
    "gelu": "x · Φ(x), exact: x · (1 + erf(x / √2)) / 2",
    "silu": "x · sigmoid(x)",
    "tanh": "tanh(x)",
    "sigmoid": "1 / (1 + exp(-x))",
}

CLASSIFIER_ACTIVATIONS: dict[str, str] = {
    "softmax": "exp(x_i) / Σ_j exp(x_j) over the classes",
    "sigmoid": "1 / (1 + exp(-x)) for each class on its own",
}
