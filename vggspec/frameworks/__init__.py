"""What each plan layer becomes in a framework, written once, as data.

One table per framework (:mod:`.torch_modules`, :mod:`.keras_layers`) maps every plan layer
type to the framework objects it becomes: each a :class:`~.construct.Construct`, a class named
as a generated file writes it (``nn.Conv2d``, ``layers.Conv2D``) with its arguments as values.
The framework's backend builds its model from the table (it looks the class up and calls it)
and the code generator prints the same entries as source, so the model vggspec builds and the
file it writes cannot differ; torch's module slots, hence its state-dict keys, are counted from
the same entries. A new layer kind is the spec token, the plan type and one entry per table.

Nothing here imports a framework: the tables are plain data, read by the core too (the
torchvision key layout of weight files).
"""
