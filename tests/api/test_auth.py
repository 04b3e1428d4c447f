"""Auth of the REST facade: a small real FastAPI app using sopilot_api.auth, driven through
TestClient (the ASGI app in-process, no mocks)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sopilot_api.auth import ROLES, Principal, require
from sopilot_api.settings import ApiSettings, get_settings
from sopilot_pipelines.settings import settings as all_settings

TOKENS = {"admin": "adm-secret-1", "operator": "op-secret-2", "viewer": "view-secret-3"}
ROLE_TOKENS = ",".join(f"{r}:{t}" for r, t in TOKENS.items())
RANK = {r: i for i, r in enumerate(ROLES)}
PROTECTED = {role: f"/{role}" for role in ROLES}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Settings come only from what each test passes, never from the developer's environment."""
    for key in list(os.environ):
        if key.startswith("SOPILOT_"):
            monkeypatch.delenv(key)
    all_settings.cache_clear()
    yield
    all_settings.cache_clear()


def make_app(settings: ApiSettings | None) -> FastAPI:
    app = FastAPI()
    if settings is not None:
        app.state.settings = settings

    @app.get("/health")
    def health():
        return {"status": "ok"}

    for role, path in PROTECTED.items():

        def endpoint(principal: Principal = Depends(require(role))):
            return {"role": principal.role, "requested_by": principal.requested_by}

        app.get(path, name=f"{role}_only")(endpoint)
    return app


def client(**settings) -> TestClient:
    return TestClient(make_app(ApiSettings(**settings)))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_role_token_matrix():
    c = client(api_role_tokens=ROLE_TOKENS)
    for caller, token in TOKENS.items():
        for need, path in PROTECTED.items():
            r = c.get(path, headers=bearer(token))
            if RANK[caller] >= RANK[need]:
                assert r.status_code == 200, (caller, need, r.text)
                assert r.json() == {"role": caller, "requested_by": f"token:{caller}"}
            else:
                assert r.status_code == 403, (caller, need, r.text)
                assert r.json() == {"detail": f"this endpoint needs the {need} role; your role is {caller}"}
                assert "www-authenticate" not in r.headers


def test_api_token_with_its_role():
    c = client(api_token="the-api-token")  # role defaults to admin
    r = c.get("/admin", headers=bearer("the-api-token"))
    assert r.status_code == 200 and r.json() == {"role": "admin", "requested_by": "token:api"}

    c = client(api_token="the-api-token", api_token_role="operator", api_role_tokens=ROLE_TOKENS)
    assert c.get("/operator", headers=bearer("the-api-token")).json() == {
        "role": "operator",
        "requested_by": "token:api",
    }
    r = c.get("/admin", headers=bearer("the-api-token"))
    assert r.status_code == 403 and r.json()["detail"] == "this endpoint needs the admin role; your role is operator"
    # role tokens keep working beside the single token
    assert c.get("/admin", headers=bearer(TOKENS["admin"])).json()["requested_by"] == "token:admin"


def test_basic_auth():
    c = client(basic_user="alice", basic_password="wonder-land", basic_role="operator")
    r = c.get("/operator", headers=basic("alice", "wonder-land"))
    assert r.status_code == 200 and r.json() == {"role": "operator", "requested_by": "basic:alice"}
    assert c.get("/viewer", headers=basic("alice", "wonder-land")).status_code == 200
    r = c.get("/admin", headers=basic("alice", "wonder-land"))
    assert r.status_code == 403 and r.json()["detail"] == "this endpoint needs the admin role; your role is operator"

    for user, password in (("alice", "nope"), ("bob", "wonder-land"), ("alice", ""), ("", "wonder-land")):
        r = c.get("/viewer", headers=basic(user, password))
        assert r.status_code == 401, (user, password)
        assert r.json() == {"detail": "invalid username or password"}
        assert r.headers["www-authenticate"] == 'Bearer realm="sopilot", Basic realm="sopilot"'

    # the HTTP client's own basic auth, and a non-ASCII password (UTF-8, RFC 7617)
    assert c.get("/viewer", auth=("alice", "wonder-land")).status_code == 200
    c = client(basic_user="zoë", basic_password="pässwörd")
    assert c.get("/viewer", headers=basic("zoë", "pässwörd")).json() == {"role": "viewer", "requested_by": "basic:zoë"}


def test_basic_role_defaults_to_viewer():
    c = client(basic_user="alice", basic_password="pw")
    assert c.get("/viewer", headers=basic("alice", "pw")).json()["role"] == "viewer"
    assert c.get("/operator", headers=basic("alice", "pw")).status_code == 403


def test_missing_credentials_401_with_challenge():
    c = client(api_role_tokens=ROLE_TOKENS)
    for path in PROTECTED.values():
        r = c.get(path)
        assert r.status_code == 401
        assert r.json() == {"detail": "missing credentials: send 'Authorization: Bearer <token>' or basic auth"}
        assert r.headers["www-authenticate"] == 'Bearer realm="sopilot"'  # basic is not configured here
    assert c.get("/viewer", headers={"Authorization": "   "}).status_code == 401
    # with basic auth configured the challenge offers both
    c = client(api_role_tokens=ROLE_TOKENS, basic_user="alice", basic_password="pw")
    assert c.get("/viewer").headers["www-authenticate"] == 'Bearer realm="sopilot", Basic realm="sopilot"'


