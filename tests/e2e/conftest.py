"""Shared helpers and fixtures of the end-to-end suite: the real `coffer` binary, started on
free loopback ports in a fresh data dir, and S3 clients pointed at it.

Run from the repository root:

    python3 -m venv .venv && .venv/bin/pip install -r tests/e2e/requirements.txt
    .venv/bin/python -m pytest tests/e2e -q

`COFFER_BIN` names the binary (default: `<repo>/target/debug/coffer`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
COFFER_BIN = Path(os.environ.get("COFFER_BIN", REPO / "target" / "debug" / "coffer"))
REGION = "us-south"
READY_TIMEOUT = 30.0
MiB = 1 << 20
# Objects whose stored bytes (sealed, in encrypted buckets) fit in this many bytes are kept inline
# in their metadata record instead of a blob file (`coffer_objects::INLINE_MAX`).
INLINE_MAX = 8 << 10


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class CofferServer:
    """One `coffer serve` process on its own data dir.

    The ports are chosen once and kept across restarts, so clients made before a restart keep
    working after it.
    """

    live: list["CofferServer"] = []
    every: list["CofferServer"] = []

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, domain: str = "localhost"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.stdout_path = self.workdir / "server.stdout"
        self.s3_port, self.control_port = free_ports(2)
        self.domain = domain
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        CofferServer.every.append(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "CofferServer":
        assert self.proc is None, "already running"
        if not COFFER_BIN.exists():
            raise RuntimeError(f"{COFFER_BIN} is missing: run `cargo build -p coffer` or set COFFER_BIN")
        env = dict(os.environ)
        env.pop("COFFER_ADMIN_ACCESS_KEY", None)
        env.pop("COFFER_ADMIN_SECRET_KEY", None)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        cmd = [
            str(COFFER_BIN),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--s3-listen",
            f"127.0.0.1:{self.s3_port}",
            "--control-listen",
            f"127.0.0.1:{self.control_port}",
            "--region",
            REGION,
            "--domain",
            self.domain,
        ]
        with open(self.log_path, "ab") as err, open(self.stdout_path, "ab") as out:
            err.write(f"\n===== start #{self.starts + 1}: {' '.join(cmd)}\n".encode())
            err.flush()
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        self.starts += 1
        CofferServer.live.append(self)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"coffer exited with {self.proc.returncode} while starting:\n{self.log_tail()}"
                )
            if self._accepts_tcp():
                try:
                    r = requests.get(f"{self.control_endpoint}/health", timeout=2)
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        return
                except (requests.RequestException, ValueError):
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"coffer not ready after {timeout}s:\n{self.log_tail()}")

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.s3_port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code."""
        proc = self._take()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"coffer ignored SIGTERM for {timeout}s:\n{self.log_tail()}")
        return proc.returncode

    def kill9(self) -> None:
        proc = self._take()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self) -> "CofferServer":
        if self.proc is not None:
            self.stop()
        return self.start()

    def _take(self) -> subprocess.Popen:
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        if self in CofferServer.live:
            CofferServer.live.remove(self)
        return proc

    # -- what clients need -------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def control_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def bootstrap_path(self) -> Path:
        return self.data_dir / "bootstrap.json"

    @property
    def bootstrap(self) -> dict:
        return json.loads(self.bootstrap_path.read_text())

    @property
    def credentials(self) -> tuple[str, str]:
        b = self.bootstrap
        return b["admin_access_key_id"], b["admin_secret_access_key"]

    def client(self, *, endpoint: str | None = None, access_key: str | None = None,
               secret_key: str | None = None, **config):
        return make_client(
            endpoint or self.endpoint,
            access_key or self.credentials[0],
            secret_key or self.credentials[1],
            **config,
        )

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_tail(self, lines: int = 30, since: int | None = None) -> str:
        """The last `lines` lines of the server's stderr, only those after byte `since` if given."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since or 0)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def make_client(endpoint: str, access_key: str, secret_key: str, *, addressing_style: str = "path",
                s3_extra: dict | None = None, **config):
    s3cfg = {"addressing_style": addressing_style, **(s3_extra or {})}
    settings = {
        "signature_version": "s3v4",
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 120,
        "max_pool_connections": 16,
        **config,
    }
    cfg = Config(s3=s3cfg, **settings)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=cfg,
    )


# -- pytest plumbing -------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach what each server logged during the test (or its tail)."""
    outcome = yield
    rep = outcome.get_result()
    if call.when == "setup":
        item._coffer_log_marks = {id(s): s.log_size() for s in CofferServer.every}
    if rep.failed:
        marks = getattr(item, "_coffer_log_marks", {})
        for server in CofferServer.every:
            if server in CofferServer.live or id(server) not in marks or server.log_size() > marks[id(server)]:
                rep.sections.append(
                    (f"coffer log ({server.workdir.name})", server.log_tail(since=marks.get(id(server))))
                )


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = CofferServer(tmp_path_factory.mktemp("coffer-session")).start()
    yield srv
    if srv.running:
        srv.stop()


