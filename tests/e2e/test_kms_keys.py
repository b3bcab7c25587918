"""The Key Protect / HPCS key-management API v2 (spec §4) through the unmodified `keyprotect`
SDK (3.0.1): create (generated, imported, securely imported, with policy overrides), list,
count, get, metadata, aliases, key rings, wrap/unwrap/rewrap with AAD, rotate and versions,
disable/enable, delete/restore/purge, key and instance policies, registrations, import tokens,
KMIP adapters, the deprecated action form, and the tolerance of spec §4.2 (no Content-Type,
`null` bodies, case-insensitive JSON keys, an empty `state=`).

Runs on the dev hs-crypto instance of a server with short timing rules (`fast_kms_server`);
the defaults are the business of test_kms_errors.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import time
import uuid

import pytest

from conftest import (
    KP_KEY,
    KP_KEY_ACTION,
    KP_POLICY,
    KpRaw,
    assert_kp_error,
    b64,
    kms_instance_ready,
    kp_envelope,
    kp_json,
    kp_key_body,
    kp_raises,
    kp_sdk,
    unique_name,
)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def srv(fast_kms_server):
    return fast_kms_server


@pytest.fixture(scope="module")
def inst(srv) -> str:
    return srv.bootstrap["kms_instance_id"]


@pytest.fixture(scope="module")
def kp(srv):
    return kp_sdk(srv)


@pytest.fixture(scope="module")
def raw(srv, inst) -> KpRaw:
    return KpRaw(srv, inst)


def content_type(resp) -> str:
    headers = resp.get_headers() if hasattr(resp, "get_headers") else resp.headers
    return headers.get("Content-Type", "").split(";")[0].strip()


def rfc3339(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert t.tzinfo is not None, s
    return t


def assert_recent(s: str, slack: float = 120) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - rfc3339(s)).total_seconds()) < slack, s


def create(kp, inst, name=None, *, root=True, prefer=None, ring=None, **fields) -> dict:
    resp = kp.create_key(bluemix_instance=inst, key_create_body=kp_key_body(name or unique_name("k"),
                         root=root, **fields), prefer=prefer, x_kms_key_ring=ring)
    assert resp.get_status_code() == 201
    body = kp_json(resp)
    assert body["metadata"] == {"collectionType": KP_KEY, "collectionTotal": 1}, body["metadata"]
    return body["resources"][0]


def get_key(kp, inst, key_id) -> dict:
    resp = kp.get_key(id=key_id, bluemix_instance=inst)
    assert resp.get_status_code() == 200
    body = kp_json(resp)
    assert body["metadata"]["collectionType"] == KP_KEY
    assert body["metadata"]["collectionTotal"] == 1
    return body["resources"][0]


def metadata(kp, inst, key_id) -> dict:
    resp = kp.get_key_metadata(id=key_id, bluemix_instance=inst)
    assert resp.get_status_code() == 200
    return kp_json(resp)["resources"][0]


def wrap(kp, inst, key_id, plaintext: bytes | None = None, aad=None) -> dict:
    body = {}
    if plaintext is not None:
        body["plaintext"] = b64(plaintext)
    if aad is not None:
        body["aad"] = aad
    resp = kp.wrap_key(id=key_id, bluemix_instance=inst, key_action_wrap_body=json.dumps(body))
    assert resp.get_status_code() == 200
    assert content_type(resp) == KP_KEY_ACTION, resp.get_headers()
    return kp_json(resp)


def unwrap(kp, inst, key_id, ciphertext: str, aad=None) -> dict:
    body = {"ciphertext": ciphertext}
    if aad is not None:
        body["aad"] = aad
    resp = kp.unwrap_key(id=key_id, bluemix_instance=inst, key_action_unwrap_body=json.dumps(body))
    assert resp.get_status_code() == 200
    assert content_type(resp) == KP_KEY_ACTION, resp.get_headers()
    return kp_json(resp)


def list_keys(kp, inst, **kw) -> dict:
    resp = kp.get_keys(bluemix_instance=inst, **kw)
    assert resp.get_status_code() == 200
    assert content_type(resp) == "application/json"
    body = kp_json(resp)
    assert body["metadata"]["collectionType"] == KP_KEY
    assert body["metadata"]["collectionTotal"] == len(body["resources"])
    return body


def key_total(kp, inst, **kw) -> int:
    resp = kp.get_key_collection_metadata(bluemix_instance=inst, **kw)
    assert resp.get_status_code() == 200
    return int(resp.get_headers()["Key-Total"])


# -- create ------------------------------------------------------------------------------------


def test_create_generated_root_key(srv, kp, inst):
    b = srv.bootstrap
    name = unique_name("root")
    resp = kp.create_key(bluemix_instance=inst, prefer="return=representation", key_create_body=kp_key_body(
        name, description="an e2e root key", tags=["e2e", "root"], aliases=[unique_name("al")]))
    assert resp.get_status_code() == 201
    assert content_type(resp) == KP_KEY, resp.get_headers()
    body = kp_json(resp)
    assert body["metadata"] == {"collectionType": KP_KEY, "collectionTotal": 1}
    key = body["resources"][0]
    assert key["type"] == KP_KEY
    assert UUID_RE.match(key["id"]), key["id"]
    assert key["name"] == name
    assert key["description"] == "an e2e root key"
    assert key["tags"] == ["e2e", "root"]
    assert len(key["aliases"]) == 1
    assert key["extractable"] is False
    assert key["imported"] is False
    assert key["state"] == 1
    assert key["deleted"] is False
    assert key["keyRingID"] == "default"
    assert key["createdBy"] == b["admin_iam_id"]
    assert key["crn"] == b["kms_instance_crn"][: -len("::")] + f":key:{key['id']}"
    assert key["crn"].startswith("crn:v1:bluemix:public:hs-crypto:")
    assert_recent(key["creationDate"])
    assert_recent(key["lastUpdateDate"])
    assert "lastRotateDate" not in key
    assert UUID_RE.match(key["keyVersion"]["id"]), key["keyVersion"]
    assert_recent(key["keyVersion"]["creationDate"])
    assert key["algorithmType"] == "AES"
    assert key["dualAuthDelete"]["enabled"] is False
    assert "payload" not in key


def test_create_without_prefer_still_returns_the_key(kp, inst):
    key = create(kp, inst)
    assert UUID_RE.match(key["id"]) and key["state"] == 1


def test_create_with_prefer_minimal(kp, inst):
    key = create(kp, inst, prefer="return=minimal")
    assert UUID_RE.match(key["id"]), key
    assert "payload" not in key
    assert metadata(kp, inst, key["id"])["id"] == key["id"]


def test_standard_key_payload_only_on_get(kp, inst):
    key = create(kp, inst, root=False)
    assert key["extractable"] is True and key["imported"] is False
    assert "payload" not in key
    got = get_key(kp, inst, key["id"])
    payload = base64.b64decode(got["payload"])
    assert len(payload) == 32
    assert got["extractable"] is True
    assert "payload" not in metadata(kp, inst, key["id"])
    listed = list_keys(kp, inst, limit=5000)["resources"]
    mine = [k for k in listed if k["id"] == key["id"]]
    assert len(mine) == 1 and "payload" not in mine[0]
    # Stable: the same material every time.
    assert base64.b64decode(get_key(kp, inst, key["id"])["payload"]) == payload


def test_root_key_payload_never_returned(kp, inst):
    key = create(kp, inst, root=True)
    got = get_key(kp, inst, key["id"])
    assert "payload" not in got
    assert got["extractable"] is False


def test_imported_keys(kp, inst):
    material = os.urandom(32)
    root = create(kp, inst, root=True, payload=b64(material))
    assert root["imported"] is True and root["extractable"] is False
    assert "payload" not in get_key(kp, inst, root["id"])
    # An imported root key wraps and unwraps like any other.
    w = wrap(kp, inst, root["id"], b"dek-of-an-imported-root-key")
    assert base64.b64decode(unwrap(kp, inst, root["id"], w["ciphertext"])["plaintext"]) == b"dek-of-an-imported-root-key"
    # 16 and 24 bytes are valid AES root keys too.
    for n in (16, 24):
        assert create(kp, inst, root=True, payload=b64(os.urandom(n)))["imported"] is True
    secret = b"an imported standard key: any bytes \x00\x01\x02"
    std = create(kp, inst, root=False, payload=b64(secret))
    assert std["imported"] is True and std["extractable"] is True
    assert base64.b64decode(get_key(kp, inst, std["id"])["payload"]) == secret


def test_create_with_policy_overrides(kp, inst):
    body = kp_envelope([{
        "type": KP_KEY, "name": unique_name("pol"), "extractable": False,
        "rotation": {"enabled": True, "interval_month": 3}, "dualAuthDelete": {"enabled": True},
    }])
    resp = kp.create_key_with_policies_overrides(bluemix_instance=inst, key_with_policy_overrides_create_body=body,
                                                 prefer="return=representation")
    assert resp.get_status_code() == 201
    assert content_type(resp) == KP_KEY
    key = kp_json(resp)["resources"][0]
    assert key["rotation"] == {"enabled": True, "interval_month": 3}
    assert key["dualAuthDelete"]["enabled"] is True
    policies = kp_json(kp.get_policy(id=key["id"], bluemix_instance=inst))
    assert policies["metadata"]["collectionType"] == KP_POLICY
    kinds = {("rotation" if "rotation" in p else "dualAuthDelete") for p in policies["resources"]}
    assert kinds == {"rotation", "dualAuthDelete"}
    for p in policies["resources"]:
        assert p["type"] == KP_POLICY
        assert p["crn"] == key["crn"]
        assert UUID_RE.match(p["id"]), p
    rot = next(p for p in policies["resources"] if "rotation" in p)
    assert rot["rotation"] == {"enabled": True, "interval_month": 3}
    # The same body without overrides makes a key without policies.
    plain = kp.create_key_with_policies_overrides(
        bluemix_instance=inst, key_with_policy_overrides_create_body=kp_key_body(unique_name("nopol")))
    plain_key = kp_json(plain)["resources"][0]
    assert plain_key["dualAuthDelete"]["enabled"] is False
    assert "rotation" not in plain_key


# -- list and count ----------------------------------------------------------------------------


def test_list_paging_filters_and_totals(kp, inst):
    tag = uuid.uuid4().hex[:10]
    roots = [create(kp, inst, f"list-{tag}-r{i}") for i in range(3)]
    stds = [create(kp, inst, f"list-{tag}-s{i}", root=False) for i in range(2)]
    mine = [k["id"] for k in roots + stds]

    everything = list_keys(kp, inst, search=tag)
    assert sorted(k["id"] for k in everything["resources"]) == sorted(mine)
    assert all("payload" not in k for k in everything["resources"])

    pages = []
    for offset in (0, 2, 4):
        page = list_keys(kp, inst, search=tag, limit=2, offset=offset)
        pages.append([k["id"] for k in page["resources"]])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == [k["id"] for k in everything["resources"]], "pages are disjoint and in order"

    roots_only = list_keys(kp, inst, search=tag, extractable=False)["resources"]
    assert sorted(k["id"] for k in roots_only) == sorted(k["id"] for k in roots)
    stds_only = list_keys(kp, inst, search=tag, extractable=True)["resources"]
    assert sorted(k["id"] for k in stds_only) == sorted(k["id"] for k in stds)

    # States: suspend one, delete one.
    assert kp.disable_key(id=roots[0]["id"], bluemix_instance=inst).get_status_code() == 204
    assert kp.delete_key(id=roots[1]["id"], bluemix_instance=inst).get_status_code() == 200
    default = [k["id"] for k in list_keys(kp, inst, search=tag)["resources"]]
    assert roots[1]["id"] not in default, "destroyed keys are not listed by default"
    assert sorted(default) == sorted(set(mine) - {roots[1]["id"]})
    suspended = list_keys(kp, inst, search=tag, state=[2])["resources"]
    assert [(k["id"], k["state"]) for k in suspended] == [(roots[0]["id"], 2)]
    destroyed = list_keys(kp, inst, search=tag, state=[5])["resources"]
    assert [(k["id"], k["state"], k["deleted"]) for k in destroyed] == [(roots[1]["id"], 5, True)]
    active = list_keys(kp, inst, search=tag, state=[1])["resources"]
    assert sorted(k["id"] for k in active) == sorted([roots[2]["id"]] + [k["id"] for k in stds])
    both = list_keys(kp, inst, search=tag, state=[1, 2, 5])["resources"]
    assert sorted(k["id"] for k in both) == sorted(mine)


def test_list_total_count_and_head_key_total(kp, raw, inst):
    create(kp, inst)
    r = raw.call("GET", "/keys", params={"totalCount": "true", "limit": "1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["collectionTotal"] == 1 == len(body["resources"])
    total = body["metadata"]["totalCount"]
    assert total >= 1
    without = raw.call("GET", "/keys", params={"limit": "1"}).json()
    assert "totalCount" not in without["metadata"]
    assert key_total(kp, inst) == total

    resp = kp.get_key_collection_metadata(bluemix_instance=inst)
    assert resp.get_status_code() == 200
    assert resp.get_result() is None or not resp.get_result().content, "HEAD has no body"
    # Filters apply to the count too.
    for kw, params in ((dict(extractable=False), {"extractable": "false"}),
                       (dict(extractable=True), {"extractable": "true"}),
                       (dict(state=[5]), {"state": "5"}),
                       (dict(state=[1, 2]), {"state": "1,2"})):
        expected = raw.call("GET", "/keys", params={**params, "totalCount": "true"}).json()["metadata"]["totalCount"]
        assert key_total(kp, inst, **kw) == expected, kw


def test_empty_state_query_means_no_filter(raw):
    plain = raw.call("GET", "/keys", params={"totalCount": "true"})
    empty = raw.call("GET", "/keys?state=", params={"totalCount": "true"})
    assert plain.status_code == empty.status_code == 200, empty.text
    assert empty.json()["metadata"]["totalCount"] == plain.json()["metadata"]["totalCount"]
    head = raw.call("HEAD", "/keys?state=")
    assert head.status_code == 200
    assert int(head.headers["Key-Total"]) == plain.json()["metadata"]["totalCount"]


def test_search_finds_aliases(kp, inst):
    alias = unique_name("findme")
    key = create(kp, inst, aliases=[alias])
    found = list_keys(kp, inst, search=alias)["resources"]
    assert [k["id"] for k in found] == [key["id"]]


# -- get, metadata, aliases --------------------------------------------------------------------


def test_metadata(kp, inst):
    key = create(kp, inst, root=False, description="md")
    md = metadata(kp, inst, key["id"])
    assert md["id"] == key["id"] and md["description"] == "md"
    assert "payload" not in md
    resp = kp.get_key_metadata(id=key["id"], bluemix_instance=inst)
    assert content_type(resp) == "application/json"


def test_aliases(kp, inst):
    first = unique_name("alias")
    key = create(kp, inst, aliases=[first])
    second = unique_name("alias")
    resp = kp.create_key_alias(id=key["id"], alias=second, bluemix_instance=inst)
    assert resp.get_status_code() == 201
    body = kp_json(resp)
    assert body["metadata"] == {"collectionType": "application/vnd.ibm.kms.alias+json", "collectionTotal": 1}
    item = body["resources"][0]
    assert item["keyId"] == key["id"] and item["alias"] == second
    assert item["createdBy"]
    assert_recent(item["creationDate"])

    for alias in (first, second):
        assert get_key(kp, inst, alias)["id"] == key["id"]
        assert metadata(kp, inst, alias)["id"] == key["id"]
    assert sorted(metadata(kp, inst, key["id"])["aliases"]) == sorted([first, second])
    # Actions accept the alias too.
    w = wrap(kp, inst, second, b"through an alias")
    assert base64.b64decode(unwrap(kp, inst, first, w["ciphertext"])["plaintext"]) == b"through an alias"

    assert kp.delete_key_alias(id=key["id"], alias=second, bluemix_instance=inst).get_status_code() == 204
    assert_kp_error(kp_raises(kp.get_key, id=second, bluemix_instance=inst), 404, "KEY_NOT_FOUND_ERR")
    assert metadata(kp, inst, key["id"])["aliases"] == [first]


# -- key rings and patch -----------------------------------------------------------------------


def test_key_rings_and_patch(kp, raw, inst):
    ring = unique_name("ring")
    resp = kp.create_key_ring(key_ring_id=ring, bluemix_instance=inst)
    assert resp.get_status_code() == 201
    rings = kp_json(kp.list_key_rings(bluemix_instance=inst, total_count=True))
    assert rings["metadata"]["collectionType"] == "application/vnd.ibm.kms.key_ring+json"
    ids = [r["id"] for r in rings["resources"]]
    assert "default" in ids and ring in ids
    assert rings["metadata"]["totalCount"] == len(ids)
    mine = next(r for r in rings["resources"] if r["id"] == ring)
    assert_recent(mine["creationDate"])

    in_ring = create(kp, inst, ring=ring)
    assert in_ring["keyRingID"] == ring
    resp = kp.get_key(id=in_ring["id"], bluemix_instance=inst, x_kms_key_ring=ring)
    assert resp.get_status_code() == 200 and kp_json(resp)["resources"][0]["id"] == in_ring["id"]
    moved = create(kp, inst)
    assert moved["keyRingID"] == "default"
    resp = kp.patch_key(id=moved["id"], bluemix_instance=inst, key_patch_body=json.dumps({"keyRingID": ring}))
    assert resp.get_status_code() == 200
    assert kp_json(resp)["resources"][0]["keyRingID"] == ring
    assert metadata(kp, inst, moved["id"])["keyRingID"] == ring

    scoped = list_keys(kp, inst, x_kms_key_ring=ring)["resources"]
    assert sorted(k["id"] for k in scoped) == sorted([in_ring["id"], moved["id"]])

    # kp-go sends `KeyRingID` and no Content-Type.
    r = raw.call("PATCH", f"/keys/{moved['id']}", body=json.dumps({"KeyRingID": "default"}))
    assert r.status_code == 200, r.text
    assert r.json()["resources"][0]["keyRingID"] == "default"
    kp.patch_key(id=in_ring["id"], bluemix_instance=inst, key_patch_body=json.dumps({"keyRingID": "default"}))
    assert list_keys(kp, inst, x_kms_key_ring=ring)["resources"] == []

    assert kp.delete_key_ring(key_ring_id=ring, bluemix_instance=inst).get_status_code() == 204
    ids = [r["id"] for r in kp_json(kp.list_key_rings(bluemix_instance=inst))["resources"]]
    assert ring not in ids


# -- wrap, unwrap, rewrap, rotate, versions ----------------------------------------------------


def test_wrap_unwrap_with_aad(kp, inst):
    key = create(kp, inst)
    dek = os.urandom(32)
    aad = ["bucket:photos", "tenant:42"]
    w = wrap(kp, inst, key["id"], dek, aad)
    assert set(w) == {"ciphertext", "keyVersion"}, w
    assert w["keyVersion"]["id"] == key["keyVersion"]["id"]
    base64.b64decode(w["ciphertext"], validate=True)
    u = unwrap(kp, inst, key["id"], w["ciphertext"], aad)
    assert base64.b64decode(u["plaintext"]) == dek
    assert u["keyVersion"]["id"] == key["keyVersion"]["id"]
    assert "ciphertext" not in u and "rewrappedKeyVersion" not in u, "current version: nothing rewrapped"
    # Each wrap is fresh.
    assert wrap(kp, inst, key["id"], dek, aad)["ciphertext"] != w["ciphertext"]


def test_wrap_generates_a_dek(kp, inst):
    key = create(kp, inst)
    resp = kp.wrap_key(id=key["id"], bluemix_instance=inst)  # no body at all
    assert resp.get_status_code() == 200
    w = kp_json(resp)
    dek = base64.b64decode(w["plaintext"])
    assert len(dek) == 32
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"])["plaintext"]) == dek
    w2 = wrap(kp, inst, key["id"])  # `{}`
    assert len(base64.b64decode(w2["plaintext"])) == 32 and w2["plaintext"] != w["plaintext"]


def test_rewrap(kp, inst):
    key = create(kp, inst)
    w = wrap(kp, inst, key["id"], b"rewrap me", ["ctx"])
    resp = kp.rewrap_key(id=key["id"], bluemix_instance=inst,
                         key_action_rewrap_body=json.dumps({"ciphertext": w["ciphertext"], "aad": ["ctx"]}))
    assert resp.get_status_code() == 200
    rw = kp_json(resp)
    assert rw["keyVersion"]["id"] == key["keyVersion"]["id"]
    assert rw["rewrappedKeyVersion"]["id"] == key["keyVersion"]["id"]
    assert "plaintext" not in rw
    assert base64.b64decode(unwrap(kp, inst, key["id"], rw["ciphertext"], ["ctx"])["plaintext"]) == b"rewrap me"


def test_rotate_versions_and_old_ciphertexts(kp, inst):
    key = create(kp, inst)
    v1 = key["keyVersion"]["id"]
    dek = os.urandom(32)
    old = wrap(kp, inst, key["id"], dek, ["aad-1"])
    assert old["keyVersion"]["id"] == v1

    resp = kp.rotate_key(id=key["id"], bluemix_instance=inst, key_action_rotate_body=json.dumps({}),
                         prefer="return=representation")
    assert resp.get_status_code() == 204
    rotated = metadata(kp, inst, key["id"])
    v2 = rotated["keyVersion"]["id"]
    assert v2 != v1 and UUID_RE.match(v2)
    assert_recent(rotated["lastRotateDate"])

    resp = kp.get_key_versions(id=key["id"], bluemix_instance=inst, total_count=True)
    assert resp.get_status_code() == 200
    versions = kp_json(resp)
    assert versions["metadata"]["collectionTotal"] == 2
    assert versions["metadata"]["totalCount"] == 2
    assert {v["id"] for v in versions["resources"]} == {v1, v2}
    for v in versions["resources"]:
        assert_recent(v["creationDate"])
    paged = kp_json(kp.get_key_versions(id=key["id"], bluemix_instance=inst, limit=1, offset=1))
    assert len(paged["resources"]) == 1

    # The old WDEK still unwraps, and comes back rewrapped under the newest version.
    u = unwrap(kp, inst, key["id"], old["ciphertext"], ["aad-1"])
    assert base64.b64decode(u["plaintext"]) == dek
    assert u["keyVersion"]["id"] == v1
    assert u["rewrappedKeyVersion"]["id"] == v2
    assert u["ciphertext"] and u["ciphertext"] != old["ciphertext"]
    fresh = unwrap(kp, inst, key["id"], u["ciphertext"], ["aad-1"])
    assert base64.b64decode(fresh["plaintext"]) == dek
    assert fresh["keyVersion"]["id"] == v2
    assert "rewrappedKeyVersion" not in fresh

    # New wraps use the newest version.
    assert wrap(kp, inst, key["id"], b"x")["keyVersion"]["id"] == v2


def test_rewrap_of_an_old_version(kp, inst):
    """RewrapKeyResponseBody (SDK model): `keyVersion` is the version that wrapped the DEK in the
    request; `rewrappedKeyVersion` the latest one, which wrapped the returned ciphertext."""
    key = create(kp, inst)
    v1 = key["keyVersion"]["id"]
    old = wrap(kp, inst, key["id"], b"old dek")
    assert kp.rotate_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    v2 = metadata(kp, inst, key["id"])["keyVersion"]["id"]
    resp = kp.rewrap_key(id=key["id"], bluemix_instance=inst,
                         key_action_rewrap_body=json.dumps({"ciphertext": old["ciphertext"]}))
    rw = kp_json(resp)
    assert rw["rewrappedKeyVersion"]["id"] == v2
    assert base64.b64decode(unwrap(kp, inst, key["id"], rw["ciphertext"])["plaintext"]) == b"old dek"
    assert rw["keyVersion"]["id"] == v1, f"keyVersion must name the version of the input ciphertext: {rw}"


def test_rotate_imported_key_with_a_new_payload(kp, inst):
    key = create(kp, inst, payload=b64(os.urandom(32)))
    w = wrap(kp, inst, key["id"], b"before")
    assert_kp_error(kp_raises(kp.rotate_key, id=key["id"], bluemix_instance=inst), 400, "KEY_PAYLOAD_REQ_ERR")
    resp = kp.rotate_key(id=key["id"], bluemix_instance=inst,
                         key_action_rotate_body=json.dumps({"payload": b64(os.urandom(32))}))
    assert resp.get_status_code() == 204
    assert len(kp_json(kp.get_key_versions(id=key["id"], bluemix_instance=inst))["resources"]) == 2
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"])["plaintext"]) == b"before"


# -- lifecycle ---------------------------------------------------------------------------------


def test_disable_enable(kp, inst):
    key = create(kp, inst)
    w = wrap(kp, inst, key["id"], b"d")
    assert kp.disable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    md = metadata(kp, inst, key["id"])
    assert md["state"] == 2
    assert "nonactiveStateReason" in md
    assert kp.enable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    assert metadata(kp, inst, key["id"])["state"] == 1
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"])["plaintext"]) == b"d"


def test_delete_restore_purge(kp, inst, srv):
    b = srv.bootstrap
    key = create(kp, inst)
    w = wrap(kp, inst, key["id"], b"survives a restore")
    resp = kp.delete_key(id=key["id"], bluemix_instance=inst, prefer="return=representation")
    assert resp.get_status_code() == 200
    gone = kp_json(resp)["resources"][0]
    assert gone["id"] == key["id"]
    assert gone["state"] == 5 and gone["deleted"] is True
    assert gone["deletedBy"] == b["admin_iam_id"]
    assert_recent(gone["deletionDate"])
    assert rfc3339(gone["restoreExpirationDate"]) > rfc3339(gone["deletionDate"])
    assert rfc3339(gone["purgeAllowedFrom"]) >= rfc3339(gone["deletionDate"])
    md = metadata(kp, inst, key["id"])
    assert md["state"] == 5 and md["deleted"] is True, "metadata stays readable until purge"

    resp = kp.restore_key(id=key["id"], bluemix_instance=inst)
    assert resp.get_status_code() == 201
    assert content_type(resp) == KP_KEY
    back = kp_json(resp)["resources"][0]
    assert back["id"] == key["id"] and back["state"] == 1 and back["deleted"] is False
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"])["plaintext"]) == b"survives a restore"

    resp = kp.delete_key(id=key["id"], bluemix_instance=inst, prefer="return=minimal")
    assert resp.get_status_code() == 204
    allowed = rfc3339(metadata(kp, inst, key["id"])["purgeAllowedFrom"]).timestamp()
    time.sleep(max(0.0, allowed - time.time()) + 0.2)
    resp = kp.purge_key(id=key["id"], bluemix_instance=inst, prefer="return=representation")
    assert resp.get_status_code() == 200
    purged = kp_json(resp)["resources"][0]
    assert purged["id"] == key["id"]
    assert_kp_error(kp_raises(kp.get_key_metadata, id=key["id"], bluemix_instance=inst), 404, "KEY_NOT_FOUND_ERR")


def test_dual_auth_set_and_unset_for_deletion(kp, inst):
    body = kp_envelope([{"type": KP_KEY, "name": unique_name("dual"), "extractable": False,
                         "dualAuthDelete": {"enabled": True}}])
    key = kp_json(kp.create_key_with_policies_overrides(
        bluemix_instance=inst, key_with_policy_overrides_create_body=body))["resources"][0]
    assert key["dualAuthDelete"] == {"enabled": True, "keySetForDeletion": False}
    assert kp.set_key_for_deletion(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    md = metadata(kp, inst, key["id"])
    assert md["dualAuthDelete"]["keySetForDeletion"] is True
    assert rfc3339(md["dualAuthDelete"]["authExpiration"]) > dt.datetime.now(dt.timezone.utc)
    assert kp.unset_key_for_deletion(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    md = metadata(kp, inst, key["id"])
    assert md["dualAuthDelete"]["keySetForDeletion"] is False
    assert "authExpiration" not in md["dualAuthDelete"]


def test_sync(kp, inst):
    key = create(kp, inst)
    assert kp.sync_associated_resources(id=key["id"], bluemix_instance=inst).get_status_code() == 204


# -- policies ----------------------------------------------------------------------------------


def test_key_policies(srv, kp, inst):
    key = create(kp, inst)
    assert kp_json(kp.get_policy(id=key["id"], bluemix_instance=inst))["resources"] == []
    body = {"metadata": {"collectionType": KP_POLICY, "collectionTotal": 1},
            "resources": [{"type": KP_POLICY, "rotation": {"enabled": True, "interval_month": 2}}]}
    resp = kp.put_policy(id=key["id"], bluemix_instance=inst, key_policy_put_body=body, policy="rotation")
    assert resp.get_status_code() == 200
    out = kp_json(resp)
    assert out["metadata"] == {"collectionType": KP_POLICY, "collectionTotal": 1}
    pol = out["resources"][0]
    assert pol["type"] == KP_POLICY
    assert pol["rotation"] == {"enabled": True, "interval_month": 2}
    assert pol["crn"] == key["crn"]
    assert UUID_RE.match(pol["id"])
    assert pol["createdBy"] and pol["updatedBy"] == srv.bootstrap["admin_iam_id"]
    assert_recent(pol["creationDate"])
    assert_recent(pol["lastUpdateDate"])
    assert metadata(kp, inst, key["id"])["rotation"] == {"enabled": True, "interval_month": 2}

    body = {"metadata": {"collectionType": KP_POLICY, "collectionTotal": 1},
            "resources": [{"type": KP_POLICY, "dualAuthDelete": {"enabled": True}}]}
    resp = kp.put_policy(id=key["id"], bluemix_instance=inst, key_policy_put_body=body, policy="dualAuthDelete")
    assert resp.get_status_code() == 200
    assert kp_json(resp)["resources"][0]["dualAuthDelete"] == {"enabled": True}

    both = kp_json(kp.get_policy(id=key["id"], bluemix_instance=inst))["resources"]
    assert len(both) == 2
    only = kp_json(kp.get_policy(id=key["id"], bluemix_instance=inst, policy="dualAuthDelete"))["resources"]
    assert [p["dualAuthDelete"] for p in only] == [{"enabled": True}]
    only = kp_json(kp.get_policy(id=key["id"], bluemix_instance=inst, policy="rotation"))["resources"]
    assert [p["rotation"] for p in only] == [{"enabled": True, "interval_month": 2}]
    assert metadata(kp, inst, key["id"])["dualAuthDelete"]["enabled"] is True

    # Updating keeps the policy's id.
    body = {"metadata": {"collectionType": KP_POLICY, "collectionTotal": 1},
            "resources": [{"type": KP_POLICY, "rotation": {"enabled": False, "interval_month": 2}}]}
    again = kp_json(kp.put_policy(id=key["id"], bluemix_instance=inst, key_policy_put_body=body,
                                  policy="rotation"))["resources"][0]
    assert again["id"] == pol["id"] and again["rotation"]["enabled"] is False


@pytest.fixture(scope="module")
def policy_instance(srv, tmp_path_factory) -> str:
    """An instance of its own: instance policies change what every new key gets."""
    return kms_instance_ready(srv, tmp_path_factory.mktemp("policy-instance-parts"))["id"]


def instance_policy_body(policy_type: str, enabled: bool, attributes: dict | None = None) -> dict:
    data = {"enabled": enabled}
    if attributes is not None:
        data["attributes"] = attributes
    return {"metadata": {"collectionType": KP_POLICY, "collectionTotal": 1},
            "resources": [{"policy_type": policy_type, "policy_data": data}]}


def test_instance_policies(srv, kp, policy_instance):
    inst = policy_instance
    assert kp_json(kp.get_instance_policy(bluemix_instance=inst))["resources"] == []
    resp = kp.put_instance_policy(bluemix_instance=inst, policy="dualAuthDelete",
                                  instance_policy_put_body=instance_policy_body("dualAuthDelete", True))
    assert resp.get_status_code() == 204
    assert not resp.get_result() or not resp.get_result().content
    resp = kp.put_instance_policy(bluemix_instance=inst, policy="rotation",
                                  instance_policy_put_body=instance_policy_body("rotation", True,
                                                                                {"interval_month": 4}))
    assert resp.get_status_code() == 204
    resp = kp.put_instance_policy(bluemix_instance=inst, policy="allowedNetwork",
                                  instance_policy_put_body=instance_policy_body(
                                      "allowedNetwork", True, {"allowed_network": "public-and-private"}))
    assert resp.get_status_code() == 204

    resp = kp.get_instance_policy(bluemix_instance=inst, policy="dualAuthDelete")
    assert resp.get_status_code() == 200
    body = kp_json(resp)
    assert body["metadata"]["collectionType"] == KP_POLICY
    [dual] = body["resources"]
    assert dual["policy_type"] == "dualAuthDelete"
    assert dual["policy_data"]["enabled"] is True
    assert dual["createdBy"] == dual["updatedBy"] == srv.bootstrap["admin_iam_id"]
    assert_recent(dual["creationDate"])
    assert_recent(dual["lastUpdated"])
    every = kp_json(kp.get_instance_policy(bluemix_instance=inst))["resources"]
    assert {p["policy_type"] for p in every} == {"dualAuthDelete", "rotation", "allowedNetwork"}
    rot = next(p for p in every if p["policy_type"] == "rotation")
    assert rot["policy_data"]["attributes"]["interval_month"] == 4

    # New keys get the instance's policies.
    key = create(kp, inst)
    assert key["dualAuthDelete"]["enabled"] is True
    assert key["rotation"] == {"enabled": True, "interval_month": 4}

    # keyCreateImportAccess: no generated root keys any more, but imports still work.
    resp = kp.put_instance_policy(bluemix_instance=inst, policy="keyCreateImportAccess",
                                  instance_policy_put_body=instance_policy_body(
                                      "keyCreateImportAccess", True,
                                      {"create_root_key": False, "create_standard_key": True,
                                       "import_root_key": True, "import_standard_key": True}))
    assert resp.get_status_code() == 204
    err = kp_raises(kp.create_key, bluemix_instance=inst, key_create_body=kp_key_body(unique_name("no")))
    assert_kp_error(err, 409, "KEY_CREATE_IMPORT_ACCESS_ERR")
    assert create(kp, inst, payload=b64(os.urandom(32)))["imported"] is True
    resp = kp.put_instance_policy(bluemix_instance=inst, policy="keyCreateImportAccess",
                                  instance_policy_put_body=instance_policy_body("keyCreateImportAccess", False))
    assert resp.get_status_code() == 204
    assert create(kp, inst)["imported"] is False


def test_allowed_ip_port(kp, inst):
    resp = kp.get_allowed_ip_port(bluemix_instance=inst)
    assert resp.get_status_code() == 200
    assert kp_json(resp)["metadata"]["collectionType"] == "application/vnd.ibm.kms.allowed_ip_metadata+json"


# -- secure import -----------------------------------------------------------------------------


def secure_payload(token: dict, material: bytes, *, nonce: bytes | None = None) -> dict:
    """The create/rotate fields of a secure import: the material RSA-OAEP-SHA256-encrypted to the
    token's public key, and the token's nonce AES-256-GCM-encrypted under the material."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    public = serialization.load_pem_public_key(base64.b64decode(token["payload"]))
    encrypted = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                      algorithm=hashes.SHA256(), label=None))
    iv = os.urandom(12)
    sealed_nonce = AESGCM(material).encrypt(iv, nonce if nonce is not None else base64.b64decode(token["nonce"]), b"")
    return {"payload": b64(encrypted), "encryptedNonce": b64(sealed_nonce), "iv": b64(iv),
            "encryptionAlgorithm": "RSAES_OAEP_SHA_256"}


