"""Pipeline format: JSON Schema, safe YAML loading with locations, DAG and variable checks.

`main.yml` bytes go in; a validated, normalised `PipelineSpec` or a sorted list of located `Problem`s comes out. The
package knows nothing of git, databases or the controller: it is a pure library (PyYAML, jsonschema, stdlib), shared by
the controller (at every commit), `odinctl validate` (offline) and editors (through the published JSON Schema).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .conditions import Condition, ConditionError
from .limits import DEFAULT_LIMITS, Limits
from .model import (
    BUILTIN_VARIABLES,
    RESOURCE_TYPES,
    Artifact,
    ConfigMapMount,
    EphemeralVolume,
    MatrixValue,
    Mount,
    ParamSpec,
    PipelineSpec,
    Resources,
    Result,
    SecretMount,
    TaskReference,
    TaskSpec,
)
from .params import ParamError, resolve_params
from .problems import PipelineInvalid, Problem
from .schemafile import SCHEMA_ID, pipeline_schema, schema_path
from .validate import PIPELINE_FILE, ValidationResult, load_pipeline, validate_file, validate_path
from .variables import UnknownVariable, substitute

if TYPE_CHECKING:
    from .repoconfig import (
        REPO_CONFIG_FILE,
        PipelineFilters,
        RepoConfig,
        RepoConfigResult,
        load_repo_config,
        repo_schema,
    )
    from .report import format_problems, problems_to_json, results_to_json

# Imported on first use (PEP 562): validating a pipeline (`odin run`, issue 15 item 2: a 300 ms budget for the whole
# process) needs neither the repository configuration (`.odin.yml`) nor the reports of `odinctl validate`.
# tests/schema/test_package.py checks that every name of `__all__` resolves.
_LAZY = {
    "REPO_CONFIG_FILE": "repoconfig",
    "PipelineFilters": "repoconfig",
    "RepoConfig": "repoconfig",
    "RepoConfigResult": "repoconfig",
    "load_repo_config": "repoconfig",
    "repo_schema": "repoconfig",
    "format_problems": "report",
    "problems_to_json": "report",
    "results_to_json": "report",
}

__all__ = [
    "BUILTIN_VARIABLES",
    "DEFAULT_LIMITS",
    "PIPELINE_FILE",
    "REPO_CONFIG_FILE",
    "RESOURCE_TYPES",
    "SCHEMA_ID",
    "Artifact",
    "Condition",
    "ConditionError",
    "ConfigMapMount",
    "EphemeralVolume",
    "Limits",
    "MatrixValue",
    "Mount",
    "ParamError",
    "ParamSpec",
    "PipelineFilters",
    "PipelineInvalid",
    "PipelineSpec",
    "Problem",
    "RepoConfig",
    "RepoConfigResult",
    "Resources",
    "Result",
    "SecretMount",
    "TaskReference",
    "TaskSpec",
    "UnknownVariable",
    "ValidationResult",
    "format_problems",
    "load_pipeline",
    "load_repo_config",
    "pipeline_schema",
    "problems_to_json",
    "repo_schema",
    "resolve_params",
    "results_to_json",
    "schema_path",
    "substitute",
    "validate_file",
    "validate_path",
]


def __getattr__(name: str) -> object:
    """The names of `_LAZY`, from their module, imported the first time one is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
