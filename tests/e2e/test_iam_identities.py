"""IAM identities on the control plane: users, service IDs, API keys and HMAC keys — their shapes,
who may manage them, and what deleting one takes away."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import (
    APIKEY_GRANT,
    CofferServer,
    IamAdmin,
    assert_platform_error,
    fetch_token,
    jwt_parts,
    make_client,
)

APIKEY_RE = re.compile(r"^[A-Za-z0-9_-]{44}$")


def assert_recent_rfc3339(value: str) -> None:
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert t.tzinfo is not None, value
    assert abs((dt.datetime.now(dt.timezone.utc) - t).total_seconds()) < 60, value


def test_user_lifecycle(iam: IamAdmin):
    user = iam.create_user("Ada Lovelace")
    assert re.fullmatch(r"IBMid-[A-Z0-9]+", user["iam_id"]), user
    assert user["name"] == "Ada Lovelace"
    assert user["account_id"] == iam.account_id
    assert_recent_rfc3339(user["created_at"])
    users = iam.call("GET", "/v1/users", expect=200).json()["users"]
    assert [u for u in users if u["iam_id"] == user["iam_id"]] == [user]
    assert iam.server.bootstrap["admin_iam_id"] in [u["iam_id"] for u in users]
    assert iam.call("DELETE", f"/v1/users/{user['iam_id']}").status_code == 204
    users = iam.call("GET", "/v1/users", expect=200).json()["users"]
    assert user["iam_id"] not in [u["iam_id"] for u in users]
    assert_platform_error(iam.call("DELETE", f"/v1/users/{user['iam_id']}"), 404)


def test_service_id_lifecycle(iam: IamAdmin):
    r = iam.call("POST", "/v1/serviceids", json={"name": "backup-job", "description": "nightly"}, expect=201)
    sid = r.json()
    assert sid["id"].startswith("ServiceId-"), sid
    assert sid["iam_id"] == f"iam-{sid['id']}", sid
    assert (sid["name"], sid["description"], sid["account_id"]) == ("backup-job", "nightly", iam.account_id)
    assert_recent_rfc3339(sid["created_at"])
    listed = iam.call("GET", "/v1/serviceids", expect=200).json()["serviceids"]
    assert [s for s in listed if s["id"] == sid["id"]] == [sid]
    assert iam.call("DELETE", f"/v1/serviceids/{sid['id']}").status_code == 204
    listed = iam.call("GET", "/v1/serviceids", expect=200).json()["serviceids"]
    assert sid["id"] not in [s["id"] for s in listed]
    assert_platform_error(iam.call("DELETE", f"/v1/serviceids/{sid['id']}"), 404)


def test_apikey_lifecycle(server, iam: IamAdmin):
    sid = iam.create_service_id()
    r = iam.call("POST", "/v1/apikeys", json={"name": "ci", "iam_id": sid["iam_id"], "description": "for CI"},
                 expect=201)
    key = r.json()
    assert APIKEY_RE.match(key["apikey"]), key["apikey"]
    assert key["iam_id"] == sid["iam_id"] and key["disabled"] is False and key["name"] == "ci"
    assert key["description"] == "for CI"
    assert key["id"] and key["account_id"] == iam.account_id
    assert_recent_rfc3339(key["created_at"])
    token = fetch_token(server, key["apikey"])["access_token"]
    assert jwt_parts(token)[1]["iam_id"] == sid["iam_id"]

    listed = iam.call("GET", "/v1/apikeys", params={"iam_id": sid["iam_id"]}, expect=200).json()["apikeys"]
    assert [k["id"] for k in listed] == [key["id"]]
    everything = iam.call("GET", "/v1/apikeys", expect=200).json()["apikeys"]
    assert key["id"] in [k["id"] for k in everything]
    leaked = [k["id"] for k in everything if "apikey" in k]
    assert not leaked, f"listing shows the secrets of {leaked}"

    # Without iam_id: a key of the caller.
    own = iam.call("POST", "/v1/apikeys", json={"name": "mine"}, expect=201).json()
    assert own["iam_id"] == server.bootstrap["admin_iam_id"]
    for k in (key, own):
        assert iam.call("DELETE", f"/v1/apikeys/{k['id']}").status_code == 204
    assert_platform_error(iam.call("DELETE", f"/v1/apikeys/{key['id']}"), 404)


@pytest.mark.parametrize("path, body", [
    ("/v1/apikeys", {"name": "x", "iam_id": "IBMid-NOSUCHUSER0"}),
    ("/v1/apikeys", {"name": "x", "iam_id": "iam-ServiceId-00000000-0000-4000-8000-000000000000"}),
    ("/v1/hmac_keys", {"iam_id": "IBMid-NOSUCHUSER0", "instance_id": None}),
], ids=["apikey-unknown-user", "apikey-unknown-serviceid", "hmac-unknown-user"])
def test_keys_for_unknown_identity_refused(iam: IamAdmin, path, body):
    if "instance_id" in body:
        body = {**body, "instance_id": iam.cos_instance_id}
    r = iam.call("POST", path, json=body)
    assert r.status_code in (400, 404), f"{r.status_code} {r.text[:300]}"
    assert_platform_error(r, r.status_code)


@pytest.mark.parametrize("path", ["/v1/users", "/v1/serviceids", "/v1/apikeys", "/v1/hmac_keys"])
@pytest.mark.parametrize("raw", [b"{", b"[]", b"{}"], ids=["broken", "array", "empty-object"])
def test_malformed_identity_bodies_refused(iam: IamAdmin, path, raw):
    r = iam.call("POST", path, data=raw, headers={"Content-Type": "application/json"})
    assert_platform_error(r, 400)


def test_non_admin_cannot_manage_identities(server, iam: IamAdmin):
    reader = iam.identity("user")
    iam.grant(reader["iam_id"], "Manager")  # Manager of COS is still no account administrator.
    me = IamAdmin(server, reader["apikey"])
    other = iam.create_service_id()
    for method, path, body in [
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", {"name": "sneaky"}),
        ("POST", "/v1/serviceids", {"name": "sneaky"}),
        ("DELETE", f"/v1/serviceids/{other['id']}", None),
        ("POST", "/v1/apikeys", {"name": "theirs", "iam_id": other["iam_id"]}),
        ("POST", "/v1/apikeys", {"name": "admins", "iam_id": server.bootstrap["admin_iam_id"]}),
        ("POST", "/v1/hmac_keys", {"iam_id": other["iam_id"], "instance_id": iam.cos_instance_id}),
        ("DELETE", f"/v1/users/{server.bootstrap['admin_iam_id']}", None),
    ]:
        r = me.call(method, path, json=body) if body is not None else me.call(method, path)
        assert_platform_error(r, 403)
    listed = iam.call("GET", "/v1/serviceids", expect=200).json()["serviceids"]
    assert other["id"] in [s["id"] for s in listed]
    assert iam.call("GET", "/v1/apikeys", params={"iam_id": other["iam_id"]}, expect=200).json()["apikeys"] == []


@pytest.mark.parametrize("kind", ["user", "serviceid"])
def test_deleting_an_identity_revokes_everything(server, iam: IamAdmin, kind):
    ident = iam.identity(kind)
    policy = iam.grant(ident["iam_id"], "Manager")
    hmac = iam.create_hmac(ident["iam_id"])
    token = fetch_token(server, ident["apikey"])["access_token"]
    c = make_client(server.endpoint, hmac["access_key_id"], hmac["secret_access_key"])
    assert c.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Self-service: the identity's token may make itself an API key.
    own_key = {"Authorization": f"Bearer {token}"}
    r = requests.post(f"{server.control_endpoint}/v1/apikeys", json={"name": "own"}, headers=own_key, timeout=10)
    assert r.status_code == 201, r.text

    if kind == "user":
        iam.call("DELETE", f"/v1/users/{ident['iam_id']}", expect=204)
    else:
        iam.call("DELETE", f"/v1/serviceids/{ident['identity']['id']}", expect=204)

    r = requests.post(f"{server.control_endpoint}/identity/token", timeout=10,
                      data={"grant_type": APIKEY_GRANT, "apikey": ident["apikey"]})
    assert r.status_code == 400 and r.json().get("errorCode") == "BXNIM0415E", r.text
    with pytest.raises(ClientError) as e:
        c.list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert_platform_error(iam.call("GET", f"/v1/policies/{policy['id']}"), 404)
    # A token issued before the deletion opens nothing any more.
    r = requests.post(f"{server.control_endpoint}/v1/apikeys", json={"name": "own"}, headers=own_key, timeout=10)
    assert r.status_code in (401, 403), f"{r.status_code} {r.text[:300]}"
    assert_platform_error(r, r.status_code)
    listed = iam.call("GET", "/v1/hmac_keys", expect=200).json()["hmac_keys"]
    assert hmac["access_key_id"] not in [k["access_key_id"] for k in listed]


def test_account_owner_cannot_be_deleted(tmp_path_factory):
    """Deleting the account owner would leave an account nobody can administer."""
    srv = CofferServer(tmp_path_factory.mktemp("coffer-owner")).start()
    try:
        admin = IamAdmin(srv)
        owner = srv.bootstrap["admin_iam_id"]
        r = admin.call("DELETE", f"/v1/users/{owner}")
        assert 400 <= r.status_code < 500, (
            f"DELETE /v1/users/<account owner> answered {r.status_code} {r.text[:200]}; "
            "the account is left without an administrator")
        assert_platform_error(r, r.status_code)
        assert admin.call("GET", "/v1/users").status_code == 200
        assert fetch_token(srv, srv.bootstrap["admin_api_key"])["access_token"]
    finally:
        srv.stop()
