"""Buckets encrypted under root keys (spec §3.3-§3.6, §4.10), the whole flow with the unmodified
IBM SDKs: `keyprotect` makes the root key, `ibm-platform-services` IamPolicyManagementV1 lets the
object-storage instance read the KMS instance, and `ibm_boto3` creates the bucket with the key
CRN in IAM (oauth) mode and in HMAC mode. Then: what a wrong CRN or a missing authorization
answers, what HEAD and ListObjects show, the object data path over encrypted buckets (ETag = MD5
of the plaintext, multipart, ranges across segment and part boundaries, copies between encrypted
and plain buckets, conditional reads, metadata), the refusal of per-object KMS keys, the absence
of plaintext on disk, the location rule, and the KP registration that follows the bucket.

Every module here runs on servers of its own: the checks of what the data dir holds, and of
which authorization policies exist, must not see other tests' work."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest
import requests
from ibm_botocore.exceptions import ClientError
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from ibm_platform_services import IamPolicyManagementV1
from ibm_platform_services.iam_policy_management_v1 import (
    PolicyResource,
    PolicyRole,
    PolicySubject,
    ResourceAttribute,
    SubjectAttribute,
)

from conftest import (
    KP_CRN_NOT_FOUND,
    KP_HEADERS,
    MiB,
    ROLE_CRNS,
    CofferServer,
    IamAdmin,
    KpRaw,
    assert_kp_error,
    authorize_cos_on_kms,
    coffer_cli,
    cos_bucket_crn,
    data_dir_files,
    files_containing,
    ibm_oauth_client,
    ibm_sigv4_client,
    kp_create_bucket,
    kp_json,
    kp_key_body,
    kp_raises,
    kp_registrations,
    kp_sdk,
    new_kms_instance,
    quoted_md5,
    s3_error_code,
    signed_request,
    unique_name,
)

SEG = 64 * 1024
COS = "cloud-object-storage"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = CofferServer(tmp_path_factory.mktemp("coffer-kp-buckets")).start()
    yield s
    if s.running:
        s.stop()


@pytest.fixture(scope="module")
def iam(srv) -> IamAdmin:
    return IamAdmin(srv)


@pytest.fixture(scope="module")
def inst(srv) -> str:
    return srv.bootstrap["kms_instance_id"]


@pytest.fixture(scope="module")
def kp(srv):
    return kp_sdk(srv)


@pytest.fixture(scope="module")
def raw(srv, inst) -> KpRaw:
    return KpRaw(srv, inst)


@pytest.fixture(scope="module")
def policy_svc(srv) -> IamPolicyManagementV1:
    svc = IamPolicyManagementV1(authenticator=IAMAuthenticator(srv.bootstrap["admin_api_key"],
                                                               url=srv.control_endpoint))
    svc.set_service_url(srv.control_endpoint)
    return svc


def sdk_authorize(policy_svc, iam: IamAdmin, kms_instance: str, service: str = "hs-crypto") -> dict:
    """The COS -> KMS authorization policy, made by IamPolicyManagementV1 as IBM documents it."""
    resp = policy_svc.create_policy(
        type="authorization",
        subjects=[PolicySubject(attributes=[
            SubjectAttribute(name="accountId", value=iam.account_id),
            SubjectAttribute(name="serviceName", value=COS),
            SubjectAttribute(name="serviceInstance", value=iam.cos_instance_id),
        ])],
        roles=[PolicyRole(role_id=ROLE_CRNS["Reader"])],
        resources=[PolicyResource(attributes=[
            ResourceAttribute(name="accountId", value=iam.account_id),
            ResourceAttribute(name="serviceName", value=service),
            ResourceAttribute(name="serviceInstance", value=kms_instance),
        ])],
        description="COS may use the root keys of this instance",
    )
    assert resp.get_status_code() == 201, resp.get_result()
    policy = resp.get_result()
    assert policy["type"] == "authorization"
    assert [r["role_id"] for r in policy["roles"]] == [ROLE_CRNS["Reader"]]
    return policy


@pytest.fixture(scope="module")
def authorization(policy_svc, iam, inst) -> dict:
    return sdk_authorize(policy_svc, iam, inst)


def sdk_root_key(kp, inst: str, *, root: bool = True, **fields) -> dict:
    resp = kp.create_key(bluemix_instance=inst, key_create_body=kp_key_body(unique_name("crk"), root=root,
                                                                             **fields))
    assert resp.get_status_code() == 201
    key = kp_json(resp)["resources"][0]
    assert key["extractable"] is (not root) and key["state"] == 1, key
    return key


@pytest.fixture(scope="module")
def root_key(kp, inst, authorization) -> dict:
    return sdk_root_key(kp, inst)


@pytest.fixture(scope="module")
def cos(srv):
    """ibm_boto3 in oauth mode with the account owner's API key."""
    return ibm_oauth_client(srv, srv.bootstrap["admin_api_key"])


@pytest.fixture(scope="module")
def hmac(srv):
    """ibm_boto3 in HMAC mode with the account owner's HMAC key."""
    return ibm_sigv4_client(srv)


def create_kp_bucket(client, crn: str, name: str | None = None, **extra) -> str:
    name = name or unique_name("kp")
    resp = client.create_bucket(Bucket=name, IBMSSEKPEncryptionAlgorithm="AES256",
                                IBMSSEKPCustomerRootKeyCrn=crn, **extra)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, resp
    return name


@pytest.fixture(scope="module")
def enc(cos, root_key) -> str:
    """An encrypted bucket, made in oauth mode."""
    return create_kp_bucket(cos, root_key["crn"])


