//! Tests of the write-ahead log and the snapshot store: round trips, every torn tail, bit
//! flips, garbage, refused appends, compaction, and a property test of recovery.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use super::*;

/// A payload that differs from record to record, `len` bytes.
fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (index as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions::new(Durability::grouped()).segment_bytes(segment_bytes)
}

/// For the tests that open a log hundreds of times: recovery is the same in every mode, and
/// without fsyncs they stay fast on a busy disk.
fn unsynced(segment_bytes: u64) -> WalOptions {
    WalOptions::new(Durability::MemoryOnly).segment_bytes(segment_bytes)
}

/// Appends `indices` with payloads of `len(index)` bytes; returns what was appended.
fn append_all(
    wal: &mut Wal,
    indices: impl IntoIterator<Item = u64>,
    len: impl Fn(u64) -> usize,
) -> Vec<(u64, Vec<u8>)> {
    let mut appended = Vec::new();
    for index in indices {
        let bytes = payload(index, len(index));
        wal.append(index, &bytes).unwrap();
        appended.push((index, bytes));
    }
    wal.sync().unwrap();
    appended
}

fn as_pairs(records: &[Record]) -> Vec<(u64, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.index, r.payload.to_vec()))
        .collect()
}

/// The segment files in `dir`, in order.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("wal-") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    files
}

/// Every file in `dir` with its bytes.
fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_str().unwrap().to_string(),
                fs::read(&path).unwrap(),
            )
        })
        .collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn record_bytes(payload_len: usize) -> u64 {
    (RECORD_HEADER_BYTES + payload_len) as u64
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 1 << bit;
    overwrite(path, &bytes);
}

/// Replaces an existing file's bytes in place. (`fs::write` truncates the file first, which
/// on ext4 makes closing it flush the data to disk: slow in the loops here.)
fn overwrite(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
    file.set_len(bytes.len() as u64).unwrap();
}

fn append_to_file(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn empty_directory_opens_empty_and_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let (wal, recovery) = Wal::open(&dir, Durability::EveryRecord).unwrap();
    assert!(dir.is_dir());
    assert_eq!(recovery, Recovery::default());
    assert_eq!(wal.last_index(), None);
    assert_eq!(wal.first_index(), None);
    assert_eq!(wal.next_index(), None);
    assert!(!wal.needs_sync());
    assert_eq!(segment_files(&dir), Vec::<PathBuf>::new());
}

#[test]
fn roundtrip_across_segments_keeps_indices_and_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = options(200).open(dir).unwrap();
    let appended = append_all(&mut wal, 1000..1060, |i| (i % 37) as usize);
    assert_eq!(wal.first_index(), Some(1000));
    assert_eq!(wal.last_index(), Some(1059));
    let files = segment_files(dir);
    assert!(files.len() >= 5, "{} segments", files.len());
    assert_eq!(
        wal.segment_paths()
            .map(Path::to_path_buf)
            .collect::<Vec<_>>(),
        files
    );
    // Every segment is named for its first record and stays within the segment size.
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        "wal-00000000000000001000.log"
    );
    for file in &files {
        assert!(
            file_len(file) <= 200,
            "{} is {} bytes",
            file.display(),
            file_len(file)
        );
    }
    drop(wal);

    let (mut wal, recovery) = options(200).open(dir).unwrap();
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(as_pairs(&recovery.records), appended);
    assert_eq!(wal.first_index(), Some(1000));
    assert_eq!(wal.last_index(), Some(1059));
    assert_eq!(wal.next_index(), Some(1060));

    // Appending goes on after a reopen, in the reopened active segment and beyond.
    let more = append_all(&mut wal, 1060..1080, |i| (i % 11) as usize);
    drop(wal);
    let (_, recovery) = options(200).open(dir).unwrap();
    let all: Vec<_> = appended.into_iter().chain(more).collect();
    assert_eq!(as_pairs(&recovery.records), all);
}

