"""The `coffer serve` process itself: bootstrap file, health, preset credentials, graceful
shutdown and restart on the same data dir."""

import hashlib
import os
import stat
import subprocess
import threading
import time

import pytest
import requests

from conftest import COFFER_BIN, REGION, CofferServer, make_client, quoted_md5, unique_name

BOOTSTRAP_FIELDS = {
    "account_id", "cos_instance_id", "cos_instance_crn", "region", "admin_iam_id",
    "admin_access_key_id", "admin_secret_access_key", "s3_endpoint", "control_endpoint",
}


def test_bootstrap_file(server):
    path = server.bootstrap_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    b = server.bootstrap
    assert BOOTSTRAP_FIELDS <= set(b)
    assert all(isinstance(b[f], str) and b[f] for f in BOOTSTRAP_FIELDS)
    assert b["region"] == REGION
    assert b["s3_endpoint"] == server.endpoint
    assert b["control_endpoint"] == server.control_endpoint
    assert b["cos_instance_id"] in b["cos_instance_crn"]
    assert b["cos_instance_crn"].startswith("crn:")


def test_startup_banner(server):
    assert "coffer is starting" in server.stdout_path.read_text()


def test_health(server):
    r = requests.get(f"{server.control_endpoint}/health", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["status"] == "ok"


def test_preset_admin_credentials(tmp_path):
    ak, sk = "E2EPRESETACCESSKEY01", "e2e-preset-secret-key-0123456789abcdefgh"
    srv = CofferServer(tmp_path, env={"COFFER_ADMIN_ACCESS_KEY": ak, "COFFER_ADMIN_SECRET_KEY": sk}).start()
    try:
        assert srv.credentials == (ak, sk)
        s3 = make_client(srv.endpoint, ak, sk)
        name = unique_name()
        s3.create_bucket(Bucket=name)
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        srv.stop()


def test_only_one_preset_credential_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_ADMIN_")}
    env["COFFER_ADMIN_ACCESS_KEY"] = "ONLYTHEACCESSKEY0000"
    proc = subprocess.run(
        [str(COFFER_BIN), "serve", "--data-dir", str(tmp_path / "data"),
         "--s3-listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"],
        env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert not (tmp_path / "data" / "bootstrap.json").exists()


def test_graceful_restart_keeps_everything(tmp_path):
    srv = CofferServer(tmp_path).start()
    try:
        first = srv.bootstrap
        s3 = srv.client()
        name = unique_name()
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-south-vault"})
        data = os.urandom(2 * 1024 * 1024)
        s3.put_object(Bucket=name, Key="kept", Body=data, Metadata={"a": "b"})
        upload_id = s3.create_multipart_upload(Bucket=name, Key="pending")["UploadId"]
        s3.upload_part(Bucket=name, Key="pending", UploadId=upload_id, PartNumber=1, Body=b"part one")

        assert srv.stop() == 0
        srv.start()

        second = srv.bootstrap
        for field in ("account_id", "cos_instance_id", "admin_access_key_id", "admin_secret_access_key"):
            assert second[field] == first[field], field
        s3 = make_client(srv.endpoint, first["admin_access_key_id"], first["admin_secret_access_key"])
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "us-south-vault"
        got = s3.get_object(Bucket=name, Key="kept")
        assert got["Body"].read() == data
        assert got["Metadata"] == {"a": "b"}
        parts = s3.list_parts(Bucket=name, Key="pending", UploadId=upload_id)["Parts"]
        assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, quoted_md5(b"part one"))]
    finally:
        if srv.running:
            srv.stop()


class SlowBody:
    """A file-like body that trickles out, so that a request is still in flight for a while."""

    def __init__(self, data: bytes, block: int, delay: float):
        self.data, self.block, self.delay, self.pos = data, block, delay, 0
        self.started = threading.Event()

    def __len__(self):
        return len(self.data)

    def read(self, n=-1):
        self.started.set()
        if self.pos >= len(self.data):
            return b""
        time.sleep(self.delay)
        n = self.block if n is None or n < 0 else min(n, self.block)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


def test_sigterm_lets_in_flight_upload_finish(tmp_path):
    srv = CofferServer(tmp_path).start()
    try:
        s3 = srv.client()
        name = unique_name()
        s3.create_bucket(Bucket=name)
        data = os.urandom(2 * 1024 * 1024)
        url = s3.generate_presigned_url("put_object", Params={"Bucket": name, "Key": "in-flight"}, ExpiresIn=300)
        body = SlowBody(data, block=64 * 1024, delay=0.05)  # ~1.6 s in all
        result = {}

        def upload():
            try:
                result["resp"] = requests.put(url, data=body, timeout=60)
            except requests.RequestException as exc:
                result["error"] = exc

        t = threading.Thread(target=upload)
        t.start()
        assert body.started.wait(10)
        time.sleep(0.3)
        assert 0 < body.pos < len(data), "the upload must be in flight when SIGTERM arrives"
        assert srv.stop() == 0  # SIGTERM; returns once the process has exited
        t.join(60)
        assert "error" not in result, result.get("error")
        assert result["resp"].status_code == 200, result["resp"].text
        assert result["resp"].headers["ETag"] == quoted_md5(data)
        assert body.pos == len(data)

        srv.start()
        got = srv.client().get_object(Bucket=name, Key="in-flight")["Body"].read()
        assert hashlib.md5(got).hexdigest() == hashlib.md5(data).hexdigest()
    finally:
        if srv.running:
            srv.stop()


def test_second_server_on_same_data_dir_is_refused(server):
    proc = subprocess.run(
        [str(COFFER_BIN), "serve", "--data-dir", str(server.data_dir),
         "--s3-listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"],
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert server.running
    assert requests.get(f"{server.control_endpoint}/health", timeout=10).status_code == 200


@pytest.mark.parametrize("flag,value", [("--region", "US_SOUTH"), ("--s3-listen", "not-an-address")])
def test_invalid_flags_exit_nonzero(tmp_path, flag, value):
    proc = subprocess.run(
        [str(COFFER_BIN), "serve", "--data-dir", str(tmp_path / "d"), flag, value],
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert not (tmp_path / "d" / "bootstrap.json").exists()
