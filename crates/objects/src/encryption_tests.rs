//! Encrypted buckets on the real KMS: the domain view of issue 5.

use std::sync::Arc;

use bytes::Bytes;
use coffer_iam::{
    Attribute, Attributes, BootstrapRequest, Iam, PolicyInput, PolicyRole, PolicyType, Principal, Role,
    ServiceKind, TokenConfig,
};
use coffer_kms::{DeleteOptions, Kms, NewKey, Timing};
use coffer_storage::local::{FsBlobStore, RedbMetaStore};
use coffer_storage::{BlobStore, MetaStore};
use futures::{StreamExt, TryStreamExt};

use crate::*;

struct Fixture {
    dir: tempfile::TempDir,
    meta: Arc<dyn MetaStore>,
    store: Store,
    blobs: Arc<FsBlobStore>,
    kms: Kms,
    admin: Principal,
    kms_instance: String,
    owner: Owner,
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    Attributes {
        attributes: pairs
            .iter()
            .map(|(n, v)| Attribute {
                name: (*n).into(),
                value: (*v).into(),
                operator: None,
            })
            .collect(),
    }
}

async fn fixture(authorize: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = Arc::new(RedbMetaStore::open(&dir.path().join("m.redb")).unwrap());
    let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).unwrap());
    let iam = Iam::open(meta.clone(), TokenConfig::default()).await.unwrap();
    let boot = iam.bootstrap(BootstrapRequest::default()).await.unwrap();
    let admin = Principal::Identity {
        iam_id: boot.admin_iam_id.clone(),
        account: boot.account_id.clone(),
    };
    let timing = Timing {
        state_change_delay_secs: 0,
        rotate_min_interval_secs: 0,
        purge_delay_secs: 0,
        ..Timing::default()
    };
    let kms = Kms::open(meta.clone(), iam.clone(), timing, None).await.unwrap();
    let kms_instance = kms
        .create_instance(&admin, ServiceKind::HsCrypto, "us-south", "k")
        .await
        .unwrap()
        .id;
    let (parts, vp) = coffer_kms::parts::generate(2);
    kms.begin_software_init(&admin, &kms_instance, 2, &vp)
        .await
        .unwrap();
    for p in parts {
        kms.load_part(&admin, &kms_instance, p).await.unwrap();
    }
    if authorize {
        let policy = PolicyInput {
            kind: PolicyType::Authorization,
            subjects: vec![attrs(&[
                ("accountId", &boot.account_id),
                ("serviceName", "cloud-object-storage"),
                ("serviceInstance", &boot.cos_instance_id),
            ])],
            roles: vec![PolicyRole {
                role_id: Role::Reader.role_id(),
                display_name: None,
                description: None,
            }],
            resources: vec![attrs(&[
                ("accountId", &boot.account_id),
                ("serviceName", "hs-crypto"),
                ("serviceInstance", &kms_instance),
            ])],
            description: None,
        };
        iam.create_policy(policy, &boot.account_id, &boot.admin_iam_id)
            .await
            .unwrap();
    }
    let store = Store::new(meta.clone(), blobs.clone(), "us-south").with_kms(kms.clone());
    let owner = Owner {
        account_id: boot.account_id,
        instance_id: boot.cos_instance_id,
    };
    Fixture {
        dir,
        meta,
        store,
        blobs,
        kms,
        admin,
        kms_instance,
        owner,
    }
}

impl Fixture {
    async fn root_key(&self) -> (String, String) {
        let k = self
            .kms
            .create_key(
                &self.admin,
                &self.kms_instance,
                NewKey {
                    name: "root".into(),
                    ..NewKey::default()
                },
            )
            .await
            .unwrap();
        let crn = coffer_iam::Crn::instance(
            "hs-crypto",
            "us-south",
            &self.owner.account_id,
            &self.kms_instance,
        )
        .child("key", &k.id)
        .to_string();
        (k.id, crn)
    }

    /// A bucket under a new root key.
    async fn encrypted_bucket(&self, name: &str) -> BucketInfo {
        let (_, crn) = self.root_key().await;
        self.store
            .create_bucket(&self.owner, name, None, Some(&crn))
            .await
            .unwrap()
    }

    async fn put(&self, b: &BucketInfo, key: &str, data: &[u8]) -> Result<ObjectInfo> {
        self.put_with(b, key, data, false).await
    }

    /// A PUT as the S3 API makes it: small bodies may be kept inline.
    async fn put_inline(&self, b: &BucketInfo, key: &str, data: &[u8]) -> Result<ObjectInfo> {
        self.put_with(b, key, data, true).await
    }

