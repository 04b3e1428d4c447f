"""The review web app (/ui) in a real browser (Debian's chromium driven by Playwright) against
the live stack (conftest's `stack`): upload a gold and a trainee with a missing step through the
UI, score, review with both videos in step, every page rendered, nothing fetched from another
host, /docs offline; an MPEG-4 Part 2 AVI gold plays through its browser proxy.

SOPILOT_UI_SCREENSHOTS=DIR also writes each page as it fits a 1280x800 screen, as small PNGs
(the README's docs/screenshots come from there)."""

import base64
import io
import os
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers import TOKENS, assert_range, free_port, mpeg4_avi

TASK = "ui_task"
STRIDE = 0.5  # SOPILOT_CLIP_STRIDE_SECONDS's default: "in step" means within one clip stride
CHROMIUM = os.environ.get("SOPILOT_CHROMIUM", "/usr/bin/chromium")
BASIC = ("alice", "wonder-land")  # conftest's stack: SOPILOT_BASIC_USER/_PASSWORD, role operator


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: `apt-get install chromium` (make's set-up does it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        try:
            yield b
        finally:
            b.close()


class Tab:
    """A browser tab on the stack; every request it makes is recorded, and any for another host
    is refused and remembered (the app must work offline)."""

    def __init__(self, browser, stack, shots: Path):
        self.stack, self.shots = stack, shots
        self.context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        self.page = self.context.new_page()
        self.urls, self.foreign, self.console_errors, self.auth_headers = [], [], [], []
        self.page.route("**/*", self._route)
        # script errors (a refused request's "Failed to load resource" is the page showing it, not an error)
        self.page.on(
            "console",
            lambda m: (
                m.type == "error" and "Failed to load resource" not in m.text and self.console_errors.append(m.text)
            ),
        )
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def _route(self, route):
        url = route.request.url
        self.urls.append(url)
        self.auth_headers.append(route.request.headers.get("authorization"))
        if url.startswith(self.stack.api_url + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def goto(self, path: str):
        self.page.goto(self.stack.api_url + path)

    def login(self, role: str):
        self.goto("/ui")
        self.page.wait_for_selector("#login-token, #who button:has-text('Log out')")
        if self.page.locator("#login-token").count() == 0:  # logged in already: log out first
            self.page.click("#who button:has-text('Log out')")
        self.page.fill("#login-token", TOKENS[role])
        self.page.click("#login-submit")
        self.page.wait_for_selector(f"#who:has-text('({role})')")

    def shot(self, name: str, top: str | None = None) -> bytes:
        """The whole page (checked by the tests); with SOPILOT_UI_SCREENSHOTS, also the 1280x800
        screen of it from the top, or from the element `top` when the page is taller."""
        png = self.page.screenshot(full_page=True)
        (self.shots / f"{name}.png").write_bytes(png)
        keep = os.environ.get("SOPILOT_UI_SCREENSHOTS")
        if keep:
            if top:
                self.page.locator(top).evaluate("e => e.scrollIntoView()")
            else:
                self.js("() => window.scrollTo(0, 0)")
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"{name}.png").write_bytes(small_png(self.page.screenshot()))
        return png

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)


def small_png(png: bytes) -> bytes:
    """The viewport's screenshot in 256 colours: a UI page stays legible and a fraction of the size."""
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue()


def not_blank(png: bytes):
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert img.std() > 0.05 and colours > 30, (img.std(), colours)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def admin_tab(browser, stack, shots):
    tab = Tab(browser, stack, shots)
    yield tab
    tab.context.close()


def api(stack, role="admin") -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {TOKENS[role]}"}, timeout=60)


