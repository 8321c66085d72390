"""Model adapters: one folder per model family; the engine only sees ``model_adapters.base.ModelAdapter``."""
