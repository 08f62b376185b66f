"""Load a spec by path or shipped name, check it, and return a frozen :class:`Spec`.

Checking has two layers: the JSON Schema (types, known fields, token syntax)
and the semantic checks here (sizes stay ≥ 1 through every pool, widths ≥ 1,
a parameter budget, known configuration names). Every problem is collected and
raised together as one :class:`SpecError`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

from vggspec.errors import Problem, SpecError
from vggspec.resources import specs_dir
from vggspec.spec.model import Conv, LRNParams, MaxPool, Spec, parse_token
from vggspec.spec.schema import SPEC_SCHEMA, TABLE_SCHEMA, schema_problems
from vggspec.spec.yaml_source import YamlDocument, parse_yaml

# A spec above this many parameters (4 GB of float32) is refused before anything is built.
MAX_PARAMS = 1_000_000_000
# Wider than any published VGG by far; a typo such as conv3-640000 is refused at once.
MAX_WIDTH = 65_536
TABLE_FILE = "vgg.yaml"

# Fields a spec may leave out, with their values (those of keras.applications.VGG16).
DEFAULTS: dict[str, Any] = {
    "input_shape": [224, 224, 3], "batch_norm": False, "activation": "relu", "include_top": True,
    "fc": [4096, 4096], "dropout": 0.0, "classes": 1000, "classifier_activation": "softmax",
    "pooling": None, "preprocessing": "caffe", "lrn": {},
}


def _parse_file(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(path), 0, 0, "$", "expected a spec file, received a path that does not exist")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError([Problem(str(path), 0, 0, "$", f"expected a readable UTF-8 text file, received {error}")]) from None
    return parse_yaml(text, str(path))


# ---------------------------------------------------------------- the paper's table


@lru_cache(maxsize=None)
def load_table(path: Optional[str] = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The table of configurations: (shared defaults, {letter: tokens}). Shipped ``specs/vgg.yaml`` by default."""
    doc = _parse_file(Path(path) if path else specs_dir() / TABLE_FILE)
    problems = schema_problems(doc, TABLE_SCHEMA)
    if problems:
        raise SpecError(problems)
    for letter, tokens in doc.data["configurations"].items():
        if not _is_column(tokens):
            problems.append(doc.problem(("configurations", letter), "expected convK-N, LRN and maxpool tokens, "
                                        "then FC-N tokens, then an optional soft-max, received another order"))
    if problems:
        raise SpecError(problems)
    return doc.data.get("defaults", {}), dict(doc.data["configurations"])


def _is_column(tokens: list[str]) -> bool:
    """True for a column in the table's order: body tokens, then FC-N tokens, then an optional soft-max."""
    parsed = [parse_token(t) for t in tokens]
    head = [isinstance(t, (int, str)) for t in parsed]
    first = head.index(True) if True in head else len(parsed)
    widths = parsed[first:-1] if parsed[-1] == "softmax" else parsed[first:]
    return not any(head[:first]) and bool(widths) and all(isinstance(t, int) for t in widths)


def configuration_fields(letter: str) -> dict[str, Any]:
    """A spec mapping for one column of the table: its layers and head over the table's defaults."""
    defaults, columns = load_table()
    parsed = [(token, parse_token(token)) for token in columns[letter]]
    widths = [layer for _, layer in parsed if isinstance(layer, int)]
    return {**defaults, "configuration": letter,
            "layers": [token for token, layer in parsed if not isinstance(layer, (int, str))],
            "fc": widths[:-1], "classes": widths[-1],
            "classifier_activation": "softmax" if parsed[-1][1] == "softmax" else None}


def configuration_names() -> list[str]:
    return list(load_table()[1])


# ---------------------------------------------------------------- shipped specs


def shipped_names() -> list[str]:
    """Names a user may give instead of a path: the shipped model specs and the table's letters."""
    models = sorted((p.stem for p in specs_dir().glob("*.yaml") if p.name != TABLE_FILE),
                    key=lambda n: (n.rstrip("_bn"), n))
    return models + configuration_names()


def _spec_name_for_letter(letter: str) -> str:
    return "vgg_" + letter.lower().replace("-", "_")


