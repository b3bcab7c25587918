//! The S3 plane driven by `aws-sdk-s3` against the real binary.

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration, Delete,
    MetadataDirective, ObjectIdentifier,
};
use common::{Server, md5_hex, unique};

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn buckets_lifecycle_and_errors() {
    let server = Server::start();
    let s3 = server.client();
    let name = unique("bkt");
    s3.create_bucket().bucket(&name).send().await.unwrap();
    let listed = s3.list_buckets().send().await.unwrap();
    assert!(listed.buckets().iter().any(|b| b.name() == Some(name.as_str())));
    s3.head_bucket().bucket(&name).send().await.unwrap();

    let again = s3.create_bucket().bucket(&name).send().await.unwrap_err();
    assert_eq!(code(&again.into_service_error()), "BucketAlreadyOwnedByYou");

    let cold = unique("cold");
    let cfg = CreateBucketConfiguration::builder()
        .location_constraint(BucketLocationConstraint::from("us-south-cold"))
        .build();
    s3.create_bucket()
        .bucket(&cold)
        .create_bucket_configuration(cfg)
        .send()
        .await
        .unwrap();
    let loc = s3.get_bucket_location().bucket(&cold).send().await.unwrap();
    assert_eq!(
        loc.location_constraint().map(|c| c.as_str()),
        Some("us-south-cold")
    );

    let cfg = CreateBucketConfiguration::builder()
        .location_constraint(BucketLocationConstraint::from("eu-de-standard"))
        .build();
    let err = s3
        .create_bucket()
        .bucket(unique("eu"))
        .create_bucket_configuration(cfg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidLocationConstraint");

    s3.put_object()
        .bucket(&name)
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .unwrap();
    let err = s3.delete_bucket().bucket(&name).send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "BucketNotEmpty");
    s3.delete_object().bucket(&name).key("k").send().await.unwrap();
    s3.delete_bucket().bucket(&name).send().await.unwrap();
    assert!(s3.head_bucket().bucket(&name).send().await.is_err());
    let err = s3.get_object().bucket(&name).key("k").send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "NoSuchBucket");
}

#[tokio::test]
async fn objects_round_trip_with_metadata_ranges_and_conditions() {
    let server = Server::start();
    let s3 = server.client();
    let b = unique("obj");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let body = data(300_000, 7);
    let put = s3
        .put_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-test")
        .content_disposition("attachment; filename=x")
        .cache_control("max-age=60")
        .content_encoding("identity")
        .metadata("colour", "blue")
        .send()
        .await
        .unwrap();
    let etag = format!("\"{}\"", md5_hex(&body));
    assert_eq!(put.e_tag(), Some(etag.as_str()));

    let got = s3
        .get_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/x-test"));
    assert_eq!(got.content_disposition(), Some("attachment; filename=x"));
    assert_eq!(got.cache_control(), Some("max-age=60"));
    assert_eq!(
        got.metadata().unwrap().get("colour").map(String::as_str),
        Some("blue")
    );
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body.as_slice()
    );

    let ranged = s3
        .get_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .range("bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.content_range(), Some("bytes 1000-1999/300000"));
    assert_eq!(
        ranged.body.collect().await.unwrap().into_bytes().as_ref(),
        &body[1000..2000]
    );

    let err = s3
        .get_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .range("bytes=400000-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidRange");

    let err = s3
        .get_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
    let err = s3
        .get_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(304));
    s3.get_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .if_match(&etag)
        .send()
        .await
        .unwrap();

    let head = s3
        .head_object()
        .bucket(&b)
        .key("dir/file name+%.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(300_000));

    let err = s3
        .get_object()
        .bucket(&b)
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "NoSuchKey");
    s3.delete_object().bucket(&b).key("missing").send().await.unwrap();
}

