"""python -m bench [--sizes 1000,10000,100000] [--only lists,reclaim,...] [--markdown FILE]

Runs on the services `platform/with-services.sh` started (PostgreSQL, Redis, slapd, Kubernetes), on a
database of its own that it creates and drops. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import sys
import time

# memory before teardown and janitor: those two empty the database (the seeded leases past grace would
# be due in their passes too), memory measures the processes at the largest size seeded.
MODULES = ["lists", "reclaim", "memory", "provision", "teardown", "janitor"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="request counts to seed (comma-separated)")
    parser.add_argument("--only", default=",".join(MODULES), help="modules to run (comma-separated)")
    parser.add_argument("--markdown", default="", help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes: give whole numbers, e.g. 1000,10000")
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(only) - set(MODULES))
    if unknown:
        parser.error(f"--only: no benchmark named {', '.join(unknown)} (there are: {', '.join(MODULES)})")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("run it with the services: make bench (PostgreSQL is needed; SQLite figures mean nothing)")

    from bench.db import prepare

    prepare()
    from bench.common import Out

    out = Out()
    started = time.perf_counter()
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    for name in MODULES:
        if name not in only:
            continue
        print(f"\n== {name}", flush=True)
        if importlib.util.find_spec(f"bench.{name}") is None:
            out.note(f"bench/{name}.py is not here yet: skipped")
            continue
        importlib.import_module(f"bench.{name}").run(out, sizes)
    print(f"\n(the whole benchmark took {time.perf_counter() - started:.0f} s)\n")
    table = out.markdown()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
