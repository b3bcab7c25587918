"""The command-line clients people use: the aws cli and rclone, unmodified, against coffer."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import MiB, md5_hex, unique_name

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def aws_cli() -> str:
    exe = VENV_BIN / "aws"
    if exe.exists():
        return str(exe)
    found = shutil.which("aws")
    if not found:
        pytest.fail("the aws cli is not installed (scripts/test installs it into .venv)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without settings that would reach for TLS: coffer is served over http."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "AWS_PROFILE")}
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def aws(server, tmp_path):
    ak, sk = server.credentials
    env = clean_env(AWS_ACCESS_KEY_ID=ak, AWS_SECRET_ACCESS_KEY=sk, AWS_DEFAULT_REGION="us-south",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    return lambda *args: run([aws_cli(), "--endpoint-url", server.endpoint, "--no-progress", *args]
                             if args[0] == "s3" and args[1] in ("cp", "sync", "mv")
                             else [aws_cli(), "--endpoint-url", server.endpoint, *args], env)


def write_random(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.md5(data).hexdigest()


def test_aws_cli_round_trip(aws, tmp_path, s3):
    bucket = unique_name("awscli")
    aws("s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    src.mkdir()
    big_md5 = write_random(src / "big.bin", 40 * MiB)  # above the cli's multipart threshold
    small_md5 = write_random(src / "small.txt", 1000)
    (src / "sub").mkdir()
    write_random(src / "sub" / "nested.bin", 5000)

    aws("s3", "sync", str(src), f"s3://{bucket}/tree")
    listing = aws("s3", "ls", f"s3://{bucket}/tree/", "--recursive")
    for name in ("tree/big.bin", "tree/small.txt", "tree/sub/nested.bin"):
        assert name in listing
    head = s3.head_object(Bucket=bucket, Key="tree/big.bin")
    assert head["ContentLength"] == 40 * MiB
    # The cli uploads it in parts of 8 MiB: S3's multipart ETag over those parts.
    data = (src / "big.bin").read_bytes()
    digests = b"".join(hashlib.md5(data[i:i + 8 * MiB]).digest() for i in range(0, len(data), 8 * MiB))
    assert head["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-5"'

    dst = tmp_path / "dst"
    aws("s3", "cp", f"s3://{bucket}/tree", str(dst), "--recursive")
    assert md5_hex((dst / "big.bin").read_bytes()) == big_md5
    assert md5_hex((dst / "small.txt").read_bytes()) == small_md5

    aws("s3api", "put-object", "--bucket", bucket, "--key", "meta.txt", "--body", str(src / "small.txt"),
        "--content-type", "text/plain", "--metadata", "owner=cli")
    out = aws("s3api", "head-object", "--bucket", bucket, "--key", "meta.txt")
    assert '"ContentType": "text/plain"' in out and '"owner": "cli"' in out

    aws("s3", "rm", f"s3://{bucket}", "--recursive")
    aws("s3", "rb", f"s3://{bucket}")
    assert bucket not in aws("s3", "ls")


@pytest.fixture
def rclone(server, tmp_path):
    exe = shutil.which("rclone")
    if not exe:
        pytest.fail("rclone is not installed (scripts/test installs it with apt-get)")
    ak, sk = server.credentials
    env = clean_env(RCLONE_CONFIG=str(tmp_path / "rclone.conf"),
               RCLONE_CONFIG_COFFER_TYPE="s3", RCLONE_CONFIG_COFFER_PROVIDER="Other",
               RCLONE_CONFIG_COFFER_ACCESS_KEY_ID=ak, RCLONE_CONFIG_COFFER_SECRET_ACCESS_KEY=sk,
               RCLONE_CONFIG_COFFER_ENDPOINT=server.endpoint, RCLONE_CONFIG_COFFER_REGION="us-south")
    return lambda *args: run([exe, *args], env)


def test_rclone_round_trip(rclone, tmp_path):
    bucket = unique_name("rclone")
    rclone("mkdir", f"coffer:{bucket}")
    src = tmp_path / "src"
    src.mkdir()
    write_random(src / "a.bin", 3 * MiB)
    write_random(src / "b.bin", 70 * MiB)  # rclone switches to multipart above 200 MiB by default
    (src / "dir").mkdir()
    write_random(src / "dir" / "c.txt", 10)

    rclone("copy", str(src), f"coffer:{bucket}", "--s3-upload-cutoff", "16M", "--s3-chunk-size", "8M")
    listing = rclone("lsf", "-R", f"coffer:{bucket}")
    assert sorted(listing.split()) == ["a.bin", "b.bin", "dir/", "dir/c.txt"]
    # `check` compares sizes and hashes of every file on both sides.
    rclone("check", str(src), f"coffer:{bucket}", "--download")

    dst = tmp_path / "dst"
    rclone("copy", f"coffer:{bucket}", str(dst))
    for f in ("a.bin", "b.bin", "dir/c.txt"):
        assert md5_hex((dst / f).read_bytes()) == md5_hex((src / f).read_bytes())

    (src / "a.bin").unlink()
    rclone("sync", str(src), f"coffer:{bucket}")
    assert "a.bin" not in rclone("lsf", "-R", f"coffer:{bucket}")
    rclone("purge", f"coffer:{bucket}")
    assert bucket not in rclone("lsd", "coffer:")
