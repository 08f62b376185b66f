"""The ONNX backend's native model: an ``onnx.ModelProto`` and the onnxruntime session that runs it.

The session is made when the model first runs, on CUDA when onnxruntime has it (``onnxruntime-gpu``,
TF32 off so that float32 stays float32), else on the CPU, with onnxruntime's graph optimisations and
its threads fitted to the CPUs the process may use (:func:`intra_op_threads`); changing the weights
drops it. Images run at most RUN_BATCH at a time, without onnxruntime's memory arena, so that memory
follows one run, not the number of images. A ModelProto is one protobuf message, which cannot exceed
2 GiB: VGG19's 575 MB fit easily, and a larger plan is refused before anything is serialized.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np
import onnx

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan

PROTOBUF_LIMIT = 2**31 - 1  # bytes: the most one serialized protobuf message may hold
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
# images per run of the session: a VGG16 activation at 224x224 is about 40 MB an image, and a CPU gains nothing
# from larger batches, so a caller's batch of 32 runs as 4 of 8 (its outputs the same)
RUN_BATCH = 8


def _onnxruntime() -> Any:
    import onnxruntime  # type: ignore[import-untyped, unused-ignore]

    return onnxruntime


def providers() -> list[Any]:
    """onnxruntime's execution providers, fastest first: CUDA (TF32 off) when there, then the CPU."""
    available = _onnxruntime().get_available_providers()
    return ([(CUDA, {"use_tf32": "0"})] if CUDA in available else []) + [CPU]


def intra_op_threads() -> int:
    """onnxruntime's threads per operator: the CPUs this process may run on when a container or ``taskset`` has
    narrowed them (onnxruntime's own default counts the machine's physical cores, and more threads than CPUs
    only wait on each other), else 0, onnxruntime's default (one per physical core, hyperthreads left out)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows): the default
        return 0
    return usable if usable < (os.cpu_count() or usable) else 0


def serialized(proto: onnx.ModelProto) -> bytes:
    """The model's bytes; BackendError when it is over protobuf's 2 GiB limit (ONNX's external data
    would be needed, which vggspec does not write)."""
    size = proto.ByteSize()
    if size > PROTOBUF_LIMIT:
        raise BackendError(
            f"onnx model {proto.graph.name}: expected at most {PROTOBUF_LIMIT:,} bytes (protobuf's limit "
            f"for one model), received {size:,}"
        )
    return proto.SerializeToString()


class OnnxModel:
    """A plan compiled to ONNX. ``proto`` holds the graph and the weights (initializers ``<layer>/<weight>``);
    ``outputs`` are its graph outputs, plan layer names or the names an extractor was asked for.

    Calling it runs onnxruntime: NHWC float32 images (batch first, preprocessed) in,
    ``{output: array}`` out, every output channels last, batch first.
    """

    def __init__(
        self,
        plan: Plan,
        proto: onnx.ModelProto,
        outputs: Sequence[str],
        from_file: Optional[str] = None,
        graph_outputs: Optional[Sequence[str]] = None,
    ):
        self.plan = plan
        self.proto = proto
        self.outputs = tuple(outputs)
        self.from_file = from_file  # the .onnx file it was read from (vggspec_onnx.files), run as it is
        self.graph_outputs = tuple(graph_outputs or outputs)  # the graph's tensors that give ``outputs``, in order
        self._session: Optional[Any] = None

    @property
    def input_name(self) -> str:
        return self.proto.graph.input[0].name

    def session(self) -> Any:
        """The onnxruntime InferenceSession on ``proto``, made when first needed."""
        if self._session is None:
            ort = _onnxruntime()
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only
            # no arena: its blocks, grown for one batch's activations, are not given back and grow again with the
            # next batches (a VGG16 predict on 96 images peaked at 4.3 GB with it, 3.3 GB without)
            options.enable_cpu_mem_arena = False
            # no busy-waiting between runs: onnxruntime's spinning threads would slow whatever runs next in
            # the process (torch took 1.3x as long right after a VGG16 run); VGG's large ops do not need it
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.intra_op_num_threads = intra_op_threads()
            self._session = ort.InferenceSession(serialized(self.proto), options, providers=providers())
        return self._session

    def weights_changed(self) -> None:
        """Forget the session (it holds copies of the old initializers); the next call makes a new one."""
        self._session = None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``{output: array}`` for NHWC float32 ``images`` (N, H, W, C), channels last."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = self.plan.input_shape
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise BackendError(
                f"images for onnx model {self.plan.name}: expected an array of shape "
                f"(N, {', '.join(map(str, expected))}), received {tuple(images.shape)}"
            )
        session, names = self.session(), list(self.graph_outputs)
        parts = [
            session.run(names, {self.input_name: images[start : start + RUN_BATCH]})
            for start in range(0, max(len(images), 1), RUN_BATCH)
        ]
        return {name: np.concatenate([part[index] for part in parts]) for index, name in enumerate(self.outputs)}

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.plan.name!r}, outputs={list(self.outputs)!r}, opset {self.proto.opset_import[0].version})"
        )