#[test]
fn every_mode_roundtrips() {
    for durability in [
        Durability::EveryRecord,
        Durability::grouped(),
        Durability::MemoryOnly,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut wal, _) = WalOptions::new(durability)
            .segment_bytes(100)
            .open(tmp.path())
            .unwrap();
        let mut appended = Vec::new();
        for index in 1..=12 {
            wal.append(index, &payload(index, 20)).unwrap();
            appended.push((index, payload(index, 20)));
            assert_eq!(
                wal.needs_sync(),
                matches!(durability, Durability::Grouped { .. }),
                "{durability}"
            );
        }
        wal.sync().unwrap();
        assert!(!wal.needs_sync());
        drop(wal);
        let (_, recovery) = Wal::open(tmp.path(), durability).unwrap();
        assert_eq!(as_pairs(&recovery.records), appended, "{durability}");
    }
}

/// Cuts `cut` bytes off the end of the last record, for every `cut` from one byte to all but
/// one byte of it; the last record is alone in its segment when `last_alone`.
fn torn_tail_at_every_cut(last_alone: bool) {
    const LAST_PAYLOAD: usize = 21;
    let last_len = record_bytes(LAST_PAYLOAD);
    // Records of 16 + 8 bytes: 4 per segment of 100 bytes. Index 9 is the first of the third
    // segment; index 10 is its second.
    let last_index = if last_alone { 9 } else { 10 };
    for cut in 1..last_len {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = unsynced(100).open(dir).unwrap();
        let appended = append_all(&mut wal, 1..=last_index, |i| {
            if i == last_index {
                LAST_PAYLOAD
            } else {
                8
            }
        });
        drop(wal);
        let files = segment_files(dir);
        assert_eq!(files.len(), 3);
        let last_file = files.last().unwrap().clone();
        let full_len = file_len(&last_file);
        let record_start = full_len - last_len;
        assert_eq!(record_start == 0, last_alone);
        OpenOptions::new()
            .write(true)
            .open(&last_file)
            .unwrap()
            .set_len(full_len - cut)
            .unwrap();

        let (mut wal, recovery) = unsynced(100).open(dir).unwrap();
        assert_eq!(
            as_pairs(&recovery.records),
            appended[..appended.len() - 1],
            "cut {cut}"
        );
        let torn = recovery.torn_tail.expect("a torn tail");
        assert_eq!(torn.segment, last_file, "cut {cut}");
        assert_eq!(torn.offset, record_start, "cut {cut}");
        assert_eq!(torn.bytes_dropped, last_len - cut, "cut {cut}");
        if last_alone {
            // Nothing whole was left in the last segment: it is gone.
            assert!(!last_file.exists(), "cut {cut}");
            assert_eq!(segment_files(dir).len(), 2);
        } else {
            assert_eq!(file_len(&last_file), record_start, "cut {cut}");
        }
        assert_eq!(wal.last_index(), Some(last_index - 1));

        // Appending goes on with the dropped record's index.
        let again = payload(last_index, LAST_PAYLOAD);
        wal.append(last_index, &again).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, recovery) = unsynced(100).open(dir).unwrap();
        assert_eq!(recovery.torn_tail, None, "cut {cut}");
        assert_eq!(as_pairs(&recovery.records), appended, "cut {cut}");
        assert_eq!(segment_files(dir), files);
    }
}

#[test]
fn torn_tail_at_every_cut_in_a_shared_segment() {
    torn_tail_at_every_cut(false);
}

#[test]
fn torn_tail_at_every_cut_of_a_segment_first_record() {
    torn_tail_at_every_cut(true);
}

#[test]
fn torn_tail_of_the_only_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = Wal::open(dir, Durability::EveryRecord).unwrap();
    wal.append(7, b"only").unwrap();
    drop(wal);
    let file = segment_files(dir).pop().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(5)
        .unwrap();
    let (mut wal, recovery) = Wal::open(dir, Durability::EveryRecord).unwrap();
    assert!(recovery.records.is_empty());
    assert_eq!(recovery.torn_tail.unwrap().bytes_dropped, 5);
    assert_eq!(segment_files(dir), Vec::<PathBuf>::new());
    assert_eq!(wal.last_index(), None);
    // An empty log takes any index again, in a segment named for it.
    wal.append(42, b"new").unwrap();
    drop(wal);
    let (_, recovery) = Wal::open(dir, Durability::EveryRecord).unwrap();
    assert_eq!(as_pairs(&recovery.records), vec![(42, b"new".to_vec())]);
    assert_eq!(
        segment_files(dir)[0].file_name().unwrap().to_str().unwrap(),
        "wal-00000000000000000042.log"
    );
}

