"""The Hugging Face Hub as a source of models: `hf://OWNER/NAME[@REV]` or a plain repo id, through the Hub cache.

Nothing here reaches the network unless the user named a Hub model and the machine is online; with
`HF_HUB_OFFLINE=1` a model loads from the cache or the error says it is not cached. Every Hub call goes
through `huggingface_hub`, which reads the token itself (HF_TOKEN, the login cache): the zoo never holds it,
and `scrub` removes it from any text the zoo shows (an exception message from the Hub, say).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from zoo.errors import UserError

PREFIX = "hf://"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_REVISION_DIR = re.compile(r"^[0-9a-f]{40}$")


def is_hub_ref(ref: str) -> bool:
    """`hf://…`, or OWNER/NAME[@REV] that is not a local path."""
    if ref.startswith(PREFIX):
        return True
    name = ref.split("@", 1)[0]
    return bool(_REPO_ID.match(name)) and not Path(ref).exists()


def split_ref(ref: str) -> tuple[str, str | None]:
    """`hf://owner/name@rev` → ('owner/name', 'rev'); the repo id is checked as the Hub checks it."""
    body = ref.removeprefix(PREFIX)
    repo_id, _, revision = body.partition("@")
    check_repo_id(repo_id, what=f"Hub model '{ref}'")
    return repo_id, revision or None


def check_repo_id(repo_id: str, what: str = "repo id") -> str:
    """OWNER/NAME with the characters the Hub allows; anything else is a user error naming the rule."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserError(f"{what}: '{repo_id}' is not a valid Hub repo id ({_first_sentence(e)})") from None
    if repo_id.count("/") != 1:
        raise UserError(f"{what}: '{repo_id}' must be OWNER/NAME (e.g. my-lab/pubmed-bert-small)")
    return repo_id


def _first_sentence(e: Exception) -> str:
    return str(e).strip().split("\n")[0].rstrip(".")


def download(ref: str) -> Path:
    """The local snapshot folder of a Hub model: from the cache, or downloaded when online."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = split_ref(ref)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=offline))
    except LocalEntryNotFoundError:
        at = f" at revision {revision}" if revision else ""
        raise UserError(
            f"Hub model '{repo_id}'{at} is not in the Hub cache and HF_HUB_OFFLINE=1 forbids downloading it; "
            f"download it once online (`hf download {repo_id}`) or unset HF_HUB_OFFLINE"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise UserError(f"Hub model '{ref}': {scrub(_first_sentence(e))}") from None
    except (HfHubHTTPError, OSError) as e:
        raise UserError(f"cannot download Hub model '{ref}' ({scrub(_first_sentence(e))})") from None


def revision_of(path: Path | str | None) -> str | None:
    """The commit hash of a model folder in the Hub cache (…/snapshots/<sha>/), None for a local folder."""
    if path is None:
        return None
    p = Path(path)
    for part in (p, *p.parents):
        if _REVISION_DIR.match(part.name) and part.parent.name == "snapshots":
            return part.name
    return None


def scrub(text: str) -> str:
    """`text` without the Hub token (when one is configured): safe to print, log or raise."""
    from huggingface_hub import get_token

    token = get_token()
    return text.replace(token, "***") if token else text
