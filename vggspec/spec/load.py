"""Load a spec by path or shipped name, check it, and return a frozen :class:`Spec`.

Checking has two layers: the JSON Schema (types, known fields, token syntax)
and the semantic checks here (sizes stay ≥ 1 through every pool, widths ≥ 1,
known configuration names, a parameter budget and an activation budget). Every
problem is collected and raised together as one :class:`SpecError`.

The same checks hold for the paper's table (``specs/vgg.yaml``, a document with
``configurations``): each column must make a valid spec over the table's defaults.

Budgets, so that no spec can ask for more memory than a workstation has before
anything is allocated:

- ``MAX_PARAMS``: 10⁹ parameters (4 GB of float32; VGG19 has 1.4·10⁸);
- ``MAX_ACTIVATIONS``: 10⁹ values in all the layers' outputs for one image
  (4 GB of float32: what ``vggspec verify`` keeps per image and backend; VGG16 at
  224×224 has 1.5·10⁷, at 1024×1024 3.2·10⁸; VGG16-BN at 1024×1024 8.9·10⁸);
- ``MAX_SPEC_BYTES``: a spec file of at most 1 MiB (the shipped ones are under 3 KB).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Optional, Union

from vggspec.errors import Problem, SpecError
from vggspec.resources import specs_dir
from vggspec.spec.model import Conv, LRNParams, Spec, halves_the_map, parse_token
from vggspec.spec.schema import SPEC_SCHEMA, TABLE_SCHEMA, schema_problems
from vggspec.spec.yaml_source import Path as DocPath
from vggspec.spec.yaml_source import YamlDocument, json_path, parse_yaml

MAX_PARAMS = 1_000_000_000
MAX_ACTIVATIONS = 1_000_000_000
MAX_SPEC_BYTES = 1 << 20
# Wider than any published VGG by far; a typo such as conv3-640000 is refused at once.
MAX_WIDTH = 65_536
TABLE_FILE = "vgg.yaml"

# Fields a spec may leave out, with their values (those of keras.applications.VGG16).
DEFAULTS: dict[str, Any] = {
    "input_shape": [224, 224, 3],
    "batch_norm": False,
    "activation": "relu",
    "include_top": True,
    "fc": [4096, 4096],
    "dropout": 0.0,
    "classes": 1000,
    "classifier_activation": "softmax",
    "pooling": None,
    "preprocessing": "caffe",
    "lrn": {},
}
# Fields a column of the table gives from its FC-N and soft-max tokens.
COLUMN_FIELDS = ("fc", "classes", "classifier_activation")

Locate = Callable[[DocPath], DocPath]  # a spec field's path -> where it is written in the document


def _file_kind(mode: int) -> str:
    for test, word in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular file of at most MAX_SPEC_BYTES, UTF-8.

    A FIFO, a device or a folder is refused before it is read (reading a FIFO
    blocks until a writer comes; ``/dev/zero`` never ends).
    """

    def refuse(message: str) -> SpecError:
        return SpecError([Problem(str(path), 0, 0, "$", message)])

    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise refuse("expected a spec file, received a path that does not exist") from None
    except OSError as error:
        raise refuse(f"expected a readable spec file, received {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        raise refuse(f"expected a spec file (a regular file), received {_file_kind(status.st_mode)}")
    if status.st_size > MAX_SPEC_BYTES:
        raise refuse(f"expected a spec file of at most {MAX_SPEC_BYTES:,} bytes, received {status.st_size:,} bytes")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, even if it became a FIFO
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise refuse("expected a spec file (a regular file), received one that changed while read")
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise refuse(f"expected a readable spec file, received {error.strerror or error}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise refuse(f"expected a spec file of at most {MAX_SPEC_BYTES:,} bytes, received more")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise refuse(
            f"expected UTF-8 text, received a byte {data[error.start]:#04x} at offset {error.start} that is not"
        ) from None


def _parse_file(path: Path) -> YamlDocument:
    return parse_yaml(read_spec_text(path), str(path))


# ---------------------------------------------------------------- the paper's table


@dataclass(frozen=True)
class Table:
    """A checked table of configurations: ``columns[letter]`` lists the paper's tokens top to bottom."""

    source: str
    defaults: dict[str, Any]
    columns: dict[str, list[str]]


def is_table(doc: YamlDocument) -> bool:
    """A document with ``configurations`` is a table of them (as ``specs/vgg.yaml``), not a model spec."""
    return "configurations" in doc.data


def _is_column(tokens: list[str]) -> bool:
    """True for a column in the table's order: body tokens, then FC-N tokens, then an optional soft-max."""
    parsed = [parse_token(t) for t in tokens]
    head = [isinstance(t, (int, str)) for t in parsed]
    first = head.index(True) if True in head else len(parsed)
    widths = parsed[first:-1] if parsed[-1] == "softmax" else parsed[first:]
    return not any(head[:first]) and bool(widths) and all(isinstance(t, int) for t in widths)


def column_fields(defaults: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """A spec mapping for one column (already checked to be in the table's order) over the defaults."""
    parsed = [(token, parse_token(token)) for token in tokens]
    widths = [layer for _, layer in parsed if isinstance(layer, int)]
    return {
        **defaults,
        "layers": [token for token, layer in parsed if not isinstance(layer, (int, str))],
        "fc": widths[:-1],
        "classes": widths[-1],
        "classifier_activation": "softmax" if parsed[-1][1] == "softmax" else None,
    }


def check_table(doc: YamlDocument, source: str) -> Table:
    """A parsed table document -> checked Table, or SpecError with every problem found."""
    problems = doc.problems + schema_problems(doc, TABLE_SCHEMA)
    failed = {p.path for p in problems} | {json_path(path) for path in doc.broken}
    if any(not path.startswith(("$.defaults", "$.configurations.")) for path in failed):
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column)))  # no table to look into
    defaults = doc.data.get("defaults", {})
    invalid = {
        path.removeprefix("$.defaults.").split(".")[0].split("[")[0]
        for path in failed
        if path.startswith("$.defaults.")
    }
    for letter, tokens in doc.data["configurations"].items():
        if any(
            path == f"$.configurations.{letter}"
            or path.startswith((f"$.configurations.{letter}[", f"$.configurations.{letter}."))
            for path in failed
        ):
            continue
        if not _is_column(tokens):
            problems.append(
                doc.problem(
                    ("configurations", letter),
                    "expected convK-N, LRN and maxpool tokens, "
                    "then FC-N tokens, then an optional soft-max, received another order",
                )
            )
            continue

        def locate(path: DocPath, letter: str = letter) -> DocPath:
            if path and path[0] == "layers":
                return ("configurations", letter) + path[1:]
            if path and path[0] in defaults:
                return ("defaults",) + path
            return ("configurations", letter)

        fields = {**DEFAULTS, **column_fields(defaults, tokens), "name": _spec_name_for_letter(letter)}
        fields["lrn"] = {**DEFAULTS["lrn"], **defaults.get("lrn", {})}
        column_problems = _semantic_problems(doc, fields, locate, invalid)
        if column_problems or invalid:
            problems += column_problems
        else:
            problems += _budget_problems(doc, _to_spec(fields, f"{source}#{letter}"), locate)
    if problems:
        raise SpecError(sorted(set(problems), key=lambda p: (p.line, p.column, p.path, p.message)))
    return Table(
        source, dict(defaults), {letter: list(tokens) for letter, tokens in doc.data["configurations"].items()}
    )


