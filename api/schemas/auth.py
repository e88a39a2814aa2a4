"""Logging in, who am I, API tokens and users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

RoleName = Literal["admin", "member", "viewer"]
Username = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: Password


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str
    expires_in: int
    role: str


class WhoAmI(msgspec.Struct, kw_only=True):
    username: str
    role: RoleName
    token_kind: Literal["session", "api"]
    token_id: str
    expires_at: datetime | None


class ApiTokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="What the token is for, e.g. 'ci'")]
    role: RoleName | None = msgspec.field(default=None)
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class ApiTokenOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    username: str
    role: RoleName
    prefix: str
    active: bool
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenOut, kw_only=True):
    token: str  # shown once; only its hash is kept


class ApiTokenList(msgspec.Struct, kw_only=True):
    items: list[ApiTokenOut]


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: Password
    role: RoleName = "viewer"
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None


class UserUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: RoleName | None = None
    disabled: bool | None = None
    password: Password | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None


class UserOut(msgspec.Struct, kw_only=True):
    username: str
    role: RoleName
    disabled: bool
    email: str | None
    created_at: datetime


class UserList(msgspec.Struct, kw_only=True):
    items: list[UserOut]
