//! The scheduler with a clock passed in, and the job runner: what is due when, missed runs,
//! retries, startup backups, ordering of conflicting jobs, shutdown.

mod common;

use std::sync::{Arc, Mutex};

use backstop_format::Timestamp;
use backstop_format::manifest::BackupKind;
use backstop_policy::Schedule;
use backstop_server::jobs::{JobSpec, Runner, SubmitError};
use backstop_server::notify::Notifier;
use backstop_server::scheduler::{Clock, Facts, Scheduler, due};
use backstop_server::state::State;
use backstop_server::{Setup, Tasks};
use common::*;
use jiff::SignedDuration;

struct FakeClock(Mutex<Timestamp>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

impl FakeClock {
    fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap() = t;
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn h(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn daily_tasks() -> Tasks {
    let every = |s: &str| Some(Schedule::every(s).unwrap());
    Tasks {
        startup_backup: true,
        verify: every("1d"),
        verify_data: every("1w"),
        drill: every("1d"),
        forget: every("1d"),
        prune: every("1w"),
    }
}

fn kinds(jobs: &[JobSpec]) -> Vec<String> {
    jobs.iter()
        .map(|j| format!("{} {}", j.kind(), j.source()).trim().to_string())
        .collect()
}

fn setup(tasks: Tasks) -> (tempfile::TempDir, Setup) {
    let dir = tempfile::tempdir().unwrap();
    let s = setup_in(dir.path(), tasks);
    (dir, s)
}

#[test]
fn backups_are_due_by_schedule_and_a_missed_run_is_made_up_once() {
    let (_d, s) = setup(no_tasks());
    let now = t("2026-11-22T12:00:00Z");
    let mut f = Facts::default();
    // Never backed up: due at once (shop has `every = 6h`; docs has no schedule).
    assert_eq!(kinds(&due(&s, &f, now)), ["backup shop"]);
    f.last_backup.insert("shop".into(), now - h(5));
    assert!(due(&s, &f, now).is_empty());
    f.last_backup.insert("shop".into(), now - h(6));
    assert_eq!(kinds(&due(&s, &f, now)), ["backup shop"]);
    // Three days off: one backup, not twelve.
    f.last_backup.insert("shop".into(), now - h(72));
    let jobs = due(&s, &f, now);
    assert_eq!(kinds(&jobs), ["backup shop"]);
    assert!(matches!(
        &jobs[0],
        JobSpec::Backup {
            kind: BackupKind::Scheduled,
            ..
        }
    ));
    // Not submitted twice.
    f.pending.insert(("backup".into(), "shop".into()));
    assert!(due(&s, &f, now).is_empty());
}

#[test]
fn a_failed_backup_is_retried_after_a_quarter_period_not_every_tick() {
    let (_d, s) = setup(no_tasks());
    let now = t("2026-11-22T12:00:00Z");
    let mut f = Facts::default();
    f.last_backup.insert("shop".into(), now - h(10));
    f.last_run.insert(
        ("backup".into(), "shop".into()),
        (now - h(1) + SignedDuration::from_mins(1), true),
    );
    // 6h period: retry after 1h (a quarter is 1h30, capped at an hour).
    assert!(due(&s, &f, now).is_empty());
    f.last_run
        .insert(("backup".into(), "shop".into()), (now - h(1), true));
    assert_eq!(kinds(&due(&s, &f, now)), ["backup shop"]);
    // A successful run that recorded no snapshot (nothing changed, skip_unchanged) counts
    // as the last backup: it is not repeated at every tick.
    f.last_run.insert(
        ("backup".into(), "shop".into()),
        (now - SignedDuration::from_mins(1), false),
    );
    assert!(due(&s, &f, now).is_empty());
    assert_eq!(kinds(&due(&s, &f, now + h(6))), ["backup shop"]);
}

#[test]
fn cron_schedules_follow_the_time_zone() {
    let (_d, mut s) = setup(no_tasks());
    s.time_zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    s.sources[0].schedule = Some(Schedule::cron("30 2 * * *").unwrap());
    let mut f = Facts::default();
    f.last_backup
        .insert("shop".into(), t("2026-11-21T01:30:00Z"));
    // 02:30 in Berlin is 01:30 UTC in November.
    assert!(due(&s, &f, t("2026-11-22T01:29:00Z")).is_empty());
    assert_eq!(
        kinds(&due(&s, &f, t("2026-11-22T01:30:00Z"))),
        ["backup shop"]
    );
}

#[test]
fn drills_and_repository_tasks_follow_their_own_schedules() {
    let (_d, mut s) = setup(daily_tasks());
    s.sources[0].schedule = None;
    let now = t("2026-11-22T12:00:00Z");
    let mut f = Facts {
        first_start: Some(now),
        ..Facts::default()
    };
    // Nothing to drill before a backup; repository tasks count from the first start.
    assert!(due(&s, &f, now).is_empty());
    f.last_backup.insert("shop".into(), now - h(1));
    assert_eq!(kinds(&due(&s, &f, now)), ["drill shop"]);
    f.last_drill.insert("shop".into(), now - h(2));
    assert!(due(&s, &f, now).is_empty());
    // A day after the first start: the structure check, retention; the weekly ones wait.
    let later = now + h(24);
    assert_eq!(
        kinds(&due(&s, &f, later)),
        ["drill shop", "verify", "forget"]
    );
    let week = now + h(24 * 7);
    f.last_run
        .insert(("verify".into(), String::new()), (week - h(3), false));
    f.last_run
        .insert(("forget".into(), String::new()), (week - h(3), false));
    f.last_drill.insert("shop".into(), week - h(3));
    assert_eq!(kinds(&due(&s, &f, week)), ["verify-data", "prune"]);
    // A drill is not started while a backup of the source is pending.
    f.last_drill.insert("shop".into(), week - h(30));
    f.pending.insert(("backup".into(), "shop".into()));
    assert!(!kinds(&due(&s, &f, week)).contains(&"drill shop".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_backs_up_when_due_by_its_clock() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Arc::new(setup_in(dir.path(), no_tasks()));
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let notifier = Arc::new(Notifier::new());
    let runner = Arc::new(Runner::new(setup.clone(), state.clone(), notifier.clone()));
    let clock = Arc::new(FakeClock(Mutex::new(Timestamp::now())));
    let sched = Arc::new(Scheduler::new(
        runner.clone(),
        state.clone(),
        notifier,
        clock.clone(),
    ));
    let tick = |s: Arc<Scheduler>| async move {
        tokio::task::spawn_blocking(move || s.tick()).await.unwrap()
    };
    let first = tick(sched.clone()).await;
    assert_eq!(kinds(&first), ["backup shop"]);
    // While it runs, it is not submitted again.
    let again = tick(sched.clone()).await;
    assert!(again.is_empty(), "{:?}", kinds(&again));
    while runner.busy() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let jobs = state.jobs(Some("shop"), 10).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].outcome, "ok", "{}", jobs[0].message);
    assert_eq!(jobs[0].trigger, "schedule");
    clock.set(Timestamp::now() + h(1));
    assert!(tick(sched.clone()).await.is_empty());
    clock.set(Timestamp::now() + h(6) + SignedDuration::from_mins(1));
    assert_eq!(kinds(&tick(sched.clone()).await), ["backup shop"]);
    while runner.busy() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    runner.shutdown().await;
    let snaps = setup.repo.snapshots().unwrap().readable;
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|(_, s)| s.kind == BackupKind::Scheduled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_backups_conflicting_jobs_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = no_tasks();
    tasks.startup_backup = true;
    let setup = Arc::new(setup_in(dir.path(), tasks));
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let notifier = Arc::new(Notifier::new());
    let runner = Arc::new(Runner::new(setup.clone(), state.clone(), notifier.clone()));
    let sched = Scheduler::new(
        runner.clone(),
        state.clone(),
        notifier,
        Arc::new(backstop_server::scheduler::SystemClock),
    );
    sched.startup();
    // Prune needs the repository to itself, and backups come after it: all are ordered by
    // the runner's locks instead of failing on the engine's lock.
    let prune = runner.submit(JobSpec::Prune, "test").unwrap();
    let after = runner
        .submit(
            JobSpec::Backup {
                source: "shop".into(),
                kind: BackupKind::Manual,
                description: Some("after prune".into()),
                ticket: None,
                tags: vec![],
            },
            "test",
        )
        .unwrap();
    let verify = runner
        .submit(JobSpec::Verify { read_data: true }, "test")
        .unwrap();
    for j in [&prune, &after, &verify] {
        let v = j.finished().await;
        assert_eq!(v.state, "ok", "{} {}", v.kind, v.message);
    }
    // The startup backups may run before or after the prune, never beside it.
    while runner.busy() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        runner.recent().iter().all(|j| j.state == "ok"),
        "{:#?}",
        runner.recent()
    );
    let snaps = setup.repo.snapshots().unwrap().readable;
    let startup = snaps
        .iter()
        .filter(|(_, s)| s.kind == BackupKind::Startup)
        .count();
    assert_eq!(startup, 2, "one startup backup per source");

    // Shutdown: the queue is closed, what runs finishes.
    let running = runner
        .submit(JobSpec::Verify { read_data: true }, "test")
        .unwrap();
    runner.shutdown().await;
    let v = running.view();
    assert!(matches!(v.state, "ok" | "abandoned"), "{}", v.state);
    assert!(matches!(
        runner.submit(JobSpec::Prune, "test"),
        Err(SubmitError::ShuttingDown)
    ));
    assert!(!runner.busy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_source_is_notified_once_per_missed_backup() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    // Nothing listens on the discard port: sending fails and is only logged.
    setup.webhook = Some("http://127.0.0.1:9/hook".into());
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let notifier = Arc::new(Notifier {
        record: true,
        ..Notifier::default()
    });
    let runner = Arc::new(Runner::new(setup.clone(), state.clone(), notifier.clone()));
    let done = runner
        .submit(
            JobSpec::Backup {
                source: "shop".into(),
                kind: BackupKind::Manual,
                description: None,
                ticket: None,
                tags: vec![],
            },
            "test",
        )
        .unwrap();
    done.finished().await;
    let clock = Arc::new(FakeClock(Mutex::new(Timestamp::now() + h(2))));
    let sched = Arc::new(Scheduler::new(
        runner.clone(),
        state,
        notifier.clone(),
        clock.clone(),
    ));
    let overdue = |n: &Notifier| {
        n.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(url, body)| url.ends_with("/hook") && body.contains("\"overdue\""))
            .count()
    };
    // Not yet overdue: the next run (6h) plus half a period of grace.
    let tick = |s: Arc<Scheduler>| async move {
        tokio::task::spawn_blocking(move || s.tick()).await.unwrap()
    };
    tick(sched.clone()).await;
    assert_eq!(overdue(&notifier), 0);
    // The daemon was stopped for a day: overdue, told once, however often it ticks.
    runner.shutdown().await;
    clock.set(Timestamp::now() + h(24));
    tick(sched.clone()).await;
    tick(sched.clone()).await;
    assert_eq!(overdue(&notifier), 1);
    let sent = notifier.sent.lock().unwrap().clone();
    let body = &sent.iter().find(|(u, _)| u.ends_with("/hook")).unwrap().1;
    let e: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(e["event"], "overdue");
    assert_eq!(e["source"], "shop");
    assert!(e["last_backup"].is_string());
}

/// A source with `copy_to`: each backup that saves a snapshot is followed by a copy job per
/// destination, which creates the destination on the first run and copies the source's
/// snapshots (only its own) with their ids; a destination that fails is a failed job, and the
/// next copy catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_copied_to_the_sources_copy_to_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    let offsite = dir.path().join("offsite");
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "a file where a repository should go").unwrap();
    let dest = |p: &std::path::Path| {
        let place = p.display().to_string();
        backstop_app::copy::Destination::resolve(&place, &Default::default(), None).unwrap()
    };
    let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
    shop.copy_to = vec![dest(&offsite), dest(&blocked)];
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let runner = Arc::new(Runner::new(setup.clone(), state, Arc::new(Notifier::new())));
    let backup_of = |source: &str| JobSpec::Backup {
        source: source.into(),
        kind: BackupKind::Manual,
        description: None,
        ticket: None,
        tags: vec![],
    };
    for source in ["shop", "docs", "shop"] {
        let v = runner
            .submit(backup_of(source), "test")
            .unwrap()
            .finished()
            .await;
        assert_eq!(v.state, "ok", "{}", v.message);
        while runner.busy() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let copies: Vec<_> = runner
        .recent()
        .into_iter()
        .filter(|j| j.kind == "copy")
        .collect();
    assert_eq!(copies.len(), 4, "two per backup of shop: {copies:#?}");
    let (ok, failed): (Vec<_>, Vec<_>) = copies.iter().partition(|j| j.state == "ok");
    assert_eq!((ok.len(), failed.len()), (2, 2), "{copies:#?}");
    assert!(
        failed.iter().all(|j| j.message.contains("blocked")),
        "{failed:#?}"
    );
    let copied = backstop_app::repository::open(&dest(&offsite).location, None).unwrap();
    let shop_ids: Vec<_> = setup
        .repo
        .snapshots()
        .unwrap()
        .readable
        .into_iter()
        .filter(|(_, s)| s.source.name == "shop")
        .map(|(id, _)| id)
        .collect();
    let there: Vec<_> = copied
        .snapshots()
        .unwrap()
        .readable
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        there, shop_ids,
        "the shop's snapshots, with their ids, and no other"
    );
}

