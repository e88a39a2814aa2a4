"""The DAG engine: a pure decision step and the thin loop that applies it."""
