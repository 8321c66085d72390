"""Where tests find data that lives outside the repository (tests that read it carry the shared_data marker)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# ../shared/data beside the checkout; UNITOKEN_EVAL_SHARED_DATA points elsewhere (a worktree, CI cache).
SHARED_DATA = Path(os.environ.get("UNITOKEN_EVAL_SHARED_DATA") or REPO.parent / "shared" / "data")