def resolve(path_or_name: Union[str, Path]) -> tuple[Optional[Path], Optional[str]]:
    """(path, None) for a file, (None, letter) for a table column; raise SpecError when neither."""
    text = str(path_or_name)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or "/" in text:
        return candidate, None
    shipped = specs_dir() / f"{text}.yaml"
    if text != Path(TABLE_FILE).stem and shipped.exists():
        return shipped, None
    letters = {name.upper(): name for name in configuration_names()}
    if text.upper() in letters:
        return None, letters[text.upper()]
    raise SpecError([Problem(text, 0, 0, "$", "expected a spec file or a shipped name ("
                             + ", ".join(shipped_names()) + f"), received {text!r}")])


# ---------------------------------------------------------------- checks


def _semantic_problems(doc: YamlDocument, fields: dict[str, Any], from_configuration: bool,
                       invalid: set[str]) -> list[Problem]:
    """Problems the schema cannot see. ``fields`` is the merged mapping (defaults, column, file);
    fields named in ``invalid`` failed the schema and are not looked at again."""

    def at(path: tuple) -> Problem:
        if from_configuration and path and path[0] == "layers" and "layers" not in doc.data:
            path = ("configuration",)
        return path

    problems = []
    if "layers" in invalid:
        return problems
    height, width = fields["input_shape"][0], fields["input_shape"][1]
    convs = 0
    for i, token in enumerate(fields["layers"]):
        layer = parse_token(token)
        if isinstance(layer, Conv):
            convs += 1
            if not 1 <= layer.filters <= MAX_WIDTH:
                problems.append(doc.problem(at(("layers", i)), f"expected a width from 1 to {MAX_WIDTH:,}, "
                                            f"received {token!r}"))
            if layer.kernel < 1 or layer.kernel % 2 == 0:
                problems.append(doc.problem(at(("layers", i)), "expected an odd kernel size (1, 3, 5, ...) so that "
                                            f"'same' padding is symmetric, received {token!r}"))
        elif isinstance(layer, MaxPool) and "input_shape" not in invalid:
            if height // 2 < 1 or width // 2 < 1:
                pools = sum(1 for t in fields["layers"] if t == "maxpool")
                problems.append(doc.problem(at(("layers", i)), f"expected a feature map of at least 2×2 before "
                                            f"each maxpool, received {height}×{width} (an input of "
                                            f"{fields['input_shape'][0]}×{fields['input_shape'][1]} has room for "
                                            f"fewer than the {pools} pools given)"))
                break
            height, width = height // 2, width // 2
    if convs == 0:
        problems.append(doc.problem(at(("layers",)), "expected at least one convolution (convK-N), received none"))
    if not {"include_top", "pooling"} & invalid and fields["include_top"] and fields["pooling"] is not None:
        problems.append(doc.problem(("pooling",), "expected pooling: null with include_top: true (the pooling "
                                    f"replaces the FC head), received {fields['pooling']!r}"))
    lrn = fields["lrn"]
    if "lrn" not in invalid and lrn.get("size", 1) % 2 == 0:
        problems.append(doc.problem(("lrn", "size"), f"expected an odd LRN size (TensorFlow needs "
                                    f"size = 2·depth_radius + 1), received {lrn['size']}"))
    return problems


def _to_spec(fields: dict[str, Any], source: str) -> Spec:
    return Spec(
        name=fields["name"],
        layers=tuple(parse_token(t) for t in fields["layers"]),
        input_shape=tuple(fields["input_shape"]),
        batch_norm=bool(fields["batch_norm"]),
        activation=fields["activation"],
        include_top=bool(fields["include_top"]),
        fc=tuple(fields["fc"]),
        dropout=float(fields["dropout"]),
        classes=int(fields["classes"]),
        classifier_activation=fields["classifier_activation"],
        pooling=fields["pooling"],
        preprocessing=fields["preprocessing"],
        lrn=LRNParams(**fields["lrn"]),
        configuration=fields.get("configuration"),
        description=fields.get("description", ""),
        source=source,
    )


