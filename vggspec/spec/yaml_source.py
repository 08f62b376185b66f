"""Read YAML safely and remember where every value came from.

PyYAML's safe loader refuses Python tags; on top of it we refuse duplicate keys
and record the 1-based (line, column) of every value and every mapping key, so
that later checks can say ``FILE:LINE:COL $.path: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from vggspec.errors import Problem, SpecError

Path = tuple  # a path into the document: keys (str) and list indices (int)

try:  # the C loader is faster where libyaml is present; both keep positions
    _SafeLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _SafeLoader = yaml.SafeLoader


_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def json_path(path: Path) -> str:
    """``("layers", 3)`` -> ``$.layers[3]``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass
class YamlDocument:
    """A parsed YAML document with the positions of its values and keys."""

    file: str
    data: Any
    value_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> Problem:
        """A :class:`Problem` located at ``path`` (its key with ``at_key``), or its nearest parent."""
        marks = self.key_marks if at_key else self.value_marks
        probe = tuple(path)
        while probe not in marks and probe:
            probe = probe[:-1]
        line, column = marks.get(probe, self.value_marks.get((), (0, 0)))
        return Problem(self.file, line, column, json_path(path), message)


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _syntax_problem(file: str, error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line, column = _position(mark) if mark is not None else (0, 0)
    what = getattr(error, "problem", None) or str(error).splitlines()[0]
    return Problem(file, line, column, "$", f"expected valid YAML, received a document where {what}")


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; raise :class:`SpecError` on syntax errors, tags, duplicates, emptiness."""
    loader = _SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as error:
        raise SpecError([_syntax_problem(file, error)]) from None
    finally:
        loader.dispose()
    if root is None:
        raise SpecError([Problem(file, 1, 1, "$", "expected a mapping, received an empty document")])

    doc = YamlDocument(file, None)
    problems: list[Problem] = []
    constructor = _SafeLoader("")

    def build(node: yaml.Node, path: Path) -> Any:
        doc.value_marks[path] = _position(node.start_mark)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            problems.append(Problem(file, *_position(node.start_mark), json_path(path),
                                    f"expected plain YAML values, received the tag {node.tag!r}"))
            return None
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(Problem(file, *_position(key_node.start_mark), json_path(path),
                                            "expected a plain key, received a collection as a key"))
                    continue
                key = str(build_scalar(key_node, path))
                child = path + (key,)
                if key in result:
                    first = doc.key_marks[child]
                    problems.append(Problem(file, *_position(key_node.start_mark), json_path(child),
                                            f"expected each key once, received a duplicate of the key "
                                            f"at line {first[0]}"))
                    continue
                doc.key_marks[child] = _position(key_node.start_mark)
                result[key] = build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(node.value)]
        return build_scalar(node, path)

    def build_scalar(node: yaml.ScalarNode, path: Path) -> Any:
        try:
            return constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            problems.append(Problem(file, *_position(node.start_mark), json_path(path),
                                    f"expected plain YAML values, received the tag {node.tag!r}"
                                    f" ({getattr(error, 'problem', error)})"))
            return None

    doc.data = build(root, ())
    constructor.dispose()
    if problems:
        raise SpecError(problems)
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"the value {doc.data!r}"
        raise SpecError([doc.problem((), f"expected a mapping of fields, received {kind}")])
    return doc
