"""Stored ciphertext that was tampered with (DESIGN "Object format"): a flipped byte, a truncated
blob, blobs swapped between objects or rolled back to an older version. A GET of such an object
fails — a 5xx `InternalError` status, or a body that breaks off — and whatever bytes it does send
are the object's own, in place: never a wrong byte.

The blob of an object is found by comparing the blob files before and after its upload, on a
server of its own (`<data dir>/blobs/blobs/<xx>/<id>`). Files are changed in place."""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import (
    INLINE_MAX,
    REGION,
    CofferServer,
    IamAdmin,
    KpRaw,
    authorize_cos_on_kms,
    blob_files,
    ibm_sigv4_client,
    quoted_md5,
    unique_name,
)

SEG = 64 * 1024
TAG = 16
MiB = 1 << 20


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = CofferServer(tmp_path_factory.mktemp("coffer-kp-tamper")).start()
    yield s
    if s.running:
        s.stop()


@pytest.fixture(scope="module")
def s3(srv):
    return ibm_sigv4_client(srv)


@pytest.fixture(scope="module")
def keys(srv) -> tuple[dict, dict]:
    inst = srv.bootstrap["kms_instance_id"]
    authorize_cos_on_kms(IamAdmin(srv), inst)
    raw = KpRaw(srv, inst)
    return raw.create_key(), raw.create_key()


def kp_bucket(s3, crn: str) -> str:
    name = unique_name("kpt")
    s3.create_bucket(Bucket=name, IBMSSEKPEncryptionAlgorithm="AES256", IBMSSEKPCustomerRootKeyCrn=crn)
    return name


@pytest.fixture(scope="module")
def bucket(s3, keys) -> str:
    return kp_bucket(s3, keys[0]["crn"])


@pytest.fixture(scope="module")
def other_bucket(s3, keys) -> str:
    """A bucket under another root key."""
    return kp_bucket(s3, keys[1]["crn"])


