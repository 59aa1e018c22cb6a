#!/usr/bin/env python3
"""Benchmark backstop against restic and borg on many small files (issue 19).

The tree comes from gen_tree.py (`--files` files of 100 B to 6 KB in `--dirs` folders). Per tool
(backstop with a passphrase, restic, borg; each in a fresh repository): init, first backup,
unchanged re-backup (`--repeat` runs, the tools taking turns; median), then `--change` percent
of the files are rewritten (gen_tree.py --change, once for all tools), the changed re-backup,
a restore of the latest snapshot (checked: every relative path, size and SHA-256 must equal the
source's) and the repository size. Before every backup the whole tree is read, so that every
tool starts with it in the page cache (borg drops the pages of the files it read). Standard
library only; reuses run.py's process measurement and helpers.

The cached tree and --change: the tree is generated once into <workdir>/tree-<files> and reused
while <workdir>/tree-<files>.json (written after generation completes) says it is pristine and
was made with the same --files, --dirs and seed. gen_tree.py --change is deterministic (the same
seed rewrites the same files with the same bytes), so running it again on an already changed
tree would rewrite nothing new, and the "changed" backup would measure no change. So the change
is undone after every run instead: before it, this script replays gen_tree.py's --change loop
(without writing) to learn which files it will rewrite, copies those files (with their
modification times) into <workdir>/tree-<files>.orig, marks the tree "changed", runs the change,
and at the end (also after a failure or Ctrl-C) copies the originals back and marks the tree
pristine again. A run interrupted before that puts the originals back at its start; a tree in
any other state (no marker, other parameters, a change that rewrote other files than the replay
predicted) is generated anew.
"""
import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_tree  # noqa: E402  (the change replay uses its paths() and content())
import run as bench_run  # noqa: E402  (process measurement, logging, formatting, Tool)

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = ["backstop (encrypted)", "restic", "borg"]
MIB = bench_run.MIB
GEN_SEED = 1  # the tree
CHANGE_SEED = 2  # the day of edits (gen_tree.py --change --seed)
log = bench_run.log


class TreeTool(bench_run.Tool):
    """run.py's Tool (repository, restore dir, environment) with this scenario's command lines."""

    def __init__(self, name, exe, wd, tree):
        super().__init__(name, exe, wd)
        self.tree = tree

    def cmd(self, step, label=None):
        e, r, tree = self.exe, self.repo, self.tree
        if self.name.startswith("backstop"):
            return {"init": [e, "init", "--repo", r, "--encryption", "passphrase"],
                    "backup": [e, "backup", "--repo", r, "--quiet", tree],
                    "restore": [e, "restore", "latest", "--repo", r, "--to", self.restore_dir]}[step]
        if self.name == "restic":
            return [e, "--cache-dir", self.wd / "cache" / "restic", "-r", r] + {
                "init": ["init"], "backup": ["backup", "-q", tree],
                "restore": ["restore", "latest", "--target", self.restore_dir]}[step]
        return {"init": [e, "init", "-e", "repokey", r],
                "backup": [e, "create", f"{r}::{label}", tree],
                "restore": [e, "extract", f"{r}::{label}"]}[step]  # run with cwd = restore dir


# --- the cached tree -------------------------------------------------------------------------

def read_marker(marker):
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}


def write_marker(marker, state):
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, marker)


def tree_paths(wd, files):
    return wd / f"tree-{files}", wd / f"tree-{files}.json", wd / f"tree-{files}.orig"


def revert_change(tree, marker, orig):
    """Copies the files saved before the change back into the tree; marks it pristine."""
    n = 0
    for root, _d, files in os.walk(orig):
        for f in files:
            src = Path(root) / f
            shutil.copy2(src, tree / src.relative_to(orig))
            n += 1
    write_marker(marker, dict(read_marker(marker), state="pristine"))
    shutil.rmtree(orig, ignore_errors=True)
    log(f"put back the {n} files the change had rewritten; {tree.name} is pristine again")


