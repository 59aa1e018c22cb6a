//! Damaged records and key files: `repair records`, and a damaged key file told apart from a wrong
//! passphrase.

use super::*;

// ---------------------------------------------------------------------------------------------
// Item 7: damaged records

/// A damaged pin record passed verify and blocked forget with no command to deal with it.
#[test]
fn damaged_pin_record_is_reported_and_repaired() {
    let sb = Sandbox::plain();
    let d = sb.p("d");
    fs::create_dir(&d).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        fs::write(d.join("f.txt"), format!("version {i}\n")).unwrap();
        ids.push(sb.backup(&[&d], &[])["id"].as_str().unwrap().to_string());
    }
    sb.run(&["pin", &ids[0]]).ok();
    let first_pin = files_under(&sb.repo.join("records"));
    assert_eq!(first_pin.len(), 1);
    sb.run(&["pin", &ids[1]]).ok();
    let mut b = fs::read(&first_pin[0]).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x08;
    fs::write(&first_pin[0], &b).unwrap();

    let o = sb.run(&["forget", "--keep-last", "1"]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("backstop repair records"), "{o:#?}");

    let (code, report) = sb.verify(false);
    assert_eq!(code, 4, "a damaged record is a problem: {report:#}");
    let dr = problems_of(&report, "damaged-record");
    assert_eq!(dr.len(), 1, "{report:#}");
    assert_eq!(
        dr[0]["object"],
        first_pin[0].file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(dr[0]["repair"], "backstop repair records");

    let dry = sb.json(&["repair", "records", "--dry-run"]);
    assert_eq!(dry["deleted"], 0);
    assert!(first_pin[0].exists());
    let s = sb.json(&["repair", "records"]);
    assert_eq!(s["damaged"].as_array().unwrap().len(), 1, "{s:#}");
    assert_eq!(s["deleted"], 1);
    assert_eq!(s["pinned"], serde_json::json!([ids[1]]), "{s:#}");
    let o = sb.run(&["repair", "records"]).ok();
    assert!(o.stdout.contains("nothing to repair"), "{o:#?}");
    sb.assert_clean();
    sb.run(&["forget", "--keep-last", "1"]).ok();
    let left: Vec<String> = sb
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        [ids[1].clone(), ids[2].clone()],
        "the pin that could be read holds"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 7: damaged key files

/// One changed byte anywhere in the only key file: never "wrong passphrase" (exit 12), but
/// "damaged key file", naming it (exit 4), unless the byte is one that unwrapping does not use.
#[test]
fn a_damaged_key_file_is_not_a_wrong_passphrase() {
    let sb = Sandbox::encrypted("pw");
    let keys = files_under(&sb.repo.join("keys"));
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    let name = key.file_name().unwrap().to_str().unwrap().to_string();
    let orig = fs::read(key).unwrap();
    let text = String::from_utf8(orig.clone()).unwrap();
    let wrapped_at = text.find("\"wrapped\"").unwrap() + 12;
    let mut positions: Vec<usize> = (0..orig.len()).step_by(orig.len() / 16).collect();
    // The case reported: a digit of the wrapped key changed into another hex digit.
    positions.push(wrapped_at);
    let mut damaged = 0;
    for pos in positions {
        let mut b = orig.clone();
        b[pos] = match b[pos] {
            b'0' => b'1',
            c if c.is_ascii_hexdigit() => b'0',
            c => c ^ 0x01,
        };
        fs::write(key, &b).unwrap();
        let o = sb.run(&["snapshots"]);
        assert!(o.code == 0 || o.code == 4, "change at {pos}: {o:#?}");
        if o.code == 4 {
            damaged += 1;
            assert!(o.stderr.contains(&format!("keys/{name}")), "{o:#?}");
            assert!(o.stderr.contains("damaged"), "{o:#?}");
            assert!(o.stderr.contains("backstop key add"), "{o:#?}");
            assert!(!o.stderr.contains("wrong passphrase"), "{o:#?}");
        }
        if pos == wrapped_at {
            assert_eq!(o.code, 4, "{o:#?}");
        }
    }
    assert!(damaged >= 10, "only {damaged} changes were noticed");
    fs::write(key, &orig).unwrap();
    sb.run(&["snapshots"]).ok();
    // A second key file that is damaged: the repository opens with the first, verify names it.
    let second = "ab".repeat(32);
    let mut b = orig.clone();
    b[wrapped_at] = if b[wrapped_at] == b'0' { b'1' } else { b'0' };
    fs::write(sb.repo.join("keys").join(&second), &b).unwrap();
    let (code, report) = sb.verify(false);
    assert_eq!(code, 4);
    let dk = problems_of(&report, "damaged-key");
    assert_eq!(dk.len(), 1, "{report:#}");
    assert_eq!(dk[0]["object"], second.as_str());
    fs::remove_file(sb.repo.join("keys").join(&second)).unwrap();
    // A wrong passphrase stays exactly that.
    let mut c = sb.cmd();
    c.env("BACKSTOP_PASSWORD", "not-it").arg("snapshots");
    let o = run(c).code(12);
    assert!(o.stderr.contains("wrong passphrase"), "{o:#?}");
}

// ---------------------------------------------------------------------------------------------
// A second key

#[test]
fn a_second_key_opens_the_repository_when_the_first_key_file_is_damaged() {
    let fx = fixture(Some("first"));
    let sb = &fx.sb;
    let with = |pass: &str, args: &[&str]| {
        let mut c = sb.bare();
        c.arg("--repo").arg(&sb.repo).env("BACKSTOP_PASSWORD", pass);
        c.args(args);
        run(c)
    };
    // One key: list says so and recommends a second.
    let o = sb.run(&["key", "list"]).ok();
    assert!(o.stdout.contains("only one usable key"), "{o:#?}");
    let first = files_under(&sb.repo.join("keys"));
    assert_eq!(first.len(), 1);

    // No new passphrase given: a usage error, nothing written.
    let o = sb.run(&["key", "add"]).code(2);
    assert!(o.stderr.contains("BACKSTOP_NEW_PASSWORD"), "{o:#?}");
    let mut c = sb.cmd();
    c.args(["--json", "key", "add"])
        .env("BACKSTOP_NEW_PASSWORD", "second");
    let added = run(c).ok().json();
    let second_id = added["id"].as_str().unwrap().to_string();
    assert_eq!(files_under(&sb.repo.join("keys")).len(), 2);

    // The new passphrase opens it; list marks which key each passphrase opens.
    let list = with("second", &["--json", "key", "list"]).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for k in list {
        assert_eq!(k["current"], k["id"] == second_id.as_str(), "{k:#}");
    }
    // A wrong one still does not.
    with("third", &["snapshots"]).code(12);

    // The first key file is damaged: the first passphrase is refused as damage (exit 4),
    // the second opens the repository and every snapshot restores.
    let mut b = fs::read(&first[0]).unwrap();
    let n = b.len();
    b[n / 2] = if b[n / 2] == b'a' { b'b' } else { b'a' };
    fs::write(&first[0], &b).unwrap();
    with("first", &["snapshots"]).code(4);
    let list = with("second", &["--json", "key", "list"]).ok().json();
    let damaged: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["damaged"].is_string())
        .collect();
    assert_eq!(damaged.len(), 1, "{list:#}");
    for (i, (id, bytes)) in fx.dbs.iter().enumerate() {
        let out = sb.p(&format!("second-{i}.db"));
        let mut c = sb.bare();
        c.arg("--repo")
            .arg(&sb.repo)
            .env("BACKSTOP_PASSWORD", "second")
            .args(["restore", id, "--to"])
            .arg(&out);
        run(c).ok();
        assert!(fs::read(&out).unwrap() == *bytes);
    }

    // The key a passphrase opens is never removed with that passphrase; the damaged one is.
    let o = with("second", &["key", "remove", &second_id[..10]]).code(2);
    assert!(o.stderr.contains("this passphrase opens"), "{o:#?}");
    let damaged_id = damaged[0]["id"].as_str().unwrap().to_string();
    with("second", &["key", "remove", &damaged_id]).ok();
    assert_eq!(files_under(&sb.repo.join("keys")).len(), 1);
    with("second", &["verify"]).ok();

    // A new passphrase in place of the old one: the old no longer opens it, nothing else
    // changed (the snapshots restore with the new one).
    let mut c = sb.bare();
    c.arg("--repo")
        .arg(&sb.repo)
        .env("BACKSTOP_PASSWORD", "second")
        .env("BACKSTOP_NEW_PASSWORD", "fourth")
        .args(["--json", "key", "passwd"]);
    let changed = run(c).ok().json();
    assert_eq!(changed["removed"]["id"], second_id.as_str(), "{changed:#}");
    assert_eq!(files_under(&sb.repo.join("keys")).len(), 1);
    with("second", &["snapshots"]).code(12);
    let list = with("fourth", &["--json", "key", "list"]).ok().json();
    assert_eq!(list[0]["id"], changed["added"]["id"], "{list:#}");
    with("fourth", &["verify"]).ok();

    // An unencrypted repository has no keys.
    let plain = Sandbox::plain();
    let o = plain.run(&["key", "list"]).code(2);
    assert!(o.stderr.contains("not encrypted"), "{o:#?}");
}
