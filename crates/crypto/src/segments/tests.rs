use super::*;

const SEG: u32 = 1024;

fn seal_all(dek: &KeyMaterial, header: &SegmentHeader, data: &[u8], piece: usize) -> Vec<u8> {
    let mut s = Sealer::new(dek, header.clone());
    let mut out = s.header_bytes().to_vec();
    for c in data.chunks(piece.max(1)) {
        for seg in s.push(c).unwrap() {
            out.extend(seg);
        }
    }
    out.extend(s.finish().unwrap());
    out
}

/// Opens `range` both ways, each segment whole (`open`) and with its tag apart
/// (`open_detached`); the two must agree.
fn open_range(dek: &KeyMaterial, blob: &[u8], len: u64, range: Range<u64>) -> Result<Vec<u8>, CryptoError> {
    let whole = open_range_with(dek, blob, len, range.clone(), false);
    let detached = open_range_with(dek, blob, len, range, true);
    match (&whole, &detached) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("open: {whole:?}, open_detached: {detached:?}"),
    }
    whole
}

fn open_range_with(
    dek: &KeyMaterial,
    blob: &[u8],
    len: u64,
    range: Range<u64>,
    detached: bool,
) -> Result<Vec<u8>, CryptoError> {
    let header = SegmentHeader::parse(blob)?;
    let (segs, at) = header.locate(&range, len);
    let o = Opener::new(dek, header.clone(), len);
    let mut sealed = blob
        .get(at.start as usize..at.end as usize)
        .ok_or(CryptoError::Decrypt)?
        .to_vec();
    let mut plain = Vec::new();
    let mut off = 0usize;
    for i in segs.clone() {
        let n = o.sealed_segment_len(i) as usize;
        let chunk = sealed.get_mut(off..off + n).ok_or(CryptoError::Decrypt)?;
        if detached {
            let (ciphertext, tag) = chunk.split_at_mut(n - TAG_LEN);
            o.open_detached(i, ciphertext, tag)?;
            plain.extend_from_slice(ciphertext);
        } else {
            plain.extend_from_slice(o.open(i, chunk)?);
        }
        off += n;
    }
    let base = segs.start * u64::from(header.segment_size);
    Ok(plain[(range.start - base) as usize..(range.end - base) as usize].to_vec())
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn round_trips_at_the_edges() {
    let dek = KeyMaterial::generate();
    let s = SEG as usize;
    for n in [0, 1, s - 1, s, s + 1, 3 * s, 5 * 1024 * 1024 + 7] {
        let header = SegmentHeader::random(SEG);
        let plain = data(n);
        let blob = seal_all(&dek, &header, &plain, 333);
        assert_eq!(blob.len() as u64, header.sealed_len(n as u64), "size {n}");
        let whole = open_range(&dek, &blob, n as u64, 0..n as u64).unwrap();
        assert_eq!(whole, plain, "size {n}");
        assert!(
            !blob
                .windows(16.min(n.max(1)))
                .any(|w| n >= 16 && w == &plain[..16]),
            "no plaintext at rest"
        );
    }
}

#[test]
fn the_header_parses_and_rejects_others() {
    let h = SegmentHeader::random(SEGMENT_SIZE);
    assert_eq!(SegmentHeader::parse(&h.to_bytes()).unwrap(), h);
    let mut bad = h.to_bytes();
    bad[4] = 2;
    assert!(SegmentHeader::parse(&bad).is_err());
    assert!(SegmentHeader::parse(&h.to_bytes()[..10]).is_err());
}

#[test]
fn every_tampering_is_detected() {
    let dek = KeyMaterial::generate();
    let n = 4 * SEG as usize + 100;
    let header = SegmentHeader::random(SEG);
    let plain = data(n);
    let blob = seal_all(&dek, &header, &plain, 4096);
    let len = n as u64;
    let stride = SEG as usize + TAG_LEN;

    // A flipped bit anywhere in a segment.
    for at in [
        HEADER_LEN,
        HEADER_LEN + 5,
        HEADER_LEN + stride + 17,
        blob.len() - 1,
    ] {
        let mut b = blob.clone();
        b[at] ^= 0x01;
        assert!(open_range(&dek, &b, len, 0..len).is_err(), "bit at {at}");
    }
    // A flipped bit in the header (it is the AAD of every segment).
    let mut b = blob.clone();
    b[12] ^= 0x01;
    assert!(open_range(&dek, &b, len, 0..len).is_err());
    // Truncation: the last segment dropped, so the new last one lacks the last flag.
    let truncated = &blob[..HEADER_LEN + 4 * stride];
    assert!(open_range(&dek, truncated, 4 * SEG as u64, 0..4 * SEG as u64).is_err());
    // Two segments swapped.
    let mut b = blob.clone();
    let (s1, s2) = (HEADER_LEN, HEADER_LEN + stride);
    let first = b[s1..s1 + stride].to_vec();
    let second = b[s2..s2 + stride].to_vec();
    b[s1..s1 + stride].copy_from_slice(&second);
    b[s2..s2 + stride].copy_from_slice(&first);
    assert!(open_range(&dek, &b, len, 0..len).is_err());
    // Another object's blob (same DEK, same length) under this object's header parameters.
    let other = seal_all(&dek, &SegmentHeader::random(SEG), &data(n), 4096);
    let mut swapped = header.to_bytes().to_vec();
    swapped.extend_from_slice(&other[HEADER_LEN..]);
    assert!(open_range(&dek, &swapped, len, 0..len).is_err());
    // Another bucket's key.
    assert!(open_range(&KeyMaterial::generate(), &blob, len, 0..len).is_err());
}

/// A segment opened with its tag apart needs its own tag and its exact length.
#[test]
fn a_detached_tag_must_be_the_segments_own() {
    let dek = KeyMaterial::generate();
    let header = SegmentHeader::random(SEG);
    let n = 2 * SEG as usize + 10;
    let blob = seal_all(&dek, &header, &data(n), 500);
    let o = Opener::new(&dek, header, n as u64);
    let stride = SEG as usize + TAG_LEN;
    let segment = |i: usize| {
        let s = &blob[HEADER_LEN + i * stride..(HEADER_LEN + (i + 1) * stride).min(blob.len())];
        let (c, t) = s.split_at(s.len() - TAG_LEN);
        (c.to_vec(), t.to_vec())
    };
    let (mut c0, t0) = segment(0);
    let (_, t1) = segment(1);
    assert!(
        o.open_detached(0, &mut c0.clone(), &t1).is_err(),
        "another segment's tag"
    );
    assert!(
        o.open_detached(0, &mut c0[..100], &t0).is_err(),
        "a short segment"
    );
    assert!(o.open_detached(0, &mut c0, &t0[..8]).is_err(), "a short tag");
    o.open_detached(0, &mut c0, &t0).unwrap();
    assert_eq!(c0, data(n)[..SEG as usize]);
    let (mut c2, t2) = segment(2);
    assert_eq!(c2.len(), 10);
    o.open_detached(2, &mut c2, &t2).unwrap();
    assert_eq!(c2, data(n)[2 * SEG as usize..]);
}

/// An empty range at the end of an object that fills its last segment is in that segment (it
/// was located one segment past it, which does not exist, and failed to open).
#[test]
fn an_empty_range_at_the_very_end_reads_nothing() {
    let dek = KeyMaterial::generate();
    for n in [SEG as usize, 2 * SEG as usize, 0] {
        let header = SegmentHeader::random(SEG);
        let blob = seal_all(&dek, &header, &data(n), 300);
        let end = n as u64;
        assert_eq!(
            open_range(&dek, &blob, end, end..end).unwrap(),
            Vec::<u8>::new(),
            "{n}"
        );
    }
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_range_reads_back(n in 0usize..6000, a in 0u64..6000, b in 0u64..6000, piece in 1usize..3000) {
            let dek = KeyMaterial::generate();
            let header = SegmentHeader::random(SEG);
            let plain = data(n);
            let blob = seal_all(&dek, &header, &plain, piece);
            let (lo, hi) = (a.min(b).min(n as u64), a.max(b).min(n as u64));
            let got = open_range(&dek, &blob, n as u64, lo..hi).unwrap();
            prop_assert_eq!(got, plain[lo as usize..hi as usize].to_vec());
        }
    }
}
