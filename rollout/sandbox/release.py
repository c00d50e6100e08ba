"""Which release the sandbox's orders service runs: a pointer its deploy command switches.

``rollout sandbox deploy VERSION --state-dir DIR`` writes it; the running service reads it
at every ``/health`` and reports it as ``version``, so a rollback's deploy step can see the
stable release really being served again, as it would on a platform's deploy hook.
"""

from __future__ import annotations

import os
from pathlib import Path

RELEASE_FILE = "release"
UNKNOWN = "unknown"


def deploy(state_dir: str | Path, version: str) -> None:
    """Make ``version`` the release the sandbox's service runs."""
    target = Path(state_dir) / RELEASE_FILE
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(version)
    partial.replace(target)


def deployed(state_dir: str | Path | None) -> str:
    """The release the service runs now (``unknown`` before any deploy)."""
    if state_dir is None:
        return UNKNOWN
    try:
        return (Path(state_dir) / RELEASE_FILE).read_text().strip() or UNKNOWN
    except FileNotFoundError:
        return UNKNOWN
