"""Multipart uploads: a large upload end to end, part listing, copies, and every way Complete
can be refused."""

import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import MiB, assert_client_error, delete_bucket, quoted_md5, unique_name

PART = 5 * MiB
N_PARTS = 13


def multipart_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


@pytest.fixture(scope="module")
def big(s3):
    """A 65 MiB object of random bytes, uploaded as 13 parts of 5 MiB."""
    bucket = unique_name("e2e-mpu")
    s3.create_bucket(Bucket=bucket)
    key = "big/object.bin"
    data = os.urandom(PART * N_PARTS)
    parts = [data[i * PART:(i + 1) * PART] for i in range(N_PARTS)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-big",
                                           Metadata={"kind": "multipart"})["UploadId"]

    def send(n):
        resp = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=parts[n - 1])
        assert resp["ETag"] == quoted_md5(parts[n - 1])
        return {"PartNumber": n, "ETag": resp["ETag"]}

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(send, range(1, N_PARTS + 1)))
    complete = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": done})
    yield {"bucket": bucket, "key": key, "data": data, "parts": parts, "complete": complete}
    delete_bucket(s3, bucket)


def test_multipart_etag(s3, big):
    expected = multipart_etag(big["parts"])
    assert big["complete"]["ETag"] == expected
    head = s3.head_object(Bucket=big["bucket"], Key=big["key"])
    assert head["ETag"] == expected
    assert head["ContentLength"] == PART * N_PARTS
    assert head["PartsCount"] == N_PARTS
    assert head["ContentType"] == "application/x-big"
    assert head["Metadata"] == {"kind": "multipart"}
    listed = s3.list_objects_v2(Bucket=big["bucket"])["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [(big["key"], expected, PART * N_PARTS)]


def test_multipart_get_streams_identical_bytes(s3, big):
    got = s3.get_object(Bucket=big["bucket"], Key=big["key"])
    assert got["ContentLength"] == len(big["data"])
    md5, size = hashlib.md5(), 0
    for chunk in got["Body"].iter_chunks(1 * MiB):
        md5.update(chunk)
        size += len(chunk)
    assert size == len(big["data"])
    assert md5.hexdigest() == hashlib.md5(big["data"]).hexdigest()


def test_range_across_part_boundary(s3, big):
    start, end = PART - 100, 2 * PART + 99  # spans parts 1, 2 and 3
    got = s3.get_object(Bucket=big["bucket"], Key=big["key"], Range=f"bytes={start}-{end}")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end}/{len(big['data'])}"
    assert got["Body"].read() == big["data"][start:end + 1]


def test_get_part_number(s3, big):
    got = s3.get_object(Bucket=big["bucket"], Key=big["key"], PartNumber=2)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["PartsCount"] == N_PARTS
    assert got["ContentLength"] == PART
    assert got["ContentRange"] == f"bytes {PART}-{2 * PART - 1}/{len(big['data'])}"
    assert got["ETag"] == multipart_etag(big["parts"])
    assert hashlib.md5(got["Body"].read()).digest() == hashlib.md5(big["parts"][1]).digest()


def test_head_part_number(s3, big):
    head = s3.head_object(Bucket=big["bucket"], Key=big["key"], PartNumber=13)
    assert head["PartsCount"] == N_PARTS
    assert head["ContentLength"] == PART
    assert head["ContentRange"] == f"bytes {12 * PART}-{13 * PART - 1}/{len(big['data'])}"


def test_get_part_number_out_of_range(s3, big):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=big["bucket"], Key=big["key"], PartNumber=14)
    assert_client_error(e, 416, "InvalidPartNumber")


# -- smaller uploads -------------------------------------------------------------------------


def upload_parts(s3, bucket, key, bodies, **create):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    for n, body in enumerate(bodies, 1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    return upload_id, parts


def test_list_parts_paginated(s3, bucket):
    bodies = [os.urandom(1000 + n) for n in range(7)]
    upload_id, parts = upload_parts(s3, bucket, "listed", bodies)
    seen, marker, pages = [], 0, 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="listed", UploadId=upload_id, MaxParts=3,
                             PartNumberMarker=marker)
        pages += 1
        assert page["MaxParts"] == 3
        assert page["UploadId"] == upload_id
        assert page["Key"] == "listed"
        seen += page.get("Parts", [])
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
        assert marker == seen[-1]["PartNumber"]
        assert pages < 10
    assert pages == 3
    assert [p["PartNumber"] for p in seen] == list(range(1, 8))
    assert [p["ETag"] for p in seen] == [quoted_md5(b) for b in bodies]
    assert [p["Size"] for p in seen] == [len(b) for b in bodies]


def test_reuploaded_part_replaces_the_old_one(s3, bucket):
    upload_id, _ = upload_parts(s3, bucket, "redo", [b"old part"])
    etag = s3.upload_part(Bucket=bucket, Key="redo", UploadId=upload_id, PartNumber=1, Body=b"new part")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="redo", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, quoted_md5(b"new part"))]
    s3.complete_multipart_upload(Bucket=bucket, Key="redo", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="redo")["Body"].read() == b"new part"


