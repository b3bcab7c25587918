"""Object operations: put, get, head, delete, copy, metadata, checksums, ranges, conditions."""

import datetime
import email.utils
import gzip
import hashlib
import os
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest
from botocore.exceptions import ClientError

from conftest import (
    assert_client_error,
    assert_raw_error,
    b64,
    crc32_b64,
    crc32c_b64,
    key_path,
    quoted_md5,
    signed_request,
    unique_name,
)

NOW = datetime.datetime.now(datetime.timezone.utc)


# -- basics ----------------------------------------------------------------------------------


def test_put_get_head_delete(s3, bucket):
    data = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="obj", Body=data)
    assert put["ETag"] == quoted_md5(data)

    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ETag"] == quoted_md5(data)
    assert got["AcceptRanges"] == "bytes"

    head = s3.head_object(Bucket=bucket, Key="obj")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == quoted_md5(data)
    assert abs((head["LastModified"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 120

    deleted = s3.delete_object(Bucket=bucket, Key="obj")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="obj")
    assert_client_error(e, 404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="obj")
    assert_client_error(e, 404, None)


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == quoted_md5(b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0
    assert got["Body"].read() == b""


def test_overwrite_replaces_content(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version", Metadata={"v": "1"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["ETag"] == quoted_md5(b"second")
    assert got.get("Metadata", {}) == {}


def test_delete_missing_key_is_204(s3, bucket):
    resp = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_get_missing_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert_client_error(e, 404, "NoSuchKey")


def test_get_in_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=unique_name(), Key="nope")
    assert_client_error(e, 404, "NoSuchBucket")


def test_put_in_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=unique_name(), Key="k", Body=b"x")
    assert_client_error(e, 404, "NoSuchBucket")


def test_get_object_acl(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]


# -- attributes ------------------------------------------------------------------------------


def test_metadata_and_headers_round_trip(s3, bucket):
    body = gzip.compress(b"hello " * 100)
    expires = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    s3.put_object(
        Bucket=bucket,
        Key="attrs",
        Body=body,
        Metadata={"color": "blue", "Owner-Name": "Jane Doe"},
        ContentType="application/x-custom; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="report.txt"',
        ContentLanguage="en-GB",
        CacheControl="max-age=3600, private",
        Expires=expires,
    )
    for resp in (s3.get_object(Bucket=bucket, Key="attrs"), s3.head_object(Bucket=bucket, Key="attrs")):
        # S3 lowercases metadata names.
        assert resp["Metadata"] == {"color": "blue", "owner-name": "Jane Doe"}
        assert resp["ContentType"] == "application/x-custom; charset=utf-8"
        assert resp["ContentEncoding"] == "gzip"
        assert resp["ContentDisposition"] == 'attachment; filename="report.txt"'
        assert resp["ContentLanguage"] == "en-GB"
        assert resp["CacheControl"] == "max-age=3600, private"
        assert resp["ExpiresString"] == email.utils.format_datetime(expires, usegmt=True)
        assert resp["ContentLength"] == len(body)
    got = s3.get_object(Bucket=bucket, Key="attrs")["Body"].read()
    assert got == body, "the stored (gzip) bytes come back as they were sent"


def test_metadata_too_large(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="big-meta", Body=b"x", Metadata={"m": "v" * 2100})
    assert_client_error(e, 400, "MetadataTooLarge")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="big-meta")
    assert_client_error(e, 404, None)


def test_metadata_just_under_limit(s3, bucket):
    meta = {"m": "v" * 2000}
    s3.put_object(Bucket=bucket, Key="meta-ok", Body=b"x", Metadata=meta)
    assert s3.head_object(Bucket=bucket, Key="meta-ok")["Metadata"] == meta


def test_sse_kms_refused(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
    assert_client_error(e, 400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="kms")
    assert_client_error(e, 404, None)


# -- digests and checksums -------------------------------------------------------------------


def test_content_md5_correct(s3, bucket):
    data = b"content with a digest"
    resp = s3.put_object(Bucket=bucket, Key="md5", Body=data,
                         ContentMD5=b64(hashlib.md5(data).digest()))
    assert resp["ETag"] == quoted_md5(data)


def test_content_md5_wrong_keeps_old_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="md5", Body=b"original")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"replacement",
                      ContentMD5=b64(hashlib.md5(b"something else").digest()))
    assert_client_error(e, 400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"original"


def test_content_md5_not_base64_md5(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"x", ContentMD5="bm90LWFuLW1kNQ==")
    assert_client_error(e, 400, "InvalidDigest")


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA1", "CRC32"])
def test_flexible_checksum_round_trip(server, s3, bucket, algorithm):
    data = os.urandom(300_000)
    expected = {
        "SHA256": b64(hashlib.sha256(data).digest()),
        "SHA1": b64(hashlib.sha1(data).digest()),
        "CRC32": crc32_b64(data),
    }[algorithm]
    field = f"Checksum{algorithm}"
    put = s3.put_object(Bucket=bucket, Key="sum", Body=data, ChecksumAlgorithm=algorithm)
    assert put[field] == expected
    got = s3.get_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert got[field] == expected
    assert got["Body"].read() == data  # botocore also validates the checksum while reading
    head = s3.head_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")
    assert head[field] == expected
    # boto3 asks for checksums by default; without x-amz-checksum-mode S3 returns none.
    plain = signed_request(server, "GET", key_path(bucket, "sum"))
    assert plain.status_code == 200
    assert plain.content == data
    assert not [h for h in plain.headers if h.lower().startswith("x-amz-checksum-")], plain.headers
    enabled = signed_request(server, "GET", key_path(bucket, "sum"), headers={"x-amz-checksum-mode": "ENABLED"})
    assert enabled.headers[f"x-amz-checksum-{algorithm.lower()}"] == expected


def test_crc32c_checksum_round_trip(s3, bucket):
    data = os.urandom(20_000)
    value = crc32c_b64(data)
    put = s3.put_object(Bucket=bucket, Key="c", Body=data, ChecksumCRC32C=value)
    assert put["ChecksumCRC32C"] == value
    got = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32C"] == value
    assert got["Body"].read() == data


def test_crc32c_known_vector():
    # RFC 3720 B.4 check value for the helper itself: crc32c("123456789") = 0xE3069283.
    assert crc32c_b64(b"123456789") == b64(bytes.fromhex("e3069283"))


def test_wrong_crc32_is_bad_digest(s3, bucket):
    data = b"the body whose checksum is wrong"
    s3.put_object(Bucket=bucket, Key="crc", Body=b"before")
    wrong = crc32_b64(b"another body")
    assert wrong != crc32_b64(data)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="crc", Body=data, ChecksumCRC32=wrong)
    assert_client_error(e, 400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == b"before"


def test_wrong_sha256_checksum_header_raw(server, s3, bucket):
    data = b"raw body"
    resp = signed_request(server, "PUT", key_path(bucket, "raw-sha"), body=data,
                          headers={"x-amz-checksum-sha256": b64(hashlib.sha256(b"other").digest())})
    assert_raw_error(resp, 400, "BadDigest")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="raw-sha")
    assert_client_error(e, 404, None)