@pytest.fixture(scope="module")
def plain(cos) -> str:
    name = unique_name("plain")
    cos.create_bucket(Bucket=name)
    return name


# -- small helpers -------------------------------------------------------------------------------


def client_error(excinfo) -> tuple[int, str, str]:
    r = excinfo.value.response
    return (r["ResponseMetadata"]["HTTPStatusCode"], r.get("Error", {}).get("Code", ""),
            r.get("Error", {}).get("Message", ""))


def assert_crn_not_found(excinfo_or_resp) -> None:
    """400 InvalidRequest, message exactly `The Key CRN could not be found` (spec §3.3)."""
    if isinstance(excinfo_or_resp, requests.Response):
        r = excinfo_or_resp
        import xml.etree.ElementTree as ET

        detail = f"{r.status_code} {r.text[:300]!r}"
        assert r.status_code == 400, detail
        assert s3_error_code(r) == "InvalidRequest", detail
        msg = ET.fromstring(r.content).findtext("Message")
        assert msg == KP_CRN_NOT_FOUND, detail
        return
    status, code, msg = client_error(excinfo_or_resp)
    assert (status, code, msg) == (400, "InvalidRequest", KP_CRN_NOT_FOUND)


def bucket_absent(client, name: str) -> bool:
    try:
        client.head_bucket(Bucket=name)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


def assert_kp_head(client, bucket: str, crn: str) -> None:
    """HEAD bucket and ListObjects v1 name the key: the SDK's parsed members and the raw headers."""
    head = client.head_bucket(Bucket=bucket)
    assert head.get("IBMSSEKPEnabled") is True, head
    assert head.get("IBMSSEKPCrkId") == crn, head
    h = head["ResponseMetadata"]["HTTPHeaders"]
    assert h.get("ibm-sse-kp-enabled") == "true", h
    assert h.get("ibm-sse-kp-crk-id") == crn, h
    assert h.get("ibm-sse-kp-customer-root-key-crn") == crn, h
    listing = client.list_objects(Bucket=bucket)
    assert listing.get("IBMSSEKPEnabled") is True, listing
    assert listing.get("IBMSSEKPCrkId") == crn, listing
    lh = listing["ResponseMetadata"]["HTTPHeaders"]
    assert lh.get("ibm-sse-kp-enabled") == "true", lh
    assert lh.get("ibm-sse-kp-customer-root-key-crn") == crn, lh


def registered_buckets(raw: KpRaw, key_id: str) -> list[str]:
    return sorted(r["resourceCrn"] for r in kp_registrations(raw, key_id))


def body_of(client, bucket: str, key: str, **kw) -> bytes:
    return client.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def multipart_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def pattern(n: int, seed: str) -> bytes:
    """`n` bytes where every 16-byte window says where it is (a misplaced byte is visible)."""
    block = hashlib.sha256(seed.encode()).digest()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


# -- creation through the SDKs -------------------------------------------------------------------


def test_authorization_and_root_key_come_from_the_sdks(authorization, root_key, iam, inst):
    attrs = {a["name"]: a["value"] for a in authorization["resources"][0]["attributes"]}
    assert attrs == {"accountId": iam.account_id, "serviceName": "hs-crypto", "serviceInstance": inst}
    assert root_key["crn"] == (f"crn:v1:bluemix:public:hs-crypto:us-south:a/{iam.account_id}:{inst}"
                               f":key:{root_key['id']}")


def test_create_in_oauth_mode_shows_the_key_and_registers_the_bucket(srv, cos, raw, root_key):
    name = create_kp_bucket(cos, root_key["crn"])
    assert_kp_head(cos, name, root_key["crn"])
    regs = [r for r in kp_registrations(raw, root_key["id"]) if r["resourceCrn"] == cos_bucket_crn(srv, name)]
    assert len(regs) == 1, kp_registrations(raw, root_key["id"])
    reg = regs[0]
    assert reg["resourceCrn"] == (f"crn:v1:bluemix:public:cloud-object-storage:global:a/{srv.bootstrap['account_id']}"
                                  f":{srv.bootstrap['cos_instance_id']}:bucket:{name}")
    assert reg["keyId"] == root_key["id"]
    assert reg["keyVersion"]["id"] == root_key["keyVersion"]["id"]
    assert reg["preventKeyDeletion"] is False
    # The bucket is listed like any other.
    assert name in [b["Name"] for b in cos.list_buckets()["Buckets"]]


def test_create_in_hmac_mode(srv, hmac, cos, raw, root_key):
    name = create_kp_bucket(hmac, root_key["crn"])
    assert_kp_head(hmac, name, root_key["crn"])
    assert_kp_head(cos, name, root_key["crn"])
    assert cos_bucket_crn(srv, name) in registered_buckets(raw, root_key["id"])


@pytest.mark.parametrize("algorithm", ['"AES256"', "AES256", None], ids=["quoted", "bare", "absent"])
def test_create_with_raw_headers(srv, hmac, raw, root_key, algorithm):
    """The IBM docs quote the algorithm; the header is optional (defaults to AES256)."""
    name = unique_name("kpraw")
    r = kp_create_bucket(srv, name, root_key["crn"], algorithm=algorithm)
    assert r.status_code == 200, r.text
    assert_kp_head(hmac, name, root_key["crn"])
    assert cos_bucket_crn(srv, name) in registered_buckets(raw, root_key["id"])


def test_algorithm_other_than_aes256_is_refused(srv, hmac, raw, root_key):
    name = unique_name("kpalg")
    r = kp_create_bucket(srv, name, root_key["crn"], algorithm="AES128")
    assert r.status_code == 400, r.text
    assert bucket_absent(hmac, name)
    assert cos_bucket_crn(srv, name) not in registered_buckets(raw, root_key["id"])