    async fn put_with(&self, b: &BucketInfo, key: &str, data: &[u8], inline: bool) -> Result<ObjectInfo> {
        let body = futures::stream::iter(
            data.chunks(10_000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let staged = self
            .store
            .stage(
                b,
                body,
                StageOptions {
                    max_len: limits::MAX_PUT_SIZE,
                    inline,
                    ..Default::default()
                },
            )
            .await?;
        self.store
            .put_object(b, key, staged, ObjectAttrs::default(), &WriteCondition::None)
            .await
    }

    async fn get(&self, b: &BucketInfo, key: &str, range: Option<ByteRange>) -> Result<Vec<u8>> {
        let body = self
            .store
            .get_object(b, key, &Preconditions::default(), range, None)
            .await?;
        let chunks: Vec<Bytes> = body.stream.try_collect().await?;
        Ok(chunks.concat())
    }

    fn blob_files(&self) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for fan in std::fs::read_dir(self.dir.path().join("blobs/blobs")).unwrap() {
            for f in std::fs::read_dir(fan.unwrap().path()).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out
    }
}

fn pattern(n: usize) -> Vec<u8> {
    b"COFFER-PLAINTEXT-PATTERN-"
        .iter()
        .cycle()
        .take(n)
        .copied()
        .collect()
}

#[tokio::test]
async fn encrypted_objects_round_trip_and_never_reach_the_disk() {
    let f = fixture(true).await;
    let b = f.encrypted_bucket("enc").await;
    assert!(b.root_key_crn().is_some_and(|c| c.contains(":hs-crypto:")));
    let data = pattern(3 * 65536 + 123);
    let info = f.put(&b, "obj", &data).await.unwrap();
    assert_eq!(
        info.etag,
        hex::encode(coffer_crypto::Md5::digest(&data)),
        "the ETag is the plaintext's MD5"
    );
    assert_eq!(f.get(&b, "obj", None).await.unwrap(), data);
    for (first, last) in [
        (0u64, 0u64),
        (65535, 65536),
        (65536 * 2 - 1, 65536 * 3 + 5),
        (100, 200),
    ] {
        let r = ByteRange::FromTo {
            first,
            last: Some(last),
        };
        assert_eq!(
            f.get(&b, "obj", Some(r)).await.unwrap(),
            &data[first as usize..=last as usize]
        );
    }
    assert_eq!(
        f.get(&b, "empty", None).await.err().map(|e| e.to_string()),
        Some("no such key".into())
    );
    f.put(&b, "empty", b"").await.unwrap();
    assert!(f.get(&b, "empty", None).await.unwrap().is_empty());
    for file in f.blob_files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(25).any(|w| w == b"COFFER-PLAINTEXT-PATTERN-"),
            "plaintext in {}",
            file.display()
        );
    }
    let plain = f
        .store
        .create_bucket(&f.owner, "plain", None, None)
        .await
        .unwrap();
    let src = CopySource {
        bucket: &b,
        key: "obj",
        preconditions: Preconditions::default(),
    };
    f.store
        .copy_object(&src, &plain, "copy", None, &WriteCondition::None)
        .await
        .unwrap();
    assert_eq!(f.get(&plain, "copy", None).await.unwrap(), data);
}

#[tokio::test]
async fn a_wrong_crn_or_a_missing_authorization_is_the_same_error() {
    let f = fixture(false).await;
    let (_, crn) = f.root_key().await;
    for bad in [
        crn.as_str(),
        "not-a-crn",
        "crn:v1:bluemix:public:hs-crypto:us-south:a/x:y:key:z",
    ] {
        let e = f
            .store
            .create_bucket(&f.owner, "nope", None, Some(bad))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyCrnNotFound), "{bad}: {e}");
    }
    assert!(matches!(f.store.bucket("nope").await, Err(Error::NoSuchBucket)));
}