# -- ranges ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,start,end",
    [("bytes=0-9", 0, 10), ("bytes=10-", 10, 100), ("bytes=-5", 95, 100), ("bytes=90-200", 90, 100),
     ("bytes=42-42", 42, 43)],
)
def test_single_range(s3, bucket, header, start, end):
    data = os.urandom(100)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end - 1}/100"
    assert got["ContentLength"] == end - start
    assert got["Body"].read() == data[start:end]
    assert got["ETag"] == quoted_md5(data)


def test_unsatisfiable_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ten", Body=b"0123456789")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="ten", Range="bytes=1000-")
    assert_client_error(e, 416, "InvalidRange")


def test_head_with_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ten", Body=b"0123456789")
    head = s3.head_object(Bucket=bucket, Key="ten", Range="bytes=2-4")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == 3
    assert head["ContentRange"] == "bytes 2-4/10"


# -- conditional requests --------------------------------------------------------------------


@pytest.fixture
def conditional_object(s3, bucket):
    data = b"conditional body"
    s3.put_object(Bucket=bucket, Key="cond", Body=data)
    head = s3.head_object(Bucket=bucket, Key="cond")
    return {"bucket": bucket, "etag": head["ETag"], "modified": head["LastModified"], "data": data}


PAST = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
FUTURE = NOW + datetime.timedelta(days=365)


