//! The [`MetaStore`] contract.

use std::ops::Bound;
use std::sync::Arc;

use crate::{Batch, Error, KeyRange, MetaStore};

const S: &str = "contract";
const OTHER: &str = "contract-other";

/// Runs every metadata contract check against a fresh, empty store.
pub async fn meta_suite(store: Arc<dyn MetaStore>) {
    empty_reads(&*store).await;
    put_get_delete(&*store).await;
    spaces_are_separate(&*store).await;
    scan_order_bounds_limit(&*store).await;
    conditions(&*store).await;
    failed_batch_applies_nothing(&*store).await;
    concurrent_compare_and_set(store.clone()).await;
}

async fn empty_reads(store: &dyn MetaStore) {
    assert_eq!(store.get("never-written", b"k").await.unwrap(), None);
    assert!(
        store
            .scan("never-written", KeyRange::prefix(b""), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.commit(Batch::new()).await.unwrap();
}

async fn put_get_delete(store: &dyn MetaStore) {
    let mut b = Batch::new();
    b.put(S, "a", "1").put(S, "b", "2");
    store.commit(b).await.unwrap();
    assert_eq!(store.get(S, b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    let mut b = Batch::new();
    b.put(S, "a", "3").delete(S, "b").delete(S, "never");
    store.commit(b).await.unwrap();
    assert_eq!(store.get(S, b"a").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(store.get(S, b"b").await.unwrap(), None);
    let mut b = Batch::new();
    b.delete(S, "a");
    store.commit(b).await.unwrap();
}

async fn spaces_are_separate(store: &dyn MetaStore) {
    let mut b = Batch::new();
    b.put(S, "k", "s").put(OTHER, "k", "o");
    store.commit(b).await.unwrap();
    assert_eq!(store.get(S, b"k").await.unwrap().as_deref(), Some(&b"s"[..]));
    assert_eq!(store.get(OTHER, b"k").await.unwrap().as_deref(), Some(&b"o"[..]));
    let mut b = Batch::new();
    b.delete(S, "k").delete(OTHER, "k");
    store.commit(b).await.unwrap();
}

async fn scan_order_bounds_limit(store: &dyn MetaStore) {
    let keys: [&[u8]; 7] = [b"p/a", b"p/b", b"p/b/c", b"p/\xff", b"p0", b"q", b"p"];
    let mut b = Batch::new();
    for k in keys {
        b.put(S, k.to_vec(), k.to_vec());
    }
    store.commit(b).await.unwrap();

    let got: Vec<Vec<u8>> = store
        .scan(S, KeyRange::prefix(b"p/"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        got,
        vec![
            b"p/a".to_vec(),
            b"p/b".to_vec(),
            b"p/b/c".to_vec(),
            b"p/\xff".to_vec()
        ]
    );

    let got = store.scan(S, KeyRange::prefix(b"p/"), 2).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], (b"p/b".to_vec(), b"p/b".to_vec()));

    let got: Vec<Vec<u8>> = store
        .scan(S, KeyRange::prefix_after(b"p/", b"p/b"), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, vec![b"p/b/c".to_vec(), b"p/\xff".to_vec()]);

    let inverted = KeyRange {
        start: Bound::Included(b"q".to_vec()),
        end: Bound::Excluded(b"p".to_vec()),
    };
    assert!(store.scan(S, inverted, 100).await.unwrap().is_empty());

    let all = store
        .scan(
            S,
            KeyRange {
                start: Bound::Unbounded,
                end: Bound::Unbounded,
            },
            100,
        )
        .await
        .unwrap();
    let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    assert_eq!(all.into_iter().map(|(k, _)| k).collect::<Vec<_>>(), sorted);

    let mut b = Batch::new();
    for k in keys {
        b.delete(S, k.to_vec());
    }
    store.commit(b).await.unwrap();
}

async fn conditions(store: &dyn MetaStore) {
    let mut b = Batch::new();
    b.expect_absent(S, "c").put(S, "c", "v1");
    store.commit(b.clone()).await.unwrap();
    assert!(
        matches!(store.commit(b).await, Err(Error::Conflict)),
        "absent must fail once written"
    );

    let mut b = Batch::new();
    b.expect_value(S, "c", "v1").put(S, "c", "v2");
    store.commit(b.clone()).await.unwrap();
    assert!(
        matches!(store.commit(b).await, Err(Error::Conflict)),
        "stale value must fail"
    );

    let mut b = Batch::new();
    b.expect_no_prefix(S, "dir/").put(S, "marker", "x");
    store.commit(b).await.unwrap();
    let mut b = Batch::new();
    b.put(S, "dir/x", "1");
    store.commit(b).await.unwrap();
    let mut b = Batch::new();
    b.expect_no_prefix(S, "dir/").delete(S, "marker");
    assert!(matches!(store.commit(b).await, Err(Error::Conflict)));
    assert!(store.get(S, b"marker").await.unwrap().is_some());

    let mut b = Batch::new();
    b.expect(S, "c", Some(b"v2".to_vec()))
        .expect(S, "nothing", None)
        .delete(S, "c")
        .delete(S, "dir/x")
        .delete(S, "marker");
    store.commit(b).await.unwrap();
}

async fn failed_batch_applies_nothing(store: &dyn MetaStore) {
    let mut b = Batch::new();
    b.put(S, "x1", "a").put(S, "x2", "b").expect_absent(S, "x1");
    store.commit(b).await.unwrap();
    let mut b = Batch::new();
    b.put(S, "x3", "c").delete(S, "x2").expect_absent(S, "x1");
    assert!(matches!(store.commit(b).await, Err(Error::Conflict)));
    assert_eq!(store.get(S, b"x3").await.unwrap(), None);
    assert!(store.get(S, b"x2").await.unwrap().is_some());
    let mut b = Batch::new();
    b.delete(S, "x1").delete(S, "x2");
    store.commit(b).await.unwrap();
}

/// Many tasks increment one counter with read, compare-and-set and retry: no update is lost.
async fn concurrent_compare_and_set(store: Arc<dyn MetaStore>) {
    const TASKS: u64 = 8;
    const EACH: u64 = 25;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let old = store.get(S, b"counter").await.unwrap();
                    let n = old
                        .as_ref()
                        .map_or(0, |v| u64::from_be_bytes(v.as_slice().try_into().unwrap()));
                    let mut b = Batch::new();
                    b.expect(S, "counter", old)
                        .put(S, "counter", (n + 1).to_be_bytes().to_vec());
                    match store.commit(b).await {
                        Ok(()) => break,
                        Err(Error::Conflict) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let v = store.get(S, b"counter").await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(v.as_slice().try_into().unwrap()), TASKS * EACH);
}
