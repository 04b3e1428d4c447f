"""The review web app at /ui, and what it needs from the API that the contract lacked.

- ``/ui``, ``/ui/...``: one HTML shell; the pages are drawn by ``static/app.js`` (plain JS, no
  build step, nothing loaded from another host) from the REST API, called with the caller's
  ``Authorization`` header.
- ``POST /ui/session`` (any role): checks the ``Authorization`` header and sets an HttpOnly,
  SameSite=Strict session cookie; ``GET /ui/session`` says who the caller is; ``DELETE`` clears it.
  The cookie is accepted only where the browser fetches by itself, without a header: the video
  bytes of a ``<video>`` element (``GET /videos/{id}/stream``). Credentials never go in a URL.
- ``GET /videos/{id}/stream`` (viewer; header or session cookie): the video's bytes for a
  browser, with HTTP Range (seeking): the browser proxy ingest writes (``proxies/video_<id>.mp4``,
  H.264 in MP4). A ready video without one (ingested before proxies, or its proxy failed) gets it
  written on this first request; until ingest is done, or when ffmpeg cannot write it, the
  original is served, with the media type of its container.
- ``GET /score/{id}/alignment`` (viewer): clip times and per-clip step labels of both videos and
  the alignment path in seconds, so the review page can keep the two videos in step.
- ``/docs`` and ``/redoc`` with their assets served by the app (fastapi-offline's copies of
  Swagger UI and ReDoc), so they work without internet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from sopilot_pipelines.storage import DataStore

from ..auth import RANK, Principal, Viewer, authenticate, basic_scheme, bearer_scheme
from ..deps import CatalogDep, DagsterDep, StoreDep
from ..routes.score import ScoreJobRow, job_state
from ..routes.videos import media_type
from ..schemas import MAX_ID
from ..settings import ApiSettings

STATIC = Path(__file__).parent / "static"
COOKIE = "sopilot_session"
SESSION_SECONDS = 8 * 3600

router = APIRouter(tags=["ui"])


# ---- session cookie ---------------------------------------------------------------------------


def _key(settings: ApiSettings) -> bytes:
    """Derived from every configured secret: changing any of them ends every session."""
    secrets = [
        settings.api_token,
        settings.api_token_role,
        *(f"{r}:{t}" for r, t in settings.role_tokens()),
        settings.basic_user,
        settings.basic_password,
        settings.basic_role,
    ]
    return hashlib.sha256("\x00".join(["sopilot-ui-session", *secrets]).encode("utf-8", "surrogateescape")).digest()


def _sign(settings: ApiSettings, principal: Principal, now: float | None = None) -> str:
    payload = json.dumps(
        {"r": principal.role, "b": principal.requested_by, "e": int((now or time.time()) + SESSION_SECONDS)}
    )
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    mac = hmac.new(_key(settings), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _from_cookie(settings: ApiSettings, value: str) -> Principal | None:
    body, _, mac = value.partition(".")
    good = hmac.new(_key(settings), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(good, mac):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    if data.get("e", 0) < time.time() or data.get("r") not in RANK:
        return None
    return Principal(data["r"], data["b"])


def _viewer_or_cookie(request: Request, _bearer=Depends(bearer_scheme), _basic=Depends(basic_scheme)) -> Principal:
    """The Authorization header when one is sent; otherwise the session cookie; otherwise what
    `authenticate` says of no credentials (the default role, or 401)."""
    settings = request.app.state.settings
    header = request.headers.get("authorization")
    cookie = request.cookies.get(COOKIE)
    if not header and cookie:
        if settings.auth_required and not settings.any_credentials:
            raise HTTPException(503, "authentication is required but no credentials are configured on the server")
        principal = _from_cookie(settings, cookie)
        if principal is None:
            raise HTTPException(401, "the session has expired or is invalid: log in again")
        return principal
    return authenticate(settings, header)  # every role may read


@router.post("/ui/session")
def login(request: Request, principal: Annotated[Principal, Depends(_viewer_or_cookie)]):
    """Check the Authorization header and set the session cookie (for <video> elements)."""
    if not request.headers.get("authorization"):
        raise HTTPException(400, "send the credentials in the Authorization header to start a session")
    settings = request.app.state.settings
    resp = JSONResponse({"role": principal.role, "requested_by": principal.requested_by})
    resp.set_cookie(
        COOKIE,
        _sign(settings, principal),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return resp


@router.get("/ui/session")
def whoami(request: Request):
    """Who the caller is, by the Authorization header alone; ``role`` null (and why, in ``detail``)
    when it is missing or refused, so the page can ask for the credentials (a 200: the browser logs
    no failed request). The session cookie is not asked: it opens only the video bytes, so a tab
    that has the cookie but not the header (a new tab) must log in; with SOPILOT_AUTH_REQUIRED=false
    no header is the default role."""
    try:
        principal = authenticate(request.app.state.settings, request.headers.get("authorization"))
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        return {"role": None, "requested_by": None, "detail": exc.detail}
    return {"role": principal.role, "requested_by": principal.requested_by}


@router.delete("/ui/session")
def logout():
    resp = JSONResponse({"logged_out": True})
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


# ---- data the pages need ----------------------------------------------------------------------

VideoIdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]


@router.get(
    "/videos/{video_id}/stream",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}},
        206: {"description": "Partial content (Range)"},
        404: {"description": "Video not found"},
    },
)
def video_stream(
    video_id: VideoIdPath, cat: CatalogDep, store: StoreDep, _: Annotated[Principal, Depends(_viewer_or_cookie)]
):
    """The video for a browser, seekable (HTTP Range): the ingest's browser proxy when there is
    one, the original otherwise. Accepts the UI's session cookie as well as the header."""
    row = cat.get_video(video_id)
    if row is None:
        raise HTTPException(404, f"video {video_id} not found")
    raw = Path(row["raw_path"] or "")
    if not row["raw_path"] or not raw.is_file():
        raise HTTPException(404, f"video {video_id} has no stored file")
    proxy = _proxy_path(store, video_id)
    if proxy is not None and not proxy.is_file() and row["status"] == "ready":
        _write_proxy_once(raw, proxy)
    path = proxy if proxy is not None and proxy.is_file() else raw
    return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "private, max-age=3600"})


