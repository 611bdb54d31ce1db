"""Runs: config → components → trainer → checkpoint → evaluation (internal: reach it through ``prime_core.api``).

- ``config``: the attrs configs and TOML loading; ``build``: components from a config (through a registry)
- ``checkpoint`` (JSON + safetensors), ``trainstate`` (the trainer's resumable state), ``rundir`` (run folders,
  ``--force``), ``keep`` (best checkpoint), ``trainlog`` (metrics.jsonl, TensorBoard), ``divergence``
- ``validation`` (held-out bounds while training), ``evaluate`` / ``fileeval`` (bounds named by kind),
  ``report`` (report.md, loss.png), ``pipeline`` (``prime run``: train then sample)

Imports ``sampling``, ``diffusion``, the plugin machinery and the foundation modules; never ``cli`` or ``builtin``.
"""