/// Runs `spec` through `runner` and waits for its end.
async fn finished(runner: &Arc<Runner>, spec: JobSpec) -> backstop_server::jobs::JobView {
    runner.submit(spec, "test").unwrap().finished().await
}

/// Backs `source` up through `runner` and waits until the jobs it queued (its copies) are done.
async fn back_up_and_settle(runner: &Arc<Runner>, source: &str) {
    let spec = JobSpec::Backup {
        source: source.into(),
        kind: BackupKind::Manual,
        description: None,
        ticket: None,
        tags: vec![],
    };
    let v = runner.submit(spec, "test").unwrap().finished().await;
    assert_eq!(v.state, "ok", "{}", v.message);
    while runner.busy() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A repository with an object lock of N days has its retentions lengthened every N/2 days;
/// one without has no such job.
#[test]
fn object_lock_retentions_are_lengthened_every_half_of_their_days() {
    use backstop_format::config::{LockMode, ObjectLock};
    use backstop_server::scheduler::lengthening;
    let lock = |days| {
        Some(ObjectLock {
            mode: LockMode::Compliance,
            days,
        })
    };
    assert!(lengthening(None).is_none());
    let every = |s: Option<Schedule>| match s {
        Some(Schedule::Every(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(every(lengthening(lock(30))), h(15 * 24));
    assert_eq!(every(lengthening(lock(1))), h(12));
    // Due once half the days have passed since the last run (or the daemon's first start).
    let sched = lengthening(lock(2)).unwrap();
    let tz = jiff::tz::TimeZone::UTC;
    let last = t("2027-01-01T00:00:00Z");
    assert!(!sched.is_due(Some(last), t("2027-01-01T23:00:00Z"), &tz));
    assert!(sched.is_due(Some(last), t("2027-01-02T00:00:00Z"), &tz));
}

/// A copy's destination with an Object Lock (as its newest copy job found it) has its
/// retentions lengthened by the same job, at the pace of the shortest lock, even when the main
/// repository has none.
#[test]
fn a_locked_copy_is_lengthened_though_the_main_repository_is_not_locked() {
    use backstop_format::config::{LockMode, ObjectLock};
    let (_d, s) = setup(no_tasks());
    assert!(s.repo.config().object_lock.is_none());
    let now = t("2027-01-10T00:00:00Z");
    let mut f = Facts::default();
    f.last_backup.insert("shop".into(), now);
    f.first_start = Some(t("2027-01-01T00:00:00Z"));
    assert!(due(&s, &f, now).is_empty(), "nothing is locked");
    f.copy_object_lock = Some(ObjectLock {
        mode: LockMode::Compliance,
        days: 14,
    });
    // Half of 14 days since the first start: due.
    assert_eq!(kinds(&due(&s, &f, now)), ["object-lock"]);
    f.last_run
        .insert(("object-lock".into(), String::new()), (now - h(24), false));
    assert!(due(&s, &f, now).is_empty(), "lengthened a day ago");
}

/// A copy in a bucket with an Object Lock, from a main repository without one: its copy job
/// records the lock, and the object-lock job lengthens the retention of every object there
/// (from the time of the job, not of the write), naming the copy in its message and result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_lock_job_lengthens_a_locked_copy() {
    use backstop_format::config::{LockMode, ObjectLock};
    use backstop_storage::testing::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SeaweedFs};
    use backstop_storage::{Kind, Storage};
    let server = SeaweedFs::start();
    server.create_bucket_with_object_lock("locked");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("offsite.secret");
    std::fs::write(&secret, SECRET_ACCESS_KEY).unwrap();
    let config = dir.path().join("backstop.toml");
    std::fs::write(
        &config,
        format!(
            "[repositories.offsite]\nlocation = \"s3://locked/copy\"\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY_ID}\"\n\
             secret_access_key_file = \"{}\"\n",
            server.endpoint(),
            secret.display()
        ),
    )
    .unwrap();
    let config = backstop_app::config::Config::load(Some(&config)).unwrap();
    let dest = backstop_app::copy::Destination::resolve("offsite", &config, None).unwrap();
    let mut opts = backstop_engine::InitOptions::new(None, Timestamp::now(), "test".into());
    opts.object_lock = Some(ObjectLock {
        mode: LockMode::Compliance,
        days: 2,
    });
    backstop_app::repository::init(&dest.location, &opts).unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    assert!(setup.repo.config().object_lock.is_none());
    let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
    shop.copy_to = vec![dest];
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let runner = Arc::new(Runner::new(setup, state.clone(), Arc::new(Notifier::new())));
    back_up_and_settle(&runner, "shop").await;
    let copy = runner
        .recent()
        .into_iter()
        .find(|j| j.kind == "copy")
        .unwrap();
    assert_eq!(copy.state, "ok", "{}", copy.message);
    // The copy job recorded the lock, which the scheduler reads back.
    let runs = backstop_server::copying::copy_runs(&state, "shop").unwrap();
    assert_eq!(
        runs["s3://locked/copy"].object_lock.map(|l| l.days),
        Some(2),
        "{runs:?}"
    );

    let storage = server.storage("locked", "copy");
    let until = || {
        let mut out = Vec::new();
        for kind in [Kind::Pack, Kind::Index, Kind::Snapshot] {
            for o in storage.list(kind).unwrap() {
                out.push(storage.retained_until(kind, &o.name).unwrap().unwrap());
            }
        }
        out
    };
    let before = until();
    assert!(before.len() >= 3, "{before:?}");
    // Retentions are kept to the second: let some pass.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let v = finished(&runner, JobSpec::ExtendRetention).await;
    assert_eq!(v.state, "ok", "{}", v.message);
    assert!(
        v.message.starts_with(
            "the main repository has no object lock; at s3://locked/copy: \
             retention of "
        ),
        "{}",
        v.message
    );
    let result = v.result.as_ref().unwrap();
    assert_eq!(result["object_lock"], false, "{result:#}");
    assert_eq!(result["copies"][0]["to"], "s3://locked/copy", "{result:#}");
    let after = until();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert!(a.duration_since(*b).as_secs_f64() >= 1.0, "{b} -> {a}");
        let days = a.duration_since(jiff::Timestamp::now()).as_secs_f64() / 86_400.0;
        assert!((1.99..2.01).contains(&days), "{days} days");
    }
}

/// A backup that saved no snapshot (nothing changed, `skip_unchanged`) queues no copy: there
/// is nothing new to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_backup_that_saved_nothing_queues_no_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    let place = dir.path().join("offsite").display().to_string();
    let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
    shop.copy_to =
        vec![backstop_app::copy::Destination::resolve(&place, &Default::default(), None).unwrap()];
    shop.skip_unchanged = true;
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let runner = Arc::new(Runner::new(setup, state, Arc::new(Notifier::new())));
    let copies = |runner: &Runner| {
        runner
            .recent()
            .into_iter()
            .filter(|j| j.kind == "copy")
            .map(|j| j.state)
            .collect::<Vec<_>>()
    };
    back_up_and_settle(&runner, "shop").await;
    assert_eq!(copies(&runner), ["ok"]);
    // Scheduled backups skip what did not change; one someone asks for is always saved.
    let spec = JobSpec::Backup {
        source: "shop".into(),
        kind: BackupKind::Scheduled,
        description: None,
        ticket: None,
        tags: vec![],
    };
    let v = runner.submit(spec, "schedule").unwrap().finished().await;
    assert_eq!(v.state, "ok", "{}", v.message);
    while runner.busy() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let newest = runner
        .recent()
        .into_iter()
        .find(|j| j.kind == "backup")
        .unwrap();
    assert_eq!(
        newest.result.as_ref().unwrap()["skipped"],
        true,
        "{newest:?}"
    );
    assert_eq!(copies(&runner), ["ok"], "no copy after a skipped backup");
}

