"""prime serve: an OpenAI-compatible HTTP server for prime checkpoints (docs/serving.md).

`prime_plugin_serve.engine` batches rows of the ancestral sampler step by step; `service` loads the checkpoint
and runs the scheduler thread; `requests` checks requests against the `Limits`; `app` is the FastAPI
application; `server` binds and runs it under uvicorn; `commands` adds ``prime serve`` to the CLI.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
