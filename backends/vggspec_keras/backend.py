"""The ``keras`` backend: vggspec's Backend protocol on Keras 3.

Importing this module does not import Keras; each method imports the modules
that need it (build, weights, inference) when first called. Works under every
Keras backend (``KERAS_BACKEND=tensorflow``, ``torch``, ``jax``), which Keras
fixes when it is first imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from vggspec.backends import install_hint
from vggspec.errors import BackendError
from vggspec.fileio import atomic_path
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle

KERAS_SUFFIX = ".keras"


class KerasBackend:
    """Compile plans to functional ``keras.Model`` s named as ``keras.applications`` names VGG."""

    name = "keras"
    requires = ("keras",)
    install = install_hint("keras")  # pip install "vggspec[keras]"
    save_suffix = KERAS_SUFFIX

    def framework_problem(self) -> Optional[str]:
        """Why Keras cannot run (KERAS_BACKEND names a missing or unknown framework), told without importing it."""
        from vggspec_keras.environment import framework_problem

        return framework_problem()

    def build(self, plan: Plan) -> Any:
        """A ``keras.Model`` named ``plan.name``, one layer per plan layer, fresh weights."""
        from vggspec_keras.build import build_keras_model

        return build_keras_model(plan)

    def count_params(self, model: Any) -> tuple[int, int]:
        """(trainable, non-trainable) scalars, as ``model.summary()`` counts them."""
        trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights)
        non_trainable = sum(math.prod(weight.shape) for weight in model.non_trainable_weights)
        return int(trainable), int(non_trainable)

    def get_weights(self, model: Any, plan: Plan) -> WeightBundle:
        """The model's arrays in the canonical layout (which is Keras' own)."""
        from vggspec_keras.weights import bundle_from_model

        return bundle_from_model(model, plan)

    def set_weights(self, model: Any, plan: Plan, bundle: WeightBundle) -> None:
        """Set the layers the bundle holds (checked by ``fit_bundle``); the others are left as they are."""
        from vggspec_keras.weights import set_bundle

        set_bundle(model, plan, bundle)

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Outputs for NHWC float32 images, inference mode (dropout off, batch norm on moving stats)."""
        from vggspec_keras.inference import predict

        return predict(model, images)

    def activations(self, model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output (channels last, batch first), ``input_layer`` included."""
        from vggspec_keras.inference import activations

        return activations(model, plan, images)

    def extractor(self, model: Any, plan: Plan, outputs: Mapping[str, str], trainable: bool) -> Any:
        """A ``keras.Model`` on the same layers whose call gives ``{key: output}`` (NHWC maps); frozen
        (``trainable = False``: batch norm then runs in inference mode) unless ``trainable``."""
        from vggspec_keras.inference import feature_model

        return feature_model(model, outputs, trainable)

    def save(self, model: Any, path: str) -> Optional[str]:
        """Write a ``.keras`` archive that ``keras.models.load_model`` reads; returns how to load it when
        that takes more (an LRN layer), else None."""
        if not str(path).endswith(KERAS_SUFFIX):
            raise BackendError(
                f"{path}: expected a file name ending in {KERAS_SUFFIX} (the Keras 3 model "
                f"format), received {Path(path).suffix or 'no extension'!r}"
            )
        with atomic_path(path, suffix=KERAS_SUFFIX) as temporary:
            model.save(str(temporary))
        return _loading_note(model, path)

    def seed(self, seed: int) -> None:
        """Seed Python's, numpy's and the Keras backend's random generators (initialisers, dropout).

        The first call of a training run, before anything runs on TensorFlow: it also sets the training
        environment (:func:`vggspec_keras.environment.set_training_environment`: pooled CPU memory) and, in a
        process of a distributed run, joins the others (:func:`vggspec_keras.distributed.join_workers`)."""
        from vggspec_keras.environment import set_training_environment

        set_training_environment()
        import keras

        from vggspec_keras.distributed import join_workers

        join_workers()

        keras.utils.set_random_seed(seed)

    def trainer(self, model: Any, plan: Plan, config: Any, settings: None) -> Any:
        """A trainer for ``vggspec finetune`` (see :mod:`vggspec_keras.training`); no settings of its own
        (declares no ``training_settings``: the core refuses torch's)."""
        from vggspec_keras.training import make_trainer

        return make_trainer(model, plan, config)


def _loading_note(model: Any, path: str) -> Optional[str]:
    """One line for the user when a saved model needs more than ``keras.models.load_model`` (else None).

    The LRN layer of configuration A-LRN is vggspec's own class, registered with Keras
    as ``vggspec>LocalResponseNormalization`` only once :mod:`vggspec_keras.lrn` is imported.
    """
    from vggspec_keras.lrn import LocalResponseNormalization

    if not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers):
        return None
    return (
        f"{path} has a vggspec LocalResponseNormalization layer: load it with "
        "vggspec_keras.load_model(path), or import vggspec_keras.lrn before keras.models.load_model"
    )


def load_model(path: Union[str, Path], **kwargs: Any) -> Any:
    """``keras.models.load_model(path, **kwargs)`` with vggspec's layers registered first.

    Needed for a model with the LRN layer (configuration A-LRN): Keras finds the class
    ``vggspec>LocalResponseNormalization`` only once :mod:`vggspec_keras.lrn` is imported.
    Keras is imported here, when called.
    """
    import keras

    import vggspec_keras.lrn  # noqa: F401  (registers the layer with Keras)

    return keras.models.load_model(str(path), **kwargs)
