/* SOPilot review UI: plain JavaScript, no dependencies, no build step. Every datum comes from the
   REST API, called with the Authorization header the user gave once (kept in sessionStorage, for
   this tab only); <video> elements fetch their bytes with the HttpOnly session cookie that
   POST /ui/session sets. Nothing is ever loaded from another host. */
"use strict";

const AUTH_KEY = "sopilot.auth";
const RANK = { viewer: 0, operator: 1, admin: 2 };
const S = { auth: sessionStorage.getItem(AUTH_KEY), me: null, timers: [], gen: 0 };
const DEV_LABEL = {
  step_missing: "Missing step", order_swap: "Steps swapped", execution_deviation: "Done differently",
  over_time: "Over time", extra_step: "Extra step", step_repeated: "Repeated step",
  optional_step_skipped: "Optional step skipped",
};
const DEV_COLOUR = {
  step_missing: "#b3261e", order_swap: "#7b3fa0", execution_deviation: "#c76b00", over_time: "#2f6db5",
  extra_step: "#4a5a6a", step_repeated: "#0f7b6c", optional_step_skipped: "#9aa4b1",
};
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
  "#ff7f0e", "#393b79", "#637939", "#843c39"];

// ---- helpers ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; this.detail = detail; }
}
// a call that returns after the page was left (another route began): what called it must not draw
class Superseded extends Error {}
const orNull = (e) => { if (e instanceof Superseded) throw e; return null; }; // a failed call as null, unless superseded

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (S.auth) h["Authorization"] = S.auth;
  return h;
}

async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || "GET", headers: headers(opts.headers), credentials: "same-origin" };
  if (opts.json !== undefined) { init.body = JSON.stringify(opts.json); init.headers["Content-Type"] = "application/json"; }
  const gen = S.gen;
  const r = await fetch(path, init);
  if (gen !== S.gen) throw new Superseded(path);
  if (opts.raw) { if (!r.ok) throw new ApiError(r.status, await detailOf(r)); return r; }
  if (!r.ok) throw new ApiError(r.status, await detailOf(r));
  return r.json();
}

async function detailOf(r) {
  try { const b = await r.json(); return typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail); }
  catch (e) { return r.statusText || "error"; }
}

function explain(err) {
  if (err instanceof ApiError) {
    const what = { 401: "Not logged in or the credentials were refused (401)", 403: "Not allowed for your role (403)",
      404: "Not found (404)", 409: "Not ready yet (409)", 503: "Service unavailable (503)" }[err.status] || `Error ${err.status}`;
    return `${what}: ${err.detail}`;
  }
  return String(err && err.message || err);
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "style" && typeof v === "object") Object.assign(e.style, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) e.append(kid instanceof Node ? kid : String(kid));
  return e;
}

const svgNS = "http://www.w3.org/2000/svg";
function sv(tag, attrs, ...kids) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid instanceof Node ? kid : String(kid));
  return e;
}

function mss(sec) {
  if (sec === null || sec === undefined || isNaN(sec)) return "–";
  const s = Math.max(0, sec), m = Math.floor(s / 60), r = s - m * 60;
  return `${m}:${r.toFixed(1).padStart(4, "0")}`;
}
const stepColour = (k) => (k < 0 ? "#9aa4b1" : PALETTE[k % PALETTE.length]);
const can = (role) => S.me && RANK[S.me.role] >= RANK[role];
const main = () => document.getElementById("main");

function setMain(...kids) {
  const m = main();
  m.replaceChildren(...kids);
}

function every(ms, fn) { const t = setInterval(fn, ms); S.timers.push(t); return t; }

function go(url) { history.pushState({}, "", url); route(); }

