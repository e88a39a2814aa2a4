"""A large file in a pipeline repository: how much the syncing process's memory grows to fetch it and to copy it
into a run's files (issue 8, item 5: a 200 MB blob once cost +783 MB of RSS during the sync).

Each measurement runs in a fresh interpreter, so its RSS is the mirror's and nothing else's; a thread samples the
RSS every 2 ms and the peak growth over the baseline is printed for two phases, split into anonymous memory (what
only this process holds) and file-backed pages (the pack it maps while indexing, which the kernel reclaims like any
page cache):

- fetch: `Mirror.fetch()` of a repository holding one incompressible file of --size-mb, over
  * http: a real smart-HTTP server (`git http-backend`, as GitHub/GitLab/Gitea serve), where the remote packs and
    this process only receives and indexes the pack, and
  * local: a `file://` path, where libgit2's local transport builds the pack in this process (tests and demos use
    it; production remotes do not);
- materialize: the pipeline directory copied into a run's tree (streamed above 1 MiB).

The load average is printed at the start and at the end.

    .venv/bin/python benchmarks/bench_large_blob.py [--size-mb 200] [--transports http,local]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the same servers the tests start

from tests.support.git import GitRemote
from tests.support.git_http import GitHttpServer

MEASURE = """
import sys, threading, time
from pathlib import Path
from odin.controller.git.mirror import Mirror

url, cache, trees = sys.argv[1:4]


def rss():
    # RssAnon: memory only this process holds; RssFile: file pages it maps (the pack being indexed), which the
    # kernel takes back under pressure like any page cache.
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("Rss"))
    return int(fields["RssAnon"].split()[0]) * 1024, int(fields["RssFile"].split()[0]) * 1024


def sampled(action):
    base_anon, base_file = rss()
    peak = [0, 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            anon, file = rss()
            peak[0] = max(peak[0], anon - base_anon)
            peak[1] = max(peak[1], file - base_file)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    action()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    return peak[0], peak[1], elapsed

mirror = Mirror(url, Path(cache), allow_insecure_http=True)
print(*sampled(mirror.fetch), *sampled(lambda: mirror.materialize(mirror.tip(), "big", Path(trees))))
"""

PIPELINE = "name: big\ntasks:\n  - {name: a, image: busybox, command: [sh, -c, 'true']}\n"


def measure(url: str, work: Path, label: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, url, str(work / f"cache-{label}"), str(work / f"trees-{label}")],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        print(f"{label}: failed\n{run.stderr}")
        return
    fetch_anon, fetch_file, fetch_s, copy_anon, copy_file, copy_s = run.stdout.split()
    mb = 1e6
    print(f"{label:6s} fetch: +{int(fetch_anon) / mb:6.1f} MB anonymous, +{int(fetch_file) / mb:6.1f} MB file-backed "
          f"peak, {float(fetch_s):5.1f} s   materialize: +{int(copy_anon) / mb:5.1f} MB anonymous, "
          f"+{int(copy_file) / mb:5.1f} MB file-backed, {float(copy_s):4.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--transports", default="http,local")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        remote = GitRemote.create(work / "remotes")  # the bare repository is remotes/remote.git
        remote.commit({"big/main.yml": PIPELINE, "big/weights.bin": os.urandom(args.size_mb * 1_000_000)}, "big")
        print(f"one incompressible file of {args.size_mb} MB")
        for transport in args.transports.split(","):
            if transport == "local":
                measure(remote.file_url, work, "local")
            elif transport == "http":
                with GitHttpServer.serving(work / "remotes") as server:
                    measure(server.url("remote.git"), work, "http")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
