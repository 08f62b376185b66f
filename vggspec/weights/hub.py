"""Weight files on the Hugging Face Hub, read through ``huggingface_hub``.

Files are downloaded with ``huggingface_hub.hf_hub_download``, so that the Hub's own cache
(``HF_HOME``, ``HF_HUB_CACHE``), revision pinning (a branch, a tag or a commit's 40 hex digits)
and ``HF_ENDPOINT`` (a mirror) work as users of the Hub know them; the Hub checks each file
against its ETag (the sha256 of an LFS file). huggingface_hub is imported only here, inside the
functions (without it: the install hint).

A reference is timm's spelling, ``hf-hub:OWNER/REPO[@REVISION]``. Its ``config.json`` (as timm
pushes it) says what the weights are: ``architecture`` (``vgg16``, ``vgg16_bn``: a shipped spec
of that name), ``num_classes``, and ``pretrained_cfg``'s ``mean`` and ``std``, which name
vggspec's preprocessing (:func:`preprocessing_of`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from vggspec.backends import install_hint, not_installed
from vggspec.errors import DownloadError, WeightsError
from vggspec.resources import specs_dir

HUB_PREFIX = "hf-hub:"
CONFIG_FILE = "config.json"
# a repository id as the Hub allows it: OWNER/NAME, letters, digits, '-', '_', '.' (no '--', '..' or edge '.-')
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REFERENCE = re.compile(rf"^({_NAME})/({_NAME})(?:@([A-Za-z0-9._/-]{{1,200}}))?$")
# timm's mean and std (RGB, on values scaled to 0..1) of each preprocessing mode that feeds RGB
MODES = {
    "torch": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
TOLERANCE = 1e-3


def parse_reference(text: str) -> tuple[str, Optional[str]]:
    """``hf-hub:OWNER/REPO[@REVISION]`` -> (``OWNER/REPO``, the revision or None for the default branch)."""
    match = _REFERENCE.match(text.removeprefix(HUB_PREFIX)) if text.startswith(HUB_PREFIX) else None
    if match is None or "--" in text or ".." in text:
        raise WeightsError(
            f"{text[:200]!r}: expected a Hub reference hf-hub:OWNER/REPO or hf-hub:OWNER/REPO@REVISION "
            "(letters, digits, '-', '_' and '.' in OWNER and REPO)"
        )
    return f"{match.group(1)}/{match.group(2)}", match.group(3)


def _hub() -> Any:
    try:
        import huggingface_hub
    except ModuleNotFoundError as error:
        if error.name != "huggingface_hub":
            raise
        raise WeightsError(
            not_installed("a weight file on the Hugging Face Hub", ["huggingface_hub"], install_hint("hub"))
        ) from None
    return huggingface_hub


def _reason(error: BaseException) -> str:
    """The first line of a huggingface_hub error, without its '404 Client Error.' preamble."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not re.fullmatch(r"\d{3} (Client|Server) Error\.?", line)]
    return (lines[0] if lines else type(error).__name__)[:300]


def hub_download(
    repo: str, file_name: str, revision: Optional[str] = None, *, endpoint: Optional[str] = None, progress: bool = True
) -> Path:
    """The path of ``file_name`` of ``repo`` at ``revision`` in huggingface_hub's cache, downloaded once.

    ``endpoint`` replaces ``HF_ENDPOINT`` for this call. A missing repository, revision or file, or a
    Hub that cannot be reached (with nothing cached), is one DownloadError line naming the reference."""
    hub = _hub()
    from huggingface_hub import errors
    from huggingface_hub.utils import tqdm as hub_tqdm

    where = f"hf-hub:{repo}{f'@{revision}' if revision else ''}"
    quiet: Any = None
    if not progress:

        class quiet(hub_tqdm):  # type: ignore[no-redef]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**kwargs, "disable": True})

    try:
        path = hub.hf_hub_download(repo, file_name, revision=revision, endpoint=endpoint, tqdm_class=quiet)
    except errors.RevisionNotFoundError:
        raise DownloadError(f"{where}: expected a revision of the repository, received {revision!r}") from None
    except errors.RepositoryNotFoundError:
        raise DownloadError(
            f"{where}: expected a repository on the Hub (a private or gated one: with HF_TOKEN), received a name "
            "it does not know"
        ) from None
    except errors.LocalEntryNotFoundError:  # before EntryNotFoundError, its base: the Hub was not reached
        raise DownloadError(
            f"{where}: cannot reach the Hub at {endpoint or hub.constants.ENDPOINT} (or HF_HUB_OFFLINE is set), "
            f"and {file_name} is not in its cache {hub.constants.HF_HUB_CACHE}"
        ) from None
    except errors.EntryNotFoundError:
        raise DownloadError(f"{where}: expected a file {file_name} in the repository, received none") from None
    except (errors.HfHubHTTPError, errors.FileMetadataError, OSError) as error:
        raise DownloadError(f"{where}: cannot download {file_name} ({_reason(error)})") from None
    except Exception as error:  # httpx's own errors (a bad endpoint, a proxy), whose classes vary by version
        reason = f"{type(error).__name__}: {_reason(error)}"
        raise DownloadError(f"{where}: cannot download {file_name} ({reason})") from None
    return Path(path)


