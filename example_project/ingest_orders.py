"""Land a new batch of ShopFlow orders, the way a real loader would.

The batch is written to a hidden temporary file first and then renamed into
``data/raw/orders/``, so a reader never sees a half-written batch: a rename
within one file system is atomic.

    python example_project/ingest_orders.py            # 5 new order lines
    python example_project/ingest_orders.py --rows 50
"""

from __future__ import annotations

import argparse
import csv
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

ORDERS_DIR = Path(__file__).resolve().parent / "data" / "raw" / "orders"
PRODUCTS = {"notebook": 4.50, "fountain pen": 32.00, "ink": 7.25, "pencil": 0.80, "desk lamp": 49.90}
CUSTOMER_IDS = range(1, 7)
FIELDS = ["order_id", "customer_id", "ordered_at", "product", "quantity", "unit_price"]


def next_order_id(orders_dir: Path) -> int:
    """One past the highest order_id already landed, so ids stay unique across batches."""
    highest = 0
    for path in orders_dir.glob("*.csv"):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                highest = max(highest, int(row["order_id"]))
    return highest + 1


def land_batch(orders_dir: Path, rows: int, seed: int | None = None) -> Path:
    """Write ``rows`` new order lines as one CSV batch; return the landed file."""
    rng = random.Random(seed)
    orders_dir.mkdir(parents=True, exist_ok=True)
    first_id = next_order_id(orders_dir)
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    final = orders_dir / f"orders_{stamp}.csv"
    temporary = orders_dir / f".orders_{stamp}.csv.tmp"
    with temporary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for offset in range(rows):
            product = rng.choice(sorted(PRODUCTS))
            ordered_at = now - timedelta(minutes=rng.randint(0, 600))
            writer.writerow(
                [
                    first_id + offset,
                    rng.choice(CUSTOMER_IDS),
                    ordered_at.strftime("%Y-%m-%d %H:%M:%S"),
                    product,
                    rng.randint(1, 5),
                    f"{PRODUCTS[product]:.2f}",
                ]
            )
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5, help="order lines in the batch (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable batches")
    parser.add_argument("--orders-dir", type=Path, default=ORDERS_DIR, help="where batches land")
    args = parser.parse_args()
    landed = land_batch(args.orders_dir, args.rows, args.seed)
    print(f"landed {args.rows} orders in {landed}")


if __name__ == "__main__":
    main()
