"""Tests of odin.controller.git against real repositories (no mocks of pygit2)."""