def upload_through_ui(tab: Tab, path: Path, kind: str, site: str, camera: str) -> int:
    page = tab.page
    tab.goto("/ui/videos")
    page.wait_for_selector("#upload-form")
    page.set_input_files("#up-file", str(path))
    page.select_option("#up-role", kind)
    page.fill("#up-task", TASK)
    page.fill("#up-site", site)
    page.fill("#up-camera", camera)
    # record what the two progress bars and their texts show, as the page changes them
    tab.js("""() => { window.seen = []; const rec = () => window.seen.push([
        document.getElementById('upload-progress')?.value, document.getElementById('upload-text')?.textContent,
        document.getElementById('ingest-progress')?.value, document.getElementById('ingest-text')?.textContent]);
      new MutationObserver(rec).observe(document.getElementById('main'), {subtree: true, childList: true, characterData: true, attributes: true});
      document.getElementById('upload-progress').addEventListener('change', rec); }""")
    page.click("#up-submit")
    # ready, or the page's error (a failed ingest, a refused upload): either ends the wait
    page.wait_for_selector("#videos-message:has-text('is ready'), #videos-message.error", timeout=300_000)
    assert "is ready" in page.text_content("#videos-message"), page.text_content("#videos-message")
    seen = tab.js("() => window.seen")
    assert any(s[1] == "upload 100%" and s[0] == 1 for s in seen), seen
    ingest = [s[3] for s in seen if s[3]]
    assert ingest[-1] == "ingest completed" and any(t in ("ingest queued", "ingest running") for t in ingest), ingest
    assert any(0 < s[2] < 1 for s in seen if s[2] is not None), seen  # the ingest bar moved before it was full
    video_id = int(page.text_content("#videos-message").split()[1])
    row = page.locator(f"#video-rows tr[data-video='{video_id}']")
    assert row.count() == 1 and kind in row.inner_text() and site in row.inner_text()
    return video_id


@pytest.fixture(scope="module")
def reviewed(admin_tab, stack, suite):
    """Gold and a trainee missing a step, uploaded through the UI; scored with the Score button."""
    tab = admin_tab
    tab.login("admin")
    gold_id = upload_through_ui(tab, suite["gold"].path, "gold", "factory_a", "cam_01")
    trainee_id = upload_through_ui(tab, suite["missing"].path, "trainee", "factory_a", "cam_02")
    tab.shot("videos")
    page = tab.page
    row = page.locator(f"#video-rows tr[data-video='{trainee_id}']")
    assert row.locator("select.gold-pick").input_value() == str(gold_id)
    row.locator("button.score-btn").click()  # the second click: Videos, then Score
    page.wait_for_url("**/ui/scores/score_*")
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#score-value", timeout=180_000)
    with api(stack) as c:
        job = c.get(f"/score/{job_id}").json()
    assert job["status"] == "completed" and (job["gold_video_id"], job["trainee_video_id"]) == (gold_id, trainee_id)
    return {"gold": gold_id, "trainee": trainee_id, "job": job}


def engine_maps(suite):
    """Trainee -> gold time through the engine's own full DTW path (independently of the page):
    the gold clip centres aligned to the trainee clip whose centre is nearest t, averaged."""
    from sopilot_pipelines.core.embedding import embed_video
    from sopilot_pipelines.core.scoring import score

    g, t = embed_video(suite["gold"].path), embed_video(suite["missing"].path)
    outcome = score(g, t)
    gc, tc = (g.clip_starts + g.clip_ends) / 2, (t.clip_starts + t.clip_ends) / 2

    def to_gold(sec: float) -> float:
        j = int(np.argmin(np.abs(tc - sec)))
        return float(np.mean(gc[outcome.path[outcome.path[:, 1] == j, 0]]))

    return outcome, to_gold


def wait_ready(tab: Tab):
    tab.page.wait_for_function(
        """() => ['gold-video', 'trainee-video'].every(id => {
        const v = document.getElementById(id); return v && v.readyState >= 2 && v.duration > 0; })""",
        timeout=60_000,
    )


def times(tab: Tab):
    return tab.js(
        "() => [document.getElementById('gold-video').currentTime, document.getElementById('trainee-video').currentTime]"
    )


def settle(tab: Tab):
    tab.page.wait_for_function(
        "() => ['gold-video', 'trainee-video'].every(id => !document.getElementById(id).seeking)"
    )
    tab.page.wait_for_timeout(400)


