"""IAM token service: what the unmodified IBM clients need from `/identity/token` and
`/oidc/token` (spec §2.1-2.2), and how both planes treat good, expired, tampered and foreign
tokens (spec §3.1)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
import requests
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator

from conftest import (
    APIKEY_GRANT,
    CofferServer,
    IamAdmin,
    assert_platform_error,
    assert_raw_error,
    b64url,
    fetch_token,
    ibm_cos_client,
    jwt_parts,
    s3_error_code,
)

SHORT_LIFETIME = 6
APIKEY_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


# -- Ed25519 verification (RFC 8032 §6, reference arithmetic), to check tokens against JWKS ---

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a, b):
    x = (a[1] - a[0]) * (b[1] - b[0]) % _P
    y = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f, g * h, f * g, e * h)


def _mul(s, pt):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        s >>= 1
    return acc


def _recover_x(y, sign):
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 % _P == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


def _decompress(raw: bytes):
    y = int.from_bytes(raw, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_G = (_recover_x(_GY, 0), _GY, 1, _recover_x(_GY, 0) * _GY % _P)


def ed25519_verify(public: bytes, msg: bytes, sig: bytes) -> bool:
    if len(public) != 32 or len(sig) != 64:
        return False
    a, r = _decompress(public), _decompress(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= _Q:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % _Q
    lhs, rhs = _mul(s, _G), _add(r, _mul(h, a))
    return (lhs[0] * rhs[2] - rhs[0] * lhs[2]) % _P == 0 and (lhs[1] * rhs[2] - rhs[1] * lhs[2]) % _P == 0


def verify_with_jwks(token: str, jwks: dict) -> bool:
    header, _, sig = jwt_parts(token)
    keys = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    assert len(keys) == 1, f"kid {header.get('kid')} not (once) in JWKS {jwks}"
    k = keys[0]
    assert (k.get("kty"), k.get("crv")) == ("OKP", "Ed25519"), k
    x = k["x"]
    public = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    signing_input = token.rsplit(".", 1)[0].encode()
    return ed25519_verify(public, signing_input, sig)


# -- helpers -----------------------------------------------------------------------------------


def token_post(server: CofferServer, data, *, path: str = "/identity/token", headers: dict | None = None):
    return requests.post(f"{server.control_endpoint}{path}", data=data, headers=headers or {}, timeout=10)


def assert_token_error(resp: requests.Response, code: str | None) -> dict:
    """400 with IBM's token-service error body: errorCode, errorMessage, context.requestId."""
    detail = f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:300]!r}"
    assert resp.status_code == 400, f"expected 400 {code}; got {detail}"
    body = resp.json()
    assert isinstance(body.get("errorCode"), str) and body["errorCode"].startswith("BXNIM"), detail
    if code is not None:
        assert body["errorCode"] == code, f"expected {code}; got {detail}"
    assert isinstance(body.get("errorMessage"), str) and body["errorMessage"], detail
    assert isinstance(body.get("context", {}).get("requestId"), str) and body["context"]["requestId"], detail
    return body