@pytest.fixture(scope="session")
def s3(server):
    return server.client()


def unique_name(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def empty_bucket(client, name: str) -> None:
    """Aborts the uploads and deletes the objects of a bucket (best effort)."""
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for u in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    except ClientError:
        pass


def delete_bucket(client, name: str) -> None:
    empty_bucket(client, name)
    try:
        client.delete_bucket(Bucket=name)
    except ClientError:
        pass


@pytest.fixture
def bucket(s3):
    """A fresh, empty bucket, removed with its contents afterwards."""
    name = unique_name()
    s3.create_bucket(Bucket=name)
    yield name
    delete_bucket(s3, name)


# -- assertions and small helpers ------------------------------------------------------------


def error_of(exc: ClientError) -> tuple[int, str]:
    return (
        exc.response["ResponseMetadata"]["HTTPStatusCode"],
        exc.response.get("Error", {}).get("Code", ""),
    )


def assert_client_error(excinfo, status: int, code: str | None) -> None:
    got_status, got_code = error_of(excinfo.value)
    assert got_status < 500 or got_status == status == 501, f"server error {got_status} {got_code}"
    assert got_status == status, f"expected {status} {code}, got {got_status} {got_code}"
    if code is not None:
        assert got_code == code, f"expected {status} {code}, got {got_status} {got_code}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def quoted_md5(data: bytes) -> str:
    return f'"{md5_hex(data)}"'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crc32_b64(data: bytes) -> str:
    import zlib

    return b64((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big"))


def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c_b64(data: bytes) -> str:
    """CRC32C (Castagnoli), big-endian, base64: the x-amz-checksum-crc32c value. Pure Python,
    for small bodies."""
    c = 0xFFFFFFFF
    for byte in data:
        c = _CRC32C[(c ^ byte) & 0xFF] ^ (c >> 8)
    return b64((c ^ 0xFFFFFFFF).to_bytes(4, "big"))


def s3_error_code(resp: requests.Response) -> str:
    """The <Code> of an S3 XML error body ('' when there is none)."""
    if not resp.content:
        return ""
    try:
        root = ET.fromstring(resp.content)
    except ET.ParseError:
        return ""
    node = root.find("Code")
    if node is None:
        node = root.find("{*}Code")
    return node.text if node is not None and node.text else ""


def assert_raw_error(resp: requests.Response, status: int, code: str | None) -> None:
    got = s3_error_code(resp)
    detail = f"{resp.request.method} {resp.request.url}: {resp.status_code} {got} {resp.text[:300]!r}"
    assert resp.status_code < 500 or resp.status_code == status == 501, detail
    assert resp.status_code == status, f"expected {status} {code}; got {detail}"
    if code is not None:
        assert got == code, f"expected {status} {code}; got {detail}"


# -- raw signed requests ---------------------------------------------------------------------


def signed_request(server: CofferServer, method: str, path: str, *, query: str = "",
                   headers: dict | None = None, body: bytes = b"",
                   credentials: tuple[str, str] | None = None, timeout: float = 60) -> requests.Response:
    """Sends any request, SigV4-signed (payload signed) with botocore's S3 signer.

    `path` is the already-encoded path (`/bucket/key`); `query` the encoded query string.
    """
    ak, sk = credentials or server.credentials
    url = server.endpoint + path + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(ak, sk), "s3", REGION).add_auth(req)
    prepared = req.prepare()
    return requests.request(method, prepared.url, headers=dict(prepared.headers), data=body,
                            timeout=timeout)


def key_path(bucket: str, key: str) -> str:
    return f"/{bucket}/{quote(key, safe='/~')}"


# -- aws-chunked bodies ----------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, REGION)
    k = _hmac(k, "s3")
    return _hmac(k, "aws4_request")


class FixedPayloadSigner(S3SigV4Auth):
    """botocore's S3 signer with a chosen x-amz-content-sha256 (the seed of a streaming upload)."""

    def __init__(self, credentials, content_sha256: str):
        super().__init__(credentials, "s3", REGION)
        self._content_sha256 = content_sha256

    def payload(self, request):
        return self._content_sha256


def put_aws_chunked(server: CofferServer, bucket: str, key: str, data: bytes, *, chunk_size: int = 64 * 1024,
                    tamper_chunk: int | None = None, extra_headers: dict | None = None) -> requests.Response:
    """PutObject with `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed, chained from the
    seed signature. `tamper_chunk` flips a byte of that chunk after signing it."""
    ak, sk = server.credentials
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        **(extra_headers or {}),
    }
    # The encoded length does not depend on the signatures (64 hex digits each).
    encoded_len = sum(len(f"{len(c):x};chunk-signature={'0' * 64}\r\n") + len(c) + 2 for c in chunks)
    headers["Content-Length"] = str(encoded_len)
    url = server.endpoint + key_path(bucket, key)
    req = AWSRequest(method="PUT", url=url, data=b"", headers=headers)
    FixedPayloadSigner(Credentials(ak, sk), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD").add_auth(req)
    prepared = req.prepare()
    amz_date = prepared.headers["X-Amz-Date"]
    seed = prepared.headers["Authorization"].rsplit("Signature=", 1)[1]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key_bytes = signing_key(sk, amz_date[:8])
    body = bytearray()
    prev = seed
    for i, chunk in enumerate(chunks):
        sts = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256, sha256_hex(chunk)]
        )
        sig = hmac.new(key_bytes, sts.encode(), hashlib.sha256).hexdigest()
        sent = chunk
        if tamper_chunk == i and chunk:
            sent = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        body += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + sent + b"\r\n"
        prev = sig
    assert len(body) == encoded_len
    return requests.put(prepared.url, headers=dict(prepared.headers), data=bytes(body), timeout=60)