/// The daemon's forget and prune apply each copy's own retention there (only to the sources
/// copied there), after the main repository's; a copy that cannot be opened fails the job by
/// name without stopping the others, and one that holds nothing yet is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_and_prune_apply_each_copys_own_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    let offsite = dir.path().join("offsite");
    let blocked = dir.path().join("blocked");
    let dest = |p: &std::path::Path| {
        let place = p.display().to_string();
        backstop_app::copy::Destination::resolve(&place, &Default::default(), None).unwrap()
    };
    let mut keep_one = dest(&offsite);
    keep_one.retention = backstop_app::retention::Retention::only(backstop_policy::Policy {
        keep_last: Some(1),
        ..Default::default()
    });
    let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
    shop.copy_to = vec![keep_one];
    let docs = setup.sources.iter_mut().find(|s| s.name == "docs").unwrap();
    docs.copy_to = vec![dest(&offsite), dest(&blocked)];
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let runner = Arc::new(Runner::new(setup.clone(), state, Arc::new(Notifier::new())));
    // The shop three times; docs once while `blocked` is free (nothing is there: skipped).
    for source in ["shop", "shop", "docs", "shop"] {
        back_up_and_settle(&runner, source).await;
    }
    let count = |repo: &backstop_engine::Repository, source: &str| {
        let snaps = repo.snapshots().unwrap().readable;
        snaps
            .iter()
            .filter(|(_, s)| s.source.name == source)
            .count()
    };
    let copied = backstop_app::repository::open(&dest(&offsite).location, None).unwrap();
    assert_eq!((count(&copied, "shop"), count(&copied, "docs")), (3, 1));

    let v = finished(&runner, JobSpec::Forget).await;
    assert_eq!(v.state, "ok", "{}", v.message);
    assert!(v.message.contains(&offsite.display().to_string()), "{v:?}");
    // The main repository keeps what its own policy says; the copy keeps one of each source
    // copied there (its policy names every source in it).
    assert_eq!(count(&setup.repo, "shop"), 3);
    let copied = backstop_app::repository::open(&dest(&offsite).location, None).unwrap();
    assert_eq!((count(&copied, "shop"), count(&copied, "docs")), (1, 1));
    let result = v.result.unwrap();
    assert_eq!(result["copies"][0]["to"], offsite.display().to_string());
    assert_eq!(result["copies"][0]["result"]["forgotten"], 2);

    let v = finished(&runner, JobSpec::Prune).await;
    assert_eq!(v.state, "ok", "{}", v.message);
    assert!(v.result.unwrap()["copies"][0]["result"].is_object());
    backstop_engine::verify(
        &copied,
        &backstop_engine::VerifyOptions {
            read_data: true,
            host: "test".into(),
        },
        &backstop_engine::progress::NoProgress,
    )
    .map(|r| assert!(r.is_clean(), "{r:?}"))
    .unwrap();

    // A copy that cannot be opened fails the job, by name; the others are still done.
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("config"), "not a repository's config").unwrap();
    let v = finished(&runner, JobSpec::Forget).await;
    assert_eq!(v.state, "failed", "{}", v.message);
    assert!(v.message.contains("blocked"), "{}", v.message);
    let result = v.result.unwrap();
    let copies = result["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{result:#}");
    assert!(copies.iter().any(|c| c["result"].is_object()));
}