def test_secure_import_with_an_import_token(kp, inst):
    resp = kp.post_import_token(bluemix_instance=inst, expiration=600, max_allowed_retrievals=4)
    assert resp.get_status_code() == 200
    created = kp_json(resp)
    assert created["expiration"] == 600
    assert created["maxAllowedRetrievals"] == 4
    assert created["remainingRetrievals"] == 4
    assert_recent(created["creationDate"])
    assert (rfc3339(created["expirationDate"]) - rfc3339(created["creationDate"])).total_seconds() == 600
    assert "payload" not in created, "the public key comes with GET"

    resp = kp.get_import_token(bluemix_instance=inst)
    assert resp.get_status_code() == 200
    token = kp_json(resp)
    assert token["remainingRetrievals"] == 3
    pem = base64.b64decode(token["payload"])
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----"), pem[:40]
    assert base64.b64decode(token["nonce"])

    material = os.urandom(32)
    key = create(kp, inst, unique_name("secure"), **secure_payload(token, material))
    assert key["imported"] is True and key["extractable"] is False
    w = wrap(kp, inst, key["id"], b"securely imported", ["s"])
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"], ["s"])["plaintext"]) == b"securely imported"
    assert kp_json(kp.get_import_token(bluemix_instance=inst))["remainingRetrievals"] == 2

    # Rotation of a securely imported key takes a new secure payload.
    token = kp_json(kp.get_import_token(bluemix_instance=inst))
    resp = kp.rotate_key(id=key["id"], bluemix_instance=inst,
                         key_action_rotate_body=json.dumps(secure_payload(token, os.urandom(32))))
    assert resp.get_status_code() == 204
    assert len(kp_json(kp.get_key_versions(id=key["id"], bluemix_instance=inst))["resources"]) == 2
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"], ["s"])["plaintext"]) == b"securely imported"


