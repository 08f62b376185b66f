"""What Keras will run on, told without importing Keras; and TensorFlow's settings for vggspec.

Keras 3 picks its framework when it is first imported: ``KERAS_BACKEND`` when set
(and not empty), else ``"backend"`` in ``$KERAS_HOME/keras.json`` (default
``~/.keras/keras.json``), else TensorFlow. When that framework is missing, Keras'
import fails deep inside itself; :func:`framework_problem` says so in one line first.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Optional

from vggspec.backends import set_environment_defaults

# Keras backend name -> (the module it imports, what to pip install)
KERAS_FRAMEWORKS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu (or tensorflow)"),
    "torch": ("torch", "torch"),
    "jax": ("jax", "jax"),
    "numpy": ("numpy", "numpy"),
    "openvino": ("openvino", "openvino"),
}
DEFAULT_FRAMEWORK = "tensorflow"

# TensorFlow, when Keras loads it: no start-up chatter on stderr, and no oneDNN re-ordering of float
# sums (which makes results differ from run to run in the last bits).
TENSORFLOW_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}

# TensorFlow in a training process: CPU memory from TensorFlow's best-fit-with-coalescing pool, reused
# from step to step. The default CPU allocator asks the system for every large tensor anew, whose pages
# the kernel then faults in and zeroes: VGG16's fc1 weight gradient (411 MB) takes 161 ms a step that
# way and 64 ms from the pool (2 cores). Training pays for it in peak memory (the pool keeps what it
# freed), inference would gain little: only training processes get it.
TRAINING_ENVIRONMENT = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}


def keras_framework() -> str:
    """The framework Keras will use, as Keras decides it (without importing Keras)."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        return chosen
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError):
        return DEFAULT_FRAMEWORK
    framework = config.get("backend", DEFAULT_FRAMEWORK) if isinstance(config, dict) else DEFAULT_FRAMEWORK
    return framework if isinstance(framework, str) else DEFAULT_FRAMEWORK


def framework_problem() -> Optional[str]:
    """Why Keras cannot run here (its framework unknown or not installed), in one line; None when it can."""
    framework = keras_framework()
    if framework not in KERAS_FRAMEWORKS:
        return f"KERAS_BACKEND: expected one of {', '.join(KERAS_FRAMEWORKS)}, received {framework!r}" + (
            "" if os.environ.get("KERAS_BACKEND") else " (from keras.json)"
        )
    module, package = KERAS_FRAMEWORKS[framework]
    if importlib.util.find_spec(module) is None:
        source = "KERAS_BACKEND" if os.environ.get("KERAS_BACKEND") else "keras.json's backend"
        return (
            f"keras runs on {framework} ({source} says so), which is not installed: pip install {package}, "
            f"or set KERAS_BACKEND to an installed one (tensorflow with vggspec[keras])"
        )
    return None


def set_tensorflow_environment() -> None:
    """Give TensorFlow vggspec's settings unless the user set them (call before Keras is imported)."""
    set_environment_defaults(TENSORFLOW_ENVIRONMENT)


def set_training_environment() -> None:
    """Add :data:`TRAINING_ENVIRONMENT` unless the user set it. TensorFlow reads it when it allocates its
    first tensor: call before anything runs on TensorFlow in this process (later, it changes nothing)."""
    set_environment_defaults(TRAINING_ENVIRONMENT)
