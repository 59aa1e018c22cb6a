#!/usr/bin/env python3
"""A tree of many small files, as an application folder or a file server holds them (issue 19).

`python3 bench/gen_tree.py DIR [--files 300000] [--dirs 6000] [--seed 1]` writes FILES files of
100 B to 6 KB into DIRS folders two levels deep (`d0042/s07/f000123.txt`), half of them text
(compressible, like configuration and exported files), half random bytes (like attachments
that are already compressed). The same seed writes the same tree. `--change PERCENT` instead
rewrites that share of an existing tree's files (a day of edits).

Standard library only.
"""

import argparse
import os
import random
import sys

WORDS = (
    "order invoice customer stock price total item supplier delivery address note status "
    "paid open closed shipped returned quantity discount tax date account ledger entry"
).split()


def content(rng: random.Random, size: int) -> bytes:
    if rng.random() < 0.5:
        out = []
        n = 0
        while n < size:
            w = rng.choice(WORDS)
            out.append(w)
            n += len(w) + 1
        return (" ".join(out))[:size].encode()
    return rng.randbytes(size)


def paths(files: int, dirs: int):
    per_top = max(1, int(dirs ** 0.5))
    for i in range(files):
        d = i % dirs
        yield os.path.join(f"d{d // per_top:04d}", f"s{d % per_top:02d}", f"f{i:07d}.dat")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=300_000)
    ap.add_argument("--dirs", type=int, default=6_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--change", type=float, default=None, help="percent of files to rewrite")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    total = 0
    if a.change is not None:
        changed = 0
        for p in paths(a.files, a.dirs):
            if rng.random() * 100 < a.change:
                data = content(rng, rng.randint(100, 6000))
                with open(os.path.join(a.dir, p), "wb") as f:
                    f.write(data)
                changed += 1
                total += len(data)
        print(f"rewrote {changed} files ({total / 2**20:.1f} MiB)")
        return 0
    made = set()
    for p in paths(a.files, a.dirs):
        parent = os.path.join(a.dir, os.path.dirname(p))
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        data = content(rng, rng.randint(100, 6000))
        with open(os.path.join(a.dir, p), "wb") as f:
            f.write(data)
        total += len(data)
    print(f"{a.files} files in {len(made)} folders, {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
