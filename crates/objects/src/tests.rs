//! Domain tests on the embedded backends.

use std::sync::Arc;

use bytes::Bytes;
use coffer_storage::local::{FsBlobStore, RedbMetaStore};
use coffer_storage::{BlobStore, MetaStore};
use futures::TryStreamExt;

use crate::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    blobs: Arc<FsBlobStore>,
    owner: Owner,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).unwrap());
    let store = Store::new(meta, blobs.clone(), "us-south");
    let owner = Owner {
        account_id: "acct".into(),
        instance_id: "inst".into(),
    };
    Fixture {
        _dir: dir,
        store,
        blobs,
        owner,
    }
}

fn body(data: Vec<u8>) -> impl futures::Stream<Item = std::result::Result<Bytes, BodyError>> + Send {
    futures::stream::iter(
        data.chunks(7000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    )
}

fn opts() -> StageOptions {
    StageOptions {
        max_len: limits::MAX_PUT_SIZE,
        ..Default::default()
    }
}

async fn put(f: &Fixture, b: &BucketInfo, key: &str, data: Vec<u8>) -> ObjectInfo {
    let staged = f.store.stage(b, body(data), opts()).await.unwrap();
    f.store
        .put_object(b, key, staged, ObjectAttrs::default(), &WriteCondition::None)
        .await
        .unwrap()
}

async fn get(f: &Fixture, b: &BucketInfo, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let body = f
        .store
        .get_object(b, key, &Preconditions::default(), range, None)
        .await
        .unwrap();
    let chunks: Vec<Bytes> = body.stream.try_collect().await.unwrap();
    chunks.concat()
}

async fn blob_count(f: &Fixture) -> usize {
    // Retired blobs, and those of dropped staged bodies, are deleted by background tasks.
    f.store.settled().await;
    f.blobs.list().await.unwrap().len()
}

#[tokio::test]
async fn buckets_create_list_delete() {
    let f = fixture();
    let b = f
        .store
        .create_bucket(&f.owner, "alpha", None, None)
        .await
        .unwrap();
    assert_eq!(b.location(), "us-south-standard");
    f.store
        .create_bucket(&f.owner, "beta", Some("us-south-cold"), None)
        .await
        .unwrap();
    assert!(matches!(
        f.store.create_bucket(&f.owner, "alpha", None, None).await,
        Err(Error::BucketAlreadyOwnedByYou)
    ));
    let other = Owner {
        account_id: "x".into(),
        instance_id: "y".into(),
    };
    assert!(matches!(
        f.store.create_bucket(&other, "alpha", None, None).await,
        Err(Error::BucketAlreadyExists)
    ));
    assert!(matches!(
        f.store
            .create_bucket(&f.owner, "gamma", Some("eu-de-standard"), None)
            .await,
        Err(Error::InvalidLocationConstraint)
    ));
    assert!(matches!(
        f.store.create_bucket(&f.owner, "Bad_Name", None, None).await,
        Err(Error::InvalidBucketName)
    ));
    let names: Vec<String> = f
        .store
        .list_buckets("inst")
        .await
        .unwrap()
        .iter()
        .map(|b| b.name().to_owned())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(f.store.list_buckets("y").await.unwrap().is_empty());

    put(&f, &b, "k", b"v".to_vec()).await;
    assert!(matches!(
        f.store.delete_bucket(&b).await,
        Err(Error::BucketNotEmpty)
    ));
    f.store.delete_object(&b, "k").await.unwrap();
    // Bucket records are kept in memory (listing read them all): deleting forgets them.
    assert_eq!(f.store.bucket("alpha").await.unwrap(), b);
    f.store.delete_bucket(&b).await.unwrap();
    assert!(matches!(f.store.bucket("alpha").await, Err(Error::NoSuchBucket)));
    // A write holding the old bucket must not land in a new bucket of the same name.
    let again = f
        .store
        .create_bucket(&f.owner, "alpha", None, None)
        .await
        .unwrap();
    assert_eq!(f.store.bucket("alpha").await.unwrap(), again);
    let staged = f.store.stage(&b, body(b"late".to_vec()), opts()).await.unwrap();
    let late = f
        .store
        .put_object(&b, "late", staged, ObjectAttrs::default(), &WriteCondition::None)
        .await;
    assert!(matches!(late, Err(Error::NoSuchBucket)));
    assert!(matches!(
        f.store.head_object(&again, "late").await,
        Err(Error::NoSuchKey)
    ));
    assert_eq!(blob_count(&f).await, 0);
}

#[tokio::test]
async fn put_get_ranges_overwrite_and_delete() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let info = put(&f, &b, "obj", data.clone()).await;
    assert_eq!(info.etag, hex::encode(coffer_crypto::Md5::digest(&data)));
    assert_eq!(get(&f, &b, "obj", None).await, data);
    let r = ByteRange::FromTo {
        first: 10,
        last: Some(99_999),
    };
    assert_eq!(get(&f, &b, "obj", Some(r)).await, &data[10..]);
    assert_eq!(
        get(&f, &b, "obj", Some(ByteRange::Suffix(5))).await,
        &data[data.len() - 5..]
    );

    put(&f, &b, "obj", b"new".to_vec()).await;
    assert_eq!(get(&f, &b, "obj", None).await, b"new");
    assert_eq!(blob_count(&f).await, 1, "the replaced blob is deleted");

    assert_eq!(
        f.store.delete_object(&b, "obj").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        f.store.delete_object(&b, "obj").await.unwrap(),
        DeleteOutcome::NotFound
    );
    assert!(matches!(
        f.store.head_object(&b, "obj").await,
        Err(Error::NoSuchKey)
    ));
    assert_eq!(blob_count(&f).await, 0);
}

