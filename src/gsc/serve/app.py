"""The web app: one static page and a small JSON API over ``JobQueue`` (Starlette, run by uvicorn).

Routes::

    GET  /                       the page (static/index.html: HTML, CSS and JS in one file, nothing fetched
                                 from elsewhere)
    GET  /api/limits             the budget range, the upload limits, the caption policies
    POST /api/compare?bpp=&caption=&caption_policy=&name=   body: the image file → 202 {"id"} | 4xx {"error"}
    POST /api/decode?name=       body: a .gsc stream → 202 {"id"} | 4xx {"error"}
    GET  /api/jobs/{id}          state, place in the queue, step, seconds so far, error, result
    GET  /api/jobs/{id}/files/{name}   a result's file (?download=1: as an attachment)

Uploads are raw request bodies (no multipart parser to install), read in chunks and refused past their
limit before they are held whole. Cheap checks (budget, empty file, image header and size) answer at
once; the work waits in the queue.
"""

from __future__ import annotations

from importlib.resources import files as package_files

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import GSCError
from ..format.container import MAX_STREAM_BYTES
from . import work
from .jobs import JobQueue, QueueFull


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, limit: int, what: str) -> bytes:
    """The request body, at most ``limit`` bytes (counted as it arrives: Content-Length can lie)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GSCError(f"{what} is {int(declared)} bytes; this server takes at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GSCError(f"{what} is over {limit} bytes, the most this server takes")
        chunks.append(chunk)
    return b"".join(chunks)


def _queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def index(request: Request) -> Response:
    return HTMLResponse(request.app.state.page)


async def get_limits(request: Request) -> Response:
    return JSONResponse(work.limits())


async def read_compare(request: Request) -> dict:
    """The compare job's options and upload; its header checked (size, kind) before it waits in the queue."""
    name = work.safe_name(request.query_params.get("name"), "upload.png")
    params = work.compare_params(request.query_params, name)
    params["data"] = await _body(request, work.MAX_UPLOAD_BYTES, name)
    await run_in_threadpool(work.probe_image, params["data"], name)
    return params


async def read_decode(request: Request) -> dict:
    name = work.safe_name(request.query_params.get("name"), "upload.gsc")
    return {"name": name, "data": await _body(request, MAX_STREAM_BYTES, name)}


def submitter(kind: str, read):
    """The POST handler of one job kind: ``read`` the request, queue the job, answer its state."""
    async def submit(request: Request) -> Response:
        try:
            job = _queue(request).submit(kind, await read(request))
        except QueueFull as e:
            return _error(str(e), 503)
        except GSCError as e:
            return _error(str(e), 400)
        return JSONResponse(_queue(request).state(job), status_code=202)
    return submit


async def job_state(request: Request) -> Response:
    job = _queue(request).get(request.path_params["id"])
    if job is None:
        return _error("no such job (finished jobs are kept a while, then forgotten)", 404)
    return JSONResponse(_queue(request).state(job))


async def job_file(request: Request) -> Response:
    job = _queue(request).get(request.path_params["id"])
    name = request.path_params["name"]
    if job is None or name not in job.files:
        return _error(f"no file {name!r} for this job", 404)
    data, media = job.files[name]
    headers = {"Cache-Control": "no-store"}
    if request.query_params.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(data, media_type=media, headers=headers)


ROUTES = [
    Route("/", index),
    Route("/api/limits", get_limits),
    Route("/api/compare", submitter("compare", read_compare), methods=["POST"]),
    Route("/api/decode", submitter("decode", read_decode), methods=["POST"]),
    Route("/api/jobs/{id:str}", job_state),
    Route("/api/jobs/{id:str}/files/{name:str}", job_file),
]


def create_app(queue: JobQueue) -> Starlette:
    """The app over ``queue`` (whose worker runs ``work.run_job``)."""
    app = Starlette(routes=ROUTES)
    app.state.queue = queue
    app.state.page = package_files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    return app
