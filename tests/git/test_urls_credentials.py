"""URL forms, redaction, secret references and credentials: the parts that must never leak a secret."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from odin.controller.git import (
    AuthenticationFailed,
    CredentialKind,
    Credentials,
    FileTooLarge,
    InvalidRemoteUrl,
    Mirror,
    RemoteUnreachable,
    SecretUnavailable,
    UrlKind,
    parse_remote_url,
    parse_secret_ref,
    redact_url,
    resolve_secret_ref,
)
from odin.controller.git.credentials import scrub
from odin.controller.git.urls import cache_name

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:tok@host/x", "https://host/x"),
        ("https://tok@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://host/x?private_token=abc#frag", "https://host/x"),
        ("ssh://git@host:2222/org/repo.git", "ssh://host:2222/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("user:secret@host:repo.git", "host:repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        ("https://a:b@c:d@host/x", "https://host/x"),
        ("", ""),
        ("not a url at all", "not a url at all"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    ("url", "kind", "host"),
    [
        ("/srv/git/repo.git", UrlKind.LOCAL, None),
        ("file:///srv/git/repo.git", UrlKind.FILE, None),
        ("https://github.com/org/repo.git", UrlKind.HTTPS, "github.com"),
        ("https://x-access-token@github.com/org/repo.git", UrlKind.HTTPS, "github.com"),
        ("ssh://git@gitlab.example.com:2222/org/repo.git", UrlKind.SSH, "gitlab.example.com"),
        ("git@github.com:org/repo.git", UrlKind.SCP, "github.com"),
        ("gitea.internal:team/repo", UrlKind.SCP, "gitea.internal"),
    ],
)
def test_accepted_url_forms(url: str, kind: UrlKind, host: str | None) -> None:
    parsed = parse_remote_url(url)
    assert parsed.kind is kind
    assert parsed.host == host


def test_relative_local_path_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_remote_url("repos/x.git").transport_url == str(tmp_path / "repos" / "x.git")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://user:tok@host/x", "password or token"),
        ("user:tok@host:repo.git", "password"),
        ("http://gitea.svc/org/repo.git", "plain http"),
        ("git://host/repo.git", "unsupported"),
        ("ftp://host/repo.git", "unsupported"),
        ("https:///repo.git", "no host"),
        ("https://host", "no repository path"),
        ("https://host/x?token=1", "query"),
        ("file://otherhost/srv/x", "local path"),
        ("https://host:99999/x", "malformed"),
        ("", "empty"),
        ("https://host/x\ny.git", "control"),
    ],
)
def test_refused_urls(url: str, match: str) -> None:
    with pytest.raises(InvalidRemoteUrl, match=match) as err:
        parse_remote_url(url)
    assert "tok@" not in str(err.value)


def test_plain_http_needs_opt_in() -> None:
    assert parse_remote_url("http://gitea.svc:3000/org/repo.git", allow_insecure_http=True).kind is UrlKind.HTTP


def test_cache_name_is_readable_and_distinct() -> None:
    a = cache_name(parse_remote_url("https://github.com/org/repo.git"))
    b = cache_name(parse_remote_url("https://gitlab.com/org/repo.git"))
    same_without_user = cache_name(parse_remote_url("https://bot@github.com/org/repo.git"))
    assert a.startswith("org-repo-") and a.endswith(".git")
    assert a != b
    assert a == same_without_user


def test_mirror_repr_and_errors_never_show_a_user(tmp_path: Path) -> None:
    mirror = Mirror(
        "https://deploy-bot@127.0.0.1:1/org/repo.git", tmp_path, credentials=Credentials.from_token("t0k3n!")
    )
    assert "deploy-bot" not in repr(mirror) and "t0k3n!" not in repr(mirror)
    assert mirror.url == "https://127.0.0.1:1/org/repo.git"


def test_invalid_branch_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="branch"):
        Mirror("/srv/x.git", tmp_path, branch="bad..name")


# --- secret references ---------------------------------------------------------------------------------------------


def test_secret_refs(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    assert resolve_secret_ref("env:GIT_TOKEN", environ={"GIT_TOKEN": "from-env"}) == "from-env"
    assert resolve_secret_ref(f"file:{secret_file}") == "from-file"
    assert str(parse_secret_ref("env:GIT_TOKEN")) == "env:GIT_TOKEN"


@pytest.mark.parametrize("ref", ["GIT_TOKEN", "vault:x", "env:", "env:1BAD", "file:relative/path"])
def test_malformed_secret_refs(ref: str) -> None:
    with pytest.raises(ValueError, match="secret reference"):
        parse_secret_ref(ref)
    with pytest.raises(SecretUnavailable):
        resolve_secret_ref(ref, environ={})


def test_unresolvable_secret_refs_name_the_reference_only(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="env:MISSING"):
        resolve_secret_ref("env:MISSING", environ={})
    with pytest.raises(SecretUnavailable, match="not set or empty"):
        resolve_secret_ref("env:EMPTY", environ={"EMPTY": ""})
    with pytest.raises(SecretUnavailable, match="does not exist"):
        resolve_secret_ref(f"file:{tmp_path / 'nope'}")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretUnavailable, match="empty"):
        resolve_secret_ref(f"file:{tmp_path / 'empty'}")
    assert not SecretUnavailable.transient


def test_credentials_from_refs(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(KEY)
    env = {"TOKEN": "tok-123", "KEY": KEY, "PASS": "pw"}

    token = Credentials.from_refs(token_ref="env:TOKEN", environ=env)
    assert (token.kind, token.username, token.token) == (CredentialKind.TOKEN, "x-access-token", "tok-123")
    assert Credentials.from_refs(token_ref="env:TOKEN", username="oauth2", environ=env).username == "oauth2"

    from_file = Credentials.from_refs(ssh_key_ref=f"file:{key_file}", passphrase_ref="env:PASS", environ=env)
    assert from_file.ssh_private_key_path == key_file and from_file.passphrase == "pw"
    assert from_file.username == "git"

    in_memory = Credentials.from_refs(ssh_key_ref="env:KEY", environ=env)
    assert in_memory.ssh_private_key == KEY and in_memory.ssh_private_key_path is None

    with pytest.raises(ValueError, match="exactly one"):
        Credentials.from_refs(environ=env)
    with pytest.raises(ValueError, match="passphrase"):
        Credentials.from_refs(token_ref="env:TOKEN", passphrase_ref="env:PASS", environ=env)
    with pytest.raises(SecretUnavailable):
        Credentials.from_refs(ssh_key_ref=f"file:{tmp_path / 'missing'}", environ=env)


def test_credentials_never_print_secrets() -> None:
    for creds in (
        Credentials.from_token("tok-SECRET-123"),
        Credentials.from_ssh_key(KEY, passphrase="pass-SECRET"),
    ):
        for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
            assert "SECRET" not in text and "b3BlbnNzaC" not in text and "<redacted>" in text
    assert "x-access-token" in repr(Credentials.from_token("t"))


def test_credentials_validation() -> None:
    with pytest.raises(ValueError):
        Credentials.from_token("")
    with pytest.raises(ValueError):
        Credentials.from_token("two\nlines")
    with pytest.raises(ValueError, match="private key"):
        Credentials.from_ssh_key("ssh-ed25519 AAAA... a public key")


def test_scrub() -> None:
    assert scrub("failed with tok-123 in it", ("tok-123",)) == "failed with *** in it"
    assert scrub("line b3BlbnNzaC1rZXktdjEAAAAA leaked", (KEY,)) == "line *** leaked"
    assert scrub("a b c", ("a",)) == "a b c"  # too short to scrub safely


def test_errors_pickle_and_keep_their_fields() -> None:
    err = AuthenticationFailed("denied", url="https://host/x")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.url, copy.transient) == (
        AuthenticationFailed,
        "denied",
        "https://host/x",
        False,
    )
    big = pickle.loads(pickle.dumps(FileTooLarge("big", size=10, limit=5)))
    assert (big.size, big.limit) == (10, 5)
    assert RemoteUnreachable.transient