#[tokio::test]
async fn a_reader_keeps_the_old_bytes_across_an_overwrite() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let old = vec![1u8; 3 << 20];
    put(&f, &b, "k", old.clone()).await;
    let reading = f
        .store
        .get_object(&b, "k", &Preconditions::default(), None, None)
        .await
        .unwrap();
    put(&f, &b, "k", vec![2u8; 10]).await;
    f.store.delete_object(&b, "k").await.unwrap();
    let chunks: Vec<Bytes> = reading.stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), old);
    assert_eq!(
        blob_count(&f).await,
        0,
        "deferred deletion happened when the reader finished"
    );
}

#[tokio::test]
async fn concurrent_writers_last_wins_and_nothing_leaks() {
    let f = Arc::new(fixture());
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (f, b) = (f.clone(), b.clone());
        tasks.push(tokio::spawn(
            async move { put(&f, &b, "same", vec![i; 50_000]).await },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = get(&f, &b, "same", None).await;
    assert_eq!(got.len(), 50_000);
    assert!(got.iter().all(|x| *x == got[0]), "never a mix");
    assert_eq!(blob_count(&f).await, 1);
}

/// Many large bodies at once share the few hashing threads: each gets its own digests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_bodies_hash_apart() {
    use futures::StreamExt as _;
    let f = Arc::new(fixture());
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let (f, b) = (f.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..300_000u32).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect();
            let chunks: Vec<_> = data.chunks(7000).map(Bytes::copy_from_slice).collect();
            // Yield between chunks so that the bodies interleave on the hashing threads.
            let slow = futures::stream::iter(chunks).then(|c| async move {
                tokio::task::yield_now().await;
                Ok::<_, BodyError>(c)
            });
            let mut o = opts();
            o.checksums = vec![coffer_crypto::ChecksumAlgorithm::Crc32c];
            let staged = f.store.stage(&b, slow, o).await.unwrap();
            assert_eq!(staged.md5, coffer_crypto::Md5::digest(&data), "body {i}");
            let mut crc = coffer_crypto::Checksums::new([coffer_crypto::ChecksumAlgorithm::Crc32c]);
            crc.update(&data);
            assert_eq!(staged.checksums, crc.finalize(), "body {i}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn conditional_writes_and_digests() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let staged = f.store.stage(&b, body(b"abc".to_vec()), opts()).await.unwrap();
    assert!(matches!(
        staged.verify(Some("AAAAAAAAAAAAAAAAAAAAAA=="), &[]),
        Err(Error::BadDigest)
    ));
    assert!(matches!(
        staged.verify(Some("nope"), &[]),
        Err(Error::InvalidDigest)
    ));
    staged.verify(Some("kAFQmDzST7DWlj99KOF/cg=="), &[]).unwrap();
    f.store
        .put_object(&b, "k", staged, ObjectAttrs::default(), &WriteCondition::IfAbsent)
        .await
        .unwrap();
    let staged = f.store.stage(&b, body(b"x".to_vec()), opts()).await.unwrap();
    let r = f
        .store
        .put_object(&b, "k", staged, ObjectAttrs::default(), &WriteCondition::IfAbsent)
        .await;
    assert!(matches!(r, Err(Error::PreconditionFailed)));
    let short = StageOptions {
        expected_len: Some(10),
        ..opts()
    };
    assert!(matches!(
        f.store.stage(&b, body(b"abc".to_vec()), short).await,
        Err(Error::IncompleteBody)
    ));
    let tiny = StageOptions { max_len: 2, ..opts() };
    assert!(matches!(
        f.store.stage(&b, body(b"abc".to_vec()), tiny).await,
        Err(Error::EntityTooLarge)
    ));
    assert_eq!(get(&f, &b, "k", None).await, b"abc");
    assert_eq!(blob_count(&f).await, 1, "failed writes leave no blob");
}

#[tokio::test]
async fn listing_with_delimiter_and_pages() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    for k in ["a", "b/1", "b/2", "b/3", "c", "d/x/1", "d/y", "e"] {
        put(&f, &b, k, b"x".to_vec()).await;
    }
    let names = |p: &ListPage| -> Vec<String> {
        p.entries
            .iter()
            .map(|e| match e {
                ListedObject::Object(o) => o.key.clone(),
                ListedObject::CommonPrefix(c) => format!("{c}*"),
            })
            .collect()
    };
    let q = ListQuery {
        delimiter: Some("/".into()),
        max_keys: 1000,
        ..Default::default()
    };
    let page = f.store.list_objects(&b, &q).await.unwrap();
    assert_eq!(names(&page), ["a", "b/*", "c", "d/*", "e"]);
    assert!(!page.is_truncated);

    // Page through two at a time; every entry exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery {
            delimiter: Some("/".into()),
            max_keys: 2,
            after: after.clone(),
            ..Default::default()
        };
        let page = f.store.list_objects(&b, &q).await.unwrap();
        seen.extend(names(&page));
        if !page.is_truncated {
            break;
        }
        after = page.last.clone();
    }
    assert_eq!(seen, ["a", "b/*", "c", "d/*", "e"]);

    let q = ListQuery {
        prefix: "d/".into(),
        delimiter: Some("/".into()),
        max_keys: 1000,
        ..Default::default()
    };
    assert_eq!(
        names(&f.store.list_objects(&b, &q).await.unwrap()),
        ["d/x/*", "d/y"]
    );
    let q = ListQuery {
        prefix: "b/".into(),
        max_keys: 2,
        ..Default::default()
    };
    let page = f.store.list_objects(&b, &q).await.unwrap();
    assert_eq!(names(&page), ["b/1", "b/2"]);
    assert!(page.is_truncated);
}

