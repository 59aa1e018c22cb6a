//! Copies of snapshots to a second repository (`engine::copy`): chunk for chunk into one that
//! shares the source's keys, keeping each snapshot's id; idempotent, resumable; and content by
//! content into one whose chunk ids differ.

use backstop_engine::copy::{CopyOptions, CopySummary, copy};

use super::*;

/// Copies every snapshot `to` lacks.
fn try_copy_all(from: &Repository, to: &Repository) -> Result<CopySummary, Error> {
    let (src, dst) = (Indexed::load(from).unwrap(), Indexed::load(to).unwrap());
    copy(
        &src,
        &dst,
        &CopyOptions {
            snapshots: vec![],
            host: "test-host".into(),
        },
        &NoProgress,
    )
}

fn copy_all(from: &Repository, to: &Repository) -> CopySummary {
    try_copy_all(from, to).unwrap()
}

fn ids(repo: &Repository) -> Vec<SnapshotId> {
    repo.snapshots()
        .unwrap()
        .readable
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn snapshots_copy_with_their_ids_and_restore_from_the_copy() {
    for passphrase in [None, Some("copy me")] {
        let from =
            Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(passphrase)).unwrap();
        let mut db = pagey(3 << 20, 4);
        let files = vec![
            ("shop.db", db.clone(), Chunking::Fixed(4096)),
            (
                "notes.txt",
                b"opening hours 9-18\n".to_vec(),
                Chunking::ContentDefined,
            ),
        ];
        let ix = Indexed::load(&from).unwrap();
        backup(
            &ix,
            &mut VecSource::new(files),
            &opts("shop", 0),
            &NoProgress,
        )
        .unwrap();
        db[100_000] ^= 1;
        let ix = Indexed::load(&from).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.clone(), Chunking::Fixed(4096))]);
        backup(&ix, &mut src, &opts("shop", 1), &NoProgress).unwrap();

        let to_storage = Arc::new(MemoryStorage::new());
        let to = Repository::init_like(
            to_storage.clone(),
            &from,
            passphrase,
            &cheap_init(passphrase),
        )
        .unwrap();
        assert_ne!(to.config().id, from.config().id, "a repository of its own");
        let first = copy_all(&from, &to);
        assert_eq!(first.copied, ids(&from));
        assert!(first.present.is_empty());
        assert!(first.chunks_new > 0);
        assert_eq!(ids(&to), ids(&from), "the copies keep their ids");
        for id in ids(&from) {
            assert_eq!(restore_all(&to, &id), restore_all(&from, &id));
        }
        assert!(verify_data(&to).is_clean());
        // Nothing more to do: idempotent, and nothing is sent again.
        let again = copy_all(&from, &to);
        assert_eq!((again.copied.len(), again.present.len()), (0, 2));
        let objects = to_storage.object_count();
        // A new snapshot: only its own chunks travel.
        db[200_000] ^= 1;
        let ix = Indexed::load(&from).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.clone(), Chunking::Fixed(4096))]);
        let third = backup(&ix, &mut src, &opts("shop", 2), &NoProgress).unwrap();
        let next = copy_all(&from, &to);
        assert_eq!(next.copied, vec![third.id]);
        assert!(next.chunks_new <= 4, "{next:?}");
        assert!(to_storage.object_count() > objects);
        assert_eq!(restore_all(&to, &third.id)[0].1, db);
    }
}

/// Into a repository with other keys (made on its own: another master key under the same
/// passphrase, or one side unencrypted), each content is restored and stored again as the
/// destination cuts it: the same snapshot ids and metadata, the same bytes, a clean
/// verification; a second copy does nothing, and a later snapshot sends little.
#[test]
fn a_copy_into_a_repository_with_other_keys_stores_the_contents_again() {
    for (from_pass, to_pass) in [(Some("a"), Some("a")), (Some("a"), None), (None, Some("b"))] {
        let from =
            Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(from_pass)).unwrap();
        let mut db = pagey(2 << 20, 7);
        let ix = Indexed::load(&from).unwrap();
        let files = vec![
            ("shop.db", db.clone(), Chunking::Fixed(4096)),
            (
                "notes.txt",
                pseudo_random(300_000, 3),
                Chunking::ContentDefined,
            ),
        ];
        backup(
            &ix,
            &mut VecSource::new(files),
            &opts("shop", 0),
            &NoProgress,
        )
        .unwrap();
        db[70_000] ^= 1;
        let ix = Indexed::load(&from).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.clone(), Chunking::Fixed(4096))]);
        backup(&ix, &mut src, &opts("shop", 1), &NoProgress).unwrap();

        let to = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(to_pass)).unwrap();
        assert!(!backstop_engine::copy::same_chunk_ids(&from, &to));
        let first = copy_all(&from, &to);
        assert_eq!(first.copied, ids(&from), "{from_pass:?} -> {to_pass:?}");
        assert_eq!(ids(&to), ids(&from), "the copies keep their ids");
        let (theirs, ours) = (
            from.snapshots().unwrap().readable,
            to.snapshots().unwrap().readable,
        );
        for ((_, a), (_, b)) in theirs.iter().zip(&ours) {
            assert_eq!(
                (a.time, &a.source.name, a.kind),
                (b.time, &b.source.name, b.kind)
            );
        }
        for id in ids(&from) {
            assert_eq!(restore_all(&to, &id), restore_all(&from, &id));
        }
        assert!(verify_data(&to).is_clean());
        let again = copy_all(&from, &to);
        assert_eq!((again.copied.len(), again.present.len()), (0, 2));
        db[900_000] ^= 1;
        let ix = Indexed::load(&from).unwrap();
        let mut src = VecSource::new(vec![("shop.db", db.clone(), Chunking::Fixed(4096))]);
        let third = backup(&ix, &mut src, &opts("shop", 2), &NoProgress).unwrap();
        let next = copy_all(&from, &to);
        assert_eq!(next.copied, vec![third.id]);
        assert!(
            next.chunks_new <= 40,
            "the changed page and a few nodes: {next:?}"
        );
        assert_eq!(restore_all(&to, &third.id)[0].1, db);
    }
}

/// The destination fills up in the middle of a copy: no snapshot appears there, and the next
/// copy (with room again) completes without sending what the first one stored and indexed.
#[test]
fn an_interrupted_copy_leaves_no_snapshot_and_the_next_one_completes() {
    let from = Repository::init(Arc::new(MemoryStorage::new()), &cheap_init(None)).unwrap();
    let data = pseudo_random(6 << 20, 9);
    let ix = Indexed::load(&from).unwrap();
    let mut src = VecSource::new(vec![("big.bin", data.clone(), Chunking::Fixed(4096))]);
    let s = backup(&ix, &mut src, &opts("f", 0), &NoProgress).unwrap();
    let storage = Arc::new(faults::FillingUp::new(3, 1));
    let to = Repository::init_like(storage.clone(), &from, None, &cheap_init(None)).unwrap();
    let err = try_copy_all(&from, &to).unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(ids(&to).is_empty(), "no half snapshot");
    assert!(verify_data(&to).is_clean());
    storage.make_room();
    let done = copy_all(&from, &to);
    assert_eq!(done.copied, vec![s.id]);
    assert!(restore_all(&to, &s.id) == [("big.bin".to_string(), data)]);
    assert!(verify_data(&to).is_clean());
}
