"""Keep-your-own-key at rest: root key material (imported, then rotated to another imported
payload), a standard key's payload and a wrapped DEK never reach the server's files or its
log in any usual encoding, on an instance whose master-key parts live outside the data dir
(unlike the dev instance's, which sit in the data dir by design)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from conftest import (
    KpRaw,
    b64,
    coffer_cli,
    kms_instance_ready,
    kms_server,
    kp_json,
    kp_key_body,
    kp_sdk,
)

ROOT_MATERIAL = b"COFFER-ROOT-KEY-MATERIAL-0123456"
ROTATED_MATERIAL = b"COFFER-ROTATED-KEY-MATERIAL-6543"
STANDARD_PAYLOAD = b"COFFER-STANDARD-KEY-PAYLOAD-9876"
DEK = b"COFFER-DEK-PLAINTEXT-ABCDEFGHIJK"
SECRETS = {"root": ROOT_MATERIAL, "rotated": ROTATED_MATERIAL, "standard": STANDARD_PAYLOAD, "dek": DEK}


def encodings(secret: bytes) -> dict[str, bytes]:
    std = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    return {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": std,
        "base64-unpadded": std.rstrip(b"="),
        "base64url": url,
        "base64url-unpadded": url.rstrip(b"="),
    }


def findings(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        for name, secret in SECRETS.items():
            for enc, needle in encodings(secret).items():
                if needle in data:
                    found.append(f"{name} ({enc}) in {path}")
    return found


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_the_search_finds_what_is_there(tmp_path):
    """The finder itself: each encoding of each secret is found when present."""
    for name, secret in SECRETS.items():
        assert len(secret) == 32, name
        for enc, needle in encodings(secret).items():
            f = tmp_path / f"{name}-{enc}.bin"
            f.write_bytes(b"prefix\x00" + needle + b"\x00suffix")
            assert f"{name} ({enc}) in {f}" in findings([f])


def test_no_key_material_at_rest_or_in_the_log(tmp_path):
    custodians = tmp_path / "custodians"  # outside the data dir
    srv = kms_server(tmp_path / "server", {"RUST_LOG": "debug", "COFFER_KMS_ROTATE_MIN_INTERVAL_SECS": "0"})
    try:
        ready = kms_instance_ready(srv, custodians, parts=2)
        iid = ready["id"]
        assert all(srv.data_dir not in p.parents for p in ready["parts"])
        kp = kp_sdk(srv)

        root = kp_json(kp.create_key(bluemix_instance=iid, key_create_body=kp_key_body(
            "secret-root", payload=b64(ROOT_MATERIAL))))["resources"][0]
        assert root["imported"] is True
        std = kp_json(kp.create_key(bluemix_instance=iid, key_create_body=kp_key_body(
            "secret-standard", root=False, payload=b64(STANDARD_PAYLOAD))))["resources"][0]
        got = kp_json(kp.get_key(id=std["id"], bluemix_instance=iid))["resources"][0]
        assert base64.b64decode(got["payload"]) == STANDARD_PAYLOAD

        w = kp_json(kp.wrap_key(id=root["id"], bluemix_instance=iid, key_action_wrap_body=json.dumps(
            {"plaintext": b64(DEK), "aad": ["secrets"]})))
        u = kp_json(kp.unwrap_key(id=root["id"], bluemix_instance=iid, key_action_unwrap_body=json.dumps(
            {"ciphertext": w["ciphertext"], "aad": ["secrets"]})))
        assert base64.b64decode(u["plaintext"]) == DEK

        resp = kp.rotate_key(id=root["id"], bluemix_instance=iid,
                             key_action_rotate_body=json.dumps({"payload": b64(ROTATED_MATERIAL)}))
        assert resp.get_status_code() == 204
        u = kp_json(kp.unwrap_key(id=root["id"], bluemix_instance=iid, key_action_unwrap_body=json.dumps(
            {"ciphertext": w["ciphertext"], "aad": ["secrets"]})))
        assert base64.b64decode(u["plaintext"]) == DEK and u["rewrappedKeyVersion"]
        w2 = kp_json(kp.wrap_key(id=root["id"], bluemix_instance=iid, key_action_wrap_body=json.dumps(
            {"plaintext": b64(DEK)})))

        # Restart: the instance is sealed until its custodians (outside the data dir) load parts.
        srv.restart()
        for part in ready["parts"]:
            coffer_cli(srv, "kms", "load-part", "--instance", iid, "--part", str(part))
        raw = KpRaw(srv, iid)
        for ct, aad in ((u["ciphertext"], ["secrets"]), (w2["ciphertext"], None)):
            body = {"ciphertext": ct}
            if aad:
                body["aad"] = aad
            r = raw.action(root["id"], "unwrap", body)
            assert r.status_code == 200, r.text
            assert base64.b64decode(r.json()["plaintext"]) == DEK
        r = raw.call("GET", f"/keys/{std['id']}")
        assert base64.b64decode(r.json()["resources"][0]["payload"]) == STANDARD_PAYLOAD
    finally:
        if srv.running:
            srv.stop()

    files = every_file(srv.data_dir)
    names = {p.name for p in files}
    assert "meta.redb" in names, names
    assert any("blobs" in p.parts for p in srv.data_dir.rglob("*")), "the blob store exists"
    logs = [srv.log_path, srv.stdout_path]
    assert srv.log_path.stat().st_size > 0
    leaks = findings(files + logs)
    assert leaks == [], "key material found:\n" + "\n".join(leaks)
    # The custodians' files are not the server's business, and hold no key material either.
    assert findings(every_file(custodians)) == []
