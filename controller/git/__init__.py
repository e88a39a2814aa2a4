"""The git adapter: the only place that imports pygit2."""
