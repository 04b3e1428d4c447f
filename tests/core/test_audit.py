"""Signed audit exports: canonical signing, offline verification, tampering detected."""

import json
import subprocess
import sys

import pytest

from sopilot_pipelines.core.audit import canonical, sign, verify

ITEMS = [{"job_id": "score_1", "job_type": "score", "subject": "1→42", "score": 87.5, "status": "completed"}]


def test_canonical_form_is_sorted_compact_ascii():
    assert canonical({"b": 1, "a": "→"}) == b'{"a":"\\u2192","b":1}'


def test_sign_and_verify_and_every_kind_of_tampering():
    doc = sign({"export_id": "x", "items": ITEMS}, "k", "prod")
    assert doc["signature"]["key_id"] == "prod" and doc["signature"]["algorithm"] == "hmac-sha256"
    assert verify(doc, "k")[0]
    assert "signature check failed" in verify(doc, "other-key")[1]
    changed = json.loads(json.dumps(doc))
    changed["items"][0]["score"] = 99.0
    assert not verify(changed, "k")[0] and "hash check failed" in verify(changed, "k")[1]


@pytest.mark.slow
def test_cli_verify_says_which_check_failed(tmp_path):
    path = tmp_path / "audit_export.json"
    path.write_text(json.dumps(sign({"export_id": "x", "items": ITEMS}, "k", "prod")))
    env = {"SOPILOT_AUDIT_SIGNING_KEY": "k", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "sopilot_pipelines.cli", "audit", "verify", str(path)]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("OK")
    raw = bytearray(path.read_bytes())
    i = raw.index(b"completed")
    raw[i] = ord("C")  # one byte of one item
    path.write_bytes(bytes(raw))
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "hash check failed" in bad.stdout
    nokey = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert nokey.returncode == 2 and "SOPILOT_AUDIT_SIGNING_KEY" in nokey.stderr