def test_review_page_plays_both_videos_in_step(admin_tab, reviewed, suite, stack):
    tab, job = admin_tab, reviewed["job"]
    page = tab.page
    outcome, to_gold = engine_maps(suite)
    same = lambda devs: [(d["type"], d["gold_step"]) for d in devs]  # noqa: E731
    assert same(job["result"]["deviations"]) == same(outcome.result["deviations"]) == [("step_missing", 2)]
    wait_ready(tab)
    assert float(page.text_content("#score-value")) == job["score"]
    assert page.text_content("#decision").replace(" ", "_") == job["result"]["decision"]
    assert "deviation" in page.text_content("#why")
    # both step timelines: one coloured segment per run, numbered from 1; deviations marked with text
    gold_steps = {
        int(s) for s in page.locator("#gold-timeline .seg").evaluate_all("els => els.map(e => e.dataset.step)")
    }
    assert gold_steps == set(range(len(job["result"]["gold_steps"])))
    assert page.locator("#gold-timeline .seg").first.inner_text() == "1"
    assert page.locator("#trainee-timeline .mark").count() + page.locator("#gold-timeline .mark").count() >= 1

    # a seek of the trainee moves the gold to its aligned time (within one clip stride)
    for t in (14.2, 6.0, 17.5):
        tab.js("t => { document.getElementById('trainee-video').currentTime = t; }", t)
        settle(tab)
        g, tr = times(tab)
        assert tr == pytest.approx(t, abs=0.05)
        assert g == pytest.approx(to_gold(t), abs=STRIDE), (t, g, to_gold(t))
    # from the keyboard: the trainee timeline is a slider; the arrow key seeks 1 s and the gold follows
    page.focus("#trainee-timeline")
    page.keyboard.press("ArrowRight")
    settle(tab)
    g, tr = times(tab)
    assert tr == pytest.approx(18.5, abs=0.1) and g == pytest.approx(to_gold(tr), abs=STRIDE)

    # the missing step's deviation: a click seeks both videos to it
    missing = [d for d in job["result"]["deviations"] if d["type"] == "step_missing"]
    assert len(missing) == 1, job["result"]["deviations"]
    button = page.locator("button.dev[data-type='step_missing']")
    assert "Missing step" in button.inner_text() and f"step {missing[0]['gold_step'] + 1}" in button.inner_text()
    button.click()
    settle(tab)
    g, tr = times(tab)
    assert g == pytest.approx(missing[0]["gold_time"]["start_sec"], abs=0.05)
    # not done by the trainee: the trainee goes to where the step belonged, the gold's aligned time
    assert to_gold(tr) == pytest.approx(missing[0]["gold_time"]["start_sec"], abs=2 * STRIDE), (g, tr)
    tab.shot("score_review", top=".grid2:has(#gold-video)")  # the videos, both timelines, the deviation

    # play: both play and stay in step
    tab.js("() => { document.getElementById('trainee-video').currentTime = 3; }")
    settle(tab)
    page.click("#play-both")
    page.wait_for_timeout(2500)
    state = tab.js("""() => ['gold-video', 'trainee-video'].map(id => {
        const v = document.getElementById(id); return [v.paused, v.currentTime]; })""")
    (g_paused, g), (t_paused, tr) = state
    assert not g_paused and not t_paused and tr > 4, state
    assert g == pytest.approx(to_gold(tr), abs=2 * STRIDE), (g, tr, to_gold(tr))
    page.click("text=Pause")
    # PDF and JSON: fetched with the header, offered as downloads
    with page.expect_download() as dl:
        page.click("#pdf-link")
    assert Path(dl.value.path()).read_bytes()[:4] == b"%PDF"
    with page.expect_download() as dl:
        page.click("#json-link")
    assert '"score_job_id"' in Path(dl.value.path()).read_text()
    assert not tab.foreign and not tab.console_errors, (tab.foreign, tab.console_errors)


def proxy_of(stack, video_id: int) -> Path:
    return Path(stack.data_dir) / "proxies" / f"video_{video_id}.mp4"