#[test]
fn a_flipped_bit_in_the_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = unsynced(100).open(dir).unwrap();
    let appended = append_all(&mut wal, 1..=6, |_| 12);
    drop(wal);
    let last_file = segment_files(dir).pop().unwrap();
    let pristine = fs::read(&last_file).unwrap();
    let record_start = pristine.len() as u64 - record_bytes(12);
    assert!(record_start > 0);
    for offset in record_start..pristine.len() as u64 {
        for bit in 0..8 {
            overwrite(&last_file, &pristine);
            flip_bit(&last_file, offset, bit);
            let (_, recovery) = unsynced(100).open(dir).unwrap();
            let at = format!("byte {offset} bit {bit}");
            assert_eq!(as_pairs(&recovery.records), appended[..5], "{at}");
            let torn = recovery.torn_tail.expect("a torn tail");
            assert_eq!(torn.offset, record_start, "{at}");
            assert_eq!(file_len(&last_file), record_start, "{at}");
        }
    }
}

#[test]
fn damage_in_an_earlier_segment_is_an_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = unsynced(100).open(dir).unwrap();
    append_all(&mut wal, 1..=10, |_| 8);
    drop(wal);
    let files = segment_files(dir);
    assert_eq!(files.len(), 3);
    let first = files[0].clone();
    let pristine = fs::read(&first).unwrap();
    assert_eq!(pristine.len() as u64, 4 * record_bytes(8));

    // Every bit of the second record of the first segment.
    let record_start = record_bytes(8);
    for offset in record_start..2 * record_start {
        for bit in 0..8 {
            overwrite(&first, &pristine);
            flip_bit(&first, offset, bit);
            let before = dir_contents(dir);
            let at = format!("byte {offset} bit {bit}");
            match unsynced(100).open(dir) {
                Err(StorageError::Corrupt {
                    path,
                    offset: found,
                    reason,
                }) => {
                    assert_eq!(path, first, "{at}");
                    assert_eq!(found, record_start, "{at}: {reason}");
                }
                other => panic!("{at}: expected Corrupt, got {other:?}"),
            }
            assert_eq!(dir_contents(dir), before, "{at}");
        }
    }

    // A truncated earlier segment (its last record torn), and garbage after its records.
    for damage in ["truncated", "garbage"] {
        overwrite(&first, &pristine);
        match damage {
            "truncated" => overwrite(&first, &pristine[..pristine.len() - 3]),
            _ => append_to_file(&first, &[0u8; 40]),
        }
        let before = dir_contents(dir);
        let error = unsynced(100).open(dir).unwrap_err();
        assert!(
            matches!(&error, StorageError::Corrupt { path, .. } if *path == first),
            "{damage}: {error}"
        );
        assert!(error.to_string().contains("not the last"), "{error}");
        assert_eq!(dir_contents(dir), before, "{damage}");
    }
    overwrite(&first, &pristine);

    // A missing middle segment.
    let middle = fs::read(&files[1]).unwrap();
    fs::remove_file(&files[1]).unwrap();
    let before = dir_contents(dir);
    let error = unsynced(100).open(dir).unwrap_err();
    assert!(
        matches!(&error, StorageError::Corrupt { path, .. } if *path == files[2]),
        "{error}"
    );
    assert_eq!(dir_contents(dir), before);

    // Put back, everything is there again.
    fs::write(&files[1], middle).unwrap();
    let (_, recovery) = unsynced(100).open(dir).unwrap();
    assert_eq!(recovery.records.len(), 10);
    assert_eq!(recovery.torn_tail, None);
}

