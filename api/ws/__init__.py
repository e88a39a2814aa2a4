"""The WebSocket API (`/v1/ws`): live events for runs, commits or everything, and commands to start, rerun and
cancel runs. The protocol is documented in docs/websocket.md; `protocol` defines its messages, `asyncapi` publishes
them, `hub` fans events out in id order, `handler` serves one connection."""