def put_unsigned_trailer(server: CofferServer, bucket: str, key: str, data: bytes, *,
                         checksum_value: str | None = None, chunk_size: int = 64 * 1024) -> requests.Response:
    """PutObject with `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: an aws-chunked body whose CRC32
    comes as a trailer (what the AWS SDKs send over TLS)."""
    ak, sk = server.credentials
    value = checksum_value if checksum_value is not None else crc32_b64(data)
    body = bytearray()
    for i in range(0, len(data), chunk_size):
        c = data[i:i + chunk_size]
        body += f"{len(c):x}\r\n".encode() + c + b"\r\n"
    body += b"0\r\n" + f"x-amz-checksum-crc32:{value}\r\n".encode() + b"\r\n"
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "Content-Length": str(len(body)),
    }
    url = server.endpoint + key_path(bucket, key)
    req = AWSRequest(method="PUT", url=url, data=b"", headers=headers)
    FixedPayloadSigner(Credentials(ak, sk), "STREAMING-UNSIGNED-PAYLOAD-TRAILER").add_auth(req)
    prepared = req.prepare()
    return requests.put(prepared.url, headers=dict(prepared.headers), data=bytes(body), timeout=60)



# -- IAM: tokens, identities and policies through the control plane ---------------------------

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"

# Role name -> role CRN as IBM's policy API spells it.
ROLE_CRNS = {
    "ObjectReader": "crn:v1:bluemix:public:cloud-object-storage::::serviceRole:ObjectReader",
    "ContentReader": "crn:v1:bluemix:public:cloud-object-storage::::serviceRole:ContentReader",
    "ObjectWriter": "crn:v1:bluemix:public:cloud-object-storage::::serviceRole:ObjectWriter",
    "Reader": "crn:v1:bluemix:public:iam::::serviceRole:Reader",
    "Writer": "crn:v1:bluemix:public:iam::::serviceRole:Writer",
    "Manager": "crn:v1:bluemix:public:iam::::serviceRole:Manager",
    "Viewer": "crn:v1:bluemix:public:iam::::role:Viewer",
    "Operator": "crn:v1:bluemix:public:iam::::role:Operator",
    "Editor": "crn:v1:bluemix:public:iam::::role:Editor",
    "Administrator": "crn:v1:bluemix:public:iam::::role:Administrator",
}


