"""The Kubernetes executor: tasks as Pods, Jobs and distributed-training jobs, watched, labelled by commit.

The only part of Odin that imports the `kubernetes` client (an import-linter contract keeps it so). Modules:

| module | job |
|---|---|
| `executor.py` | `KubernetesExecutor`: the engine's executor contract on a cluster, a coordinator over the next four |
| `submit.py` | `Submitter`: prepare runs, create (journal first, 409 adopts), recover after a restart, kill |
| `tracking.py` | `Tracker`: the watches, and the pure `evaluate` (an attempt's record + time -> verdict, observation) |
| `log_reader.py` | `LogReader`: live and saved logs, events |
| `attempts.py` | `AttemptTable`: every attempt's and run's record, behind one lock |
| `handlers/` | one `ResourceHandler` per kind (Pod, Job, the training operators), and `registry.py` |
| `manifests.py` | the pod template every handler shares; provenance labels |
| `workdir.py` | `${WORK_PATH}`: the commit's pipeline directory as immutable ConfigMaps |
| `watch.py` | list-then-watch per (namespace, kind), 410 re-list, reconnect with backoff |
| `failures.py` | pod status -> running / done / failed (USER, INFRA, PERMANENT) / stuck past a deadline |
| `api.py`, `errors.py`, `config.py` | requests, retries (429 Retry-After, 5xx backoff), `Json`, errors, client setup |
| `logs.py`, `cleanup.py`, `journal.py` | saved and live logs, TTL clean-up, creates in flight |
| `timers.py`, `names.py` | deadlines without polling; deterministic names and provenance labels |

See docs/kubernetes.md.
"""

from odin.controller.executors.kubernetes.api import Json
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.executor import KubernetesExecutor
from odin.controller.executors.kubernetes.failures import Deadlines
from odin.controller.executors.kubernetes.handlers import (
    ENTRY_POINT_GROUP,
    AttemptView,
    HandlerRegistry,
    ResourceHandler,
    TopStatus,
    Verdict,
)
from odin.controller.executors.kubernetes.manifests import BuildContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "AttemptView",
    "BuildContext",
    "Deadlines",
    "HandlerRegistry",
    "Json",
    "KubeOptions",
    "KubernetesExecutor",
    "ResourceHandler",
    "TopStatus",
    "Verdict",
]
