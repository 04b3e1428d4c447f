"""The API in-process (real app, real catalog) for what needs no pipeline: auth configuration
edge cases, and what happens while Dagster is unreachable."""

from fastapi.testclient import TestClient

from sopilot_api.app import create_app
from sopilot_api.settings import ApiSettings
from test_api import _free_port


def _app(tmp_path, **settings):
    return TestClient(create_app(ApiSettings(data_dir=tmp_path, dagster_url=f"http://127.0.0.1:{_free_port()}", **settings)))


def test_health_is_503_while_dagster_is_down(tmp_path):
    with _app(tmp_path, api_token="t") as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "unavailable", "db": False}
        q = c.get("/ops/queue", headers={"Authorization": "Bearer t"})
        assert q.status_code == 200 and q.json()["queue"]["daemon_ok"] is False and "did not answer" in q.json()["queue"]["error"]
        r = c.post("/train/nightly", headers={"Authorization": "Bearer t"})
        assert r.status_code == 503 and "pipeline service is unavailable" in r.json()["detail"]


def test_auth_required_with_nothing_configured_answers_503(tmp_path):
    with _app(tmp_path) as c:
        r = c.get("/videos")
        assert r.status_code == 503 and "no credentials are configured" in r.json()["detail"]
        assert c.get("/openapi.json").status_code == 200


def test_auth_not_required_gives_the_default_role(tmp_path):
    with _app(tmp_path, auth_required=False, auth_default_role="operator", api_token="t", api_token_role="viewer") as c:
        assert c.get("/videos").status_code == 200
        assert c.get("/ops/queue").status_code == 200  # operator by default
        r = c.post("/audit/export")
        assert r.status_code == 403 and "needs the admin role; your role is operator" in r.json()["detail"]
        assert c.get("/videos", headers={"Authorization": "Bearer wrong"}).status_code == 401  # bad credentials still fail
        r = c.get("/ops/queue", headers={"Authorization": "Bearer t"})  # valid credentials take precedence
        assert r.status_code == 403


def test_single_api_token_and_bad_settings(tmp_path):
    import pytest

    with _app(tmp_path, api_token="tok", api_token_role="operator") as c:
        assert c.get("/ops/queue", headers={"Authorization": "Bearer tok"}).status_code == 200
        assert c.post("/audit/export", headers={"Authorization": "Bearer tok"}).status_code == 403
    with pytest.raises(ValueError, match="unknown role"):
        ApiSettings(api_token_role="root")
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        ApiSettings(api_role_tokens="admin:x,boss:y")
    with pytest.raises(ValueError, match="SOPILOT_BASIC_USER and SOPILOT_BASIC_PASSWORD"):
        ApiSettings(basic_user="alice")


def test_audit_export_without_a_signing_key_is_503(tmp_path, monkeypatch):
    monkeypatch.delenv("SOPILOT_AUDIT_SIGNING_KEY", raising=False)
    with _app(tmp_path, api_token="t") as c:
        r = c.post("/audit/export", headers={"Authorization": "Bearer t"})
        assert r.status_code == 503 and "SOPILOT_AUDIT_SIGNING_KEY" in r.json()["detail"]
