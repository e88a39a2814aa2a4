"""Kubernetes tests: an HTTP-level fake API server and the executor tests that run against it or a real cluster."""