def test_wrong_or_malformed_credentials_401():
    c = client(api_role_tokens=ROLE_TOKENS, api_token="the-api-token")
    cases = {
        "Bearer wrong": "invalid token",
        f"Bearer {TOKENS['admin']}x": "invalid token",
        f"Bearer {TOKENS['admin'][:-1]}": "invalid token",
        "Bearer ": "empty bearer token: send 'Authorization: Bearer <token>'",
        "Basic !!!not-base64": "malformed basic credentials: expected base64 of 'user:password'",
        "Basic "
        + base64.b64encode(b"no-colon").decode(): "malformed basic credentials: expected base64 of 'user:password'",
        "Basic "
        + base64.b64encode(
            b"alice:pw"
        ).decode(): "basic auth is not enabled on this server; send 'Authorization: Bearer <token>'",
        f"Token {TOKENS['admin']}": "unsupported Authorization header: send 'Authorization: Bearer <token>' or basic auth",
        TOKENS["admin"]: "unsupported Authorization header: send 'Authorization: Bearer <token>' or basic auth",
    }
    for header, detail in cases.items():
        r = c.get("/viewer", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json() == {"detail": detail}, header
        assert r.headers["www-authenticate"] == 'Bearer realm="sopilot"', header
    # the scheme is case-insensitive and surrounding blanks don't matter
    assert c.get("/admin", headers={"Authorization": f"bearer  {TOKENS['admin']} "}).status_code == 200


def test_nothing_configured_auth_required_503():
    c = TestClient(make_app(ApiSettings()))  # the defaults: auth required, no credentials
    assert c.get("/health").status_code == 200
    for path in PROTECTED.values():
        for headers in ({}, bearer("anything"), basic("alice", "pw")):
            r = c.get(path, headers=headers)
            assert r.status_code == 503, (path, headers)
            assert r.json() == {
                "detail": (
                    "authentication is required but no credentials are configured on the server "
                    "(set SOPILOT_API_TOKEN, SOPILOT_API_ROLE_TOKENS or SOPILOT_BASIC_USER/_PASSWORD)"
                )
            }


def test_auth_not_required_gives_default_role():
    c = client(auth_required=False)  # default role viewer
    r = c.get("/viewer")
    assert r.status_code == 200 and r.json() == {"role": "viewer", "requested_by": "anonymous"}
    r = c.get("/operator")
    assert r.status_code == 403 and r.json()["detail"] == "this endpoint needs the operator role; your role is viewer"
    assert c.get("/health").status_code == 200
    assert c.get("/viewer", headers=bearer("anything")).status_code == 401  # sent credentials are still checked

    c = client(auth_required=False, auth_default_role="operator", api_role_tokens=ROLE_TOKENS)
    assert c.get("/operator").json() == {"role": "operator", "requested_by": "anonymous"}
    assert c.get("/admin").status_code == 403
    # valid credentials count, above or below the default role
    assert c.get("/admin", headers=bearer(TOKENS["admin"])).json() == {"role": "admin", "requested_by": "token:admin"}
    r = c.get("/operator", headers=bearer(TOKENS["viewer"]))
    assert r.status_code == 403 and r.json()["detail"] == "this endpoint needs the operator role; your role is viewer"
    r = c.get("/viewer", headers=bearer("wrong"))
    assert r.status_code == 401 and r.json() == {"detail": "invalid token"} and "www-authenticate" in r.headers


def test_settings_from_environment(monkeypatch):
    """Without app.state.settings the dependency reads the (cached) environment settings."""
    monkeypatch.setenv("SOPILOT_API_ROLE_TOKENS", "admin:env-admin, viewer:env-viewer")
    monkeypatch.setenv("SOPILOT_API_TOKEN", "env-api")
    monkeypatch.setenv("SOPILOT_API_TOKEN_ROLE", "Operator")
    monkeypatch.setenv("SOPILOT_BASIC_USER", "carol")
    monkeypatch.setenv("SOPILOT_BASIC_PASSWORD", "pw")
    monkeypatch.setenv("SOPILOT_AUTH_REQUIRED", "true")
    c = TestClient(make_app(None))
    assert c.get("/admin", headers=bearer("env-admin")).json() == {"role": "admin", "requested_by": "token:admin"}
    assert c.get("/viewer", headers=bearer("env-viewer")).json() == {"role": "viewer", "requested_by": "token:viewer"}
    assert c.get("/operator", headers=bearer("env-api")).json() == {"role": "operator", "requested_by": "token:api"}
    assert c.get("/viewer", headers=basic("carol", "pw")).json() == {"role": "viewer", "requested_by": "basic:carol"}
    assert c.get("/viewer").status_code == 401

    assert get_settings() is get_settings()  # read once
    monkeypatch.setenv("SOPILOT_AUTH_REQUIRED", "false")
    assert get_settings().auth_required is True
    all_settings.cache_clear()
    assert get_settings().auth_required is False


def test_settings_defaults():
    s = ApiSettings()
    assert (s.api_token, s.api_token_role, s.api_role_tokens) == ("", "admin", "")
    assert (s.basic_user, s.basic_password, s.basic_role) == ("", "", "viewer")
    assert (s.auth_required, s.auth_default_role) == (True, "viewer")
    assert (s.upload_max_mb, str(s.data_dir), s.dagster_url, s.log_format) == (
        500,
        "data",
        "http://127.0.0.1:3000",
        "text",
    )
    assert s.role_tokens() == () and not s.any_credentials
    s = ApiSettings(api_role_tokens=" Admin : a1 , viewer:v1,", log_format="JSON", dagster_url="http://dagster:3000/")
    assert s.role_tokens() == (("admin", "a1"), ("viewer", "v1")) and s.any_credentials
    assert (s.log_format, s.dagster_url) == ("json", "http://dagster:3000")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"api_role_tokens": "admin:a1,superuser:s2"},
            "SOPILOT_API_ROLE_TOKENS entry 2 ('superuser:…') has unknown role 'superuser'; roles are viewer, operator, admin",
        ),
        ({"api_role_tokens": "admin:a1,justasecret"}, "SOPILOT_API_ROLE_TOKENS entry 2 has no ':'"),
        ({"api_role_tokens": "viewer:"}, "SOPILOT_API_ROLE_TOKENS entry 1 ('viewer:') has an empty token"),
        ({"api_role_tokens": "admin:a1,,viewer:v1"}, "SOPILOT_API_ROLE_TOKENS entry 2 is empty"),
        ({"api_role_tokens": "admin:same,viewer:same"}, "the token of entry 2 (viewer) repeats an earlier entry's"),
        (
            {"api_token": "same", "api_role_tokens": "viewer:same"},
            "SOPILOT_API_TOKEN is also listed in SOPILOT_API_ROLE_TOKENS",
        ),
        ({"api_token_role": "root"}, "SOPILOT_API_TOKEN_ROLE: unknown role 'root'; roles are viewer, operator, admin"),
        ({"basic_role": "guest"}, "SOPILOT_BASIC_ROLE: unknown role 'guest'"),
        ({"auth_default_role": "superuser"}, "SOPILOT_AUTH_DEFAULT_ROLE: unknown role 'superuser'"),
        ({"basic_user": "alice"}, "set both SOPILOT_BASIC_USER and SOPILOT_BASIC_PASSWORD, or neither"),
        ({"basic_password": "pw"}, "set both SOPILOT_BASIC_USER and SOPILOT_BASIC_PASSWORD, or neither"),
        ({"basic_user": "a:b", "basic_password": "pw"}, "SOPILOT_BASIC_USER must not contain ':'"),
        ({"log_format": "xml"}, "SOPILOT_LOG_FORMAT must be 'text' or 'json'"),
        ({"upload_max_mb": 0}, "upload_max_mb\n  Input should be greater than or equal to 1"),
        ({"dagster_url": "localhost:3000"}, "SOPILOT_DAGSTER_URL must be an http(s) URL"),
    ],
)
def test_bad_settings_raise_clear_errors(settings, message):
    with pytest.raises(ValidationError) as info:
        ApiSettings(**settings)
    text = str(info.value)
    assert message in text
    secrets = [e.partition(":")[2] if ":" in e else e for e in settings.get("api_role_tokens", "").split(",")]
    secrets += [settings[k] for k in ("api_token", "basic_password") if k in settings]
    for secret in filter(None, secrets):  # no secret is echoed back
        assert secret not in text, secret