def fetch_token(server: CofferServer, apikey: str, *, path: str = "/identity/token") -> dict:
    """The token response of an API-key grant (asserted 200)."""
    r = requests.post(f"{server.control_endpoint}{path}", data={"grant_type": APIKEY_GRANT, "apikey": apikey},
                      headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 200, f"token for an API key: {r.status_code} {r.text[:300]}"
    return r.json()


def jwt_parts(token: str) -> tuple[dict, dict, bytes]:
    """(header, claims, signature) of a JWT, nothing verified."""
    def dec(seg: str) -> bytes:
        return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))

    h, p, s = token.split(".")
    return json.loads(dec(h)), json.loads(dec(p)), dec(s)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def assert_platform_error(resp: requests.Response, status: int) -> dict:
    """An IBM platform API error: the status, and `{trace, errors[{code, message}], status_code}`."""
    detail = f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:400]!r}"
    assert resp.status_code == status, f"expected {status}; got {detail}"
    body = resp.json()
    assert isinstance(body.get("trace"), str) and body["trace"], detail
    assert body.get("status_code") == status, detail
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, detail
    assert isinstance(errors[0].get("code"), str) and errors[0]["code"], detail
    assert isinstance(errors[0].get("message"), str) and errors[0]["message"], detail
    return body


class IamAdmin:
    """Calls the control plane's platform APIs with a bearer token (the account owner's by default)."""

    def __init__(self, server: CofferServer, apikey: str | None = None):
        self.server = server
        b = server.bootstrap
        self.account_id = b["account_id"]
        self.cos_instance_id = b["cos_instance_id"]
        self.cos_instance_crn = b["cos_instance_crn"]
        self.apikey = apikey or b["admin_api_key"]
        self.token = fetch_token(server, self.apikey)["access_token"]

    def call(self, method: str, path: str, *, expect: int | None = None, token: str | None = None,
             **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kw.pop("headers", {})}
        r = requests.request(method, self.server.control_endpoint + path, headers=headers, timeout=10, **kw)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: expected {expect}, got {r.status_code} {r.text[:400]}"
        return r

    def create_user(self, name: str | None = None) -> dict:
        return self.call("POST", "/v1/users", json={"name": name or unique_name("user")}, expect=201).json()

    def create_service_id(self, name: str | None = None) -> dict:
        return self.call("POST", "/v1/serviceids", json={"name": name or unique_name("svc")}, expect=201).json()

    def create_apikey(self, iam_id: str, name: str | None = None) -> dict:
        body = {"name": name or unique_name("key"), "iam_id": iam_id}
        return self.call("POST", "/v1/apikeys", json=body, expect=201).json()

    def create_hmac(self, iam_id: str, instance_id: str | None = None) -> dict:
        body = {"iam_id": iam_id, "instance_id": instance_id or self.cos_instance_id}
        return self.call("POST", "/v1/hmac_keys", json=body, expect=201).json()

    def identity(self, kind: str = "user") -> dict:
        """A new user or service ID with an API key: `{iam_id, apikey, apikey_id}`."""
        ident = self.create_user() if kind == "user" else self.create_service_id()
        key = self.create_apikey(ident["iam_id"])
        return {"iam_id": ident["iam_id"], "apikey": key["apikey"], "apikey_id": key["id"], "identity": ident}

    def cos_resource(self, bucket: str | None = None) -> dict:
        attrs = [
            {"name": "accountId", "value": self.account_id},
            {"name": "serviceName", "value": "cloud-object-storage"},
            {"name": "serviceInstance", "value": self.cos_instance_id},
        ]
        if bucket is not None:
            attrs += [{"name": "resourceType", "value": "bucket"}, {"name": "resource", "value": bucket}]
        return {"attributes": attrs}

    def grant(self, iam_id: str, role: str, *, bucket: str | None = None) -> dict:
        """An access policy: `role` (a name of ROLE_CRNS) for `iam_id` on the COS instance (or one bucket)."""
        body = {
            "type": "access",
            "subjects": [{"attributes": [{"name": "iam_id", "value": iam_id}]}],
            "roles": [{"role_id": ROLE_CRNS[role]}],
            "resources": [self.cos_resource(bucket)],
        }
        return self.call("POST", "/v1/policies", json=body, expect=201).json()


@pytest.fixture(scope="session")
def iam(server) -> IamAdmin:
    """The account owner on the session server's control plane."""
    return IamAdmin(server)


def ibm_cos_client(server: CofferServer, apikey: str, *, instance_id: str | None = None, **config):
    """ibm_boto3 in IAM (oauth) mode with an API key, as IBM documents it, on a session of its
    own: ibm_botocore keeps the service instance id it injects into CreateBucket on the
    *session*, so a later client made on the shared default session (an HMAC one, say) would
    silently drop it from this one."""
    import ibm_boto3
    from ibm_botocore.client import Config as IbmConfig

    settings = {"signature_version": "oauth", "retries": {"max_attempts": 0}, "connect_timeout": 5,
                "read_timeout": 60, **config}
    return ibm_boto3.session.Session().client(
        "s3",
        ibm_api_key_id=apikey,
        ibm_service_instance_id=instance_id or server.bootstrap["cos_instance_id"],
        ibm_auth_endpoint=f"{server.control_endpoint}/identity/token",
        config=IbmConfig(**settings),
        endpoint_url=server.endpoint,
    )


