"""Crash safety: `kill -9` in the middle of concurrent uploads, restart on the same data dir,
and nothing acknowledged is lost, nothing partial is visible, nothing is left behind.

Every object's bytes are a function of its key (the key names its size and, for multipart
objects, its part size), so any object found after a crash can be checked in full, whether
or not its upload was acknowledged before the kill.
"""

import hashlib
import random
import re
import threading
import time
from dataclasses import dataclass

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import INLINE_MAX, MiB, CofferServer, make_client

KiB = 1024
SINGLE_SIZES = [1 * KiB, 17 * KiB, 256 * KiB, 1 * MiB, 3 * MiB + 7, 8 * MiB]
# (total size, part size): all parts but the last are 5 MiB.
MULTIPART_SHAPES = [(5 * MiB + 300 * KiB, 5 * MiB), (10 * MiB + 1, 5 * MiB)]
THREADS = 4
BUCKET = "crash-bucket"
KEY_RE = re.compile(r"^r\d+/t\d+/\d+-(?P<kind>put|mpu)-(?P<size>\d+)(?:-(?P<part>\d+))?$")


def body_for(key: str, size: int) -> bytes:
    return random.Random(key).randbytes(size)


def parts_of(data: bytes, part_size: int) -> list[bytes]:
    return [data[i:i + part_size] for i in range(0, len(data), part_size)]


def expected_etag(key: str) -> str:
    m = KEY_RE.match(key)
    assert m, f"unexpected key {key!r}"
    data = body_for(key, int(m["size"]))
    if m["kind"] == "put":
        return f'"{hashlib.md5(data).hexdigest()}"'
    parts = parts_of(data, int(m["part"]))
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


@dataclass
class Ack:
    key: str
    size: int
    md5: str
    etag: str


class Uploader:
    """THREADS threads uploading until the server dies; records every acknowledged upload."""

    def __init__(self, server: CofferServer, round_no: int):
        self.client = make_client(server.endpoint, *server.credentials, connect_timeout=2, read_timeout=20)
        self.round_no = round_no
        self.acked: list[Ack] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.killing = threading.Event()
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(THREADS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "an upload thread hung after the kill"

    def _run(self, t: int):
        rng = random.Random(f"{self.round_no}/{t}")
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if rng.random() < 0.2:
                    total, part = rng.choice(MULTIPART_SHAPES)
                    self._multipart(f"r{self.round_no}/t{t}/{i:04d}-mpu-{total}-{part}", total, part)
                else:
                    size = rng.choice(SINGLE_SIZES)
                    self._put(f"r{self.round_no}/t{t}/{i:04d}-put-{size}", size)
            except (BotoCoreError, ClientError, OSError, AssertionError) as exc:
                if not self.killing.is_set():
                    # Before the kill, every upload must succeed.
                    with self.lock:
                        self.failures.append(f"thread {t}: {type(exc).__name__}: {exc}")
                    return
                # The server is gone: what was not acknowledged may or may not exist.
                if self.stop.is_set():
                    return
                time.sleep(0.05)

    def _record(self, key: str, data: bytes, etag: str):
        with self.lock:
            self.acked.append(Ack(key, len(data), hashlib.md5(data).hexdigest(), etag))

    def _put(self, key: str, size: int):
        data = body_for(key, size)
        resp = self.client.put_object(Bucket=BUCKET, Key=key, Body=data)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert resp["ETag"] == expected_etag(key)
        self._record(key, data, resp["ETag"])

    def _multipart(self, key: str, total: int, part_size: int):
        data = body_for(key, total)
        c = self.client
        upload_id = c.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        done = []
        for n, p in enumerate(parts_of(data, part_size), 1):
            etag = c.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=n, Body=p)["ETag"]
            done.append({"PartNumber": n, "ETag": etag})
        resp = c.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id,
                                           MultipartUpload={"Parts": done})
        assert resp["ETag"] == expected_etag(key)
        self._record(key, data, resp["ETag"])


def run_round_and_kill(server: CofferServer, round_no: int, min_acked: int = 12, max_wait: float = 40.0):
    up = Uploader(server, round_no)
    up.start()
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        with up.lock:
            if len(up.acked) >= min_acked:
                break
        time.sleep(0.05)
    # Let the threads get into the middle of their next uploads, then pull the plug.
    time.sleep(random.uniform(0.05, 0.4))
    up.killing.set()
    server.kill9()
    up.stop.set()
    up.join()
    assert up.failures == []
    assert len(up.acked) >= min_acked, f"only {len(up.acked)} uploads were acknowledged before the kill"
    return up.acked


def verify_after_restart(server: CofferServer, acked: list[Ack]):
    s3 = server.client()

    # 1. Every acknowledged upload is there, whole.
    for a in acked:
        got = s3.get_object(Bucket=BUCKET, Key=a.key)
        assert got["ETag"] == a.etag, a.key
        assert got["ContentLength"] == a.size, a.key
        assert hashlib.md5(got["Body"].read()).hexdigest() == a.md5, a.key

    # 2. Nothing listed is partial: every object is the full body its key names.
    listed = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
              for o in page.get("Contents", [])]
    listed_keys = {o["Key"] for o in listed}
    assert {a.key for a in acked} <= listed_keys
    pieces = 0
    for o in listed:
        m = KEY_RE.match(o["Key"])
        assert m, o["Key"]
        size = int(m["size"])
        assert o["Size"] == size, o["Key"]
        assert o["ETag"] == expected_etag(o["Key"]), o["Key"]
        data = s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        assert len(data) == size, o["Key"]
        assert data == body_for(o["Key"], size), o["Key"]
        if m["kind"] == "put":
            assert o["ETag"] == f'"{hashlib.md5(data).hexdigest()}"', o["Key"]
            # Small objects are stored inline in their record, without a blob.
            pieces += size > INLINE_MAX
        else:
            pieces += len(parts_of(data, int(m["part"])))

    # 3. Uploads cut short are still listed with their parts (and can be aborted later).
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET):
        for u in page.get("Uploads", []):
            parts = s3.list_parts(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
            pieces += len(parts)

    # 4. No half-written blob survived the restart, and no blob is orphaned.
    tmp = server.data_dir / "blobs" / "tmp"
    assert tmp.is_dir()
    assert sorted(p.name for p in tmp.iterdir()) == [], "leftover files under blobs/tmp"
    blob_files = [p for p in (server.data_dir / "blobs" / "blobs").rglob("*") if p.is_file()]
    assert len(blob_files) == pieces, f"{len(blob_files)} blob files for {pieces} referenced pieces"
    return listed_keys


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory):
    srv = CofferServer(tmp_path_factory.mktemp("coffer-crash")).start()
    srv.client().create_bucket(Bucket=BUCKET)
    yield srv
    if srv.running:
        srv.stop()


def test_kill9_during_uploads_loses_nothing_acknowledged(crash_server):
    credentials = crash_server.credentials
    acked: list[Ack] = []
    for round_no in (1, 2, 3):
        acked += run_round_and_kill(crash_server, round_no)
        crash_server.restart()
        listed = verify_after_restart(crash_server, acked)
        assert any(k.startswith(f"r{round_no}/") for k in listed)
    # The credentials made at the first start survived every crash.
    assert crash_server.credentials == credentials
    s3 = make_client(crash_server.endpoint, *credentials)
    assert s3.head_bucket(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 200
