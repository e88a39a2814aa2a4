"""Executors run a task somewhere (a local subprocess, a Kubernetes object) and report what they observe."""