def test_secure_import_restore_needs_the_same_material(kp, raw, inst):
    assert kp.post_import_token(bluemix_instance=inst, max_allowed_retrievals=5).get_status_code() == 200
    token = kp_json(kp.get_import_token(bluemix_instance=inst))
    material = os.urandom(32)
    key = create(kp, inst, unique_name("restorable"), **secure_payload(token, material))
    w = wrap(kp, inst, key["id"], b"restorable dek")
    assert kp.delete_key(id=key["id"], bluemix_instance=inst).get_status_code() == 200
    # Other material is refused; the original, in the clear, restores the key.
    r = raw.call("POST", f"/keys/{key['id']}/restore",
                 body=kp_key_body(key["name"], payload=b64(os.urandom(32))))
    assert_kp_error(r, 400, "INVALID_FIELD_ERR")
    r = raw.call("POST", f"/keys/{key['id']}/restore", body=kp_key_body(key["name"], payload=b64(material)))
    assert r.status_code == 201, r.text
    assert base64.b64decode(unwrap(kp, inst, key["id"], w["ciphertext"])["plaintext"]) == b"restorable dek"


def test_secure_import_wrong_nonce(kp, inst):
    assert kp.post_import_token(bluemix_instance=inst, max_allowed_retrievals=2).get_status_code() == 200
    token = kp_json(kp.get_import_token(bluemix_instance=inst))
    fields = secure_payload(token, os.urandom(32), nonce=os.urandom(8))
    err = kp_raises(kp.create_key, bluemix_instance=inst, key_create_body=kp_key_body(unique_name("bad"), **fields))
    assert_kp_error(err, 400, "INCORRECT_NONCE_ERR")
    # The right nonce still works with the same token.
    assert create(kp, inst, **secure_payload(token, os.urandom(32)))["imported"] is True


