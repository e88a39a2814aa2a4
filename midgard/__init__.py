"""Midgard: the per-node agent reporting GPUs and system resources (planned; see docs/roadmap.md)."""
