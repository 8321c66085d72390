"""The Chameleon family (UniToken, Lumina-mGPT, Chameleon): one base adapter and the GPU engine they share.

adapter: the base ModelAdapter (load, answer, draw); the variants are ``model_adapters/unitoken/``,
``model_adapters/lumina_mgpt.py`` and ``model_adapters/chameleon.py``.
decoding: :class:`ChameleonDecoders`, the one object that owns a model's decoders, their sessions and its
derived weights.  decoders: batched greedy answers sharing image prefixes, and CFG image streams.
forward: the decoder layers on a preallocated KV cache.  weights: fused projections and float8 copies.
kv_cache (+ kv_int8_kernel): exact and int8 KV caches.  graphs: CUDA-graph replay of decode steps.
grid: an image's token layout.  sampling: CFG and seeded top-k sampling.  batching: automatic batch sizes.
vq/: Chameleon's VQ-GAN image tokenizer.
"""
