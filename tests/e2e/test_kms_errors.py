"""The Key Protect / HPCS API's refusals (spec §4.5-§4.12, §5): every error answers with the
Key Protect error envelope, the HTTP status and the reason code real clients see.

Most tests run on a server with short timing rules (`fast_kms_server`); the `server` fixture
keeps IBM's defaults and shows they are enforced (without waiting for them)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
import uuid
from urllib.parse import quote

import pytest
import requests

from conftest import (
    KP_KEY,
    KP_POLICY,
    IamAdmin,
    KpRaw,
    assert_kp_error,
    b64,
    fetch_token,
    kms_server,
    kms_user,
    kp_envelope,
    kp_json,
    kp_key_body,
    kp_raises,
    kp_sdk,
    unique_name,
)


@pytest.fixture(scope="module")
def srv(fast_kms_server):
    return fast_kms_server


@pytest.fixture(scope="module")
def inst(srv) -> str:
    return srv.bootstrap["kms_instance_id"]


@pytest.fixture(scope="module")
def admin(srv, inst) -> KpRaw:
    return KpRaw(srv, inst)


@pytest.fixture(scope="module")
def fast_iam(srv) -> IamAdmin:
    return IamAdmin(srv)


def ts(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def rotation_policy(months: int = 1, enabled: bool = True) -> str:
    return json.dumps({"metadata": {"collectionType": KP_POLICY, "collectionTotal": 1},
                       "resources": [{"type": KP_POLICY, "rotation": {"enabled": enabled, "interval_month": months}}]})


def dual_auth_key(admin: KpRaw) -> dict:
    r = admin.call("POST", "/keys_with_policy_overrides", body=kp_envelope([{
        "type": KP_KEY, "name": unique_name("dual"), "extractable": False, "dualAuthDelete": {"enabled": True}}]))
    assert r.status_code == 201, r.text
    key = r.json()["resources"][0]
    assert key["dualAuthDelete"]["enabled"] is True
    return key


# -- ciphertexts -------------------------------------------------------------------------------


def test_wrong_aad_is_unprocessable(admin):
    key = admin.create_key()
    w = admin.wrap(key["id"], b"bound to its aad", ["tenant:1", "bucket:a"])
    for wrong in (["tenant:2", "bucket:a"], ["tenant:1"], ["tenant:1", "bucket:a", "extra"],
                  ["bucket:a", "tenant:1"], None):
        body = {"ciphertext": w["ciphertext"]}
        if wrong is not None:
            body["aad"] = wrong
        r = admin.action(key["id"], "unwrap", body)
        assert_kp_error(r, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
        r = admin.action(key["id"], "rewrap", body)
        assert_kp_error(r, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
    r = admin.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"], "aad": ["tenant:1", "bucket:a"]})
    assert r.status_code == 200 and base64.b64decode(r.json()["plaintext"]) == b"bound to its aad"


def test_wrong_aad_through_the_sdk(srv, inst):
    kp = kp_sdk(srv)
    key = kp_json(kp.create_key(bluemix_instance=inst, key_create_body=kp_key_body(unique_name("k"))))["resources"][0]
    w = kp_json(kp.wrap_key(id=key["id"], bluemix_instance=inst,
                            key_action_wrap_body=json.dumps({"plaintext": b64(b"x"), "aad": ["right"]})))
    err = kp_raises(kp.unwrap_key, id=key["id"], bluemix_instance=inst,
                    key_action_unwrap_body=json.dumps({"ciphertext": w["ciphertext"], "aad": ["wrong"]}))
    assert_kp_error(err, 422, "UNPROCESSABLE_CIPHERTEXT_ERR")


def test_foreign_and_corrupt_ciphertexts(admin):
    a, b = admin.create_key(), admin.create_key()
    w = admin.wrap(a["id"], b"belongs to a")
    assert_kp_error(admin.action(b["id"], "unwrap", {"ciphertext": w["ciphertext"]}), 422,
                    "UNPROCESSABLE_CIPHERTEXT_ERR")
    # Flip one byte of the sealed DEK inside the (opaque to clients) envelope.
    doc = json.loads(base64.b64decode(w["ciphertext"]))
    sealed = bytearray(base64.b64decode(doc["ciphertext"]))
    sealed[0] ^= 0x01
    doc["ciphertext"] = b64(bytes(sealed))
    tampered = b64(json.dumps(doc).encode())
    assert_kp_error(admin.action(a["id"], "unwrap", {"ciphertext": tampered}), 422, "UNPROCESSABLE_CIPHERTEXT_ERR")
    assert_kp_error(admin.action(a["id"], "unwrap", {"ciphertext": b64(os.urandom(64))}), 422,
                    "UNPROCESSABLE_CIPHERTEXT_ERR")
    err = assert_kp_error(admin.action(a["id"], "unwrap", {"ciphertext": "%%% not base64 %%%"}), 400,
                          "INVALID_FIELD_ERR")
    assert err["reasons"][0]["target"] == {"type": "field", "name": "ciphertext"}, err


def test_wrap_bad_plaintext(admin):
    key = admin.create_key()
    err = assert_kp_error(admin.action(key["id"], "wrap", {"plaintext": "not base64!"}), 400, "INVALID_FIELD_ERR")
    assert err["reasons"][0]["target"] == {"type": "field", "name": "plaintext"}, err


def test_wrap_needs_a_root_key(admin):
    std = admin.create_key(root=False)
    assert_kp_error(admin.action(std["id"], "wrap", {"plaintext": b64(b"x")}), 400, "KEY_ROOT_REQ_ERR")
    assert_kp_error(admin.action(std["id"], "rotate"), 400, "KEY_ROOT_REQ_ERR")
    r = admin.call("PUT", f"/keys/{std['id']}/policies", params={"policy": "rotation"}, body=rotation_policy())
    assert_kp_error(r, 400, "KEY_ROOT_REQ_ERR")


# -- states ------------------------------------------------------------------------------------


def test_disabled_key_refuses_wrap_and_unwrap(admin):
    key = admin.create_key()
    w = admin.wrap(key["id"], b"x")
    assert_kp_error(admin.action(key["id"], "enable"), 409, "KEY_ACTION_INVALID_STATE_ERR")
    assert admin.action(key["id"], "disable").status_code == 204
    assert_kp_error(admin.action(key["id"], "wrap", {"plaintext": b64(b"y")}), 409, "KEY_ACTION_INVALID_STATE_ERR")
    assert_kp_error(admin.action(key["id"], "wrap"), 409, "KEY_ACTION_INVALID_STATE_ERR")
    assert_kp_error(admin.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"]}), 409,
                    "KEY_ACTION_INVALID_STATE_ERR")
    assert_kp_error(admin.action(key["id"], "rewrap", {"ciphertext": w["ciphertext"]}), 409,
                    "KEY_ACTION_INVALID_STATE_ERR")
    assert_kp_error(admin.action(key["id"], "disable"), 409, "KEY_ACTION_INVALID_STATE_ERR")
    assert admin.action(key["id"], "enable").status_code == 204
    assert admin.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"]}).status_code == 200


def test_expired_key_is_deactivated(admin):
    """Spec §4.4/§4.8: past its expirationDate a key is Deactivated (3): no wrap, but unwrap,
    rewrap and rotate still work."""
    expires = int(time.time()) + 2
    stamp = dt.datetime.fromtimestamp(expires, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    key = admin.create_key(expirationDate=stamp)
    assert ts(key["expirationDate"]) == expires
    w = admin.wrap(key["id"], b"before expiry")
    sleep_until(expires + 1.1)
    md = admin.key(key["id"])
    assert md["state"] == 3, md
    assert_kp_error(admin.action(key["id"], "wrap", {"plaintext": b64(b"x")}), 409, "KEY_ACTION_INVALID_STATE_ERR")
    r = admin.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"]})
    assert r.status_code == 200 and base64.b64decode(r.json()["plaintext"]) == b"before expiry", r.text
    assert admin.action(key["id"], "rewrap", {"ciphertext": w["ciphertext"]}).status_code == 200
    assert admin.action(key["id"], "rotate").status_code == 204
    assert_kp_error(admin.action(key["id"], "disable"), 409, "KEY_ACTION_INVALID_STATE_ERR")


def test_delete_twice_is_gone(admin):
    key = admin.create_key()
    w = admin.wrap(key["id"], b"x")
    assert admin.call("DELETE", f"/keys/{key['id']}").status_code == 200
    assert_kp_error(admin.call("DELETE", f"/keys/{key['id']}"), 410, "KEY_DELETED_ERR")
    assert_kp_error(admin.action(key["id"], "wrap", {"plaintext": b64(b"x")}), 410, "KEY_DELETED_ERR")
    assert_kp_error(admin.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"]}), 410, "KEY_DELETED_ERR")
    # Metadata stays readable.
    assert admin.key(key["id"])["state"] == 5


def test_restore_after_the_window(admin):
    key = admin.create_key()
    r = admin.action(key["id"], "disable")
    assert r.status_code == 204
    assert_kp_error(admin.call("POST", f"/keys/{key['id']}/restore"), 409, "KEY_ACTION_INVALID_STATE_ERR")
    r = admin.call("DELETE", f"/keys/{key['id']}")
    assert r.status_code == 200
    expires = ts(r.json()["resources"][0]["restoreExpirationDate"])
    sleep_until(expires + 1.1)
    assert_kp_error(admin.call("POST", f"/keys/{key['id']}/restore"), 400, "KEY_RESTORE_EXPIRED")
    assert admin.key(key["id"])["state"] == 5


def test_unknown_key(admin, srv, inst):
    missing = str(uuid.uuid4())
    for method, path, body in (("GET", f"/keys/{missing}", None), ("GET", f"/keys/{missing}/metadata", None),
                               ("GET", f"/keys/{missing}/versions", None), ("DELETE", f"/keys/{missing}", None),
                               ("POST", f"/keys/{missing}/actions/wrap", "{}"),
                               ("POST", f"/keys/{missing}/actions/rotate", None),
                               ("POST", f"/keys/{missing}/restore", None),
                               ("GET", "/keys/no-such-alias", None)):
        assert_kp_error(admin.call(method, path, body=body), 404, "KEY_NOT_FOUND_ERR")
    assert_kp_error(kp_raises(kp_sdk(srv).get_key, id=missing, bluemix_instance=inst), 404, "KEY_NOT_FOUND_ERR")


# -- authentication and authorization ----------------------------------------------------------


def test_no_or_bad_token(admin):
    key = admin.create_key()
    for headers, auth in (({}, False), ({"Authorization": "Bearer not-a-token"}, False),
                          ({"Authorization": "Basic Yng6Yng="}, False)):
        assert_kp_error(admin.call("GET", "/keys", headers=headers, auth=auth), 401, "UNAUTHORIZED_ERR")
        assert_kp_error(admin.call("POST", f"/keys/{key['id']}/actions/wrap", body="{}", headers=headers, auth=auth),
                        401, "UNAUTHORIZED_ERR")
    # A token with a forged signature.
    head, claims, _sig = admin.token.split(".")
    forged = f"{head}.{claims}.{base64.urlsafe_b64encode(b'x' * 64).rstrip(b'=').decode()}"
    assert_kp_error(admin.call("GET", "/keys", headers={"Authorization": f"Bearer {forged}"}), 401,
                    "UNAUTHORIZED_ERR")


def test_instance_header(admin, srv):
    r = admin.call("GET", "/keys", headers={"Bluemix-Instance": str(uuid.uuid4())})
    assert_kp_error(r, 401, "UNAUTHORIZED_ERR")
    # The COS instance is not a key management instance.
    r = admin.call("GET", "/keys", headers={"Bluemix-Instance": srv.bootstrap["cos_instance_id"]})
    assert_kp_error(r, 401, "UNAUTHORIZED_ERR")
    # Missing entirely: a 400 naming the header (spec §4.12 leaves the code open).
    r = requests.get(f"{srv.control_endpoint}/api/v2/keys", headers={"Authorization": f"Bearer {admin.token}"},
                     timeout=10)
    assert r.status_code == 400, r.text
    assert "Bluemix-Instance" in r.json()["resources"][0]["reasons"][0]["message"]


def test_user_without_a_policy(srv, inst, fast_iam, admin):
    nobody = kms_user(fast_iam, None, inst)
    raw = KpRaw(srv, inst, nobody["apikey"])
    key = admin.create_key()
    assert_kp_error(raw.call("GET", "/keys"), 401, "UNAUTHORIZED_ERR")
    assert_kp_error(raw.call("GET", f"/keys/{key['id']}"), 401, "UNAUTHORIZED_ERR")
    assert_kp_error(raw.call("POST", "/keys", body=kp_key_body("nope")), 401, "UNAUTHORIZED_ERR")


def test_policies_are_per_instance(srv, inst, fast_iam, uninitialized):
    """A Manager of one instance has no access to another instance of the same account."""
    manager = kms_user(fast_iam, "Manager", inst)
    elsewhere = KpRaw(srv, uninitialized.instance_id, manager["apikey"])
    assert_kp_error(elsewhere.call("GET", "/keys"), 401, "UNAUTHORIZED_ERR")
    assert_kp_error(elsewhere.call("POST", "/keys", body=kp_key_body(unique_name("k"))), 401, "UNAUTHORIZED_ERR")
    assert KpRaw(srv, inst, manager["apikey"]).call("GET", "/keys").status_code == 200


def test_reader_cannot_delete(srv, inst, fast_iam, admin):
    reader = kms_user(fast_iam, "Reader", inst)
    kp = kp_sdk(srv, reader["apikey"])
    key = admin.create_key()
    assert kp.get_key(id=key["id"], bluemix_instance=inst).get_status_code() == 200
    assert_kp_error(kp_raises(kp.delete_key, id=key["id"], bluemix_instance=inst), 401, "UNAUTHORIZED_ERR")
    assert admin.key(key["id"])["state"] == 1


def registration_call(srv, admin: KpRaw) -> tuple[dict, str, str]:
    b = srv.bootstrap
    key = admin.create_key()
    crn = f"crn:v1:bluemix:public:cloud-object-storage:global:a/{b['account_id']}:{b['cos_instance_id']}:bucket:b1"
    path = f"/keys/{key['id']}/registrations/{quote(crn, safe='')}"
    body = json.dumps({"metadata": {"collectionType": "application/vnd.ibm.kms.registration_input+json",
                                    "collectionTotal": 1},
                       "resources": [{"preventKeyDeletion": False, "description": "by hand"}]})
    return key, path, body


def test_registration_writes_are_service_only(srv, admin, fast_iam, inst):
    """Only a service (COS, through its authorization policy) registers resources on a key; the
    409 PROTECTED_RESOURCE_ERR of deleting a key with registrations needs such a registration,
    which only the object store creates (when a bucket uses the key), not a user from Python."""
    key, path, body = registration_call(srv, admin)
    manager = KpRaw(srv, inst, kms_user(fast_iam, "Manager", inst)["apikey"])
    for who in (admin, manager):
        for method in ("POST", "PUT"):
            assert_kp_error(who.call(method, path, body=body), 403, "SERVICE_ONLY_ERR")
        assert_kp_error(who.call("DELETE", path), 403, "SERVICE_ONLY_ERR")
    regs = admin.call("GET", f"/keys/{key['id']}/registrations").json()
    assert regs["resources"] == []
    assert admin.call("DELETE", f"/keys/{key['id']}").status_code == 200


def test_registration_update_is_service_only(srv, admin, fast_iam, inst):
    """PATCH is one of the service-only registration writes (spec §4.10): a user gets 403
    SERVICE_ONLY_ERR whether or not the registration exists."""
    key, path, body = registration_call(srv, admin)
    nobody = KpRaw(srv, inst, kms_user(fast_iam, None, inst)["apikey"])
    assert_kp_error(admin.call("PATCH", path, body=body), 403, "SERVICE_ONLY_ERR")
    # A user without any access to the instance learns nothing either.
    assert_kp_error(nobody.call("PATCH", path, body=body), 401, "UNAUTHORIZED_ERR")


def test_event_ack_is_service_only(admin, srv):
    body = json.dumps({"metadata": {"collectionType": "application/vnd.ibm.kms.event_acknowledge+json",
                                    "collectionTotal": 1},
                       "resources": [{"eventId": str(uuid.uuid4()), "adopterKeyState": "DEK_ENABLED",
                                      "timestamp": "2026-01-01T00:00:00Z",
                                      "keyStateData": {"rewrappedKeyVersion": str(uuid.uuid4())}}]})
    assert_kp_error(admin.call("POST", "/event_ack", body=body), 403, "SERVICE_ONLY_ERR")


# -- dual authorization ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def managers(srv, inst, fast_iam):
    return [KpRaw(srv, inst, kms_user(fast_iam, "Manager", inst)["apikey"]) for _ in range(2)]


def test_dual_auth_delete(managers, admin):
    first, second = managers
    key = dual_auth_key(admin)
    kid = key["id"]
    assert_kp_error(first.call("DELETE", f"/keys/{kid}"), 409, "AUTHORIZATIONS_NOT_MET")
    assert first.action(kid, "setKeyForDeletion").status_code == 204
    md = admin.key(kid)
    assert md["dualAuthDelete"]["keySetForDeletion"] is True
    assert ts(md["dualAuthDelete"]["authExpiration"]) > time.time()
    # The one who asked may not also delete.
    assert_kp_error(first.call("DELETE", f"/keys/{kid}"), 409, "AUTHORIZATIONS_NOT_MET")
    r = second.call("DELETE", f"/keys/{kid}")
    assert r.status_code == 200, r.text
    assert r.json()["resources"][0]["state"] == 5


def test_dual_auth_unset(managers, admin):
    first, second = managers
    kid = dual_auth_key(admin)["id"]
    assert first.action(kid, "setKeyForDeletion").status_code == 204
    assert first.action(kid, "unsetKeyForDeletion").status_code == 204
    assert admin.key(kid)["dualAuthDelete"]["keySetForDeletion"] is False
    assert_kp_error(second.call("DELETE", f"/keys/{kid}"), 409, "AUTHORIZATIONS_NOT_MET")
    assert admin.key(kid)["state"] == 1


def test_dual_auth_authorization_expires(tmp_path):
    """The first authorization holds for COFFER_KMS_DUAL_AUTH_WINDOW_SECS (IBM: 7 days)."""
    srv = kms_server(tmp_path / "server", {"COFFER_KMS_DUAL_AUTH_WINDOW_SECS": "1"})
    try:
        inst = srv.bootstrap["kms_instance_id"]
        admin = KpRaw(srv, inst)
        other = KpRaw(srv, inst, kms_user(IamAdmin(srv), "Manager", inst)["apikey"])
        kid = dual_auth_key(admin)["id"]
        asked = time.time()
        assert admin.action(kid, "setKeyForDeletion").status_code == 204
        expires = ts(admin.key(kid)["dualAuthDelete"]["authExpiration"])
        assert asked - 1 <= expires <= time.time() + 1, (asked, expires)
        sleep_until(expires + 1.1)
        assert_kp_error(other.call("DELETE", f"/keys/{kid}"), 409, "AUTHORIZATIONS_NOT_MET")
        assert admin.key(kid)["state"] == 1
        # Asked again, the other user may delete at once.
        assert admin.action(kid, "setKeyForDeletion").status_code == 204
        r = other.call("DELETE", f"/keys/{kid}")
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


def test_set_for_deletion_needs_dual_auth(admin):
    key = admin.create_key()
    assert_kp_error(admin.action(key["id"], "setKeyForDeletion"), 409, "NOT_DUAL_AUTH_ERR")
    assert_kp_error(admin.action(key["id"], "unsetKeyForDeletion"), 409, "NOT_DUAL_AUTH_ERR")


# -- IBM's default timing rules (the session server) -------------------------------------------


@pytest.fixture(scope="module")
def default_admin(server) -> KpRaw:
    return KpRaw(server, server.bootstrap["kms_instance_id"])


def test_default_rotation_once_per_hour(default_admin):
    """IBM's integration test rotates a key seconds after creating it (204); a second
    rotation within the hour is refused."""
    key = default_admin.create_key()
    first = default_admin.action(key["id"], "rotate")
    assert first.status_code == 204, f"first rotation of a new key: {first.status_code} {first.text}"
    assert_kp_error(default_admin.action(key["id"], "rotate"), 409, "KEY_ROTATION_NOT_PERMITTED")


def test_default_rotation_refused_right_after_another(default_admin):
    """Independently of the first rotation: whatever happened before, two back-to-back
    rotations never both succeed."""
    key = default_admin.create_key()
    statuses = [default_admin.action(key["id"], "rotate") for _ in range(2)]
    assert statuses[1].status_code == 409, statuses[1].text
    assert_kp_error(statuses[1], 409, "KEY_ROTATION_NOT_PERMITTED")
    assert len(default_admin.call("GET", f"/keys/{key['id']}/versions").json()["resources"]) <= 2


def test_default_enable_right_after_disable(default_admin):
    key = default_admin.create_key()
    assert default_admin.action(key["id"], "disable").status_code == 204
    assert_kp_error(default_admin.action(key["id"], "enable"), 409, "REQ_TOO_EARLY_ERR")
    assert default_admin.key(key["id"])["state"] == 2


def test_default_purge_and_restore_right_after_delete(default_admin):
    key = default_admin.create_key()
    r = default_admin.call("DELETE", f"/keys/{key['id']}")
    assert r.status_code == 200
    gone = r.json()["resources"][0]
    assert ts(gone["purgeAllowedFrom"]) - ts(gone["deletionDate"]) == 4 * 3600
    assert ts(gone["restoreExpirationDate"]) - ts(gone["deletionDate"]) == 30 * 24 * 3600
    assert gone["purgeAllowed"] is False and gone["restoreAllowed"] is True
    assert_kp_error(default_admin.call("DELETE", f"/keys/{key['id']}/purge"), 409, "REQ_TOO_EARLY_ERR")
    assert_kp_error(default_admin.call("POST", f"/keys/{key['id']}/restore"), 409, "REQ_TOO_EARLY_ERR")
    assert default_admin.key(key["id"])["state"] == 5


def test_default_sync_once_per_hour(default_admin):
    key = default_admin.create_key()
    assert default_admin.action(key["id"], "sync").status_code == 204
    assert_kp_error(default_admin.action(key["id"], "sync"), 409, "REQ_TOO_EARLY_ERR")


# -- purge -------------------------------------------------------------------------------------


def test_purge_needs_key_purge_and_the_delay(srv, inst, fast_iam, admin):
    purger = KpRaw(srv, inst, kms_user(fast_iam, "KeyPurge", inst)["apikey"])
    manager = KpRaw(srv, inst, kms_user(fast_iam, "Manager", inst)["apikey"])
    key = admin.create_key()
    assert_kp_error(admin.call("DELETE", f"/keys/{key['id']}/purge"), 409, "KEY_ACTION_INVALID_STATE_ERR")
    r = admin.call("DELETE", f"/keys/{key['id']}")
    assert r.status_code == 200
    allowed = ts(r.json()["resources"][0]["purgeAllowedFrom"])
    assert_kp_error(purger.call("DELETE", f"/keys/{key['id']}/purge"), 409, "REQ_TOO_EARLY_ERR")
    sleep_until(allowed + 0.2)
    assert_kp_error(manager.call("DELETE", f"/keys/{key['id']}/purge"), 401, "UNAUTHORIZED_ERR")
    r = purger.call("DELETE", f"/keys/{key['id']}/purge")
    assert r.status_code == 200, r.text
    assert r.json()["resources"][0]["id"] == key["id"]
    for method, path in (("GET", f"/keys/{key['id']}"), ("GET", f"/keys/{key['id']}/metadata"),
                         ("DELETE", f"/keys/{key['id']}/purge"), ("POST", f"/keys/{key['id']}/restore")):
        assert_kp_error(admin.call(method, path), 404, "KEY_NOT_FOUND_ERR")
    listed = admin.call("GET", "/keys", params={"state": "5", "limit": "5000"}).json()["resources"]
    assert key["id"] not in [k["id"] for k in listed]


# -- HPCS instances without a master key -------------------------------------------------------


@pytest.fixture(scope="module")
def uninitialized(srv) -> KpRaw:
    token = fetch_token(srv, srv.bootstrap["admin_api_key"])["access_token"]
    r = requests.post(f"{srv.control_endpoint}/kms/v1/instances", headers={"Authorization": f"Bearer {token}"},
                      json={"name": unique_name("uninit"), "service": "hs-crypto"}, timeout=10)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["initialized"] is False and info["crn"].startswith("crn:v1:bluemix:public:hs-crypto:")
    return KpRaw(srv, info["id"])


def assert_not_initialized(r: requests.Response) -> None:
    assert r.status_code == 400, f"{r.status_code} {r.text}"
    code = r.json()["resources"][0]["reasons"][0]["code"]
    assert_kp_error(r, 400, code, message="CKR_IBM_WK_NOT_INITIALIZED")


def test_uninitialized_instance_refuses_key_operations(uninitialized):
    assert_not_initialized(uninitialized.call("POST", "/keys", body=kp_key_body(unique_name("k"))))
    assert_not_initialized(uninitialized.call("POST", "/keys", body=kp_key_body(unique_name("k"), root=False)))
    assert_not_initialized(uninitialized.call("POST", "/keys", body=kp_key_body(unique_name("k"),
                                                                                  payload=b64(os.urandom(32)))))
    assert_not_initialized(uninitialized.call("POST", "/import_token", body="{}"))


def test_uninitialized_instance_refuses_listing(uninitialized):
    """Spec §5: an uninitialized HPCS instance fails KMS calls with the 400; listing keys is one."""
    assert_not_initialized(uninitialized.call("GET", "/keys"))
    r = uninitialized.call("HEAD", "/keys")
    assert r.status_code == 400, f"HEAD /keys on an uninitialized instance: {r.status_code} {r.headers}"


# -- bodies ------------------------------------------------------------------------------------


def test_bad_bodies(admin):
    assert_kp_error(admin.call("POST", "/keys", body="{not json"), 400, "BAD_BODY_ERR")
    body = json.dumps({"metadata": {"collectionType": KP_KEY, "collectionTotal": 2},
                       "resources": [{"type": KP_KEY, "name": "one", "extractable": False}]})
    assert_kp_error(admin.call("POST", "/keys", body=body), 400, "COLLECTION_TOTAL_MISMATCH_ERR")
    key = admin.create_key()
    assert_kp_error(admin.call("POST", f"/keys/{key['id']}/actions/unwrap", body="[1, 2"), 400, "BAD_BODY_ERR")


def test_invalid_fields(admin):
    cases = [
        kp_key_body("", root=True),
        kp_key_body(unique_name("k"), payload=b64(os.urandom(20))),
        kp_key_body(unique_name("k"), payload="***"),
        kp_key_body(unique_name("k"), aliases=["keys"]),
        kp_key_body(unique_name("k"), aliases=[str(uuid.uuid4())]),
        kp_key_body(unique_name("k"), expirationDate="yesterday"),
        kp_key_body(unique_name("k"), description="d" * 241),
    ]
    for body in cases:
        assert_kp_error(admin.call("POST", "/keys", body=body), 400, "INVALID_FIELD_ERR")
    key = admin.create_key()
    r = admin.call("PUT", f"/keys/{key['id']}/policies", params={"policy": "rotation"}, body=rotation_policy(13))
    assert_kp_error(r, 400, "INVALID_FIELD_ERR")


def test_rotate_imported_key_needs_a_payload(admin):
    key = admin.create_key(payload=b64(os.urandom(32)))
    assert_kp_error(admin.action(key["id"], "rotate"), 400, "KEY_PAYLOAD_REQ_ERR")
    assert_kp_error(admin.action(key["id"], "rotate", {}), 400, "KEY_PAYLOAD_REQ_ERR")


def test_import_token_retrievals_run_out(admin):
    r = admin.call("POST", "/import_token", body=json.dumps({"expiration": 300, "maxAllowedRetrievals": 1}))
    assert r.status_code == 200, r.text
    assert admin.call("GET", "/import_token").status_code == 200
    assert_kp_error(admin.call("GET", "/import_token"), 409, "IMPORT_TOKEN_EXPIRED_ERR")


# -- the role matrix ---------------------------------------------------------------------------

ROLES = ["Reader", "Writer", "Manager", "KeyPurge"]
OPS = ["list", "get", "wrap", "unwrap", "create", "rotate", "disable", "enable", "delete", "restore",
       "set_policy", "purge"]
ALLOWED = {
    "Reader": {"list", "get", "wrap", "unwrap"},
    "Writer": {"list", "get", "wrap", "unwrap", "create", "rotate", "disable", "enable"},
    "Manager": {"list", "get", "wrap", "unwrap", "create", "rotate", "disable", "enable", "delete", "restore",
                "set_policy"},
    "KeyPurge": {"purge"},
}


@pytest.fixture(scope="module")
def role_users(srv, inst, fast_iam) -> dict[str, KpRaw]:
    return {role: KpRaw(srv, inst, kms_user(fast_iam, role, inst)["apikey"]) for role in ROLES}


@pytest.fixture(scope="module")
def purgeable(admin) -> dict:
    """One deleted key per role, and when they may be purged."""
    keys, allowed = {}, 0.0
    for role in ROLES:
        key = admin.create_key()
        r = admin.call("DELETE", f"/keys/{key['id']}")
        assert r.status_code == 200
        keys[role] = key["id"]
        allowed = max(allowed, ts(r.json()["resources"][0]["purgeAllowedFrom"]))
    return {"keys": keys, "allowed": allowed}


def run_op(op: str, user: KpRaw, admin: KpRaw, role: str, purgeable: dict) -> tuple[requests.Response, int, str | None]:
    """Prepares what `op` needs as the admin, then runs it as `user`: (response, success status, key id)."""
    if op == "list":
        return user.call("GET", "/keys"), 200, None
    if op == "create":
        return user.call("POST", "/keys", body=kp_key_body(unique_name("matrix"))), 201, None
    if op == "purge":
        kid = purgeable["keys"][role]
        sleep_until(purgeable["allowed"] + 0.2)
        return user.call("DELETE", f"/keys/{kid}/purge"), 200, kid
    kid = admin.create_key()["id"]
    if op == "get":
        return user.call("GET", f"/keys/{kid}"), 200, kid
    if op == "wrap":
        return user.action(kid, "wrap", {"plaintext": b64(b"matrix")}), 200, kid
    if op == "unwrap":
        ct = admin.wrap(kid, b"matrix")["ciphertext"]
        return user.action(kid, "unwrap", {"ciphertext": ct}), 200, kid
    if op in ("rotate", "disable"):
        return user.action(kid, op), 204, kid
    if op == "enable":
        assert admin.action(kid, "disable").status_code == 204
        return user.action(kid, "enable"), 204, kid
    if op == "delete":
        return user.call("DELETE", f"/keys/{kid}"), 200, kid
    if op == "restore":
        assert admin.call("DELETE", f"/keys/{kid}").status_code == 200
        return user.call("POST", f"/keys/{kid}/restore"), 201, kid
    if op == "set_policy":
        return user.call("PUT", f"/keys/{kid}/policies", params={"policy": "rotation"},
                         body=rotation_policy(2)), 200, kid
    raise AssertionError(op)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(role, op, role_users, admin, purgeable):
    resp, success, kid = run_op(op, role_users[role], admin, role, purgeable)
    if op in ALLOWED[role]:
        assert resp.status_code == success, f"{role} {op}: expected {success}, got {resp.status_code} {resp.text[:300]}"
        return
    assert_kp_error(resp, 401, "UNAUTHORIZED_ERR")
    # Nothing changed.
    if kid is not None and op != "purge":
        md = admin.key(kid)
        expected_state = {"enable": 2, "restore": 5}.get(op, 1)
        assert md["state"] == expected_state, f"{role} {op} changed the key: {md}"
        if op == "set_policy":
            assert "rotation" not in md, f"{role} set a policy: {md}"
        versions = admin.call("GET", f"/keys/{kid}/versions").json()["resources"]
        assert len(versions) == 1, f"{role} {op} rotated the key"
    if op == "purge":
        assert admin.key(kid)["state"] == 5