@cache
def load_table(path: Optional[str] = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The table of configurations: (shared defaults, {letter: tokens}). Shipped ``specs/vgg.yaml`` by default."""
    file = Path(path) if path else specs_dir() / TABLE_FILE
    table = check_table(_parse_file(file), str(file))
    return table.defaults, table.columns


def configuration_fields(letter: str) -> dict[str, Any]:
    """A spec mapping for one column of the shipped table: its layers and head over the table's defaults."""
    defaults, columns = load_table()
    return {**column_fields(defaults, columns[letter]), "configuration": letter}


def configuration_names() -> list[str]:
    return list(load_table()[1])


# ---------------------------------------------------------------- shipped specs


def _family(name: str) -> str:
    return name.removesuffix("_bn")


def shipped_names() -> list[str]:
    """Names a user may give instead of a path: the shipped model specs and the table's letters."""
    models = sorted((p.stem for p in specs_dir().glob("*.yaml") if p.name != TABLE_FILE), key=lambda n: (_family(n), n))
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
    raise SpecError(
        [
            Problem(
                text,
                0,
                0,
                "$",
                "expected a spec file or a shipped name (" + ", ".join(shipped_names()) + f"), received {text!r}",
            )
        ]
    )


# ---------------------------------------------------------------- checks


def _semantic_problems(doc: YamlDocument, fields: dict[str, Any], locate: Locate, invalid: set[str]) -> list[Problem]:
    """Problems the schema cannot see. ``fields`` is the merged mapping (defaults, column, file);
    fields named in ``invalid`` failed the schema and are not looked at again; ``locate`` maps a
    field's path to where the document writes it."""

    def problem(path: DocPath, message: str) -> Problem:
        return doc.problem(locate(path), message)

    problems: list[Problem] = []
    if "layers" in invalid:
        return problems
    tokens = [parse_token(token) for token in fields["layers"]]
    convs = 0
    for i, (token, layer) in enumerate(zip(fields["layers"], tokens)):
        if isinstance(layer, Conv):
            convs += 1
            if not 1 <= layer.filters <= MAX_WIDTH:
                problems.append(problem(("layers", i), f"expected a width from 1 to {MAX_WIDTH:,}, received {token!r}"))
            if layer.kernel < 1 or layer.kernel % 2 == 0:
                problems.append(
                    problem(
                        ("layers", i),
                        "expected an odd kernel size (1, 3, 5, ...) so that "
                        f"'same' padding is symmetric, received {token!r}",
                    )
                )
    if convs == 0:
        problems.append(problem(("layers",), "expected at least one convolution (convK-N), received none"))
    if "input_shape" not in invalid:
        height, width = fields["input_shape"][0], fields["input_shape"][1]
        pools = sum(1 for layer in tokens if halves_the_map(layer))
        for i, layer in enumerate(tokens):
            if not halves_the_map(layer):
                continue
            if height // 2 < 1 or width // 2 < 1:
                problems.append(
                    problem(
                        ("layers", i),
                        f"expected a feature map of at least 2×2 before each "
                        f"maxpool, received {height}×{width} (an input of {fields['input_shape'][0]}×"
                        f"{fields['input_shape'][1]} has room for fewer than the {pools} pools given)",
                    )
                )
                break
            height, width = height // 2, width // 2
    if not {"include_top", "pooling"} & invalid and fields["include_top"] and fields["pooling"] is not None:
        problems.append(
            problem(
                ("pooling",),
                "expected pooling: null with include_top: true (the pooling "
                f"replaces the FC head), received {fields['pooling']!r}",
            )
        )
    if (
        not {"include_top", "classes", "classifier_activation"} & invalid
        and fields["include_top"]
        and fields["classes"] == 1
        and fields["classifier_activation"] == "softmax"
    ):
        problems.append(
            problem(
                ("classes",),
                "expected at least 2 classes with classifier_activation: softmax "
                "(a softmax over one class is always 1), received 1 (for one yes/no output use "
                "classifier_activation: sigmoid)",
            )
        )
    lrn = fields["lrn"]
    if "lrn" not in invalid and lrn.get("size", 1) % 2 == 0:
        problems.append(
            problem(
                ("lrn", "size"),
                f"expected an odd LRN size (TensorFlow needs size = 2·depth_radius + 1), received {lrn['size']}",
            )
        )
    return problems


def _to_spec(fields: dict[str, Any], source: str) -> Spec:
    return Spec(
        name=fields["name"],
        layers=tuple(parse_token(t) for t in fields["layers"]),  # type: ignore[misc]  # body tokens only
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


def _budget_problems(doc: YamlDocument, spec: Spec, locate: Locate) -> list[Problem]:
    """Refuse a spec over MAX_PARAMS (pointing at its largest layer) or MAX_ACTIVATIONS (at input_shape)."""
    from vggspec.planner.layers import Dense
    from vggspec.planner.lower import lower_to_plan

    plan = lower_to_plan(spec)
    problems = []
    if plan.total_params > MAX_PARAMS:
        largest = max(plan.layers, key=lambda layer: layer.params)
        message = (
            f"expected at most {MAX_PARAMS:,} parameters in all, received {plan.total_params:,}; "
            f"the largest layer, {largest.name}, has {largest.params:,}"
        )
        if isinstance(largest, Dense) and largest.reads_flattened is not None:
            h, w, c = largest.reads_flattened
            message += f" as it takes the flattened {h}×{w}×{c} map (add pools or set include_top: false)"
        where = largest.origin if largest.origin and largest.origin[0] in doc.data else ("layers",)
        problems.append(doc.problem(locate(where), message))
    if plan.activations_per_image > MAX_ACTIVATIONS:
        largest = max(plan.layers, key=lambda layer: layer.output_size)
        h, w, c = spec.input_shape
        dense = len(largest.output_shape) == 1
        where = (
            largest.origin
            if dense and largest.origin and largest.origin[0] in doc.data
            else (("layers",) if dense else ("input_shape",))
        )
        problems.append(
            doc.problem(
                locate(where),
                (
                    f"expected at most {MAX_ACTIVATIONS:,} activation values per image in all layers "
                    f"({MAX_ACTIVATIONS * 4 / 1e9:g} GB in float32), received {plan.activations_per_image:,} for a "
                    f"{h}×{w}×{c} input; the largest output, {largest.name}, is "
                    + "×".join(map(str, largest.output_shape))
                    + (" (give fewer units)" if dense else " (give a smaller input_shape)")
                ),
            )
        )
    return problems


def _spec_locator(doc: YamlDocument) -> Locate:
    """Fields a spec takes from its configuration are reported at ``configuration``."""

    def locate(path: DocPath) -> DocPath:
        if path and path[0] not in doc.data and "configuration" in doc.data:
            return ("configuration",)
        return path

    return locate


def check_document(doc: YamlDocument, source: str) -> Spec:
    """A parsed spec document -> checked Spec, or SpecError with every problem found."""
    data = doc.data
    if is_table(doc) and "name" not in data:
        check_table(doc, source)
        columns = ", ".join(doc.data["configurations"])
        raise SpecError(
            [
                doc.problem(
                    (),
                    f"expected a model spec (name, and configuration or layers), received a "
                    f"table of configurations ({columns}); name one of them instead (e.g. "
                    f"`configuration: {next(iter(doc.data['configurations']))}` in a spec)",
                )
            ]
        )
    problems = doc.problems + schema_problems(doc, SPEC_SCHEMA)
    invalid = {str(p.path[2:]).split(".")[0].split("[")[0] for p in problems if p.path.startswith("$.")}
    invalid |= {str(path[0]) for path in doc.broken if path}
    has_configuration, has_layers = "configuration" in data, "layers" in data
    base: dict[str, Any] = dict(DEFAULTS)
    if has_configuration and has_layers:
        problems.append(
            doc.problem(("configuration",), "expected either configuration or layers, received both", at_key=True)
        )
    elif not has_configuration and not has_layers:
        problems.append(
            doc.problem(
                (), "expected the field 'configuration' (a column of the paper's table) or 'layers', received neither"
            )
        )
    elif has_configuration and "configuration" not in invalid:
        letters = configuration_names()
        if data["configuration"] not in letters:
            problems.append(
                doc.problem(
                    ("configuration",),
                    "expected one of " + ", ".join(letters) + f", received {data['configuration']!r}",
                )
            )
        else:
            base.update(configuration_fields(data["configuration"]))
    fields: dict[str, Any] = {}
    if "layers" in base or has_layers:
        lrn = {**base.get("lrn", {}), **(data.get("lrn") if isinstance(data.get("lrn"), dict) else {})}
        fields = {**base, **data, "lrn": lrn}
        problems += _semantic_problems(doc, fields, _spec_locator(doc), invalid)
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column)))
    spec = _to_spec(fields, source)
    problems = _budget_problems(doc, spec, _spec_locator(doc))
    if problems:
        raise SpecError(problems)
    return spec