#[tokio::test]
async fn tampering_is_detected_and_never_returns_wrong_bytes() {
    let f = fixture(true).await;
    let b = f.encrypted_bucket("enc").await;
    let data = pattern(200_000);
    f.put(&b, "a", &data).await.unwrap();
    let a_file = f.blob_files().pop().unwrap();
    f.put(&b, "b", &pattern(200_000)).await.unwrap();
    let b_file = f.blob_files().into_iter().find(|p| *p != a_file).unwrap();
    let original = std::fs::read(&a_file).unwrap();

    let mut flipped = original.clone();
    flipped[100_000] ^= 1;
    std::fs::write(&a_file, &flipped).unwrap();
    // The first segment is intact, but segments are opened in batches: either the request
    // fails before the body, or the body breaks off at the tampered segment. Never wrong bytes.
    match f
        .store
        .get_object(&b, "a", &Preconditions::default(), None, None)
        .await
    {
        Err(e) => assert!(matches!(e, Error::Integrity)),
        Ok(body) => {
            let read: std::result::Result<Vec<Bytes>, Error> = body.stream.try_collect().await;
            assert!(matches!(read, Err(Error::Integrity)));
        }
    }
    // A range that starts in the tampered segment fails before any byte.
    let r = ByteRange::FromTo {
        first: 100_000,
        last: Some(100_010),
    };
    assert!(matches!(f.get(&b, "a", Some(r)).await, Err(Error::Integrity)));

    std::fs::write(&a_file, &original[..original.len() - 1000]).unwrap();
    assert!(
        matches!(f.get(&b, "a", None).await, Err(Error::Integrity)),
        "truncated"
    );

    std::fs::write(&a_file, std::fs::read(&b_file).unwrap()).unwrap();
    assert!(
        matches!(f.get(&b, "a", None).await, Err(Error::Integrity)),
        "another object's blob"
    );
    std::fs::write(&a_file, &original).unwrap();
    assert_eq!(f.get(&b, "a", None).await.unwrap(), data);
    let _ = f.blobs.list().await.unwrap();
}

