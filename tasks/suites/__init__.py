"""Shipped run configurations, registered as suites: ``unitoken-eval run --suite smoke``."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
SMOKE = str(_HERE / "smoke.yaml")
PAPER = str(_HERE / "paper.yaml")
FULL = str(_HERE / "full.yaml")
CI = str(_HERE / "ci.yaml")