def test_if_match(s3, conditional_object):
    o = conditional_object
    got = s3.get_object(Bucket=o["bucket"], Key="cond", IfMatch=o["etag"])
    assert got["Body"].read() == o["data"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=o["bucket"], Key="cond", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert_client_error(e, 412, "PreconditionFailed")


def test_if_none_match(s3, conditional_object):
    o = conditional_object
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=o["bucket"], Key="cond", IfNoneMatch=o["etag"])
    assert_client_error(e, 304, None)
    got = s3.get_object(Bucket=o["bucket"], Key="cond", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    assert got["Body"].read() == o["data"]


def test_if_modified_since(s3, conditional_object):
    o = conditional_object
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=o["bucket"], Key="cond", IfModifiedSince=FUTURE)
    assert_client_error(e, 304, None)
    got = s3.get_object(Bucket=o["bucket"], Key="cond", IfModifiedSince=PAST)
    assert got["Body"].read() == o["data"]


def test_if_unmodified_since(s3, conditional_object):
    o = conditional_object
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=o["bucket"], Key="cond", IfUnmodifiedSince=PAST)
    assert_client_error(e, 412, "PreconditionFailed")
    got = s3.get_object(Bucket=o["bucket"], Key="cond", IfUnmodifiedSince=FUTURE)
    assert got["Body"].read() == o["data"]


def test_if_match_wins_over_if_unmodified_since(s3, conditional_object):
    o = conditional_object
    got = s3.get_object(Bucket=o["bucket"], Key="cond", IfMatch=o["etag"], IfUnmodifiedSince=PAST)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_head_conditions(s3, conditional_object):
    o = conditional_object
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=o["bucket"], Key="cond", IfMatch='"ffffffffffffffffffffffffffffffff"')
    assert_client_error(e, 412, None)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=o["bucket"], Key="cond", IfNoneMatch=o["etag"])
    assert_client_error(e, 304, None)


def test_conditional_put_if_none_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert_client_error(e, 412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


# -- delete many -----------------------------------------------------------------------------


def test_delete_objects_verbose(s3, bucket):
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a"}, {"Key": "missing-1"}, {"Key": "c"}, {"Key": "missing-2"}]},
    )
    # S3 reports a missing key as deleted, not as an error.
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["a", "c", "missing-1", "missing-2"]
    assert resp.get("Errors", []) == []
    remaining = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert remaining == ["b"]


def test_delete_objects_quiet(s3, bucket):
    for k in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket,
                             Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "zz"}], "Quiet": True})
    assert resp.get("Deleted", []) == []
    assert resp.get("Errors", []) == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# -- copy ------------------------------------------------------------------------------------


@pytest.fixture
def source_object(s3, bucket):
    data = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="text/x-src",
                  Metadata={"origin": "source"}, CacheControl="no-cache")
    return data


def test_copy_metadata_copy(s3, bucket, source_object):
    resp = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert resp["CopyObjectResult"]["ETag"] == quoted_md5(source_object)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == source_object
    assert got["ContentType"] == "text/x-src"
    assert got["Metadata"] == {"origin": "source"}
    assert got["CacheControl"] == "no-cache"