# -- registrations, KMIP -----------------------------------------------------------------------


def test_registrations_lists(srv, kp, inst):
    key = create(kp, inst)
    resp = kp.get_registrations(id=key["id"], bluemix_instance=inst, total_count=True)
    assert resp.get_status_code() == 200
    body = kp_json(resp)
    assert body["metadata"]["collectionType"] == "application/vnd.ibm.kms.registration+json"
    assert body["metadata"]["collectionTotal"] == 0
    assert body["metadata"]["totalCount"] == 0
    assert body["resources"] == []
    b = srv.bootstrap
    query = f"crn:v1:bluemix:public:cloud-object-storage:global:a/{b['account_id']}:{b['cos_instance_id']}:*:*"
    resp = kp.get_registrations_all_keys(bluemix_instance=inst, url_encoded_resource_crn_query=query)
    assert resp.get_status_code() == 200
    body = kp_json(resp)
    assert body["metadata"]["collectionType"] == "application/vnd.ibm.kms.registration+json"
    assert body["resources"] == []


def test_kmip_adapters_empty(kp, inst):
    resp = kp.get_kmip_adapters(bluemix_instance=inst)
    assert resp.get_status_code() == 200
    body = kp_json(resp)
    assert body["metadata"]["collectionType"] == "application/vnd.ibm.kms.kmip_adapter+json"
    assert body["metadata"]["collectionTotal"] == 0
    assert body["resources"] == []


