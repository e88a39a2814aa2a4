"""The shared vocabulary stays plain: importing it loads nothing else of Odin.

Any layer may import `odin.controller.vocabulary` (the store, the engine, the executors, the API, the webhooks)
precisely because it pulls in no layer; an Odin import added to it would bring back the cycles issue 9 removed.
"""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_vocabulary_loads_nothing_else_of_odin() -> None:
    probe = (
        "import sys, odin.controller.vocabulary; "
        "print(' '.join(sorted(m for m in sys.modules if m == 'odin' or m.startswith('odin.'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["odin", "odin.controller", "odin.controller.vocabulary"]