async function download(path, name) {
  const r = await api(path, { raw: true });
  const blob = await r.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function stream(videoId) { return `/videos/${videoId}/stream`; }

// ---- login --------------------------------------------------------------------------------------

async function whoami() {
  const me = await api("/ui/session"); // by the header alone (the cookie opens only the video bytes)
  S.me = me.role ? me : null;
  return !!S.me;
}

function drawWho() {
  const who = document.getElementById("who");
  who.replaceChildren();
  if (!S.me) return;
  who.append(`${S.me.requested_by} (${S.me.role})`);
  if (S.auth) who.append(el("button", { type: "button", onclick: logout }, "Log out"));
}

async function logout() {
  S.auth = null; sessionStorage.removeItem(AUTH_KEY);
  try { await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" }); } catch (e) { /* offline */ }
  S.me = null; route();
}

function loginPage(message) {
  const err = el("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  const token = el("input", { type: "password", id: "login-token", autocomplete: "off" });
  const user = el("input", { type: "text", id: "login-user", autocomplete: "username" });
  const pass = el("input", { type: "password", id: "login-password", autocomplete: "current-password" });
  async function submit(ev) {
    ev.preventDefault();
    const header = token.value.trim() ? `Bearer ${token.value.trim()}`
      : user.value ? "Basic " + btoa(unescape(encodeURIComponent(`${user.value}:${pass.value}`))) : null;
    if (!header) { err.textContent = "Enter a token, or a user and password."; return; }
    try {
      const r = await fetch("/ui/session", { method: "POST", headers: { Authorization: header }, credentials: "same-origin" });
      if (!r.ok) throw new ApiError(r.status, await detailOf(r));
      S.auth = header; sessionStorage.setItem(AUTH_KEY, header); S.me = await r.json();
      route();
    } catch (e) { err.textContent = explain(e); }
  }
  setMain(el("section", { class: "card login" },
    el("h1", {}, "Log in"),
    el("p", { class: "muted" }, "A token, or basic credentials. They are sent as a header, kept for this tab only."),
    el("form", { onsubmit: submit },
      el("p", {}, el("label", { for: "login-token" }, "Token", token)),
      el("p", { class: "muted" }, "or"),
      el("p", {}, el("label", { for: "login-user" }, "User", user)),
      el("p", {}, el("label", { for: "login-password" }, "Password", pass)),
      el("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in")),
    err));
}

// ---- router -------------------------------------------------------------------------------------

async function route() {
  S.timers.forEach(clearInterval); S.timers = [];
  const gen = ++S.gen;
  const path = location.pathname.replace(/\/+$/, "") || "/ui";
  if (!S.me) {
    let ok = false;
    try { ok = await whoami(); } catch (e) { if (e instanceof Superseded) return; setMain(el("p", { class: "error", role: "alert" }, explain(e))); return; }
    if (!ok) { if (S.auth) { S.auth = null; sessionStorage.removeItem(AUTH_KEY); } drawWho(); loginPage(); return; }
    if (S.auth) { // renew the cookie for this tab's credentials (it may have expired)
      try { await fetch("/ui/session", { method: "POST", headers: headers(), credentials: "same-origin" }); } catch (e) { /* */ }
      if (gen !== S.gen) return;
    }
  }
  drawWho();
  let m, page = "tasks";
  try {
    if ((m = path.match(/^\/ui\/scores\/([^/]+)$/))) { page = "scores"; await scorePage(decodeURIComponent(m[1])); }
    else if ((m = path.match(/^\/ui\/tasks\/([^/]+)\/sop$/))) { page = "tasks"; await sopPage(decodeURIComponent(m[1])); }
    else if (path === "/ui/videos") { page = "videos"; await videosPage(); }
    else if (path === "/ui/exemplars") { page = "exemplars"; await exemplarsPage(); }
    else if (path === "/ui" || path === "/ui/tasks") { await tasksPage(); }
    else setMain(el("h1", {}, "Page not found"), el("p", {}, el("a", { href: "/ui", "data-nav": "" }, "Tasks")));
  } catch (e) {
    if (e instanceof Superseded) return;
    if (e instanceof ApiError && e.status === 401) { S.me = null; loginPage(explain(e)); return; }
    setMain(el("p", { class: "error", role: "alert" }, explain(e)));
  }
  document.querySelectorAll("header nav a[data-page]").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-nav]");
  if (a && a.origin === location.origin && !ev.ctrlKey && !ev.metaKey && ev.button === 0) { ev.preventDefault(); go(a.href); }
});
window.addEventListener("popstate", route);

// ---- shared data --------------------------------------------------------------------------------

async function allVideos(taskId) {
  const q = new URLSearchParams({ limit: "500" });
  if (taskId) q.set("task_id", taskId);
  return (await api(`/videos?${q}`)).items;
}

async function scoreJobs(limit) {
  const items = (await api(`/audit/trail?limit=${limit || 1000}`)).items;
  return items.filter((i) => i.job_type === "score");
}

async function taskList() { // GET /tasks when the SOP API (issue 11) is there; else from the videos
  try { const r = await api("/tasks"); return { items: r.items || r, api: true }; }
  catch (e) { if (e.status !== 404 && e.status !== 405) throw e; }
  const tasks = {};
  for (const v of await allVideos()) (tasks[v.task_id] = tasks[v.task_id] || { task_id: v.task_id }).seen = true;
  return { items: Object.values(tasks), api: false };
}

function stepsOf(result) { return (result && result.gold_steps) || []; }
function stepName(result, k) {
  const st = stepsOf(result)[k];
  return `${k + 1}${st && st.name ? " · " + st.name : ""}`;
}

/* Runs of equal labels over clips: [{label, start, end}] in seconds (clips overlap: a run ends
   where the next run's first clip starts). */
function runs(clips, labels) {
  const out = [];
  if (!clips.length || !labels) return out;
  for (let i = 0; i < labels.length && i < clips.length; i++) {
    const last = out[out.length - 1];
    if (last && last.label === labels[i]) continue;
    if (last) last.end = clips[i][0];
    out.push({ label: labels[i], start: i === 0 ? 0 : clips[i][0], end: clips[clips.length - 1][1] });
  }
  return out;
}

// ---- Score review -------------------------------------------------------------------------------

/* Trainee <-> gold time maps from the alignment path: each clip is placed at its centre; a clip
   matched to several clips of the other video maps to their mean; between clips, linear. */
function alignmentMaps(al) {
  const centre = (c) => (c[0] + c[1]) / 2;
  const gc = al.gold.clips.map(centre), tc = al.trainee.clips.map(centre);
  function build(fromIdx, toIdx, fromC, toC) {
    const acc = new Map();
    for (const p of al.path) {
      const f = p[fromIdx], t = p[toIdx];
      if (f >= fromC.length || t >= toC.length) continue;
      const a = acc.get(f) || [0, 0]; a[0] += toC[t]; a[1] += 1; acc.set(f, a);
    }
    const xs = [...acc.keys()].sort((a, b) => a - b);
    return { x: xs.map((i) => fromC[i]), y: xs.map((i) => acc.get(i)[0] / acc.get(i)[1]) };
  }
  const interp = (m) => (t) => {
    const { x, y } = m; if (!x.length) return t;
    if (t <= x[0]) return Math.max(0, y[0] - (x[0] - t));
    if (t >= x[x.length - 1]) return y[y.length - 1] + (t - x[x.length - 1]);
    let lo = 0, hi = x.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (x[mid] <= t) lo = mid; else hi = mid; }
    const f = (t - x[lo]) / ((x[hi] - x[lo]) || 1);
    return y[lo] + f * (y[hi] - y[lo]);
  };
  return { toGold: interp(build(1, 0, tc, gc)), toTrainee: interp(build(0, 1, gc, tc)) };
}

