"""Run the benchmarks: ``make bench`` (all) or ``make bench BENCH=audit`` (one).

Each ``bench/bench_<name>.py`` has a ``main()`` that prints its figures. They run
against the databases in the environment (``make bench`` points them at the local
PostgreSQL and Redis, like ``make test``) and create their own tables' worth of data in
a database of their own, so a benchmark never touches demo or test data.
"""

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> None:
    names = sys.argv[1:] or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trans_bot.settings")
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"bench_{name}").main()


if __name__ == "__main__":
    main()
