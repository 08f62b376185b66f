"""Pictures of plans and reports, framework-free: the network drawn (``vggspec draw``), two plans compared
(``vggspec draw A B``, ``vggspec diff``), a verify report plotted (its plot option).

Each picture is first a :class:`~vggspec.drawing.scene.Scene` (boxes, text, lines in pixels), then
written as SVG by this package's own code or as PNG through matplotlib (the ``[plot]`` extra).
"""