def prepare_tree(args, wd):
    """Returns the pristine tree, generating it if no usable cached one exists."""
    tree, marker, orig = tree_paths(wd, args.files)
    want = {"files": args.files, "dirs": args.dirs, "seed": GEN_SEED}
    state = read_marker(marker)
    same = tree.is_dir() and all(state.get(k) == v for k, v in want.items())
    if same and state.get("state") == "changed" and orig.is_dir():
        log(f"{tree.name} was left changed by an interrupted run")
        revert_change(tree, marker, orig)
        state = read_marker(marker)
    if same and state.get("state") == "pristine":
        shutil.rmtree(orig, ignore_errors=True)  # a copy of originals begun by an interrupted run
        log(f"reusing {tree} ({state.get('generated', '?')})")
        return tree
    marker.unlink(missing_ok=True)
    shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(orig, ignore_errors=True)
    log(f"generating {tree} ({args.files} files in {args.dirs} folders; takes a while for large trees)")
    out = subprocess.run([sys.executable, gen_tree.__file__, tree, "--files", str(args.files),
                          "--dirs", str(args.dirs), "--seed", str(GEN_SEED)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"gen_tree.py failed:\n{out.stderr}")
    write_marker(marker, dict(want, state="pristine", generated=out.stdout.strip()))
    log(f"gen_tree: {out.stdout.strip()}")
    return tree


def touched_by_change(args):
    """The files `gen_tree.py --change PCT --seed CHANGE_SEED` will rewrite: its loop, replayed
    without writing (content() must run too, since it draws from the same generator)."""
    rng = random.Random(CHANGE_SEED)
    touched = []
    for p in gen_tree.paths(args.files, args.dirs):
        if rng.random() * 100 < args.change:
            gen_tree.content(rng, rng.randint(100, 6000))
            touched.append(p)
    return touched


def apply_change(args, tree, marker, orig):
    """Saves the files the change will rewrite, marks the tree changed, runs the change.
    Returns gen_tree's report line."""
    touched = touched_by_change(args)
    shutil.rmtree(orig, ignore_errors=True)
    for p in touched:
        (orig / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / p, orig / p)
    write_marker(marker, dict(read_marker(marker), state="changed"))
    log(f"rewriting {args.change:g}% of the files: gen_tree.py --change {args.change:g} --seed {CHANGE_SEED}")
    out = subprocess.run([sys.executable, gen_tree.__file__, tree, "--files", str(args.files),
                          "--dirs", str(args.dirs), "--seed", str(CHANGE_SEED), "--change", str(args.change)],
                         capture_output=True, text=True)
    report = out.stdout.strip()
    if out.returncode != 0 or not report.startswith(f"rewrote {len(touched)} files"):
        # The replay no longer matches gen_tree.py: the saved files cannot undo the change.
        write_marker(marker, dict(read_marker(marker), state="dirty"))
        log(f"gen_tree.py --change: {report or out.stderr.strip()} (expected {len(touched)} files); "
            f"the tree will be generated anew next run")
        if out.returncode != 0:
            sys.exit("gen_tree.py --change failed")
    log(f"gen_tree: {report}")
    return report


def warm_tree(tree):
    """Reads every file of the tree so that it is in the page cache (borg drops the pages of the
    files it read). Returns (files, folders, bytes)."""
    n_files = n_dirs = total = 0
    for root, dirs, files in os.walk(tree):
        n_dirs += len(dirs)
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                while chunk := fh.read(1 << 20):
                    total += len(chunk)
            n_files += 1
    return n_files, n_dirs, total


def manifest(root):
    """Sorted (relative path, size, sha256) of every file under root."""
    out = []
    for dirpath, _d, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out.append((os.path.relpath(p, root), os.lstat(p).st_size, bench_run.file_hash(p)))
    return sorted(out)


def restored_root(t):
    """Where the tree landed in the restore dir: backstop keeps its top-level name, restic and
    borg recreate the absolute path."""
    for cand in (t.restore_dir / t.tree.name, t.restore_dir / str(t.tree).lstrip("/")):
        if cand.is_dir():
            return cand
    return None


def diff_manifests(want, got):
    w = {p: rest for p, *rest in want}
    g = {p: rest for p, *rest in got}
    missing, extra = w.keys() - g.keys(), g.keys() - w.keys()
    differ = [p for p in w.keys() & g.keys() if w[p] != g[p]]
    return f"{len(missing)} missing, {len(extra)} extra, {len(differ)} with other content"


# --- report ----------------------------------------------------------------------------------

def machine_info(tools):
    m = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
         "nproc": os.cpu_count(),
         "versions": {t.name.split()[0]: bench_run.version(t) for t in tools}}
    try:
        cpu = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        mem = [ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")]
        m.update(cpu=cpu[0] if cpu else "?", mem_gib=round(int(mem[0]) / 2**20, 1))
    except OSError:
        pass
    return m


def metrics(change):
    return [  # (row label, key in results, scale)
        ("first backup s", "first_s", 1), ("first backup peak RSS MiB", "first_rss_kib", 1024),
        ("unchanged re-backup s", "unchanged_s", 1), ("unchanged RSS MiB", "unchanged_rss_kib", 1024),
        (f"{change:g}% changed re-backup s", "changed_s", 1), ("changed RSS MiB", "changed_rss_kib", 1024),
        ("restore s", "restore_s", 1), ("restore RSS MiB", "restore_rss_kib", 1024),
        ("repo size MiB", "repo_bytes", MIB),
    ]


def table(names, res, rows):
    """run.py's table() for this scenario's rows: value (ratio vs restic), FAILED/WRONG in bold."""
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, scale in rows:
        ref = res.get("restic", {}).get(key)
        cells = []
        for n in names:
            v = res[n].get(key)
            if not isinstance(v, (int, float)):
                cells.append(f"**{v or 'FAILED'}**")
                continue
            cell = bench_run.fmt(v / scale)
            if n != "restic" and isinstance(ref, (int, float)) and ref / scale >= 0.005:
                cell += f" ({v / ref:.2f}x)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the benchmark ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=300_000, help="files in the tree (default 300000)")
    ap.add_argument("--dirs", type=int, default=6_000, help="folders in the tree (default 6000)")
    ap.add_argument("--change", type=float, default=5.0,
                    help="percent of the files rewritten before the changed re-backup (default 5)")
    ap.add_argument("--workdir", default="/var/tmp/bsbench-tree", help="scratch dir; caches tree-<files>")
    ap.add_argument("--backstop", help="backstop binary (default <repo>/target/release/backstop)")
    ap.add_argument("--skip", default="", help="comma-separated tools to leave out: backstop,restic,borg")
    ap.add_argument("--json", help="write all raw numbers to this file")
    ap.add_argument("--keep", action="store_true", help="keep repositories, restore dirs and caches")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of the unchanged re-backup, tools taking turns; the table shows the median (default 1)")
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"backstop", "restic", "borg"}:
        ap.error(f"--skip: unknown tool(s) {', '.join(sorted(skip - {'backstop', 'restic', 'borg'}))}")
    if args.files < 1 or args.dirs < 1 or not 0 < args.change <= 100:
        ap.error("--files and --dirs must be positive, --change in (0, 100]")
    wd = Path(args.workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)

    tools = bench_run.find_tools(TOOLS, skip, args.backstop)

    tree = prepare_tree(args, wd)
    bench(args, wd, tree, [TreeTool(name, exe, wd, tree) for name, exe in tools])