def test_plain_bucket_sends_no_key_headers(cos, plain):
    head = cos.head_bucket(Bucket=plain)
    assert not head.get("IBMSSEKPEnabled")
    assert "IBMSSEKPCrkId" not in head
    for h in KP_HEADERS:
        assert h not in head["ResponseMetadata"]["HTTPHeaders"], head
    listing = cos.list_objects(Bucket=plain)
    for h in KP_HEADERS:
        assert h not in listing["ResponseMetadata"]["HTTPHeaders"], listing


def test_the_key_is_fixed_for_good(srv, cos, hmac, kp, inst, raw, root_key, enc):
    other = sdk_root_key(kp, inst)
    for client in (cos, hmac):
        with pytest.raises(ClientError) as e:
            client.create_bucket(Bucket=enc, IBMSSEKPEncryptionAlgorithm="AES256",
                                 IBMSSEKPCustomerRootKeyCrn=other["crn"])
        assert client_error(e)[:2] == (409, "BucketAlreadyOwnedByYou")
        with pytest.raises(ClientError) as e:
            client.create_bucket(Bucket=enc)
        assert client_error(e)[:2] == (409, "BucketAlreadyOwnedByYou")
    r = kp_create_bucket(srv, enc, other["crn"])
    assert r.status_code == 409 and s3_error_code(r) == "BucketAlreadyOwnedByYou", r.text
    # S3's bucket-encryption configuration does not change it either, whatever it answers.
    # (ibm_boto3 has no PutBucketEncryption; this is the S3 wire form.)
    for rule in (f"<SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{other['crn']}</KMSMasterKeyID>",
                 "<SSEAlgorithm>AES256</SSEAlgorithm>"):
        xml = ('<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>'
               f"<ApplyServerSideEncryptionByDefault>{rule}</ApplyServerSideEncryptionByDefault>"
               "</Rule></ServerSideEncryptionConfiguration>").encode()
        signed_request(srv, "PUT", f"/{enc}", query="encryption", body=xml,
                       headers={"Content-MD5": base64.b64encode(hashlib.md5(xml).digest()).decode()})
    assert_kp_head(cos, enc, root_key["crn"])
    assert kp_registrations(raw, other["id"]) == []
    assert cos_bucket_crn(srv, enc) in registered_buckets(raw, root_key["id"])


# -- what a bad CRN answers ------------------------------------------------------------------------


def _swap(crn: str, index: int, value: str) -> str:
    parts = crn.split(":")
    parts[index] = value
    return ":".join(parts)


BAD_CRNS = {
    "garbage": lambda crn, ctx: "not-a-crn",
    "nine-segments": lambda crn, ctx: crn.rsplit(":", 1)[0],
    "eleven-segments": lambda crn, ctx: crn + ":extra",
    "crn-v2": lambda crn, ctx: _swap(crn, 1, "v2"),
    "unknown-key": lambda crn, ctx: _swap(crn, 9, str(uuid.uuid4())),
    "unknown-instance": lambda crn, ctx: _swap(crn, 7, str(uuid.uuid4())),
    "other-region": lambda crn, ctx: _swap(crn, 5, "eu-de"),
    "other-account": lambda crn, ctx: _swap(crn, 6, "a/" + uuid.uuid4().hex),
    "not-a-key": lambda crn, ctx: _swap(crn, 8, "bucket"),
    "no-key-id": lambda crn, ctx: _swap(crn, 9, ""),
    "instance-crn": lambda crn, ctx: ctx["kms_instance_crn"],
    "not-a-kms-service": lambda crn, ctx: _swap(crn, 4, "cloud-object-storage"),
    # The CRN of an hs-crypto key names hs-crypto: `kms` names a Key Protect instance of that
    # GUID, which does not exist (the service segment is what picks the KMS, spec §1.1).
    "wrong-kms-service": lambda crn, ctx: _swap(crn, 4, "kms"),
}


@pytest.mark.parametrize("variant", list(BAD_CRNS))
def test_wrong_crn(srv, cos, raw, root_key, variant):
    bad = BAD_CRNS[variant](root_key["crn"], srv.bootstrap)
    assert bad != root_key["crn"]
    before = registered_buckets(raw, root_key["id"])
    name = unique_name("kpbad")
    with pytest.raises(ClientError) as e:
        cos.create_bucket(Bucket=name, IBMSSEKPEncryptionAlgorithm="AES256", IBMSSEKPCustomerRootKeyCrn=bad)
        pytest.fail(f"{variant}: bucket created with the CRN {bad!r} (key {root_key['crn']!r})")
    assert_crn_not_found(e)
    assert bucket_absent(cos, name), f"{variant}: the bucket exists after all"
    assert registered_buckets(raw, root_key["id"]) == before


def test_empty_crn_header(srv, hmac, root_key):
    name = unique_name("kpempty")
    assert_crn_not_found(kp_create_bucket(srv, name, ""))
    assert bucket_absent(hmac, name)


def test_keys_that_cannot_protect_a_bucket(srv, cos, hmac, kp, inst, raw, authorization):
    """A standard key, a disabled key and a deleted key: the same answer as a wrong CRN."""
    standard = sdk_root_key(kp, inst, root=False)
    disabled = sdk_root_key(kp, inst)
    assert kp.disable_key(id=disabled["id"], bluemix_instance=inst).get_status_code() == 204
    deleted = sdk_root_key(kp, inst)
    assert kp.delete_key(id=deleted["id"], bluemix_instance=inst).get_status_code() == 200
    for key in (standard, disabled, deleted):
        for client in (cos, hmac):
            name = unique_name("kpnot")
            with pytest.raises(ClientError) as e:
                create_kp_bucket(client, key["crn"], name)
            assert_crn_not_found(e)
            assert bucket_absent(cos, name)
    assert kp_registrations(raw, standard["id"]) == []
    assert kp_registrations(raw, disabled["id"]) == []


