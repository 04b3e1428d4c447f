"""Bearer tokens, role tokens and basic auth; roles viewer < operator < admin.

Protect a route with ``Depends(require("operator"))``; the dependency returns the caller's
`Principal` (role and ``requested_by``: ``token:<role>``, ``token:api`` or ``basic:<user>``, or
``anonymous`` when SOPILOT_AUTH_REQUIRED=false and nothing was sent). Public routes (/health,
/metrics, /docs, /openapi.json) simply don't use it.

Answers:
- 503 when SOPILOT_AUTH_REQUIRED=true (the default) and the server has no credentials configured;
- 401 with ``WWW-Authenticate`` for missing, malformed or wrong credentials (credentials that are
  sent are checked even when auth is not required);
- 403 when the caller's role is below the route's.

Secrets are compared as SHA-256 digests with `hmac.compare_digest`, and a bearer token is compared
with every configured token (no early exit), so neither the time taken nor a length mismatch tells
which secret, or how much of one, matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from .settings import ROLES, ApiSettings, get_settings

__all__ = [
    "ROLES",
    "RANK",
    "Admin",
    "Operator",
    "Principal",
    "Viewer",
    "require",
    "authenticate",
    "bearer_scheme",
    "basic_scheme",
]

RANK = {r: i for i, r in enumerate(ROLES)}
REALM = "sopilot"

MISSING = "missing credentials: send 'Authorization: Bearer <token>' or basic auth"
NOT_CONFIGURED = (
    "authentication is required but no credentials are configured on the server "
    "(set SOPILOT_API_TOKEN, SOPILOT_API_ROLE_TOKENS or SOPILOT_BASIC_USER/_PASSWORD)"
)


class _LenientBasic(HTTPBasic):
    """HTTPBasic that never raises: FastAPI's own answers a malformed header with a bare 401
    (and refuses non-ASCII credentials); `require` parses the header and explains instead."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            return None


# Declared as dependencies of `require` so OpenAPI lists both schemes and marks protected routes.
bearer_scheme = HTTPBearer(
    scheme_name="HTTPBearer", auto_error=False, description="a token from SOPILOT_API_TOKEN or SOPILOT_API_ROLE_TOKENS"
)
basic_scheme = _LenientBasic(
    scheme_name="HTTPBasic", realm=REALM, auto_error=False, description="SOPILOT_BASIC_USER / SOPILOT_BASIC_PASSWORD"
)


@dataclass(frozen=True)
class Principal:
    role: str
    requested_by: str


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _challenge(settings: ApiSettings) -> str:
    return f'Bearer realm="{REALM}"' + (f', Basic realm="{REALM}"' if settings.basic_enabled else "")


def _unauthorized(settings: ApiSettings, detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": _challenge(settings)})


def _from_bearer(settings: ApiSettings, token: str) -> Principal | None:
    given = _digest(token)
    candidates = [(role, f"token:{role}", secret) for role, secret in settings.role_tokens()]
    if settings.api_token:
        candidates.append((settings.api_token_role, "token:api", settings.api_token))
    found = None
    for role, requested_by, secret in candidates:  # compare with every one, match or not
        if hmac.compare_digest(given, _digest(secret)) and found is None:
            found = Principal(role, requested_by)
    return found


def _decode_basic(param: str) -> tuple[str, str] | None:
    try:
        raw = base64.b64decode(param, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # RFC 7617 leaves the charset open; latin-1 is the old default
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _from_basic(settings: ApiSettings, user: str, password: str) -> Principal | None:
    user_ok = hmac.compare_digest(_digest(user), _digest(settings.basic_user))
    password_ok = hmac.compare_digest(_digest(password), _digest(settings.basic_password))
    return Principal(settings.basic_role, f"basic:{settings.basic_user}") if user_ok & password_ok else None


def authenticate(settings: ApiSettings, authorization: str | None) -> Principal:
    """Who sent `authorization` (the header's value, or None), or the HTTPException to answer."""
    if settings.auth_required and not settings.any_credentials:
        raise HTTPException(503, NOT_CONFIGURED)
    header = (authorization or "").strip()
    if not header:
        if settings.auth_required:
            raise _unauthorized(settings, MISSING)
        return Principal(settings.auth_default_role, "anonymous")
    scheme, _, param = header.partition(" ")
    scheme, param = scheme.lower(), param.strip()
    if scheme == "bearer":
        if not param:
            raise _unauthorized(settings, "empty bearer token: send 'Authorization: Bearer <token>'")
        principal = _from_bearer(settings, param)
        if principal is None:
            raise _unauthorized(settings, "invalid token")
        return principal
    if scheme == "basic":
        creds = _decode_basic(param)
        if creds is None:
            raise _unauthorized(settings, "malformed basic credentials: expected base64 of 'user:password'")
        if not settings.basic_enabled:
            raise _unauthorized(
                settings, "basic auth is not enabled on this server; send 'Authorization: Bearer <token>'"
            )
        principal = _from_basic(settings, *creds)
        if principal is None:
            raise _unauthorized(settings, "invalid username or password")
        return principal
    # the header's value is not echoed: a bare token sent without "Bearer " would land in logs
    raise _unauthorized(
        settings, "unsupported Authorization header: send 'Authorization: Bearer <token>' or basic auth"
    )


def _settings(request: Request) -> ApiSettings:
    settings = getattr(request.app.state, "settings", None)  # set by the app factory
    return settings if settings is not None else get_settings()


def require(role: str):
    """A dependency admitting callers with `role` or above; it returns who they are (`Principal`)."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")

    async def dependency(  # async: no thread-pool hop for a few digests (deps.py)
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # for OpenAPI; the
        _basic: HTTPBasicCredentials | None = Depends(basic_scheme),  # header is parsed below
    ) -> Principal:
        settings = _settings(request)
        principal = authenticate(settings, request.headers.get("authorization"))
        if RANK[principal.role] < RANK[role]:
            raise HTTPException(403, f"this endpoint needs the {role} role; your role is {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


# What a route declares: `_: Viewer`, `principal: Operator`, `principal: Admin` (one dependency
# object per role, so a test can override it).
require_viewer, require_operator, require_admin = require("viewer"), require("operator"), require("admin")
Viewer = Annotated[Principal, Depends(require_viewer)]
Operator = Annotated[Principal, Depends(require_operator)]
Admin = Annotated[Principal, Depends(require_admin)]
