"""Why ``torch.load(..., weights_only=True)`` refused a file, in one line that says what to do.

torch's own message spans lines, carries terminal escape codes and advises re-running with
``weights_only=False``, which would run code from the file. vggspec never does; its message
names what the file holds instead, found from the pickle's opcodes (``pickletools``: read,
nothing imported or run): a whole pickled ``nn.Module`` (``torch.save(model)``), or a pickle
that needs a global a weights-only load refuses (a function it would call, a class it would
build), and says how to save what vggspec reads: ``torch.save(model.state_dict(), PATH)``.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

from vggspec.errors import WeightsError

WHAT = "a PyTorch state dict saved with torch.save"
SAVE_INSTEAD = "save model.state_dict() with torch.save instead"
ESCAPE_CODES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([A-Za-z_][\w.]*)")
NAME = re.compile(r"[A-Za-z_][\w.]*")
MODULE_TYPES = "torch.nn.modules."  # where nn.Conv2d, nn.Sequential, ... live
MODULE_FIELDS = {"_parameters", "_buffers", "_modules"}  # every pickled nn.Module's __dict__ has them
MAX_OPCODES = 1 << 20  # a pickled model has thousands; a damaged file is not read to its end
PICKLES = 4  # a legacy (not zip) file: magic number, protocol, system info, then the object


def _opcodes(file: BinaryIO) -> Iterator[tuple[str, object]]:
    """(opcode name, argument) of the pickles at the start of ``file``, until one cannot be parsed."""
    count = 0
    for _ in range(PICKLES):
        try:
            for opcode, argument, _ in pickletools.genops(file):
                count += 1
                if count > MAX_OPCODES:
                    return
                yield opcode.name, argument
        except Exception:  # the end of the file, or bytes that are not a pickle: nothing more to learn
            return


def _pickle_words(path: Path) -> tuple[list[str], set[str]]:
    """(the globals the pickle names, ``module.name``; the short strings it holds), read from its opcodes."""
    strings: list[str] = []
    found: list[str] = []
    with open(path, "rb") as raw:
        file: BinaryIO = raw
        if zipfile.is_zipfile(path):  # torch.save's format since 1.6: the object is ARCHIVE/data.pkl
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")), None)
                file = io.BytesIO(archive.read(member) if member else b"")
        for name, argument in _opcodes(file):
            if name in ("GLOBAL", "INST") and isinstance(argument, str):
                found.append(argument.replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(argument, str) and len(argument) < 200:
                strings.append(argument)
    return found, set(strings)


def _shown(name: str) -> str:
    return name if NAME.fullmatch(name) and len(name) <= 100 else repr(name[:60])


def _sentence(text: str, limit: int = 200) -> str:
    """The first sentence of ``text`` (escape codes and line breaks out), cut at a word within ``limit``."""
    first = re.split(r"(?<=[.!?])\s", " ".join(ESCAPE_CODES.sub("", text).split()), maxsplit=1)[0].rstrip(".:")
    return first if len(first) <= limit else first[:limit].rsplit(" ", 1)[0] + " ..."


def load_error(path: Path, error: Exception) -> WeightsError:
    """The one line for a file ``torch.load(path, weights_only=True)`` refused with ``error``."""
    text = " ".join(ESCAPE_CODES.sub("", str(error)).split())
    if "Weights only load failed" not in text:
        reason = _sentence(str(error)) or type(error).__name__
        return WeightsError(f"{path}: expected {WHAT}, received a file torch cannot read ({reason})")
    try:
        found, strings = _pickle_words(path)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        found, strings = [], set()
    refused = REFUSED_GLOBAL.search(text)
    if any(name.startswith(MODULE_TYPES) for name in found) or strings >= MODULE_FIELDS:
        model = _shown(found[0]) if found else "a module"
        return WeightsError(
            f"{path}: expected {WHAT}, received a whole pickled nn.Module ({model}), not its weights "
            f"(vggspec loads with weights_only=True and will not run code from a file): {SAVE_INSTEAD}"
        )
    if refused or found:
        needed = refused.group(1) if refused else _shown(found[0])
        return WeightsError(
            f"{path}: expected {WHAT}, received a pickle that needs {needed}, which a weights-only load refuses "
            f"(vggspec loads with weights_only=True and will not run code from a file): {SAVE_INSTEAD}"
        )
    reason = _sentence(text.split("WeightsUnpickler error:", 1)[-1])
    return WeightsError(
        f"{path}: expected {WHAT}, received a pickle a weights-only load refuses ({reason}); vggspec loads with "
        f"weights_only=True and will not run code from a file: {SAVE_INSTEAD}"
    )
