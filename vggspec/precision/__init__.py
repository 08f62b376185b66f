"""Models in a lower precision than float32 (int8, float16) and what they cost in accuracy.

:mod:`~vggspec.precision.folder` reads the images a model is calibrated and checked on,
:mod:`~vggspec.precision.agreement` compares a lower-precision model's outputs with its float32 source's,
and :mod:`~vggspec.precision.build` makes one (``vggspec build`` with a ``precision``) through a backend's
``lower_precision``, refusing it below an agreement. No framework is imported here: the backend quantizes
(the onnx backend with onnxruntime's tools).
"""

PRECISIONS = ("float32", "float16", "int8")
