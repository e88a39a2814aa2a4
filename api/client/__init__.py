"""Python clients for the Odin API: the same code `odinctl` uses."""
