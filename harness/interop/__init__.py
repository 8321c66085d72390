"""Reading and writing other harnesses' files (lmms-eval sample logs, VLMEvalKit prediction files).

Nothing here imports those harnesses: the formats are read as plain files, so the core stays free of them.
"""

from __future__ import annotations


class InteropError(ValueError):
    """Another harness's file that cannot be used as asked; the message names the file and line."""
