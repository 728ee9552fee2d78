"""``gsc serve``: a local web page to try gsc on your own pictures, beside WebP at ≤ the same bytes.

A client of the codec, like ``cli`` and ``eval``: the page's comparison is ``gsc.eval.compare``'s
(``build_row``, ``render``), its codec ``gsc.codec.Codec``. Parts:

- ``app``: the Starlette app, one static page (``static/index.html``) and a JSON API;
- ``jobs``: one job at a time, FIFO, with each job's state, place in the queue and progress;
- ``work``: the checks made at once and the jobs the worker runs.

Starlette and uvicorn come with the ``serve`` extra (``pip install gsc[serve]``): a small, well-kept pair
with no build step and no assets of their own, so the page works offline.
"""

from __future__ import annotations

import os
import socket
import sys

from ..errors import GSCError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, echo=print, max_waiting: int = 8,
          keep: int = 8) -> None:
    """Serve the page on ``host:port`` (port 0: a free one) until interrupted; ``echo`` hears the address."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise GSCError(f"gsc serve needs the serve extra ({e.name} is missing): pip install 'gsc[serve]'") from None
    from ..codec import Codec
    from .jobs import JobQueue
    from .work import run_job

    if not 0 <= port <= 65535:
        raise GSCError(f"--port must be 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)        # listening before the address is printed: a client may connect at once
    except OSError as e:
        sock.close()
        raise GSCError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    bound = sock.getsockname()[1]
    queue = JobQueue(run_job(Codec()), max_waiting=max_waiting, keep=keep)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    echo(f"gsc serve: http://{shown}:{bound}/  (Ctrl-C stops)")
    config = uvicorn.Config(create_app(queue), log_level="warning", timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if queue.close():
            # torch aborts the process (std::terminate) if Python shuts down while the worker is inside an op:
            # stop now, abandoning the running job, rather than end in a core dump.
            print("gsc serve: stopped; the running job was abandoned", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(130)
