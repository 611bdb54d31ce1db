"""The diffusion math of DESIGN §2 that needs no backbone (internal: reach it through ``prime_core.api``).

- ``subtokens``: the base-b sub-token map f (§2.1); ``encoder``: the sub-token embedding (§2.7)
- ``forward``: the forward (masking) process q(y_t | y₀) (§2.2); ``schedules``: α_t, α′_t, w(t)
- ``heads``: the parameterizations p_θ(x | y_t) (§2.3: joint + carry-over, joint, independent) and marginals
- ``model``: ``PrimeModel`` = backbone + map + head + schedule
- ``losses``: the valid NELBO and the joint training objective (§2.4); ``conditional``: bounds given a prefix
- ``exact``: exact likelihoods on enumerable problems (the tests' reference); ``idle``: idle steps (§2.6)

Nothing here imports from ``sampling``, ``runs``, ``plugin``, ``cli`` or ``builtin`` (import-linter checks it).
"""
