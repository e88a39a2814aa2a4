"""A seed for a test's random fault schedule: printed, so that a failure can be replayed with `ODIN_FAULT_SEED`."""

from __future__ import annotations

import os
import random


def fault_seed() -> int:
    """`ODIN_FAULT_SEED` replays a schedule; otherwise a fresh one, printed (pytest shows it with a failure)."""
    seed = int(os.environ.get("ODIN_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault schedule seed: ODIN_FAULT_SEED={seed}")
    return seed
