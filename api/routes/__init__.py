"""HTTP routes, one module per domain: thin handlers over services."""
