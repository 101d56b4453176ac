"""NATS → sensor → admission → runs, with the real Dagster daemon (fleet_dagster/cli/drain.py).

python bench/nats_drain.py [--requests 60] [--interval 2] [--max-concurrent-runs 4] [--dequeue-interval 5]
                           [--latency 2] [--capacity 100] [--agents 2] [--rounds 1] [--no-start-on-arrival]
"""

import argparse
import tempfile
from pathlib import Path

from fleet_dagster.benchmarks.drain import DrainShape, drain_lines
from fleet_dagster.cli.drain import run_drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, field in DrainShape.model_fields.items():
        flag = f"--{name.removesuffix('_s').replace('_', '-')}"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, dest=name, type=field.annotation, default=field.default, help=field.description)
    shape = DrainShape(**vars(parser.parse_args()))
    home = Path(tempfile.mkdtemp(prefix="fleet-drain-"))
    figures = run_drain(shape, home, on_progress=lambda line: print(f"  {line}", flush=True))
    print("\n".join(drain_lines(figures)))
    print(f"daemon log: {home / 'daemon.log'}")


if __name__ == "__main__":
    main()