# -- the deprecated action form ----------------------------------------------------------------


def test_deprecated_action_form(kp, inst):
    key = create(kp, inst)

    def act(action, body=None, **kw):
        return kp.action_on_key(id=key["id"], bluemix_instance=inst, action=action,
                                key_action_body=json.dumps(body) if body is not None else "", **kw)

    resp = act("wrap", {"plaintext": b64(b"old style"), "aad": ["a"]})
    assert resp.get_status_code() == 200
    w = kp_json(resp)
    assert w["keyVersion"]["id"] == key["keyVersion"]["id"]
    u = kp_json(act("unwrap", {"ciphertext": w["ciphertext"], "aad": ["a"]}))
    assert base64.b64decode(u["plaintext"]) == b"old style"
    rw = kp_json(act("rewrap", {"ciphertext": w["ciphertext"], "aad": ["a"]}))
    assert rw["ciphertext"]
    assert act("rotate", {}).get_status_code() == 204
    assert metadata(kp, inst, key["id"])["keyVersion"]["id"] != key["keyVersion"]["id"]
    assert act("disable").get_status_code() == 204
    assert metadata(kp, inst, key["id"])["state"] == 2
    assert act("enable").get_status_code() == 204
    assert metadata(kp, inst, key["id"])["state"] == 1
    assert_kp_error(kp_raises(act, "setKeyForDeletion"), 409, "NOT_DUAL_AUTH_ERR")
    assert kp.delete_key(id=key["id"], bluemix_instance=inst).get_status_code() == 200
    resp = act("restore")
    assert resp.get_status_code() == 201
    assert kp_json(resp)["resources"][0]["state"] == 1


