"""The version of prime-core: the single source read by the build (pyproject.toml) and by ``prime_core``."""

__version__ = "0.1.0"
