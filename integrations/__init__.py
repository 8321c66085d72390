"""Bridges to other evaluation harnesses, each behind its optional extra (``pip install '.[lmms-eval]'``).

Nothing in harness/, tasks/ or model_adapters/ imports this package; a bridge imports its harness lazily,
only when that harness calls it (or a user runs the bridge), and says which extra to install when missing.
"""
