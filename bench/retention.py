#!/usr/bin/env python3
"""Retention bench: 30 simulated days of a shop database, then forget --keep-last 7 --prune.

Repository A gets the base state and one backup after each of 30 simulated business days
(mutate_sqlite.py --day N), 31 snapshots. Repository B, fresh, gets only the states that
`forget --keep-last 7` keeps (days 24 to 30), backed up at the same moments. After
`forget --keep-last 7 --prune` on A, A should be at most 10 % larger than B. Every kept
snapshot of A is then restored and compared byte for byte with the database as it was that
day, and A is verified with --read-data. Standard library only; see bench/README.md.

Usage: cargo build --release && python3 bench/retention.py [--size-mib 1024] [--days 30] [--keep 7]
"""
import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as b  # noqa: E402  (the main bench: helpers and the cached database)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--keep", type=int, default=7)
    ap.add_argument("--workdir", default="/var/tmp/bsbench")
    ap.add_argument("--backstop", default=str(b.REPO_ROOT / "target" / "release" / "backstop"))
    ap.add_argument("--shared", default=str(b.REPO_ROOT.parent / "shared"))
    ap.add_argument("--json", help="also write the raw numbers here")
    args = ap.parse_args()
    exe = Path(args.backstop)
    if not exe.exists():
        print(f"{exe} is missing: run `cargo build --release` first", file=sys.stderr)
        return 2
    shared = Path(args.shared)
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    base = b.prepare_db(args, wd, shared)
    rd = wd / "retention"
    shutil.rmtree(rd, ignore_errors=True)
    (rd / "work").mkdir(parents=True)
    db = rd / "work" / "shop.db"
    shutil.copyfile(base, db)
    repo_a, repo_b, logs = rd / "repo-all", rd / "repo-fresh", rd / "logs"
    env = {}

    def bs(name, *cmd):
        r = b.run([exe, *cmd], rd, env, logs, name)
        if r["rc"] != 0:
            sys.exit(f"backstop {' '.join(map(str, cmd))} failed (exit {r['rc']}); see {logs}")
        return r

    bs("init-a", "init", "--repo", repo_a, "--encryption", "none")
    bs("init-b", "init", "--repo", repo_b, "--encryption", "none")
    start = datetime.datetime(2026, 10, 1, 18, 0, tzinfo=datetime.timezone.utc)
    first_kept = args.days + 1 - args.keep  # days 0..N: N+1 snapshots, the last `keep` are kept
    hashes = {}
    backup_secs = []
    for day in range(0, args.days + 1):
        if day > 0:
            m = subprocess.run([sys.executable, shared / "bench" / "mutate_sqlite.py", db, "--day", str(day)],
                               capture_output=True, text=True)
            if m.returncode != 0:
                sys.exit(f"mutate_sqlite.py --day {day} failed: {m.stderr}")
        when = (start + datetime.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = bs(f"backup-a-{day}", "backup", "--repo", repo_a, "--json", "--time", when, "work/shop.db")
        backup_secs.append(r["seconds"])
        if day >= first_kept:
            bs(f"backup-b-{day}", "backup", "--repo", repo_b, "--json", "--time", when, "work/shop.db")
            hashes[when] = b.file_hash(db)
        b.log(f"day {day}: backup {r['seconds']:.2f}s, repository {b.dir_bytes(repo_a) / b.MIB:.0f} MiB")

    before = b.dir_bytes(repo_a)
    r = bs("forget-prune", "forget", "--repo", repo_a, "--json", "--keep-last", str(args.keep), "--prune")
    out = json.loads(r["stdout"])
    after, fresh = b.dir_bytes(repo_a), b.dir_bytes(repo_b)
    b.log(f"forget --prune: {r['seconds']:.1f}s")

    # Every kept snapshot restores to the database exactly as it was that day.
    snaps = json.loads(bs("snapshots", "snapshots", "--repo", repo_a, "--json")["stdout"])
    wrong = []
    for s in snaps:
        target = rd / "restore" / s["id"][:8]
        bs(f"restore-{s['id'][:8]}", "restore", s["id"], "--repo", repo_a, "--to", target / "shop.db")
        when = s["time"].replace("+00:00", "Z")
        if hashes.get(when) != b.file_hash(target / "shop.db"):
            wrong.append(s["id"][:8])
        shutil.rmtree(target)
    v = b.run([exe, "verify", "--repo", repo_a, "--read-data"], rd, env, logs, "verify")

    prune = out.get("prune") or {}
    rows = [
        ("snapshots before / after", f"{args.days + 1} / {len(snaps)}"),
        ("repository before forget", f"{before / b.MIB:.1f} MiB"),
        ("repository after forget --prune", f"{after / b.MIB:.1f} MiB"),
        (f"fresh repository of the {args.keep} kept states", f"{fresh / b.MIB:.1f} MiB"),
        ("after / fresh", f"{after / fresh:.3f} (target <= 1.10)"),
        ("forget --prune time", f"{r['seconds']:.1f} s (prune itself {prune.get('seconds', 0):.1f} s)"),
        ("packs deleted / repacked / written",
         f"{prune.get('packs_deleted')} / {prune.get('plan', {}).get('repack_packs')} / {prune.get('packs_written')}"),
        ("mean daily backup", f"{sum(backup_secs[1:]) / max(1, len(backup_secs) - 1):.2f} s"),
        ("kept snapshots restored byte for byte", "all" if not wrong and len(snaps) == args.keep else f"WRONG: {wrong}"),
        ("verify --read-data", "clean" if v["rc"] == 0 else f"FAILED (exit {v['rc']})"),
    ]
    print(f"\nretention bench: {args.size_mib} MiB database, {args.days} days, keep-last {args.keep}\n")
    print("| metric | value |\n|---|---|")
    for k, val in rows:
        print(f"| {k} | {val} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"before": before, "after": after, "fresh": fresh,
                                               "forget_prune_seconds": r["seconds"], "prune": prune,
                                               "backup_seconds": backup_secs, "wrong": wrong}, indent=1))
    return 0 if not wrong and v["rc"] == 0 and len(snaps) == args.keep else 1


if __name__ == "__main__":
    sys.exit(main())