def test_expired_key(srv, cos, raw, authorization):
    """A key past its expiration date is deactivated: it cannot protect a new bucket."""
    import datetime as dt
    import time

    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=2)
    key = raw.create_key(expirationDate=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    name = create_kp_bucket(cos, key["crn"])  # still active
    assert_kp_head(cos, name, key["crn"])
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.2)
    assert raw.key(key["id"])["state"] == 3
    with pytest.raises(ClientError) as e:
        create_kp_bucket(cos, key["crn"])
    assert_crn_not_found(e)


def test_missing_authorization(srv, tmp_path, cos, hmac, iam, policy_svc):
    """A KMS instance the COS instance has no authorization on: refused like a wrong CRN, until a
    policy exists; refused again once it is deleted."""
    other = new_kms_instance(srv, tmp_path / "parts")
    key = KpRaw(srv, other["id"]).create_key()
    for client in (cos, hmac):
        with pytest.raises(ClientError) as e:
            create_kp_bucket(client, key["crn"])
        assert_crn_not_found(e)
    policy = sdk_authorize(policy_svc, iam, other["id"])
    name = create_kp_bucket(cos, key["crn"])
    assert_kp_head(cos, name, key["crn"])
    assert policy_svc.delete_policy(policy_id=policy["id"]).get_status_code() == 204
    with pytest.raises(ClientError) as e:
        create_kp_bucket(hmac, key["crn"])
    assert_crn_not_found(e)


def test_authorization_on_another_instance_does_not_count(srv, tmp_path, cos, iam, inst, authorization):
    """The dev instance is authorized (module fixture); a second instance is not."""
    other = new_kms_instance(srv, tmp_path / "parts")
    key = KpRaw(srv, other["id"]).create_key()
    with pytest.raises(ClientError) as e:
        create_kp_bucket(cos, key["crn"])
    assert_crn_not_found(e)


def test_uninitialized_instance(srv, tmp_path, cos, iam, root_key):
    bare = new_kms_instance(srv, tmp_path, init=False)
    authorize_cos_on_kms(iam, bare["id"])
    crn = bare["crn"][:-1] + "key:" + root_key["id"]
    with pytest.raises(ClientError) as e:
        create_kp_bucket(cos, crn)
    assert_crn_not_found(e)


def test_location_rule(srv, tmp_path, cos, iam):
    """An hs-crypto instance serves the buckets of its own location only; Key Protect keys may
    protect buckets of any region (spec §3.3 item 4)."""
    eu = new_kms_instance(srv, tmp_path / "hpcs", service="hs-crypto", region="eu-de")
    assert eu["region"] == "eu-de"
    authorize_cos_on_kms(iam, eu["id"], "hs-crypto")
    key = KpRaw(srv, eu["id"]).create_key()
    assert ":hs-crypto:eu-de:" in key["crn"]
    name = unique_name("kploc")
    with pytest.raises(ClientError) as e:
        create_kp_bucket(cos, key["crn"], name)
    status, code, msg = client_error(e)
    assert (status, code) == (400, "InvalidRequest"), (status, code, msg)
    assert "us-south" in msg and "eu-de" in msg, msg
    assert bucket_absent(cos, name)

    kp_eu = new_kms_instance(srv, tmp_path / "kp", service="kms", region="eu-de")
    authorize_cos_on_kms(iam, kp_eu["id"], "kms")
    kp_key = KpRaw(srv, kp_eu["id"]).create_key()
    assert ":kms:eu-de:" in kp_key["crn"]
    ok = create_kp_bucket(cos, kp_key["crn"])
    assert_kp_head(cos, ok, kp_key["crn"])
    cos.put_object(Bucket=ok, Key="k", Body=b"a Key Protect key from another region")
    assert body_of(cos, ok, "k") == b"a Key Protect key from another region"


def test_sealed_instance(tmp_path):
    """After a restart an instance with custodian parts is sealed: its keys cannot protect a new
    bucket, its buckets do not serve data, and all is back once the custodians load the parts."""
    s = CofferServer(tmp_path / "srv").start()
    try:
        iam = IamAdmin(s)
        other = new_kms_instance(s, tmp_path / "parts")
        authorize_cos_on_kms(iam, other["id"])
        key = KpRaw(s, other["id"]).create_key()
        cos = ibm_oauth_client(s, s.bootstrap["admin_api_key"])
        name = create_kp_bucket(cos, key["crn"])
        data = pattern(3 * SEG + 5, "sealed")
        cos.put_object(Bucket=name, Key="obj", Body=data)

        s.restart()
        cos = ibm_oauth_client(s, s.bootstrap["admin_api_key"])
        shown = coffer_cli(s, "kms", "instance", "show", other["id"], "--json")
        assert json.loads(shown.stdout)["sealed"] is True
        with pytest.raises(ClientError) as e:
            create_kp_bucket(cos, key["crn"])
        assert_crn_not_found(e)
        r = signed_request(s, "GET", f"/{name}/obj")
        assert r.status_code >= 400 and data not in r.content, (r.status_code, r.text[:200])
        assert_kp_head(cos, name, key["crn"])

        for part in other["parts"]:
            coffer_cli(s, "kms", "load-part", "--instance", other["id"], "--part", str(part))
        assert body_of(cos, name, "obj") == data
        again = create_kp_bucket(cos, key["crn"])
        assert_kp_head(cos, again, key["crn"])
    finally:
        if s.running:
            s.stop()