def ibm_hmac_client(server: CofferServer, access_key: str, secret_key: str, **config):
    """ibm_boto3 with an HMAC credential (SigV4), on a session of its own (see ibm_cos_client)."""
    import ibm_boto3
    from ibm_botocore.client import Config as IbmConfig

    settings = {"signature_version": "s3v4", "retries": {"max_attempts": 0}, "connect_timeout": 5,
                "read_timeout": 60, "s3": {"addressing_style": "path"}, **config}
    return ibm_boto3.session.Session().client(
        "s3",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=IbmConfig(**settings),
        endpoint_url=server.endpoint,
    )


# -- Key Protect / Hyper Protect Crypto Services (the KMS) -------------------------------------

KP_KEY = "application/vnd.ibm.kms.key+json"
KP_KEY_ACTION = "application/vnd.ibm.kms.key_action+json"
KP_POLICY = "application/vnd.ibm.kms.policy+json"
KP_ERROR = "application/vnd.ibm.kms.error+json"

# Short KMS timing rules for tests that walk the lifecycle (the session `server` keeps IBM's).
KMS_FAST_TIMINGS = {
    "COFFER_KMS_ROTATE_MIN_INTERVAL_SECS": "0",
    "COFFER_KMS_STATE_CHANGE_DELAY_SECS": "0",
    "COFFER_KMS_PURGE_DELAY_SECS": "2",
    "COFFER_KMS_RESTORE_WINDOW_SECS": "2",
    "COFFER_KMS_SYNC_MIN_INTERVAL_SECS": "0",
}


def kms_role_id(role: str, service: str = "hs-crypto") -> str:
    """The role CRN of a KMS service role (`KeyPurge` is specific to the KMS services)."""
    if role == "KeyPurge":
        return f"crn:v1:bluemix:public:{service}::::serviceRole:KeyPurge"
    return ROLE_CRNS[role]


def grant_kms(iam: IamAdmin, iam_id: str, roles: list[str] | str, instance_id: str, *,
              service: str = "hs-crypto") -> dict:
    """An access policy giving `iam_id` the `roles` on a KMS instance."""
    roles = [roles] if isinstance(roles, str) else roles
    body = {
        "type": "access",
        "subjects": [{"attributes": [{"name": "iam_id", "value": iam_id}]}],
        "roles": [{"role_id": kms_role_id(r, service)} for r in roles],
        "resources": [{"attributes": [
            {"name": "accountId", "value": iam.account_id},
            {"name": "serviceName", "value": service},
            {"name": "serviceInstance", "value": instance_id},
        ]}],
    }
    return iam.call("POST", "/v1/policies", json=body, expect=201).json()


def kms_user(iam: IamAdmin, roles: list[str] | str | None, instance_id: str, *,
             service: str = "hs-crypto") -> dict:
    """A new user with an API key and (unless `roles` is None) the roles on a KMS instance."""
    ident = iam.identity("user")
    if roles:
        grant_kms(iam, ident["iam_id"], roles, instance_id, service=service)
    return ident


def kp_sdk(server: CofferServer, apikey: str | None = None):
    """The unmodified keyprotect SDK, authenticating with an API key at the control plane."""
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
    from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

    svc = IbmKeyProtectApiV2(authenticator=IAMAuthenticator(
        apikey or server.bootstrap["admin_api_key"], url=server.control_endpoint))
    svc.set_service_url(server.control_endpoint)
    return svc


def kp_json(result) -> dict | None:
    """The JSON of a keyprotect SDK result: a DetailedResponse, a dict (application/json
    answers) or a raw requests.Response (vendor media types)."""
    if hasattr(result, "get_result"):
        result = result.get_result()
    if result is None or isinstance(result, dict):
        return result
    if isinstance(result, requests.Response):
        return result.json() if result.content else None
    if isinstance(result, (bytes, str)):
        return json.loads(result) if result else None
    raise AssertionError(f"unexpected SDK result {type(result)}: {result!r}")


def kp_envelope(resources: list[dict], collection_type: str = KP_KEY) -> str:
    return json.dumps({"metadata": {"collectionType": collection_type, "collectionTotal": len(resources)},
                       "resources": resources})