#[tokio::test]
async fn bad_content_md5_loses_nothing() {
    let server = Server::start();
    let s3 = server.client();
    let b = unique("md5");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    // Larger than the inline limit, so that both bodies would be blobs.
    let original = vec![b'o'; 20_000];
    s3.put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from(original.clone()))
        .send()
        .await
        .unwrap();
    let err = s3
        .put_object()
        .bucket(&b)
        .key("k")
        .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
        .body(ByteStream::from(vec![b'r'; 20_000]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err.into_service_error()), "BadDigest");
    let got = s3.get_object().bucket(&b).key("k").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        original.as_slice()
    );
    // Only the original object's blob exists: the rejected body left nothing behind.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(server.files_under("blobs/blobs").len(), 1);
}

#[tokio::test]
async fn listing_pages_with_delimiter() {
    let server = Server::start();
    let s3 = server.client();
    let b = unique("list");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let keys = ["a", "b/1", "b/2", "c", "d/e/f", "d/g", "h"];
    for k in keys {
        s3.put_object()
            .bucket(&b)
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&b)
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        seen.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        token = page.next_continuation_token().map(str::to_owned);
    }
    seen.sort();
    assert_eq!(seen, ["a", "b/", "c", "d/", "h"]);

    let v1 = s3.list_objects().bucket(&b).prefix("d/").send().await.unwrap();
    let names: Vec<_> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(names, ["d/e/f", "d/g"]);
}

#[tokio::test]
async fn multipart_upload_etag_and_copy() {
    let server = Server::start();
    let s3 = server.client();
    let b = unique("mpu");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket(&b)
        .key("big")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let parts = [data(5 << 20, 1), data(5 << 20, 2), data(1234, 3)];
    let mut completed = Vec::new();
    let mut md5s = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i32::try_from(i + 1).unwrap();
        let r = s3
            .upload_part()
            .bucket(&b)
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        md5s.extend(md5::compute(p).0);
        completed.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket(&b)
        .key("big")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 3);
    let done = s3
        .complete_multipart_upload()
        .bucket(&b)
        .key("big")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(done.e_tag(), Some(format!("\"{}-3\"", md5_hex(&md5s)).as_str()));
    let whole = parts.concat();
    let got = s3.get_object().bucket(&b).key("big").send().await.unwrap();
    assert_eq!(got.parts_count(), Some(3));
    assert_eq!(
        md5_hex(&got.body.collect().await.unwrap().into_bytes()),
        md5_hex(&whole)
    );

    let copy = s3
        .copy_object()
        .bucket(&b)
        .key("copy")
        .copy_source(format!("{b}/big"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copy.copy_object_result().unwrap().e_tag(),
        Some(format!("\"{}\"", md5_hex(&whole)).as_str())
    );
    let head = s3.head_object().bucket(&b).key("copy").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));

    let objs = ["big", "copy", "missing"].map(|k| ObjectIdentifier::builder().key(k).build().unwrap());
    let del = Delete::builder()
        .set_objects(Some(objs.to_vec()))
        .build()
        .unwrap();
    let out = s3.delete_objects().bucket(&b).delete(del).send().await.unwrap();
    assert_eq!(out.deleted().len(), 3);
    let left = s3.list_objects_v2().bucket(&b).send().await.unwrap();
    assert_eq!(left.key_count(), Some(0));
}

#[tokio::test]
async fn credentials_are_checked() {
    let server = Server::start();
    let wrong = server.client_with(
        &server.key("admin_access_key_id"),
        "wrong-secret-wrong-secret-wrong-secret",
    );
    let err = wrong.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "SignatureDoesNotMatch");
    let unknown = server.client_with(
        "0123456789abcdef0123456789abcdef",
        "whatever-secret-whatever-secret",
    );
    let err = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err.into_service_error()), "InvalidAccessKeyId");
}

#[tokio::test]
async fn restart_keeps_everything() {
    let mut server = Server::start();
    let b = unique("keep");
    let s3 = server.client();
    s3.create_bucket().bucket(&b).send().await.unwrap();
    s3.put_object()
        .bucket(&b)
        .key("k")
        .body(ByteStream::from_static(b"persisted"))
        .send()
        .await
        .unwrap();
    let ak = server.key("admin_access_key_id");
    server.restart();
    assert_eq!(
        server.key("admin_access_key_id"),
        ak,
        "the same credentials after a restart"
    );
    let s3 = server.client();
    let got = s3.get_object().bucket(&b).key("k").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"persisted"
    );
}
