"""prime-plugin-dit: the DiT backbone of MDLM-style text models for MDM-Prime, and its causal AR baseline."""

from .ar import ARNLLMetric, ARSampler, DiTAR, ar_log_probs, ar_nll
from .model import DiT, DiTConfig, PRESETS

__all__ = ["ARNLLMetric", "ARSampler", "DiT", "DiTAR", "DiTConfig", "PRESETS", "ar_log_probs", "ar_nll"]
