"""Model adapters: one folder per model family; the engine only sees ``harness.plugin.ModelAdapter``."""
