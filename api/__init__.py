"""The REST and WebSocket API (Litestar) and its Python clients."""
