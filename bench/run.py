#!/usr/bin/env python3
"""Benchmark backstop against restic and borg on a realistic SQLite shop database.

Full backup, one simulated business day (mutate_sqlite.py --day 1), day-1 incremental,
unchanged re-backup, restore of the latest snapshot (checked byte for byte), verify of
all data, repository size. Standard library only; see bench/README.md.
"""
import argparse
import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import s3server  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password"
TOOLS = ["backstop", "backstop (encrypted)", "restic", "borg"]
MIB = 2**20
AS_FILE = False  # --as-file: backstop backs the database up as a plain file (the engine alone)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def dir_bytes(path):
    return sum(os.lstat(os.path.join(root, f)).st_size for root, _d, files in os.walk(path) for f in files)


def file_hash(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def generator_running():
    """True if any process has gen_sqlite.py on its command line."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if b"gen_sqlite.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            pass
    return False


def warm(path):
    """Reads a file whole so that it is in the page cache: borg drops the pages of the files it
    read (posix_fadvise DONTNEED), which would leave the next tool to read from disk."""
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def run(cmd, cwd, env, logdir, name):
    """Run cmd, return dict(rc, seconds, maxrss_kib, stdout, stderr). Output goes to log files."""
    logdir.mkdir(parents=True, exist_ok=True)
    out_p, err_p = logdir / f"{name}.out", logdir / f"{name}.err"
    full_env = dict(os.environ, **env)
    os.sync()  # do not let one tool's dirty pages be written back during the next tool's timing
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=full_env,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except OSError as e:
            return {"rc": 127, "seconds": 0.0, "maxrss_kib": 0, "stdout": "", "stderr": str(e)}
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    res = {"rc": p.returncode, "seconds": secs, "maxrss_kib": ru.ru_maxrss,
           "stdout": out_p.read_text(errors="replace"), "stderr": err_p.read_text(errors="replace")}
    if res["rc"] != 0:
        tail = "\n".join(res["stderr"].strip().splitlines()[-15:])
        log(f"FAILED ({res['rc']}): {' '.join(map(str, cmd))}\n{tail}")
    return res


class Tool:
    """Command lines for one tool; every command runs with cwd=workdir."""

    def __init__(self, name, exe, wd, s3=None):
        self.name, self.exe, self.wd, self.s3 = name, exe, wd, s3
        self.slug = name.replace(" (encrypted)", "-enc")
        self.repo = wd / "repos" / self.slug
        if s3:  # a prefix of the bench bucket on the local S3 server (run.py --s3)
            self.repo = (f"s3://{s3server.BUCKET}/{self.slug}" if name.startswith("backstop")
                         else f"s3:{s3.endpoint}/{s3server.BUCKET}/{self.slug}")
        self.restore_dir = wd / "restore" / self.slug
        self.env = {}
        if name == "backstop (encrypted)":
            self.env = {"BACKSTOP_PASSWORD": PASSWORD}
        elif name == "restic":
            self.env = {"RESTIC_PASSWORD": PASSWORD}
        elif name == "borg":
            self.env = {"BORG_PASSPHRASE": PASSWORD, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
                        "BORG_BASE_DIR": str(wd / "cache" / "borg")}  # own cache/security dir per run
        if name.startswith("backstop"):  # a remote repository's local cache, fresh each run like restic's
            self.env["BACKSTOP_CACHE_DIR"] = str(wd / "cache" / "backstop")
        if s3:
            self.env = dict(self.env, **s3.env())

    def stored_bytes(self):
        """What the repository holds now (in S3 mode: the server's data, see s3server.py)."""
        return self.s3.stored_bytes() if self.s3 else dir_bytes(self.repo)

    def cmd(self, step, label=None):
        e, r = self.exe, self.repo
        if self.name.startswith("backstop"):
            enc = "passphrase" if "BACKSTOP_PASSWORD" in self.env else "none"
            return {"init": [e, "init", "--repo", r, "--encryption", enc],
                    "backup": [e, "backup", "--repo", r, "--json", "work/shop.db"] + (["--as-file"] if AS_FILE else []),
                    "restore": [e, "restore", "latest", "--repo", r, "--to", self.restore_dir],
                    "verify": [e, "verify", "--repo", r, "--read-data"],
                    # restore into a scratch file, integrity_check, foreign_key_check, row counts
                    "drill": [e, "verify", "--repo", r, "--restore-test", "--latest"]}[step]
        # The other tools have no restore drill: the same work by hand is a restore into a
        # scratch directory followed by the same SQLite checks.
        drill_dir = self.wd / "restore" / (self.slug + "-drill")
        check = (f"f=$(find {drill_dir} -name shop.db | head -n 1) && "
                 f"sqlite3 \"$f\" 'PRAGMA integrity_check; PRAGMA foreign_key_check;' | grep -qx ok")
        if self.name == "restic":
            base = [e, "--cache-dir", self.wd / "cache" / "restic", "-r", r]
            if step == "drill":
                return ["sh", "-c", f"rm -rf {drill_dir} && {' '.join(map(str, base))} restore latest "
                                    f"--target {drill_dir} >/dev/null && {check}"]
            return base + {"init": ["init"], "backup": ["backup", "work/shop.db"],
                           "restore": ["restore", "latest", "--target", self.restore_dir],
                           "verify": ["check", "--read-data"]}[step]
        if step == "drill":
            return ["sh", "-c", f"rm -rf {drill_dir} && mkdir -p {drill_dir} && cd {drill_dir} && "
                                f"{e} extract {r}::{label} && {check}"]
        return {"init": [e, "init", "-e", "repokey", r],
                "backup": [e, "create", f"{r}::{label}", "work/shop.db"],
                "restore": [e, "extract", f"{r}::{label}"],  # run with cwd = restore dir
                "verify": [e, "check", "--verify-data", r]}[step]


def version(tool):
    args = {"restic": ["version"]}.get(tool.name, ["--version"])
    try:
        out = subprocess.run([tool.exe, *args], capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


def prepare_db(args, wd, shared):
    base = wd / f"shop-{args.size_mib}.db"
    wal = Path(str(base) + "-wal")
    # An empty WAL holds nothing: a read-only reader (a backup of this file by hand) leaves one.
    def pending():
        try:
            return wal.stat().st_size > 0
        except FileNotFoundError:
            return False

    if pending():
        log(f"{wal} exists: another process is still writing {base.name}; waiting for gen_sqlite.py")
        t0 = time.time()
        while pending() and generator_running():
            if time.time() - t0 > 25:
                log(f"still waiting for gen_sqlite.py ({(time.time() - t0) / 60:.0f} min)")
            time.sleep(30)
        if pending():
            sys.exit(f"{wal} is still there but gen_sqlite.py is not running: the generation was "
                     f"probably interrupted. Delete {base}* and rerun.")
    if base.exists():
        log(f"reusing {base} ({base.stat().st_size / MIB:.1f} MiB)")
        return base
    tmp = wd / f"shop-{args.size_mib}.partial.db"
    for p in wd.glob(tmp.name + "*"):
        p.unlink()
    log(f"generating {base} ({args.size_mib} MiB; this takes a while for large sizes)")
    subprocess.run([sys.executable, shared / "bench" / "gen_sqlite.py", tmp, "--size-mib", str(args.size_mib)],
                   check=True, stdout=sys.stderr)
    tmp.rename(base)
    return base


def fmt(v):
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


METRICS = [  # (row label, key in results, scale)
    ("full backup s", "full_s", 1), ("full stored MiB", "full_added", MIB),
    ("day-1 incremental s", "day1_s", 1), ("day-1 added MiB", "day1_added", MIB),
    ("unchanged re-backup s", "day1b_s", 1), ("unchanged added MiB", "day1b_added", MIB),
    ("restore s", "restore_s", 1), ("restore drill s", "drill_s", 1), ("verify (all data) s", "verify_s", 1),
    ("peak RSS MiB", "peak_rss_kib", 1024), ("repo size MiB", "repo_bytes", MIB),
]


def table(tools, res):
    names = [t.name for t in tools]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, scale in METRICS:
        cells = []
        ref = res.get("restic", {}).get(key)
        for n in names:
            v = res[n].get(key)
            if isinstance(v, str) or v is None:
                cells.append(f"**{v or 'FAILED'}**")
                continue
            cell = fmt(v / scale)
            if n != "restic" and isinstance(ref, (int, float)) and ref / scale >= 0.005:
                cell += f" ({v / ref:.2f}x)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def find_tools(names, skip, backstop):
    """(name, executable) of each tool of `names` not in `skip`: backstop at `backstop` (default
    target/release/backstop; exits with a hint when missing), the others on PATH (left out with
    a log line when not installed). Exits when none is left."""
    tools = []
    for name in names:
        short = name.split()[0]
        if short in skip:
            continue
        if short == "backstop":
            exe = Path(backstop or REPO_ROOT / "target" / "release" / "backstop").resolve()
            if not os.access(exe, os.X_OK):
                print(f"backstop binary not found at {exe}.\nBuild it first:  cd {REPO_ROOT} && "
                      "cargo build --release\n(or pass --backstop PATH, or --skip backstop)", file=sys.stderr)
                sys.exit(2)
        else:
            exe = shutil.which(short)
            if not exe:
                log(f"skipping {short}: not installed (apt-get install -y {'borgbackup' if short == 'borg' else short})")
                continue
        tools.append((name, exe))
    if not tools:
        sys.exit("no tools left to benchmark")
    return tools


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="database size to generate (default 1024)")
    ap.add_argument("--workdir", default="/var/tmp/bsbench", help="scratch dir; caches shop-<N>.db")
    ap.add_argument("--backstop", help="backstop binary (default <repo>/target/release/backstop)")
    ap.add_argument("--shared", help="shared folder with bench/gen_sqlite.py (default <repo>/../shared)")
    ap.add_argument("--skip", default="", help="comma-separated tools to leave out: backstop,restic,borg")
    ap.add_argument("--json", help="write all raw numbers to this file")
    ap.add_argument("--keep", action="store_true", help="keep repositories and restore dirs")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each repeatable step (unchanged re-backup, restore, drill, verify), "
                         "tools taking turns; the table shows the median (default 3)")
    ap.add_argument("--s3", action="store_true",
                    help="keep every repository in a bucket of a local S3 server (SeaweedFS, installed by "
                         "scripts/test) instead of on disk; borg, which has no S3 support, is left out")
    ap.add_argument("--as-file", action="store_true",
                    help="back the database up with backstop as a plain file instead of through SQLite")
    args = ap.parse_args()
    global AS_FILE
    AS_FILE = args.as_file
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.s3:
        skip.add("borg")
    if skip - {"backstop", "restic", "borg"}:
        ap.error(f"--skip: unknown tool(s) {', '.join(sorted(skip - {'backstop', 'restic', 'borg'}))}")
    wd = Path(args.workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    shared = Path(args.shared).resolve() if args.shared else REPO_ROOT.parent / "shared"
    if not (shared / "bench" / "gen_sqlite.py").exists():
        sys.exit(f"{shared}/bench/gen_sqlite.py not found; pass --shared DIR")

    tools = find_tools(TOOLS, skip, args.backstop)
    server = s3server.Server(log) if args.s3 else None
    try:
        bench(args, wd, shared, [Tool(name, exe, wd, server) for name, exe in tools], server)
    finally:
        if server:
            server.stop()


def bench(args, wd, shared, tools, server):

    base = prepare_db(args, wd, shared)
    for d in ["repos", "restore", "cache", "work", "logs"]:
        shutil.rmtree(wd / d, ignore_errors=True)
    (wd / "work").mkdir()
    work_db = wd / "work" / "shop.db"
    log(f"copying {base.name} -> {work_db}")
    shutil.copyfile(base, work_db)

    machine = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "nproc": os.cpu_count(), "db_mib": round(base.stat().st_size / MIB, 1),
               "versions": {t.name: version(t) for t in tools if t.name != "backstop (encrypted)"}}
    try:
        cpu = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        mem = [ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")]
        machine.update(cpu=cpu[0] if cpu else "?", mem_gib=round(int(mem[0]) / 2**20, 1))
    except OSError:
        pass

    res = {t.name: {"commands": {}} for t in tools}
    broken = set()

    def step(t, key, cmd_step, label=None, cwd=None):
        """Run one step of tool t; store seconds (or 'FAILED') and bytes added under key."""
        r = res[t.name]
        if t.name in broken:
            r[key + "_s"] = "FAILED"
            return None
        if cmd_step == "backup" and work_db.exists():
            warm(work_db)
        before = t.stored_bytes()
        log(f"{t.name}: {key} ...")
        out = run(t.cmd(cmd_step, label), cwd or wd, t.env, wd / "logs", f"{t.slug}-{key}")
        after = t.stored_bytes()
        r["commands"][key] = {k: out[k] for k in ("rc", "seconds", "maxrss_kib")} | {"added_bytes": after - before}
        if t.name.startswith("backstop") and cmd_step == "backup" and out["rc"] == 0:
            try:  # keep the tool's own report in the raw numbers
                r["commands"][key]["report"] = json.loads(out["stdout"].strip().splitlines()[-1])
            except (ValueError, IndexError):
                log(f"{t.name}: backup --json did not print a JSON object")
        r["peak_rss_kib"] = max(r.get("peak_rss_kib", 0), out["maxrss_kib"])
        r["stored_bytes"] = r.get("stored_bytes", 0) + (after - before)
        if out["rc"] != 0:
            r[key + "_s"] = "FAILED"
            if cmd_step != "verify":
                r[key + "_added"] = "FAILED"
            return None
        r[key + "_s"], r[key + "_added"] = out["seconds"], after - before
        log(f"{t.name}: {key} {out['seconds']:.2f}s, +{(after - before) / MIB:.1f} MiB, "
            f"rss {out['maxrss_kib'] / 1024:.0f} MiB")
        return out

    for t in tools:
        if not server:
            t.repo.parent.mkdir(parents=True, exist_ok=True)  # each tool's init creates its own repo dir
        if step(t, "init", "init") is None:
            broken.add(t.name)
    for t in tools:
        step(t, "full", "backup", "day0")
    if shutil.which("sqlite3"):  # what a user would do by hand: a consistent copy, no history
        log("sqlite3 .backup of work/shop.db ...")
        out = run(["sqlite3", "work/shop.db", ".backup work/copy.db"], wd, {}, wd / "logs", "sqlite3-backup")
        machine["sqlite3_backup_s"] = round(out["seconds"], 2) if out["rc"] == 0 else "FAILED"
        (wd / "work" / "copy.db").unlink(missing_ok=True)

    log("mutating work/shop.db: day 1")
    m = subprocess.run([sys.executable, shared / "bench" / "mutate_sqlite.py", work_db, "--day", "1"],
                       capture_output=True, text=True)
    if m.returncode != 0:
        sys.exit(f"mutate_sqlite.py failed:\n{m.stderr}")
    log(f"mutate: {m.stdout.strip()}")
    machine["db_day1_mib"] = round(work_db.stat().st_size / MIB, 1)
    want = file_hash(work_db)

    for t in tools:
        step(t, "day1", "backup", "day1")

    def repeated(key, cmd_step, label=None, prep=None, check=None):
        """Runs a repeatable step args.repeat times, the tools taking turns (so drift of the
        machine hits all alike); keeps every run in the raw numbers under key, key_2, ...; the
        table shows the median time and the first run's bytes."""
        n = max(1, args.repeat)
        for i in range(n):
            k = key if i == 0 else f"{key}_{i + 1}"
            for t in tools:
                if prep:
                    prep(t)
                # Each repeated backup is a new archive for borg; restores and drills read day1b.
                lab = f"{label}-{i + 1}" if (cmd_step == "backup" and i > 0) else label
                out = step(t, k, cmd_step, lab, cwd=t.restore_dir if (t.name == "borg" and cmd_step == "restore") else None)
                if out is not None and check:
                    check(t, k)
        for t in tools:
            r = res[t.name]
            runs = [r.get(f"{key}_s")] + [r.get(f"{key}_{i + 1}_s") for i in range(1, n)]
            if all(isinstance(v, (int, float)) for v in runs):
                r[key + "_s"] = statistics.median(runs)
                r[key + "_runs"] = runs
            elif any(v == "WRONG" for v in runs):
                r[key + "_s"] = "WRONG"
            else:
                r[key + "_s"] = "FAILED"

    def clear_restore(t):
        shutil.rmtree(t.restore_dir, ignore_errors=True)
        t.restore_dir.mkdir(parents=True, exist_ok=True)

    def check_restore(t, k):
        found = [Path(rt) / "shop.db" for rt, _d, fs in os.walk(t.restore_dir) if "shop.db" in fs]
        got = file_hash(found[0]) if len(found) == 1 else None
        res[t.name]["commands"][k]["sha256_ok"] = got == want
        if got != want:
            why = f"{len(found)} files named shop.db" if len(found) != 1 else "content differs"
            log(f"!!! {t.name}: restored file is WRONG ({why}) !!!")
            res[t.name][k + "_s"] = "WRONG"

    repeated("day1b", "backup", "day1b")
    repeated("restore", "restore", "day1b", prep=clear_restore, check=check_restore)
    repeated("drill", "drill", "day1b")
    repeated("verify", "verify")
    for t in tools:
        size = res[t.name]["stored_bytes"] if server else dir_bytes(t.repo)
        res[t.name]["repo_bytes"] = size if t.name not in broken else "FAILED"

    where = f" (repositories in a local S3 server: {server.endpoint})" if server else ""
    print(f"# backstop benchmark, {machine['date']}{where}\n")
    print(f"- machine: {machine['nproc']} cores ({machine.get('cpu', '?')}), {machine.get('mem_gib', '?')} GiB RAM")
    for n, v in machine["versions"].items():
        print(f"- {n}: {v}")
    print(f"- database: {machine['db_mib']} MiB SQLite (WAL mode), {machine['db_day1_mib']} MiB after day 1; "
          f"page cache warm for every tool")
    print(f"- unchanged re-backup, restore, drill and verify: median of {max(1, args.repeat)} runs, "
          f"the tools taking turns (every run in --json)\n")
    if "sqlite3_backup_s" in machine:
        print(f"- sqlite3 `.backup` of the same database (a plain consistent copy): {machine['sqlite3_backup_s']} s\n")
    print(table(tools, res))
    if "restic" in res:
        print("\n(ratio) = value / restic value; lower is better for every row.")

    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "mutate": m.stdout.strip(),
                                               "results": res}, indent=2) + "\n")
        log(f"raw numbers written to {args.json}")
    if not args.keep:
        for d in ["repos", "restore", "cache", "work"]:
            shutil.rmtree(wd / d, ignore_errors=True)
    bad = any(v in ("FAILED", "WRONG") for r in res.values() for v in r.values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
