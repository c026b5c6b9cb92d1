"""Load ShopFlow's raw batches into PostgreSQL, the way a real loader would (for the `pg` target).

Each CSV batch under ``data/raw/<table>/`` is loaded once, in one transaction, into the table
``raw.<table>``; every row gets ``_loaded_at``, the moment of its load, which is what dbtassets
watches (``loaded_at_field`` in models/staging/_sources.yml). The customer register is
re-exported in full, so a customers batch replaces the table's rows. ``raw._batches`` remembers
what was loaded.

It connects with the same environment variables as profiles.yml's ``pg`` output
(SHOPFLOW_PG_HOST, _PORT, _USER, _PASSWORD, _DBNAME).

    python example_project/load_postgres.py              # load every batch not loaded yet
    python example_project/load_postgres.py --orders 5   # land a new batch of 5 orders, then load it
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

import psycopg2

from ingest_orders import land_batch  # type: ignore[import-not-found]

RAW = Path(__file__).resolve().parent / "data" / "raw"
TABLES = {
    "orders": "order_id integer, customer_id integer, ordered_at timestamp, product text, quantity integer, "
              "unit_price numeric(10, 2)",
    "customers": "customer_id integer, name text, country_code text",
}
REPLACED = {"customers"}  # full re-exports: a batch replaces the table's rows


def connect() -> Any:
    env = os.environ.get
    return psycopg2.connect(host=env("SHOPFLOW_PG_HOST", "127.0.0.1"), port=int(env("SHOPFLOW_PG_PORT", "5432")),
                           user=env("SHOPFLOW_PG_USER", "shopflow"), password=env("SHOPFLOW_PG_PASSWORD", ""),
                           dbname=env("SHOPFLOW_PG_DBNAME", "shopflow"), connect_timeout=10)


def create_tables(db: Any) -> None:
    with db, db.cursor() as cursor:  # one transaction
        cursor.execute("create schema if not exists raw")
        cursor.execute("create table if not exists raw._batches (path text primary key, loaded_at timestamptz not null)")
        for table, columns in TABLES.items():
            cursor.execute(f"create table if not exists raw.{table} ({columns}, "
                           "_loaded_at timestamptz not null default clock_timestamp())")


def load_pending(db: Any, raw: Path = RAW) -> list[str]:
    """Load every batch file not loaded yet, oldest name first, one transaction each."""
    with db, db.cursor() as cursor:
        cursor.execute("select path from raw._batches")
        loaded = {row[0] for row in cursor.fetchall()}
    done = []
    for table in TABLES:
        for path in sorted((raw / table).glob("*.csv")):
            name = f"{table}/{path.name}"
            if name in loaded:
                continue
            with path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            with db, db.cursor() as cursor:  # one transaction: the batch and its record, or neither
                if table in REPLACED:
                    cursor.execute(f"delete from raw.{table}")
                if rows:
                    columns = list(rows[0])
                    cursor.executemany(f"insert into raw.{table} ({', '.join(columns)}) "
                                       f"values ({', '.join(['%s'] * len(columns))})",
                                       [[row[c] for c in columns] for row in rows])
                cursor.execute("insert into raw._batches values (%s, clock_timestamp())", (name,))
            done.append(f"{name} ({len(rows)} rows)")
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=0, help="first land a new batch of this many order lines")
    parser.add_argument("--raw", type=Path, default=RAW, help="where batches land (default: data/raw)")
    args = parser.parse_args()
    if args.orders:
        land_batch(args.raw / "orders", args.orders)
    try:
        db = connect()
        try:
            create_tables(db)
            for line in load_pending(db, args.raw):
                print(f"loaded {line}")
        finally:
            db.close()
    except psycopg2.OperationalError as exc:
        sys.exit(f"cannot load into PostgreSQL: {' '.join(str(exc).split())}")


if __name__ == "__main__":
    main()