#[tokio::test]
async fn key_states_hold_at_once() {
    let f = fixture(true).await;
    let (key, crn) = f.root_key().await;
    let b = f
        .store
        .create_bucket(&f.owner, "enc", None, Some(&crn))
        .await
        .unwrap();
    f.put(&b, "before", b"old").await.unwrap();
    f.kms
        .rotate_key(&f.admin, &f.kms_instance, &key, None)
        .await
        .unwrap();
    f.put(&b, "after", b"new").await.unwrap();
    assert_eq!(f.get(&b, "before", None).await.unwrap(), b"old");
    assert_eq!(f.get(&b, "after", None).await.unwrap(), b"new");

    f.kms.disable_key(&f.admin, &f.kms_instance, &key).await.unwrap();
    assert!(matches!(
        f.get(&b, "before", None).await,
        Err(Error::KeyUnusable(KeyAccess::Suspended))
    ));
    assert!(matches!(f.put(&b, "x", b"x").await, Err(Error::KeyUnusable(_))));
    let listed = f
        .store
        .list_objects(
            &b,
            &ListQuery {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.entries.len(), 2);
    f.kms.enable_key(&f.admin, &f.kms_instance, &key).await.unwrap();
    assert_eq!(f.get(&b, "before", None).await.unwrap(), b"old");

    f.kms
        .delete_key(&f.admin, &f.kms_instance, &key, DeleteOptions { force: true })
        .await
        .unwrap();
    assert!(matches!(
        f.get(&b, "after", None).await,
        Err(Error::KeyUnusable(KeyAccess::Destroyed))
    ));
    f.kms
        .restore_key(&f.admin, &f.kms_instance, &key, None)
        .await
        .unwrap();
    assert_eq!(f.get(&b, "after", None).await.unwrap(), b"new");

    f.kms
        .delete_key(&f.admin, &f.kms_instance, &key, DeleteOptions { force: true })
        .await
        .unwrap();
    f.kms.purge_key(&f.admin, &f.kms_instance, &key).await.unwrap();
    assert!(matches!(
        f.get(&b, "after", None).await,
        Err(Error::KeyUnusable(_))
    ));
    // Shredded: objects can still be listed and deleted, and the bucket removed.
    f.store.delete_object(&b, "before").await.unwrap();
    f.store.delete_object(&b, "after").await.unwrap();
    f.store.delete_bucket(&b).await.unwrap();
    let events = f.store.activity(100).await.unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["requestData"]["eventType"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["rotate", "disable", "enable", "delete", "restore", "delete"]
    );
}

#[tokio::test]
async fn an_expired_key_reads_but_refuses_writes() {
    let f = fixture(true).await;
    // No event marks an expiration: the bucket must notice the time itself.
    let expires = now_ms() / 1000 + 2;
    let k = f
        .kms
        .create_key(
            &f.admin,
            &f.kms_instance,
            NewKey {
                name: "short-lived".into(),
                expiration: Some(expires),
                ..NewKey::default()
            },
        )
        .await
        .unwrap();
    let crn = coffer_iam::Crn::instance("hs-crypto", "us-south", &f.owner.account_id, &f.kms_instance)
        .child("key", &k.id)
        .to_string();
    let b = f
        .store
        .create_bucket(&f.owner, "expiring", None, Some(&crn))
        .await
        .unwrap();
    f.put(&b, "a", b"before").await.unwrap();
    while now_ms() / 1000 < expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(matches!(
        f.put(&b, "b", b"after").await,
        Err(Error::KeyUnusable(KeyAccess::Deactivated))
    ));
    assert_eq!(f.get(&b, "a", None).await.unwrap(), b"before");
}

#[tokio::test]
async fn ranges_across_read_batches_and_a_break_mid_body() {
    let f = fixture(true).await;
    let b = f.encrypted_bucket("big").await;
    let data = pattern(2_600_000);
    f.put(&b, "a", &data).await.unwrap();
    // Boundaries of segments (64 KiB), of sealed segments in the blob and of 512 KiB reads.
    let seg = 65_536u64;
    let mut points = vec![0u64, 1, seg - 1, seg, seg + 1, 524_288, 524_289, 2_599_999];
    points.extend((1..40).map(|i| i * 65_552 % 2_600_000));
    for (i, &first) in points.iter().enumerate() {
        for len in [1u64, 17, seg, 600_000, 2_600_000] {
            let last = (first + len - 1).min(2_599_999);
            let r = ByteRange::FromTo {
                first,
                last: Some(last),
            };
            let got = f.get(&b, "a", Some(r)).await.unwrap();
            assert_eq!(
                got,
                data[first as usize..=last as usize],
                "range {i}: {first}-{last}"
            );
        }
    }
    // Tampering late in a large object: the body starts, then breaks off; what came is right.
    let file = f.blob_files().into_iter().next().unwrap();
    let mut raw = std::fs::read(&file).unwrap();
    raw[2_000_000] ^= 1;
    std::fs::write(&file, &raw).unwrap();
    let body = f
        .store
        .get_object(&b, "a", &Preconditions::default(), None, None)
        .await
        .unwrap();
    let mut stream = body.stream;
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => got.extend_from_slice(&bytes),
            Err(e) => {
                assert!(matches!(e, Error::Integrity));
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the tampered segment must end the body");
    assert!(!got.is_empty() && got.len() < 2_000_000);
    assert_eq!(got, data[..got.len()]);
}

/// Rewrites the inline bytes of `key`'s record with `edit`.
async fn edit_inline(f: &Fixture, b: &BucketInfo, key: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let okey = records::object_key(&b.record.id, key);
    let raw = f.meta.get(records::OBJECTS, &okey).await.unwrap().unwrap();
    let mut record = records::ObjectRecord::decode(&raw).unwrap();
    let piece = &mut record.pieces[0];
    let mut bytes = piece.inline.as_ref().unwrap().to_vec();
    edit(&mut bytes);
    piece.inline = Some(bytes.into());
    let mut batch = coffer_storage::Batch::new();
    batch.put(records::OBJECTS, okey, record.encode().unwrap());
    f.meta.commit(batch).await.unwrap();
}

#[tokio::test]
async fn small_objects_are_sealed_inline_in_their_record() {
    use coffer_crypto::segments::HEADER_LEN;
    let f = fixture(true).await;
    let b = f.encrypted_bucket("inl").await;
    // The largest plaintext whose sealed form fits inline: one segment and its tag.
    let largest = ingest::INLINE_MAX - HEADER_LEN - coffer_crypto::TAG_LEN;
    for n in [0, 1, 4096, largest] {
        let data = pattern(n);
        let key = format!("k{n}");
        let info = f.put_inline(&b, &key, &data).await.unwrap();
        assert_eq!(info.etag, hex::encode(coffer_crypto::Md5::digest(&data)));
        assert_eq!(f.get(&b, &key, None).await.unwrap(), data, "size {n}");
        if n > 100 {
            let r = ByteRange::FromTo {
                first: 50,
                last: Some(99),
            };
            assert_eq!(f.get(&b, &key, Some(r)).await.unwrap(), &data[50..100]);
        }
    }
    assert!(f.blob_files().is_empty(), "small objects have no blob");
    f.put_inline(&b, "big", &pattern(largest + 1)).await.unwrap();
    assert_eq!(f.blob_files().len(), 1, "one byte more is a blob");
    assert_eq!(f.get(&b, "big", None).await.unwrap(), pattern(largest + 1));

    // Sealed in the metadata file too.
    let meta_file = std::fs::read(f.dir.path().join("m.redb")).unwrap();
    assert!(!meta_file.windows(25).any(|w| w == b"COFFER-PLAINTEXT-PATTERN-"));

    // A flipped bit, a truncation or another object's bytes: refused, never wrong bytes.
    let original = pattern(4096);
    edit_inline(&f, &b, "k4096", |bytes| bytes[HEADER_LEN + 10] ^= 1).await;
    assert!(matches!(f.get(&b, "k4096", None).await, Err(Error::Integrity)));
    f.put_inline(&b, "k4096", &original).await.unwrap();
    edit_inline(&f, &b, "k4096", |bytes| bytes.truncate(bytes.len() - 1)).await;
    assert!(f.get(&b, "k4096", None).await.is_err(), "truncated");
    f.put_inline(&b, "k4096", &original).await.unwrap();
    f.put_inline(&b, "other", &pattern(4096)).await.unwrap();
    let okey = records::object_key(&b.record.id, "other");
    let other =
        records::ObjectRecord::decode(&f.meta.get(records::OBJECTS, &okey).await.unwrap().unwrap()).unwrap();
    let other_bytes = other.pieces[0].inline.clone().unwrap();
    edit_inline(&f, &b, "k4096", |bytes| *bytes = other_bytes.to_vec()).await;
    assert!(matches!(f.get(&b, "k4096", None).await, Err(Error::Integrity)));
}

/// A bucket derives an object's key once and hands the same key to every reader of it; the
/// key opens what was sealed under the DEK, and another object's key does not.
#[test]
fn object_keys_are_derived_once_per_object() {
    use coffer_crypto::KeyMaterial;
    use coffer_crypto::segments::{Opener, SEGMENT_SIZE, Sealer, SegmentHeader};

    let keys = crate::encryption::BucketKeys::new(KeyMaterial::generate(), Arc::default());
    let (a, b) = (
        SegmentHeader::random(SEGMENT_SIZE),
        SegmentHeader::random(SEGMENT_SIZE),
    );
    assert!(Arc::ptr_eq(&keys.object_key(&a), &keys.object_key(&a)));
    assert!(!Arc::ptr_eq(&keys.object_key(&a), &keys.object_key(&b)));
    let mut sealer = Sealer::new(keys.dek(), a.clone());
    assert!(sealer.push(b"a pattern to find").unwrap().is_empty());
    let sealed = sealer.finish().unwrap();
    for (key, opens) in [(keys.object_key(&a), true), (keys.object_key(&b), false)] {
        let opener = Opener::with_key(key, a.clone(), 17);
        let mut bytes = sealed.clone();
        let got = opener.open(0, &mut bytes).map(|p| p.to_vec());
        assert_eq!(got.ok().as_deref() == Some(&b"a pattern to find"[..]), opens);
    }
}

/// The object keys of all buckets together stay within a bound: a bucket with nothing to give
/// back goes without, one that has keys starts over, and a dropped bucket returns its share.
#[test]
fn object_keys_of_all_buckets_are_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use coffer_crypto::KeyMaterial;
    use coffer_crypto::segments::{SEGMENT_SIZE, SegmentHeader};

    use crate::encryption::{ALL_OBJECT_KEYS, BucketKeys, OBJECT_KEYS};

    let total = Arc::new(AtomicUsize::new(0));
    let bucket = || BucketKeys::new(KeyMaterial::generate(), total.clone());
    let fill = |b: &BucketKeys, n: usize| {
        for _ in 0..n {
            b.object_key(&SegmentHeader::random(SEGMENT_SIZE));
        }
    };
    let full: Vec<_> = (0..ALL_OBJECT_KEYS / OBJECT_KEYS).map(|_| bucket()).collect();
    for b in &full {
        fill(b, OBJECT_KEYS);
    }
    assert_eq!(total.load(Ordering::Relaxed), ALL_OBJECT_KEYS);
    let late = bucket();
    let h = SegmentHeader::random(SEGMENT_SIZE);
    assert!(
        !Arc::ptr_eq(&late.object_key(&h), &late.object_key(&h)),
        "nothing cached"
    );
    assert_eq!(total.load(Ordering::Relaxed), ALL_OBJECT_KEYS);
    fill(&full[0], 1);
    assert_eq!(total.load(Ordering::Relaxed), ALL_OBJECT_KEYS - OBJECT_KEYS + 1);
    assert!(
        Arc::ptr_eq(&late.object_key(&h), &late.object_key(&h)),
        "room again"
    );
    drop(full);
    drop(late);
    assert_eq!(total.load(Ordering::Relaxed), 0);
}