def bench(args, wd, tree, tools):
    _tree, marker, orig = tree_paths(wd, args.files)
    for d in ["repos", "restore", "cache", "logs"]:
        shutil.rmtree(wd / d, ignore_errors=True)
    (wd / "repos").mkdir()
    machine = machine_info(tools)
    n_files, n_dirs, n_bytes = warm_tree(tree)
    info = {"path": str(tree), "files": n_files, "folders": n_dirs, "mib": round(n_bytes / MIB, 1),
            "gen_args": {"files": args.files, "dirs": args.dirs, "seed": GEN_SEED},
            "change_args": {"change_pct": args.change, "seed": CHANGE_SEED}}
    log(f"tree: {n_files} files in {n_dirs} folders, {n_bytes / MIB:.1f} MiB")

    res = {t.name: {"commands": {}} for t in tools}
    broken = set()

    def step(t, key, cmd_step, label=None):
        """Runs one step of tool t; records seconds (or FAILED), peak RSS and bytes added."""
        r = res[t.name]
        if t.name in broken:
            r[key + "_s"] = "FAILED"
            return None
        if cmd_step == "backup":
            warm_tree(tree)
        cwd = t.restore_dir if (t.name == "borg" and cmd_step == "restore") else wd
        before = bench_run.dir_bytes(t.repo)
        log(f"{t.name}: {key} ...")
        out = bench_run.run(t.cmd(cmd_step, label), cwd, t.env, wd / "logs", f"{t.slug}-{key}")
        added = bench_run.dir_bytes(t.repo) - before
        r["commands"][key] = {k: out[k] for k in ("rc", "seconds", "maxrss_kib")} | {"added_bytes": added}
        if out["rc"] != 0:
            r[key + "_s"] = "FAILED"
            return None
        r[key + "_s"], r[key + "_rss_kib"], r[key + "_added"] = out["seconds"], out["maxrss_kib"], added
        log(f"{t.name}: {key} {out['seconds']:.2f}s, +{added / MIB:.1f} MiB, rss {out['maxrss_kib'] / 1024:.0f} MiB")
        return out

    for t in tools:
        if step(t, "init", "init") is None:
            broken.add(t.name)
    for t in tools:
        step(t, "first", "backup", "day0")

    n = max(1, args.repeat)
    for i in range(n):  # the tools take turns, so that drift of the machine hits all alike
        for t in tools:
            step(t, "unchanged" if i == 0 else f"unchanged_{i + 1}", "backup", f"unchanged-{i + 1}")
    for t in tools:
        r = res[t.name]
        keys = ["unchanged"] + [f"unchanged_{i + 1}" for i in range(1, n)]
        runs = [r.get(k + "_s") for k in keys]
        if all(isinstance(v, float) for v in runs):
            r["unchanged_s"], r["unchanged_runs"] = statistics.median(runs), runs
            r["unchanged_rss_kib"] = max(r[k + "_rss_kib"] for k in keys)  # the largest of the runs
        else:
            r["unchanged_s"] = "FAILED"
            r.pop("unchanged_rss_kib", None)

    change_report = apply_change(args, tree, marker, orig)
    try:
        info["change"] = change_report
        for t in tools:
            step(t, "changed", "backup", "changed")

        log("hashing the source tree (the restores are checked against it)")
        want = manifest(tree)
        for t in tools:
            shutil.rmtree(t.restore_dir, ignore_errors=True)
            t.restore_dir.mkdir(parents=True)
            if step(t, "restore", "restore", "changed") is None:
                continue
            root = restored_root(t)
            got = manifest(root) if root else []
            ok = got == want
            res[t.name]["commands"]["restore"]["content_ok"] = ok
            if not ok:
                why = diff_manifests(want, got) if root else f"no {t.tree.name} under {t.restore_dir}"
                log(f"!!! {t.name}: restored tree is WRONG ({why}) !!!")
                res[t.name]["restore_s"] = "WRONG"
            else:
                log(f"{t.name}: restored tree matches the source ({len(want)} files)")
    finally:
        if read_marker(marker).get("state") == "changed":
            revert_change(tree, marker, orig)

    for t in tools:
        res[t.name]["repo_bytes"] = bench_run.dir_bytes(t.repo) if t.name not in broken else "FAILED"

    print(f"# backstop benchmark: many small files, {machine['date']}\n")
    print(f"- machine: {machine['nproc']} cores ({machine.get('cpu', '?')}), {machine.get('mem_gib', '?')} GiB RAM")
    for name, v in machine["versions"].items():
        print(f"- {name}: {v}")
    print(f"- tree: {n_files} files in {n_dirs} folders, {info['mib']} MiB of content "
          f"(gen_tree.py --files {args.files} --dirs {args.dirs} --seed {GEN_SEED}); "
          f"page cache warm before every backup")
    print(f"- change before the changed re-backup: gen_tree.py --change {args.change:g} --seed {CHANGE_SEED}: "
          f"{change_report}")
    setup = {"backstop (encrypted)": "backstop with a passphrase", "restic": "restic",
             "borg": "borg (-e repokey)"}
    print(f"- {', '.join(setup[t.name] for t in tools)}: default settings, each in a fresh repository")
    print(f"- unchanged re-backup: median of {n} run(s), the tools taking turns (every run in --json); "
          f"restores checked file by file (path, size, SHA-256)\n")
    print(table([t.name for t in tools], res, metrics(args.change)))
    if "restic" in res:
        print("\n(ratio) = value / restic value; lower is better for every row.")

    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "tree": info, "results": res}, indent=2) + "\n")
        log(f"raw numbers written to {args.json}")
    if not args.keep:
        for d in ["repos", "restore", "cache"]:
            shutil.rmtree(wd / d, ignore_errors=True)
    bad = any(v in ("FAILED", "WRONG") for r in res.values() for v in r.values() if isinstance(v, str))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
