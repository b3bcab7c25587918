"""Bucket operations: create, list, head, delete, location, versioning, ACL, versions."""

import datetime

import pytest
from botocore.exceptions import ClientError

from conftest import assert_client_error, delete_bucket, unique_name


def test_create_list_head_delete(s3):
    name = unique_name()
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    try:
        listed = {b["Name"]: b for b in s3.list_buckets()["Buckets"]}
        assert name in listed
        assert listed[name]["CreationDate"] >= before

        head = s3.head_bucket(Bucket=name)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert_client_error(e, 404, None)


def test_list_buckets_shows_each_bucket_once_sorted(s3):
    names = sorted(unique_name("e2e-ls") for _ in range(3))
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        listed = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert [n for n in listed if n in names] == names
        assert listed == sorted(listed)
    finally:
        for n in names:
            delete_bucket(s3, n)


@pytest.mark.parametrize(
    "constraint",
    ["us-south", "us-south-standard", "us-south-smart", "us-south-vault", "us-south-cold"],
)
def test_location_constraint_accepted(s3, constraint):
    name = unique_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": constraint})
    try:
        location = s3.get_bucket_location(Bucket=name)["LocationConstraint"]
        if constraint == "us-south":
            # The bare region is the standard class of that region.
            assert location in ("us-south", "us-south-standard")
        else:
            assert location == constraint
    finally:
        delete_bucket(s3, name)


def test_location_defaults_to_standard_class_of_region(s3, bucket):
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] in ("us-south", "us-south-standard")


@pytest.mark.parametrize("constraint", ["eu-de-standard", "nonsense", "us-south-glacier"])
def test_location_constraint_rejected(s3, constraint):
    name = unique_name()
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": constraint})
    assert_client_error(e, 400, "InvalidLocationConstraint")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("name", ["Bad_Name", "ab", "a" * 64, "192.168.1.1", "-leading", "a..b"])
def test_invalid_bucket_name(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert_client_error(e, 400, "InvalidBucketName")


def test_longest_valid_name_accepted(s3):
    name = "e2e-" + "a" * 59
    assert len(name) == 63
    s3.create_bucket(Bucket=name)
    try:
        s3.head_bucket(Bucket=name)
    finally:
        delete_bucket(s3, name)


def test_create_twice(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=bucket)
    assert_client_error(e, 409, "BucketAlreadyOwnedByYou")


def test_delete_non_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="x", Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert_client_error(e, 409, "BucketNotEmpty")
    # Still there, with its object.
    assert s3.get_object(Bucket=bucket, Key="x")["Body"].read() == b"1"


def test_delete_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=unique_name())
    assert_client_error(e, 404, "NoSuchBucket")


def test_head_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=unique_name())
    assert_client_error(e, 404, None)


def test_get_bucket_versioning_has_no_status(s3, bucket):
    resp = s3.get_bucket_versioning(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in resp
    assert "MFADelete" not in resp


def test_get_bucket_acl_owner_full_control(s3, server, bucket):
    acl = s3.get_bucket_acl(Bucket=bucket)
    owner_id = acl["Owner"]["ID"]
    assert owner_id in (server.bootstrap["account_id"], server.bootstrap["cos_instance_id"])
    grants = acl["Grants"]
    assert len(grants) == 1
    assert grants[0]["Permission"] == "FULL_CONTROL"
    assert grants[0]["Grantee"]["Type"] == "CanonicalUser"
    assert grants[0]["Grantee"]["ID"] == owner_id


def test_list_object_versions_all_null_and_latest(s3, bucket):
    keys = ["a", "b/c", "d"]
    etags = {}
    for k in keys:
        etags[k] = s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"]
    s3.put_object(Bucket=bucket, Key="a", Body=b"overwritten")  # not versioned: replaces
    etags["a"] = s3.head_object(Bucket=bucket, Key="a")["ETag"]
    resp = s3.list_object_versions(Bucket=bucket)
    versions = resp["Versions"]
    assert [v["Key"] for v in versions] == keys
    for v in versions:
        assert v["VersionId"] == "null"
        assert v["IsLatest"] is True
        assert v["ETag"] == etags[v["Key"]]
    assert resp.get("DeleteMarkers", []) == []
    assert resp["IsTruncated"] is False
