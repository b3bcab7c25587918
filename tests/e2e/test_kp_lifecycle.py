"""A root key's lifecycle as the buckets under it live it (spec §3.7, §4.10, §4.11, §6.3):
rotation rewraps the bucket key (objects old and new read back, the registration follows the new
version); disable refuses object reads and writes from the moment the KMS call returns and enable
brings them back; a (forced) delete refuses them while listing, deleting objects and deleting the
emptied bucket keep working; restore brings them back; purge is for good. Each change reaching a
bucket is an activity event `cloud-object-storage.bucket-key-state.update`.

Runs on a server of its own whose KMS timing rules are short (KP_LIFECYCLE_TIMINGS): a key can
be enabled, restored or purged right after the change before."""

from __future__ import annotations

import hashlib

import pytest
from ibm_botocore.exceptions import ClientError

from conftest import (
    KP_CRN_NOT_FOUND,
    KP_LIFECYCLE_TIMINGS,
    CofferServer,
    IamAdmin,
    KpRaw,
    assert_kp_error,
    activity_events,
    authorize_cos_on_kms,
    bucket_key_events,
    cos_bucket_crn,
    ibm_oauth_client,
    ibm_sigv4_client,
    kp_json,
    kp_key_body,
    kp_raises,
    kp_registrations,
    kp_sdk,
    quoted_md5,
    unique_name,
)

SEG = 64 * 1024
MiB = 1 << 20
KEY_STATE_ACTION = "cloud-object-storage.bucket-key-state.update"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = CofferServer(tmp_path_factory.mktemp("coffer-kp-lifecycle"), env=KP_LIFECYCLE_TIMINGS).start()
    yield s
    if s.running:
        s.stop()


@pytest.fixture(scope="module")
def inst(srv) -> str:
    return srv.bootstrap["kms_instance_id"]


@pytest.fixture(scope="module")
def authorized(srv, inst) -> dict:
    return authorize_cos_on_kms(IamAdmin(srv), inst)


@pytest.fixture
def kp(srv):
    """The keyprotect SDK (per test: a test may restart the server)."""
    return kp_sdk(srv)


@pytest.fixture
def raw(srv, inst) -> KpRaw:
    return KpRaw(srv, inst)


@pytest.fixture
def cos(srv):
    return ibm_oauth_client(srv, srv.bootstrap["admin_api_key"])


@pytest.fixture
def hmac(srv):
    return ibm_sigv4_client(srv)


@pytest.fixture(scope="module")
def plain(srv) -> str:
    name = unique_name("plain")
    ibm_sigv4_client(srv).create_bucket(Bucket=name)
    return name


def new_key(kp, inst) -> dict:
    resp = kp.create_key(bluemix_instance=inst, key_create_body=kp_key_body(unique_name("crk")))
    assert resp.get_status_code() == 201
    return kp_json(resp)["resources"][0]


def key_meta(kp, inst, key_id) -> dict:
    return kp_json(kp.get_key_metadata(id=key_id, bluemix_instance=inst))["resources"][0]


def new_bucket(client, crn: str) -> str:
    name = unique_name("kpl")
    client.create_bucket(Bucket=name, IBMSSEKPEncryptionAlgorithm="AES256", IBMSSEKPCustomerRootKeyCrn=crn)
    return name


