"""Bearer tokens, role tokens and basic auth; roles viewer < operator < admin.

Every configured secret is compared (hmac.compare_digest) on every request, so the time taken
does not reveal which secret, or how much of one, matched.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from .settings import ROLES, ApiSettings, get_settings

bearer_scheme = HTTPBearer(auto_error=False, description="a token from SOPILOT_API_TOKEN or SOPILOT_API_ROLE_TOKENS")
basic_scheme = HTTPBasic(auto_error=False, description="SOPILOT_BASIC_USER / SOPILOT_BASIC_PASSWORD")
RANK = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    role: str
    requested_by: str


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _challenge(settings: ApiSettings) -> str:
    return 'Bearer realm="sopilot"' + (', Basic realm="sopilot"' if settings.basic_user else "")


def _from_bearer(settings: ApiSettings, token: str) -> Principal | None:
    found = None
    if settings.api_token and _eq(token, settings.api_token):
        found = Principal(settings.api_token_role, "token:api")
    for role, secret in settings.role_tokens():
        if _eq(token, secret) and found is None:
            found = Principal(role, f"token:{role}")
    return found


def _from_basic(settings: ApiSettings, creds: HTTPBasicCredentials) -> Principal | None:
    if not settings.basic_user:
        return None
    user_ok = _eq(creds.username, settings.basic_user)
    password_ok = _eq(creds.password, settings.basic_password)
    return Principal(settings.basic_role, f"basic:{settings.basic_user}") if user_ok and password_ok else None


def require(role: str):
    """A dependency admitting callers with `role` or above; it returns who they are."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}")

    def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
        basic: HTTPBasicCredentials | None = Depends(basic_scheme),
    ) -> Principal:
        settings: ApiSettings = getattr(request.app.state, "settings", None) or get_settings()
        header = request.headers.get("authorization", "")
        principal = None
        if header:
            if bearer is not None and bearer.scheme.lower() == "bearer":
                principal = _from_bearer(settings, bearer.credentials)
            elif header.lower().startswith("basic ") and basic is not None:
                principal = _from_basic(settings, basic)
            if principal is None:
                raise HTTPException(401, "invalid credentials", headers={"WWW-Authenticate": _challenge(settings)})
        elif settings.auth_required:
            if not settings.any_credentials:
                raise HTTPException(503, "authentication is required but no credentials are configured on the server "
                                         "(set SOPILOT_API_TOKEN, SOPILOT_API_ROLE_TOKENS or SOPILOT_BASIC_USER/_PASSWORD)")  # fmt: skip
            raise HTTPException(401, "missing credentials: send 'Authorization: Bearer <token>' or basic auth",
                                headers={"WWW-Authenticate": _challenge(settings)})  # fmt: skip
        else:
            principal = Principal(settings.auth_default_role, "anonymous")
        if RANK[principal.role] < RANK[role]:
            raise HTTPException(403, f"this endpoint needs the {role} role; your role is {principal.role}")
        return principal

    return dependency