def test_video_bytes_are_seekable_and_credentials_never_in_a_url(admin_tab, reviewed, suite, stack):
    tab = admin_tab
    raw = suite["gold"].path.read_bytes()
    proxy = proxy_of(stack, reviewed["gold"]).read_bytes()  # written by the ingest
    assert proxy != raw
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["sopilot_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert tab.js("() => document.cookie") == ""  # not readable from scripts
    url = f"{stack.api_url}/videos/{reviewed['gold']}/stream"
    with httpx.Client(timeout=30) as c:
        assert c.get(url).status_code == 401
    with httpx.Client(timeout=30, cookies={"sopilot_session": session["value"]}) as c:
        # /stream: the browser proxy, by the session cookie (a <video> sends no header)
        assert_range(c, url, proxy, "video/mp4")
    with httpx.Client(timeout=30, cookies={"sopilot_session": session["value"] + "x"}) as c:
        assert c.get(url).status_code == 401
    with api(stack, "viewer") as c:
        # /file: the original upload, with the header
        assert_range(c, f"/videos/{reviewed['gold']}/file", raw, "video/mp4")
        assert c.get(f"/videos/{reviewed['gold']}/file").content == raw
    for token in TOKENS.values():
        assert not any(token in u for u in tab.urls)
    assert not any("authorization" in u.lower() or "token=" in u.lower() for u in tab.urls)


def test_tasks_sop_and_exemplar_pages(admin_tab, reviewed, stack):
    tab, page, job = admin_tab, admin_tab.page, reviewed["job"]
    steps = job["result"]["gold_steps"]
    tab.goto("/ui")
    card = page.locator(f"section.task[data-task='{TASK}']")
    card.wait_for(timeout=30_000)
    assert f"video {reviewed['gold']}" in card.inner_text()
    assert card.locator(".pass-rate").inner_text() == "pass rate 0% (0/1)"
    assert card.locator(f"a[href='/ui/scores/{job['score_job_id']}']").count() == 1
    # the deviation chart has a bar for the missing step, labelled by type in its legend
    assert card.locator(".deviation-chart rect").count() == len(job["result"]["deviations"])
    assert "Missing step" in card.locator(".legend").first.inner_text()
    assert card.locator(".duration-chart rect").count() >= len(steps) - 1  # the missing step has no duration
    not_blank(tab.shot("tasks"))

    tab.goto(f"/ui/tasks/{TASK}/sop")
    page.wait_for_selector("#sop-steps tr[data-step]")
    with api(stack) as c:
        sop = c.get(f"/tasks/{TASK}/sop").json()
    assert sop["version"] == 0 and sop["source"] == "auto" and len(sop["steps"]) == len(steps)
    assert page.text_content("#sop-version").startswith(
        f"Version 0 (automatic), marked on gold video {reviewed['gold']}"
    )
    assert page.locator("#sop-steps tr").count() == len(steps)
    assert page.locator("#sop-steps tr").first.locator("td").first.inner_text() == "1"
    assert page.locator("#sop-steps .sop-name").evaluate_all("els => els.map(e => e.value)") == [
        s["name"] for s in sop["steps"]
    ]
    not_blank(tab.shot("sop"))

    # exemplars: the task's index is built by the index sensor after ingest
    with api(stack, "viewer") as c:
        deadline = time.monotonic() + 90
        while (
            c.get("/search", params={"task_id": TASK, "video_id": reviewed["gold"], "clip_idx": 0, "k": 3}).json()[
                "items"
            ]
            == []
        ):
            assert time.monotonic() < deadline, "no index built"
            time.sleep(1)
    tab.goto(f"/ui/exemplars?task={TASK}&step=2")
    page.wait_for_selector(".exemplar", timeout=30_000)
    assert page.locator(".exemplar").count() >= 3
    assert f"step 2 · {steps[1]['name']}" in page.text_content("#ex-message")
    page.locator(".exemplar video").first.evaluate(
        "v => new Promise(r => v.readyState >= 1 ? r() : v.addEventListener('loadedmetadata', r))"
    )
    not_blank(tab.shot("exemplars"))
    assert not tab.foreign and not tab.console_errors, (tab.foreign, tab.console_errors)


def test_docs_render_offline(admin_tab, stack):
    tab = admin_tab
    tab.goto("/docs")
    tab.page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "SOPilot API" in tab.page.text_content(".swagger-ui .info .title")
    tab.page.wait_for_selector(".opblock-tag", timeout=30_000)
    assert tab.page.locator(".opblock").count() > 10
    not_blank(tab.shot("docs"))
    assert not tab.foreign, tab.foreign


def test_roles_and_errors_shown(browser, stack, reviewed, shots):
    tab = Tab(browser, stack, shots)
    try:
        page = tab.page
        tab.goto("/ui")
        page.fill("#login-token", "wrong-token")
        page.click("#login-submit")
        page.wait_for_selector("#login-error:has-text('401')")
        tab.login("viewer")
        tab.goto("/ui/videos")
        page.wait_for_selector("#video-rows tr")
        assert page.locator("#upload-form").count() == 0 and "operator role" in page.text_content("main")
        assert page.locator(".score-btn").count() == 0 and page.locator(".delete-btn").count() == 0
        tab.goto(f"/ui/tasks/{TASK}/sop")
        page.wait_for_selector("#sop-steps tr[data-step]")
        assert "needs the admin role" in page.text_content("#sop-readonly") and page.locator("#sop-save").count() == 0
        tab.goto("/ui/scores/score_20990101_000000_ffffff")
        page.wait_for_selector("main .error:has-text('404')")
        # a new tab has the session cookie but not the header: the page asks for the credentials
        other = tab.context.new_page()
        other.goto(stack.api_url + "/ui/videos")
        other.wait_for_selector("#login-token")
        other.close()
        tab.login("operator")
        tab.goto("/ui/videos")
        page.wait_for_selector("#video-rows tr")
        assert page.locator(".score-btn").count() >= 1 and page.locator(".delete-btn").count() == 0
    finally:
        tab.context.close()


def test_basic_credentials_login(browser, stack, reviewed, shots):
    """User and password instead of a token: asked once, sent as a Basic header on every API
    call, never in a URL, kept for this tab only (a reload stays logged in, a new tab asks)."""
    user, password = BASIC
    tab = Tab(browser, stack, shots)
    try:
        page = tab.page
        tab.goto("/ui/videos")
        page.fill("#login-user", user)
        page.fill("#login-password", "not-" + password)
        page.click("#login-submit")
        page.wait_for_selector("#login-error:has-text('401')")
        page.fill("#login-password", password)
        page.click("#login-submit")
        page.wait_for_selector(f"#who:has-text('basic:{user} (operator)')")
        page.wait_for_selector("#video-rows tr")
        assert page.locator("#upload-form").count() == 1 and page.locator(".delete-btn").count() == 0  # operator
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        sent = [h for u, h in zip(tab.urls, tab.auth_headers) if "/videos?" in u or u.endswith("/ui/session")]
        assert sent and sent[-1] == basic, sent
        page.reload()
        page.wait_for_selector("#video-rows tr")
        assert page.locator("#login-user").count() == 0 and "(operator)" in page.text_content("#who")
        assert tab.js("() => Object.keys(localStorage).length") == 0  # not kept beyond the tab
        other = tab.context.new_page()
        other.goto(stack.api_url + "/ui/videos")
        other.wait_for_selector("#login-user")
        other.close()
        assert not any(user in u or password in u or "basic" in u.lower() for u in tab.urls), tab.urls
        assert not tab.foreign and not tab.console_errors, (tab.foreign, tab.console_errors)
    finally:
        tab.context.close()


def test_admin_deletes_a_video(admin_tab, reviewed, suite, stack):
    tab, page = admin_tab, admin_tab.page
    with api(stack, "operator") as c, open(suite["swap"].path, "rb") as f:
        r = c.post("/videos", files={"file": ("swap.mp4", f, "video/mp4")}, data={"task_id": TASK})
        victim = wait_ingested(c, r.json()["ingest_job_id"])["video_id"]
    assert proxy_of(stack, victim).is_file()
    tab.goto("/ui/videos")
    row = page.locator(f"#video-rows tr[data-video='{victim}']")
    row.wait_for()
    page.once("dialog", lambda d: d.accept())
    row.locator(".delete-btn").click()
    page.wait_for_selector(f"#videos-message:has-text('Video {victim} deleted')")
    assert page.locator(f"#video-rows tr[data-video='{victim}']").count() == 0
    with api(stack) as c:
        assert c.get(f"/videos/{victim}").status_code == 404
    assert not proxy_of(stack, victim).exists()  # its browser proxy went with it
    assert not list((Path(stack.data_dir) / "embeddings").glob(f"video_{victim}.*"))


def wait_ingested(c: httpx.Client, ingest_job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while (j := c.get(f"/videos/jobs/{ingest_job_id}").json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, j
        time.sleep(0.5)
    assert j["status"] == "completed", j
    return j


def test_score_page_shows_live_status_and_failure(admin_tab, reviewed, stack):
    """A score whose run fails (its trainee's embeddings are gone) shows queued/running, then the error."""
    tab, page = admin_tab, admin_tab.page
    with (
        api(stack, "operator") as c,
        open(reviewed_path := Path(stack.data_dir) / "raw" / f"video_{reviewed['trainee']}.mp4", "rb") as f,
    ):
        up = c.post("/videos", files={"file": ("again.mp4", f, "video/mp4")}, data={"task_id": TASK}).json()
        j = wait_ingested(c, up["ingest_job_id"])
        assert reviewed_path.exists()
        emb = Path(stack.data_dir) / "embeddings" / f"video_{j['video_id']}.raw.npy"
        shutil.move(emb, emb.with_suffix(".gone"))
        r = c.post("/score", json={"gold_video_id": reviewed["gold"], "trainee_video_id": j["video_id"]})
        assert r.status_code == 200, r.text
    tab.goto(f"/ui/scores/{r.json()['score_job_id']}")
    page.wait_for_selector("#score-status .badge")
    first = page.text_content("#score-status")
    page.wait_for_selector("#score-error", timeout=120_000)
    assert first.startswith("Status: queued") or first.startswith("Status: running") or "failed" in first
    assert page.text_content("#score-error").strip()
    assert "failed" in page.text_content("#score-status")


def mss(sec: float) -> str:
    """The page's m:ss.s; JavaScript's toFixed rounds a tie (27.25) up, Python's format to even."""
    from decimal import ROUND_HALF_UP, Decimal

    tenths = Decimal(sec % 60).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{int(sec // 60)}:{tenths:04.1f}"


def test_admin_edits_and_saves_the_sop(admin_tab, reviewed, stack):
    """The SOP editor against PUT /tasks/{task_id}/sop: a refused save shows the API's 400 and
    stores nothing; a save sends the edited steps and the page shows the stored version."""
    tab, page = admin_tab, admin_tab.page
    with api(stack) as c:
        before = c.get(f"/tasks/{TASK}/sop").json()
    assert before["version"] == 0 and len(before["steps"]) >= 3
    tab.goto(f"/ui/tasks/{TASK}/sop")
    page.wait_for_selector("#sop-steps tr[data-step]")
    rows = page.locator("#sop-steps tr[data-step]")
    assert rows.count() == len(before["steps"]) and page.input_value("#sop-gold") == str(before["gold_video_id"])

    rows.nth(0).locator(".sop-name").fill("  ")
    page.click("#sop-save")
    page.wait_for_selector("#sop-message.error")
    assert "400" in page.text_content("#sop-message") and "name" in page.text_content("#sop-message")
    with api(stack) as c:
        assert c.get(f"/tasks/{TASK}/sop").json()["version"] == 0

    # rename step 1, move step 2's start to the playhead, mark the last step optional, steps 2 and 3 any order
    rows.nth(0).locator(".sop-name").fill("Pick up the part")
    s2 = before["steps"][1]
    t = round(s2["start_sec"] + 0.5, 1)
    assert t < s2["end_sec"]
    page.evaluate(
        """t => new Promise(r => { const v = document.getElementById('sop-video');
        const go = () => { v.addEventListener('seeked', r, {once: true}); v.currentTime = t; };
        v.readyState >= 1 ? go() : v.addEventListener('loadedmetadata', go, {once: true}); })""",
        t,
    )
    rows.nth(1).locator(".sop-set-start").click()
    assert rows.nth(1).locator(".sop-seek").inner_text() == mss(t)
    rows.nth(1).locator(".sop-group").fill("g1")
    rows.nth(2).locator(".sop-group").fill("g1")
    rows.last.locator(".sop-optional").check()

    # the PUT adds the partition and launches the SOP job through the Dagster webserver (30 s a
    # call at most): under a loaded machine it can take longer than a selector's 30 s
    def put(r) -> bool:
        return r.request.method == "PUT" and r.url.endswith(f"/tasks/{TASK}/sop")

    with page.expect_response(put, timeout=120_000) as answer:
        page.click("#sop-save")
    assert answer.value.status == 200, answer.value.text()
    sent = answer.value.request.post_data_json
    assert sent["gold_video_id"] == before["gold_video_id"] and sent["rescore"] is True
    assert [s["name"] for s in sent["steps"]] == ["Pick up the part"] + [s["name"] for s in before["steps"][1:]]
    assert sent["steps"][1]["start_sec"] == pytest.approx(t, abs=0.01)
    assert [s["group"] for s in sent["steps"][:3]] == [None, "g1", "g1"] and sent["steps"][-1]["optional"] is True
    page.wait_for_selector("#sop-message:has-text('Saved version 1.')")
    with api(stack) as c:
        after = c.get(f"/tasks/{TASK}/sop").json()
        assert after["version"] == 1 and after["source"] == "user" and after["steps"][0]["name"] == "Pick up the part"
        assert after["steps"][1]["start_sec"] == pytest.approx(t, abs=0.01) and after["steps"][-1]["optional"] is True
        assert [s["group"] for s in after["steps"][1:3]] == ["g1", "g1"]
        # re-scored: the trainee's latest score, linked from the message
        links = page.locator("#sop-message a.rescore-link").evaluate_all("els => els.map(e => e.textContent.trim())")
        assert links and all(c.get(f"/score/{j}").status_code == 200 for j in links)
    # what the page shows after a reload is the stored version
    tab.goto(f"/ui/tasks/{TASK}/sop")
    page.wait_for_selector("#sop-steps tr[data-step]")
    assert page.text_content("#sop-version").startswith("Version 1 (saved)")
    assert page.locator("#sop-steps .sop-name").first.input_value() == "Pick up the part"
    assert page.locator("#sop-steps .sop-optional").last.is_checked()
    assert not tab.foreign and not tab.console_errors, (tab.foreign, tab.console_errors)


def play(page, selector: str) -> dict:
    """Play the video element until its time has moved; its state after (or the media error)."""
    return page.evaluate(
        """sel => new Promise((resolve) => {
        const v = document.querySelector(sel), t0 = performance.now();
        const state = () => ({ready: v.readyState, time: v.currentTime, duration: v.duration,
                               paused: v.paused, error: v.error && v.error.code, src: v.currentSrc});
        v.addEventListener('error', () => resolve(state()), {once: true});
        v.muted = true; v.play().catch(() => {});
        (function poll() {
          if (v.error || (v.readyState >= 2 && v.currentTime > 0.5) || performance.now() - t0 > 20000) resolve(state());
          else setTimeout(poll, 100);
        })(); })""",
        selector,
    )


def test_mpeg4_avi_gold_plays_through_its_proxy_and_the_gold_switch(admin_tab, reviewed, suite, stack, tmp_path):
    """A second gold uploaded as MPEG-4 Part 2 AVI: /file serves it as it was (video/x-msvideo,
    seekable), which Chromium cannot play; /stream serves the H.264 proxy, written at ingest and,
    for a video without one (ingested before proxies), on first need; the SOP editor's gold
    switch plays it and shows the steps carried to it."""
    tab, page = admin_tab, admin_tab.page
    gold_id = reviewed["gold"]
    with api(stack) as c:
        sop = c.get(f"/tasks/{TASK}/sop").json()
        if sop["version"] == 0:  # run alone: store the steps, so that they are carried to the new gold
            keys = ("name", "start_sec", "end_sec", "optional", "group")
            steps = [{k: st[k] for k in keys} for st in sop["steps"]]
            put = c.put(f"/tasks/{TASK}/sop", json={"gold_video_id": gold_id, "steps": steps, "rescore": False})
            assert put.status_code == 200, put.text
    # slower than the first gold, so the steps carried to it are at other times
    avi = mpeg4_avi(suite["correct_slower"].path, tmp_path / "slow_gold.avi")
    avi_id = upload_through_ui(tab, avi, "gold", "factory_b", "cam_07")
    raw = avi.read_bytes()
    proxy = proxy_of(stack, avi_id)
    from sopilot_pipelines.core.video import probe

    info = probe(proxy)  # written by the ingest
    assert info.codec == "h264" and info.width <= 960 and info.width % 2 == info.height % 2 == 0
    with api(stack, "viewer") as c:
        r = c.get(f"/videos/{avi_id}/file")
        assert r.status_code == 200 and r.content == raw and r.headers["content-type"] == "video/x-msvideo"
        assert 'filename="slow_gold.avi"' in r.headers["content-disposition"]
        assert_range(c, f"/videos/{avi_id}/file", raw, "video/x-msvideo")
        assert_range(c, f"/videos/{avi_id}/stream", proxy.read_bytes(), "video/mp4")
        deadline = time.monotonic() + 60
        while str(avi_id) not in (sop := c.get(f"/tasks/{TASK}/sop").json())["per_gold"]:
            assert time.monotonic() < deadline, f"the SOP was not carried to gold {avi_id}: {sop}"
            time.sleep(1)
    carried = sop["per_gold"][str(avi_id)]
    assert len(carried) == len(sop["steps"])
    assert [mss(a) for a, _ in carried] != [mss(st["start_sec"]) for st in sop["steps"]]

    # the original, fetched with the header and handed to a <video>: Chromium cannot play it
    tab.goto(f"/ui/tasks/{TASK}/sop")
    page.wait_for_selector("#sop-steps tr[data-step]")
    tab.js(
        """([url, auth]) => fetch(url, {headers: {Authorization: auth}}).then(r => r.blob()).then(b => {
        const v = document.createElement('video'); v.id = 'raw-avi'; v.src = URL.createObjectURL(b);
        document.body.append(v); })""",
        [f"/videos/{avi_id}/file", f"Bearer {TOKENS['admin']}"],
    )
    assert play(page, "#raw-avi")["error"] == 4  # MEDIA_ERR_SRC_NOT_SUPPORTED
    tab.js("() => document.getElementById('raw-avi').remove()")

    # as if ingested before proxies: no proxy; the first request for the video writes it
    proxy.unlink()
    assert page.locator("#sop-gold option").evaluate_all("os => os.map(o => +o.value)") == [gold_id, avi_id]
    page.select_option("#sop-gold", str(avi_id))
    state = play(page, "#sop-video")
    assert state["src"].endswith(f"/videos/{avi_id}/stream") and state["error"] is None, state
    assert state["ready"] >= 2 and state["time"] > 0.5 and not state["paused"], state
    assert state["duration"] == pytest.approx(probe(avi).duration_sec, abs=0.2)
    assert proxy.is_file() and probe(proxy).codec == "h264"
    # the step times shown are the SOP's, carried to this gold; back on the first gold, its own
    seek = lambda: page.locator("#sop-steps .sop-seek").evaluate_all("bs => bs.map(b => b.textContent)")  # noqa: E731
    assert seek() == [mss(a) for a, _ in carried]
    page.select_option("#sop-gold", str(gold_id))
    assert seek() == [mss(st["start_sec"]) for st in sop["steps"]]
    assert play(page, "#sop-video")["src"].endswith(f"/videos/{gold_id}/stream")
    assert not tab.foreign and not tab.console_errors, (tab.foreign, tab.console_errors)


def test_without_auth_required_no_login(browser, tmp_path, shots):
    """SOPILOT_AUTH_REQUIRED=false: the page needs no login and acts as the default role (the real
    app in-process, no pipeline: the Videos page and the video bytes need only the catalog)."""
    import threading
    from types import SimpleNamespace

    import uvicorn

    from sopilot_api.app import create_app
    from sopilot_api.settings import ApiSettings

    app = create_app(
        ApiSettings(
            data_dir=tmp_path,
            dagster_url=f"http://127.0.0.1:{free_port()}",
            auth_required=False,
            auth_default_role="operator",
            api_token="some-token",
        )
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)
    tab = Tab(browser, SimpleNamespace(api_url=f"http://127.0.0.1:{port}"), shots)
    try:
        page = tab.page
        tab.goto("/ui/videos")
        page.wait_for_selector("#who:has-text('anonymous (operator)')")
        page.wait_for_selector("#video-rows tr")
        assert (
            page.locator("#login-token").count() == 0 and page.locator("#who button").count() == 0
        )  # nothing to log out of
        assert page.locator("#upload-form").count() == 1  # operator: may upload
        # the video bytes too answer the default role without a header or cookie (404: there is no video 1, not 401)
        assert tab.js("() => fetch('/videos/1/stream').then(r => r.status)") == 404
        assert not tab.foreign and not tab.console_errors, (tab.foreign, tab.console_errors)
    finally:
        tab.context.close()
        server.should_exit = True
        thread.join(timeout=30)
