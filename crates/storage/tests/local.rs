//! Behaviour specific to the on-disk layout of `LocalStorage`.

use std::fs;
use std::path::Path;

use backstop_storage::{Error, Kind, LocalStorage, Storage};
use tempfile::TempDir;

const PACK: &str = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
const INDEX: &str = "cd0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

fn setup() -> (TempDir, LocalStorage) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let storage = LocalStorage::new(dir.path());
    storage.create().expect("create repository");
    (dir, storage)
}

fn tmp_entries(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("tmp"))
        .expect("read tmp dir")
        .map(|e| {
            e.expect("tmp entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn create_makes_the_layout() {
    let (dir, _storage) = setup();
    for sub in [
        "keys",
        "data",
        "index",
        "snapshots",
        "locks",
        "records",
        "tmp",
    ] {
        assert!(dir.path().join(sub).is_dir(), "{sub}/ missing");
    }
}

#[test]
fn objects_land_where_the_layout_says() {
    let (dir, storage) = setup();
    let root = dir.path();
    storage.write(Kind::Config, "config", b"cfg").unwrap();
    storage.write(Kind::Pack, PACK, b"pack").unwrap();
    storage.write(Kind::Pack, "a", b"short").unwrap();
    storage.write(Kind::Index, INDEX, b"index").unwrap();
    storage.write(Kind::Key, "k1", b"key").unwrap();
    storage.write(Kind::Snapshot, "s1", b"snap").unwrap();
    storage.write(Kind::Lock, "l1", b"lock").unwrap();
    storage.write(Kind::Record, "r1", b"rec").unwrap();

    assert_eq!(fs::read(root.join("config")).unwrap(), b"cfg");
    assert_eq!(fs::read(root.join("data/ab").join(PACK)).unwrap(), b"pack");
    assert_eq!(fs::read(root.join("data/a/a")).unwrap(), b"short");
    assert_eq!(fs::read(root.join("index").join(INDEX)).unwrap(), b"index");
    assert_eq!(fs::read(root.join("keys/k1")).unwrap(), b"key");
    assert_eq!(fs::read(root.join("snapshots/s1")).unwrap(), b"snap");
    assert_eq!(fs::read(root.join("locks/l1")).unwrap(), b"lock");
    assert_eq!(fs::read(root.join("records/r1")).unwrap(), b"rec");

    let configs = storage.list(Kind::Config).unwrap();
    assert_eq!(configs.len(), 1, "kind directories are not config objects");
    assert_eq!(configs[0].name, "config");
    assert!(tmp_entries(root).is_empty(), "tmp/ not empty after writes");
}

#[test]
fn config_names_clashing_with_the_layout_are_invalid() {
    let (_dir, storage) = setup();
    for name in ["data", "index", "tmp", "keys"] {
        let err = storage.write(Kind::Config, name, b"x").unwrap_err();
        assert!(matches!(err, Error::InvalidName(_)), "{name}: {err}");
    }
}

#[test]
fn stale_temp_files_are_ignored() {
    let (dir, storage) = setup();
    fs::write(dir.path().join("tmp/0123abcd.tmp"), b"half a pack").unwrap();
    fs::write(dir.path().join("index/0123abcd.tmp"), b"stray").unwrap();
    for kind in Kind::ALL {
        assert!(
            storage.list(kind).unwrap().is_empty(),
            "{kind} listed a stale file"
        );
    }
    storage.write(Kind::Index, INDEX, b"index").unwrap();
    assert_eq!(storage.read(Kind::Index, INDEX).unwrap(), b"index");
    assert_eq!(tmp_entries(dir.path()), ["0123abcd.tmp"]);
}

#[test]
fn invalid_names_and_directories_in_kind_dirs_are_not_listed() {
    let (dir, storage) = setup();
    let root = dir.path();
    for stray in ["UPPER", ".hidden", "has.dot", "has space"] {
        fs::write(root.join("index").join(stray), b"x").unwrap();
    }
    fs::create_dir(root.join("index/subdir")).unwrap();
    // A pack in the wrong fan-out directory could never be read back.
    fs::create_dir_all(root.join("data/zz")).unwrap();
    fs::write(root.join("data/zz").join(PACK), b"misplaced").unwrap();
    fs::write(root.join("data/stray-file"), b"x").unwrap();
    storage.write(Kind::Index, INDEX, b"ok").unwrap();
    storage.write(Kind::Pack, PACK, b"ok").unwrap();

    let names = |kind| -> Vec<String> {
        let mut v: Vec<_> = storage
            .list(kind)
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(Kind::Index), [INDEX]);
    assert_eq!(names(Kind::Pack), [PACK]);
    let err = storage.read(Kind::Index, "subdir").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn missing_kind_directory_lists_empty_and_is_recreated_on_write() {
    let (dir, storage) = setup();
    fs::remove_dir(dir.path().join("records")).unwrap();
    fs::remove_dir(dir.path().join("tmp")).unwrap();
    assert!(storage.list(Kind::Record).unwrap().is_empty());
    storage.write(Kind::Record, "r1", b"rec").unwrap();
    assert_eq!(storage.read(Kind::Record, "r1").unwrap(), b"rec");
    assert!(tmp_entries(dir.path()).is_empty());
}

#[test]
fn read_range_of_truncated_file_is_a_short_read() {
    let (dir, storage) = setup();
    storage.write(Kind::Pack, PACK, &[7u8; 100]).unwrap();
    let path = dir.path().join("data/ab").join(PACK);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(40)
        .unwrap();
    match storage.read_range(Kind::Pack, PACK, 30, 20) {
        Err(Error::ShortRead {
            offset: 30,
            wanted: 20,
            got: 10,
            ..
        }) => {}
        other => panic!("expected ShortRead, got {other:?}"),
    }
    assert_eq!(
        storage.read_range(Kind::Pack, PACK, 30, 10).unwrap(),
        [7u8; 10]
    );
}

#[test]
fn failed_write_leaves_tmp_empty_and_names_the_path() {
    let (dir, storage) = setup();
    // A file where the pack's fan-out directory should be: the write gets as
    // far as the temp file and then cannot move it into place.
    fs::write(dir.path().join("data/ab"), b"in the way").unwrap();
    let err = storage.write(Kind::Pack, PACK, b"data").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("data"),
        "message lacks the path: {err}"
    );
    assert!(tmp_entries(dir.path()).is_empty(), "temp file left behind");
    assert!(storage.read(Kind::Pack, PACK).unwrap_err().is_not_found());

    // The same for a kind directory replaced by a file.
    fs::remove_dir(dir.path().join("index")).unwrap();
    fs::write(dir.path().join("index"), b"in the way").unwrap();
    assert!(storage.write(Kind::Index, INDEX, b"data").is_err());
    assert!(tmp_entries(dir.path()).is_empty(), "temp file left behind");
}

#[test]
fn write_to_a_location_never_created_fails() {
    let dir = tempfile::tempdir().unwrap();
    let storage = LocalStorage::new(dir.path().join("nowhere"));
    let err = storage.write(Kind::Index, INDEX, b"x").unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    assert!(!dir.path().join("nowhere").exists());
    assert!(storage.list(Kind::Index).unwrap().is_empty());
}

#[test]
fn create_over_unrelated_files_is_allowed_but_not_over_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README"), b"hello").unwrap();
    let storage = LocalStorage::new(dir.path());
    storage.create().unwrap();
    storage.write(Kind::Config, "config", b"cfg").unwrap();
    let err = LocalStorage::new(dir.path()).create().unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(storage.root(), dir.path());
}

#[test]
fn errors_describe_the_operation() {
    let (dir, storage) = setup();
    let err = storage.read(Kind::Snapshot, "nope").unwrap_err();
    assert!(err.is_not_found());
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("snapshot") && msg.contains("nope"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn large_objects_written_past_the_page_cache_read_back_exactly() {
    // Packs (1 MiB and more) are written with O_DIRECT on Linux: padded to whole blocks, then
    // cut to their length. Lengths on and off a block boundary, and larger than the first.
    let (dir, storage) = setup();
    for (i, len) in [1 << 20, (1 << 20) + 1234, (3 << 20) + 4095, (1 << 20) - 1]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
        let name = format!("{i:02}{}", &PACK[2..]);
        storage.write(Kind::Pack, &name, &data).unwrap();
        assert_eq!(storage.stat(Kind::Pack, &name).unwrap().size, len as u64);
        assert!(storage.read(Kind::Pack, &name).unwrap() == data);
        assert!(storage.read_range(Kind::Pack, &name, 1000, 5000).unwrap() == data[1000..6000]);
    }
    assert!(
        tmp_entries(dir.path()).is_empty(),
        "no temporary file is left"
    );
}