#[test]
fn garbage_after_the_last_record_is_cut_off() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let random: Vec<u8> = (0..1000).map(|_| rng.gen()).collect();
    let mut absurd = Vec::new();
    absurd.extend_from_slice(&u32::MAX.to_le_bytes());
    absurd.extend_from_slice(&[0u8; 12]);
    absurd.extend_from_slice(&[1u8; 100]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-filled preallocation", vec![0u8; 4096]),
        ("random bytes", random),
        ("a few bytes", vec![0xAB; 5]),
        ("an absurd length", absurd),
    ];
    for (what, garbage) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut wal, _) = unsynced(1000).open(dir).unwrap();
        let appended = append_all(&mut wal, 1..=5, |i| i as usize * 3);
        drop(wal);
        let last_file = segment_files(dir).pop().unwrap();
        let valid_len = file_len(&last_file);
        append_to_file(&last_file, &garbage);

        let (mut wal, recovery) = unsynced(1000).open(dir).unwrap();
        assert_eq!(as_pairs(&recovery.records), appended, "{what}");
        let torn = recovery.torn_tail.expect("a torn tail");
        assert_eq!(torn.offset, valid_len, "{what}");
        assert_eq!(torn.bytes_dropped, garbage.len() as u64, "{what}");
        if what == "an absurd length" {
            assert!(torn.reason.contains("RECORD_BYTES_MAX"), "{}", torn.reason);
        }
        assert_eq!(file_len(&last_file), valid_len, "{what}");
        wal.append(6, b"six").unwrap();
        drop(wal);
        let (_, recovery) = unsynced(1000).open(dir).unwrap();
        assert_eq!(recovery.torn_tail, None, "{what}");
        assert_eq!(recovery.records.len(), 6, "{what}");
    }
}

#[test]
fn a_record_with_a_valid_checksum_but_the_wrong_index_ends_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = options(1000).open(dir).unwrap();
    append_all(&mut wal, 1..=3, |_| 4);
    drop(wal);
    // A well-formed record 9 (and a well-formed 10 after it) where 4 belongs.
    let other = tempfile::tempdir().unwrap();
    let (mut stray, _) = options(1000).open(other.path()).unwrap();
    append_all(&mut stray, 9..=10, |_| 4);
    drop(stray);
    let stray_bytes = fs::read(segment_files(other.path()).pop().unwrap()).unwrap();
    let last_file = segment_files(dir).pop().unwrap();
    let valid_len = file_len(&last_file);
    append_to_file(&last_file, &stray_bytes);

    let (_, recovery) = options(1000).open(dir).unwrap();
    assert_eq!(recovery.records.len(), 3);
    let torn = recovery.torn_tail.unwrap();
    assert_eq!(torn.offset, valid_len);
    assert!(torn.reason.contains("index 9 where 4"), "{}", torn.reason);
}

#[test]
fn an_empty_last_segment_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = options(100).open(dir).unwrap();
    let appended = append_all(&mut wal, 1..=4, |_| 8);
    drop(wal);
    // What a crash right after creating the next segment leaves.
    let empty = dir.join("wal-00000000000000000005.log");
    fs::write(&empty, b"").unwrap();
    let (mut wal, recovery) = options(100).open(dir).unwrap();
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(as_pairs(&recovery.records), appended);
    assert!(!empty.exists());
    wal.append(5, &payload(5, 8)).unwrap();
    drop(wal);
    let (_, recovery) = options(100).open(dir).unwrap();
    assert_eq!(recovery.records.len(), 5);
    assert!(empty.exists(), "record 5 starts a segment again");
}

#[test]
fn a_non_consecutive_append_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = Wal::open(dir, Durability::EveryRecord).unwrap();
    wal.append(5, b"five").unwrap();
    wal.append(6, b"six").unwrap();
    let file = segment_files(dir).pop().unwrap();
    let len = file_len(&file);
    for got in [8, 6, 5, 0, u64::MAX] {
        match wal.append(got, b"bad") {
            Err(StorageError::NotConsecutive {
                expected: 7,
                got: g,
            }) => assert_eq!(g, got),
            other => panic!("append {got}: {other:?}"),
        }
    }
    assert_eq!(file_len(&file), len);
    assert_eq!(wal.last_index(), Some(6));
    wal.append(7, b"seven").unwrap();
    drop(wal);
    let (_, recovery) = Wal::open(dir, Durability::EveryRecord).unwrap();
    let indices: Vec<u64> = recovery.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, vec![5, 6, 7]);
}