def pattern(n: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


def put_and_find_blob(srv, s3, bucket: str, key: str, data: bytes) -> Path:
    """Uploads `data` and returns the one blob file the upload created."""
    before = blob_files(srv)
    assert s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"] == quoted_md5(data)
    new = blob_files(srv) - before
    assert len(new) == 1, f"expected one new blob for {key}, got {sorted(new)}"
    return new.pop()


def segments(size: int) -> int:
    return max(1, -(-size // SEG))


def header_len(blob: Path, size: int) -> int:
    """The bytes of the blob that are neither ciphertext nor tags (the format header)."""
    return blob.stat().st_size - size - TAG * segments(size)


# -- reading, with every byte accounted for ------------------------------------------------------


@dataclass
class Outcome:
    status: int  # 0: the connection closed before any status line
    code: str
    body: bytes
    broken: bool  # the body broke off (connection closed before the declared length)


def fetch(srv: CofferServer, bucket: str, key: str, headers: dict | None = None, query: str = "") -> Outcome:
    """A SigV4-signed GET read as a stream, keeping the bytes that came before any break."""
    ak, sk = srv.credentials
    url = f"{srv.endpoint}/{bucket}/{key}" + (f"?{query}" if query else "")
    req = AWSRequest(method="GET", url=url, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(ak, sk), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    body = bytearray()
    broken = False
    try:
        r = requests.get(prepared.url, headers=dict(prepared.headers), stream=True, timeout=60)
    except requests.exceptions.ConnectionError:
        # The connection closed before a status line: nothing was sent at all.
        return Outcome(0, "", b"", True)
    with r:
        try:
            for chunk in r.iter_content(8192):
                body += chunk
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
            broken = True
        declared = r.headers.get("Content-Length")
        if declared is not None and r.status_code < 300 and int(declared) != len(body):
            broken = True
        code = ""
        if r.status_code >= 300 and body:
            try:
                code = ET.fromstring(bytes(body)).findtext("Code") or ""
            except ET.ParseError:
                pass
        return Outcome(r.status_code, code, bytes(body), broken)


def assert_fails_safely(srv, bucket: str, key: str, expected: bytes, headers: dict | None = None,
                        query: str = "") -> Outcome:
    """The read fails: a 5xx InternalError, or a body that breaks off or stops short — and any
    bytes sent are a prefix of `expected` (the right bytes of the requested range)."""
    out = fetch(srv, bucket, key, headers, query)
    what = f"GET {bucket}/{key}?{query} {headers or ''}"
    if out.status == 0:
        return out
    if out.status >= 300:
        assert out.status >= 500 and out.code == "InternalError", \
            f"{what}: expected 5xx InternalError, got {out.status} {out.code} {out.body[:200]!r}"
        return out
    assert out.status in (200, 206), f"{what}: {out.status}"
    assert out.body == expected[:len(out.body)], f"{what}: WRONG BYTES at {first_difference(out.body, expected)}"
    assert out.broken or len(out.body) < len(expected), \
        f"{what}: the tampered object was served whole ({len(out.body)} bytes)"
    return out


def assert_right_or_nothing(srv, bucket: str, key: str, expected: bytes, headers: dict | None = None) -> None:
    """The read may succeed, but only with the right bytes; if it fails, it fails safely."""
    out = fetch(srv, bucket, key, headers)
    if out.status < 300 and not out.broken and out.body == expected:
        return
    if out.status == 0:
        return
    if out.status < 300:
        assert out.body == expected[:len(out.body)], f"WRONG BYTES at {first_difference(out.body, expected)}"
        assert out.broken or len(out.body) < len(expected)
    else:
        assert out.status >= 500 and out.code == "InternalError", (out.status, out.code)


def first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def assert_reads_back(srv, bucket: str, key: str, data: bytes) -> None:
    out = fetch(srv, bucket, key)
    assert (out.status, out.broken) == (200, False) and out.body == data, (out.status, out.code, out.broken)


def flip(path: Path, offset: int) -> int:
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([old ^ 0x01]))
        f.flush()
        os.fsync(f.fileno())
    return old


def write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def replace_contents(path: Path, data: bytes) -> None:
    """Overwrites a file in place (same inode)."""
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(data)
        f.truncate(len(data))
        f.flush()
        os.fsync(f.fileno())


def rng(lo: int, hi: int) -> dict:
    return {"Range": f"bytes={lo}-{hi}"}


# -- the format on disk --------------------------------------------------------------------------


def test_blob_is_segmented_ciphertext(srv, s3, bucket):
    """Each blob is one fixed header plus, per 64 KiB segment, the ciphertext and a 16-byte tag —
    and not the plaintext."""
    # Above the inline limit: smaller objects live in the metadata record, not in a blob.
    sizes = [INLINE_MAX + 1, SEG - 1, SEG + 1, 3 * SEG + 1000]
    found = {}
    for size in sizes:
        data = pattern(size, f"fmt-{size}")
        blob = put_and_find_blob(srv, s3, bucket, f"fmt-{size}", data)
        found[size] = header_len(blob, size)
        raw = blob.read_bytes()
        assert data[:32] not in raw and data[-32:] not in raw
    assert len(set(found.values())) == 1, f"header lengths by size: {found}"
    h = found[sizes[0]]
    assert 0 < h <= 1024, found
    # Two uploads of the same bytes share nothing but the length.
    data = pattern(SEG + 1, "same")
    one = put_and_find_blob(srv, s3, bucket, "same-1", data).read_bytes()
    two = put_and_find_blob(srv, s3, bucket, "same-2", data).read_bytes()
    assert len(one) == len(two)
    assert one[h:h + 64] != two[h:h + 64], "per-object keys: equal plaintexts give different ciphertexts"


# -- a flipped byte --------------------------------------------------------------------------------


FLIPS = {
    # name: offset after the header, for a 4-segment object (3 full segments and 1000 bytes)
    "first-segment": lambda h: h + 100,
    "first-tag": lambda h: h + SEG + 5,
    "third-segment": lambda h: h + 2 * (SEG + TAG) + 1234,
    "last-segment": lambda h: h + 3 * (SEG + TAG) + 10,
    "last-byte": lambda h: h + 3 * (SEG + TAG) + 1000 + TAG - 1,
}


@pytest.mark.parametrize("where", list(FLIPS))
def test_flipped_byte(srv, s3, bucket, where):
    size = 3 * SEG + 1000
    data = pattern(size, "flip-" + where)
    key = f"flip-{where}"
    blob = put_and_find_blob(srv, s3, bucket, key, data)
    h = header_len(blob, size)
    offset = FLIPS[where](h)
    assert offset < blob.stat().st_size
    segment = (offset - h) // (SEG + TAG)
    old = flip(blob, offset)
    try:
        assert_fails_safely(srv, bucket, key, data)
        # A range inside the tampered segment, and one that ends in it.
        lo = segment * SEG + 3
        hi = min(lo + 50, size - 1)
        assert_fails_safely(srv, bucket, key, data[lo:hi + 1], rng(lo, hi))
        assert_fails_safely(srv, bucket, key, data[0:hi + 1], rng(0, hi))
        # Segments before it are intact: right bytes (or a safe failure).
        if segment > 0:
            assert_right_or_nothing(srv, bucket, key, data[:SEG], rng(0, SEG - 1))
        # Metadata needs no ciphertext.
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == size
    finally:
        write_at(blob, offset, bytes([old]))
    assert_reads_back(srv, bucket, key, data)


@pytest.mark.parametrize("offset", [0, 4, 20, 45], ids=["magic", "version", "salt", "nonce-prefix"])
def test_flipped_header_byte(srv, s3, bucket, offset):
    """A flipped byte in the header region: either the right bytes or a safe failure."""
    data = pattern(2 * SEG + 7, f"hdr-{offset}")
    key = f"hdr-{offset}"
    blob = put_and_find_blob(srv, s3, bucket, key, data)
    assert offset < header_len(blob, len(data))
    old = flip(blob, offset)
    try:
        assert_right_or_nothing(srv, bucket, key, data)
        assert_right_or_nothing(srv, bucket, key, data[SEG:SEG + 11], rng(SEG, SEG + 10))
    finally:
        write_at(blob, offset, bytes([old]))
    assert_reads_back(srv, bucket, key, data)


def test_flipped_byte_in_a_multipart_part(srv, s3, bucket):
    key = "flip-multipart"
    p1, p2 = pattern(5 * MiB, "mp-1"), pattern(3 * SEG + 9, "mp-2")
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    r1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=p1)
    before = blob_files(srv)
    r2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=p2)
    new = blob_files(srv) - before
    assert len(new) == 1, new
    blob = new.pop()
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}]})
    whole = p1 + p2
    assert_reads_back(srv, bucket, key, whole)
    h = header_len(blob, len(p2))
    offset = h + (SEG + TAG) + 77  # the second segment of part 2
    old = flip(blob, offset)
    try:
        out = assert_fails_safely(srv, bucket, key, whole)
        assert out.status >= 500 or len(out.body) <= len(p1) + SEG, "nothing past the tampered segment"
        assert_fails_safely(srv, bucket, key, p2, query="partNumber=2")
        lo, hi = len(p1) - 10, len(p1) + SEG + 100
        assert_fails_safely(srv, bucket, key, whole[lo:hi + 1], rng(lo, hi))
        assert_right_or_nothing(srv, bucket, key, whole[:len(p1) + SEG], rng(0, len(p1) + SEG - 1))
        # Part 1 is intact.
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=1)["Body"].read()
        assert got == p1
    finally:
        write_at(blob, offset, bytes([old]))
    assert_reads_back(srv, bucket, key, whole)


