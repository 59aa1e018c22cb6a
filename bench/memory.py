#!/usr/bin/env python3
"""Peak memory of backstop backups of the generated SQLite shop database.

For a database of --size-mib: a full backup into a fresh repository, one simulated business
day (mutate_sqlite.py --day 1), and the day-1 backup (and with --days N, days 2 to N, each a
delta against the full backup's tree carrying every change since); prints each backup's peak
RSS (the child's ru_maxrss) and wall time. Several --backstop binaries take turns within each of the
--repeat rounds, so that a before/after comparison sees the same machine load. Standard
library only; see bench/README.md.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the same database, logging and process measurement)

MIB = 2**20


def one_round(exe, base, wd, shared, tag, days):
    """Full and day-1 backup with one binary, each into a fresh repository; returns the two runs."""
    work, repo = wd / "work", wd / "repos" / "memory"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copyfile(base, work / "shop.db")
    logs = wd / "logs"
    init = bench.run([exe, "init", "--repo", repo, "--encryption", "none"], wd, {}, logs, f"mem-{tag}-init")
    if init["rc"] != 0:
        sys.exit("init failed")
    backup = [exe, "backup", "--repo", repo, "--json", "work/shop.db"]
    out = {}
    bench.warm(work / "shop.db")
    out["full"] = bench.run(backup, wd, {}, logs, f"mem-{tag}-full")
    for day in range(1, days + 1):
        mutate = [sys.executable, shared / "bench" / "mutate_sqlite.py", work / "shop.db", "--day", str(day)]
        if subprocess.run([str(c) for c in mutate], stdout=sys.stderr).returncode != 0:
            sys.exit("mutate_sqlite.py failed")
        bench.warm(work / "shop.db")
        out[f"day{day}"] = bench.run(backup, wd, {}, logs, f"mem-{tag}-day{day}")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the generated database")
    ap.add_argument("--workdir", default="/var/tmp/bsbench", help="scratch space (and the cached database)")
    ap.add_argument("--backstop", action="append",
                    help="backstop binary; repeat to compare binaries (default target/release/backstop)")
    ap.add_argument("--shared", help="folder with bench/gen_sqlite.py (default <repo>/../shared)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the binaries take turns in each")
    ap.add_argument("--days", type=int, default=1, help="simulated days after the full backup (default 1)")
    args = ap.parse_args()
    wd = Path(args.workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared).resolve() if args.shared else bench.REPO_ROOT.parent / "shared"
    exes = [Path(p).resolve() for p in (args.backstop or [bench.REPO_ROOT / "target" / "release" / "backstop"])]
    for exe in exes:
        if not exe.exists():
            sys.exit(f"{exe} not found: build it with `cargo build --release`")
    base = bench.prepare_db(args, wd, shared)
    results = {str(e): {"full": [], **{f"day{d}": [] for d in range(1, args.days + 1)}} for e in exes}
    for r in range(args.repeat):
        for i, exe in enumerate(exes):
            got = one_round(exe, base, wd, shared, f"{i}-{r}", args.days)
            for step, res in got.items():
                if res["rc"] != 0:
                    sys.exit(f"{exe} {step} backup failed (exit {res['rc']}); see {wd / 'logs'}")
                results[str(exe)][step].append(res)
                bench.log(f"{exe} round {r + 1} {step}: {res['maxrss_kib'] / 1024:.1f} MiB peak RSS, "
                          f"{res['seconds']:.2f} s")
    size = base.stat().st_size / MIB
    print(f"database {size:.0f} MiB, {os.cpu_count()} cores, {args.repeat} round(s); peak RSS MiB and "
          f"wall s per run, median last")
    print("| binary | step | peak RSS MiB | wall s |")
    print("|---|---|---|---|")
    for exe, steps in results.items():
        for step, runs in steps.items():
            rss = [x["maxrss_kib"] / 1024 for x in runs]
            secs = [x["seconds"] for x in runs]
            print(f"| {exe} | {step} | {' '.join(f'{v:.1f}' for v in rss)} (max {max(rss):.1f}) | "
                  f"{' '.join(f'{v:.2f}' for v in secs)} (median {statistics.median(secs):.2f}) |")


if __name__ == "__main__":
    main()