# -- objects in an encrypted bucket --------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG + 17])
def test_put_get_etag_is_plaintext_md5(cos, hmac, enc, size):
    data = pattern(size, f"size-{size}")
    key = f"obj-{size}"
    put = cos.put_object(Bucket=enc, Key=key, Body=data)
    assert put["ETag"] == quoted_md5(data)
    for client in (cos, hmac):
        got = client.get_object(Bucket=enc, Key=key)
        assert got["ETag"] == quoted_md5(data)
        assert got["ContentLength"] == size
        assert got["Body"].read() == data
        head = client.head_object(Bucket=enc, Key=key)
        assert head["ETag"] == quoted_md5(data) and head["ContentLength"] == size
    listed = {o["Key"]: o for o in cos.list_objects_v2(Bucket=enc, Prefix=key)["Contents"]}
    assert listed[key]["ETag"] == quoted_md5(data) and listed[key]["Size"] == size


def test_hmac_put_oauth_get(cos, hmac, enc):
    data = pattern(2 * SEG + 3, "hmac-put")
    assert hmac.put_object(Bucket=enc, Key="from-hmac", Body=data)["ETag"] == quoted_md5(data)
    assert body_of(cos, enc, "from-hmac") == data


def test_overwrite_replaces_the_object(cos, enc):
    first, second = pattern(SEG + 9, "first"), pattern(SEG - 9, "second")
    cos.put_object(Bucket=enc, Key="over", Body=first)
    cos.put_object(Bucket=enc, Key="over", Body=second)
    got = cos.get_object(Bucket=enc, Key="over")
    assert got["Body"].read() == second and got["ETag"] == quoted_md5(second)


