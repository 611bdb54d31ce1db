"""Start `prime serve`: load the checkpoint, bind the socket (a taken port is one line, before any work is lost),
start the scheduler thread and run uvicorn until SIGINT / SIGTERM.

Shutdown: on the first signal the server stops accepting connections, answers 503 (Retry-After) to new requests
on open connections, and waits up to ``--grace`` seconds for the requests in flight to finish; then it exits 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

from prime_core.api import PrimeError

from .requests import Limits


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise PrimeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host") \
            from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(checkpoint: str, *, host: str, port: int, api_key: str | None, limits: Limits, device: str | None,
          runtime: str, weights: str, model_name: str | None, log_level: str) -> int:
    import uvicorn

    from prime_core.api import get_registry

    from .app import create_app
    from .service import Scheduler, Served

    if runtime != "torch" and runtime not in get_registry().names("runtime"):
        known = ", ".join(["torch", *get_registry().names("runtime")])
        raise PrimeError(f"unknown --runtime {runtime!r}; installed runtimes: {known} (pip install prime-export "
                         "for onnxruntime)")
    sock = bind(host, port)
    served = Served(checkpoint, device=device, runtime=runtime, weights=weights)
    model_id = model_name or os.path.splitext(os.path.basename(checkpoint.rstrip("/")))[0]
    if model_id == "checkpoint":  # a run folder's checkpoint.safetensors: name it after the folder
        model_id = os.path.basename(os.path.dirname(os.path.abspath(checkpoint))) or model_id
    scheduler = Scheduler(served, max_rows=limits.max_rows, max_waiting=limits.max_waiting)
    app = create_app(served, scheduler, limits, api_key=api_key, model_id=model_id)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=limits.grace, access_log=False,
                            lifespan="off")
    server = _Server(config, app, scheduler)
    scheduler.start()
    bound = sock.getsockname()
    where = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"prime serve: {model_id} (L={served.length}, ℓ={served.model.ell}) on http://{where}:{bound[1]} "
          f"({'API key required' if api_key else 'no API key: this machine only'})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        scheduler.stop()
        sock.close()
    print("prime serve: stopped", file=sys.stderr, flush=True)
    return 0


class _Server:
    """uvicorn's server, told to mark the app draining as soon as a shutdown signal arrives, and to exit normally
    afterwards (uvicorn re-raises the signal once it stopped, which would end the process with −SIGTERM)."""

    def __new__(cls, config, app, scheduler):
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig, frame):
                app.state.draining = True
                scheduler.draining = True
                super().handle_exit(sig, frame)

            @contextlib.contextmanager
            def capture_signals(self):
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
                try:
                    yield
                finally:
                    for s, handler in previous.items():
                        signal.signal(s, handler)

        return Server(config)
