"""Authentication: presigned URLs, bad credentials, anonymous access, payload signing modes
(signed, UNSIGNED-PAYLOAD, aws-chunked) and virtual-host-style addressing."""

import hashlib
import os
import socket
import time

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (
    REGION,
    assert_client_error,
    assert_raw_error,
    crc32_b64,
    delete_bucket,
    key_path,
    make_client,
    put_aws_chunked,
    put_unsigned_trailer,
    quoted_md5,
    unique_name,
)


def capture_headers(client, operation: str) -> list[dict]:
    """Records the headers of every `operation` request the client sends."""
    seen: list[dict] = []

    def hook(request, **_):
        seen.append({k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()})
        seen[-1]["__url__"] = request.url

    client.meta.events.register(f"before-send.s3.{operation}", hook)
    return seen


# -- presigned URLs --------------------------------------------------------------------------


def test_presigned_get(s3, bucket):
    data = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key="shared", Body=data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["ETag"] == quoted_md5(data)


def test_presigned_put(s3, bucket):
    data = b"uploaded through a presigned URL"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "dropbox"}, ExpiresIn=300)
    r = requests.put(url, data=data, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == quoted_md5(data)
    assert s3.get_object(Bucket=bucket, Key="dropbox")["Body"].read() == data


def test_presigned_url_for_another_key_is_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a"}, ExpiresIn=300)
    tampered = url.replace(f"/{bucket}/a?", f"/{bucket}/b?")
    assert tampered != url
    r = requests.get(tampered, timeout=30)
    assert_raw_error(r, 403, "SignatureDoesNotMatch")


def test_expired_presigned_url(s3, bucket):
    s3.put_object(Bucket=bucket, Key="soon-gone", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "soon-gone"}, ExpiresIn=1)
    time.sleep(2.1)
    r = requests.get(url, timeout=30)
    assert_raw_error(r, 403, "AccessDenied")
    assert b"x" != r.content


# -- bad credentials and anonymous access ----------------------------------------------------


def test_wrong_secret(server, bucket):
    ak, sk = server.credentials
    bad = server.client(secret_key=sk[:-4] + ("aaaa" if not sk.endswith("aaaa") else "bbbb"))
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket=bucket)
    assert_client_error(e, 403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="intruder", Body=b"x")
    assert_client_error(e, 403, "SignatureDoesNotMatch")


def test_unknown_access_key(server, s3, bucket):
    stranger = server.client(access_key="AKIAUNKNOWNKEY000000", secret_key="x" * 40)
    with pytest.raises(ClientError) as e:
        stranger.put_object(Bucket=bucket, Key="intruder", Body=b"x")
    assert_client_error(e, 403, "InvalidAccessKeyId")
    with pytest.raises(ClientError) as e:
        stranger.list_buckets()
    assert_client_error(e, 403, "InvalidAccessKeyId")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="intruder")
    assert_client_error(e, 404, None)


def test_anonymous_requests_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    for url in (f"{server.endpoint}/{bucket}/private", f"{server.endpoint}/{bucket}", f"{server.endpoint}/"):
        r = requests.get(url, timeout=30)
        assert_raw_error(r, 403, "AccessDenied")
        assert b"secret" not in r.content
    r = requests.put(f"{server.endpoint}/{bucket}/anon", data=b"x", timeout=30)
    assert_raw_error(r, 403, "AccessDenied")
    r = requests.delete(f"{server.endpoint}/{bucket}/private", timeout=30)
    assert_raw_error(r, 403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"secret"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="anon")
    assert_client_error(e, 404, None)


def test_payload_hash_mismatch(server, s3, bucket):
    """A signed payload hash that does not match the body sent is refused."""
    signed_body, sent_body = b"A" * 64, b"B" * 64
    req = AWSRequest(method="PUT", url=server.endpoint + key_path(bucket, "swapped"), data=signed_body)
    S3SigV4Auth(Credentials(*server.credentials), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    assert prepared.headers["X-Amz-Content-SHA256"] == hashlib.sha256(signed_body).hexdigest()
    r = requests.put(prepared.url, headers=dict(prepared.headers), data=sent_body, timeout=30)
    assert_raw_error(r, 400, "XAmzContentSHA256Mismatch")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="swapped")
    assert_client_error(e, 404, None)


# -- payload signing modes -------------------------------------------------------------------


def test_default_boto3_upload_is_signed_payload_over_http(s3, bucket):
    seen = capture_headers(s3, "PutObject")
    data = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="default", Body=data)
    (headers,) = seen
    # Over plain http botocore signs the payload and sends the CRC32 as a header, not aws-chunked.
    assert headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert headers["x-amz-checksum-crc32"] == crc32_b64(data)
    got = s3.get_object(Bucket=bucket, Key="default")
    assert hashlib.md5(got["Body"].read()).hexdigest() == hashlib.md5(data).hexdigest()


