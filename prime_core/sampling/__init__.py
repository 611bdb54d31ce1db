"""Samplers and what they share (DESIGN §2.5) (internal: reach it through ``prime_core.api``).

- ``ancestral``: the ancestral sampler and the pieces every sampler reuses (time grid, filtering, draws, seeds)
- ``first_hitting``: the event-driven exact sampler (§2.5 item 6)
- ``remdm`` (remasking), ``confidence`` (confidence-ordered reveal), ``unit_confidence`` (§2.5 item 8)
- ``semiar``: semi-autoregressive windows; ``prompts``: prefix / infill prompts over a tokenizer
- ``counter_rng``: keyed counter-based randomness (Philox4x32-10, §2.5 item 7)

Imports only ``diffusion`` and the foundation modules (``errors``, ``interfaces``, ``fileio``).
"""