function timeline(id, label, video, clips, labels, result, deviations, side) {
  const dur = clips.length ? clips[clips.length - 1][1] : 1;
  const bar = el("div", { class: "timeline", id, role: "slider", tabindex: "0", "aria-label": `${label} timeline: arrow keys seek`,
    "aria-valuemin": "0", "aria-valuemax": dur.toFixed(1), "aria-valuenow": "0", "aria-valuetext": "0:00.0" });
  for (const r of runs(clips, labels)) {
    const name = r.label < 0 ? "other" : stepName(result, r.label);
    bar.append(el("div", { class: "seg" + (r.label < 0 ? " other" : ""), title: `${name}: ${mss(r.start)}–${mss(r.end)}`,
      "data-step": r.label, style: { left: `${(100 * r.start) / dur}%`, width: `${(100 * (r.end - r.start)) / dur}%`,
        background: r.label < 0 ? null : stepColour(r.label) } }, r.label < 0 ? "other" : `${r.label + 1}`));
  }
  deviations.forEach((d, n) => {
    const t = (side === "gold" ? d.gold_time : d.trainee_time).start_sec;
    if (t === null || t === undefined) return;
    bar.append(el("div", { class: "mark", style: { left: `${(100 * t) / dur}%` }, title: DEV_LABEL[d.type] || d.type },
      el("span", {}, `!${n + 1}`)));
  });
  const head = el("div", { class: "playhead" });
  bar.append(head);
  const seekTo = (t) => { video.currentTime = Math.min(Math.max(0, t), dur); };
  bar.addEventListener("click", (ev) => { const r = bar.getBoundingClientRect(); seekTo(((ev.clientX - r.left) / r.width) * dur); });
  bar.addEventListener("keydown", (ev) => {
    const step = ev.shiftKey ? 5 : 1;
    if (ev.key === "ArrowRight") { seekTo(video.currentTime + step); ev.preventDefault(); }
    else if (ev.key === "ArrowLeft") { seekTo(video.currentTime - step); ev.preventDefault(); }
    else if (ev.key === "Home") { seekTo(0); ev.preventDefault(); }
    else if (ev.key === " ") { video.paused ? video.play() : video.pause(); ev.preventDefault(); }
  });
  video.addEventListener("timeupdate", () => {
    head.style.left = `${(100 * video.currentTime) / dur}%`;
    bar.setAttribute("aria-valuenow", video.currentTime.toFixed(1)); bar.setAttribute("aria-valuetext", mss(video.currentTime));
  });
  return el("div", { class: "timeline-wrap" }, el("div", { class: "muted" }, `${label} steps`), bar);
}

/* Two videos kept in step: the one the user plays or seeks leads, the other follows through the
   alignment. A seek the page makes itself is flagged so it does not change the leader. */
function syncVideos(gold, trainee, maps) {
  const other = (v) => (v === gold ? trainee : gold);
  const mapFrom = (v) => (v === gold ? maps.toTrainee : maps.toGold);
  let leader = trainee;
  const set = (v, t) => { v._pageSeek = (v._pageSeek || 0) + 1; v.currentTime = Math.max(0, t); };
  function follow() {
    const f = other(leader), target = mapFrom(leader)(leader.currentTime);
    if (Math.abs(f.currentTime - target) > 0.2) set(f, target);
  }
  for (const v of [gold, trainee]) {
    v.addEventListener("seeked", () => {
      if (v._pageSeek) { v._pageSeek--; return; }
      leader = v; follow();
    });
    v.addEventListener("play", () => { if (v._pagePlay) { v._pagePlay = false; return; } leader = v; follow(); const f = other(v); if (f.paused) { f._pagePlay = true; f.play().catch(() => {}); } });
    v.addEventListener("pause", () => { if (v._pagePause) { v._pagePause = false; return; } const f = other(v); if (!f.paused) { f._pagePause = true; f.pause(); } });
  }
  (function tick() {
    if (!document.body.contains(gold)) return;
    if (!leader.paused && !leader.seeking) {
      const f = other(leader), m = mapFrom(leader), t = leader.currentTime;
      const slope = (m(t + 1) - m(t - 1)) / 2;
      f.playbackRate = Math.min(4, Math.max(0.25, slope || 1));
      if (!f.seeking) follow();
    }
    requestAnimationFrame(tick);
  })();
  return {
    seekBoth(g, t) { gold.pause(); trainee.pause(); set(gold, g); set(trainee, t); },
    playBoth() { leader = trainee; follow(); gold._pagePlay = true; trainee._pagePlay = true; trainee.play().catch(() => {}); gold.play().catch(() => {}); },
  };
}

function why(job) {
  const r = job.result, devs = r.deviations || [];
  const flagged = devs.filter((d) => d.type !== "optional_step_skipped");
  const counts = {};
  for (const d of flagged) counts[d.type] = (counts[d.type] || 0) + 1;
  const list = Object.entries(counts).map(([t, n]) => `${n} × ${DEV_LABEL[t] || t}`).join(", ");
  if (r.decision === "pass") return `Score ${r.score} with no deviation: a pass.`;
  if (!flagged.length) return `Score ${r.score} is below the pass score.`;
  return `Score ${r.score}; ${flagged.length} deviation${flagged.length > 1 ? "s" : ""} (${list}): ` +
    "a pass needs the pass score and no deviation, so a supervisor should look.";
}