def test_list_multipart_uploads(s3, bucket):
    ids = {}
    for key in ("up/a", "up/b", "other/c"):
        ids[key] = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    # Two uploads of the same key are distinct.
    second = s3.create_multipart_upload(Bucket=bucket, Key="up/a")["UploadId"]
    assert second != ids["up/a"]

    resp = s3.list_multipart_uploads(Bucket=bucket)
    listed = [(u["Key"], u["UploadId"]) for u in resp["Uploads"]]
    assert sorted(listed) == sorted([*ids.items(), ("up/a", second)])
    assert [k for k, _ in listed] == sorted(k for k, _ in listed)

    resp = s3.list_multipart_uploads(Bucket=bucket, Prefix="up/")
    assert sorted(u["Key"] for u in resp["Uploads"]) == ["up/a", "up/a", "up/b"]

    resp = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert resp.get("Uploads", []) == []
    assert [p["Prefix"] for p in resp["CommonPrefixes"]] == ["other/", "up/"]

    s3.abort_multipart_upload(Bucket=bucket, Key="up/b", UploadId=ids["up/b"])
    keys = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]]
    assert sorted(keys) == ["other/c", "up/a", "up/a"]


def test_list_multipart_uploads_paginated(s3, bucket):
    created = sorted(
        (f"p/{i}", s3.create_multipart_upload(Bucket=bucket, Key=f"p/{i}")["UploadId"]) for i in range(5)
    )
    seen, key_marker, id_marker = [], None, None
    for _ in range(10):
        args = {"Bucket": bucket, "MaxUploads": 2}
        if key_marker is not None:
            args.update(KeyMarker=key_marker, UploadIdMarker=id_marker)
        page = s3.list_multipart_uploads(**args)
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        key_marker, id_marker = page["NextKeyMarker"], page["NextUploadIdMarker"]
    assert seen == created


def test_upload_part_copy_with_range(s3, bucket):
    src = os.urandom(6 * MiB + 123)
    s3.put_object(Bucket=bucket, Key="copy-src", Body=src)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    first = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "copy-src"},
                                CopySourceRange=f"bytes=0-{PART - 1}")
    assert first["CopyPartResult"]["ETag"] == quoted_md5(src[:PART])
    tail = b"tail written directly"
    second = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=2, Body=tail)
    third = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=3,
                                CopySource={"Bucket": bucket, "Key": "copy-src"},
                                CopySourceRange="bytes=100-199")
    assert third["CopyPartResult"]["ETag"] == quoted_md5(src[100:200])
    # Part 2 is not last, and is smaller than 5 MiB: drop part 3, complete with 1 and 2.
    s3.complete_multipart_upload(
        Bucket=bucket, Key="assembled", UploadId=upload_id,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": second["ETag"]},
        ]},
    )
    got = s3.get_object(Bucket=bucket, Key="assembled")["Body"].read()
    assert got == src[:PART] + tail
    assert s3.head_object(Bucket=bucket, Key="assembled")["ETag"] == multipart_etag([src[:PART], tail])


def test_upload_part_copy_whole_object(s3, bucket):
    src = b"whole source object"
    s3.put_object(Bucket=bucket, Key="copy-src", Body=src)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="one-part")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="one-part", UploadId=upload_id, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "copy-src"})
    s3.complete_multipart_upload(Bucket=bucket, Key="one-part", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": r["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="one-part")["Body"].read() == src


def test_complete_out_of_order(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "order", [os.urandom(PART), b"last"])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="order", UploadId=upload_id,
                                     MultipartUpload={"Parts": list(reversed(parts))})
    assert_client_error(e, 400, "InvalidPartOrder")
    # The upload is still there and can be completed properly.
    s3.complete_multipart_upload(Bucket=bucket, Key="order", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    assert s3.head_object(Bucket=bucket, Key="order")["ContentLength"] == PART + 4


def test_complete_wrong_etag(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "etag", [b"only part"])
    parts[0]["ETag"] = '"0123456789abcdef0123456789abcdef"'
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="etag", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert_client_error(e, 400, "InvalidPart")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="etag")
    assert_client_error(e, 404, None)


def test_complete_missing_part(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "gap", [b"one"])
    parts.append({"PartNumber": 2, "ETag": quoted_md5(b"never uploaded")})
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="gap", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert_client_error(e, 400, "InvalidPart")


def test_complete_small_non_last_part(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "small", [b"a" * 1024, b"b" * 1024])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert_client_error(e, 400, "EntityTooSmall")


def test_complete_with_subset_of_parts(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "subset", [os.urandom(PART), b"second", b"third"])
    s3.complete_multipart_upload(Bucket=bucket, Key="subset", UploadId=upload_id,
                                 MultipartUpload={"Parts": [parts[0], parts[2]]})
    head = s3.head_object(Bucket=bucket, Key="subset")
    assert head["ContentLength"] == PART + len(b"third")
    assert head["PartsCount"] == 2


def test_abort_then_list_parts(s3, bucket):
    upload_id, _ = upload_parts(s3, bucket, "aborted", [b"part"])
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=upload_id)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="aborted", UploadId=upload_id)
    assert_client_error(e, 404, "NoSuchUpload")
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="aborted", UploadId=upload_id, PartNumber=2, Body=b"late")
    assert_client_error(e, 404, "NoSuchUpload")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_completed_upload_is_gone(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "done", [b"x"])
    s3.complete_multipart_upload(Bucket=bucket, Key="done", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="done", UploadId=upload_id)
    assert_client_error(e, 404, "NoSuchUpload")


def test_part_number_out_of_bounds(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="bounds")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="bounds", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert_client_error(e, 400, "InvalidArgument")


def test_composite_sha256_checksum(s3, bucket):
    bodies = [os.urandom(PART), os.urandom(1000)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="sums", ChecksumAlgorithm="SHA256")["UploadId"]
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="sums", UploadId=upload_id, PartNumber=n, Body=body,
                           ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="sums", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    composite = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in bodies)).digest()
    expected = base64.b64encode(composite).decode() + "-2"
    head = s3.head_object(Bucket=bucket, Key="sums", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == expected
