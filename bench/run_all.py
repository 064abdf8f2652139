"""Run every bench/*.py that defines run() and print one table (`make bench`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from common import Row, print_table

HERE = Path(__file__).parent


def main() -> int:
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("common", "run_all"))
    only = sys.argv[1:]
    rows: list[Row] = []
    for name in names:
        if only and name not in only:
            continue
        module = importlib.import_module(name)
        print(f"running bench/{name}.py ...", flush=True)
        rows += module.run()
    print_table(rows, "make bench")
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
