"""Model adapters: one folder per model family; the engine only sees ``unitoken_eval.harness.plugin.ModelAdapter``."""
