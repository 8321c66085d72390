"""unitoken-eval engine: task- and model-agnostic planning, storage, scoring glue and reporting.

Nothing in this package names a benchmark or a model; those plug in through ``unitoken_eval.harness.registry``.
"""

__version__ = "0.1.0"
