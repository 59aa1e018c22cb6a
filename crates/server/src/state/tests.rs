//! Tests of the state file and the login limiter.

use super::*;

fn open_temp() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().unwrap();
    let state = State::open(&dir.path().join("state.db")).unwrap();
    (dir, state)
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

const PW: &str = "correct horse";

#[test]
fn state_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<State>();
    assert_send_sync::<LoginLimiter>();
}

#[test]
fn words_round_trip_and_reject_unknown() {
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        assert_eq!(
            serde_json::to_string(&role).unwrap(),
            format!("\"{}\"", role.as_str())
        );
    }
    for scope in [Scope::Read, Scope::Backup, Scope::Admin] {
        assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
    }
    let err = "root".parse::<Role>().unwrap_err().to_string();
    assert!(err.contains("viewer, operator, admin"), "{err}");
    assert!("Admin".parse::<Scope>().is_err());
    assert!(Role::Viewer < Role::Operator && Scope::Backup < Scope::Admin);
}

#[test]
fn users_add_check_and_reject() {
    let (_dir, state) = open_temp();
    state
        .add_user("alice@example.org", Role::Operator, PW)
        .unwrap();

    let dup = state.add_user("alice@example.org", Role::Admin, PW);
    assert!(matches!(dup, Err(StateError::Exists(_))), "{dup:?}");
    for bad in ["", "a b", "ålice", "x/y", &"a".repeat(65)] {
        let r = state.add_user(bad, Role::Viewer, PW);
        assert!(matches!(r, Err(StateError::Invalid(_))), "{bad:?}: {r:?}");
    }
    assert!(check_name(&"a".repeat(64)).is_ok());
    let short = state.add_user("bob", Role::Viewer, "1234567");
    assert!(matches!(short, Err(StateError::Invalid(_))), "{short:?}");

    let users = state.users().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].name.as_str(), users[0].role),
        ("alice@example.org", Role::Operator)
    );

    assert_eq!(
        state.check_password("alice@example.org", PW).unwrap(),
        Some(Role::Operator)
    );
    assert_eq!(
        state
            .check_password("alice@example.org", "wrong password")
            .unwrap(),
        None
    );
    assert_eq!(state.check_password("nobody", PW).unwrap(), None);
}

#[test]
fn dummy_hash_uses_default_params() {
    let params = argon2::Params::default();
    let expected = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        params.m_cost(),
        params.t_cost(),
        params.p_cost()
    );
    assert!(DUMMY_HASH.starts_with(&expected), "{DUMMY_HASH}");
    assert!(!verify_password(PW, DUMMY_HASH).unwrap());
}

#[test]
fn sessions_follow_role_password_and_removal() {
    let (_dir, state) = open_temp();
    state.add_user("alice", Role::Viewer, PW).unwrap();
    state.add_user("bob", Role::Viewer, PW).unwrap();
    let ttl = SignedDuration::from_hours(1);

    let s = state.create_session("alice", ttl, at(0)).unwrap();
    assert_eq!((s.id.len(), s.csrf.len()), (64, 64));
    assert_ne!(s.id, s.csrf);
    let live = state.session(&s.id, at(1)).unwrap().unwrap();
    assert_eq!(
        (live.user.as_str(), live.role, &live.csrf),
        ("alice", Role::Viewer, &s.csrf)
    );

    state.set_role("alice", Role::Admin).unwrap();
    assert_eq!(
        state.session(&s.id, at(2)).unwrap().unwrap().role,
        Role::Admin
    );
    assert!(matches!(
        state.set_role("nobody", Role::Admin),
        Err(StateError::NotFound(_))
    ));

    state.set_password("alice", "another password").unwrap();
    assert_eq!(state.session(&s.id, at(3)).unwrap(), None);

    let s = state.create_session("alice", ttl, at(4)).unwrap();
    let b = state.create_session("bob", ttl, at(4)).unwrap();
    state.remove_user("alice").unwrap();
    assert_eq!(state.session(&s.id, at(5)).unwrap(), None);
    assert!(state.session(&b.id, at(5)).unwrap().is_some());
    assert!(matches!(
        state.remove_user("alice"),
        Err(StateError::NotFound(_))
    ));
    assert!(matches!(
        state.create_session("alice", ttl, at(6)),
        Err(StateError::NotFound(_))
    ));

    state.delete_session(&b.id).unwrap();
    assert_eq!(state.session(&b.id, at(7)).unwrap(), None);
    state.delete_session(&b.id).unwrap();
}