#[test]
fn an_oversized_record_is_refused_and_the_last_index_ends_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = Wal::open(dir, Durability::MemoryOnly).unwrap();
    let huge = vec![0u8; RECORD_BYTES_MAX + 1];
    assert!(matches!(
        wal.append(1, &huge),
        Err(StorageError::RecordTooLarge { .. })
    ));
    assert_eq!(wal.last_index(), None);
    assert!(segment_files(dir).is_empty());

    wal.append(u64::MAX, b"last").unwrap();
    assert!(matches!(
        wal.append(0, b"after"),
        Err(StorageError::IndexExhausted)
    ));
    assert_eq!(wal.next_index(), None);
    drop(wal);
    let (_, recovery) = Wal::open(dir, Durability::MemoryOnly).unwrap();
    assert_eq!(
        as_pairs(&recovery.records),
        vec![(u64::MAX, b"last".to_vec())]
    );
}

#[test]
fn truncate_before_deletes_only_covered_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Records of 32 bytes, 3 per segment: segments start at 1, 4, 7, 10, 13.
    let (mut wal, _) = options(96).open(dir).unwrap();
    let appended = append_all(&mut wal, 1..=14, |_| 16);
    let names = |dir: &Path| -> Vec<u64> {
        segment_files(dir)
            .iter()
            .map(|p| {
                p.file_name().unwrap().to_str().unwrap()[4..24]
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(names(dir), vec![1, 4, 7, 10, 13]);

    assert_eq!(wal.truncate_before(1).unwrap(), 0);
    assert_eq!(
        wal.truncate_before(6).unwrap(),
        1,
        "records 4..=6 include 6"
    );
    assert_eq!(names(dir), vec![4, 7, 10, 13]);
    assert_eq!(wal.first_index(), Some(4));
    assert_eq!(wal.truncate_before(7).unwrap(), 1);
    assert_eq!(wal.first_index(), Some(7));
    assert_eq!(wal.truncate_before(8).unwrap(), 0);
    assert_eq!(names(dir), vec![7, 10, 13]);
    drop(wal);

    let (mut wal, recovery) = options(96).open(dir).unwrap();
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(as_pairs(&recovery.records), appended[6..]);
    assert_eq!(wal.first_index(), Some(7));
    assert_eq!(wal.last_index(), Some(14));

    // Never the active segment, however far the snapshot reaches.
    assert_eq!(wal.truncate_before(u64::MAX).unwrap(), 2);
    assert_eq!(names(dir), vec![13]);
    assert_eq!(wal.first_index(), Some(13));
    wal.append(15, &payload(15, 16)).unwrap();
    drop(wal);
    let (wal, recovery) = options(96).open(dir).unwrap();
    let indices: Vec<u64> = recovery.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, vec![13, 14, 15]);
    assert_eq!(wal.first_index(), Some(13));
}

#[test]
fn clear_empties_the_log_for_any_next_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut wal, _) = options(96).open(dir).unwrap();
    append_all(&mut wal, 1..=10, |_| 16);
    wal.clear().unwrap();
    assert!(segment_files(dir).is_empty());
    assert_eq!(wal.last_index(), None);
    assert_eq!(wal.first_index(), None);
    wal.append(500, b"after a state transfer").unwrap();
    wal.append(501, b"and on").unwrap();
    drop(wal);
    let (wal, recovery) = options(96).open(dir).unwrap();
    let indices: Vec<u64> = recovery.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, vec![500, 501]);
    assert_eq!(wal.first_index(), Some(500));
}

#[test]
fn the_wal_ignores_other_files_in_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    SnapshotStore::new(dir).save(3, b"state").unwrap();
    fs::write(dir.join("wal-12.log"), b"not a segment name").unwrap();
    fs::write(dir.join("notes.txt"), b"hello").unwrap();
    let (mut wal, recovery) = Wal::open(dir, Durability::EveryRecord).unwrap();
    assert_eq!(recovery, Recovery::default());
    wal.append(4, b"four").unwrap();
    drop(wal);
    let (_, recovery) = Wal::open(dir, Durability::EveryRecord).unwrap();
    assert_eq!(recovery.records.len(), 1);
    assert_eq!(
        SnapshotStore::new(dir).load().unwrap(),
        Some((3, bytes::Bytes::from_static(b"state")))
    );
}

