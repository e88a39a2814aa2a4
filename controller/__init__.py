"""The controller: git sync, run creation, the DAG engine, executors and the store.

Layering (enforced by tests/test_layers.py): `odin.schema` knows nothing of the controller; only
`odin.controller.git` imports pygit2; only `odin.controller.executors.kubernetes` imports the kubernetes client.
"""
