"""vggspec's benchmarks: speed and memory, each as a ratio against a reference measured in the same run.

``python -m benchmarks [--quick] [--only NAME,...] [--json-out FILE]`` runs the measures
below, each in its own fresh process, and prints one JSON object, then a table:

- ``forward_torch``: images/s of the torch backend's VGG16 against a hand-written
  ``nn.Sequential`` VGG16 and torchvision's ``vgg16`` (batch 1 and 8, fp32, channels_last off/on);
- ``forward_keras``: images/s of the Keras backend's VGG16 against ``keras.applications.VGG16``;
- ``conversion``: ``vggspec convert`` of a full-size VGG16 ``.h5`` to ``.safetensors`` and ``.pt``
  against a plain file copy (time), against the file's size (peak resident memory), and
  whether TensorFlow was imported;
- ``startup``: ``vggspec summary vgg16`` in a fresh process, with ``python -c pass`` as the floor.

``--quick`` uses VGG16's convolutions on a 32x32 input with 10 classes and few repetitions:
it checks that every measure runs, not how fast. ``benchmarks/gpu.py`` is a separate script
for a machine with a CUDA GPU.
"""
