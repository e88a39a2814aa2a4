"""The WebSocket API (`/v1/ws`): live events for runs, commits or everything, and commands to start, rerun and
cancel runs. The protocol is documented in docs/websocket.md; `protocol` defines its messages, `hub` fans events
out, `handler` serves one connection."""