#[tokio::test]
async fn multipart_rules_and_etag() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let up = f
        .store
        .create_upload(&b, "mp", ObjectAttrs::default(), None)
        .await
        .unwrap();
    let p1 = vec![1u8; limits::MIN_PART_SIZE as usize];
    let p2 = vec![2u8; 1000];
    let mut etags = Vec::new();
    for (n, data) in [(1, p1.clone()), (2, p2.clone()), (3, b"unused".to_vec())] {
        let staged = f.store.stage(&b, body(data), opts()).await.unwrap();
        etags.push(
            f.store
                .upload_part(&b, "mp", &up.upload_id, n, staged)
                .await
                .unwrap()
                .etag,
        );
    }
    let cp = |n: u32, e: &str| CompletePart {
        number: n,
        etag: format!("\"{e}\""),
        checksums: vec![],
    };
    let page = f.store.list_parts(&b, "mp", &up.upload_id, 0, 2).await.unwrap();
    assert_eq!(page.parts.len(), 2);
    assert!(page.is_truncated);

    let bad_order = [cp(2, &etags[1]), cp(1, &etags[0])];
    assert!(matches!(
        f.store
            .complete_upload(&b, "mp", &up.upload_id, &bad_order, &WriteCondition::None)
            .await,
        Err(Error::InvalidPartOrder)
    ));
    let bad_etag = [cp(1, &etags[1])];
    assert!(matches!(
        f.store
            .complete_upload(&b, "mp", &up.upload_id, &bad_etag, &WriteCondition::None)
            .await,
        Err(Error::InvalidPart(_))
    ));
    let too_small = [cp(2, &etags[1]), cp(3, &etags[2])];
    assert!(matches!(
        f.store
            .complete_upload(&b, "mp", &up.upload_id, &too_small, &WriteCondition::None)
            .await,
        Err(Error::EntityTooSmall)
    ));
    let good = [cp(1, &etags[0]), cp(2, &etags[1])];
    let info = f
        .store
        .complete_upload(&b, "mp", &up.upload_id, &good, &WriteCondition::None)
        .await
        .unwrap();
    let mut md5 = coffer_crypto::Md5::new();
    md5.update(&coffer_crypto::Md5::digest(&p1));
    md5.update(&coffer_crypto::Md5::digest(&p2));
    assert_eq!(info.etag, format!("{}-2", hex::encode(md5.finalize())));
    assert_eq!(info.parts_count, Some(2));
    let whole = [p1.clone(), p2.clone()].concat();
    assert_eq!(get(&f, &b, "mp", None).await, whole);
    let across = ByteRange::FromTo {
        first: p1.len() as u64 - 3,
        last: Some(p1.len() as u64 + 2),
    };
    assert_eq!(
        get(&f, &b, "mp", Some(across)).await,
        &whole[p1.len() - 3..p1.len() + 3]
    );
    assert!(matches!(
        f.store
            .complete_upload(&b, "mp", &up.upload_id, &good, &WriteCondition::None)
            .await,
        Err(Error::NoSuchUpload)
    ));
    assert_eq!(blob_count(&f).await, 2, "the unused part was dropped");

    let up2 = f
        .store
        .create_upload(&b, "gone", ObjectAttrs::default(), None)
        .await
        .unwrap();
    let staged = f.store.stage(&b, body(b"x".to_vec()), opts()).await.unwrap();
    f.store
        .upload_part(&b, "gone", &up2.upload_id, 1, staged)
        .await
        .unwrap();
    let listed = f
        .store
        .list_uploads(
            &b,
            &UploadsQuery {
                max_uploads: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.uploads.len(), 1);
    f.store.abort_upload(&b, "gone", &up2.upload_id).await.unwrap();
    assert!(matches!(
        f.store.abort_upload(&b, "gone", &up2.upload_id).await,
        Err(Error::NoSuchUpload)
    ));
    assert_eq!(blob_count(&f).await, 2);
}

