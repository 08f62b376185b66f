"""Names a user may give instead of a path: the shipped model specs, the examples, and the letters of the
paper's table.

``vgg16`` is ``specs/vgg16.yaml``, ``small64`` is ``specs/examples/small64.yaml``; ``D`` (any case) is column
D of ``specs/vgg.yaml``. Anything with a YAML suffix, a slash or an existing file is a path. The specs ship
in the wheel, so the names work in any install, not only in a clone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from vggspec.errors import Problem, SpecError
from vggspec.resources import specs_dir
from vggspec.spec.table import TABLE_FILE, configuration_names


def _family(name: str) -> str:
    return name.removesuffix("_bn")


EXAMPLES = "examples"  # the folder of the shipped example specs, beside the models


def shipped_names() -> list[str]:
    """Names a user may give instead of a path: the shipped model specs, the examples and the table's letters."""
    models = sorted((p.stem for p in specs_dir().glob("*.yaml") if p.name != TABLE_FILE), key=lambda n: (_family(n), n))
    examples = sorted(p.stem for p in (specs_dir() / EXAMPLES).glob("*.yaml"))
    return models + examples + configuration_names()


def resolve(path_or_name: Union[str, Path]) -> tuple[Optional[Path], Optional[str]]:
    """(path, None) for a file, (None, letter) for a table column; raise SpecError when neither."""
    text = str(path_or_name)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists() or "/" in text:
        return candidate, None
    for shipped in (specs_dir() / f"{text}.yaml", specs_dir() / EXAMPLES / f"{text}.yaml"):
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
