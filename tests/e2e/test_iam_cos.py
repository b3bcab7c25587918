"""The S3 plane under IAM: ibm_boto3 in oauth mode (API key -> bearer token) and with HMAC keys
made through `/v1/hmac_keys`, and the IBM COS role matrix (spec §3.1-3.2)."""

from __future__ import annotations

import io
import os

import pytest
import requests
from ibm_boto3.s3.transfer import TransferConfig
from ibm_botocore.exceptions import ClientError as IbmClientError

from conftest import (
    MiB,
    IamAdmin,
    assert_raw_error,
    delete_bucket,
    fetch_token,
    ibm_cos_client,
    ibm_hmac_client,
    md5_hex,
    unique_name,
)

BODY = b"the object every role tries to read\n"
SOURCE_BODY = b"the source of every copy\n"


def error_of(exc) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response.get("Error", {}).get("Code", "")


def assert_denied(excinfo) -> None:
    status, code = error_of(excinfo.value)
    assert status == 403, f"expected 403 AccessDenied, got {status} {code}: {excinfo.value}"
    # HEAD answers carry no body, so no code.
    op = excinfo.value.operation_name
    if op not in ("HeadBucket", "HeadObject"):
        assert code == "AccessDenied", f"expected 403 AccessDenied, got {status} {code}"


def exists(admin, bucket: str, key: str | None = None) -> bool:
    try:
        if key is None:
            admin.head_bucket(Bucket=bucket)
        else:
            admin.head_object(Bucket=bucket, Key=key)
        return True
    except Exception as e:  # botocore ClientError of the admin client
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


# -- ibm_boto3, oauth mode ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth_admin(server):
    return ibm_cos_client(server, server.bootstrap["admin_api_key"])


