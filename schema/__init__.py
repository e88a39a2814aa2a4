"""Pipeline format: JSON Schema, safe YAML loading with locations, DAG and variable checks."""