def pattern(n: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


def status_of(excinfo) -> tuple[int, str]:
    r = excinfo.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r.get("Error", {}).get("Code", "")


def assert_denied(fn, *args, **kwargs) -> None:
    """403 AccessDenied (HEAD has no body: 403 alone)."""
    what = f"{getattr(fn, '__name__', fn)} {kwargs.get('Bucket', '')}/{kwargs.get('Key', '')}"
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        r = e.response
        status, code = r["ResponseMetadata"]["HTTPStatusCode"], r.get("Error", {}).get("Code", "")
    else:
        pytest.fail(f"{what}: expected 403 AccessDenied, but the request succeeded")
    assert status == 403, f"{what}: expected 403 AccessDenied, got {status} {code}"
    if code != "403":
        assert code == "AccessDenied", f"{what}: got {status} {code}"


def body_of(client, bucket, key, **kw) -> bytes:
    return client.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def key_versions_of_registrations(raw, key_id) -> dict[str, str]:
    return {r["resourceCrn"]: r["keyVersion"]["id"] for r in kp_registrations(raw, key_id)}


def events_of(srv, bucket: str) -> list[dict]:
    events = bucket_key_events(srv, bucket)
    for e in events:
        assert e["action"] == KEY_STATE_ACTION and e["target"]["name"] == bucket, e
    return events


def assert_event(event: dict, event_type: str) -> None:
    assert event["requestData"]["eventType"] == event_type, event
    state = event["responseData"]["adopterKeyState"]
    if event_type in ("rotate", "enable", "restore"):
        assert state == "DEK_ENABLED", event
    else:
        assert isinstance(state, str) and state.startswith("DEK_") and state != "DEK_ENABLED", event


class Filled:
    """An encrypted bucket with a few objects and a multipart upload whose first part is in."""

    def __init__(self, client, crn: str, tag: str):
        self.client = client
        self.bucket = new_bucket(client, crn)
        self.small = pattern(1000, tag + "-small")
        self.big = pattern(3 * SEG + 77, tag + "-big")
        client.put_object(Bucket=self.bucket, Key="small", Body=self.small)
        client.put_object(Bucket=self.bucket, Key="big", Body=self.big)
        self.part1 = pattern(5 * MiB, tag + "-part1")
        self.part2 = pattern(SEG + 1, tag + "-part2")
        self.upload = client.create_multipart_upload(Bucket=self.bucket, Key="multi")["UploadId"]
        r = client.upload_part(Bucket=self.bucket, Key="multi", UploadId=self.upload, PartNumber=1, Body=self.part1)
        self.etag1 = r["ETag"]

    def assert_readable(self, client=None) -> None:
        c = client or self.client
        assert body_of(c, self.bucket, "small") == self.small
        assert body_of(c, self.bucket, "big") == self.big
        assert body_of(c, self.bucket, "big", Range=f"bytes={SEG - 3}-{2 * SEG + 3}") == self.big[SEG - 3:2 * SEG + 4]
        assert c.head_object(Bucket=self.bucket, Key="big")["ETag"] == quoted_md5(self.big)

    def finish_upload(self, client=None) -> None:
        c = client or self.client
        r = c.upload_part(Bucket=self.bucket, Key="multi", UploadId=self.upload, PartNumber=2, Body=self.part2)
        c.complete_multipart_upload(Bucket=self.bucket, Key="multi", UploadId=self.upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": self.etag1}, {"PartNumber": 2, "ETag": r["ETag"]}]})
        assert body_of(c, self.bucket, "multi") == self.part1 + self.part2

    def assert_refused(self, client, plain: str) -> None:
        """Object reads and writes refused; listing, HEAD bucket and object deletes work."""
        b = self.bucket
        assert_denied(client.get_object, Bucket=b, Key="small")
        assert_denied(client.get_object, Bucket=b, Key="big", Range="bytes=0-10")
        assert_denied(client.head_object, Bucket=b, Key="big")
        assert_denied(client.put_object, Bucket=b, Key="new", Body=b"new bytes")
        assert_denied(client.put_object, Bucket=b, Key="small", Body=b"overwrite")
        assert_denied(client.copy_object, Bucket=plain, Key=f"out-{b}", CopySource={"Bucket": b, "Key": "small"})
        client.put_object(Bucket=plain, Key=f"in-{b}", Body=b"plain bytes")
        assert_denied(client.copy_object, Bucket=b, Key="in", CopySource={"Bucket": plain, "Key": f"in-{b}"})
        assert_denied(client.copy_object, Bucket=b, Key="dup", CopySource={"Bucket": b, "Key": "small"})
        assert_denied(client.create_multipart_upload, Bucket=b, Key="multi2")
        assert_denied(client.upload_part, Bucket=b, Key="multi", UploadId=self.upload, PartNumber=2,
                      Body=self.part2)
        assert_denied(client.upload_part_copy, Bucket=b, Key="multi", UploadId=self.upload, PartNumber=2,
                      CopySource={"Bucket": plain, "Key": f"in-{b}"})
        assert_denied(client.complete_multipart_upload, Bucket=b, Key="multi", UploadId=self.upload,
                      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": self.etag1}]})
        # Nothing was written, and what needs no data key still works.
        for listing in (client.list_objects(Bucket=b), client.list_objects_v2(Bucket=b)):
            assert sorted(o["Key"] for o in listing.get("Contents", [])) == ["big", "small"]
        head = client.head_bucket(Bucket=b)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 200 and head.get("IBMSSEKPEnabled") is True
        uploads = client.list_multipart_uploads(Bucket=b).get("Uploads", [])
        assert [u["UploadId"] for u in uploads] == [self.upload]
        with pytest.raises(ClientError) as e:
            client.get_object(Bucket=plain, Key=f"out-{b}")
        assert status_of(e)[0] == 404, "a refused copy wrote nothing"


# -- rotation ------------------------------------------------------------------------------------


def test_rotate_rewraps_and_objects_read_back(srv, kp, inst, raw, cos, hmac, authorized):
    key = new_key(kp, inst)
    v0 = key["keyVersion"]["id"]
    a = Filled(cos, key["crn"], "rot-a")
    b = new_bucket(hmac, key["crn"])
    hmac.put_object(Bucket=b, Key="o", Body=b"bucket b, before")
    crns = {cos_bucket_crn(srv, a.bucket), cos_bucket_crn(srv, b)}
    assert key_versions_of_registrations(raw, key["id"]) == {c: v0 for c in crns}

    versions = [v0]
    for round_ in (1, 2):
        resp = kp.rotate_key(id=key["id"], bluemix_instance=inst)
        assert resp.get_status_code() == 204
        v = key_meta(kp, inst, key["id"])["keyVersion"]["id"]
        assert v not in versions
        versions.append(v)
        # The bucket keys were rewrapped before the call returned: the registrations say so.
        assert key_versions_of_registrations(raw, key["id"]) == {c: v for c in crns}, f"round {round_}"
        a.assert_readable()
        assert body_of(hmac, b, "o") == b"bucket b, before"
        new = pattern(2 * SEG + round_, f"after-{round_}")
        assert cos.put_object(Bucket=a.bucket, Key=f"after-{round_}", Body=new)["ETag"] == quoted_md5(new)
        assert body_of(hmac, a.bucket, f"after-{round_}") == new
    # An upload begun before the rotations completes after them.
    a.finish_upload()
    listed = kp_json(kp.get_key_versions(id=key["id"], bluemix_instance=inst))["resources"]
    assert {x["id"] for x in listed} == set(versions)

    for bucket in (a.bucket, b):
        rotations = [e for e in events_of(srv, bucket) if e["requestData"]["eventType"] == "rotate"]
        assert len(rotations) == 2, events_of(srv, bucket)
        for e, v in zip(rotations, versions[1:]):
            assert_event(e, "rotate")
            assert e["responseData"]["adopterKeyVersion"] == v, e
            assert e["requestData"]["requestKeyVersion"] == v, e
            assert e["target"]["id"] == cos_bucket_crn(srv, bucket)

    # The rewrapped bucket keys are what the server keeps: everything reads after a restart.
    srv.restart()
    cos = ibm_oauth_client(srv, srv.bootstrap["admin_api_key"])
    a.assert_readable(cos)
    assert body_of(cos, a.bucket, "after-1") == pattern(2 * SEG + 1, "after-1")
    assert body_of(cos, a.bucket, "multi") == a.part1 + a.part2
    assert body_of(cos, b, "o") == b"bucket b, before"


# -- disable and enable --------------------------------------------------------------------------


def test_disable_refuses_and_enable_restores(srv, kp, inst, raw, cos, hmac, plain, authorized):
    key = new_key(kp, inst)
    other_key = new_key(kp, inst)
    f = Filled(cos, key["crn"], "dis")
    bystander = new_bucket(hmac, other_key["crn"])
    hmac.put_object(Bucket=bystander, Key="o", Body=b"another key")
    f.assert_readable()

    assert kp.disable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    # The very first request after the call returns is refused already.
    assert_denied(cos.get_object, Bucket=f.bucket, Key="big")
    f.assert_refused(cos, plain)
    f.assert_refused(hmac, plain)
    assert body_of(cos, bystander, "o") == b"another key"
    events = events_of(srv, f.bucket)
    assert [e["requestData"]["eventType"] for e in events] == ["disable"], events
    assert_event(events[-1], "disable")
    assert events_of(srv, bystander) == []

    # Deleting objects works while disabled.
    f.client.delete_object(Bucket=f.bucket, Key="small")
    assert [o["Key"] for o in cos.list_objects_v2(Bucket=f.bucket)["Contents"]] == ["big"]

    # Still refused after a restart (the state is the KMS's, not a cache's).
    srv.restart()
    cos = ibm_oauth_client(srv, srv.bootstrap["admin_api_key"])
    hmac = ibm_sigv4_client(srv)
    f.client = cos
    assert_denied(hmac.get_object, Bucket=f.bucket, Key="big")
    assert_denied(cos.put_object, Bucket=f.bucket, Key="small", Body=f.small)

    assert kp.enable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    assert body_of(hmac, f.bucket, "big") == f.big
    cos.put_object(Bucket=f.bucket, Key="small", Body=f.small)
    f.assert_readable()
    f.finish_upload(hmac)
    events = events_of(srv, f.bucket)
    assert [e["requestData"]["eventType"] for e in events] == ["disable", "enable"], events
    assert_event(events[-1], "enable")
    # `limit` keeps the newest: the enable just recorded.
    newest = activity_events(srv, limit=1)
    assert len(newest) == 1 and newest[0] == events[-1], newest
    assert len(activity_events(srv, limit=2)) == 2


OPS = ["get", "range-get", "head", "put", "copy-out", "copy-in", "create-upload", "upload-part"]


@pytest.mark.parametrize("op", OPS)
def test_first_request_after_disable_is_refused(srv, kp, inst, cos, hmac, plain, authorized, op):
    """Whatever the first request after `disable` returns is, it is refused; whatever the first
    after `enable` is, it works."""
    key = new_key(kp, inst)
    bucket = new_bucket(cos, key["crn"])
    data = pattern(2 * SEG + 5, "first-" + op)
    cos.put_object(Bucket=bucket, Key="obj", Body=data)
    hmac.put_object(Bucket=plain, Key=f"src-{op}", Body=data)
    upload = cos.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    run = {
        "get": lambda c: c.get_object(Bucket=bucket, Key="obj")["Body"].read() == data,
        "range-get": lambda c: c.get_object(Bucket=bucket, Key="obj", Range="bytes=5-70000")["Body"].read()
        == data[5:70001],
        "head": lambda c: c.head_object(Bucket=bucket, Key="obj")["ETag"] == quoted_md5(data),
        "put": lambda c: c.put_object(Bucket=bucket, Key="obj", Body=data)["ETag"] == quoted_md5(data),
        "copy-out": lambda c: c.copy_object(Bucket=plain, Key=f"copy-{op}", CopySource={"Bucket": bucket, "Key": "obj"})
        ["CopyObjectResult"]["ETag"] == quoted_md5(data),
        "copy-in": lambda c: c.copy_object(Bucket=bucket, Key="in", CopySource={"Bucket": plain, "Key": f"src-{op}"})
        ["CopyObjectResult"]["ETag"] == quoted_md5(data),
        "create-upload": lambda c: bool(c.create_multipart_upload(Bucket=bucket, Key="mp2")["UploadId"]),
        "upload-part": lambda c: c.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1,
                                               Body=data)["ETag"] == quoted_md5(data),
    }[op]
    for client in (cos, hmac):
        assert kp.disable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
        assert_denied(run, client)
        assert kp.enable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
        assert run(client) is True
    kinds = [e["requestData"]["eventType"] for e in events_of(srv, bucket)]
    assert kinds == ["disable", "enable", "disable", "enable"], kinds


# -- delete, restore, purge ------------------------------------------------------------------------


def test_delete_refuses_and_restore_brings_back(srv, kp, inst, raw, cos, hmac, plain, authorized):
    key = new_key(kp, inst)
    f = Filled(cos, key["crn"], "del")
    # The registration protects the key from an ordinary delete; nothing changes.
    assert_kp_error(kp_raises(kp.delete_key, id=key["id"], bluemix_instance=inst), 409, "PROTECTED_RESOURCE_ERR")
    f.assert_readable()
    assert events_of(srv, f.bucket) == []

    assert kp.delete_key(id=key["id"], bluemix_instance=inst, force=True).get_status_code() == 200
    assert_denied(hmac.get_object, Bucket=f.bucket, Key="small")
    f.assert_refused(cos, plain)
    events = events_of(srv, f.bucket)
    assert [e["requestData"]["eventType"] for e in events] == ["delete"], events
    assert_event(events[-1], "delete")

    resp = kp.restore_key(id=key["id"], bluemix_instance=inst)
    assert resp.get_status_code() == 201
    assert key_meta(kp, inst, key["id"])["state"] == 1
    # The first request after the restore works.
    assert body_of(cos, f.bucket, "big") == f.big
    f.assert_readable(hmac)
    cos.put_object(Bucket=f.bucket, Key="after-restore", Body=b"written after the restore")
    assert body_of(hmac, f.bucket, "after-restore") == b"written after the restore"
    f.finish_upload()
    events = events_of(srv, f.bucket)
    assert [e["requestData"]["eventType"] for e in events] == ["delete", "restore"], events
    assert_event(events[-1], "restore")


def test_restored_key_protects_its_buckets_again(srv, kp, inst, raw, cos, authorized):
    """After delete and restore the bucket is still the key's: registered, and the key cannot be
    deleted under it without force."""
    key = new_key(kp, inst)
    bucket = new_bucket(cos, key["crn"])
    assert kp.delete_key(id=key["id"], bluemix_instance=inst, force=True).get_status_code() == 200
    assert kp.restore_key(id=key["id"], bluemix_instance=inst).get_status_code() == 201
    assert cos_bucket_crn(srv, bucket) in key_versions_of_registrations(raw, key["id"])
    assert_kp_error(kp_raises(kp.delete_key, id=key["id"], bluemix_instance=inst), 409, "PROTECTED_RESOURCE_ERR")


def test_deleted_key_bucket_can_be_emptied_and_deleted(srv, kp, inst, cos, hmac, authorized):
    key = new_key(kp, inst)
    bucket = new_bucket(cos, key["crn"])
    for i in range(5):
        cos.put_object(Bucket=bucket, Key=f"o{i}", Body=pattern(SEG + i, f"o{i}"))
    assert kp.delete_key(id=key["id"], bluemix_instance=inst, force=True).get_status_code() == 200
    assert_denied(cos.put_object, Bucket=bucket, Key="o9", Body=b"x")
    assert_denied(hmac.get_object, Bucket=bucket, Key="o0")
    with pytest.raises(ClientError) as e:
        cos.delete_bucket(Bucket=bucket)
    assert status_of(e) == (409, "BucketNotEmpty")
    hmac.delete_object(Bucket=bucket, Key="o0")
    out = cos.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"o{i}"} for i in range(1, 5)]})
    assert sorted(d["Key"] for d in out.get("Deleted", [])) == [f"o{i}" for i in range(1, 5)]
    assert not out.get("Errors")
    assert cos.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert cos.list_objects(Bucket=bucket).get("Contents", []) == []
    cos.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        cos.head_bucket(Bucket=bucket)
    assert status_of(e)[0] == 404