#[test]
fn sessions_expire() {
    let (_dir, state) = open_temp();
    state.add_user("alice", Role::Viewer, PW).unwrap();
    let s = state
        .create_session("alice", SignedDuration::from_secs(60), at(0))
        .unwrap();
    assert_eq!(s.expires, at(60));
    assert!(state.session(&s.id, at(59)).unwrap().is_some());
    assert_eq!(state.session(&s.id, at(60)).unwrap(), None);
    // Deleted, so even an earlier clock no longer finds it.
    assert_eq!(state.session(&s.id, at(0)).unwrap(), None);
    assert_eq!(state.session("not-a-session", at(0)).unwrap(), None);
    assert!(matches!(
        state.create_session("alice", SignedDuration::ZERO, at(0)),
        Err(StateError::Invalid(_))
    ));
}

#[test]
fn tokens_check_by_hash_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let state = State::open(&path).unwrap();
    let secret = state.add_token("shop-app", Scope::Backup).unwrap();
    assert_eq!(secret.len(), 4 + 64);
    assert!(secret.starts_with("bst_"));
    assert!(
        secret[4..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
    assert!(matches!(
        state.add_token("shop-app", Scope::Read),
        Err(StateError::Exists(_))
    ));
    assert!(matches!(
        state.add_token("bad name", Scope::Read),
        Err(StateError::Invalid(_))
    ));

    assert_eq!(state.tokens().unwrap()[0].last_used, None);
    let info = state.check_token(&secret).unwrap().unwrap();
    assert_eq!(
        (info.name.as_str(), info.scope),
        ("shop-app", Scope::Backup)
    );
    assert!(info.last_used.is_some());
    assert_eq!(state.tokens().unwrap()[0].last_used, info.last_used);
    assert_eq!(state.check_token(&format!("{secret}x")).unwrap(), None);
    assert_eq!(state.check_token("").unwrap(), None);

    // Checkpoint the WAL so every page is in the main file, then look for the secret.
    drop(state);
    let mut bytes = std::fs::read(&path).unwrap();
    for side in ["state.db-wal", "state.db-shm"] {
        if let Ok(more) = std::fs::read(dir.path().join(side)) {
            bytes.extend(more);
        }
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(secret_hash(&secret).as_bytes()),
        "the search sees stored data"
    );
    assert!(!contains(&secret.as_bytes()[4..]));

    let state = State::open(&path).unwrap();
    state.remove_token("shop-app").unwrap();
    assert_eq!(state.check_token(&secret).unwrap(), None);
    assert!(matches!(
        state.remove_token("shop-app"),
        Err(StateError::NotFound(_))
    ));
}

fn entry(secs: i64, action: &str) -> AuditEntry {
    AuditEntry {
        time: at(secs),
        actor: "user:alice".into(),
        action: action.into(),
        target: String::new(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

#[test]
fn audit_is_newest_first_and_limited() {
    let (_dir, state) = open_temp();
    for (secs, action) in [(10, "b"), (5, "a"), (10, "c"), (20, "d")] {
        state.audit(&entry(secs, action)).unwrap();
    }
    let actions = |limit| {
        state
            .audit_log(limit)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect::<Vec<_>>()
    };
    assert_eq!(actions(10), ["d", "c", "b", "a"]);
    assert_eq!(actions(2), ["d", "c"]);
    assert!(actions(0).is_empty());
    assert_eq!(state.audit_log(1).unwrap()[0], entry(20, "d"));
}

fn job(id: &str, kind: &str, source: &str, started: i64, outcome: &str) -> JobRecord {
    JobRecord {
        id: id.into(),
        kind: kind.into(),
        source: source.into(),
        trigger: "schedule".into(),
        started: at(started),
        finished: None,
        outcome: outcome.into(),
        message: String::new(),
        detail: serde_json::Value::Null,
        figures: Default::default(),
    }
}

#[test]
fn jobs_replace_list_and_filter() {
    let (_dir, state) = open_temp();
    state
        .record_job(&job("1", "backup", "db", 0, "ok"))
        .unwrap();
    state
        .record_job(&job("2", "backup", "db", 10, "running"))
        .unwrap();
    state
        .record_job(&job("3", "verify", "db", 20, "failed"))
        .unwrap();
    state.record_job(&job("4", "prune", "", 30, "ok")).unwrap();
    state
        .record_job(&job("5", "backup", "files", 40, "ok"))
        .unwrap();

    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(state.jobs(None, 10).unwrap()),
        ["5", "4", "3", "2", "1"]
    );
    assert_eq!(ids(state.jobs(Some("db"), 2).unwrap()), ["3", "2"]);
    assert_eq!(ids(state.jobs(Some(""), 10).unwrap()), ["4"]);

    let last = |outcome| {
        state
            .last_job("db", "backup", outcome)
            .unwrap()
            .map(|j| j.id)
    };
    assert_eq!(last(None).as_deref(), Some("2"));
    assert_eq!(last(Some("ok")).as_deref(), Some("1"));
    assert_eq!(last(Some("failed")), None);

    let mut done = job("2", "backup", "db", 10, "failed");
    done.finished = Some(at(15));
    done.message = "disk full".into();
    done.detail = serde_json::json!({ "files": 3, "warnings": ["x"] });
    state.record_job(&done).unwrap();
    assert_eq!(state.jobs(None, 10).unwrap().len(), 5);
    assert_eq!(
        state.last_job("db", "backup", Some("failed")).unwrap(),
        Some(done)
    );
    assert_eq!(state.last_job("db", "drill", None).unwrap(), None);
}

#[test]
fn limiter_blocks_sixth_attempt_until_window_passes() {
    let limiter = LoginLimiter::default();
    for i in 0..5 {
        assert_eq!(limiter.check("alice", at(i)), Ok(()));
        limiter.failure("alice", at(i));
    }
    let wait = SignedDuration::from_mins(15) - SignedDuration::from_secs(10);
    assert_eq!(limiter.check("alice", at(10)), Err(wait));
    assert_eq!(limiter.check("10.0.0.1", at(10)), Ok(()));
    // The first failure (at 0) leaves the window after 15 minutes.
    assert!(limiter.check("alice", at(899)).is_err());
    assert_eq!(limiter.check("alice", at(900)), Ok(()));
    limiter.failure("alice", at(900));
    assert_eq!(
        limiter.check("alice", at(900)),
        Err(SignedDuration::from_secs(1))
    );
    limiter.success("alice");
    assert_eq!(limiter.check("alice", at(900)), Ok(()));
}

#[test]
fn reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let state = State::open(&path).unwrap();
        state.add_token("app", Scope::Read).unwrap();
        state.audit(&entry(0, "token-add")).unwrap();
        state
            .record_job(&job("1", "backup", "db", 0, "ok"))
            .unwrap();
    }
    let state = State::open(&path).unwrap();
    assert_eq!(state.tokens().unwrap()[0].name, "app");
    assert_eq!(state.audit_log(10).unwrap(), [entry(0, "token-add")]);
    assert_eq!(state.jobs(None, 10).unwrap().len(), 1);
}

#[test]
fn concurrent_opens_of_a_new_file_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::thread::scope(|s| {
        let opens: Vec<_> = (0..4).map(|_| s.spawn(|| State::open(&path))).collect();
        for open in opens {
            open.join().unwrap().unwrap();
        }
    });
}

