"""One job at a time: a FIFO queue served by one worker thread, with each job's state for the page to poll.

The codec runs on a single thread, so requests never compete for the 2 cores or the models; the web
server's event loop only hands jobs over and reads their state, so the page stays responsive.
Memory is bounded by construction: at most ``max_waiting`` jobs wait (each holding one upload of at most
the app's upload limit), and only the last ``keep`` finished jobs keep their results and files.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable

from ..errors import GSCError


class QueueFull(GSCError):
    """More jobs are waiting than the server keeps."""


@dataclass
class Job:
    id: str
    kind: str                      # what ``run`` is asked to do ("compare", "decode")
    params: dict                   # the request: its upload and options
    state: str = "queued"          # queued → running → done | failed
    step: str = "waiting"          # what the worker does now, in words
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    error: str | None = None       # one line, for the page
    result: dict | None = None     # JSON for the page
    files: dict = field(default_factory=dict)   # name → (bytes, media type)
    order: int = 0                 # the n-th job the worker started (1, 2, …)


class JobQueue:
    """Submit jobs, poll them; ``run(job, progress)`` does the work and returns (result, files).

    ``run`` reports a failure the user should see as ``GSCError`` (one line); anything else is a bug and
    is reported as one line too, so the worker, and the server, keep serving.
    """

    def __init__(self, run: Callable, max_waiting: int = 8, keep: int = 8):
        self._run = run
        self.max_waiting, self.keep = max_waiting, keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._started = itertools.count(1)
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="gsc-serve-worker", daemon=True)
        self._thread.start()

    def submit(self, kind: str, params: dict) -> Job:
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} jobs are already waiting (the most this server keeps); "
                                f"try again in a minute")
            job = Job(f"{next(self._ids)}", kind, params)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._lock.notify()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run or wait before ``job`` (0 once it runs)."""
        with self._lock:
            if job.state != "queued":
                return 0
            running = any(j.state == "running" for j in self._jobs.values())
            return self._waiting.index(job) + int(running) if job in self._waiting else 0

    def close(self) -> bool:
        """Stop taking jobs; True if one is still running (the worker ends after it)."""
        with self._lock:
            self._stop = True
            self._lock.notify()
            return any(j.state == "running" for j in self._jobs.values())

    def _next(self) -> Job | None:
        with self._lock:
            while not self._waiting and not self._stop:
                self._lock.wait()
            if self._stop:
                return None
            job = self._waiting.popleft()
            job.state, job.step, job.started, job.order = "running", "starting", time.monotonic(), next(self._started)
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            def progress(text: str, job=job) -> None:
                job.step = text
            try:
                job.result, job.files = self._run(job, progress)
                job.state = "done"
            except GSCError as e:
                job.error, job.state = str(e), "failed"
            except Exception as e:  # a bug, or a hostile input the codec did not foresee: say so, keep serving
                job.error, job.state = f"internal error: {type(e).__name__}: {e}".splitlines()[0], "failed"
            finally:
                job.params = {}             # the upload is no longer needed
                job.finished = time.monotonic()
                self._forget_old()

    def _forget_old(self) -> None:
        with self._lock:
            done = [j for j in self._jobs.values() if j.state in ("done", "failed")]
            for j in done[:max(0, len(done) - self.keep)]:
                del self._jobs[j.id]

    def state(self, job: Job) -> dict:
        """The job as the page polls it."""
        now = time.monotonic()
        start = job.started or job.submitted
        return {"id": job.id, "kind": job.kind, "state": job.state, "position": self.position(job),
                "step": job.step, "order": job.order,
                "waited_s": round((job.started or now) - job.submitted, 1),
                "elapsed_s": round((job.finished or now) - start, 1) if job.started else 0.0,
                "error": job.error, "result": job.result}