def spec_from_mapping(mapping: dict[str, Any], source: str = "<mapping>") -> Spec:
    """Check a spec given as a Python mapping (as the YAML would hold it)."""
    if not isinstance(mapping, dict):
        raise SpecError(
            [Problem(source, 0, 0, "$", f"expected a mapping of fields, received {type(mapping).__name__}")]
        )
    return check_document(YamlDocument(source, dict(mapping), {(): (0, 0)}), source)


def load_document(path_or_name: Union[str, Path]) -> Union[Spec, Table]:
    """A checked spec, or a checked table when the file is one (``vggspec validate`` takes both)."""
    path, letter = resolve(path_or_name)
    if letter is not None:
        return load_spec(letter)
    doc = _parse_file(path)  # type: ignore[arg-type]  # resolve gives a path when it gives no letter
    if is_table(doc) and "name" not in doc.data:
        return check_table(doc, str(path))
    return check_document(doc, str(path))


def load_spec(path_or_name: Union[str, Path]) -> Spec:
    """Load and check a spec: a YAML path, a shipped name (``vgg16``, ``vgg19_bn``) or a letter of the table (``D``)."""
    path, letter = resolve(path_or_name)
    if letter is not None:
        return spec_from_mapping(
            {"name": _spec_name_for_letter(letter), "configuration": letter}, f"{TABLE_FILE}#{letter}"
        )
    return check_document(_parse_file(path), str(path))  # type: ignore[arg-type]


def spec_to_mapping(spec: Spec) -> dict[str, Any]:
    """The YAML fields of a spec (``layers`` written out); ``spec_from_mapping`` reads it back."""
    return {
        "name": spec.name,
        "layers": [str(t) for t in spec.layers],
        "input_shape": list(spec.input_shape),
        "batch_norm": spec.batch_norm,
        "activation": spec.activation,
        "include_top": spec.include_top,
        "fc": list(spec.fc),
        "dropout": spec.dropout,
        "classes": spec.classes,
        "classifier_activation": spec.classifier_activation,
        "pooling": spec.pooling,
        "preprocessing": spec.preprocessing,
        "lrn": {"size": spec.lrn.size, "alpha": spec.lrn.alpha, "beta": spec.lrn.beta, "k": spec.lrn.k},
    }
