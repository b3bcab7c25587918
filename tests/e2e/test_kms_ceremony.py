"""HPCS-style instances and their master keys through the operator CLI (`coffer kms ...`):
instance management, the custodian ceremony with 2-3 master-key parts (one sealed under a
passphrase), sealing at restart and unsealing by loading the parts, a wrong part, master key
rotation; the PKCS#11 provider on SoftHSM2 (no custodians: the instance unseals itself); and
automatic rotation of root keys on their rotation policy's schedule (spec §5, §4.9)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import (
    KP_KEY,
    KpRaw,
    assert_kp_error,
    b64,
    coffer_cli,
    coffer_cli_json,
    kms_instance_ready,
    kms_part_files,
    kms_server,
    kp_envelope,
    kp_json,
    kp_sdk,
    unique_name,
)

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture
def srv(tmp_path):
    # Manual rotation allowed at any time, so that a sealed instance's refusal is about the seal.
    s = kms_server(tmp_path / "server", {"COFFER_KMS_ROTATE_MIN_INTERVAL_SECS": "0"})
    yield s
    if s.running:
        s.stop()


def show(srv, instance_id: str) -> dict:
    return coffer_cli_json(srv, "kms", "instance", "show", instance_id)


def load_part(srv, instance_id: str, part, *, passphrase: str | None = None, new: bool = False,
              check: bool = True) -> subprocess.CompletedProcess:
    args = ["kms", "load-part", "--instance", instance_id, "--part", str(part), "--json"]
    if new:
        args.append("--new")
    env = {"COFFER_PART_PASSPHRASE": passphrase} if passphrase else None
    return coffer_cli(srv, *args, env=env, check=check)


def assert_sealed(raw: KpRaw, root_id: str, std_id: str, ciphertext: str) -> None:
    for r in (raw.call("POST", "/keys", body=json.dumps({"resources": [{"name": "x", "extractable": False}]})),
              raw.action(root_id, "wrap", {"plaintext": b64(b"x")}),
              raw.action(root_id, "unwrap", {"ciphertext": ciphertext}),
              raw.action(root_id, "rotate"),
              raw.call("GET", f"/keys/{std_id}"),
              raw.call("POST", "/import_token", body="{}")):
        assert_kp_error(r, 503, "INSTANCE_SEALED_ERR")


# -- instances ---------------------------------------------------------------------------------


def test_instance_create_list_show_delete(srv):
    b = srv.bootstrap
    hp = coffer_cli_json(srv, "kms", "instance", "create", "--name", "hpcs-e2e", "--service", "hs-crypto")
    assert hp["name"] == "hpcs-e2e" and hp["service"] == "hs-crypto"
    assert hp["initialized"] is False and hp["sealed"] is False
    assert hp["crn"] == f"crn:v1:bluemix:public:hs-crypto:{b['region']}:a/{b['account_id']}:{hp['id']}::"
    kp = coffer_cli_json(srv, "kms", "instance", "create", "--name", "kp-e2e", "--service", "kms")
    assert kp["service"] == "kms"
    assert kp["crn"].startswith(f"crn:v1:bluemix:public:kms:{b['region']}:a/{b['account_id']}:")

    listed = coffer_cli_json(srv, "kms", "instance", "list")["instances"]
    ids = {i["id"] for i in listed}
    assert {hp["id"], kp["id"], b["kms_instance_id"]} <= ids
    dev = next(i for i in listed if i["id"] == b["kms_instance_id"])
    assert dev["initialized"] is True and dev["sealed"] is False

    assert show(srv, kp["id"])["name"] == "kp-e2e"
    # The table form names the fields too.
    table = coffer_cli(srv, "kms", "instance", "show", hp["id"]).stdout
    assert hp["id"] in table and "hs-crypto" in table

    out = coffer_cli(srv, "kms", "instance", "delete", kp["id"]).stdout
    assert kp["id"] in out
    gone = coffer_cli(srv, "kms", "instance", "show", kp["id"], "--json", check=False)
    assert gone.returncode != 0
    assert kp["id"] not in {i["id"] for i in coffer_cli_json(srv, "kms", "instance", "list")["instances"]}


def test_instance_with_keys_cannot_be_deleted(srv, tmp_path):
    ready = kms_instance_ready(srv, tmp_path / "parts")
    KpRaw(srv, ready["id"]).create_key()
    proc = coffer_cli(srv, "kms", "instance", "delete", ready["id"], check=False)
    assert proc.returncode != 0
    assert "409" in proc.stderr or "keys" in proc.stderr, proc.stderr
    assert show(srv, ready["id"])["initialized"] is True


# -- the custodian ceremony --------------------------------------------------------------------


def test_custodian_ceremony_seal_and_unseal(srv, tmp_path):
    out = tmp_path / "custodians"
    created = coffer_cli_json(srv, "kms", "instance", "create", "--name", unique_name("hpcs"))
    iid = created["id"]
    init = coffer_cli(srv, "kms", "init", "--instance", iid, "--parts", "3", "--out-dir", str(out), "--json",
                      env={"COFFER_PART_PASSPHRASE_2": "custodian two's passphrase"})
    info = json.loads(init.stdout)
    assert info["initialized"] is True and info["sealed"] is False
    assert info["provider"] == "software" and info["parts"] == 3
    vp = info["verification_pattern"]
    assert vp
    parts = kms_part_files(out, iid)
    assert [p.name for p in parts] == [f"{iid}-part-{i}-of-3.json" for i in (1, 2, 3)]
    files = [json.loads(p.read_text()) for p in parts]
    for i, f in enumerate(files, start=1):
        assert f["instance"] == iid and f["index"] == i and f["parts"] == 3
        assert f["verification_pattern"] == vp
        assert oct(parts[i - 1].stat().st_mode & 0o777) == "0o600"
    assert [f["protection"]["kind"] for f in files] == ["plain", "passphrase", "plain"]
    assert "part" not in files[1]["protection"], "the sealed part is not in the file in the clear"
    assert not any(srv.data_dir in p.parents for p in parts)

    raw = KpRaw(srv, iid)
    root = raw.create_key()
    std = raw.create_key(root=False)
    std_payload = raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"]
    dek = os.urandom(32)
    w = raw.wrap(root["id"], dek, ["ceremony"])

    srv.restart()
    sealed = show(srv, iid)
    assert sealed["initialized"] is True and sealed["sealed"] is True
    assert sealed["parts_loaded"] == 0 and sealed["verification_pattern"] == vp
    raw = KpRaw(srv, iid)
    assert_sealed(raw, root["id"], std["id"], w["ciphertext"])
    # The dev instance of the same server is not affected.
    dev = KpRaw(srv, srv.bootstrap["kms_instance_id"])
    assert dev.call("POST", "/keys", body=json.dumps({"resources": [{"name": "d", "extractable": False}]})).status_code == 201

    # A custodian with the wrong passphrase cannot even open the part.
    bad = load_part(srv, iid, parts[1], passphrase="not the passphrase", check=False)
    assert bad.returncode != 0 and "passphrase" in bad.stderr, bad.stderr
    assert load_part(srv, iid, parts[1], check=False).returncode != 0, "a sealed part needs its passphrase"

    # Two right parts and a wrong one: refused, nothing kept, still sealed.
    first = json.loads(load_part(srv, iid, parts[0]).stdout)
    assert first["loaded"] == 1 and first["needed"] == 3 and first["complete"] is False, first
    second = json.loads(load_part(srv, iid, parts[1], passphrase="custodian two's passphrase").stdout)
    assert second["loaded"] == 2 and second["complete"] is False
    forged = dict(files[2])
    forged["protection"] = {"kind": "plain", "part": os.urandom(32).hex()}
    forged_path = tmp_path / "forged-part-3.json"
    forged_path.write_text(json.dumps(forged))
    wrong = load_part(srv, iid, forged_path, check=False)
    assert wrong.returncode != 0
    assert "verification pattern" in wrong.stderr, wrong.stderr
    assert vp in wrong.stderr, f"the error names the expected pattern: {wrong.stderr}"
    after = show(srv, iid)
    assert after["sealed"] is True and after["parts_loaded"] == 0
    assert_kp_error(raw.action(root["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["ceremony"]}),
                    503, "INSTANCE_SEALED_ERR")

    # All three right parts, in any order.
    load_part(srv, iid, parts[2])
    load_part(srv, iid, parts[0])
    done = json.loads(load_part(srv, iid, parts[1], passphrase="custodian two's passphrase").stdout)
    assert done["complete"] is True and done["verification_pattern"] == vp and done["loaded"] == 3
    assert show(srv, iid)["sealed"] is False
    r = raw.action(root["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["ceremony"]})
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["plaintext"]) == dek
    assert raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"] == std_payload
    # Loading once more is refused: the master key is in.
    again = load_part(srv, iid, parts[0], check=False)
    assert again.returncode != 0


def test_init_is_once(srv, tmp_path):
    ready = kms_instance_ready(srv, tmp_path / "p1")
    again = coffer_cli(srv, "kms", "init", "--instance", ready["id"], "--parts", "2", "--out-dir",
                       str(tmp_path / "p2"), check=False)
    assert again.returncode != 0
    assert show(srv, ready["id"])["verification_pattern"] == ready["verification_pattern"]
    bad = coffer_cli_json(srv, "kms", "instance", "create")
    one = coffer_cli(srv, "kms", "init", "--instance", bad["id"], "--parts", "1", "--out-dir",
                     str(tmp_path / "p3"), check=False)
    assert one.returncode != 0, "a master key has 2 or 3 parts"
    assert show(srv, bad["id"])["initialized"] is False


def test_master_key_rotation_keeps_keys_usable(srv, tmp_path):
    ready = kms_instance_ready(srv, tmp_path / "old", parts=3)
    iid, old_vp = ready["id"], ready["verification_pattern"]
    raw = KpRaw(srv, iid)
    root = raw.create_key()
    std = raw.create_key(root=False)
    std_payload = raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"]
    dek = os.urandom(32)
    w = raw.wrap(root["id"], dek)

    rotated = coffer_cli_json(srv, "kms", "rotate-master", "--instance", iid, "--parts", "2",
                              "--out-dir", str(tmp_path / "new"))
    new_vp = rotated["verification_pattern"]
    assert new_vp and new_vp != old_vp
    assert rotated["parts"] == 2 and rotated["rotation_pending"] is False and rotated["sealed"] is False
    new_parts = kms_part_files(tmp_path / "new", iid, new=True)
    assert len(new_parts) == 2
    assert all(json.loads(p.read_text())["verification_pattern"] == new_vp for p in new_parts)

    # Keys keep working, online.
    r = raw.action(root["id"], "unwrap", {"ciphertext": w["ciphertext"]})
    assert r.status_code == 200 and base64.b64decode(r.json()["plaintext"]) == dek
    w2 = raw.wrap(root["id"], b"after the rotation")
    assert raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"] == std_payload

    # After a restart only the new parts open the keystore.
    srv.restart()
    assert show(srv, iid)["sealed"] is True
    load_part(srv, iid, ready["parts"][0])
    stale = load_part(srv, iid, ready["parts"][1], check=False)
    assert stale.returncode != 0 and "verification pattern" in stale.stderr, stale.stderr
    assert show(srv, iid)["sealed"] is True
    for p in new_parts:
        out = json.loads(load_part(srv, iid, p).stdout)
    assert out["complete"] is True and out["verification_pattern"] == new_vp
    raw = KpRaw(srv, iid)
    for ct, plain in ((w["ciphertext"], dek), (w2["ciphertext"], b"after the rotation")):
        r = raw.action(root["id"], "unwrap", {"ciphertext": ct})
        assert r.status_code == 200, r.text
        assert base64.b64decode(r.json()["plaintext"]) == plain
    assert raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"] == std_payload


# -- PKCS#11 (SoftHSM2) ------------------------------------------------------------------------


@pytest.fixture
def softhsm(tmp_path):
    if not shutil.which("softhsm2-util") or not os.path.exists(SOFTHSM_MODULE):
        pytest.fail("SoftHSM2 is not installed (softhsm2-util, libsofthsm2.so)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    label = unique_name("coffer")[:32]
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    proc = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "5678",
                           "--pin", "1234"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {"COFFER_PKCS11_MODULE": SOFTHSM_MODULE, "COFFER_PKCS11_TOKEN_LABEL": label,
            "COFFER_PKCS11_PIN": "1234", "SOFTHSM2_CONF": str(conf)}


def test_pkcs11_provider_unseals_itself(tmp_path, softhsm):
    srv = kms_server(tmp_path / "server", softhsm)
    try:
        created = coffer_cli_json(srv, "kms", "instance", "create", "--name", "hsm-backed")
        iid = created["id"]
        out = tmp_path / "no-parts"
        info = coffer_cli_json(srv, "kms", "init", "--provider", "pkcs11", "--instance", iid,
                               "--out-dir", str(out))
        assert info["initialized"] is True and info["sealed"] is False
        assert info["provider"] == "pkcs11"
        assert not out.exists() or not any(out.iterdir()), "no custodian parts for a PKCS#11 instance"

        raw = KpRaw(srv, iid)
        root = raw.create_key()
        std = raw.create_key(root=False)
        std_payload = raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"]
        dek = os.urandom(32)
        w = raw.wrap(root["id"], dek, ["hsm"])
        r = raw.action(root["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["hsm"]})
        assert r.status_code == 200 and base64.b64decode(r.json()["plaintext"]) == dek

        srv.restart()
        after = show(srv, iid)
        assert after["initialized"] is True and after["sealed"] is False, after
        raw = KpRaw(srv, iid)
        r = raw.action(root["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["hsm"]})
        assert r.status_code == 200, r.text
        assert base64.b64decode(r.json()["plaintext"]) == dek
        assert raw.call("GET", f"/keys/{std['id']}").json()["resources"][0]["payload"] == std_payload
        assert raw.wrap(root["id"], b"new")["ciphertext"]
        # Custodian parts make no sense here.
        fake = tmp_path / "fake-part.json"
        fake.write_text(json.dumps({"format": "coffer-master-key-part/1", "instance": iid, "index": 1, "parts": 2,
                                    "verification_pattern": "x",
                                    "protection": {"kind": "plain", "part": os.urandom(32).hex()}}))
        assert load_part(srv, iid, fake, check=False).returncode != 0

        # Without the token's PIN the instance stays sealed; with it, it unseals again.
        srv.stop()
        srv.extra_env["COFFER_PKCS11_PIN"] = "0000"
        srv.start()
        assert show(srv, iid)["sealed"] is True
        assert_kp_error(KpRaw(srv, iid).action(root["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["hsm"]}),
                        503, "INSTANCE_SEALED_ERR")
        srv.stop()
        srv.extra_env["COFFER_PKCS11_PIN"] = "1234"
        srv.start()
        assert show(srv, iid)["sealed"] is False
        r = KpRaw(srv, iid).action(root["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["hsm"]})
        assert r.status_code == 200 and base64.b64decode(r.json()["plaintext"]) == dek
    finally:
        if srv.running:
            srv.stop()


# -- rotation on schedule ----------------------------------------------------------------------


def test_automatic_rotation_on_schedule(tmp_path):
    """A rotation policy of one month with a 2 s month: new versions appear without any rotate."""
    srv = kms_server(tmp_path / "server", {"COFFER_KMS_MONTH_SECS": "2"})
    try:
        inst = srv.bootstrap["kms_instance_id"]
        kp = kp_sdk(srv)
        body = kp_envelope([{"type": KP_KEY, "name": unique_name("auto"), "extractable": False,
                             "rotation": {"enabled": True, "interval_month": 1}}])
        key = kp_json(kp.create_key_with_policies_overrides(
            bluemix_instance=inst, key_with_policy_overrides_create_body=body))["resources"][0]
        assert key["rotation"] == {"enabled": True, "interval_month": 1}
        raw = KpRaw(srv, inst)
        still = raw.create_key()
        off_body = kp_envelope([{"type": KP_KEY, "name": unique_name("off"), "extractable": False,
                                 "rotation": {"enabled": False, "interval_month": 1}}])
        off = kp_json(kp.create_key_with_policies_overrides(
            bluemix_instance=inst, key_with_policy_overrides_create_body=off_body))["resources"][0]
        v1 = key["keyVersion"]["id"]
        dek = os.urandom(32)
        w = raw.wrap(key["id"], dek)

        deadline = time.monotonic() + 15
        versions = []
        while time.monotonic() < deadline:
            versions = kp_json(kp.get_key_versions(id=key["id"], bluemix_instance=inst))["resources"]
            if len(versions) >= 3:
                break
            time.sleep(0.5)
        assert len(versions) >= 3, f"versions after waiting: {versions}"
        md = raw.key(key["id"])
        assert md["keyVersion"]["id"] != v1
        assert "lastRotateDate" in md
        for other in (still, off):
            assert len(raw.call("GET", f"/keys/{other['id']}/versions").json()["resources"]) == 1, other["name"]
        r = raw.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"]})
        assert r.status_code == 200, r.text
        u = r.json()
        assert base64.b64decode(u["plaintext"]) == dek
        assert u["keyVersion"]["id"] == v1
        # Rewrapped under a newer version (the schedule may have rotated once more meanwhile).
        later = {v["id"] for v in raw.call("GET", f"/keys/{key['id']}/versions").json()["resources"]}
        assert u["rewrappedKeyVersion"]["id"] in later - {v1}, u
    finally:
        srv.stop()