def test_bucket_deleted_while_its_key_is_out_of_service_stays_deleted(srv, kp, inst, raw, cos, authorized):
    """Deleting a bucket deletes its registration, whatever the key's state: a bucket deleted
    while its key was disabled or deleted does not come back as a registration once the key is
    enabled or restored, and does not protect the key from an ordinary delete."""
    for out, back in (("disable", "enable"), ("delete", "restore")):
        key = new_key(kp, inst)
        bucket = new_bucket(cos, key["crn"])
        assert list(key_versions_of_registrations(raw, key["id"])) == [cos_bucket_crn(srv, bucket)]
        if out == "disable":
            assert kp.disable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
        else:
            assert kp.delete_key(id=key["id"], bluemix_instance=inst, force=True).get_status_code() == 200
        cos.delete_bucket(Bucket=bucket)
        if back == "enable":
            assert kp.enable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
        else:
            assert kp.restore_key(id=key["id"], bluemix_instance=inst).get_status_code() == 201
        assert kp_registrations(raw, key["id"]) == [], f"{out}/{back}: the deleted bucket is registered again"
        assert kp.delete_key(id=key["id"], bluemix_instance=inst).get_status_code() == 200, f"{out}/{back}"


def test_purge_is_for_good(srv, kp, inst, raw, cos, hmac, plain, authorized):
    key = new_key(kp, inst)
    f = Filled(hmac, key["crn"], "purge")
    assert kp.delete_key(id=key["id"], bluemix_instance=inst, force=True).get_status_code() == 200
    assert kp.purge_key(id=key["id"], bluemix_instance=inst).get_status_code() == 200
    assert_kp_error(kp_raises(kp.get_key_metadata, id=key["id"], bluemix_instance=inst), 404, "KEY_NOT_FOUND_ERR")
    assert_kp_error(kp_raises(kp.restore_key, id=key["id"], bluemix_instance=inst), 404, "KEY_NOT_FOUND_ERR")
    f.assert_refused(cos, plain)
    # Not after a restart either: there is no key to ask any more.
    srv.restart()
    cos = ibm_oauth_client(srv, srv.bootstrap["admin_api_key"])
    hmac = ibm_sigv4_client(srv)
    f.client = hmac
    assert_denied(cos.get_object, Bucket=f.bucket, Key="big")
    assert_denied(hmac.get_object, Bucket=f.bucket, Key="small", Range="bytes=0-0")
    assert_denied(cos.put_object, Bucket=f.bucket, Key="small", Body=b"x")
    f.assert_refused(hmac, plain)
    # The bucket can still be emptied and removed.
    cos.abort_multipart_upload(Bucket=f.bucket, Key="multi", UploadId=f.upload)
    cos.delete_objects(Bucket=f.bucket, Delete={"Objects": [{"Key": "small"}, {"Key": "big"}]})
    cos.delete_bucket(Bucket=f.bucket)


