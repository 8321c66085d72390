"""Result data shipped with the package: ``published/`` holds the papers' numbers with their sources.

``runs/`` (the default place for run directories) is not part of the package and is ignored by git.
"""

from pathlib import Path

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
