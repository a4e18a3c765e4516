"""``corpusmill release push``: a verified release to a Hugging Face dataset repository, through
``huggingface_hub`` (``create_repo`` + ``upload_folder``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corpusmill.errors import ReleaseError
from corpusmill.release import MANIFEST, verify_release


def release_files(manifest: dict[str, Any]) -> list[str]:
    """What a push uploads: the files a verified manifest lists (data, mirrors, exports,
    configs, rejects, plots, card) and the manifest itself; nothing else that may lie in the
    folder (an editor's backup, a ``.DS_Store``)."""
    return sorted([*manifest["files"], MANIFEST])


def push_release(
    release_dir: Path, repo_id: str, private: bool = False, token: str | None = None, api: Any = None
) -> str:
    """Upload the release as one commit of the dataset repository ``repo_id`` (made if missing);
    the commit's URL. An unreachable or refusing Hub is one :class:`ReleaseError` line."""
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ReleaseError(f"--repo-id {repo_id!r}: not a Hub repository id ({exc})") from None
    manifest = verify_release(release_dir)  # a release that fails its own checks is not published
    hub = api or HfApi(token=token)
    where = f"{constants.ENDPOINT}/datasets/{repo_id}"
    try:
        hub.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = hub.upload_folder(
            folder_path=str(release_dir),
            repo_id=repo_id,
            repo_type="dataset",
            allow_patterns=release_files(manifest),
            commit_message=f"{manifest['name']} {manifest['version']} (corpusmill release)",
        )
    except OfflineModeIsEnabled:
        raise ReleaseError(f"{where}: HF_HUB_OFFLINE is set; nothing was pushed") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise ReleaseError(f"{where}: the Hub refused the push (HTTP {status}); nothing was pushed") from None
    except (httpx2.TransportError, OSError) as exc:
        raise ReleaseError(f"{where}: cannot reach the Hub ({exc}); nothing was pushed") from None
    return str(getattr(commit, "commit_url", commit))
