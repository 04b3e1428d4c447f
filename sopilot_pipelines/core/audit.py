"""Signed audit exports: canonical JSON (sorted keys, compact, ASCII) + HMAC-SHA256, and verify."""

from __future__ import annotations

import hashlib
import hmac
import json

ALGORITHM = "hmac-sha256"


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode("ascii")


def sign(payload: dict, key: str, key_id: str) -> dict:
    """The payload plus a `signature` block over everything but that block."""
    body = canonical(payload)
    return {
        **payload,
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": key_id,
            "payload_sha256": hashlib.sha256(body).hexdigest(),
            "signature_hex": hmac.new(key.encode(), body, hashlib.sha256).hexdigest(),
        },
    }


def verify(document: dict, key: str) -> tuple[bool, str]:
    """(ok, what was checked or which check failed)."""
    sig = document.get("signature")
    if not isinstance(sig, dict):
        return False, "no signature block"
    if sig.get("algorithm") != ALGORITHM:
        return False, f"unknown algorithm {sig.get('algorithm')!r}"
    body = canonical({k: v for k, v in document.items() if k != "signature"})
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), str(sig.get("payload_sha256", ""))):
        return False, "hash check failed: the content does not match payload_sha256 (the file was changed)"
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(sig.get("signature_hex", ""))):
        return False, "signature check failed: wrong key, or the hash and content were changed together"
    return True, f"hash and signature valid (key_id {sig.get('key_id')})"
