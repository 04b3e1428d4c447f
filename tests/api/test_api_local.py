"""The API in-process (real app, real catalog) for what needs no pipeline: auth configuration
edge cases, and what happens while Dagster is unreachable."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sopilot_api.app import create_app
from sopilot_api.settings import ApiSettings
from tests.helpers import free_port


def _app(tmp_path, **settings):
    return TestClient(
        create_app(ApiSettings(data_dir=tmp_path, dagster_url=f"http://127.0.0.1:{free_port()}", **settings))
    )


def test_health_is_503_while_dagster_is_down(tmp_path):
    with _app(tmp_path, api_token="t") as c:
        r = c.get("/health")
        assert r.status_code == 503 and r.json() == {"status": "unavailable", "db": False, "down": {}}
        q = c.get("/ops/queue", headers={"Authorization": "Bearer t"})
        assert (
            q.status_code == 200
            and q.json()["queue"]["daemon_ok"] is False
            and "did not answer" in q.json()["queue"]["error"]
        )
        assert q.json()["queue"]["redis_ok"] is None  # there is no Redis to be down
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
        assert (
            c.get("/videos", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )  # bad credentials still fail
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


def test_a_bad_upload_field_is_a_400_before_anything_is_stored(tmp_path):
    with _app(tmp_path, api_token="t") as c:
        auth = {"Authorization": "Bearer t"}
        r = c.post(
            "/videos",
            headers=auth,
            files={"file": ("a.mp4", b"not checked yet")},
            data={"task_id": "t", "site_id": "s" * 129},
        )
        assert r.status_code == 400 and "site_id" in r.json()["detail"] and "at most 128" in r.json()["detail"], r.text
        r = c.post("/videos", headers=auth, files={"file": ("a.mp4", b"x")}, data={"task_id": "t", "role": "boss"})
        assert r.status_code == 400 and "role 'boss'" in r.json()["detail"]
        r = c.post("/videos", headers=auth, files={"file": ("a.mp4", b"x")}, data={"task_id": "a/b", "model": "m"})
        assert (
            r.status_code == 400 and "task_id 'a/b'" in r.json()["detail"]
        )  # a field named like a parameter is no crash
        r = c.post(
            "/videos", headers=auth, files={"file": ("a.mp4", b"x")}, data={"task_id": "t", "camera_id": "c\x00"}
        )
        assert r.status_code == 400 and "NUL" in r.json()["detail"]
        assert c.get("/videos", headers=auth).json()["items"] == []
        assert not any((tmp_path / "uploads").iterdir())  # the spooled file is gone too


def test_an_internal_value_error_is_a_500_not_a_client_error(tmp_path, monkeypatch):
    """No blanket ValueError -> 400: a server-side fault (here a signing key id longer than the
    catalog's column) is a 500 that the client is not told is its own fault."""
    monkeypatch.setenv("SOPILOT_AUDIT_SIGNING_KEY", "k")
    monkeypatch.setenv("SOPILOT_AUDIT_SIGNING_KEY_ID", "x" * 200)
    app = create_app(ApiSettings(data_dir=tmp_path, dagster_url=f"http://127.0.0.1:{free_port()}", api_token="t"))
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/audit/export", headers={"Authorization": "Bearer t"})
        assert r.status_code == 500, r.text


def test_route_dependencies_can_be_overridden(tmp_path):
    """Routes declare the catalog, the data store, Dagster and the caller as Annotated
    dependencies, so a test swaps one (here: who the caller is, and which catalog) without
    touching the others."""
    from sopilot_api import deps
    from sopilot_api.auth import Principal, require_viewer
    from sopilot_pipelines.catalog import Catalog

    other = Catalog(f"sqlite:///{tmp_path / 'other.db'}")
    other.add_video("swapped", "gold")
    with _app(tmp_path / "data", api_token="t") as c:
        assert c.get("/videos").status_code == 401
        c.app.dependency_overrides[require_viewer] = lambda: Principal("viewer", "test:override")
        assert c.get("/videos").json()["items"] == []
        c.app.dependency_overrides[deps.catalog] = lambda: other
        assert [v["task_id"] for v in c.get("/videos").json()["items"]] == ["swapped"]
    other.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("video_1.mp4", "video/mp4"),
        ("video_1.M4V", "video/mp4"),
        ("video_1.mov", "video/quicktime"),
        ("video_1.avi", "video/x-msvideo"),
        ("video_1.mkv", "video/x-matroska"),
        ("video_1.webm", "video/webm"),
        ("video_1.mpg", "video/mpeg"),
        ("video_1.mpeg", "video/mpeg"),
        ("video_1.xyz", "application/octet-stream"),
        ("video_1", "application/octet-stream"),
    ],
)
def test_file_media_type_is_the_containers(name, expected):
    """GET /videos/{id}/file answers with the stored original's container type (not always video/mp4)."""
    from sopilot_api.routes.videos import media_type

    assert media_type(Path("/data/raw") / name) == expected