# -- tolerance (spec §4.2) ---------------------------------------------------------------------


def test_bodies_without_content_type_null_and_empty(raw):
    key = raw.create_key()
    kid = key["id"]
    # kp-go: no Content-Type, `null` for disable/enable/rotate.
    for action in ("disable", "enable", "rotate"):
        r = raw.call("POST", f"/keys/{kid}/actions/{action}", body="null")
        assert r.status_code == 204, f"{action} with null: {r.status_code} {r.text}"
    # sdk-core: empty body with a vendor Content-Type.
    for action in ("disable", "enable", "rotate"):
        r = raw.call("POST", f"/keys/{kid}/actions/{action}", body=b"",
                     headers={"Content-Type": f"application/vnd.ibm.kms.key_action_{action}+json"})
        assert r.status_code == 204, f"{action} with an empty body: {r.status_code} {r.text}"
    # A wrap with an empty body or `null` generates a DEK.
    for body in (b"", "null"):
        r = raw.call("POST", f"/keys/{kid}/actions/wrap", body=body)
        assert r.status_code == 200, r.text
        assert len(base64.b64decode(r.json()["plaintext"])) == 32
    # Any Content-Type at all.
    r = raw.call("POST", f"/keys/{kid}/actions/wrap", body=json.dumps({"plaintext": b64(b"tp")}),
                 headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert len(raw.call("GET", f"/keys/{kid}/versions").json()["resources"]) == 3


def test_case_insensitive_json_keys(raw, srv):
    name = unique_name("kpgo")
    body = json.dumps({"Metadata": {"CollectionType": KP_KEY, "CollectionTotal": 1},
                       "Resources": [{"Type": KP_KEY, "Name": name, "Extractable": False,
                                      "Tags": ["from-kp-go"], "Description": "case"}]})
    r = raw.call("POST", "/keys", body=body)
    assert r.status_code == 201, r.text
    key = r.json()["resources"][0]
    assert key["name"] == name
    assert key["extractable"] is False
    assert key["tags"] == ["from-kp-go"]
    assert key["description"] == "case"
    r = raw.call("POST", f"/keys/{key['id']}/actions/wrap",
                 body=json.dumps({"Plaintext": b64(b"mixed case"), "AAD": ["x"]}))
    assert r.status_code == 200, r.text
    r = raw.call("POST", f"/keys/{key['id']}/actions/unwrap",
                 body=json.dumps({"CipherText": r.json()["ciphertext"], "Aad": ["x"]}))
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["plaintext"]) == b"mixed case"
