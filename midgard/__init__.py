"""Midgard: the per-node agent reporting GPUs, who holds them, and the node's system (docs/midgard.md).

`report` is the JSON contract, `collect` makes one report (NVML via `nvml`, attribution via `attribution` and
`podresources`, the node via `system`), `server` serves it over HTTP with `metrics`, `cli` is the `midgard` command.
"""