#[test]
fn snapshot_roundtrip_and_replacement() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = SnapshotStore::new(&dir);
    assert_eq!(store.load().unwrap(), None);
    store.save(10, b"first state").unwrap();
    assert_eq!(
        store.load().unwrap(),
        Some((10, bytes::Bytes::from_static(b"first state")))
    );
    store.save(25, b"").unwrap();
    assert_eq!(store.load().unwrap(), Some((25, bytes::Bytes::new())));
    let big = payload(3, 100_000);
    store.save(u64::MAX, &big).unwrap();
    let (position, bytes) = store.load().unwrap().unwrap();
    assert_eq!(position, u64::MAX);
    assert_eq!(bytes.as_ref(), big.as_slice());
    assert!(!dir.join(SNAPSHOT_TMP_FILE).exists());
}

#[test]
fn a_damaged_snapshot_is_an_error_never_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::new(tmp.path());
    store.save(77, b"some state bytes").unwrap();
    let path = store.path();
    let pristine = fs::read(&path).unwrap();
    // Every bit of the header and of the body.
    for offset in 0..pristine.len() as u64 {
        for bit in 0..8 {
            overwrite(&path, &pristine);
            flip_bit(&path, offset, bit);
            match store.load() {
                Err(StorageError::Corrupt { path: p, .. }) => assert_eq!(p, path),
                other => panic!("byte {offset} bit {bit}: expected Corrupt, got {other:?}"),
            }
        }
    }
    // Every truncation, and bytes appended.
    for len in 0..pristine.len() {
        overwrite(&path, &pristine[..len]);
        assert!(
            matches!(store.load(), Err(StorageError::Corrupt { .. })),
            "truncated to {len}"
        );
    }
    let mut longer = pristine.clone();
    longer.push(0);
    overwrite(&path, &longer);
    assert!(matches!(store.load(), Err(StorageError::Corrupt { .. })));
    overwrite(&path, &pristine);
    assert_eq!(store.load().unwrap().unwrap().0, 77);
}

#[test]
fn a_leftover_tmp_snapshot_is_removed_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = SnapshotStore::new(dir);
    // A crash before the first rename: no snapshot, a half-written tmp.
    fs::write(dir.join(SNAPSHOT_TMP_FILE), b"VSWS half").unwrap();
    assert_eq!(store.load().unwrap(), None);
    assert!(!dir.join(SNAPSHOT_TMP_FILE).exists());
    // A crash during a later save: the old snapshot stays whole.
    store.save(5, b"old").unwrap();
    fs::write(dir.join(SNAPSHOT_TMP_FILE), b"VSWS half of the new one").unwrap();
    assert_eq!(
        store.load().unwrap(),
        Some((5, bytes::Bytes::from_static(b"old")))
    );
    assert!(!dir.join(SNAPSHOT_TMP_FILE).exists());
}

#[test]
fn durability_config_strings() {
    for (text, durability) in [
        ("fsync", Durability::EveryRecord),
        ("memory", Durability::MemoryOnly),
        (
            "grouped",
            Durability::Grouped {
                interval: Duration::from_millis(2),
            },
        ),
        (
            "grouped:5ms",
            Durability::Grouped {
                interval: Duration::from_millis(5),
            },
        ),
        (
            "grouped:500us",
            Durability::Grouped {
                interval: Duration::from_micros(500),
            },
        ),
    ] {
        assert_eq!(text.parse::<Durability>().unwrap(), durability);
        assert_eq!(durability.to_string(), text);
        let parsed: Durability = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(parsed, durability);
    }
    for bad in [
        "",
        "Fsync",
        "grouped:",
        "grouped:5",
        "grouped:0ms",
        "grouped:-1ms",
        "sync",
    ] {
        assert!(bad.parse::<Durability>().is_err(), "{bad:?}");
    }
    let error = serde_json::from_str::<Durability>("\"disk\"").unwrap_err();
    assert!(error.to_string().contains("unknown durability"), "{error}");
    assert_eq!(
        Durability::grouped().sync_interval(),
        Some(Duration::from_millis(2))
    );
    assert_eq!(Durability::EveryRecord.sync_interval(), None);
    assert!(!Durability::MemoryOnly.syncs());
}