async function scorePage(jobId) {
  const status = el("p", { id: "score-status", role: "status", "aria-live": "polite" }, "Loading…");
  setMain(el("h1", {}, `Score review: ${jobId}`), status);
  let job = await api(`/score/${encodeURIComponent(jobId)}`);
  while (job.status === "queued" || job.status === "running") {
    status.replaceChildren("Status: ", el("span", { class: `badge s-${job.status}` }, job.status), " — this page updates by itself.");
    await new Promise((r) => setTimeout(r, 1000));
    if (!document.body.contains(status)) return; // navigated away
    job = await api(`/score/${encodeURIComponent(jobId)}`);
  }
  if (job.status === "failed") {
    status.replaceChildren("Status: ", el("span", { class: "badge s-failed" }, "failed"));
    main().append(el("p", { class: "error", role: "alert", id: "score-error" }, job.error_message || "the score failed"));
    return;
  }
  const al = await api(`/score/${encodeURIComponent(jobId)}/alignment`);
  const r = job.result, devs = r.deviations || [];
  const gold = el("video", { id: "gold-video", src: stream(job.gold_video_id), controls: true, muted: true, preload: "auto", playsinline: true });
  const trainee = el("video", { id: "trainee-video", src: stream(job.trainee_video_id), controls: true, muted: true, preload: "auto", playsinline: true });
  gold.muted = trainee.muted = true;
  const sync = syncVideos(gold, trainee, alignmentMaps(al));
  window.sopilotSync = sync; // for keyboard users' devtools and the tests: read-only use
  const devList = el("ol", { class: "devs", id: "deviations" });
  devs.forEach((d, n) => {
    const g = d.gold_time.start_sec, t = d.trainee_time.start_sec;
    const gt = g ?? 0, tt = t ?? alignmentMaps(al).toTrainee(gt);
    devList.append(el("li", {}, el("button", { type: "button", class: "dev", "data-type": d.type, "data-gold": gt, "data-trainee": tt,
      onclick: () => sync.seekBoth(gt, tt) },
      el("span", { class: `dtype t-${d.type}` }, `!${n + 1} ${DEV_LABEL[d.type] || d.type}`),
      el("span", {}, `step ${stepName(r, d.gold_step)}` + (d.swapped_with !== undefined && d.swapped_with !== null ? ` ↔ step ${stepName(r, d.swapped_with)}` : "")),
      el("span", { class: "muted" }, `gold ${mss(g)}–${mss(d.gold_time.end_sec)}, trainee ${t === null ? "not done" : `${mss(t)}–${mss(d.trainee_time.end_sec)}`}`),
      el("span", {}, `confidence ${d.confidence !== undefined ? Number(d.confidence).toFixed(2) : "–"}`),
      el("span", { class: "muted" }, d.reason || ""))));
  });
  if (!devs.length) devList.append(el("li", {}, "No deviations."));
  status.replaceChildren("Status: ", el("span", { class: "badge s-completed" }, "completed"));
  main().append(
    el("section", { class: "card" },
      el("div", { class: "row" },
        el("span", { class: "scorebig", id: "score-value" }, String(r.score)),
        el("span", { class: `badge d-${r.decision}`, id: "decision" }, r.decision.replace("_", " "))),
      el("p", { id: "why" }, why(job)),
      el("div", { class: "row" },
        el("button", { type: "button", id: "pdf-link", onclick: () => download(`/score/${encodeURIComponent(jobId)}/report.pdf`, `${jobId}.pdf`).catch((e) => alert(explain(e))) }, "PDF report"),
        el("button", { type: "button", id: "json-link", onclick: () => download(`/score/${encodeURIComponent(jobId)}`, `${jobId}.json`).catch((e) => alert(explain(e))) }, "JSON"),
        el("button", { type: "button", class: "primary", id: "play-both", onclick: () => sync.playBoth() }, "▶ Play both"),
        el("button", { type: "button", onclick: () => { gold.pause(); trainee.pause(); } }, "❚❚ Pause"))),
    el("section", { class: "grid2" },
      el("div", { class: "card" }, el("h2", {}, `Gold (video ${job.gold_video_id})`), gold),
      el("div", { class: "card" }, el("h2", {}, `Trainee (video ${job.trainee_video_id})`), trainee)),
    el("section", { class: "card" },
      timeline("gold-timeline", "Gold", gold, al.gold.clips, al.gold.labels, r, devs, "gold"),
      timeline("trainee-timeline", "Trainee", trainee, al.trainee.clips, al.trainee.labels, r, devs, "trainee"),
      el("div", { class: "legend" }, stepsOf(r).map((st, k) => el("span", {}, el("i", { style: { background: stepColour(k) } }), stepName(r, k))),
        el("span", {}, el("i", { style: { background: "#9aa4b1" } }), "other (matches no step)"))),
    el("section", { class: "card" }, el("h2", {}, `Deviations (${devs.length})`), devList));
}

// ---- Videos -------------------------------------------------------------------------------------

function uploadWithProgress(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    if (S.auth) xhr.setRequestHeader("Authorization", S.auth);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = {}; try { body = JSON.parse(xhr.responseText); } catch (e) { /* */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body.detail || xhr.statusText));
    };
    xhr.onerror = () => reject(new Error("the upload failed (network)"));
    xhr.send(form);
  });
}