#[test]
fn first_start_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    assert_eq!(
        State::open(&path).unwrap().first_start(at(0)).unwrap(),
        at(0)
    );
    let state = State::open(&path).unwrap();
    assert_eq!(state.first_start(at(100)).unwrap(), at(0));
}

#[test]
fn open_refuses_newer_schema_and_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(State::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = State::open(&path).unwrap_err();
    assert!(
        matches!(err, StateError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade backstop"), "{err}");

    let missing = dir.path().join("no-such-dir").join("state.db");
    let err = State::open(&missing).unwrap_err();
    assert!(matches!(err, StateError::NoDirectory(_)), "{err}");
}

#[test]
fn unfinished_jobs_are_abandoned_at_start() {
    let (_dir, state) = open_temp();
    state
        .record_job(&job("1", "backup", "db", 0, "ok"))
        .unwrap();
    state
        .record_job(&job("2", "backup", "db", 10, "running"))
        .unwrap();
    state
        .record_job(&job("3", "prune", "", 20, "queued"))
        .unwrap();
    assert_eq!(state.abandon_unfinished(at(30)).unwrap(), 2);
    let jobs = state.jobs(None, 10).unwrap();
    let outcome = |id: &str| {
        jobs.iter()
            .find(|j| j.id == id)
            .map(|j| (j.outcome.clone(), j.finished))
            .unwrap()
    };
    assert_eq!(outcome("1"), ("ok".into(), None));
    assert_eq!(outcome("2"), ("abandoned".into(), Some(at(30))));
    assert_eq!(outcome("3").0, "abandoned");
    assert_eq!(state.abandon_unfinished(at(40)).unwrap(), 0);
}

fn failure(secs: i64, actor: &str) -> AuditEntry {
    AuditEntry {
        outcome: "failed".into(),
        actor: actor.into(),
        ..entry(secs, "login")
    }
}

#[test]
fn repeated_failures_collapse_within_an_hour() {
    let (_dir, state) = open_temp();
    for secs in [0, 60, 120] {
        state.audit(&failure(secs, "user:mallory")).unwrap();
    }
    // Another actor, a success, and the same failure two hours later are rows of their own.
    state.audit(&failure(130, "user:eve")).unwrap();
    state.audit(&entry(140, "login")).unwrap();
    state.audit(&failure(120 + 7200, "user:mallory")).unwrap();
    let page = state.audit_page(10, 0).unwrap();
    let counts: Vec<(&str, &str, u64)> = page
        .iter()
        .map(|r| (r.entry.actor.as_str(), r.entry.outcome.as_str(), r.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("user:mallory", "failed", 1),
            ("user:alice", "ok", 1),
            ("user:eve", "failed", 1),
            ("user:mallory", "failed", 3),
        ]
    );
    let collapsed = &page[3];
    assert_eq!((collapsed.first, collapsed.entry.time), (at(0), at(120)));
    assert_eq!(state.audit_rows().unwrap(), 4);
    assert_eq!(state.audit_page(2, 3).unwrap().len(), 1);
}

#[test]
fn audit_rows_older_than_a_time_are_pruned() {
    let (_dir, state) = open_temp();
    for (secs, action) in [(0, "a"), (100, "b"), (200, "c")] {
        state.audit(&entry(secs, action)).unwrap();
    }
    assert_eq!(state.prune_audit(at(100)).unwrap(), 1);
    assert_eq!(state.audit_log(10).unwrap().len(), 2);
}

#[test]
fn a_revoked_token_is_known_by_name() {
    let (_dir, state) = open_temp();
    let secret = state.add_token("till-app", Scope::Backup).unwrap();
    assert_eq!(state.revoked_token(&secret).unwrap(), None);
    state.remove_token("till-app").unwrap();
    assert!(state.check_token(&secret).unwrap().is_none());
    assert_eq!(
        state.revoked_token(&secret).unwrap().as_deref(),
        Some("till-app")
    );
    // The name can be used again; the old secret stays revoked.
    let new = state.add_token("till-app", Scope::Backup).unwrap();
    assert!(state.check_token(&new).unwrap().is_some());
    assert!(state.check_token(&secret).unwrap().is_none());
}

#[test]
fn a_version_1_state_file_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO audit (time, actor, action, target, outcome, detail)
             VALUES (?1, 'cli', 'user-add', 'ada', 'ok', '')",
            [millis(at(5))],
        )
        .unwrap();
    }
    let state = State::open(&path).unwrap();
    let rows = state.audit_page(10, 0).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].count, rows[0].first), (1, at(5)));
    state.audit(&failure(10, "user:x")).unwrap();
    state.audit(&failure(11, "user:x")).unwrap();
    assert_eq!(state.audit_page(1, 0).unwrap()[0].count, 2);
}

#[test]
fn runs_since_are_the_newest_finished_runs_of_a_kind_oldest_first() {
    let (_dir, state) = open_temp();
    for (id, kind, started, finished) in [
        ("old", "backup", 10, Some(11)),
        ("a", "backup", 100, Some(103)),
        ("drill", "drill", 150, Some(151)),
        ("b", "backup", 200, Some(209)),
        ("c", "backup", 300, Some(300)),
        ("running", "backup", 400, None),
    ] {
        let mut j = job(id, kind, "db", started, "ok");
        j.finished = finished.map(at);
        state.record_job(&j).unwrap();
    }
    let runs = state.runs_since("db", "backup", at(100), 10).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        [at(100), at(200), at(300)]
    );
    assert_eq!(runs[1].1, at(209));
    let newest = state.runs_since("db", "backup", at(0), 2).unwrap();
    assert_eq!(
        newest.iter().map(|r| r.0).collect::<Vec<_>>(),
        [at(200), at(300)]
    );
    assert!(
        state
            .runs_since("other", "backup", at(0), 10)
            .unwrap()
            .is_empty()
    );
}
