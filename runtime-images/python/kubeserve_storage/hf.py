"""hf:// downloads: every file of a Hugging Face Hub model repository at one revision, with huggingface_hub.

The client finds the Hub at HF_ENDPOINT (a mirror), else the public Hub. The token is HF_TOKEN and
nothing else: a token file left in the image or the cache never decides what a pod may read.

File names come from the Hub or the mirror. The client itself (huggingface-hub >= 2.4) refuses, before
writing it, a name that is absolute or has a `..` segment; that refusal is reported like every other.
"""

import os
import shutil
from pathlib import Path

import httpx2
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils.tqdm import disable_progress_bars

from kubeserve_storage.errors import StorageError
from kubeserve_storage.uri import HfUri

_SCRATCH = Path(".cache", "huggingface")
"""Where the client keeps its bookkeeping inside the download; removed before the model is published."""


def download(uri: HfUri, into: Path) -> None:
    """Download the repository's files into `into`, turning the client's errors into what to fix."""
    token = os.environ.get("HF_TOKEN", "").strip()
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None
    try:
        # No progress bars: redrawn per chunk, they would bury the init container's last log line.
        with disable_progress_bars():
            snapshot_download(
                uri.repo_id,
                revision=uri.revision,
                local_dir=into,
                # In the staging directory, so that nothing the client writes outlives the run.
                cache_dir=into / _SCRATCH / "hub",
                token=token or False,
                endpoint=endpoint,
            )
    except RevisionNotFoundError as error:
        raise StorageError(
            f"revision {uri.revision or 'main'!r} not found in {uri.repo_id} (HTTP 404): "
            "use a branch, tag or commit"
        ) from error
    except GatedRepoError as error:
        fix = (
            "HF_TOKEN's account has not been granted access; accept the model's terms with it"
            if token
            else "set HF_TOKEN to a token of an account that accepted the model's terms"
        )
        raise StorageError(f"{uri.repo_id} is gated (HTTP {_status(error)}): {fix}") from error
    except RepositoryNotFoundError as error:
        if _status(error) == 404:
            raise StorageError(f"repository {uri.repo_id} not found (HTTP 404): check the name") from error
        fix = (
            "HF_TOKEN cannot read it" if token else "check the name, or set HF_TOKEN to one that can read it"
        )
        raise StorageError(
            f"repository {uri.repo_id} not found or private (HTTP {_status(error)}): {fix}"
        ) from error
    except HfHubHTTPError as error:
        if _status(error) in (401, 403):
            raise StorageError(f"access denied (HTTP {_status(error)}): check HF_TOKEN") from error
        raise StorageError(f"the Hub answered HTTP {_status(error)}: {error}") from error
    except LocalEntryNotFoundError as error:
        # What the client raises when it could not list the repository and has no cached copy.
        raise StorageError(f"cannot reach the Hub: {error.__cause__ or error}") from error
    except (httpx2.HTTPError, OSError) as error:  # retries exhausted, or a file of the wrong size
        raise StorageError(f"download failed: {error}") from error
    except ValueError as error:  # as for a file name that would land outside the destination ('..')
        raise StorageError(f"the Hub client refused the repository: {error}") from error
    shutil.rmtree(into / _SCRATCH)
    if not any((into / _SCRATCH.parent).iterdir()):
        (into / _SCRATCH.parent).rmdir()
    if not any(into.iterdir()):
        raise StorageError(f"{uri.repo_id} has no files at this revision")


def _status(error: HfHubHTTPError) -> int:
    return error.response.status_code
