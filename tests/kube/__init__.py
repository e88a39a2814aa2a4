"""Kubernetes tests: the executor and the fake itself, on `odin.testing.kube`'s fake API server or a real cluster."""
