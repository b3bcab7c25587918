"""ListObjects (v1) and ListObjectsV2: prefix, delimiter, common prefixes, pagination."""

import pytest
from botocore.exceptions import ClientError

from conftest import assert_client_error, delete_bucket, unique_name

KEYS = sorted(
    ["a.txt", "b.txt", "z.txt"]
    + [f"dir1/f{i}" for i in range(6)]
    + [f"dir2/sub/f{i}" for i in range(4)]
    + ["dir2/g0", "dir2/g1"]
    + ["dir3/x"]
    + [f"e/{i}" for i in range(5)]
    + [f"m{i}" for i in range(4)]
)
assert len(KEYS) == 25


def reference(prefix: str = "", delimiter: str = "", after: str = "") -> list[tuple[str, str]]:
    """What S3 lists, in order: ('key', name) and ('prefix', common prefix) entries."""
    out: list[tuple[str, str]] = []
    for k in KEYS:
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix):]
        if delimiter and delimiter in rest:
            cp = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if cp <= after or (out and out[-1] == ("prefix", cp)):
                continue
            out.append(("prefix", cp))
        elif k > after:
            out.append(("key", k))
    return out


def entries(page) -> list[tuple[str, str]]:
    got = [("key", o["Key"]) for o in page.get("Contents", [])]
    got += [("prefix", p["Prefix"]) for p in page.get("CommonPrefixes", [])]
    return sorted(got, key=lambda e: e[1])


@pytest.fixture(scope="module")
def listing_bucket(s3):
    name = unique_name("e2e-list")
    s3.create_bucket(Bucket=name)
    for k in KEYS:
        s3.put_object(Bucket=name, Key=k, Body=k.encode())
    yield name
    delete_bucket(s3, name)


def test_reference_model_sanity():
    # The expectations below are only as good as this model of S3's listing.
    assert reference(delimiter="/") == [
        ("key", "a.txt"), ("key", "b.txt"), ("prefix", "dir1/"), ("prefix", "dir2/"),
        ("prefix", "dir3/"), ("prefix", "e/"), ("key", "m0"), ("key", "m1"), ("key", "m2"),
        ("key", "m3"), ("key", "z.txt"),
    ]


def test_v2_full_listing(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket)
    assert [o["Key"] for o in page["Contents"]] == KEYS
    assert page["KeyCount"] == 25
    assert page["IsTruncated"] is False
    for o in page["Contents"]:
        assert o["Size"] == len(o["Key"])
        assert o["StorageClass"] == "STANDARD"


def test_v1_full_listing(s3, listing_bucket):
    page = s3.list_objects(Bucket=listing_bucket)
    assert [o["Key"] for o in page["Contents"]] == KEYS
    assert page["IsTruncated"] is False
    assert "NextMarker" not in page


@pytest.mark.parametrize("prefix", ["dir2/", "dir", "e/3", "nothing-here", "m"])
def test_v2_prefix(s3, listing_bucket, prefix):
    page = s3.list_objects_v2(Bucket=listing_bucket, Prefix=prefix)
    assert entries(page) == reference(prefix=prefix)
    assert page["KeyCount"] == len(reference(prefix=prefix))


@pytest.mark.parametrize("prefix", ["", "dir2/", "dir2/sub/", "e"])
def test_v2_delimiter(s3, listing_bucket, prefix):
    page = s3.list_objects_v2(Bucket=listing_bucket, Prefix=prefix, Delimiter="/")
    assert entries(page) == reference(prefix=prefix, delimiter="/")
    assert page["KeyCount"] == len(reference(prefix=prefix, delimiter="/"))
    assert page["Delimiter"] == "/"


def test_v1_delimiter(s3, listing_bucket):
    page = s3.list_objects(Bucket=listing_bucket, Delimiter="/")
    assert entries(page) == reference(delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir1/", "dir2/", "dir3/", "e/"]


def test_non_slash_delimiter(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket, Delimiter="f")
    assert entries(page) == reference(delimiter="f")


def test_v2_start_after(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="dir2/g1")
    assert [o["Key"] for o in page["Contents"]] == [k for k in KEYS if k > "dir2/g1"]
    assert page["StartAfter"] == "dir2/g1"


def test_v2_start_after_with_delimiter(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="dir2/", Delimiter="/")
    assert entries(page) == reference(delimiter="/", after="dir2/")


def test_v1_marker(s3, listing_bucket):
    page = s3.list_objects(Bucket=listing_bucket, Marker="e/2")
    assert [o["Key"] for o in page["Contents"]] == [k for k in KEYS if k > "e/2"]
    assert page["Marker"] == "e/2"


def _page_v2(s3, bucket, **kw):
    seen, tokens, pages = [], [], 0
    token = None
    while True:
        args = dict(Bucket=bucket, MaxKeys=4, **kw)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        pages += 1
        got = entries(page)
        assert len(got) <= 4
        assert page["KeyCount"] == len(got)
        seen += got
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        assert len(got) == 4
        token = page["NextContinuationToken"]
        assert token not in tokens, "the continuation token must move forward"
        tokens.append(token)
        assert pages < 20
    return seen, pages


def test_v2_pagination(s3, listing_bucket):
    seen, pages = _page_v2(s3, listing_bucket)
    assert seen == reference()  # each key exactly once, in order
    assert pages == 7  # 25 keys in pages of 4


def test_v2_pagination_with_delimiter(s3, listing_bucket):
    seen, pages = _page_v2(s3, listing_bucket, Delimiter="/")
    assert seen == reference(delimiter="/")
    assert pages == 3  # 11 entries


def test_v2_pagination_with_prefix_and_start_after(s3, listing_bucket):
    seen, _ = _page_v2(s3, listing_bucket, Prefix="dir", StartAfter="dir1/f2")
    assert seen == reference(prefix="dir", after="dir1/f2")


def test_v1_pagination_without_delimiter(s3, listing_bucket):
    seen, marker = [], ""
    for _ in range(20):
        page = s3.list_objects(Bucket=listing_bucket, MaxKeys=4, Marker=marker)
        keys = [o["Key"] for o in page.get("Contents", [])]
        seen += keys
        if not page["IsTruncated"]:
            break
        # Without a delimiter S3 sends no NextMarker: the last key is the next marker.
        assert "NextMarker" not in page
        assert len(keys) == 4
        marker = keys[-1]
    assert seen == KEYS


def test_v1_pagination_with_delimiter(s3, listing_bucket):
    seen, marker, pages = [], "", 0
    for _ in range(20):
        page = s3.list_objects(Bucket=listing_bucket, MaxKeys=4, Delimiter="/", Marker=marker)
        pages += 1
        got = entries(page)
        seen += got
        if not page["IsTruncated"]:
            break
        assert page["NextMarker"] == got[-1][1]
        marker = page["NextMarker"]
    assert seen == reference(delimiter="/")
    assert pages == 3


def test_v2_max_keys_reported(s3, listing_bucket):
    page = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=2)
    assert page["MaxKeys"] == 2
    assert [o["Key"] for o in page["Contents"]] == KEYS[:2]
    assert page["IsTruncated"] is True


def test_paginator_walks_everything(s3, listing_bucket):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=listing_bucket, PaginationConfig={"PageSize": 3}
    ):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == KEYS


def test_listing_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=unique_name())
    assert_client_error(e, 404, "NoSuchBucket")