def control_get_policies(server: CofferServer, token: str) -> requests.Response:
    return requests.get(
        f"{server.control_endpoint}/v1/policies",
        params={"account_id": server.bootstrap["account_id"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def s3_list_buckets_raw(server: CofferServer, token: str) -> requests.Response:
    return requests.get(
        server.endpoint + "/",
        headers={"Authorization": f"Bearer {token}", "ibm-service-instance-id": server.bootstrap["cos_instance_id"]},
        timeout=10,
    )


def wait_until(epoch: float) -> None:
    delay = epoch - time.time()
    if delay > 0:
        time.sleep(delay)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A server whose tokens live SHORT_LIFETIME seconds, with one admin token fetched at start."""
    srv = CofferServer(tmp_path_factory.mktemp("coffer-short-tokens"),
                       env={"COFFER_TOKEN_LIFETIME_SECS": str(SHORT_LIFETIME)}).start()
    srv.early_token = fetch_token(srv, srv.bootstrap["admin_api_key"])["access_token"]
    yield srv
    if srv.running:
        srv.stop()


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A second, unrelated coffer (its own account and signing key)."""
    srv = CofferServer(tmp_path_factory.mktemp("coffer-foreign")).start()
    yield srv
    if srv.running:
        srv.stop()


@pytest.fixture
def expired_token(short) -> str:
    """An admin token of the short-lived server, once it has expired."""
    token = short.early_token
    wait_until(jwt_parts(token)[1]["exp"] + 1.5)
    return token


# -- the SDK's authenticator -------------------------------------------------------------------


def test_iam_authenticator_fetches_a_jwt(server):
    b = server.bootstrap
    auth = IAMAuthenticator(b["admin_api_key"], url=server.control_endpoint)
    before = int(time.time())
    token = auth.token_manager.get_token()
    header, claims, _ = jwt_parts(token)
    assert header.get("alg") == "EdDSA" and header.get("kid"), header
    assert isinstance(claims.get("exp"), int) and isinstance(claims.get("iat"), int), claims
    assert before - 5 <= claims["iat"] <= time.time() + 5, claims
    assert claims["exp"] - claims["iat"] == 3600, claims
    assert claims.get("iam_id") == b["admin_iam_id"], claims
    assert claims.get("sub") == b["admin_iam_id"], claims
    assert claims.get("account", {}).get("bss") == b["account_id"], claims
    info = auth.token_manager.token_info
    assert info["token_type"] == "Bearer", info
    assert info["expires_in"] == 3600, info
    assert info["expiration"] == claims["exp"], info
    assert isinstance(info.get("refresh_token"), str) and info["refresh_token"], info
    # The SDK adds it as a bearer token, which the control plane accepts.
    req = {"headers": {}}
    auth.authenticate(req)
    assert req["headers"]["Authorization"] == f"Bearer {token}"
    r = control_get_policies(server, token)
    assert r.status_code == 200, r.text


def test_token_signature_verifies_against_jwks(server):
    token = fetch_token(server, server.bootstrap["admin_api_key"])["access_token"]
    jwks = requests.get(f"{server.control_endpoint}/identity/keys", timeout=10).json()
    assert verify_with_jwks(token, jwks), "the token's EdDSA signature does not verify with the JWKS key"
    # And the verifier is not a rubber stamp.
    h, p, s = token.split(".")
    other = b64url(json.dumps({**jwt_parts(token)[1], "iam_id": "IBMid-SOMEONEELSE"}).encode())
    assert not verify_with_jwks(f"{h}.{other}.{s}", jwks)


def test_token_response_for_ibm_botocore_style_request(server):
    """What ibm_botocore posts (Basic bx:bx, response_type=cloud_iam): a 200 with all fields."""
    b = server.bootstrap
    r = token_post(
        server,
        {"grant_type": APIKEY_GRANT, "response_type": "cloud_iam", "apikey": b["admin_api_key"]},
        headers={"accept": "application/json", "authorization": "Basic Yng6Yng=", "cache-control": "no-cache"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    for field in ("access_token", "refresh_token", "token_type", "expires_in", "expiration", "scope"):
        assert field in body, f"{field} missing from {body}"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] == 3600
    assert isinstance(body["expiration"], int) and abs(body["expiration"] - (time.time() + 3600)) < 30
    assert len(body["access_token"].split(".")) == 3
    # The admin key has IBM's shape: ~44 chars of [A-Za-z0-9_-].
    assert len(b["admin_api_key"]) == 44 and set(b["admin_api_key"]) <= APIKEY_CHARS


def test_sdk_refreshes_the_token_before_it_expires(short):
    """IAMAuthenticator fetches a new token at ~80% of the lifetime; the old one then expires."""
    auth = IAMAuthenticator(short.bootstrap["admin_api_key"], url=short.control_endpoint)
    tm = auth.token_manager
    first = tm.get_token()
    claims = jwt_parts(first)[1]
    assert claims["exp"] - claims["iat"] == SHORT_LIFETIME, claims
    assert tm.token_info["expires_in"] == SHORT_LIFETIME, tm.token_info
    assert control_get_policies(short, first).status_code == 200
    # The SDK compares whole seconds: wait until it considers the token due for refresh.
    wait_until(int(tm.refresh_time) + 1.05)
    assert tm._token_needs_refresh() or tm._is_token_expired()
    second = tm.get_token()
    assert second != first, "the SDK did not get a new token"
    second_claims = jwt_parts(second)[1]
    assert second_claims["exp"] > claims["exp"], (claims, second_claims)
    # Once the first token is past its exp, the control plane refuses it; the new one still works.
    wait_until(claims["exp"] + 1.5)
    assert time.time() < second_claims["exp"], "test too slow: the refreshed token expired as well"
    assert_platform_error(control_get_policies(short, first), 401)
    r = control_get_policies(short, second)
    assert r.status_code == 200, r.text


def test_expired_token_refused_by_control_plane(short, expired_token):
    body = assert_platform_error(control_get_policies(short, expired_token), 401)
    assert body["errors"][0]["code"], body


def test_expired_token_refused_by_s3_plane(short, expired_token):
    r = s3_list_buckets_raw(short, expired_token)
    assert_raw_error(r, 401, "ExpiredToken")
    r = requests.get(f"{short.endpoint}/some-bucket/some-key",
                     headers={"Authorization": f"Bearer {expired_token}"}, timeout=10)
    assert_raw_error(r, 401, "ExpiredToken")


def test_ibm_boto3_keeps_working_across_token_expiry(short):
    """ibm_boto3 (oauth) refreshes with its refresh token and keeps going past the first exp."""
    c = ibm_cos_client(short, short.bootstrap["admin_api_key"])
    start = time.time()
    assert c.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    wait_until(start + SHORT_LIFETIME + 1.5)
    assert c.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


# -- refresh_token and oidc grants -------------------------------------------------------------


def test_refresh_token_grant_is_single_use(server):
    b = server.bootstrap
    first = fetch_token(server, b["admin_api_key"])
    r = token_post(server, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["token_type"] == "Bearer" and second["expires_in"] == 3600, second
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert jwt_parts(second["access_token"])[1]["iam_id"] == b["admin_iam_id"]
    assert control_get_policies(server, second["access_token"]).status_code == 200
    # The used refresh token is gone; the new one works once.
    r = token_post(server, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert_token_error(r, "BXNIM0407E")
    r = token_post(server, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert r.status_code == 200, r.text


def test_refresh_token_garbage_refused(server):
    r = token_post(server, {"grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"})
    assert_token_error(r, "BXNIM0407E")


def test_oidc_token_like_redstone(server):
    b = server.bootstrap
    redstone = {"Authorization": "Basic Yng6Yng=", "Accept": "application/json"}
    form = {"grant_type": APIKEY_GRANT, "apikey": b["admin_api_key"], "response_type": "cloud_iam",
            "uaa_client_id": "cf", "uaa_client_secret": ""}
    r = token_post(server, form, path="/oidc/token", headers=redstone)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert isinstance(body["expiration"], int)
    claims = jwt_parts(body["access_token"])[1]
    assert claims["iam_id"] == b["admin_iam_id"]
    assert control_get_policies(server, body["access_token"]).status_code == 200
    # Refresh through /oidc/token too.
    r = token_post(server, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                            "response_type": "cloud_iam", "uaa_client_id": "cf", "uaa_client_secret": ""},
                   path="/oidc/token", headers=redstone)
    assert r.status_code == 200, r.text
    # Same errors as /identity/token.
    r = token_post(server, {**form, "apikey": "A" * 44}, path="/oidc/token", headers=redstone)
    assert_token_error(r, "BXNIM0415E")


# -- refused API keys --------------------------------------------------------------------------


def test_unknown_api_key_raw(server):
    r = token_post(server, {"grant_type": APIKEY_GRANT, "apikey": "Zz" * 22})
    body = assert_token_error(r, "BXNIM0415E")
    assert body["errorMessage"] == "Provided API key could not be found."


def test_unknown_api_key_surfaces_as_api_exception(server):
    auth = IAMAuthenticator("Zz" * 22, url=server.control_endpoint)
    with pytest.raises(ApiException) as e:
        auth.token_manager.get_token()
    assert e.value.status_code == 400, e.value
    assert e.value.message == "Provided API key could not be found.", e.value.message


def test_deleted_api_key_refused(server, iam: IamAdmin):
    ident = iam.identity("serviceid")
    assert fetch_token(server, ident["apikey"])["access_token"]
    iam.call("DELETE", f"/v1/apikeys/{ident['apikey_id']}", expect=204)
    listed = iam.call("GET", "/v1/apikeys", params={"iam_id": ident["iam_id"]}, expect=200).json()
    assert ident["apikey_id"] not in [k["id"] for k in listed["apikeys"]]
    r = token_post(server, {"grant_type": APIKEY_GRANT, "apikey": ident["apikey"]})
    assert_token_error(r, "BXNIM0415E")
    with pytest.raises(ApiException) as e:
        IAMAuthenticator(ident["apikey"], url=server.control_endpoint).token_manager.get_token()
    assert e.value.status_code == 400


def test_disabled_api_key_refused_then_enabled_again(server, iam: IamAdmin):
    ident = iam.identity("user")
    assert fetch_token(server, ident["apikey"])["access_token"]
    r = iam.call("POST", f"/v1/apikeys/{ident['apikey_id']}/disable")
    assert r.status_code == 204, r.text
    listed = iam.call("GET", "/v1/apikeys", params={"iam_id": ident["iam_id"]}, expect=200).json()["apikeys"]
    assert [k["disabled"] for k in listed if k["id"] == ident["apikey_id"]] == [True], listed
    r = token_post(server, {"grant_type": APIKEY_GRANT, "apikey": ident["apikey"]})
    assert_token_error(r, "BXNIM0416E")
    with pytest.raises(ApiException) as e:
        IAMAuthenticator(ident["apikey"], url=server.control_endpoint).token_manager.get_token()
    assert e.value.status_code == 400
    r = iam.call("DELETE", f"/v1/apikeys/{ident['apikey_id']}/disable")
    assert r.status_code == 204, r.text
    token = fetch_token(server, ident["apikey"])["access_token"]
    assert jwt_parts(token)[1]["iam_id"] == ident["iam_id"]


@pytest.mark.parametrize(
    "data, content_type, code",
    [
        ({}, None, "BXNIM0109E"),
        ({"apikey": "whatever"}, None, "BXNIM0109E"),
        ({"grant_type": APIKEY_GRANT}, None, "BXNIM0109E"),
        ({"grant_type": APIKEY_GRANT, "apikey": ""}, None, "BXNIM0109E"),
        ({"grant_type": "refresh_token"}, None, "BXNIM0109E"),
        ({"grant_type": "password", "username": "u", "password": "p"}, None, None),
        ({"grant_type": "no-such-grant", "apikey": "x"}, None, None),
        (b"\xff\xfe%%%=&&==", "application/x-www-form-urlencoded", None),
        (b'{"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "x"}', "application/json", None),
    ],
    ids=["empty", "no-grant", "no-apikey", "empty-apikey", "no-refresh-token", "password-grant",
         "unknown-grant", "garbage-form", "json-body"],
)
def test_malformed_token_request(server, data, content_type, code):
    headers = {"Content-Type": content_type} if content_type else None
    r = token_post(server, data, headers=headers)
    assert_token_error(r, code)


# -- refused tokens on both planes -------------------------------------------------------------


def _tamper(token: str, how: str) -> str:
    h, p, s = token.split(".")
    header, claims, sig = jwt_parts(token)
    if how == "claim-iam-id":
        return f"{h}.{b64url(json.dumps({**claims, 'iam_id': 'IBMid-ATTACKER01', 'sub': 'IBMid-ATTACKER01'}).encode())}.{s}"
    if how == "claim-exp":
        return f"{h}.{b64url(json.dumps({**claims, 'exp': claims['exp'] + 86400}).encode())}.{s}"
    if how == "claim-account":
        acct = {**claims.get("account", {}), "bss": "0" * 32}
        return f"{h}.{b64url(json.dumps({**claims, 'account': acct}).encode())}.{s}"
    if how == "signature-bit":
        return f"{h}.{p}.{b64url(bytes([sig[0] ^ 1]) + sig[1:])}"
    if how == "alg-none":
        return f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{p}."
    if how == "alg-hs256":
        return f"{b64url(json.dumps({**header, 'alg': 'HS256'}).encode())}.{p}.{s}"
    if how == "unknown-kid":
        return f"{b64url(json.dumps({**header, 'kid': 'no-such-kid'}).encode())}.{p}.{s}"
    if how == "not-a-jwt":
        return "this-is-not-a-token"
    raise AssertionError(how)


TAMPERINGS = ["claim-iam-id", "claim-exp", "claim-account", "signature-bit", "alg-none", "alg-hs256",
              "unknown-kid", "not-a-jwt"]


@pytest.fixture(scope="module")
def admin_token(server) -> str:
    return fetch_token(server, server.bootstrap["admin_api_key"])["access_token"]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampered_token_refused_by_control_plane(server, admin_token, how):
    assert control_get_policies(server, admin_token).status_code == 200
    assert_platform_error(control_get_policies(server, _tamper(admin_token, how)), 401)


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampered_token_refused_by_s3_plane(server, admin_token, how):
    bad = _tamper(admin_token, how)
    assert_raw_error(s3_list_buckets_raw(server, bad), 401, "InvalidToken")
    r = requests.put(f"{server.endpoint}/tampered-bucket/key", data=b"x",
                     headers={"Authorization": f"Bearer {bad}"}, timeout=10)
    assert_raw_error(r, 401, "InvalidToken")


def test_foreign_token_refused_by_both_planes(server, foreign):
    token = fetch_token(foreign, foreign.bootstrap["admin_api_key"])["access_token"]
    assert control_get_policies(foreign, token).status_code == 200
    assert_platform_error(control_get_policies(server, token), 401)
    r = s3_list_buckets_raw(server, token)
    assert_raw_error(r, 401, "InvalidToken")
    # The same with the foreign instance named, as ibm_boto3 of the other server would send.
    r = requests.get(server.endpoint + "/", timeout=10, headers={
        "Authorization": f"Bearer {token}", "ibm-service-instance-id": foreign.bootstrap["cos_instance_id"]})
    assert_raw_error(r, 401, "InvalidToken")


def test_foreign_token_refused_by_ibm_boto3_flow(server, foreign):
    """ibm_boto3 pointed at this server's S3 endpoint but the other server's token service."""
    from ibm_botocore.exceptions import ClientError
    import ibm_boto3
    from ibm_botocore.client import Config as IbmConfig

    c = ibm_boto3.client(
        "s3",
        ibm_api_key_id=foreign.bootstrap["admin_api_key"],
        ibm_service_instance_id=server.bootstrap["cos_instance_id"],
        ibm_auth_endpoint=f"{foreign.control_endpoint}/identity/token",
        config=IbmConfig(signature_version="oauth", retries={"max_attempts": 0}),
        endpoint_url=server.endpoint,
    )
    with pytest.raises(ClientError) as e:
        c.list_buckets()
    status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (status, e.value.response["Error"]["Code"]) == (401, "InvalidToken"), e.value.response


def test_missing_or_non_bearer_authorization_refused_by_control_plane(server):
    url = f"{server.control_endpoint}/v1/policies"
    params = {"account_id": server.bootstrap["account_id"]}
    assert_platform_error(requests.get(url, params=params, timeout=10), 401)
    assert_platform_error(requests.get(url, params=params, headers={"Authorization": "Basic Yng6Yng="},
                                       timeout=10), 401)
    assert_platform_error(requests.get(url, params=params, headers={"Authorization": "Bearer"}, timeout=10), 401)


# -- signing keys ------------------------------------------------------------------------------


def test_signing_key_rotation_keeps_old_tokens_valid(foreign):
    """Runs on its own server, so the session server keeps one signing key."""
    admin = IamAdmin(foreign)
    jwks_url = f"{foreign.control_endpoint}/identity/keys"
    before = requests.get(jwks_url, timeout=10)
    assert before.status_code == 200
    keys_before = before.json()["keys"]
    old_token = admin.token
    old_kid = jwt_parts(old_token)[0]["kid"]
    assert [k["kid"] for k in keys_before] == [old_kid], keys_before
    for k in keys_before:
        assert (k["kty"], k["crv"], k["alg"], k["use"]) == ("OKP", "Ed25519", "EdDSA", "sig"), k
        assert "d" not in k, "the JWKS leaks the private key"

    # Only an account administrator may rotate.
    url = f"{foreign.control_endpoint}/identity/keys/rotate"
    assert_platform_error(requests.post(url, timeout=10), 401)
    reader = admin.identity("user")
    admin.grant(reader["iam_id"], "Reader")
    reader_token = fetch_token(foreign, reader["apikey"])["access_token"]
    assert_platform_error(requests.post(url, headers={"Authorization": f"Bearer {reader_token}"}, timeout=10), 403)

    r = requests.post(url, headers={"Authorization": f"Bearer {old_token}"}, timeout=10)
    assert r.status_code == 200, r.text
    new_kid = r.json()["kid"]
    assert new_kid and new_kid != old_kid

    jwks = requests.get(jwks_url, timeout=10).json()
    assert sorted(k["kid"] for k in jwks["keys"]) == sorted([old_kid, new_kid]), jwks
    new_token = fetch_token(foreign, foreign.bootstrap["admin_api_key"])["access_token"]
    assert jwt_parts(new_token)[0]["kid"] == new_kid
    assert verify_with_jwks(new_token, jwks)
    assert verify_with_jwks(old_token, jwks)
    # Tokens signed with either key work on both planes.
    assert control_get_policies(foreign, old_token).status_code == 200
    assert control_get_policies(foreign, new_token).status_code == 200
    for token in (old_token, new_token):
        r = s3_list_buckets_raw(foreign, token)
        assert r.status_code == 200, f"{r.status_code} {s3_error_code(r)} {r.text[:200]}"
