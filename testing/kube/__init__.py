"""An HTTP-level fake Kubernetes API server, a fake kubelet and the pytest fixtures built on them.

See docs/testing-kubernetes.md.
"""
