#!/usr/bin/env python3
"""Benchmark a PostgreSQL or MariaDB source against `DUMP | restic backup --stdin` and
`DUMP | borg create -` (issue 16, item 6), DUMP being the server's own dump tool.

Generates a shop database in the server on this machine (--engine postgres: 127.0.0.1:5432;
mariadb: 127.0.0.1:3306; customers, orders with a note, an index; --size-mib about its size on
disk), backs it up with each tool, applies one business day of changes (new orders, status
changes of recent ones, a few deletions of old ones: the changes cluster, as a shop's do), backs
it up again, and restores the newest backup into a new database (checked: the same row counts as
the source). Prints one table, the tools side by side in the same run. Standard library only; the
database and repositories are dropped afterwards. See bench/README.md, "Database server bench".
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PG = ["-h", "127.0.0.1", "-U", "postgres"]
MY = ["--host=127.0.0.1", "--port=3306", "--user=root"]
MIB = 2**20


def log(msg):
    print(f"[dbbench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def psql(db, sql):
    out = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1", *PG, "-d", db, "-c", sql],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"psql {db}: {out.stderr}")
    return out.stdout.strip()


def mariadb(db, sql):
    out = subprocess.run(["mariadb", *MY, "--batch", "--skip-column-names", *([f"--database={db}"] if db else []),
                          "-e", sql], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"mariadb {db}: {out.stderr}")
    return out.stdout.strip()


def timed(shell_cmd, env=None):
    """Runs a shell pipeline; its wall seconds."""
    t = time.time()
    p = subprocess.run(shell_cmd, shell=True, env=env, capture_output=True, text=True)
    secs = time.time() - t
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {shell_cmd}\n{p.stderr[-3000:]}")
    return secs


def dir_mib(path):
    return sum(os.lstat(os.path.join(r, f)).st_size for r, _d, fs in os.walk(path) for f in fs) / MIB


def pg_generate(db, size_mib):
    orders = max(100_000, size_mib * 6_000)
    customers = orders // 10
    log(f"generating {db}: {customers} customers, {orders} orders")
    psql("postgres", f"DROP DATABASE IF EXISTS {db}")
    psql("postgres", f"CREATE DATABASE {db}")
    psql(db, "CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, city text, "
             "created timestamptz)")
    psql(db, f"INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com', "
             f"(ARRAY['Berlin','Hamburg','Koeln','Muenchen'])[1 + g % 4], now() - g * interval '1 minute' "
             f"FROM generate_series(1, {customers}) g")
    psql(db, "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint REFERENCES customers, "
             "total numeric(10,2), status text, note text, created timestamptz)")
    psql(db, f"INSERT INTO orders (id, customer_id, total, status, note, created) SELECT g, 1 + g % {customers}, "
             f"(g % 10000) / 100.0, (ARRAY['new','paid','shipped'])[1 + g % 3], "
             f"md5(g::text) || md5((g * 7)::text), now() - g * interval '10 seconds' "
             f"FROM generate_series(1, {orders}) g")
    psql(db, "SELECT setval('orders_id_seq', (SELECT max(id) FROM orders))")
    psql(db, "CREATE INDEX ON orders (customer_id)")
    psql(db, "VACUUM ANALYZE")
    return orders


def pg_business_day(db, orders):
    """New orders (1 %), status changes of the newest 2 %, deletions of a few old ones. After
    the VACUUM of `generate`, PostgreSQL puts the new rows into the free space left in pages
    all over the table, as it does after an autovacuum: `pg_dump` writes rows in heap order, so
    the day's dump differs from the day before's all over (docs/plans/issue-16.md)."""
    recent = int(orders * 0.98)
    psql(db, f"UPDATE orders SET status = 'shipped' WHERE id > {recent} AND id % 3 = 0")
    psql(db, f"INSERT INTO orders (customer_id, total, status, note, created) SELECT 1 + g % 1000, 12.34, 'new', "
             f"md5((g + 90000000)::text) || 'x', now() FROM generate_series(1, {orders // 100}) g")
    psql(db, "DELETE FROM orders WHERE id < 3000 AND id % 10 = 1")


def pg_counts(db):
    return psql(db, "SELECT (SELECT count(*) FROM customers) || ' ' || (SELECT count(*) FROM orders)")


def my_generate(db, size_mib):
    orders = max(100_000, size_mib * 6_000)
    customers = orders // 10
    log(f"generating {db}: {customers} customers, {orders} orders")
    mariadb("", f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}")
    mariadb(db, "CREATE TABLE customers (id bigint PRIMARY KEY, name varchar(100), email varchar(100), "
                "city varchar(40), created datetime) ENGINE=InnoDB")
    mariadb(db, f"INSERT INTO customers SELECT seq, CONCAT('customer ', seq), CONCAT('c', seq, '@example.com'), "
                f"ELT(1 + seq % 4, 'Berlin', 'Hamburg', 'Koeln', 'Muenchen'), NOW() - INTERVAL seq MINUTE "
                f"FROM seq_1_to_{customers}")
    mariadb(db, "CREATE TABLE orders (id bigint AUTO_INCREMENT PRIMARY KEY, customer_id bigint, "
                "total decimal(10,2), status varchar(10), note varchar(100), created datetime, "
                "KEY (customer_id), FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB")
    mariadb(db, f"SET foreign_key_checks = 0; INSERT INTO orders (id, customer_id, total, status, note, created) "
                f"SELECT seq, 1 + seq % {customers}, (seq % 10000) / 100.0, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), "
                f"CONCAT(MD5(seq), MD5(seq * 7)), NOW() - INTERVAL (seq * 10) SECOND FROM seq_1_to_{orders}")
    mariadb(db, "ANALYZE TABLE customers, orders")
    return orders


def my_business_day(db, orders):
    """The same day as PostgreSQL's: InnoDB keeps rows in primary-key order, so the new orders go
    to the end of the table and the dump."""
    recent = int(orders * 0.98)
    mariadb(db, f"UPDATE orders SET status = 'shipped' WHERE id > {recent} AND id % 3 = 0")
    mariadb(db, f"INSERT INTO orders (customer_id, total, status, note, created) SELECT 1 + seq % 1000, 12.34, "
                f"'new', CONCAT(MD5(seq + 90000000), 'x'), NOW() FROM seq_1_to_{orders // 100}")
    mariadb(db, "DELETE FROM orders WHERE id < 3000 AND id % 10 = 1")


def my_counts(db):
    return mariadb(db, "SELECT CONCAT((SELECT COUNT(*) FROM customers), ' ', (SELECT COUNT(*) FROM orders))")


class Postgres:
    name = "PostgreSQL"
    kind = "postgres"
    client = "psql"
    generate = staticmethod(pg_generate)
    business_day = staticmethod(pg_business_day)
    counts = staticmethod(pg_counts)

    @staticmethod
    def size_mib(db):
        return int(psql(db, f"SELECT pg_database_size('{db}')")) / MIB

    url = "postgres://postgres@127.0.0.1:5432/{db}"
    dump = "pg_dump -h 127.0.0.1 -U postgres {db}"
    load = "psql -X -q -w -h 127.0.0.1 -U postgres -d {db} -v ON_ERROR_STOP=1"
    about = "pg_dump (plain SQL)"

    @staticmethod
    def create(db):
        psql("postgres", f"CREATE DATABASE {db}")

    @staticmethod
    def drop(db):
        psql("postgres", f"DROP DATABASE IF EXISTS {db}")


class Mariadb:
    name = "MariaDB"
    kind = "mariadb"
    client = "the mariadb client"
    generate = staticmethod(my_generate)
    business_day = staticmethod(my_business_day)
    counts = staticmethod(my_counts)

    @staticmethod
    def size_mib(db):
        return int(mariadb(db, "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                               "WHERE table_schema = DATABASE()")) / MIB

    url = "mysql://root@127.0.0.1:3306/{db}"
    dump = "mariadb-dump --host=127.0.0.1 --user=root --single-transaction --quick {db}"
    load = "mariadb --host=127.0.0.1 --user=root --database={db}"
    about = "mariadb-dump --single-transaction"

    @staticmethod
    def create(db):
        mariadb("", f"CREATE DATABASE {db}")

    @staticmethod
    def drop(db):
        mariadb("", f"DROP DATABASE IF EXISTS {db}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=["postgres", "mariadb"], default="postgres")
    ap.add_argument("--size-mib", type=int, default=512, help="database size on disk (default 512)")
    ap.add_argument("--backstop", help="backstop binary (default <repo>/target/release/backstop)")
    ap.add_argument("--workdir", default="/var/tmp/bsdb", help="scratch dir (repositories)")
    ap.add_argument("--builtin", action="store_true",
                    help="also backstop's built-in export (method = \"builtin\"), "
                         "as the column 'builtin'")
    args = ap.parse_args()
    e = Postgres if args.engine == "postgres" else Mariadb
    exe = Path(args.backstop or REPO_ROOT / "target" / "release" / "backstop").resolve()
    if not exe.exists():
        sys.exit(f"{exe} not found: cargo build --release (or pass --backstop PATH)")
    if not shutil.which("restic"):
        sys.exit("restic not found: install it (Debian: apt-get install restic borgbackup)")
    tools = (["backstop"] + (["builtin"] if args.builtin else []) + ["restic"]
             + (["borg"] if shutil.which("borg") else []))
    wd = Path(args.workdir)
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    db = "bench_db_shop"
    orders = e.generate(db, args.size_mib)
    size = e.size_mib(db)
    for name, method in [("backstop", "dump"), ("builtin", "builtin")]:
        (wd / f"{name}.toml").write_text(
            f'repository = "{wd}/{name}-repo"\n[sources.shop]\nkind = "{e.kind}"\n'
            f'url = "{e.url.format(db=db)}"\nmethod = "{method}"\n')
    env = dict(os.environ, RESTIC_PASSWORD="bench", BORG_PASSPHRASE="bench",
               BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
    bs = f"{exe} --config {wd}/backstop.toml"
    bi = f"{exe} --config {wd}/builtin.toml"
    dump = e.dump.format(db=db)
    cmds = {
        "backstop": {
            "init": f"{bs} init --encryption none",
            "backup": f"{bs} backup --source shop",
            "repo": wd / "backstop-repo",
        },
        "builtin": {
            "init": f"{bi} init --encryption none",
            "backup": f"{bi} backup --source shop",
            "repo": wd / "builtin-repo",
        },
        "restic": {
            "init": f"restic init -r {wd}/restic-repo",
            "backup": f"{dump} | restic -r {wd}/restic-repo backup --stdin --stdin-filename shop.sql -q",
            "repo": wd / "restic-repo",
        },
        "borg": {
            "init": f"borg init -e none {wd}/borg-repo",
            "backup": f"{dump} | borg create --compression zstd,3 {wd}/borg-repo::{{now}} -",
            "repo": wd / "borg-repo",
        },
    }
    rows = {t: {} for t in tools}
    for t in tools:
        timed(cmds[t]["init"], env)
    for t in tools:
        log(f"{t}: full")
        rows[t]["full backup s"] = timed(cmds[t]["backup"], env)
        rows[t]["full stored MiB"] = dir_mib(cmds[t]["repo"])
    log("one business day of changes")
    e.business_day(db, orders)
    for t in tools:
        log(f"{t}: day 1")
        before = dir_mib(cmds[t]["repo"])
        rows[t]["day-1 backup s"] = timed(cmds[t]["backup"], env)
        rows[t]["day-1 added MiB"] = dir_mib(cmds[t]["repo"]) - before
    want = e.counts(db)
    restores = {
        "backstop": lambda new: f"{bs} restore latest --source shop --to-database {new}",
        "builtin": lambda new: f"{bi} restore latest --source shop --to-database {new}",
        "restic": lambda new: f"restic -r {wd}/restic-repo dump latest shop.sql | {e.load.format(db=new)}",
        "borg": lambda new: f"borg extract --stdout {wd}/borg-repo::$(borg list --last 1 --short {wd}/borg-repo) | {e.load.format(db=new)}",
    }
    for t in tools:
        new = f"bench_db_restored_{t}"
        e.drop(new)
        if t not in ("backstop", "builtin"):
            e.create(new)
        log(f"{t}: restore")
        secs = timed(restores[t](new), env)
        got = e.counts(new)
        e.drop(new)
        if got != want:
            sys.exit(f"{t} restored {got} rows, the database has {want}")
        rows[t]["restore s"] = secs
    e.drop(db)
    shutil.rmtree(wd, ignore_errors=True)

    print(f"# {e.name} bench, {time.strftime('%Y-%m-%dT%H:%M:%S')}: a {size:.0f} MiB shop database "
          f"({orders} orders), one business day of clustered changes")
    print()
    print("| metric | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    for metric in rows["backstop"]:
        cells = []
        for t in tools:
            v = rows[t][metric]
            cells.append(f"{v:.2f}" if v < 100 else f"{v:.0f}")
        base = rows["restic"][metric]
        if base:
            for i, t in enumerate(tools):
                if t in ("backstop", "builtin"):
                    cells[i] += f" ({rows[t][metric] / base:.2f}x restic)"
        print(f"| {metric} | " + " | ".join(cells) + " |")
    print()
    print(f"restic: `{e.about} | restic backup --stdin`; borg: `{e.about} | borg create -` (zstd,3);"
          " restores into a new database, row counts checked."
          + (" builtin: backstop with method = \"builtin\" (its own export, rows in primary-key"
             f" order, loaded by {e.client})." if args.builtin else ""))


if __name__ == "__main__":
    main()