/// A failed copy is retried by the scheduler after a quarter of the source's period (not
/// only after the next backup), and the source's 3-2-1 status says since when copies to that
/// destination fail until one works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_is_retried_and_shown_failing_since_its_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "a file where a repository should go").unwrap();
    let place = blocked.display().to_string();
    let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
    shop.copy_to =
        vec![backstop_app::copy::Destination::resolve(&place, &Default::default(), None).unwrap()];
    shop.rules.copies = Some(2);
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let notifier = Arc::new(Notifier::new());
    let runner = Arc::new(Runner::new(setup.clone(), state.clone(), notifier.clone()));
    let start = Timestamp::now();
    let clock = Arc::new(FakeClock(Mutex::new(start)));
    let sched = Arc::new(Scheduler::new(
        runner.clone(),
        state,
        notifier,
        clock.clone(),
    ));
    let tick = |s: Arc<Scheduler>| async move {
        tokio::task::spawn_blocking(move || s.tick()).await.unwrap()
    };
    back_up_and_settle(&runner, "shop").await;
    let failed = runner
        .recent()
        .into_iter()
        .find(|j| j.kind == "copy")
        .unwrap();
    assert_eq!(failed.state, "failed", "{failed:?}");
    let problems = runner.copies("shop").unwrap().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("copy to {place} failing since "))),
        "{problems:?}"
    );
    // The history keeps milliseconds.
    let ms = |t: Option<Timestamp>| t.map(|t| t.as_millisecond());
    let st = &runner.copies("shop").unwrap().repositories[1];
    assert_eq!(ms(st.copy_failing_since), ms(failed.started), "{st:?}");

    // Not at once: shop is backed up every 6 hours, so a failed copy waits an hour.
    assert!(!kinds(&tick(sched.clone()).await).contains(&"copy shop".to_string()));
    clock.set(start + SignedDuration::from_mins(61));
    assert_eq!(kinds(&tick(sched.clone()).await), ["copy shop"]);
    while runner.busy() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Failing since the first failure, not the retry.
    let st = runner.copies("shop").unwrap().repositories[1].clone();
    assert_eq!(ms(st.copy_failing_since), ms(failed.started), "{st:?}");

    // The destination is mended: the next retry copies, and the problem is gone.
    std::fs::remove_file(&blocked).unwrap();
    clock.set(start + SignedDuration::from_mins(125));
    assert_eq!(kinds(&tick(sched.clone()).await), ["copy shop"]);
    // Until the copy is recorded (under load it may not have started when the runner is first
    // asked whether it is busy), for at most 20 seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let c = loop {
        let c = runner.copies("shop").unwrap();
        if (c.copies == 2 && !runner.busy()) || std::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(c.copies, 2, "{c:#?}");
    assert!(c.problems.is_empty(), "{c:#?}");
    assert!(tick(sched.clone()).await.is_empty());
}

