"""Data sets prepared as class folders (DIR/{train,val}/<class>/...) with a manifest.

Each data set is one module; the command line reaches them through
``vggspec data <name>``.
"""

from vggspec.data.cats_vs_dogs import prepare_cats_vs_dogs
from vggspec.data.shapes import make_shapes

__all__ = ["make_shapes", "prepare_cats_vs_dogs"]