def kp_key_body(name: str, *, root: bool = True, **fields) -> str:
    """A create-key body as the SDK examples build it."""
    return kp_envelope([{"type": KP_KEY, "name": name, "extractable": not root, **fields}])


def kp_error_response(err) -> requests.Response:
    from ibm_cloud_sdk_core import ApiException

    if isinstance(err, ApiException):
        assert err.http_response is not None, f"no HTTP response in {err!r}"
        return err.http_response
    return err


def assert_kp_error(err, status: int, code: str, *, message: str | None = None) -> dict:
    """A Key Protect error (spec §4.12): the status, Content-Type application/json, the error
    envelope, and the reason code. `err` is a requests.Response or an SDK ApiException.
    Returns the error resource."""
    resp = kp_error_response(err)
    detail = f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:500]!r}"
    assert resp.status_code == status, f"expected {status} {code}; got {detail}"
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", \
        f"error Content-Type {resp.headers.get('Content-Type')!r}; {detail}"
    body = resp.json()
    assert body["metadata"]["collectionType"] == KP_ERROR, detail
    assert body["metadata"]["collectionTotal"] == 1, detail
    res = body["resources"][0]
    assert isinstance(res.get("errorMsg"), str) and code in res["errorMsg"], detail
    reason = res["reasons"][0]
    assert reason["code"] == code, f"expected {status} {code}; got {detail}"
    assert reason["status"] == status, detail
    assert isinstance(reason.get("message"), str) and reason["message"], detail
    assert isinstance(reason.get("moreInfo"), str) and reason["moreInfo"], detail
    if message is not None:
        assert message in reason["message"] or message in res["errorMsg"], \
            f"expected {message!r} in the error; got {detail}"
    return res


def kp_raises(fn, *args, **kwargs) -> requests.Response:
    """Calls an SDK method that must fail; returns the HTTP response of its ApiException."""
    from ibm_cloud_sdk_core import ApiException

    with pytest.raises(ApiException) as excinfo:
        fn(*args, **kwargs)
    return kp_error_response(excinfo.value)


class KpRaw:
    """Plain `requests` against `/api/v2` with the headers the SDKs send (bearer token,
    Bluemix-Instance), for the wire shapes no SDK produces."""

    def __init__(self, server: CofferServer, instance_id: str, apikey: str | None = None):
        self.server = server
        self.instance_id = instance_id
        self.token = fetch_token(server, apikey or server.bootstrap["admin_api_key"])["access_token"]

    def headers(self, extra: dict | None = None, *, auth: bool = True) -> dict:
        h = {"Bluemix-Instance": self.instance_id, "Accept": "application/json"}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return {k: v for k, v in h.items() if v is not None}

    def call(self, method: str, path: str, *, body: bytes | str | None = None, json_body=None,
             headers: dict | None = None, params=None, auth: bool = True) -> requests.Response:
        """`path` is relative to `/api/v2`. `body` goes as-is with no Content-Type unless
        `headers` gives one; `json_body` is serialized (still without a Content-Type)."""
        if json_body is not None:
            body = json.dumps(json_body)
        if isinstance(body, str):
            body = body.encode()
        req = requests.Request(method, f"{self.server.control_endpoint}/api/v2{path}",
                               headers=self.headers(headers, auth=auth), params=params, data=body)
        prepared = req.prepare()
        if "Content-Type" not in (headers or {}):
            prepared.headers.pop("Content-Type", None)
        with requests.Session() as s:
            return s.send(prepared, timeout=30)

    def create_key(self, name: str | None = None, *, root: bool = True, **fields) -> dict:
        r = self.call("POST", "/keys", body=kp_key_body(name or unique_name("key"), root=root, **fields))
        assert r.status_code == 201, f"create key: {r.status_code} {r.text[:400]}"
        return r.json()["resources"][0]

    def key(self, key_id: str) -> dict:
        r = self.call("GET", f"/keys/{key_id}/metadata")
        assert r.status_code == 200, f"key metadata: {r.status_code} {r.text[:400]}"
        return r.json()["resources"][0]

    def action(self, key_id: str, action: str, body=None) -> requests.Response:
        return self.call("POST", f"/keys/{key_id}/actions/{action}",
                         body=None if body is None else json.dumps(body))

    def wrap(self, key_id: str, plaintext: bytes | None = None, aad: list[str] | None = None) -> dict:
        body = {}
        if plaintext is not None:
            body["plaintext"] = b64(plaintext)
        if aad is not None:
            body["aad"] = aad
        r = self.action(key_id, "wrap", body)
        assert r.status_code == 200, f"wrap: {r.status_code} {r.text[:400]}"
        return r.json()