def test_unsigned_payload(server, bucket):
    client = server.client(s3_extra={"payload_signing_enabled": False})
    seen = capture_headers(client, "PutObject")
    data = os.urandom(300_000)
    resp = client.put_object(Bucket=bucket, Key="unsigned", Body=data)
    assert seen[0]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert resp["ETag"] == quoted_md5(data)
    assert client.get_object(Bucket=bucket, Key="unsigned")["Body"].read() == data


def test_aws_chunked_signed_streaming(server, s3, bucket):
    data = os.urandom(300_000)  # 5 chunks of 64 KiB, the last one short
    r = put_aws_chunked(server, bucket, "chunked", data)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == quoted_md5(data)
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data


def test_aws_chunked_is_not_stored_as_content_encoding(server, s3, bucket):
    # aws-chunked is a transfer detail: S3 stores the object without it.
    r = put_aws_chunked(server, bucket, "chunked", b"data" * 1000)
    assert r.status_code == 200, r.text
    assert "aws-chunked" not in s3.head_object(Bucket=bucket, Key="chunked").get("ContentEncoding", "")


def test_aws_chunked_keeps_real_content_encoding(server, s3, bucket):
    data = b"pretend this is gzip" * 100
    r = put_aws_chunked(server, bucket, "chunked-gz", data, extra_headers={"Content-Encoding": "aws-chunked,gzip"})
    assert r.status_code == 200, r.text
    head = s3.head_object(Bucket=bucket, Key="chunked-gz")
    assert head.get("ContentEncoding") == "gzip"
    assert head["ContentLength"] == len(data)


def test_aws_chunked_bad_chunk_signature(server, s3, bucket):
    data = os.urandom(200_000)
    r = put_aws_chunked(server, bucket, "tampered", data, tamper_chunk=1)
    assert_raw_error(r, 403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="tampered")
    assert_client_error(e, 404, None)


def test_unsigned_trailer_checksum(server, s3, bucket):
    data = os.urandom(150_000)
    r = put_unsigned_trailer(server, bucket, "trailer", data)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == quoted_md5(data)
    got = s3.get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32_b64(data)
    assert got["Body"].read() == data


def test_unsigned_trailer_wrong_checksum(server, s3, bucket):
    data = os.urandom(50_000)
    r = put_unsigned_trailer(server, bucket, "bad-trailer", data, checksum_value=crc32_b64(b"other"))
    assert_raw_error(r, 400, "BadDigest")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad-trailer")
    assert_client_error(e, 404, None)


# -- virtual-host-style addressing -----------------------------------------------------------


@pytest.fixture
def localhost_resolves(monkeypatch):
    """Maps `localhost` and `*.localhost` to 127.0.0.1 inside this process only."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host == "localhost" or (isinstance(host, str) and host.endswith(".localhost")):
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_virtual_host_style(server, s3, localhost_resolves):
    ak, sk = server.credentials
    vhost = make_client(f"http://localhost:{server.s3_port}", ak, sk, addressing_style="virtual")
    seen = {op: capture_headers(vhost, op) for op in ("CreateBucket", "PutObject", "GetObject", "ListObjectsV2")}
    name = unique_name("e2e-vh")
    try:
        vhost.create_bucket(Bucket=name)
        vhost.put_object(Bucket=name, Key="dir/hello.txt", Body=b"virtual hello")
        assert vhost.get_object(Bucket=name, Key="dir/hello.txt")["Body"].read() == b"virtual hello"
        listed = vhost.list_objects_v2(Bucket=name, Prefix="dir/")
        assert [o["Key"] for o in listed["Contents"]] == ["dir/hello.txt"]
        # The requests really went to <bucket>.localhost with the key as the whole path.
        assert seen["CreateBucket"][0]["__url__"].startswith(f"http://{name}.localhost:{server.s3_port}/")
        assert seen["PutObject"][0]["__url__"] == f"http://{name}.localhost:{server.s3_port}/dir/hello.txt"
        assert seen["GetObject"][0]["__url__"] == f"http://{name}.localhost:{server.s3_port}/dir/hello.txt"
        assert seen["ListObjectsV2"][0]["__url__"].startswith(f"http://{name}.localhost:{server.s3_port}/?")
        # Path-style sees the same bucket and object.
        assert s3.get_object(Bucket=name, Key="dir/hello.txt")["Body"].read() == b"virtual hello"
        assert name in [b["Name"] for b in vhost.list_buckets()["Buckets"]]
    finally:
        delete_bucket(s3, name)


def test_virtual_host_missing_bucket(server, localhost_resolves):
    ak, sk = server.credentials
    vhost = make_client(f"http://localhost:{server.s3_port}", ak, sk, addressing_style="virtual")
    with pytest.raises(ClientError) as e:
        vhost.get_object(Bucket=unique_name("e2e-vh"), Key="k")
    assert_client_error(e, 404, "NoSuchBucket")
