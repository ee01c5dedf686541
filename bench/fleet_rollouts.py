"""The fleet test at full size: 1,000 concurrent 4-turn rollouts over 3 members, one
`--workers 2` member and one extra member, in front of 3 fake replicas; mid-run the extra
member and one replica are killed. Checks that every turn was answered and every
conversation stayed contiguous on its replica (tests/e2e/test_fleet_e2e.py runs 200).

    .venv/bin/python -m bench.fleet_rollouts [--rollouts 1000] [--turns 4]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tests.e2e.test_fleet_e2e import Fleet, contiguity, run_rollouts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp))
        try:
            start = time.perf_counter()
            placed, alone = asyncio.run(run_rollouts(fleet, args.rollouts, args.turns))
            seconds = time.perf_counter() - start
            answered = sum(len(p) for p in placed.values())
            moved, broken = contiguity(placed)
            examples = list(broken.items())[:5]
            print(
                f"{args.rollouts} rollouts × {args.turns} turns in {seconds:.1f} s: "
                f"{answered} of {args.rollouts * args.turns} turns answered; {moved} moved once "
                f"off the killed replica; {len(broken)} not contiguous {examples}; "
                f"{alone} placements decided locally"
            )
        finally:
            fleet.stop()


if __name__ == "__main__":
    main()