/// Restore drills and verification run in each copy too, after the main repository: a copy's
/// newest verified snapshot then shows in the source's 3-2-1 status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_and_verification_run_in_each_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = setup_in(dir.path(), no_tasks());
    let offsite = dir.path().join("offsite");
    let place = offsite.display().to_string();
    let dest = backstop_app::copy::Destination::resolve(&place, &Default::default(), None).unwrap();
    let shop = setup.sources.iter_mut().find(|s| s.name == "shop").unwrap();
    shop.copy_to = vec![dest.clone()];
    let setup = Arc::new(setup);
    let state = Arc::new(State::open(&dir.path().join("state.db")).unwrap());
    let runner = Arc::new(Runner::new(setup.clone(), state, Arc::new(Notifier::new())));
    back_up_and_settle(&runner, "shop").await;
    let newest = |repo: &backstop_engine::Repository| {
        let snaps = repo.snapshots().unwrap().readable;
        snaps
            .iter()
            .max_by_key(|(_, s)| s.time)
            .map(|(id, _)| *id)
            .unwrap()
    };

    let v = finished(
        &runner,
        JobSpec::Drill {
            source: "shop".into(),
        },
    )
    .await;
    assert_eq!(v.state, "ok", "{}", v.message);
    let result = v.result.unwrap();
    assert_eq!(result["passed"], true, "{result:#}");
    assert_eq!(result["copies"][0]["to"], place, "{result:#}");
    assert_eq!(result["copies"][0]["result"]["passed"], true, "{result:#}");
    let copied = backstop_app::repository::open(&dest.location, None).unwrap();
    assert_eq!(
        result["copies"][0]["result"]["snapshot"],
        newest(&copied).to_hex(),
        "{result:#}"
    );
    let drills = copied.verification().unwrap();
    assert!(drills.get(&newest(&copied)).is_some_and(|r| r.passed));
    runner.check_copies("shop", Timestamp::now());
    let c = runner.copies("shop").unwrap();
    assert_eq!(
        c.repositories[1].newest_verified,
        Some(newest(&copied)),
        "{c:#?}"
    );

    // A copy that holds no snapshot of the source (forgotten there) has nothing to drill.
    let there = vec![newest(&copied).to_hex()];
    backstop_engine::forget::forget_named(&copied, &there, false, "test").unwrap();
    let v = finished(
        &runner,
        JobSpec::Drill {
            source: "shop".into(),
        },
    )
    .await;
    assert_eq!(v.state, "ok", "{}", v.message);
    assert!(v.result.unwrap().get("copies").is_none());

    // A full verification reads every copy; one that is gone fails the job by name.
    back_up_and_settle(&runner, "shop").await;
    let v = finished(&runner, JobSpec::Verify { read_data: true }).await;
    assert_eq!(v.state, "ok", "{}", v.message);
    let result = v.result.unwrap();
    assert_eq!(
        result["copies"][0]["result"]["problems"],
        serde_json::json!([]),
        "{result:#}"
    );
    std::fs::write(offsite.join("config"), "damaged").unwrap();
    let v = finished(&runner, JobSpec::Verify { read_data: false }).await;
    assert_eq!(v.state, "failed", "{}", v.message);
    assert!(v.message.contains(&place), "{}", v.message);
}
