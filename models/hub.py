"""Download one pinned revision of a Hugging Face Hub model, with errors that say what to do.

Used by `models.store.import_hub`; every huggingface_hub / HTTP exception becomes a
`ModelImportError` in `_hub_errors`, nowhere else. Pin a commit hash: branches such as `main` move.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2  # huggingface_hub 2.x speaks httpx2, not httpx: its transport errors are not httpx's
import huggingface_hub
from huggingface_hub import errors as hf

from models import ModelImportError

# Config, tokenizer and vocab files; weights are added per repo by _allow_patterns.
_BASE_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken"]
_IGNORE_PATTERNS = ["onnx/*", "openvino/*", "coreml/*", "tflite/*", "flax_model*", "tf_model*", "rust_model*"]


def _allow_patterns(files: list[str]) -> list[str]:
    """One weight format only: safetensors when the repo has them (safe, mmap-able), else PyTorch .bin."""
    has_safetensors = any(f.endswith(".safetensors") for f in files)
    return [*_BASE_PATTERNS, "*.safetensors" if has_safetensors else "pytorch_model*.bin"]


def _cause(exc: BaseException) -> str:
    """The root cause in one line: the end of the chain says what actually failed."""
    root = exc
    for _ in range(10):
        if root.__cause__ is None:
            break
        root = root.__cause__
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}: {lines[0] if lines else ''}"[:200]


def _offline_hint(repo_id: str, name: str, revision: str | None) -> str:
    """The way round a missing network: download elsewhere, copy the folder, import it here."""
    pin = f" --revision {revision}" if revision else " --revision <commit hash>"
    return (
        f"Download it on a machine with access (hf download {repo_id}{pin} --local-dir DIR), copy DIR here "
        f"and run: python -m models import DIR --name {name}"
    )


@contextmanager
def _hub_errors(repo_id: str, revision: str | None, name: str) -> Iterator[None]:
    """Translate huggingface_hub's and httpx2's exceptions into ModelImportError, most specific first."""
    try:
        yield
    except hf.GatedRepoError as exc:
        raise ModelImportError(
            f"'{repo_id}' is gated on the Hugging Face Hub: accept its terms on huggingface.co and log in "
            f"(hf auth login), or: {_offline_hint(repo_id, name, revision)}"
        ) from exc
    except hf.RepositoryNotFoundError as exc:
        raise ModelImportError(
            f"no model '{repo_id}' on the Hugging Face Hub (check the id; private repos need `hf auth login`)"
        ) from exc
    except hf.RevisionNotFoundError as exc:
        raise ModelImportError(
            f"'{repo_id}' has no revision '{revision}' on the Hugging Face Hub (use a branch, tag or commit hash)"
        ) from exc
    except hf.HFValidationError as exc:
        raise ModelImportError(f"'{repo_id}' is neither an existing folder nor a valid Hugging Face Hub id") from exc
    except hf.HfHubHTTPError as exc:
        raise ModelImportError(f"the Hugging Face Hub refused '{repo_id}': {_cause(exc)}") from exc
    except (OSError, httpx2.HTTPError) as exc:
        raise ModelImportError(
            f"cannot download '{repo_id}' from the Hugging Face Hub (no network?): {_cause(exc)}. "
            + _offline_hint(repo_id, name, revision)
        ) from exc


def download(repo_id: str, dest: Path, *, revision: str | None, name: str) -> str:
    """Fetch `repo_id` at `revision` into `dest`; returns the commit hash actually downloaded.

    The revision is resolved to a commit first, and that commit is downloaded, so a branch that
    moves mid-download cannot mix two versions. `name` only feeds the hints in error messages.
    """
    with _hub_errors(repo_id, revision, name):
        # A fresh HfApi reads the endpoint now; the module-level one froze it at import.
        info = huggingface_hub.HfApi().model_info(repo_id, revision=revision)
        commit = info.sha or revision or ""
        files = [s.rfilename for s in info.siblings or []]
        huggingface_hub.snapshot_download(
            repo_id=repo_id,
            revision=commit or None,
            allow_patterns=_allow_patterns(files),
            ignore_patterns=_IGNORE_PATTERNS,
            local_dir=dest,
        )
    return commit
