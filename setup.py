"""The repository keeps one folder per part (harness/, tasks/, ...); installed, they live under one namespace,
unitoken_eval.*, so generic names such as `tasks` never collide with a user's own modules."""
from setuptools import find_packages, setup

PARTS = ["harness", "tasks", "model_adapters", "results", "integrations"]

setup(
    packages=[f"unitoken_eval.{name}" for name in find_packages(include=[f"{p}*" for p in PARTS]) if name.split(".")[0] in PARTS],
    package_dir={f"unitoken_eval.{p}": p for p in PARTS},
)