def test_copy_metadata_replace(s3, bucket, source_object):
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", ContentType="application/json", Metadata={"new": "yes"})
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"new": "yes"}
    assert "CacheControl" not in head
    assert head["ETag"] == quoted_md5(source_object)
    # The source is untouched.
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"origin": "source"}


def test_copy_across_buckets(s3, bucket, source_object):
    other = unique_name()
    s3.create_bucket(Bucket=other)
    try:
        s3.copy_object(Bucket=other, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
        assert s3.get_object(Bucket=other, Key="copied")["Body"].read() == source_object
    finally:
        s3.delete_object(Bucket=other, Key="copied")
        s3.delete_bucket(Bucket=other)


def test_copy_to_itself_without_replace(s3, bucket, source_object):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert_client_error(e, 400, "InvalidRequest")


def test_copy_to_itself_with_replace_changes_metadata(s3, bucket, source_object):
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"rev": "2"})
    got = s3.get_object(Bucket=bucket, Key="src")
    assert got["Metadata"] == {"rev": "2"}
    assert got["Body"].read() == source_object


def test_copy_source_if_match_mismatch(s3, bucket, source_object):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfMatch='"00000000000000000000000000000000"')
    assert_client_error(e, 412, "PreconditionFailed")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="dst")
    assert_client_error(e, 404, None)


def test_copy_source_if_none_match_matching(s3, bucket, source_object):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfNoneMatch=quoted_md5(source_object))
    assert_client_error(e, 412, "PreconditionFailed")


def test_copy_missing_source(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "does-not-exist"})
    assert_client_error(e, 404, "NoSuchKey")


# -- keys ------------------------------------------------------------------------------------

ODD_KEYS = [
    "with space/file name.txt",
    "unicode/ünïcødé-日本語-🙂.bin",
    "plus+sign/a+b",
    "percent%/100%25done",
    "slashes//double/",
    "mixed ?&=#;:,@!$'()*[]",
    "tilde~and.dots..",
]


def test_odd_keys_round_trip(s3, bucket):
    for i, key in enumerate(ODD_KEYS):
        s3.put_object(Bucket=bucket, Key=key, Body=f"body {i}".encode())
    for i, key in enumerate(ODD_KEYS):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"body {i}".encode(), key
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(f"body {i}")
    expected = sorted(ODD_KEYS, key=lambda k: k.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == expected
    listed_v1 = [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]]
    assert listed_v1 == expected
    # boto3 decodes only when it chose EncodingType=url itself (it does so by default); asked
    # for explicitly, the keys come back percent-encoded.
    listed_url = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, EncodingType="url")["Contents"]]
    assert [unquote(k) for k in listed_url] == expected
    assert all(" " not in k and "+" not in k for k in listed_url)


def test_odd_keys_listed_without_encoding(server, s3, bucket):
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = signed_request(server, "GET", f"/{bucket}", query="list-type=2")
    assert resp.status_code == 200, resp.text
    root = ET.fromstring(resp.content)
    keys = [el.text for el in root.iter() if el.tag.split("}")[-1] == "Key"]
    assert keys == sorted(ODD_KEYS, key=lambda k: k.encode())


def test_encoding_type_url_encodes_on_the_wire(server, s3, bucket):
    key = "a b+c/d%é"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = signed_request(server, "GET", f"/{bucket}", query="encoding-type=url&list-type=2")
    assert resp.status_code == 200, resp.text
    root = ET.fromstring(resp.content)
    keys = [el.text for el in root.iter() if el.tag.split("}")[-1] == "Key"]
    assert keys == ["a%20b%2Bc/d%25%C3%A9"]
    enc = [el.text for el in root.iter() if el.tag.split("}")[-1] == "EncodingType"]
    assert enc == ["url"]


def test_delete_odd_key(s3, bucket):
    key = ODD_KEYS[5]
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_key_of_1024_bytes(s3, bucket):
    key = "k" * 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"long key")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long key"

