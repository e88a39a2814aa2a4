"""Failure classification with real failing remotes, all on loopback (never an outside address)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from odin.controller.git import (
    AuthenticationFailed,
    CertificateRejected,
    Credentials,
    GitError,
    RemoteUnreachable,
    RepositoryNotFound,
)
from tests.git.conftest import MirrorFactory
from tests.support.git import FakeGitHttpServer, closed_port, self_signed_certificate

TOKEN = "ghp_s3cretTOKENvalue1234567890"


def assert_no_secret(err: BaseException) -> None:
    for text in (str(err), repr(err), str(err.__cause__), repr(err.__cause__)):
        assert TOKEN not in text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://127.0.0.1:{port}/org/repo.git", id="https"),
        pytest.param("ssh://git@127.0.0.1:{port}/org/repo.git", id="ssh"),
    ],
)
def test_closed_loopback_port_is_unreachable(make_mirror: MirrorFactory, url: str) -> None:
    mirror = make_mirror(url.format(port=closed_port()), credentials=Credentials.from_token(TOKEN), proxy=False)
    with pytest.raises(RemoteUnreachable) as err:
        mirror.fetch()
    assert err.value.transient
    assert "127.0.0.1" in str(err.value)
    assert isinstance(err.value.__cause__, pygit2.GitError)
    assert_no_secret(err.value)


def test_http_401_with_token_is_authentication_failed_and_token_is_sent_once(make_mirror: MirrorFactory) -> None:
    credentials = Credentials.from_token(TOKEN)
    with FakeGitHttpServer.start(status=401) as server:
        mirror = make_mirror(server.url(), credentials=credentials, allow_insecure_http=True, proxy=False)
        with pytest.raises(AuthenticationFailed) as err:
            mirror.fetch()

    assert not err.value.transient
    assert "rejected the configured credentials" in str(err.value)
    assert_no_secret(err.value)
    assert TOKEN not in repr(credentials) and TOKEN not in str(credentials) and TOKEN not in repr(mirror)
    # The token was offered exactly once (libgit2 alone would retry 15 times).
    assert server.basic_credentials() == [("x-access-token", TOKEN)]


def test_http_401_without_credentials(make_mirror: MirrorFactory) -> None:
    with FakeGitHttpServer.start(status=401) as server:
        with pytest.raises(AuthenticationFailed, match="no credentials are configured"):
            make_mirror(server.url(), allow_insecure_http=True, proxy=False).fetch()
        assert server.authorizations == [None]


@pytest.mark.parametrize(
    ("status", "error", "transient"),
    [
        (403, AuthenticationFailed, False),
        (404, RepositoryNotFound, False),
        (500, RemoteUnreachable, True),
        (503, RemoteUnreachable, True),
    ],
)
def test_http_status_classification(
    make_mirror: MirrorFactory, status: int, error: type[GitError], transient: bool
) -> None:
    with FakeGitHttpServer.start(status=status) as server:
        mirror = make_mirror(
            server.url(), credentials=Credentials.from_token(TOKEN), allow_insecure_http=True, proxy=False
        )
        with pytest.raises(error) as err:
            mirror.fetch()
    assert err.value.transient is transient
    assert f"HTTP {status}" in str(err.value)
    assert_no_secret(err.value)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Path]]]:
    """Two throwaway loopback certificates: one that libgit2 is told to trust, one that it is not."""
    base = tmp_path_factory.mktemp("tls")
    trusted = self_signed_certificate(base / "trusted")
    untrusted = self_signed_certificate(base / "untrusted")
    if trusted is None or untrusted is None:
        pytest.skip("the openssl tool is needed to make a test certificate")
    # Adds a trust anchor to libgit2's TLS context for this process (it does not replace the system ones); the
    # key of this throwaway certificate lives only in the test's temporary directory.
    pygit2.settings.set_ssl_cert_locations(str(trusted[0]), None)
    yield {"trusted": trusted, "untrusted": untrusted}


def test_https_with_an_untrusted_certificate_is_rejected(
    make_mirror: MirrorFactory, certificates: dict[str, tuple[Path, Path]]
) -> None:
    with FakeGitHttpServer.start(status=401, tls=certificates["untrusted"]) as server:
        mirror = make_mirror(server.url(), credentials=Credentials.from_token(TOKEN), proxy=False)
        with pytest.raises(CertificateRejected) as err:
            mirror.fetch()
        assert server.authorizations == []  # nothing was sent to the unverified server
    assert not err.value.transient
    assert "TLS certificate" in str(err.value)


def test_https_401_is_authentication_failed(
    make_mirror: MirrorFactory, certificates: dict[str, tuple[Path, Path]]
) -> None:
    with FakeGitHttpServer.start(status=401, tls=certificates["trusted"]) as server:
        mirror = make_mirror(server.url(), credentials=Credentials.from_token(TOKEN), proxy=False)
        with pytest.raises(AuthenticationFailed) as err:
            mirror.fetch()
        assert server.basic_credentials() == [("x-access-token", TOKEN)]
    assert_no_secret(err.value)
    assert server.url().split("//")[1].split("/")[0] in str(err.value)


def test_token_is_refused_by_an_ssh_only_remote_without_being_sent(make_mirror: MirrorFactory) -> None:
    # An https URL with an SSH key: the server asks for user/password, which an SSH credential cannot answer.
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
    with FakeGitHttpServer.start(status=401) as server:
        mirror = make_mirror(
            server.url(), credentials=Credentials.from_ssh_key(key), allow_insecure_http=True, proxy=False
        )
        with pytest.raises(AuthenticationFailed, match="does not accept SSH key"):
            mirror.fetch()
