"""Malformed and unsupported requests: each gets its S3 error (never a 5xx), and the server
stays up."""

import hashlib
import socket

import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (
    FixedPayloadSigner,
    assert_client_error,
    assert_raw_error,
    b64,
    key_path,
    signed_request,
    unique_name,
)


def assert_server_alive(server, s3, bucket):
    assert server.running
    r = requests.get(f"{server.control_endpoint}/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    s3.put_object(Bucket=bucket, Key="alive", Body=b"still here")
    assert s3.get_object(Bucket=bucket, Key="alive")["Body"].read() == b"still here"


# -- malformed XML ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"<CompleteMultipartUpload><Part>", b"not xml at all", b""],
    ids=["truncated", "garbage", "empty"],
)
def test_complete_multipart_malformed_xml(server, s3, bucket, body):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"part")
    r = signed_request(server, "POST", key_path(bucket, "mp"), query=f"uploadId={upload_id}", body=body)
    assert_raw_error(r, 400, "MalformedXML")
    # The upload survives a bad Complete.
    assert len(s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]) == 1


def test_complete_multipart_without_parts(server, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    body = b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></CompleteMultipartUpload>'
    r = signed_request(server, "POST", key_path(bucket, "mp"), query=f"uploadId={upload_id}", body=body)
    assert_raw_error(r, 400, "MalformedXML")


@pytest.mark.parametrize("body", [b"not xml at all", b"<Delete><Object><Key>a</Key>", b"<Delete>"])
def test_delete_objects_malformed_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="a", Body=b"keep me")
    r = signed_request(server, "POST", f"/{bucket}", query="delete", body=body,
                       headers={"Content-MD5": b64(hashlib.md5(body).digest())})
    assert_raw_error(r, 400, "MalformedXML")
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"keep me"


@pytest.mark.parametrize(
    "body",
    [b"<CreateBucketConfiguration><LocationConstraint>", b"{\"json\": true}"],
    ids=["truncated", "json"],
)
def test_create_bucket_malformed_configuration(server, s3, body):
    name = unique_name()
    r = signed_request(server, "PUT", f"/{name}", body=body)
    assert_raw_error(r, 400, "MalformedXML")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert_client_error(e, 404, None)


# -- unknown upload ids ----------------------------------------------------------------------

UNKNOWN_UPLOAD = "0" * 48


def test_unknown_upload_id_upload_part(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=UNKNOWN_UPLOAD, PartNumber=1, Body=b"x")
    assert_client_error(e, 404, "NoSuchUpload")


def test_unknown_upload_id_complete(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=UNKNOWN_UPLOAD,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    assert_client_error(e, 404, "NoSuchUpload")


def test_unknown_upload_id_abort(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=UNKNOWN_UPLOAD)
    assert_client_error(e, 404, "NoSuchUpload")


def test_unknown_upload_id_list_parts(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=UNKNOWN_UPLOAD)
    assert_client_error(e, 404, "NoSuchUpload")


def test_upload_id_of_another_key(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="one")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="other", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert_client_error(e, 404, "NoSuchUpload")


# -- unsupported operations ------------------------------------------------------------------


def test_put_bucket_lifecycle_not_implemented(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                                               "Expiration": {"Days": 1}}]},
        )
    assert_client_error(e, 501, "NotImplemented")


def test_get_bucket_tagging_not_implemented(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert_client_error(e, 501, "NotImplemented")


def test_put_object_tagging_not_implemented(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert_client_error(e, 501, "NotImplemented")


def test_enabling_versioning_not_implemented(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert_client_error(e, 501, "NotImplemented")
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


# -- bad arguments ---------------------------------------------------------------------------


def test_negative_max_keys(server, bucket):
    r = signed_request(server, "GET", f"/{bucket}", query="list-type=2&max-keys=-1")
    assert_raw_error(r, 400, "InvalidArgument")


def test_bad_continuation_token(server, bucket):
    r = signed_request(server, "GET", f"/{bucket}", query="continuation-token=%21%21not-a-token&list-type=2")
    assert_raw_error(r, 400, "InvalidArgument")


def test_non_numeric_part_number(server, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    r = signed_request(server, "PUT", key_path(bucket, "mp"), query=f"partNumber=abc&uploadId={upload_id}",
                       body=b"x")
    assert_raw_error(r, 400, "InvalidArgument")


def test_multiple_ranges_return_whole_object(server, s3, bucket):
    # S3 serves a single range only; asked for several, it answers the whole object.
    s3.put_object(Bucket=bucket, Key="ten", Body=b"0123456789")
    r = signed_request(server, "GET", key_path(bucket, "ten"), headers={"Range": "bytes=0-1,4-5"})
    assert r.status_code == 200, r.text
    assert r.content == b"0123456789"


# -- oversized and truncated requests --------------------------------------------------------


def test_oversized_header(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    try:
        r = signed_request(server, "GET", key_path(bucket, "k"), headers={"x-amz-meta-huge": "a" * (1 << 20)})
    except requests.ConnectionError as exc:  # pragma: no cover - reported as a failure below
        pytest.fail(f"the server dropped the connection instead of answering 4xx: {exc}")
    assert 400 <= r.status_code < 500, r.status_code
    assert_server_alive(server, s3, bucket)


def test_too_many_headers(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    headers = {f"x-filler-{i}": "v" for i in range(300)}
    try:
        r = signed_request(server, "GET", key_path(bucket, "k"), headers=headers)
    except requests.ConnectionError as exc:  # pragma: no cover
        pytest.fail(f"the server dropped the connection instead of answering: {exc}")
    assert r.status_code < 500, r.status_code
    assert r.status_code in (200, 400, 431)
    assert_server_alive(server, s3, bucket)


def test_truncated_body_stores_nothing(server, s3, bucket):
    """A PUT whose connection closes before Content-Length bytes arrived must not create the object."""
    declared, sent = 100_000, b"z" * 40_000
    url = server.endpoint + key_path(bucket, "truncated")
    # UNSIGNED-PAYLOAD, so that only the length is wrong.
    req = AWSRequest(method="PUT", url=url, data=b"", headers={"Content-Length": str(declared)})
    FixedPayloadSigner(Credentials(*server.credentials), "UNSIGNED-PAYLOAD").add_auth(req)
    prepared = req.prepare()
    assert prepared.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    head = f"PUT {key_path(bucket, 'truncated')} HTTP/1.1\r\n"
    head += f"Host: 127.0.0.1:{server.s3_port}\r\n"
    for k, v in prepared.headers.items():
        if k.lower() != "host":
            head += f"{k}: {v.decode() if isinstance(v, bytes) else v}\r\n"
    head += "\r\n"
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
        sock.sendall(head.encode() + sent)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    status_line = answer.split(b"\r\n", 1)[0]
    # Either no answer (connection closed) or a 4xx; never a 2xx or 5xx.
    if answer:
        code = int(status_line.split()[1])
        assert 400 <= code < 500, status_line
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="truncated")
    assert_client_error(e, 404, None)
    assert_server_alive(server, s3, bucket)


def test_every_error_above_is_xml_with_code(server, bucket):
    """Errors carry an S3 XML body with a Code (spot check on a 404)."""
    r = signed_request(server, "GET", key_path(bucket, "missing"))
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/xml")
    assert "<Code>NoSuchKey</Code>" in r.text
