"""SOPILOT_LOG_FORMAT=json: one JSON line per API request and per job transition."""

import json

from fastapi.testclient import TestClient

from sopilot_pipelines.logs import job_transition


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_api_requests_are_logged_as_json_lines(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("SOPILOT_LOG_FORMAT", "json")
    monkeypatch.setenv("SOPILOT_API_TOKEN", "t")
    from sopilot_api.app import create_app
    from sopilot_api.settings import ApiSettings

    app = create_app(ApiSettings(data_dir=tmp_path, log_format="json", api_token="t"))
    with TestClient(app) as c:
        c.get("/videos", headers={"Authorization": "Bearer t"})
        c.get("/videos/7", headers={"Authorization": "Bearer wrong"})
    lines = [entry for entry in _json_lines(capfd.readouterr().err) if entry["event"] == "request"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/videos", 200),
        ("GET", "/videos/7", 401),
    ]
    assert all(e["duration_ms"] >= 0 and e["ts"] for e in lines)


def test_job_transitions_are_json_lines(monkeypatch, capfd):
    from sopilot_pipelines.logs import configure

    configure("json")
    job_transition("score", "score_1", "completed", score=87.5)
    (entry,) = [e for e in _json_lines(capfd.readouterr().err) if e["event"] == "job_transition"]
    assert entry | {"ts": None} == {
        "ts": None,
        "level": "info",
        "event": "job_transition",
        "job_type": "score",
        "job_id": "score_1",
        "status": "completed",
        "score": 87.5,
    }


def test_text_lines_format_records_without_fields_and_leave_other_handlers_alone(capfd):
    """A module logging plainly (no extra fields) must not raise inside its caller, and a handler
    someone else attached to the `sopilot` logger (pytest does) keeps its own format."""
    import io
    import logging

    from sopilot_pipelines.logs import configure

    foreign = logging.StreamHandler(io.StringIO())
    foreign.setFormatter(logging.Formatter("foreign %(message)s"))
    log = configure("text")
    log.addHandler(foreign)
    try:
        configure("text")
        logging.getLogger("sopilot.score_queue").warning("plain %s", "line")
        job_transition("score", "score_2", "failed")
    finally:
        log.removeHandler(foreign)
    err = capfd.readouterr().err
    assert "WARNING plain line" in err
    assert "job_transition {'job_type': 'score', 'job_id': 'score_2', 'status': 'failed'}" in err
    assert foreign.stream.getvalue().splitlines() == ["foreign plain line", "foreign job_transition"]