# -- truncation ----------------------------------------------------------------------------------


TRUNCATIONS = {
    "one-byte": lambda h, total: total - 1,
    "last-tag": lambda h, total: total - TAG,
    "segment-boundary": lambda h, total: h + (SEG + TAG),
    "header-only": lambda h, total: h,
    "empty": lambda h, total: 0,
}


@pytest.mark.parametrize("how", list(TRUNCATIONS))
def test_truncated_blob(srv, s3, bucket, how):
    size = 3 * SEG + 1000
    data = pattern(size, "trunc-" + how)
    key = f"trunc-{how}"
    blob = put_and_find_blob(srv, s3, bucket, key, data)
    original = blob.read_bytes()
    h = header_len(blob, size)
    cut = TRUNCATIONS[how](h, len(original))
    os.truncate(blob, cut)
    try:
        assert_fails_safely(srv, bucket, key, data)
        assert_fails_safely(srv, bucket, key, data[size - 20:], rng(size - 20, size - 1))
        assert_fails_safely(srv, bucket, key, data[size - 20:], {"Range": "bytes=-20"})
    finally:
        replace_contents(blob, original)
    assert_reads_back(srv, bucket, key, data)


def test_truncated_blob_of_an_exact_segment_multiple(srv, s3, bucket):
    """Dropping whole trailing segments of an object whose size is a segment multiple."""
    size = 4 * SEG
    data = pattern(size, "exact")
    blob = put_and_find_blob(srv, s3, bucket, "exact", data)
    original = blob.read_bytes()
    h = header_len(blob, size)
    # The blob may or may not end with an empty last segment; cut right after the third one.
    os.truncate(blob, h + 3 * (SEG + TAG))
    try:
        assert_fails_safely(srv, bucket, "exact", data)
        assert_fails_safely(srv, bucket, "exact", data[3 * SEG:], rng(3 * SEG, size - 1))
    finally:
        replace_contents(blob, original)
    assert_reads_back(srv, bucket, "exact", data)


