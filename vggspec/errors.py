"""Errors a user can act on.

Every error that reaches a user is a :class:`VggspecError`. Its message says
where (file, line:column, field path, layer) and what was expected; the
command line prints it on one line per problem and exits with status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


class VggspecError(Exception):
    """Base class of every error vggspec reports to a user (exit status 2).

    ``setting`` names the setting the message is about when there is one: a parameter of
    the library such as ``epochs``, ``batch_size`` or ``run_dir``. Such a message starts
    with the setting's name (``"epochs: expected ..."``), which the command line shows as
    the flag of the option that sets it; a message about something else (a file) may name
    its setting further on in backticks (``"... use a `val_fraction` nearer 0.5"``), shown
    as that flag too. The library never writes a command line's flags itself.
    """

    def __init__(self, *args: object, setting: Optional[str] = None):
        super().__init__(*args)
        self.setting = setting


@dataclass(frozen=True)
class Problem:
    """One problem in a document: where it is and what is wrong.

    ``line`` and ``column`` are 1-based; 0 means the position is unknown.
    ``path`` is a JSON path such as ``$.layers[3]``.
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        return f"{where} {self.path}: {self.message}"


class SpecError(VggspecError):
    """A spec file (or a table of configurations) is invalid; holds every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BackendError(VggspecError):
    """A backend is unknown, its framework is missing, or it failed to build."""


class WeightsError(VggspecError):
    """A weight file is unreadable or does not fit the model."""


class DownloadError(VggspecError):
    """A download failed or its content did not match the expected size or checksum."""


class DataError(VggspecError):
    """A data set source is missing or malformed."""


class ResumeError(VggspecError):
    """A run cannot be continued as asked: no run in the folder, a setting the run fixed was
    changed, another spec, other class folders, or fewer epochs than it has finished."""