@pytest.fixture(scope="module")
def multipart_object(cos, enc):
    parts = [pattern(5 * MiB, "p1"), pattern(5 * MiB, "p2"), pattern(5 * MiB + 7, "p3"), pattern(1000, "p4")]
    key = "multi"
    up = cos.create_multipart_upload(Bucket=enc, Key=key, Metadata={"kind": "multipart"})
    done = []
    for i, p in enumerate(parts, start=1):
        r = cos.upload_part(Bucket=enc, Key=key, UploadId=up["UploadId"], PartNumber=i, Body=p)
        assert r["ETag"] == quoted_md5(p), f"part {i}"
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    listed = cos.list_parts(Bucket=enc, Key=key, UploadId=up["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == \
        [(i, quoted_md5(p), len(p)) for i, p in enumerate(parts, start=1)]
    fin = cos.complete_multipart_upload(Bucket=enc, Key=key, UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": done})
    return key, parts, fin


def test_multipart_etag_and_body(cos, hmac, enc, multipart_object):
    key, parts, fin = multipart_object
    whole = b"".join(parts)
    assert fin["ETag"] == multipart_etag(parts)
    head = hmac.head_object(Bucket=enc, Key=key)
    assert head["ETag"] == multipart_etag(parts) and head["ContentLength"] == len(whole)
    assert head["Metadata"] == {"kind": "multipart"}
    got = cos.get_object(Bucket=enc, Key=key)
    assert got["ETag"] == multipart_etag(parts)
    body = got["Body"].read()
    assert len(body) == len(whole) and hashlib.md5(body).digest() == hashlib.md5(whole).digest()
    for n, p in enumerate(parts, start=1):
        part = cos.get_object(Bucket=enc, Key=key, PartNumber=n)
        assert part["Body"].read() == p, f"part {n}"


def _ranges_across(boundaries: list[int], size: int) -> list[tuple[int, int]]:
    out = []
    for b in boundaries:
        for lo, hi in ((b - 1, b), (b - 1, b + 1), (b, b), (b - 100, b + 100), (b - SEG - 3, b + SEG + 3)):
            lo, hi = max(lo, 0), min(hi, size - 1)
            if lo <= hi:
                out.append((lo, hi))
    return out


def test_range_reads_across_segments(cos, hmac, enc):
    size = 5 * SEG + 1234
    data = pattern(size, "ranges")
    cos.put_object(Bucket=enc, Key="ranged", Body=data)
    ranges = _ranges_across([SEG * i for i in range(1, 6)], size) + [(0, 0), (0, size - 1), (size - 1, size - 1),
                                                                    (7, 3 * SEG + 11)]
    for lo, hi in ranges:
        got = hmac.get_object(Bucket=enc, Key="ranged", Range=f"bytes={lo}-{hi}")
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{size}"
        assert got["Body"].read() == data[lo:hi + 1], (lo, hi)
    assert body_of(cos, enc, "ranged", Range=f"bytes={SEG * 2 + 5}-") == data[SEG * 2 + 5:]
    assert body_of(cos, enc, "ranged", Range="bytes=-70000") == data[-70000:]
    with pytest.raises(ClientError) as e:
        cos.get_object(Bucket=enc, Key="ranged", Range=f"bytes={size}-")
    assert client_error(e)[:2] == (416, "InvalidRange")


def test_range_reads_across_parts(cos, enc, multipart_object):
    key, parts, _ = multipart_object
    whole = b"".join(parts)
    bounds = []
    at = 0
    for p in parts[:-1]:
        at += len(p)
        bounds.append(at)
    # Part boundaries, and the segment boundaries right around them.
    ranges = _ranges_across(bounds, len(whole)) + [(bounds[0] - SEG, bounds[2] + 500), (SEG * 80 - 1, SEG * 80)]
    for lo, hi in ranges:
        got = cos.get_object(Bucket=enc, Key=key, Range=f"bytes={lo}-{hi}")
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{len(whole)}"
        assert got["Body"].read() == whole[lo:hi + 1], (lo, hi)
    assert body_of(cos, enc, key, Range="bytes=-1500") == whole[-1500:]


# -- copies between encrypted and plain buckets --------------------------------------------------


@pytest.fixture(scope="module")
def enc2(cos, kp, inst, authorization) -> tuple[str, dict]:
    """A second encrypted bucket, under a root key of its own."""
    key = sdk_root_key(kp, inst)
    return create_kp_bucket(cos, key["crn"]), key


@pytest.mark.parametrize("direction", ["enc-to-plain", "plain-to-enc", "enc-to-enc-other-key",
                                       "enc-to-same-bucket"])
def test_copy_object(cos, hmac, enc, enc2, plain, direction):
    data = pattern(3 * SEG + 99, direction)
    src_bucket, dst_bucket = {
        "enc-to-plain": (enc, plain),
        "plain-to-enc": (plain, enc),
        "enc-to-enc-other-key": (enc, enc2[0]),
        "enc-to-same-bucket": (enc, enc),
    }[direction]
    src_key, dst_key = f"copy-src-{direction}", f"copy-dst-{direction}"
    cos.put_object(Bucket=src_bucket, Key=src_key, Body=data, Metadata={"origin": direction})
    out = hmac.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": src_key})
    assert out["CopyObjectResult"]["ETag"] == quoted_md5(data)
    got = cos.get_object(Bucket=dst_bucket, Key=dst_key)
    assert got["Body"].read() == data
    assert got["ETag"] == quoted_md5(data)
    assert got["Metadata"] == {"origin": direction}
    assert body_of(cos, dst_bucket, dst_key, Range=f"bytes={SEG - 2}-{SEG + 2}") == data[SEG - 2:SEG + 3]
    # The source is untouched.
    assert body_of(cos, src_bucket, src_key) == data


def test_copy_of_a_multipart_object_into_plain(cos, enc, plain, multipart_object):
    key, parts, _ = multipart_object
    out = cos.copy_object(Bucket=plain, Key="multi-copy", CopySource={"Bucket": enc, "Key": key})
    whole = b"".join(parts)
    assert body_of(cos, plain, "multi-copy") == whole
    assert out["CopyObjectResult"]["ETag"].strip('"') in (hashlib.md5(whole).hexdigest(),
                                                         multipart_etag(parts).strip('"'))


@pytest.mark.parametrize("direction", ["enc-to-plain", "plain-to-enc", "enc-to-enc-other-key"])
def test_upload_part_copy(cos, enc, enc2, plain, direction):
    src_bucket, dst_bucket = {
        "enc-to-plain": (enc, plain),
        "plain-to-enc": (plain, enc),
        "enc-to-enc-other-key": (enc, enc2[0]),
    }[direction]
    src = pattern(6 * MiB + 333, "upc-" + direction)
    cos.put_object(Bucket=src_bucket, Key=f"upc-src-{direction}", Body=src)
    key = f"upc-dst-{direction}"
    srcref = {"Bucket": src_bucket, "Key": f"upc-src-{direction}"}
    up = cos.create_multipart_upload(Bucket=dst_bucket, Key=key)
    uploaded = pattern(5 * MiB, "upc-uploaded")
    # Ranges that start and end inside segments; the small one is the last part.
    lo, hi = SEG + 5, SEG + 5 + 5 * MiB - 1
    lo2, hi2 = 3 * SEG - 7, 3 * SEG + 200_000
    copied, tail = src[lo:hi + 1], src[lo2:hi2 + 1]
    r1 = cos.upload_part(Bucket=dst_bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=uploaded)
    r2 = cos.upload_part_copy(Bucket=dst_bucket, Key=key, UploadId=up["UploadId"], PartNumber=2,
                              CopySource=srcref, CopySourceRange=f"bytes={lo}-{hi}")
    assert r2["CopyPartResult"]["ETag"] == quoted_md5(copied)
    r3 = cos.upload_part_copy(Bucket=dst_bucket, Key=key, UploadId=up["UploadId"], PartNumber=3,
                              CopySource=srcref, CopySourceRange=f"bytes={lo2}-{hi2}")
    assert r3["CopyPartResult"]["ETag"] == quoted_md5(tail)
    parts = [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
             {"PartNumber": 3, "ETag": r3["CopyPartResult"]["ETag"]}]
    fin = cos.complete_multipart_upload(Bucket=dst_bucket, Key=key, UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts})
    assert fin["ETag"] == multipart_etag([uploaded, copied, tail])
    whole = uploaded + copied + tail
    assert body_of(cos, dst_bucket, key) == whole
    edge = 2 * 5 * MiB - SEG // 2
    assert body_of(cos, dst_bucket, key, Range=f"bytes={edge}-{edge + SEG}") == whole[edge:edge + SEG + 1]


# -- conditional requests, metadata ----------------------------------------------------------


def test_conditional_gets(cos, hmac, enc):
    data = pattern(SEG + 1, "cond")
    etag = cos.put_object(Bucket=enc, Key="cond", Body=data)["ETag"]
    assert etag == quoted_md5(data)
    last_modified = cos.head_object(Bucket=enc, Key="cond")["LastModified"]
    import datetime as dt

    past = last_modified - dt.timedelta(days=1)
    future = last_modified + dt.timedelta(days=1)
    assert body_of(hmac, enc, "cond", IfMatch=etag) == data
    assert body_of(hmac, enc, "cond", IfNoneMatch='"0123456789abcdef0123456789abcdef"') == data
    assert body_of(hmac, enc, "cond", IfModifiedSince=past) == data
    assert body_of(hmac, enc, "cond", IfUnmodifiedSince=future) == data
    assert body_of(hmac, enc, "cond", IfMatch=etag, Range="bytes=10-20") == data[10:21]
    for kw, status in ((dict(IfMatch='"0123456789abcdef0123456789abcdef"'), 412),
                       (dict(IfUnmodifiedSince=past), 412),
                       (dict(IfNoneMatch=etag), 304),
                       (dict(IfModifiedSince=future), 304)):
        with pytest.raises(ClientError) as e:
            hmac.get_object(Bucket=enc, Key="cond", **kw)
        assert client_error(e)[0] == status, kw
        with pytest.raises(ClientError) as e:
            cos.head_object(Bucket=enc, Key="cond", **kw)
        assert client_error(e)[0] == status, kw


def test_conditional_put(srv, cos, enc):
    data = pattern(100, "cond-put")
    etag = cos.put_object(Bucket=enc, Key="cond-put", Body=data)["ETag"]
    r = signed_request(srv, "PUT", f"/{enc}/cond-put", headers={"If-None-Match": "*"}, body=b"new")
    assert r.status_code == 412 and s3_error_code(r) == "PreconditionFailed", r.text[:300]
    r = signed_request(srv, "PUT", f"/{enc}/cond-put", headers={"If-Match": '"0123456789abcdef0123456789abcdef"'},
                       body=b"new")
    assert r.status_code == 412, r.text[:300]
    assert body_of(cos, enc, "cond-put") == data
    r = signed_request(srv, "PUT", f"/{enc}/cond-put", headers={"If-Match": etag}, body=b"new")
    assert r.status_code == 200, r.text[:300]
    assert body_of(cos, enc, "cond-put") == b"new"


def test_user_metadata_and_headers(cos, hmac, enc):
    data = pattern(2 * SEG, "meta")
    cos.put_object(Bucket=enc, Key="meta", Body=data, Metadata={"color": "blue", "x-mixed": "Mixed Case Value"},
                   ContentType="application/x-test", ContentDisposition="attachment; filename=a.bin",
                   CacheControl="no-store", ContentLanguage="de")
    for client in (cos, hmac):
        head = client.head_object(Bucket=enc, Key="meta")
        assert head["Metadata"] == {"color": "blue", "x-mixed": "Mixed Case Value"}
        assert head["ContentType"] == "application/x-test"
        assert head["ContentDisposition"] == "attachment; filename=a.bin"
        assert head["CacheControl"] == "no-store" and head["ContentLanguage"] == "de"
        got = client.get_object(Bucket=enc, Key="meta")
        assert got["Metadata"] == {"color": "blue", "x-mixed": "Mixed Case Value"}
        assert got["Body"].read() == data
    # Replacing the metadata by a self-copy keeps the bytes.
    cos.copy_object(Bucket=enc, Key="meta", CopySource={"Bucket": enc, "Key": "meta"},
                    Metadata={"color": "red"}, MetadataDirective="REPLACE")
    got = cos.get_object(Bucket=enc, Key="meta")
    assert got["Metadata"] == {"color": "red"} and got["Body"].read() == data
    assert got["ETag"] == quoted_md5(data)


# -- per-object server-side encryption --------------------------------------------------------


@pytest.mark.parametrize("which", ["encrypted", "plain"])
def test_aws_kms_is_refused(cos, hmac, enc, plain, root_key, which):
    bucket = enc if which == "encrypted" else plain
    for kw in ({"ServerSideEncryption": "aws:kms"},
               {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": root_key["crn"]}):
        for client in (cos, hmac):
            with pytest.raises(ClientError) as e:
                client.put_object(Bucket=bucket, Key="kms-obj", Body=b"per-object kms key", **kw)
            assert client_error(e)[:2] == (400, "InvalidArgument"), kw
        with pytest.raises(ClientError) as e:
            cos.create_multipart_upload(Bucket=bucket, Key="kms-obj", **kw)
        assert client_error(e)[:2] == (400, "InvalidArgument"), kw
    with pytest.raises(ClientError) as e:
        cos.head_object(Bucket=bucket, Key="kms-obj")
    assert client_error(e)[0] == 404
    assert "Uploads" not in cos.list_multipart_uploads(Bucket=bucket, Prefix="kms-obj")


def test_aes256_is_accepted_on_encrypted_buckets(cos, hmac, enc):
    data = pattern(SEG + 3, "aes256")
    for client in (cos, hmac):
        put = client.put_object(Bucket=enc, Key="aes256", Body=data, ServerSideEncryption="AES256")
        assert put["ETag"] == quoted_md5(data)
        assert body_of(client, enc, "aes256") == data


# -- nothing in the clear on disk ------------------------------------------------------------


def test_no_plaintext_on_disk(srv, cos, hmac, enc, enc2, plain):
    token = b"COFFER-CANARY-" + uuid.uuid4().hex.encode() + b"|"
    canary = (token * (((3 * SEG) // len(token)) + 2))[:3 * SEG + 11]
    # A single PUT, a multipart upload, a copy into another encrypted bucket and a part copy.
    cos.put_object(Bucket=enc, Key="canary-single", Body=canary)
    up = hmac.create_multipart_upload(Bucket=enc, Key="canary-multi")
    big = (token * ((5 * MiB) // len(token) + 1))[:5 * MiB]
    p1 = hmac.upload_part(Bucket=enc, Key="canary-multi", UploadId=up["UploadId"], PartNumber=1, Body=big)
    p2 = hmac.upload_part(Bucket=enc, Key="canary-multi", UploadId=up["UploadId"], PartNumber=2, Body=canary)
    hmac.complete_multipart_upload(Bucket=enc, Key="canary-multi", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    cos.copy_object(Bucket=enc2[0], Key="canary-copy", CopySource={"Bucket": enc, "Key": "canary-single"})
    up2 = cos.create_multipart_upload(Bucket=enc2[0], Key="canary-part-copy")
    pc = cos.upload_part_copy(Bucket=enc2[0], Key="canary-part-copy", UploadId=up2["UploadId"], PartNumber=1,
                              CopySource={"Bucket": enc, "Key": "canary-multi"})
    cos.complete_multipart_upload(Bucket=enc2[0], Key="canary-part-copy", UploadId=up2["UploadId"],
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": pc["CopyPartResult"]["ETag"]}]})
    # Small objects are kept inline in the metadata file: sealed there too.
    small = (token * 60)[:3000]
    cos.put_object(Bucket=enc, Key="canary-small", Body=small)
    cos.copy_object(Bucket=enc2[0], Key="canary-small-copy", CopySource={"Bucket": enc, "Key": "canary-small"})
    assert body_of(cos, enc2[0], "canary-small-copy") == small
    # An upload left unfinished holds its parts on disk too.
    up3 = cos.create_multipart_upload(Bucket=enc, Key="canary-pending")
    cos.upload_part(Bucket=enc, Key="canary-pending", UploadId=up3["UploadId"], PartNumber=1, Body=canary)
    assert body_of(cos, enc, "canary-single") == canary
    assert body_of(cos, enc2[0], "canary-part-copy") == big + canary

    # The controls: the same kind of bytes in a plain bucket are found by the same search, in a
    # blob and (a small object) in its metadata record, raw after the record's JSON.
    control = b"COFFER-CONTROL-" + uuid.uuid4().hex.encode() + b"|"
    cos.put_object(Bucket=plain, Key="control", Body=control * 400)
    small_control = b"COFFER-SMALL-CONTROL-" + uuid.uuid4().hex.encode() + b"|"
    cos.put_object(Bucket=plain, Key="small-control", Body=small_control * 40)

    files = data_dir_files(srv)
    assert any(p.name == "meta.redb" for p in files), files
    assert files_containing(files, control), "the search finds plaintext stored in the clear"
    assert [p.name for p in files_containing(files, small_control * 2)] == ["meta.redb"], \
        "the search finds plaintext stored inline"
    for needle in (token, canary[:64], canary[SEG:SEG + 32], big[-40:]):
        hits = files_containing(files, needle)
        assert hits == [], f"plaintext {needle[:24]!r}... found in {hits}"
    for needle in base64_forms(token * 2):
        hits = files_containing(files, needle)
        assert hits == [], f"base64 of plaintext found in {hits}"


def base64_forms(needle: bytes) -> list[bytes]:
    """What `needle` looks like inside base64-encoded data, at each of the three alignments."""
    forms = []
    for k in range(3):
        m = (len(needle) - k) // 3
        forms.append(base64.b64encode(needle[k:k + 3 * m]))
    return forms


# -- the registration follows the bucket --------------------------------------------------------


def test_bucket_deletion_removes_the_registration(srv, cos, kp, inst, raw, authorization):
    key = sdk_root_key(kp, inst)
    a = create_kp_bucket(cos, key["crn"])
    b = create_kp_bucket(cos, key["crn"])
    assert registered_buckets(raw, key["id"]) == sorted([cos_bucket_crn(srv, a), cos_bucket_crn(srv, b)])
    sdk_regs = kp_json(kp.get_registrations(id=key["id"], bluemix_instance=inst))["resources"]
    assert sorted(r["resourceCrn"] for r in sdk_regs) == registered_buckets(raw, key["id"])

    # A key protecting buckets cannot be deleted without force.
    assert_kp_error(kp_raises(kp.delete_key, id=key["id"], bluemix_instance=inst), 409, "PROTECTED_RESOURCE_ERR")

    cos.put_object(Bucket=a, Key="x", Body=b"x")
    with pytest.raises(ClientError) as e:
        cos.delete_bucket(Bucket=a)
    assert client_error(e)[:2] == (409, "BucketNotEmpty")
    assert registered_buckets(raw, key["id"]) == sorted([cos_bucket_crn(srv, a), cos_bucket_crn(srv, b)])
    cos.delete_object(Bucket=a, Key="x")
    cos.delete_bucket(Bucket=a)
    assert registered_buckets(raw, key["id"]) == [cos_bucket_crn(srv, b)]
    assert_kp_error(kp_raises(kp.delete_key, id=key["id"], bluemix_instance=inst), 409, "PROTECTED_RESOURCE_ERR")
    cos.delete_bucket(Bucket=b)
    assert registered_buckets(raw, key["id"]) == []
    # Nothing protected any more: an ordinary delete.
    assert kp.delete_key(id=key["id"], bluemix_instance=inst).get_status_code() == 200


def test_a_bucket_name_reused_with_another_key(srv, cos, kp, inst, raw, authorization):
    first, second = sdk_root_key(kp, inst), sdk_root_key(kp, inst)
    name = create_kp_bucket(cos, first["crn"])
    cos.put_object(Bucket=name, Key="k", Body=b"one")
    cos.delete_object(Bucket=name, Key="k")
    cos.delete_bucket(Bucket=name)
    create_kp_bucket(cos, second["crn"], name)
    assert_kp_head(cos, name, second["crn"])
    assert registered_buckets(raw, first["id"]) == []
    assert registered_buckets(raw, second["id"]) == [cos_bucket_crn(srv, name)]
    cos.put_object(Bucket=name, Key="k", Body=b"two")
    assert body_of(cos, name, "k") == b"two"
