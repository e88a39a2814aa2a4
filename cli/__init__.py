"""Command lines: `odin` (server and administration) and `odinctl` (the client)."""
