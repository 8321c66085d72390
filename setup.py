"""The repository keeps one folder per part (harness/, tasks/, ...); installed, they live under one namespace,
unitoken_eval.*, so generic names such as `tasks` never collide with a user's own modules."""
from setuptools import find_packages, setup

PARTS = ["harness", "tasks", "model_adapters", "results", "integrations"]
# results/published holds data only; listed as a package so setuptools ships it without warning that it
# "would be ignored"
DATA_PACKAGES = ["results.published"]

setup(
    packages=[f"unitoken_eval.{name}" for name in find_packages(include=[f"{p}*" for p in PARTS]) + DATA_PACKAGES],
    package_dir={f"unitoken_eval.{p}": p for p in PARTS},
)