/// The damage done to the last segment in the property test.
#[derive(Clone, Debug)]
enum Damage {
    /// Truncate the last segment to this fraction (per mille) of its length.
    Truncate(u16),
    /// Flip this bit of the byte at this fraction (per mille) of the last segment.
    FlipBit(u16, u8),
    /// Append these bytes.
    Garbage(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0u16..=1000).prop_map(Damage::Truncate),
        (0u16..1000, 0u8..8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
        prop::collection::vec(any::<u8>(), 1..80).prop_map(Damage::Garbage),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever is done to the last segment, recovery returns an exact prefix of what was
    /// appended, cuts the log there (a second recovery finds nothing torn), and appending
    /// goes on from there. Damage only loses records from the damaged one on.
    #[test]
    fn recovery_returns_a_prefix_of_what_was_appended(
        first in 0u64..1_000_000,
        lens in prop::collection::vec(0usize..60, 1..40),
        segment_bytes in 20u64..400,
        damage in damage(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let opts = WalOptions::new(Durability::MemoryOnly).segment_bytes(segment_bytes);
        let (mut wal, _) = opts.open(dir).unwrap();
        let mut appended = Vec::new();
        for (i, len) in lens.iter().enumerate() {
            let index = first + i as u64;
            let bytes = payload(index, *len);
            wal.append(index, &bytes).unwrap();
            appended.push((index, bytes));
        }
        drop(wal);

        let last_file = segment_files(dir).pop().unwrap();
        let len = file_len(&last_file);
        // The records wholly before the damage, which must survive.
        let in_last: usize = {
            let name = last_file.file_name().unwrap().to_str().unwrap();
            let segment_first: u64 = name[4..24].parse().unwrap();
            (segment_first - first) as usize
        };
        let kept_at_least = |offset: u64| -> usize {
            let mut end = 0;
            let mut whole = in_last;
            for (_, bytes) in &appended[in_last..] {
                end += record_bytes(bytes.len());
                if end > offset {
                    break;
                }
                whole += 1;
            }
            whole
        };
        let must_keep = match &damage {
            Damage::Truncate(per_mille) => {
                let cut = len * u64::from(*per_mille) / 1000;
                OpenOptions::new().write(true).open(&last_file).unwrap().set_len(cut).unwrap();
                kept_at_least(cut)
            }
            Damage::FlipBit(per_mille, bit) => {
                let at = len * u64::from(*per_mille) / 1000;
                flip_bit(&last_file, at, *bit);
                kept_at_least(at)
            }
            Damage::Garbage(bytes) => {
                append_to_file(&last_file, bytes);
                appended.len()
            }
        };

        let (mut wal, recovery) = opts.open(dir).unwrap();
        let recovered = as_pairs(&recovery.records);
        prop_assert!(recovered.len() <= appended.len());
        prop_assert_eq!(&recovered[..], &appended[..recovered.len()]);
        prop_assert!(recovered.len() >= must_keep, "{} < {}", recovered.len(), must_keep);
        prop_assert_eq!(wal.last_index(), recovered.last().map(|r| r.0));
        if let Some(torn) = &recovery.torn_tail {
            prop_assert!(torn.bytes_dropped > 0);
        }

        // Appending goes on with the next index; a second recovery finds nothing torn.
        let next = first + recovered.len() as u64;
        wal.append(next, b"next").unwrap();
        drop(wal);
        let (_, again) = opts.open(dir).unwrap();
        prop_assert_eq!(again.torn_tail, None);
        let mut expected = recovered;
        expected.push((next, b"next".to_vec()));
        prop_assert_eq!(as_pairs(&again.records), expected);
    }
}