def hub_cached(repo: str, file_name: str, revision: Optional[str] = None) -> Optional[Path]:
    """The cached copy of a Hub file, or None (also when huggingface_hub is not installed); no request."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ModuleNotFoundError:
        return None
    found = try_to_load_from_cache(repo, file_name, revision=revision)
    return Path(found) if isinstance(found, str) else None


@dataclass(frozen=True)
class HubConfig:
    """What a checkpoint's config.json says: the shipped spec it fits ("" when its ``architecture`` is
    none), its classes (None: not said) and its preprocessing mode."""

    spec: str
    num_classes: Optional[int]
    preprocessing: str


def preprocessing_of(mean: Any, std: Any, where: str) -> str:
    """vggspec's preprocessing mode for timm's ``mean`` and ``std``: "torch" for ImageNet's, "tf" for 0.5 and
    0.5 (each within 1e-3). Any other is refused: vggspec's "caffe" feeds BGR, which a pretrained_cfg,
    always RGB, cannot say, so numbers equal to caffe's would still mean another input."""
    for mode, (mode_mean, mode_std) in MODES.items():
        if _close(mean, mode_mean) and _close(std, mode_std):
            return mode
    raise WeightsError(
        f"{where}: pretrained_cfg: expected mean and std of a preprocessing vggspec has (torch: mean "
        f"{list(MODES['torch'][0])}, std {list(MODES['torch'][1])}; tf: mean and std 0.5), received mean "
        f"{str(mean)[:80]}, std {str(std)[:80]}"
    )


def _close(values: Any, expected: tuple[float, ...]) -> bool:
    if not isinstance(values, (list, tuple)) or len(values) != len(expected):
        return False
    numbers = [value for value in values if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return len(numbers) == len(expected) and all(
        math.isfinite(value) and abs(value - want) <= TOLERANCE for value, want in zip(numbers, expected)
    )


def read_config(path: Path, where: str) -> HubConfig:
    """A timm config.json (``architecture``, ``num_classes``, ``pretrained_cfg``) -> :class:`HubConfig`."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise WeightsError(f"{where}: {CONFIG_FILE}: expected JSON, received a file it cannot read ({error})") from None
    pretrained = config.get("pretrained_cfg") if isinstance(config, dict) else None
    if not isinstance(pretrained, dict):
        raise WeightsError(f"{where}: {CONFIG_FILE}: expected a pretrained_cfg (timm's), received none")
    architecture = config.get("architecture")
    spec = architecture if isinstance(architecture, str) and (specs_dir() / f"{architecture}.yaml").is_file() else ""
    classes = config.get("num_classes", pretrained.get("num_classes"))
    if classes is not None and (not isinstance(classes, int) or isinstance(classes, bool) or classes < 0):
        raise WeightsError(f"{where}: {CONFIG_FILE}: num_classes: expected a count, received {str(classes)[:80]}")
    mode = preprocessing_of(pretrained.get("mean"), pretrained.get("std"), f"{where}: {CONFIG_FILE}")
    return HubConfig(spec, classes, mode)