def test_bad_environment_fails_at_start(monkeypatch):
    monkeypatch.setenv("SOPILOT_API_ROLE_TOKENS", "admin:top-secret,owner:other-secret")
    with pytest.raises(
        ValueError, match=r"SOPILOT_API_ROLE_TOKENS entry 2 \('owner:…'\) has unknown role 'owner'"
    ) as info:
        get_settings()
    assert "top-secret" not in str(info.value) and "other-secret" not in str(info.value)


def test_require_rejects_unknown_role():
    with pytest.raises(ValueError, match="unknown role 'root'"):
        require("root")


def test_openapi_lists_both_schemes_on_protected_routes():
    c = client(api_role_tokens=ROLE_TOKENS)
    spec = c.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {(s["type"], s["scheme"]) for s in schemes.values()} == {("http", "bearer"), ("http", "basic")}
    names = set(schemes)
    for path in PROTECTED.values():
        security = spec["paths"][path]["get"]["security"]
        assert {name for req in security for name in req} == names, path
        # no parameters leak from the dependency's signature
        assert not spec["paths"][path]["get"].get("parameters"), path
    assert "security" not in spec["paths"]["/health"]["get"]
    assert c.get("/docs").status_code == 200


def test_facade_auth_imports_no_heavy_libraries():
    code = (
        "import sys, sopilot_api.auth, sopilot_api.settings; "
        "print(sorted(m for m in ('torch', 'faiss', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
