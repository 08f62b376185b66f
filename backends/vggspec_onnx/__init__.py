"""vggspec's ONNX backend: the plan as an ONNX graph, run with onnxruntime.

Importing this package imports neither onnx nor onnxruntime.
"""

from vggspec_onnx.backend import OnnxBackend

__all__ = ["OnnxBackend"]
