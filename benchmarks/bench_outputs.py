"""What recording a task's outputs costs on the local executor, per task (issue 11: <= 5 ms beyond the bytes copied).

The work outputs add to a task, measured where it runs, on real files:
1. executor, at launch: `prepare` empties and creates the attempt's ${OUTPUT_PATH} and ${RESULTS_PATH};
2. executor, at exit 0: `collect` reads three declared results (two files and a `results.json`), measures and
   digests two artifacts (a 4 KiB file and a directory of 10 small files);
3. engine, at the dependent's launch: resolving three references (one of them to a 16-member sweep) to their text,
   and evaluating a `when` on a result.
The bytes digested are a few tens of KiB, so this is the fixed cost; digesting large artifacts costs what reading
them costs (hashlib's sha256, ~1 GB/s), on a launcher thread, not the engine's.

    .venv/bin/python benchmarks/bench_outputs.py [--iterations 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from odin.controller.engine import references
from odin.controller.engine.references import RecordedOutputs
from odin.controller.executors import outputs
from odin.controller.executors.outputs import AttemptDirs
from odin.schema import load_pipeline

PIPELINE = """
tasks:
  - name: train
    image: busybox
    command: ["true"]
    matrix: {i: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}
    outputs: {results: [score]}
  - name: make
    image: busybox
    command: ["true"]
    outputs: {artifacts: [model, logs], results: [accuracy, loss, note]}
  - name: use
    image: busybox
    command: [sh, -c, "echo ${tasks.make.results.accuracy} ${tasks.make.artifacts.model}
      '${tasks.train.results.score}'"]
    depends: [make, train]
    when: ${tasks.make.results.accuracy} > 0.5
"""


def write_outputs(dirs: AttemptDirs) -> None:
    out, res = Path(dirs.output_path), Path(dirs.results_path)
    (out / "model").write_bytes(b"m" * 4096)
    (out / "logs").mkdir()
    for i in range(10):
        (out / "logs" / f"{i}.txt").write_text(f"line {i}\n")
    (res / "accuracy").write_text("0.93\n")
    (res / "loss").write_text("0.2")
    (res / "results.json").write_text('{"note": "ok"}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    result = load_pipeline(PIPELINE.encode(), file="main.yml", default_name="bench")
    assert result.spec is not None, result.problems
    spec = result.spec
    make, use = spec.task("make"), spec.task("use")
    recorded = RecordedOutputs()
    for member in spec.producers("train"):
        recorded.record(member.name, {"score": 0.5}, {})

    executor_ms: list[float] = []
    engine_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.iterations):
            base = Path(tmp) / "outputs" / "run" / "make" / str(i + 1)  # a new attempt: fresh directories
            dirs = AttemptDirs(str(base / "artifacts"), str(base / "results"))
            t0 = time.perf_counter()
            outputs.prepare(dirs)
            t1 = time.perf_counter()
            write_outputs(dirs)  # the task's own work: not counted
            t2 = time.perf_counter()
            produced = outputs.collect(make, dirs)
            t3 = time.perf_counter()
            executor_ms.append((t1 - t0 + t3 - t2) * 1000)

            recorded.record("make", produced["results"], produced["artifacts"])
            t4 = time.perf_counter()
            values = references.resolve(spec, use, recorded, lambda _: True)
            texts = references.texts(values)
            assert use.when is not None
            gate = references.gate(use.when, {}, values)
            t5 = time.perf_counter()
            assert gate.run and len(texts) == 3
            engine_ms.append((t5 - t4) * 1000)

    def line(name: str, samples: list[float]) -> str:
        ordered = sorted(samples)
        p95 = ordered[int(len(ordered) * 0.95)]
        return f"{name:<44} median {statistics.median(samples):.3f} ms   p95 {p95:.3f} ms"

    print(f"{args.iterations} tasks, each: 3 results, 2 artifacts (4 KiB file, 10-file directory), 3 references")
    print(line("executor (prepare dirs + collect outputs)", executor_ms))
    print(line("engine (resolve references + when)", engine_ms))
    total = [a + b for a, b in zip(executor_ms, engine_ms, strict=True)]
    print(line("added per task", total) + "   (target <= 5 ms)")


if __name__ == "__main__":
    main()