async function videosPage(note) { // note: {text, error} to show once the page is drawn again
  const params = new URLSearchParams(location.search);
  const msg = el("p", { id: "videos-message", role: "status", "aria-live": "polite", class: note && note.error ? "error" : null }, note ? note.text : null);
  const all = await allVideos();
  const tasks = [...new Set(all.map((v) => v.task_id))].sort();
  const upload = can("operator") ? uploadForm(tasks, msg) : el("p", { class: "muted" }, "Uploading needs the operator role.");
  const taskSel = el("select", { id: "filter-task" }, el("option", { value: "" }, "all tasks"), tasks.map((t) => el("option", { value: t, selected: params.get("task") === t }, t)));
  const roleSel = el("select", { id: "filter-role" }, ["", "gold", "trainee"].map((r) => el("option", { value: r, selected: params.get("role") === r }, r || "gold and trainee")));
  const table = el("tbody", { id: "video-rows" });
  function draw() {
    const vs = all.filter((v) => (!taskSel.value || v.task_id === taskSel.value) && (!roleSel.value || v.role === roleSel.value));
    table.replaceChildren(...vs.map((v) => videoRow(v, all, msg)));
    if (!vs.length) table.append(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No videos.")));
  }
  taskSel.addEventListener("change", draw); roleSel.addEventListener("change", draw);
  setMain(el("h1", {}, "Videos"), upload, msg,
    el("section", { class: "card" }, el("div", { class: "row" }, el("label", {}, "Task", taskSel), el("label", {}, "Role", roleSel)),
      el("table", {}, el("thead", {}, el("tr", {}, ["Video", "Task", "Role", "Site", "Camera", "Clips", "Added", ""].map((h) => el("th", {}, h)))), table)));
  draw();
}

function videoRow(v, all, msg) {
  const actions = el("td", { class: "row" });
  if (v.role === "trainee" && can("operator")) {
    const golds = all.filter((g) => g.role === "gold" && g.task_id === v.task_id && g.num_clips).sort((a, b) => b.video_id - a.video_id);
    if (golds.length) {
      const sel = el("select", { "aria-label": `gold for video ${v.video_id}`, class: "gold-pick" }, golds.map((g) => el("option", { value: g.video_id }, `gold ${g.video_id}`)));
      actions.append(sel, el("button", { type: "button", class: "primary score-btn", "data-video": v.video_id, onclick: async () => {
        try {
          const r = await api("/score", { method: "POST", json: { gold_video_id: Number(sel.value), trainee_video_id: v.video_id } });
          go(`/ui/scores/${encodeURIComponent(r.score_job_id)}`);
        } catch (e) { msg.className = "error"; msg.textContent = explain(e); }
      } }, "Score"));
    } else actions.append(el("span", { class: "muted" }, "no ready gold"));
  }
  if (can("admin")) {
    actions.append(el("button", { type: "button", class: "danger delete-btn", "data-video": v.video_id, onclick: async () => {
      if (!confirm(`Delete video ${v.video_id} and its files?`)) return;
      try { await api(`/videos/${v.video_id}`, { method: "DELETE" }); await videosPage({ text: `Video ${v.video_id} deleted.` }); }
      catch (e) { msg.className = "error"; msg.textContent = explain(e); }
    } }, "Delete"));
  }
  return el("tr", { "data-video": v.video_id },
    el("td", {}, String(v.video_id)), el("td", {}, v.task_id), el("td", {}, v.role), el("td", {}, v.site_id || "–"),
    el("td", {}, v.camera_id || "–"), el("td", {}, v.num_clips === null ? "ingesting…" : String(v.num_clips)),
    el("td", {}, new Date(v.created_at).toLocaleString()), actions);
}

function uploadForm(tasks, msg) {
  const file = el("input", { type: "file", id: "up-file", accept: "video/*,.avi,.mkv,.mov", required: true });
  const kind = el("select", { id: "up-role" }, el("option", { value: "trainee" }, "trainee"), el("option", { value: "gold" }, "gold"));
  const task = el("input", { id: "up-task", list: "task-names", required: true, pattern: "[A-Za-z0-9_.\\-]+", placeholder: "assembly_line_1" });
  const site = el("input", { id: "up-site" }), camera = el("input", { id: "up-camera" });
  const upBar = el("progress", { id: "upload-progress", max: "1", value: "0" });
  const ingBar = el("progress", { id: "ingest-progress", max: "1", value: "0" });
  const upText = el("span", { id: "upload-text" }), ingText = el("span", { id: "ingest-text" });
  const submit = el("button", { type: "submit", class: "primary", id: "up-submit" }, "Upload");
  async function onSubmit(ev) {
    ev.preventDefault();
    if (!file.files.length) return;
    const fd = new FormData();
    fd.append("task_id", task.value.trim());
    fd.append("role", kind.value);
    if (site.value.trim()) fd.append("site_id", site.value.trim());
    if (camera.value.trim()) fd.append("camera_id", camera.value.trim());
    fd.append("file", file.files[0]);
    submit.disabled = true; msg.className = ""; msg.textContent = "";
    upBar.value = 0; ingBar.value = 0; ingText.textContent = "";
    try {
      const r = await uploadWithProgress(kind.value === "gold" ? "/gold" : "/videos", fd, (f) => {
        upBar.value = f; upText.textContent = `upload ${Math.round(f * 100)}%`;
      });
      upBar.value = 1; upText.textContent = "upload 100%";
      let job = { status: r.status };
      const phase = { queued: 0.15, running: 0.55, completed: 1, failed: 1 };
      for (let misses = 0; ; ) {
        try { job = await api(`/videos/jobs/${encodeURIComponent(r.ingest_job_id)}`); misses = 0; }
        catch (e) { // a busy server's 5xx or a dropped connection: ask again, a few times
          if (e instanceof Superseded || (e instanceof ApiError && e.status < 500) || ++misses > 5) throw e;
          await new Promise((res) => setTimeout(res, 2000)); continue;
        }
        ingBar.value = phase[job.status] || 0; ingText.textContent = `ingest ${job.status}`;
        if (job.status === "completed" || job.status === "failed") break;
        await new Promise((res) => setTimeout(res, 700));
      }
      // shown once the list holds the new video
      await videosPage(job.status === "failed" ? { text: `Ingest failed: ${job.error_message}`, error: true }
        : { text: `Video ${job.video_id} (${job.role}) is ready: ${job.num_clips} clips.` });
    } catch (e) { msg.className = "error"; msg.textContent = explain(e); submit.disabled = false; }
  }
  return el("section", { class: "card" }, el("h2", {}, "Upload a video"),
    el("form", { id: "upload-form", onsubmit: onSubmit },
      el("datalist", { id: "task-names" }, tasks.map((t) => el("option", { value: t }))),
      el("div", { class: "row" }, el("label", {}, "File", file), el("label", {}, "Kind", kind), el("label", {}, "Task", task),
        el("label", {}, "Site", site), el("label", {}, "Camera", camera), submit),
      el("div", { class: "row" }, el("label", {}, "Upload", upBar), upText, el("label", {}, "Ingest", ingBar), ingText)));
}

// ---- Tasks --------------------------------------------------------------------------------------

async function tasksPage() {
  setMain(el("h1", {}, "Tasks"), el("p", { id: "tasks-loading" }, "Loading…"));
  const [tasks, videos, jobs] = await Promise.all([taskList(), allVideos(), scoreJobs()]);
  const box = [el("h1", {}, "Tasks")];
  if (!tasks.items.length) box.push(el("p", {}, "No tasks yet: ", el("a", { href: "/ui/videos", "data-nav": "" }, "upload a gold video"), "."));
  for (const t of tasks.items) {
    const id = t.task_id;
    const golds = videos.filter((v) => v.task_id === id && v.role === "gold");
    const mine = jobs.filter((j) => j.task_id === id);
    const done = mine.filter((j) => j.status === "completed").slice(0, 20);
    const details = await Promise.all(done.map((j) => api(`/score/${encodeURIComponent(j.job_id)}`).catch(orNull)));
    const results = details.filter((d) => d && d.result);
    const aligns = await Promise.all(results.map((d) => api(`/score/${encodeURIComponent(d.score_job_id)}/alignment`).catch(orNull)));
    const passes = results.filter((d) => d.result.decision === "pass").length;
    const steps = results.length ? stepsOf(results[0].result) : [];
    const version = t.sop_version ?? t.version ?? (t.sop && t.sop.version) ?? (tasks.api ? "–" : "automatic steps");
    box.push(el("section", { class: "card task", "data-task": id },
      el("h2", {}, id),
      el("p", {}, `Gold: ${golds.map((g) => `video ${g.video_id}`).join(", ") || "none"} · SOP: ${version} · `,
        el("span", { class: "pass-rate" }, results.length ? `pass rate ${Math.round((100 * passes) / results.length)}% (${passes}/${results.length})` : "no scores yet"),
        " · ", el("a", { href: `/ui/tasks/${encodeURIComponent(id)}/sop`, "data-nav": "" }, "SOP"),
        " · ", el("a", { href: `/ui/exemplars?task=${encodeURIComponent(id)}`, "data-nav": "" }, "Exemplars"),
        " · ", el("a", { href: `/ui/videos?task=${encodeURIComponent(id)}`, "data-nav": "" }, "Videos")),
      recentScores(mine.slice(0, 8), details),
      results.length ? el("div", { class: "grid2" }, deviationChart(results, steps), durationChart(results, aligns, steps)) : null));
  }
  setMain(...box);
}

function recentScores(jobs, details) {
  if (!jobs.length) return el("p", { class: "muted" }, "No scores yet.");
  const dec = {}; for (const d of details) if (d && d.result) dec[d.score_job_id] = d.result.decision;
  return el("table", { class: "recent" }, el("thead", {}, el("tr", {}, ["Score job", "Videos", "Status", "Score", "Decision"].map((h) => el("th", {}, h)))),
    el("tbody", {}, jobs.map((j) => el("tr", {},
      el("td", {}, el("a", { href: `/ui/scores/${encodeURIComponent(j.job_id)}`, "data-nav": "" }, j.job_id)),
      el("td", {}, j.subject || ""), el("td", {}, el("span", { class: `badge s-${j.status}` }, j.status)),
      el("td", {}, j.score === null ? "–" : String(j.score)),
      el("td", {}, dec[j.job_id] ? el("span", { class: `badge d-${dec[j.job_id]}` }, dec[j.job_id].replace("_", " ")) : "–")))));
}

function deviationChart(results, steps) {
  const counts = steps.map(() => ({})), types = new Set();
  for (const d of results) for (const dev of d.result.deviations || []) {
    if (dev.gold_step === null || dev.gold_step === undefined || !counts[dev.gold_step]) continue;
    counts[dev.gold_step][dev.type] = (counts[dev.gold_step][dev.type] || 0) + 1; types.add(dev.type);
  }
  const max = Math.max(1, ...counts.map((c) => Object.values(c).reduce((a, b) => a + b, 0)));
  const rowH = 24, left = 150, width = 520, h = steps.length * rowH + 24;
  const svg = sv("svg", { class: "chart deviation-chart", viewBox: `0 0 ${width} ${h}`, width: "100%", role: "img",
    "aria-label": "Deviations per step and type" });
  steps.forEach((st, k) => {
    const y = 8 + k * rowH;
    svg.append(sv("text", { x: 4, y: y + 14 }, stepName({ gold_steps: steps }, k).slice(0, 22)));
    let x = left, total = 0;
    for (const t of Object.keys(DEV_LABEL)) {
      const n = counts[k][t] || 0; if (!n) continue;
      const w = ((width - left - 40) * n) / max;
      svg.append(sv("rect", { x, y, width: w, height: rowH - 6, fill: DEV_COLOUR[t] }, sv("title", {}, `${DEV_LABEL[t]}: ${n}`)));
      x += w; total += n;
    }
    svg.append(sv("text", { x: x + 4, y: y + 14 }, String(total)));
  });
  return el("div", {}, el("h3", {}, "Which steps go wrong"), svg,
    el("div", { class: "legend" }, [...types].map((t) => el("span", {}, el("i", { style: { background: DEV_COLOUR[t] } }), DEV_LABEL[t] || t))),
    types.size ? null : el("p", { class: "muted" }, "No deviations in these scores."));
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function durationChart(results, aligns, steps) {
  const per = steps.map(() => []);
  aligns.forEach((al) => {
    if (!al || !al.trainee.labels || al.trainee.clips.length < 2) return;
    const stride = al.trainee.clips[1][0] - al.trainee.clips[0][0];
    steps.forEach((_, k) => { const n = al.trainee.labels.filter((l) => l === k).length; if (n) per[k].push(n * stride); });
  });
  const max = Math.max(1, ...per.flat());
  const rowH = 24, left = 150, width = 520, h = steps.length * rowH + 30;
  const sx = (v) => left + ((width - left - 50) * v) / max;
  const svg = sv("svg", { class: "chart duration-chart", viewBox: `0 0 ${width} ${h}`, width: "100%", role: "img",
    "aria-label": "Per-step duration spread over scored recordings (box plot, seconds)" });
  steps.forEach((st, k) => {
    const y = 8 + k * rowH, vs = per[k].slice().sort((a, b) => a - b);
    svg.append(sv("text", { x: 4, y: y + 14 }, stepName({ gold_steps: steps }, k).slice(0, 22)));
    if (!vs.length) { svg.append(sv("text", { x: left, y: y + 14 }, "not done")); return; }
    const [mn, q1, md, q3, mx] = [0, 0.25, 0.5, 0.75, 1].map((q) => quantile(vs, q));
    const c = stepColour(k), mid = y + (rowH - 6) / 2;
    svg.append(sv("line", { x1: sx(mn), x2: sx(mx), y1: mid, y2: mid, stroke: "#333" }),
      sv("rect", { x: sx(q1), y, width: Math.max(2, sx(q3) - sx(q1)), height: rowH - 6, fill: c, "fill-opacity": 0.5, stroke: c }),
      sv("line", { x1: sx(md), x2: sx(md), y1: y, y2: y + rowH - 6, stroke: "#000", "stroke-width": 2 }),
      sv("text", { x: sx(mx) + 4, y: y + 14 }, `${md.toFixed(1)} s`),
      sv("title", {}, `n=${vs.length}, min ${mn.toFixed(1)} s, median ${md.toFixed(1)} s, max ${mx.toFixed(1)} s`));
  });
  svg.append(sv("text", { x: left, y: h - 4 }, "0 s"), sv("text", { x: width - 60, y: h - 4 }, `${max.toFixed(0)} s`));
  return el("div", {}, el("h3", {}, "Step durations (trainees)"), svg);
}

// ---- SOP ----------------------------------------------------------------------------------------

async function latestResult(taskId) {
  for (const j of (await scoreJobs()).filter((x) => x.task_id === taskId && x.status === "completed")) {
    const d = await api(`/score/${encodeURIComponent(j.job_id)}`).catch(orNull);
    if (d && d.result) return d;
  }
  return null;
}

async function sopPage(taskId) {
  const path = `/tasks/${encodeURIComponent(taskId)}/sop`;
  let sop;
  try { sop = await api(path); }
  catch (e) {
    if (e.status !== 404) throw e;
    setMain(el("h1", {}, `SOP: ${taskId}`), el("p", { class: "error", id: "sop-message" }, explain(e)),
      el("p", {}, el("a", { href: "/ui/videos", "data-nav": "" }, "Upload a gold video"), " for this task first."));
    return;
  }
  const golds = (await allVideos(taskId)).filter((v) => v.role === "gold" && v.num_clips).sort((a, b) => a.video_id - b.video_id);
  const editable = can("admin");
  let goldId = sop.gold_video_id, source = sop.source === "user" ? "the saved SOP" : "the gold's automatic segmentation";
  // the draft: the stored steps (version 0 is the automatic segmentation); a gold ingested before
  // segmentations were recorded has none, then the steps of the task's latest score start the draft
  let steps = sop.steps.map((s) => ({ name: s.name, start_sec: s.start_sec, end_sec: s.end_sec, optional: !!s.optional, group: s.group ?? null }));
  if (!steps.length) {
    const latest = await latestResult(taskId);
    if (latest) {
      steps = stepsOf(latest.result).map((s) => ({ name: s.name, start_sec: s.start_sec, end_sec: s.end_sec, optional: !!s.optional, group: s.group ?? null }));
      source = `the automatic steps of score ${latest.score_job_id}`;
    } else source = "no steps yet";
  }
  const video = el("video", { id: "sop-video", src: stream(goldId), controls: true, muted: true, preload: "auto" });
  const msg = el("p", { id: "sop-message", role: "status", "aria-live": "polite" });
  const version = el("p", { id: "sop-version", class: "muted" });
  function drawVersion() {
    version.textContent = `Version ${sop.version} (${sop.source === "user" ? "saved" : "automatic"}), marked on gold video ${sop.gold_video_id}` +
      (sop.updated_by ? `, by ${sop.updated_by}` : "") + (sop.updated_at ? ` at ${new Date(sop.updated_at).toLocaleString()}` : "") + `. Steps from ${source}.`;
  }
  drawVersion();
  const body = el("tbody", { id: "sop-steps" });
  const playhead = () => +(video.currentTime || 0).toFixed(2);
  function draw() {
    body.replaceChildren(...steps.map((s, k) => el("tr", { "data-step": k },
      el("td", {}, String(k + 1)),
      el("td", {}, editable ? el("input", { class: "sop-name", value: s.name || "", "aria-label": `name of step ${k + 1}`, oninput: (e) => { s.name = e.target.value; } }) : s.name || ""),
      el("td", {}, el("button", { type: "button", class: "sop-seek", "aria-label": `seek to the start of step ${k + 1}`, onclick: () => { video.currentTime = s.start_sec; } }, mss(s.start_sec)),
        editable ? el("button", { type: "button", class: "sop-set-start", onclick: () => { s.start_sec = playhead(); draw(); } }, "set start at playhead") : null),
      el("td", {}, el("span", { class: "sop-end" }, mss(s.end_sec)),
        editable ? el("button", { type: "button", class: "sop-set-end", onclick: () => { s.end_sec = playhead(); draw(); } }, "set end at playhead") : null),
      el("td", {}, editable ? el("input", { type: "checkbox", class: "sop-optional", checked: !!s.optional, "aria-label": `step ${k + 1} optional`, onchange: (e) => { s.optional = e.target.checked; } }) : s.optional ? "optional" : ""),
      el("td", {}, editable ? el("input", { class: "sop-group", value: s.group || "", size: "6", "aria-label": `any-order group of step ${k + 1}`, oninput: (e) => { s.group = e.target.value.trim() || null; } }) : s.group || ""),
      el("td", {}, editable ? el("button", { type: "button", class: "danger", onclick: () => { steps.splice(k, 1); draw(); } }, "remove") : null))));
    if (!steps.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No steps: add one at the playhead.")));
  }
  draw();
  let tools;
  if (editable) {
    const goldSel = el("select", { id: "sop-gold", "aria-label": "gold the steps are marked on", onchange: () => {
      goldId = Number(goldSel.value); video.src = stream(goldId);
      // the same steps at their times on that gold, where the SOP was carried to it
      const carried = sop.per_gold && sop.per_gold[String(goldId)];
      if (goldId !== sop.gold_video_id && carried && carried.length === steps.length) steps.forEach((s, k) => { [s.start_sec, s.end_sec] = carried[k]; });
      else if (goldId === sop.gold_video_id && sop.steps.length === steps.length) steps.forEach((s, k) => { s.start_sec = sop.steps[k].start_sec; s.end_sec = sop.steps[k].end_sec; });
      draw();
    } }, golds.map((g) => el("option", { value: g.video_id, selected: g.video_id === goldId }, `gold ${g.video_id}`)));
    const rescore = el("input", { type: "checkbox", id: "sop-rescore", checked: true });
    const save = el("button", { type: "button", class: "primary", id: "sop-save", onclick: async () => {
      save.disabled = true; msg.className = ""; msg.textContent = "Saving…";
      const put = { gold_video_id: goldId, rescore: rescore.checked,
        steps: steps.map((s) => ({ name: (s.name || "").trim(), start_sec: s.start_sec, end_sec: s.end_sec, optional: !!s.optional, group: s.group || null })) };
      try {
        const r = await api(path, { method: "PUT", json: put });
        sop = r; source = "the saved SOP";
        steps = r.steps.map((s) => ({ name: s.name, start_sec: s.start_sec, end_sec: s.end_sec, optional: !!s.optional, group: s.group ?? null }));
        draw(); drawVersion();
        msg.replaceChildren(`Saved version ${r.version}.`, r.rescore_job_ids.length ? ` Re-scoring ${r.rescore_job_ids.length} trainee(s): ` : " Nothing to re-score.",
          ...r.rescore_job_ids.map((j) => el("a", { href: `/ui/scores/${encodeURIComponent(j)}`, "data-nav": "", class: "rescore-link" }, j, " ")));
      } catch (e) { msg.className = "error"; msg.textContent = explain(e); }
      save.disabled = false;
    } }, "Save SOP");
    tools = el("div", { class: "row" },
      el("label", {}, "Gold", goldSel),
      el("button", { type: "button", id: "sop-add", onclick: () => { const t = playhead(); steps.push({ name: `Step ${steps.length + 1}`, start_sec: t, end_sec: +(t + 2).toFixed(2), optional: false, group: null }); steps.sort((a, b) => a.start_sec - b.start_sec); draw(); } }, "Add a step at the playhead"),
      el("label", { class: "inline" }, el("span", {}, "re-score the trainees"), rescore), save);
  } else tools = el("p", { class: "notice", id: "sop-readonly" }, "Read-only: saving the SOP needs the admin role.");
  setMain(el("h1", {}, `SOP: ${taskId}`), version,
    el("div", { class: "grid2" }, el("div", { class: "card" }, video),
      el("div", { class: "card" }, tools, msg,
        el("table", {}, el("thead", {}, el("tr", {}, ["#", "Name", "Start", "End", "Optional", "Any-order group", ""].map((h) => el("th", {}, h)))), body))));
}

// ---- Exemplars ----------------------------------------------------------------------------------

async function exemplarsPage() {
  const params = new URLSearchParams(location.search);
  const all = await allVideos();
  const tasks = [...new Set(all.map((v) => v.task_id))].sort();
  const task = params.get("task") || tasks[0];
  const taskSel = el("select", { id: "ex-task", onchange: (e) => go(`/ui/exemplars?task=${encodeURIComponent(e.target.value)}`) },
    tasks.map((t) => el("option", { value: t, selected: t === task }, t)));
  const out = el("div", { id: "exemplars", class: "clips" });
  const msg = el("p", { id: "ex-message", role: "status", "aria-live": "polite" });
  setMain(el("h1", {}, "Exemplars"), el("p", { class: "muted" }, "The clips most like a step of the gold, across the task's recordings."),
    el("div", { class: "card row" }, el("label", {}, "Task", taskSel), el("span", { id: "ex-steps", class: "row" })), msg, out);
  if (!task) { msg.textContent = "No videos yet."; return; }
  const latest = await latestResult(task);
  if (!latest) { msg.textContent = "Score a trainee of this task first: the steps come from a score."; return; }
  const al = await api(`/score/${encodeURIComponent(latest.score_job_id)}/alignment`);
  const steps = stepsOf(latest.result);
  const goldId = latest.gold_video_id;
  async function show(k) {
    const st = steps[k], mid = (st.start_sec + st.end_sec) / 2;
    let best = 0;
    al.gold.clips.forEach((c, i) => { if (Math.abs((c[0] + c[1]) / 2 - mid) < Math.abs((al.gold.clips[best][0] + al.gold.clips[best][1]) / 2 - mid)) best = i; });
    msg.className = ""; msg.textContent = `Clips most like step ${stepName(latest.result, k)} (gold video ${goldId} at ${mss(al.gold.clips[best][0])}):`;
    try {
      const r = await api(`/search?${new URLSearchParams({ task_id: task, video_id: goldId, clip_idx: best, k: 8 })}`);
      out.replaceChildren(...r.items.map((it) => {
        const v = el("video", { src: `${stream(it.video_id)}#t=${it.start_sec},${it.end_sec}`, muted: true, preload: "metadata", controls: true });
        v.muted = true;
        return el("div", { class: "card exemplar", "data-video": it.video_id },
          v, el("p", {}, `video ${it.video_id} (${it.role}) ${mss(it.start_sec)}–${mss(it.end_sec)} · similarity ${it.similarity.toFixed(2)}`),
          el("button", { type: "button", onclick: () => { v.currentTime = it.start_sec; v.play(); const stop = () => { if (v.currentTime >= it.end_sec) { v.pause(); v.removeEventListener("timeupdate", stop); } }; v.addEventListener("timeupdate", stop); } }, "Play clip"));
      }));
      if (!r.items.length) out.append(el("p", { class: "muted" }, "No index for this task yet."));
    } catch (e) { msg.className = "error"; msg.textContent = explain(e); }
  }
  document.getElementById("ex-steps").append(...steps.map((st, k) => el("button", { type: "button", class: "ex-step", onclick: () => show(k) }, `Step ${stepName(latest.result, k)}`)));
  const want = Number(params.get("step") || 1) - 1;
  if (steps[want]) await show(want);
}

route();