def test_oauth_bucket_and_object_lifecycle(server, oauth_admin, s3):
    name = unique_name("oauth")
    try:
        r = oauth_admin.create_bucket(Bucket=name)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        names = [b["Name"] for b in oauth_admin.list_buckets()["Buckets"]]
        assert name in names
        # Only this instance's buckets: the same set the admin's HMAC key (of this instance) sees.
        assert sorted(names) == sorted(b["Name"] for b in s3.list_buckets()["Buckets"])

        oauth_admin.put_object(Bucket=name, Key="hello.txt", Body=b"hello, oauth")
        got = oauth_admin.get_object(Bucket=name, Key="hello.txt")
        assert got["Body"].read() == b"hello, oauth"
        assert s3.get_object(Bucket=name, Key="hello.txt")["Body"].read() == b"hello, oauth"

        data = os.urandom(11 * MiB)
        cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
        oauth_admin.upload_fileobj(io.BytesIO(data), name, "big.bin", Config=cfg)
        head = oauth_admin.head_object(Bucket=name, Key="big.bin")
        assert head["ContentLength"] == len(data)
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
        out = io.BytesIO()
        oauth_admin.download_fileobj(name, "big.bin", out)
        assert md5_hex(out.getvalue()) == md5_hex(data)

        for key in ("hello.txt", "big.bin"):
            assert oauth_admin.delete_object(Bucket=name, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert oauth_admin.list_objects_v2(Bucket=name).get("KeyCount") == 0
        assert oauth_admin.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert not exists(s3, name)
    finally:
        delete_bucket(s3, name)


def test_oauth_instance_header_accepts_crn(server, iam: IamAdmin, bucket):
    token = iam.token
    r = requests.get(server.endpoint + "/", timeout=10,
                     headers={"Authorization": f"Bearer {token}", "ibm-service-instance-id": iam.cos_instance_crn})
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    assert f"<Name>{bucket}</Name>" in r.text


def test_oauth_list_and_create_need_instance_header(server, iam: IamAdmin, s3):
    token = iam.token
    r = requests.get(server.endpoint + "/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert_raw_error(r, 400, "InvalidArgument")
    name = unique_name("nohdr")
    r = requests.put(f"{server.endpoint}/{name}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert_raw_error(r, 400, "InvalidArgument")
    assert not exists(s3, name)


def test_oauth_unknown_instance_is_denied(server, iam: IamAdmin, s3):
    token = iam.token
    other = "11111111-2222-4333-8444-555555555555"
    r = requests.get(server.endpoint + "/", timeout=10,
                     headers={"Authorization": f"Bearer {token}", "ibm-service-instance-id": other})
    assert_raw_error(r, 403, "AccessDenied")
    name = unique_name("noinst")
    r = requests.put(f"{server.endpoint}/{name}", timeout=10,
                     headers={"Authorization": f"Bearer {token}", "ibm-service-instance-id": other})
    assert_raw_error(r, 403, "AccessDenied")
    assert not exists(s3, name)


# -- ibm_boto3 with HMAC keys of a service ID --------------------------------------------------


def test_hmac_keys_of_a_service_id(server, iam: IamAdmin, s3):
    sid = iam.create_service_id()
    iam.grant(sid["iam_id"], "Writer")
    # instance_id may be the GUID or the CRN.
    key = iam.create_hmac(sid["iam_id"], iam.cos_instance_crn)
    assert len(key["access_key_id"]) == 32 and int(key["access_key_id"], 16) >= 0, key
    assert len(key["secret_access_key"]) == 48, key
    assert key["iam_id"] == sid["iam_id"]
    assert key["instance_id"] in (iam.cos_instance_id, iam.cos_instance_crn), key
    listed = iam.call("GET", "/v1/hmac_keys", expect=200).json()["hmac_keys"]
    mine = [k for k in listed if k["access_key_id"] == key["access_key_id"]]
    assert len(mine) == 1 and "secret_access_key" not in mine[0], mine

    c = ibm_hmac_client(server, key["access_key_id"], key["secret_access_key"])
    name = unique_name("svc-hmac")
    try:
        c.create_bucket(Bucket=name)
        assert name in [b["Name"] for b in c.list_buckets()["Buckets"]]
        c.put_object(Bucket=name, Key="k", Body=b"from a service id")
        assert c.get_object(Bucket=name, Key="k")["Body"].read() == b"from a service id"
        c.delete_object(Bucket=name, Key="k")
        c.delete_bucket(Bucket=name)
        assert not exists(s3, name)
    finally:
        delete_bucket(s3, name)

    # Once the key is deleted, it is unknown to the S3 plane.
    iam.call("DELETE", f"/v1/hmac_keys/{key['access_key_id']}", expect=204)
    with pytest.raises(IbmClientError) as e:
        c.list_buckets()
    assert error_of(e.value) == (403, "InvalidAccessKeyId")


def test_hmac_key_for_unknown_instance_refused(iam: IamAdmin):
    sid = iam.create_service_id()
    r = iam.call("POST", "/v1/hmac_keys",
                 json={"iam_id": sid["iam_id"], "instance_id": "11111111-2222-4333-8444-555555555555"})
    assert 400 <= r.status_code < 500, f"{r.status_code} {r.text[:300]}"
    body = r.json()
    assert body.get("status_code") == r.status_code and body.get("errors"), body


def test_hmac_key_stays_in_its_instance(server, iam: IamAdmin, s3):
    """The credential's instance is the only one it reaches: naming another instance is denied."""
    sid = iam.create_service_id()
    iam.grant(sid["iam_id"], "Manager")
    key = iam.create_hmac(sid["iam_id"])
    c = ibm_hmac_client(server, key["access_key_id"], key["secret_access_key"])
    other = "11111111-2222-4333-8444-555555555555"
    with pytest.raises(IbmClientError) as e:
        c.list_buckets(IBMServiceInstanceId=other)
    assert_denied(e)
    name = unique_name("otherinst")
    with pytest.raises(IbmClientError) as e:
        c.create_bucket(Bucket=name, IBMServiceInstanceId=other)
    assert_denied(e)
    assert not exists(s3, name)
    # Naming its own instance is fine.
    assert c.list_buckets(IBMServiceInstanceId=iam.cos_instance_id)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_hmac_key_cannot_reach_another_instances_buckets():
    pytest.skip("coffer has no API to create a second COS instance yet, so a bucket of another "
                "instance cannot be made; see test_hmac_key_stays_in_its_instance for what can be checked")


# -- the role matrix ---------------------------------------------------------------------------

ROLES = ["ObjectReader", "ContentReader", "Reader", "ObjectWriter", "Writer", "Manager", "none"]
OPS = ["ListBuckets", "CreateBucket", "HeadBucket", "GetBucketLocation", "ListObjectsV2", "PutObject",
       "GetObject", "HeadObject", "DeleteObject", "CreateMultipartUpload", "ListMultipartUploads",
       "DeleteBucket", "CopyObject"]

_OBJECT_READ = {"GetObject", "HeadObject"}
_CONTENT_READ = _OBJECT_READ | {"ListObjectsV2", "ListMultipartUploads"}
_READER = _CONTENT_READ | {"ListBuckets", "HeadBucket", "GetBucketLocation"}
_OBJECT_WRITE = {"PutObject", "CreateMultipartUpload", "CopyObject"}
_WRITER = _READER | _OBJECT_WRITE | {"CreateBucket", "DeleteBucket", "DeleteObject"}
ALLOWED = {
    "ObjectReader": _OBJECT_READ,
    "ContentReader": _CONTENT_READ,
    "Reader": _READER,
    "ObjectWriter": _OBJECT_WRITE,
    "Writer": _WRITER,
    "Manager": _WRITER,
    "none": set(),
}
assert all(ALLOWED[r] <= set(OPS) for r in ROLES)


@pytest.fixture(scope="module")
def matrix_env(server, iam: IamAdmin, s3):
    """A bucket with one object (what the roles act on) and a copy-source bucket."""
    target, source = unique_name("matrix"), unique_name("matrix-src")
    s3.create_bucket(Bucket=target)
    s3.create_bucket(Bucket=source)
    s3.put_object(Bucket=target, Key="existing", Body=BODY)
    s3.put_object(Bucket=source, Key="src", Body=SOURCE_BODY)
    yield {"bucket": target, "source": source}
    delete_bucket(s3, target)
    delete_bucket(s3, source)


@pytest.fixture(scope="module")
def principals(server, iam: IamAdmin, matrix_env):
    """One identity per role (users and service IDs alternately), made on first use: an API key,
    an HMAC key, the role on the COS instance, and ObjectReader on the copy-source bucket (so
    CopyObject is decided by the destination role)."""
    made = {}

    def get(role: str) -> dict:
        if role not in made:
            kind = "user" if ROLES.index(role) % 2 == 0 else "serviceid"
            ident = iam.identity(kind)
            if role != "none":
                iam.grant(ident["iam_id"], role)
                iam.grant(ident["iam_id"], "ObjectReader", bucket=matrix_env["source"])
            ident["hmac"] = iam.create_hmac(ident["iam_id"])
            made[role] = ident
        return made[role]

    return get


@pytest.fixture(scope="module")
def clients(server, principals):
    made = {}

    def get(mode: str, role: str):
        if (mode, role) not in made:
            p = principals(role)
            if mode == "oauth":
                made[(mode, role)] = ibm_cos_client(server, p["apikey"])
            else:
                made[(mode, role)] = ibm_hmac_client(server, p["hmac"]["access_key_id"],
                                                     p["hmac"]["secret_access_key"])
        return made[(mode, role)]

    return get


def run_op(op: str, c, admin, env, cleanup: list):
    """Performs `op` with client `c`; returns a check to run when it was allowed, and one for when
    it was denied (both look at the server's state with the admin's client)."""
    b, src = env["bucket"], env["source"]
    if op == "ListBuckets":
        names = [x["Name"] for x in c.list_buckets()["Buckets"]]
        assert b in names and src in names
    elif op == "CreateBucket":
        name = unique_name("mx-new")
        cleanup.append(lambda: delete_bucket(admin, name))
        try:
            c.create_bucket(Bucket=name)
        except IbmClientError:
            assert not exists(admin, name), "a refused CreateBucket created the bucket"
            raise
        assert exists(admin, name)
    elif op == "HeadBucket":
        assert c.head_bucket(Bucket=b)["ResponseMetadata"]["HTTPStatusCode"] == 200
    elif op == "GetBucketLocation":
        c.get_bucket_location(Bucket=b)
    elif op == "ListObjectsV2":
        assert "existing" in [o["Key"] for o in c.list_objects_v2(Bucket=b).get("Contents", [])]
    elif op == "PutObject":
        key = unique_name("mx-put")
        try:
            c.put_object(Bucket=b, Key=key, Body=b"written")
        except IbmClientError:
            assert not exists(admin, b, key), "a refused PutObject stored the object"
            raise
        assert admin.get_object(Bucket=b, Key=key)["Body"].read() == b"written"
    elif op == "GetObject":
        assert c.get_object(Bucket=b, Key="existing")["Body"].read() == BODY
    elif op == "HeadObject":
        assert c.head_object(Bucket=b, Key="existing")["ContentLength"] == len(BODY)
    elif op == "DeleteObject":
        key = unique_name("mx-del")
        admin.put_object(Bucket=b, Key=key, Body=b"doomed")
        try:
            c.delete_object(Bucket=b, Key=key)
        except IbmClientError:
            assert exists(admin, b, key), "a refused DeleteObject deleted the object"
            raise
        assert not exists(admin, b, key)
    elif op == "CreateMultipartUpload":
        key = unique_name("mx-mpu")
        upload = c.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
        cleanup.append(lambda: admin.abort_multipart_upload(Bucket=b, Key=key, UploadId=upload))
        listed = admin.list_multipart_uploads(Bucket=b).get("Uploads", [])
        assert upload in [u["UploadId"] for u in listed]
    elif op == "ListMultipartUploads":
        assert c.list_multipart_uploads(Bucket=b)["Bucket"] == b
    elif op == "DeleteBucket":
        name = unique_name("mx-del")
        admin.create_bucket(Bucket=name)
        cleanup.append(lambda: delete_bucket(admin, name))
        try:
            c.delete_bucket(Bucket=name)
        except IbmClientError:
            assert exists(admin, name), "a refused DeleteBucket deleted the bucket"
            raise
        assert not exists(admin, name)
    elif op == "CopyObject":
        key = unique_name("mx-copy")
        try:
            c.copy_object(Bucket=b, Key=key, CopySource={"Bucket": src, "Key": "src"})
        except IbmClientError:
            assert not exists(admin, b, key), "a refused CopyObject stored the object"
            raise
        assert admin.get_object(Bucket=b, Key=key)["Body"].read() == SOURCE_BODY
    else:
        raise AssertionError(op)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", ["oauth", "hmac"])
def test_role_matrix(mode, role, op, clients, matrix_env, s3):
    c = clients(mode, role)
    cleanup: list = []
    try:
        if op in ALLOWED[role]:
            try:
                run_op(op, c, s3, matrix_env, cleanup)
            except IbmClientError as e:
                status, code = error_of(e)
                pytest.fail(f"{role} may {op}, but got {status} {code}: {e}")
        else:
            with pytest.raises(IbmClientError) as e:
                run_op(op, c, s3, matrix_env, cleanup)
            assert_denied(e)
    finally:
        for undo in cleanup:
            try:
                undo()
            except Exception:
                pass


# -- beyond the matrix -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["oauth", "hmac"])
def test_no_policy_means_access_denied(server, iam: IamAdmin, matrix_env, mode):
    ident = iam.identity("user")
    if mode == "oauth":
        c = ibm_cos_client(server, ident["apikey"])
    else:
        key = iam.create_hmac(ident["iam_id"])
        c = ibm_hmac_client(server, key["access_key_id"], key["secret_access_key"])
    with pytest.raises(IbmClientError) as e:
        c.list_buckets()
    assert error_of(e.value) == (403, "AccessDenied"), e.value
    with pytest.raises(IbmClientError) as e:
        c.get_object(Bucket=matrix_env["bucket"], Key="existing")
    assert error_of(e.value) == (403, "AccessDenied"), e.value


@pytest.mark.parametrize("mode", ["oauth", "hmac"])
def test_bucket_scoped_policy(server, iam: IamAdmin, s3, mode):
    """Writer on one bucket: everything a Writer does there, nothing in the bucket next to it."""
    mine, other = unique_name("scoped"), unique_name("unscoped")
    s3.create_bucket(Bucket=mine)
    s3.create_bucket(Bucket=other)
    try:
        s3.put_object(Bucket=mine, Key="a", Body=b"mine")
        s3.put_object(Bucket=other, Key="a", Body=b"other")
        ident = iam.identity("serviceid")
        iam.grant(ident["iam_id"], "Writer", bucket=mine)
        if mode == "oauth":
            c = ibm_cos_client(server, ident["apikey"])
        else:
            key = iam.create_hmac(ident["iam_id"])
            c = ibm_hmac_client(server, key["access_key_id"], key["secret_access_key"])

        assert c.get_object(Bucket=mine, Key="a")["Body"].read() == b"mine"
        c.put_object(Bucket=mine, Key="b", Body=b"new")
        assert [o["Key"] for o in c.list_objects_v2(Bucket=mine)["Contents"]] == ["a", "b"]
        c.head_bucket(Bucket=mine)
        c.delete_object(Bucket=mine, Key="b")

        for call in (
            lambda: c.get_object(Bucket=other, Key="a"),
            lambda: c.put_object(Bucket=other, Key="b", Body=b"x"),
            lambda: c.list_objects_v2(Bucket=other),
            lambda: c.delete_object(Bucket=other, Key="a"),
            lambda: c.copy_object(Bucket=mine, Key="c", CopySource={"Bucket": other, "Key": "a"}),
            lambda: c.copy_object(Bucket=other, Key="c", CopySource={"Bucket": mine, "Key": "a"}),
        ):
            with pytest.raises(IbmClientError) as e:
                call()
            assert_denied(e)
        assert s3.get_object(Bucket=other, Key="a")["Body"].read() == b"other"
        assert not exists(s3, other, "b") and not exists(s3, other, "c") and not exists(s3, mine, "c")
        # The instance itself is not the bucket: no listing of all buckets.
        with pytest.raises(IbmClientError) as e:
            c.list_buckets()
        assert_denied(e)
    finally:
        delete_bucket(s3, mine)
        delete_bucket(s3, other)


def test_copy_needs_read_on_the_source(server, iam: IamAdmin, matrix_env, s3):
    """ObjectWriter on the instance only (no read anywhere): it may put, but not copy, since a
    copy reads its source."""
    ident = iam.identity("serviceid")
    iam.grant(ident["iam_id"], "ObjectWriter")
    key = iam.create_hmac(ident["iam_id"])
    c = ibm_hmac_client(server, key["access_key_id"], key["secret_access_key"])
    b = matrix_env["bucket"]
    c.put_object(Bucket=b, Key="ow-put", Body=b"ok")
    with pytest.raises(IbmClientError) as e:
        c.copy_object(Bucket=b, Key="ow-copy", CopySource={"Bucket": b, "Key": "existing"})
    assert_denied(e)
    assert not exists(s3, b, "ow-copy")


def test_object_writer_can_upload_multipart_and_abort(server, iam: IamAdmin, matrix_env, s3):
    """ObjectWriter: a whole multipart upload and an abort, but not listing the parts."""
    ident = iam.identity("user")
    iam.grant(ident["iam_id"], "ObjectWriter")
    key = iam.create_hmac(ident["iam_id"])
    c = ibm_hmac_client(server, key["access_key_id"], key["secret_access_key"])
    b = matrix_env["bucket"]
    data = os.urandom(6 * MiB)
    c.upload_fileobj(io.BytesIO(data), b, "ow-multipart",
                     Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                                           max_concurrency=1))
    assert s3.head_object(Bucket=b, Key="ow-multipart")["ContentLength"] == len(data)
    upload = c.create_multipart_upload(Bucket=b, Key="ow-aborted")["UploadId"]
    c.upload_part(Bucket=b, Key="ow-aborted", UploadId=upload, PartNumber=1, Body=b"part")
    with pytest.raises(IbmClientError) as e:
        c.list_parts(Bucket=b, Key="ow-aborted", UploadId=upload)
    assert_denied(e)
    c.abort_multipart_upload(Bucket=b, Key="ow-aborted", UploadId=upload)
    assert upload not in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])]


def test_token_of_a_deleted_identity_is_refused(server, iam: IamAdmin, matrix_env):
    """A token outlives nothing: once the user is gone, its token no longer opens the S3 plane."""
    ident = iam.identity("user")
    iam.grant(ident["iam_id"], "Reader")
    token = fetch_token(server, ident["apikey"])["access_token"]
    url = f"{server.endpoint}/{matrix_env['bucket']}/existing"
    r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200 and r.content == BODY, f"{r.status_code} {r.text[:300]}"
    iam.call("DELETE", f"/v1/users/{ident['iam_id']}", expect=204)
    r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code in (401, 403), f"{r.status_code} {r.text[:300]}"