#[tokio::test]
async fn copy_and_sweep() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    put(&f, &b, "src", b"payload".to_vec()).await;
    let src = CopySource {
        bucket: &b,
        key: "src",
        preconditions: Preconditions::default(),
    };
    let copied = f
        .store
        .copy_object(&src, &b, "dst", None, &WriteCondition::None)
        .await
        .unwrap();
    assert_eq!(copied.etag, hex::encode(coffer_crypto::Md5::digest(b"payload")));
    assert_eq!(get(&f, &b, "dst", None).await, b"payload");
    assert!(matches!(
        f.store
            .copy_object(&src, &b, "src", None, &WriteCondition::None)
            .await,
        Err(Error::InvalidRequest(_))
    ));

    // An orphan as a crash would leave it: a finished blob that no record points to.
    let mut w = f.blobs.create().await.unwrap();
    w.write(Bytes::from_static(b"orphan")).await.unwrap();
    w.finish().await.unwrap();
    let report = f.store.sweep_orphans().await.unwrap();
    assert_eq!(report.orphans, 1);
    assert_eq!(get(&f, &b, "dst", None).await, b"payload");
    assert_eq!(get(&f, &b, "src", None).await, b"payload");
}

#[tokio::test]
async fn small_objects_live_in_their_record() {
    let f = fixture();
    let b = f.store.create_bucket(&f.owner, "bkt", None, None).await.unwrap();
    let inline = StageOptions {
        inline: true,
        ..opts()
    };
    let put_inline = |key: &'static str, data: Vec<u8>| {
        let (f, b, inline) = (&f, &b, inline.clone());
        async move {
            let staged = f.store.stage(b, body(data), inline).await.unwrap();
            f.store
                .put_object(b, key, staged, ObjectAttrs::default(), &WriteCondition::None)
                .await
                .unwrap()
        }
    };
    let small: Vec<u8> = (0..ingest::INLINE_MAX as u32).map(|i| (i % 251) as u8).collect();
    put_inline("small", small.clone()).await;
    put_inline("empty", Vec::new()).await;
    assert_eq!(blob_count(&f).await, 0);
    assert_eq!(get(&f, &b, "small", None).await, small);
    assert!(get(&f, &b, "empty", None).await.is_empty());
    let r = ByteRange::FromTo {
        first: 8000,
        last: None,
    };
    assert_eq!(get(&f, &b, "small", Some(r)).await, &small[8000..]);

    // Replaced by a larger body (a blob), then by a small one again, then deleted.
    let large: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
    put_inline("small", large.clone()).await;
    assert_eq!(blob_count(&f).await, 1);
    assert_eq!(get(&f, &b, "small", None).await, large);
    put_inline("small", b"tiny".to_vec()).await;
    assert_eq!(blob_count(&f).await, 0, "the replaced blob is deleted");
    assert_eq!(get(&f, &b, "small", None).await, b"tiny");
    f.store.delete_object(&b, "small").await.unwrap();
    assert!(matches!(
        f.store.head_object(&b, "small").await,
        Err(Error::NoSuchKey)
    ));
}

/// The nice values of this process's threads named `prefix*`.
fn thread_nices(prefix: &str) -> Vec<i32> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
        // `pid (comm) state ...`: the nice value is the 19th field, the 16th after the comm.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if stat[open + 1..close].starts_with(prefix) {
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            nices.push(fields[16].parse().unwrap());
        }
    }
    nices
}

#[tokio::test]
async fn hashing_threads_run_ahead_when_the_process_may_raise_priorities() {
    // A body past the inline limit starts the hashing threads.
    let mut d = digests::BodyDigests::new(&[]);
    d.update(&Bytes::from(vec![7u8; 1 << 20])).await.unwrap();
    d.finish().await.unwrap();
    // Whether this process may raise a thread's priority, asked of a scratch thread.
    let may = std::thread::spawn(|| rustix::process::setpriority_process(None, digests::HASH_NICE).is_ok())
        .join()
        .unwrap();
    let want = if may { digests::HASH_NICE } else { 0 };
    // Each thread sets its own priority as it starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let nices = thread_nices("coffer-hash");
        if !nices.is_empty() && nices.iter().all(|&n| n == want) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{nices:?}, want {want}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
