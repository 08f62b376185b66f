"""Read YAML safely and remember where every value came from.

The parser is PyYAML's (libyaml where present); values are built here, not by
PyYAML's constructors, so that:

- scalars follow the YAML 1.2 core schema (:mod:`vggspec.spec.yaml12`), which is
  what users of JSON, editors and every other modern tool expect: ``1e-4`` is a
  number, ``yes``/``no``/``on`` are strings (only ``true``/``false`` are booleans),
  ``010`` is ten, ``1:30`` is a string and a date is a string;
- tags other than the core ones (``!!str``, ``!!int``, ``!!float``, ``!!bool``,
  ``!!null``, ``!!map``, ``!!seq``) are refused, Python tags included, and so are
  merge keys (``<<``);
- a key given twice is reported (the first value is kept, so that the rest of
  the document is still checked);
- aliases are expanded, but a document may not grow past ``MAX_VALUES`` values
  or ``MAX_DEPTH`` levels once they are (a 361-byte "alias bomb" expands to 10⁹
  values), and an alias inside the value it names is refused.

Every value and every mapping key keeps its 1-based (line, column), so that
later checks can say ``FILE:LINE:COL $.path: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from vggspec.errors import Problem, SpecError
from vggspec.spec.yaml12 import BOOL, FLOAT, INT, MAP, NULL, SEQ, Yaml12Resolver, scalar_value

Path = tuple[Union[str, int], ...]  # a path into the document: keys (str) and list indices (int)

# A spec has a few dozen values; the table of configurations about 150. Far above both, far below harm.
MAX_VALUES = 100_000
MAX_DEPTH = 64

try:  # libyaml's parser is faster where present; both keep positions
    from yaml.cyaml import CParser as _Parser  # type: ignore[attr-defined]  # not in its __all__
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


class _Loader(_Parser, Yaml12Resolver):
    """Parse and compose only (node graph with positions); values are built by :func:`parse_yaml`."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        Yaml12Resolver.__init__(self)


def json_path(path: Path) -> str:
    """``("layers", 3)`` -> ``$.layers[3]``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass
class YamlDocument:
    """A parsed YAML document with the positions of its values and keys.

    ``problems`` are those found while reading (duplicate keys, refused tags,
    recursive aliases); ``broken`` holds the paths whose values they replaced,
    so that later checks do not report them a second time.
    """

    file: str
    data: Any
    value_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    broken: set[Path] = field(default_factory=set)

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> Problem:
        """A :class:`Problem` located at ``path`` (its key with ``at_key``), or its nearest parent."""
        marks = self.key_marks if at_key else self.value_marks
        probe = tuple(path)
        while probe not in marks and probe:
            probe = probe[:-1]
        line, column = marks.get(probe, self.value_marks.get((), (0, 0)))
        return Problem(self.file, line, column, json_path(path), message)

    def is_broken(self, path: Path) -> bool:
        """True when ``path`` or one of its parents held a value refused while reading."""
        return any(tuple(path[:n]) in self.broken for n in range(len(path) + 1))


def _position(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _syntax_problem(file: str, error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line, column = _position(mark) if mark is not None else (0, 0)
    what = getattr(error, "problem", None) or str(error).splitlines()[0]
    return Problem(file, line, column, "$", f"expected valid YAML, received a document where {what}")


_TOO_DEEP = f"expected at most {MAX_DEPTH} levels of nested lists and mappings, received a document nested deeper"


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node, path: Path, reason: str):
        self.node, self.path, self.reason = node, path, reason


_TAG_WORDS = {NULL: "null", BOOL: "true or false", INT: "an integer", FLOAT: "a number"}


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document into plain values with positions.

    Raises :class:`SpecError` when nothing can be checked: a syntax error, an empty
    document or one that is not a mapping, or one that grows too large once its
    aliases are expanded. Other problems (duplicate keys, refused tags, recursive
    aliases) are kept in ``problems`` and the rest of the document is still read.
    """
    root = _compose(text, file)
    doc = YamlDocument(file, None)
    try:
        doc.data = _ValueBuilder(doc).build(root, ())
    except _TooLarge as error:
        raise SpecError(
            [Problem(file, *_position(error.node.start_mark), json_path(error.path), error.reason)]
        ) from None
    if not isinstance(doc.data, dict):
        if doc.problems:
            raise SpecError(doc.problems)
        kind = "a list" if isinstance(doc.data, list) else f"the value {doc.data!r}"
        raise SpecError([doc.problem((), f"expected a mapping of fields, received {kind}")])
    return doc


def _compose(text: str, file: str) -> yaml.Node:
    """The node graph of one YAML document, positions kept; SpecError for bad syntax, too deep or empty."""
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise SpecError([_syntax_problem(file, error)]) from None
    except RecursionError:
        raise SpecError([Problem(file, 1, 1, "$", _TOO_DEEP)]) from None
    if root is None:
        raise SpecError([Problem(file, 1, 1, "$", "expected a mapping, received an empty document")])
    return root


class _ValueBuilder:
    """Builds plain values from a node graph into ``doc``: positions in ``value_marks`` and ``key_marks``,
    refused values as problems (their paths in ``broken``, their values None)."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.count = 0  # values built so far, aliases expanded
        self.open_nodes: set[int] = set()  # collections being built: an alias to one of them is recursive

    def refuse(self, node: yaml.Node, path: Path, message: str) -> None:
        self.doc.problems.append(Problem(self.doc.file, *_position(node.start_mark), json_path(path), message))
        self.doc.broken.add(path)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count_value(node, path)
        self.doc.value_marks[path] = _position(node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self.build_scalar(node, path)
        if id(node) in self.open_nodes:
            self.refuse(
                node,
                path,
                "expected an alias of a finished value, received an alias inside the value it "
                "names (a recursive alias)",
            )
            return None
        if node.tag not in (MAP, SEQ):
            self.refuse(node, path, f"expected plain YAML values, received the tag {node.tag!r}")
            return None
        self.open_nodes.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.build_mapping(node, path)
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        finally:
            self.open_nodes.discard(id(node))

    def count_value(self, node: yaml.Node, path: Path) -> None:
        """Count one more value; _TooLarge past MAX_VALUES values or MAX_DEPTH levels."""
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooLarge(
                node,
                path,
                f"expected at most {MAX_VALUES:,} values once aliases are expanded, "
                "received more (aliases of aliases multiply: an alias bomb?)",
            )
        if len(path) > MAX_DEPTH:
            raise _TooLarge(node, path, _TOO_DEEP)

    def build_mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.refuse(key_node, path, "expected a plain key, received a collection as a key")
                continue
            if key_node.value == "<<" and not key_node.style:  # plain, not quoted
                self.refuse(
                    key_node, path, "expected plain YAML values, received a merge key '<<' (write the fields out)"
                )
                continue
            key = key_node.value
            child = path + (key,)
            if key in result:
                first = self.doc.key_marks[child]
                self.doc.problems.append(
                    Problem(
                        self.doc.file,
                        *_position(key_node.start_mark),
                        json_path(child),
                        f"expected each key once, received a duplicate of the key at line {first[0]}",
                    )
                )
                continue
            self.doc.key_marks[child] = _position(key_node.start_mark)
            result[key] = self.build(value_node, child)
        return result

    def build_scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        try:
            return scalar_value(node.tag, node.value)
        except ValueError:
            if node.tag in _TAG_WORDS:
                words = _TAG_WORDS[node.tag]
                self.refuse(node, path, f"expected {words} after the tag {node.tag!r}, received {node.value!r}")
            else:
                self.refuse(node, path, f"expected plain YAML values, received the tag {node.tag!r}")
            return None