def _budget_problems(doc: YamlDocument, spec: Spec, from_configuration: bool) -> list[Problem]:
    """Refuse a spec whose parameters exceed MAX_PARAMS, pointing at its largest layer written in the file."""
    from vggspec.planner.lower import lower_to_plan

    plan = lower_to_plan(spec)
    if plan.total_params <= MAX_PARAMS:
        return []
    largest = max(plan.layers, key=lambda layer: layer.params)
    message = (f"expected at most {MAX_PARAMS:,} parameters in all, received {plan.total_params:,}; "
               f"the largest layer, {largest.name}, has {largest.params:,}")
    if largest.origin and largest.origin[0] in doc.data:
        return [doc.problem(largest.origin, message)]
    if largest.kind == "dense" and "flatten" in [layer.name for layer in plan.layers]:
        h, w, c = plan.layer("flatten").attrs["from_shape"]
        message += f" as it takes the flattened {h}×{w}×{c} map (add pools or set include_top: false)"
    where = ("layers",) if "layers" in doc.data else ("configuration",) if from_configuration else ()
    return [doc.problem(where, message)]


def check_document(doc: YamlDocument, source: str) -> Spec:
    """A parsed spec document -> checked Spec, or SpecError with every problem found."""
    data = doc.data
    problems = schema_problems(doc, SPEC_SCHEMA)
    invalid = {match.group(1) for match in (re.match(r"^\$\.(\w+)", p.path) for p in problems) if match}
    has_configuration, has_layers = "configuration" in data, "layers" in data
    base: dict[str, Any] = dict(DEFAULTS)
    if has_configuration and has_layers:
        problems.append(doc.problem(("configuration",), "expected either configuration or layers, "
                                    "received both", at_key=True))
    elif not has_configuration and not has_layers:
        problems.append(doc.problem((), "expected the field 'configuration' (a column of the paper's table) "
                                    "or 'layers', received neither"))
    elif has_configuration and "configuration" not in invalid:
        letters = configuration_names()
        if data["configuration"] not in letters:
            problems.append(doc.problem(("configuration",), "expected one of " + ", ".join(letters)
                                        + f", received {data['configuration']!r}"))
        else:
            base.update(configuration_fields(data["configuration"]))
    if "layers" in base or has_layers:
        lrn = {**base.get("lrn", {}), **(data.get("lrn") if isinstance(data.get("lrn"), dict) else {})}
        fields = {**base, **data, "lrn": lrn}
        problems += _semantic_problems(doc, fields, has_configuration, invalid)
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column)))
    spec = _to_spec(fields, source)
    problems = _budget_problems(doc, spec, has_configuration)
    if problems:
        raise SpecError(problems)
    return spec


def spec_from_mapping(mapping: dict[str, Any], source: str = "<mapping>") -> Spec:
    """Check a spec given as a Python mapping (as the YAML would hold it)."""
    return check_document(YamlDocument(source, dict(mapping), {(): (0, 0)}), source)


def load_spec(path_or_name: Union[str, Path]) -> Spec:
    """Load and check a spec: a YAML path, a shipped name (``vgg16``, ``vgg19_bn``) or a letter of the table (``D``)."""
    path, letter = resolve(path_or_name)
    if letter is not None:
        return spec_from_mapping({"name": _spec_name_for_letter(letter), "configuration": letter},
                                 f"{TABLE_FILE}#{letter}")
    return check_document(_parse_file(path), str(path))


def spec_to_mapping(spec: Spec) -> dict[str, Any]:
    """The YAML fields of a spec (``layers`` written out); ``spec_from_mapping`` reads it back."""
    return {
        "name": spec.name, "layers": [str(t) for t in spec.layers], "input_shape": list(spec.input_shape),
        "batch_norm": spec.batch_norm, "activation": spec.activation, "include_top": spec.include_top,
        "fc": list(spec.fc), "dropout": spec.dropout, "classes": spec.classes,
        "classifier_activation": spec.classifier_activation, "pooling": spec.pooling,
        "preprocessing": spec.preprocessing,
        "lrn": {"size": spec.lrn.size, "alpha": spec.lrn.alpha, "beta": spec.lrn.beta, "k": spec.lrn.k},
    }