def _proxy_path(store: DataStore, video_id: int) -> Path | None:
    """Where the video's proxy is (None when its directory cannot be made: the original is served)."""
    try:
        return store.proxy(video_id)
    except OSError:
        return None


_proxy_locks: dict[Path, threading.Lock] = {}
_proxy_failed: set[Path] = set()  # ffmpeg could not write these: not tried again on every Range request
_proxy_guard = threading.Lock()


def _write_proxy_once(raw: Path, proxy: Path) -> None:
    """The proxy of a video ingested without one, written by the first request that needs it;
    concurrent requests for the same video wait for that one instead of running ffmpeg again."""
    from sopilot_pipelines.core.video import VideoDecodeError, write_proxy
    from sopilot_pipelines.logs import event
    from sopilot_pipelines.settings import settings

    with _proxy_guard:
        lock = _proxy_locks.setdefault(proxy, threading.Lock())
    with lock:
        if proxy.is_file() or proxy in _proxy_failed:
            return
        try:
            sec = write_proxy(raw, proxy, threads=settings().video.decode().threads)
            event("browser_proxy", proxy=proxy.name, status="written on first request", seconds=round(sec, 3))
        except VideoDecodeError as exc:  # ffmpeg cannot: it will not on the next Range request either
            _proxy_failed.add(proxy)
            event("browser_proxy", proxy=proxy.name, status="failed: the original is served", error=str(exc))
        except OSError as exc:  # the file system (unwritable, full): may pass, so tried again next time
            event("browser_proxy", proxy=proxy.name, status="not written: the original is served", error=str(exc))


def _clip_times(cat, video_id: int) -> list[list[float]]:
    return [[c["start_sec"], c["end_sec"]] for c in cat.clips_of(video_id)]


@router.get("/score/{score_job_id}/alignment", responses={404: {"description": "Job not found or not completed"}})
def score_alignment(score_job_id: str, _: Viewer, job: ScoreJobRow, door: DagsterDep, cat: CatalogDep, store: StoreDep):
    """Both videos' clip times ([start, end] s), each clip's gold step (-1: none), and the
    alignment path as [gold clip, trainee clip] pairs (the full DTW path when the score stored
    it, else the result's preview)."""
    import numpy as np

    status, _times = job_state(door, job)
    if status != "completed" or not job.get("result_path") or not Path(job["result_path"]).exists():
        raise HTTPException(404, f"score job {score_job_id} has no result yet (status {status})")
    result = json.loads(Path(job["result_path"]).read_text())
    labels, path, full = {"gold": None, "trainee": None}, None, False
    steps_file = store.score_steps(job["job_id"])
    if steps_file.exists():
        with np.load(steps_file) as z:
            labels = {"gold": z["gold_labels"].tolist(), "trainee": z["trainee_labels"].tolist()}
            if "alignment_path" in z.files:
                path, full = z["alignment_path"].tolist(), True
    if path is None:
        path = [[p["gold_clip"], p["trainee_clip"]] for p in result.get("alignment_preview", [])]
    return {
        "score_job_id": job["job_id"],
        "gold": {
            "video_id": job["gold_video_id"],
            "clips": _clip_times(cat, job["gold_video_id"]),
            "labels": labels["gold"],
        },
        "trainee": {
            "video_id": job["trainee_video_id"],
            "clips": _clip_times(cat, job["trainee_video_id"]),
            "labels": labels["trainee"],
        },
        "path": path,
        "full_path": full,
    }


# ---- pages, assets, offline docs ----------------------------------------------------------------


def _shell() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(), headers={"Cache-Control": "no-cache"})


@router.get("/ui", include_in_schema=False)
def ui_root():
    return _shell()


@router.get("/ui/{page:path}", include_in_schema=False)
def ui_page(page: str):
    if page.startswith("static/"):
        raise HTTPException(404, "no such file")
    return _shell()


def install(app: FastAPI) -> None:
    """Mount the UI, its assets and the offline /docs and /redoc (create the app with
    docs_url=None, redoc_url=None)."""
    import fastapi_offline

    docs_assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.mount("/docs-static", StaticFiles(directory=docs_assets), name="docs-static")
    app.include_router(router)

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc():
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url="/docs-static/redoc.standalone.js",
            redoc_favicon_url="/docs-static/favicon.png",
            with_google_fonts=False,
        )
