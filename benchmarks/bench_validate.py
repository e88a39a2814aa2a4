"""How many typical `main.yml` files `odin.schema.load_pipeline` validates per second on one core.

The controller validates every changed pipeline at every commit it sees, and `odinctl validate` runs over whole
repositories in pre-commit hooks, so validation must stay cheap: the target is at least 2,000 typical files per second.
"Typical" is what real pipeline repositories hold: about 5 tasks and 60 lines, a few parameters, `${...}` variables,
resources, mounts, a small DAG. The files are generated in memory (deterministically, each one different) so the
benchmark measures parsing and validation, not the disk.

    .venv/bin/python benchmarks/bench_validate.py              # valid files (the common case)
    .venv/bin/python benchmarks/bench_validate.py --invalid    # also files with one problem (the slow path)
    .venv/bin/python benchmarks/bench_validate.py --profile    # cProfile of the valid-file run
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import time

from odin.schema import load_pipeline

IMAGES = ["python:3.11-slim", "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", "alpine:3.20", "ghcr.io/acme/etl:1.4.2"]
STAGES = ["download", "prepare", "train", "evaluate", "export", "report", "publish", "tune", "score", "cleanup"]


def typical_file(rng: random.Random, n_tasks: int = 5) -> bytes:
    """One realistic pipeline of `n_tasks` tasks, 7 to 13 lines per task (about 60 lines in all)."""
    names = rng.sample(STAGES, n_tasks)
    lines = [
        "# yaml-language-server: $schema=https://odin.dev/schemas/pipeline.schema.json",
        f"name: {rng.choice(['mnist', 'churn', 'llm', 'ranker'])}-{rng.randrange(1000)}",
        "description: Generated pipeline for the validation benchmark.",
        "params:",
        f"  lr: {rng.choice(['0.001', '0.01', '3.0e-4'])}",
        f"  epochs: {{default: {rng.randrange(1, 50)}, type: integer, description: Training epochs.}}",
        "  dataset:",
        "    default: mnist",
        "    choices: [mnist, fashion-mnist, cifar10]",
        "tasks:",
    ]
    for i, name in enumerate(names):
        lines += [
            f"  - name: {name}",
            f"    image: {rng.choice(IMAGES)}",
            f"    command: python {name}.py --out ${{RUN_PATH}}/{name}"
            if i % 2
            else f'    command: [sh, -c, "python {name}.py > ${{RUN_PATH}}/{name}.log"]',
            "    args: [--lr, '${params.lr}', --epochs, '${params.epochs}', --data, '${params.dataset}']"
            if i % 2
            else "    args:\n      - --lr\n      - ${params.lr}\n      - --seed\n      - 42",
            "    env: {PYTHONUNBUFFERED: 1, TASK: '${TASK_ID}'}",
        ]
        if i:
            deps = rng.sample(names[:i], min(i, rng.randint(1, 2)))
            lines.append(f"    depends: [{', '.join(deps)}]" if len(deps) > 1 else f"    depends: {deps[0]}")
        if rng.random() < 0.5:
            lines.append(f"    cpu: {{requests: {rng.choice(['500m', '1', '2'])}, limits: 4}}")
            lines.append(f"    memory: {{requests: {rng.choice(['1Gi', '2Gi'])}, limits: 8Gi}}")
        if rng.random() < 0.3:
            lines.append("    num_gpus: 1")
            lines.append(f"    timeout: {rng.choice(['30m', '2h', '1h30m', 3600])}")
        if rng.random() < 0.3:
            lines.append("    mounts: [{name: cache, path: /cache, claim: shared-cache}]")
            lines.append("    secrets: [wandb-key]")
    return ("\n".join(lines) + "\n").encode()


def with_one_problem(rng: random.Random, data: bytes) -> bytes:
    """The same file with one typical mistake (a typo in a field name, a variable, a dependency)."""
    mistake = rng.choice([(b"    depends:", b"    depend:"), (b"${RUN_PATH}", b"${RUNPATH}"), (b"image:", b"imag:")])
    return data.replace(*mistake, 1)


def measure(files: list[bytes], rounds: int) -> list[float]:
    """Seconds per file for each round over all `files` (garbage collection left on, as in the controller)."""
    per_file: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        for data in files:
            load_pipeline(data, file="main.yml", default_name="bench")
        per_file.append((time.perf_counter() - started) / len(files))
    return per_file


def report(label: str, per_file: list[float]) -> None:
    best, median = min(per_file), statistics.median(per_file)
    print(
        f"{label}: {1 / median:,.0f} files/s (median of {len(per_file)} rounds; best {1 / best:,.0f} files/s), "
        f"{median * 1e6:.0f} µs per file"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=1000, help="distinct files generated (default 1000)")
    parser.add_argument("--rounds", type=int, default=7, help="passes over all files (default 7)")
    parser.add_argument("--invalid", action="store_true", help="also measure files with one problem each")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one pass over the valid files")
    args = parser.parse_args()

    rng = random.Random(2024)
    files = [typical_file(rng) for _ in range(args.files)]
    sizes = [len(f) for f in files]
    lines = [f.count(b"\n") for f in files]
    for data in files[:50]:
        result = load_pipeline(data, file="main.yml", default_name="bench")
        assert result.ok, [str(p) for p in result.problems]
    print(
        f"{len(files)} generated files: {statistics.mean(lines):.0f} lines, {statistics.mean(sizes) / 1000:.1f} kB, "
        "5 tasks each"
    )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        measure(files, 1)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return

    measure(files[:100], 1)  # warm-up: compile the schema, fill caches
    gc.collect()
    report("valid files", measure(files, args.rounds))
    if args.invalid:
        broken = [with_one_problem(rng, data) for data in files]
        assert not load_pipeline(broken[0], file="main.yml", default_name="bench").ok
        report("files with one problem", measure(broken, max(1, args.rounds // 2)))


if __name__ == "__main__":
    main()