def kms_server(workdir: Path, env: dict[str, str] | None = None) -> CofferServer:
    """A started server of its own (callers stop it)."""
    return CofferServer(workdir, env=env).start()


@pytest.fixture(scope="session")
def fast_kms_server(tmp_path_factory):
    """A server whose KMS timing rules are short (KMS_FAST_TIMINGS)."""
    srv = kms_server(tmp_path_factory.mktemp("coffer-kms-fast"), KMS_FAST_TIMINGS)
    yield srv
    if srv.running:
        srv.stop()


def coffer_cli(server: CofferServer, *args: str, env: dict[str, str] | None = None, check: bool = True,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs `coffer <args> --data-dir <the server's data dir>` (the CLI reads the control endpoint
    and the admin API key from bootstrap.json)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("COFFER_PART_PASSPHRASE", "COFFER_API_KEY", "COFFER_CONTROL_ENDPOINT",
                                     "COFFER_DATA_DIR"))}
    full_env["NO_COLOR"] = "1"
    full_env.update(env or {})
    cmd = [str(COFFER_BIN), *args, "--data-dir", str(server.data_dir)]
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, \
            f"{' '.join(args)} exited {proc.returncode}:\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def coffer_cli_json(server: CofferServer, *args: str, env: dict[str, str] | None = None):
    proc = coffer_cli(server, *args, "--json", env=env)
    return json.loads(proc.stdout)


def kms_part_files(out_dir: Path, instance_id: str, *, new: bool = False) -> list[Path]:
    tag = "new-" if new else ""
    return sorted(Path(out_dir).glob(f"{instance_id}-{tag}part-*-of-*.json"))


def kms_instance_ready(server: CofferServer, out_dir: Path, *, parts: int = 2, service: str = "hs-crypto",
                       env: dict[str, str] | None = None, name: str | None = None) -> dict:
    """A KMS instance made and initialized through the CLI, its part files in `out_dir`:
    `{"id", "crn", "verification_pattern", "parts": [paths]}`."""
    created = coffer_cli_json(server, "kms", "instance", "create", "--name", name or unique_name("kms"),
                              "--service", service)
    info = coffer_cli_json(server, "kms", "init", "--instance", created["id"], "--parts", str(parts),
                           "--out-dir", str(out_dir), env=env)
    assert info["initialized"] is True and info["sealed"] is False, info
    return {**info, "parts": kms_part_files(out_dir, created["id"])}


# -- key-protected buckets (test_kp_*.py) ----------------------------------------------------

# Timing rules of the servers that walk a root key through its lifecycle under buckets: any
# state change at once, a restore window far longer than a test, purge right after delete.
KP_LIFECYCLE_TIMINGS = {
    "COFFER_KMS_STATE_CHANGE_DELAY_SECS": "0",
    "COFFER_KMS_ROTATE_MIN_INTERVAL_SECS": "0",
    "COFFER_KMS_PURGE_DELAY_SECS": "0",
    "COFFER_KMS_RESTORE_WINDOW_SECS": "3600",
    "COFFER_KMS_SYNC_MIN_INTERVAL_SECS": "0",
}

KP_CRN_NOT_FOUND = "The Key CRN could not be found"
KP_HEADERS = ("ibm-sse-kp-enabled", "ibm-sse-kp-crk-id", "ibm-sse-kp-customer-root-key-crn")


def cos_kms_authorization_body(iam: IamAdmin, kms_instance_id: str, service: str = "hs-crypto") -> dict:
    """The authorization policy of spec §2.3: the COS instance may act as Reader on a KMS instance."""
    return {
        "type": "authorization",
        "subjects": [{"attributes": [
            {"name": "accountId", "value": iam.account_id},
            {"name": "serviceName", "value": "cloud-object-storage"},
            {"name": "serviceInstance", "value": iam.cos_instance_id},
        ]}],
        "roles": [{"role_id": ROLE_CRNS["Reader"]}],
        "resources": [{"attributes": [
            {"name": "accountId", "value": iam.account_id},
            {"name": "serviceName", "value": service},
            {"name": "serviceInstance", "value": kms_instance_id},
        ]}],
    }


def authorize_cos_on_kms(iam: IamAdmin, kms_instance_id: str, service: str = "hs-crypto") -> dict:
    """Creates that authorization policy (plain HTTP; asserted 201) and returns it."""
    return iam.call("POST", "/v1/policies", json=cos_kms_authorization_body(iam, kms_instance_id, service),
                    expect=201).json()


