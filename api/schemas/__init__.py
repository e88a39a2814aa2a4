"""Request and response bodies of the API: the contract the OpenAPI document publishes.

Read models are separate from the tables on purpose: the API shows what a client needs (e.g. `problem_count`),
never internal columns (`dedupe_key`, paths on the server, password or token hashes), and can evolve without a
migration. Request bodies forbid unknown fields, so a typo in a client is a 400, not a silently ignored option.
"""

from odin.api.schemas.auth import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenList,
    ApiTokenOut,
    RoleName,
    TokenRequest,
    TokenResponse,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
    WhoAmI,
)
from odin.api.schemas.commits import CommitDetail, CommitPage, CommitSummary
from odin.api.schemas.common import ErrorBody, Health, ProblemOut
from odin.api.schemas.pipelines import (
    FileOut,
    FileWrite,
    FileWritten,
    ParamOut,
    PipelineDetail,
    PipelineList,
    PipelineSummary,
    TaskNode,
    ValidateRequest,
    ValidateResponse,
)
from odin.api.schemas.runs import (
    EventOut,
    EventPage,
    ParamMap,
    Rerun,
    RunDetail,
    RunPage,
    RunSummary,
    StartRun,
    TaskEvents,
    TaskOut,
)

__all__ = [
    "ApiTokenCreate",
    "ApiTokenCreated",
    "ApiTokenList",
    "ApiTokenOut",
    "CommitDetail",
    "CommitPage",
    "CommitSummary",
    "ErrorBody",
    "EventOut",
    "EventPage",
    "FileOut",
    "FileWrite",
    "FileWritten",
    "Health",
    "ParamMap",
    "ParamOut",
    "PipelineDetail",
    "PipelineList",
    "PipelineSummary",
    "ProblemOut",
    "Rerun",
    "RoleName",
    "RunDetail",
    "RunPage",
    "RunSummary",
    "StartRun",
    "TaskEvents",
    "TaskNode",
    "TaskOut",
    "TokenRequest",
    "TokenResponse",
    "UserCreate",
    "UserList",
    "UserOut",
    "UserUpdate",
    "ValidateRequest",
    "ValidateResponse",
    "WhoAmI",
]
