"""Third-party backends installed for a test the way pip installs a distribution: a ``*.dist-info`` folder
whose ``entry_points.txt`` registers them in the ``vggspec.backends`` group, and their modules, in a folder
put first on the ``PYTHONPATH`` of the processes the test runs."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path


def install_plugin(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Write modules and a dist-info folder registering ``entry_points`` in the vggspec.backends group."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vggspec.backends]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


def with_site(site: Path) -> dict[str, str]:
    """The environment that puts ``site`` first on the path, before whatever the tests run with."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}