def ibm_oauth_client(server: CofferServer, apikey: str, *, instance_id: str | None = None, **config):
    return ibm_cos_client(server, apikey, instance_id=instance_id, **config)


def ibm_sigv4_client(server: CofferServer, access_key: str | None = None, secret_key: str | None = None,
                     **config):
    """ibm_hmac_client with the server's admin credential by default."""
    ak, sk = server.credentials
    return ibm_hmac_client(server, access_key or ak, secret_key or sk, **config)


def kp_create_bucket(server: CofferServer, name: str, root_key_crn: str | None, *,
                     algorithm: str | None = "AES256", credentials: tuple[str, str] | None = None,
                     extra_headers: dict | None = None) -> requests.Response:
    """`PUT /{name}` with the key-protect headers, SigV4-signed (HMAC mode); not asserted."""
    headers = dict(extra_headers or {})
    if algorithm is not None:
        headers["ibm-sse-kp-encryption-algorithm"] = algorithm
    if root_key_crn is not None:
        headers["ibm-sse-kp-customer-root-key-crn"] = root_key_crn
    return signed_request(server, "PUT", f"/{name}", headers=headers, credentials=credentials)


def cos_bucket_crn(server: CofferServer, bucket: str) -> str:
    b = server.bootstrap
    return f"crn:v1:bluemix:public:cloud-object-storage:global:a/{b['account_id']}:{b['cos_instance_id']}:bucket:{bucket}"


def kp_registrations(raw: KpRaw, key_id: str) -> list[dict]:
    """`GET /api/v2/keys/{id}/registrations` (asserted 200): the registration resources."""
    r = raw.call("GET", f"/keys/{key_id}/registrations")
    assert r.status_code == 200, f"registrations of {key_id}: {r.status_code} {r.text[:400]}"
    return r.json().get("resources") or []


def activity_events(server: CofferServer, limit: int = 10_000, *, apikey: str | None = None) -> list[dict]:
    """`GET <control>/v1/activity?limit=N` as the account owner: the events, newest last."""
    token = fetch_token(server, apikey or server.bootstrap["admin_api_key"])["access_token"]
    r = requests.get(f"{server.control_endpoint}/v1/activity", params={"limit": limit},
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, f"activity: {r.status_code} {r.text[:400]}"
    events = r.json()["events"]
    assert isinstance(events, list), r.text[:400]
    return events


def bucket_key_events(server: CofferServer, bucket: str) -> list[dict]:
    """The `cloud-object-storage.bucket-key-state.update` events of one bucket, oldest first."""
    return [e for e in activity_events(server)
            if e.get("action") == "cloud-object-storage.bucket-key-state.update"
            and (e.get("target") or {}).get("name") == bucket]


def blob_dir(server: CofferServer) -> Path:
    return server.data_dir / "blobs" / "blobs"


def blob_files(server: CofferServer) -> set[Path]:
    """Every finished blob file of a local-storage server."""
    return {p for p in blob_dir(server).rglob("*") if p.is_file()}


def data_dir_files(server: CofferServer) -> list[Path]:
    return sorted(p for p in server.data_dir.rglob("*") if p.is_file())


def files_containing(paths, needle: bytes) -> list[Path]:
    """The files among `paths` whose bytes contain `needle`."""
    hits = []
    for p in paths:
        try:
            if needle in Path(p).read_bytes():
                hits.append(Path(p))
        except FileNotFoundError:
            pass
    return hits


def new_kms_instance(server: CofferServer, out_dir: Path, *, service: str = "hs-crypto",
                     region: str | None = None, name: str | None = None, init: bool = True) -> dict:
    """A KMS instance made with `POST <control>/kms/v1/instances` and (unless `init` is False)
    initialized with `coffer kms init`; returns the instance as the API describes it, plus
    `parts` (the part files) once initialized."""
    body = {"name": name or unique_name("kms"), "service": service}
    if region is not None:
        body["region"] = region
    token = fetch_token(server, server.bootstrap["admin_api_key"])["access_token"]
    r = requests.post(f"{server.control_endpoint}/kms/v1/instances", json=body,
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 201, f"create KMS instance: {r.status_code} {r.text[:400]}"
    inst = r.json()
    if init:
        coffer_cli(server, "kms", "init", "--instance", inst["id"], "--parts", "2", "--out-dir", str(out_dir))
        inst = coffer_cli_json(server, "kms", "instance", "show", inst["id"])
        assert inst["initialized"] is True and inst["sealed"] is False, inst
        inst["parts"] = kms_part_files(out_dir, inst["id"])
    return inst
