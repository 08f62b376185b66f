"""A framework object as data: a class named as source writes it, and the arguments to call it with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class Expression:
    """An argument whose source text says more than its value: fc1's ``in_features`` is 25088,
    written ``512 * 7 * 7`` as torchvision writes it (channels, height, width of the map it reads)."""

    value: int
    source: str


Argument = Union[int, float, bool, str, None, Expression, tuple["Argument", ...]]


def _value(argument: Argument) -> Any:
    if isinstance(argument, Expression):
        return argument.value
    if isinstance(argument, tuple):
        return tuple(_value(item) for item in argument)
    return argument


@dataclass(frozen=True)
class Construct:
    """``type(*args, **kwargs)``: ``type`` is the object's name as a generated file writes it
    (``nn.Conv2d``, ``layers.Dense``, ``keras.Input``; a bare name is vggspec's own class, which the
    generated file defines), ``kwargs`` are in the order they are written. ``comment`` is a note the
    generated source writes after it ("" for none)."""

    type: str
    args: tuple[Argument, ...] = ()
    kwargs: tuple[tuple[str, Argument], ...] = ()
    comment: str = ""

    @property
    def namespace(self) -> str:
        """Where ``type`` lives: ``nn`` for ``nn.Conv2d``, "" for vggspec's own class."""
        return self.type.rpartition(".")[0]

    @property
    def name(self) -> str:
        """The class or function's own name: ``Conv2d`` for ``nn.Conv2d``."""
        return self.type.rpartition(".")[2]

    def make(self, namespaces: Mapping[str, Any], *first: Any, **more: Any) -> Any:
        """Call the object: ``namespaces`` maps each namespace (``"nn"``) to the module holding it
        (``torch.nn``); ``first`` are positional arguments the caller puts before ``args`` (the tensor an
        initialiser fills), ``more`` keyword arguments it adds (a Keras layer's name)."""
        function = getattr(namespaces[self.namespace], self.name)
        keywords = {key: _value(value) for key, value in self.kwargs}
        return function(*first, *(_value(value) for value in self.args), **keywords, **more)


def construct(type_: str, *args: Argument, **kwargs: Argument) -> Construct:
    """A :class:`Construct` from positional and keyword arguments, the keywords in the order given."""
    return Construct(type_, args, tuple(kwargs.items()))