# -- a key named by its alias --------------------------------------------------------------------


def test_bucket_created_with_an_alias_crn_obeys_the_key(srv, kp, inst, raw, cos, hmac, authorized):
    """Key Protect addresses keys by alias in paths; a CRN names the key by id. If a CRN that
    carries an alias is accepted at all, the bucket must still follow that key's state."""
    alias = unique_name("alias")
    resp = kp.create_key(bluemix_instance=inst, key_create_body=kp_key_body(unique_name("crk"), aliases=[alias]))
    key = kp_json(resp)["resources"][0]
    alias_crn = key["crn"].rsplit(":", 1)[0] + ":" + alias
    name = unique_name("kpalias")
    try:
        cos.create_bucket(Bucket=name, IBMSSEKPEncryptionAlgorithm="AES256", IBMSSEKPCustomerRootKeyCrn=alias_crn)
    except ClientError as e:
        err = e.response["Error"]
        assert (e.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err["Message"]) == \
            (400, "InvalidRequest", KP_CRN_NOT_FOUND)
        return
    cos.put_object(Bucket=name, Key="secret", Body=b"protected by the aliased key")
    assert kp.disable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    assert_denied(cos.get_object, Bucket=name, Key="secret")
    assert_denied(hmac.put_object, Bucket=name, Key="more", Body=b"x")
    assert kp.enable_key(id=key["id"], bluemix_instance=inst).get_status_code() == 204
    assert body_of(hmac, name, "secret") == b"protected by the aliased key"
    assert kp.delete_key(id=key["id"], bluemix_instance=inst, force=True).get_status_code() == 200
    assert_denied(cos.get_object, Bucket=name, Key="secret")
