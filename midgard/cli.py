"""`midgard`: the per-node agent's command line.

    midgard serve --bind 0.0.0.0:9090 --token-file /etc/midgard/token     serve /v1/report, /metrics, /healthz
    midgard report                                                       print one report as JSON (debugging)

Every flag has an environment variable (`MIDGARD_*`, shown in `--help`), which is how the DaemonSet sets them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from .collect import Collector, CollectorConfig

DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _parse_bind(bind: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--bind {bind!r}: expected HOST:PORT, e.g. 0.0.0.0:9090")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 -- an agent is reached by the API from other nodes
    return host, int(port)


def _read_token(args: argparse.Namespace) -> str:
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    else:
        token = (os.environ.get("MIDGARD_TOKEN") or "").strip()
    if not token:
        raise SystemExit("midgard serve: no token; pass --token-file FILE (or MIDGARD_TOKEN_FILE / MIDGARD_TOKEN)")
    return token


def _collector_options(parser: argparse.ArgumentParser) -> None:
    data_paths = _env("MIDGARD_DATA_PATHS")
    parser.add_argument(
        "--data-path",
        action="append",
        dest="data_paths",
        default=data_paths.split(os.pathsep) if data_paths else None,
        metavar="PATH",
        help="a data path whose disk to report; repeatable (MIDGARD_DATA_PATHS, ':'-separated; default /)",
    )
    parser.add_argument(
        "--node-name", default=_env("NODE_NAME"), help="node name in the report (NODE_NAME; default: host name)"
    )
    parser.add_argument(
        "--proc-root",
        default=_env("MIDGARD_PROC_ROOT", "/proc"),
        help="the host's /proc, for process attribution (MIDGARD_PROC_ROOT; default /proc)",
    )
    parser.add_argument(
        "--pod-log-root",
        default=_env("MIDGARD_POD_LOG_ROOT", "/var/log/pods"),
        help="kubelet pod log directory, for pod names from UIDs (MIDGARD_POD_LOG_ROOT; default /var/log/pods)",
    )
    parser.add_argument(
        "--pod-resources-socket",
        default=_env("MIDGARD_POD_RESOURCES_SOCKET", DEFAULT_POD_RESOURCES_SOCKET),
        help="kubelet pod-resources socket, used when it exists (MIDGARD_POD_RESOURCES_SOCKET; "
        f"default {DEFAULT_POD_RESOURCES_SOCKET}; '' to disable)",
    )


def _collector(args: argparse.Namespace) -> Collector:
    config = CollectorConfig(
        node_name=args.node_name,
        data_paths=args.data_paths or ["/"],
        proc_root=args.proc_root,
        pod_log_root=args.pod_log_root or None,
    )
    pod_resources = None
    warnings: list[str] = []
    if args.pod_resources_socket and Path(args.pod_resources_socket).exists():
        try:
            from .podresources import PodResources
        except ImportError:
            warnings.append(
                f"{args.pod_resources_socket} exists but grpcio is not installed (pip install 'odin[midgard]'): "
                "attribution falls back to cgroups"
            )
        else:
            pod_resources = PodResources(args.pod_resources_socket)
    config.extra_warnings = warnings
    return Collector(config=config, pod_resources=pod_resources)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import MidgardApp, ReportCache

    host, port = args.bind
    app = MidgardApp(ReportCache(_collector(args), ttl=args.ttl), _read_token(args))
    logging.getLogger(__name__).info("midgard serving on %s:%d", host, port)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=args.log_level.lower(), access_log=False, lifespan="on")
    )
    server.run()
    return 0


def _report(args: argparse.Namespace) -> int:
    collector = _collector(args)
    try:
        report = collector.collect()
    finally:
        collector.close()
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(report), indent=2).decode() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="midgard", description="Odin's per-node GPU and system agent.")
    parser.add_argument(
        "--log-level", default=_env("MIDGARD_LOG_LEVEL", "WARNING"), help="MIDGARD_LOG_LEVEL (default WARNING)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve /v1/report, /metrics and /healthz")
    serve.add_argument(
        "--bind",
        type=_parse_bind,
        default=_parse_bind(_env("MIDGARD_BIND", "0.0.0.0:9090") or ""),
        help="HOST:PORT to listen on (MIDGARD_BIND; default 0.0.0.0:9090)",
    )
    serve.add_argument(
        "--token-file",
        default=_env("MIDGARD_TOKEN_FILE"),
        help="file holding the bearer token clients must send (MIDGARD_TOKEN_FILE; or the token in MIDGARD_TOKEN)",
    )
    serve.add_argument(
        "--ttl",
        type=float,
        default=float(_env("MIDGARD_CACHE_TTL", "1.0") or 1.0),
        help="seconds a reading is served from cache (MIDGARD_CACHE_TTL; default 1)",
    )
    _collector_options(serve)

    report = commands.add_parser("report", help="print one report as JSON and exit")
    _collector_options(report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(args)
    return _report(args)


if __name__ == "__main__":
    sys.exit(main())