# -- swapped and stale blobs -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["same-bucket", "other-key"])
def test_swapped_blobs(srv, s3, bucket, other_bucket, where):
    size = 2 * SEG + 500
    a_data, b_data = pattern(size, "swap-a-" + where), pattern(size, "swap-b-" + where)
    b_bucket = bucket if where == "same-bucket" else other_bucket
    a = put_and_find_blob(srv, s3, bucket, f"swap-a-{where}", a_data)
    b = put_and_find_blob(srv, s3, b_bucket, f"swap-b-{where}", b_data)
    a_raw, b_raw = a.read_bytes(), b.read_bytes()
    assert len(a_raw) == len(b_raw)
    replace_contents(a, b_raw)
    replace_contents(b, a_raw)
    try:
        assert_fails_safely(srv, bucket, f"swap-a-{where}", a_data)
        assert_fails_safely(srv, b_bucket, f"swap-b-{where}", b_data)
        assert_fails_safely(srv, bucket, f"swap-a-{where}", a_data[SEG:SEG + 10], rng(SEG, SEG + 9))
        assert_fails_safely(srv, b_bucket, f"swap-b-{where}", b_data[-10:], {"Range": "bytes=-10"})
    finally:
        replace_contents(a, a_raw)
        replace_contents(b, b_raw)
    assert_reads_back(srv, bucket, f"swap-a-{where}", a_data)
    assert_reads_back(srv, b_bucket, f"swap-b-{where}", b_data)


def test_swapped_segments_within_a_blob(srv, s3, bucket):
    size = 3 * SEG + 1000
    data = pattern(size, "segswap")
    blob = put_and_find_blob(srv, s3, bucket, "segswap", data)
    original = blob.read_bytes()
    h = header_len(blob, size)
    s0 = original[h:h + SEG + TAG]
    s1 = original[h + SEG + TAG:h + 2 * (SEG + TAG)]
    write_at(blob, h, s1 + s0)
    try:
        assert_fails_safely(srv, bucket, "segswap", data)
        assert_fails_safely(srv, bucket, "segswap", data[SEG:SEG + 100], rng(SEG, SEG + 99))
    finally:
        replace_contents(blob, original)
    assert_reads_back(srv, bucket, "segswap", data)


def test_stale_blob_of_an_overwritten_object(srv, s3, bucket):
    """The ciphertext of an object's previous version put back in place of the current one."""
    size = SEG + 4321
    v1, v2 = pattern(size, "stale-1"), pattern(size, "stale-2")
    old_blob = put_and_find_blob(srv, s3, bucket, "stale", v1)
    old_raw = old_blob.read_bytes()
    new_blob = put_and_find_blob(srv, s3, bucket, "stale", v2)
    assert new_blob != old_blob
    current = new_blob.read_bytes()
    assert len(current) == len(old_raw)
    replace_contents(new_blob, old_raw)
    try:
        assert_fails_safely(srv, bucket, "stale", v2)
        out = fetch(srv, bucket, "stale")
        assert v1[:64] not in out.body, "the previous version must not come back"
    finally:
        replace_contents(new_blob, current)
    assert_reads_back(srv, bucket, "stale", v2)
