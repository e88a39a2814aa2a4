"""Which files the local sandbox is told hold secrets (controller/secret_files.py): every one the settings name, and
every `file:` reference Odin parses or resolves, whoever asks. That the sandbox closes them is
tests/controller/test_local_sandbox.py; the whole path through `odin serve` is tests/e2e/test_task_secrets.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from odin.controller import library_credentials, secret_files
from odin.controller.artifacts.settings import ArtifactSettings, resolve_secret
from odin.controller.git.credentials import SecretRef, parse_secret_ref, resolve_secret_ref
from odin.controller.settings import Settings


def test_the_settings_name_their_secret_files_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ODIN_"):
            monkeypatch.delenv(name)
    secret = tmp_path / "secret"
    settings = Settings(
        data_dir=tmp_path / "data",
        repo="file:///srv/git/ml.git",  # a repository, not a secret
        jwt_secret_file=secret / "jwt",
        admin_password_file=secret / "admin",
        jwt_private_key_file=secret / "private.pem",
        jwt_public_key_file=secret / "public.pem",  # public
        git_ssh_key=str(secret / "id_ed25519"),
        kube_config=secret / "kubeconfig",
        webhook_secret=SecretStr(f"file:{secret}/hook"),
        webhook_secret_previous=SecretStr("env:ODIN_OLD_HOOK"),
        status_token=SecretStr(f" file:{secret}/status "),
        midgard_token=SecretStr("plain-value"),
    )
    artifacts = ArtifactSettings(backend="s3", bucket="b", secret_access_key=SecretStr(f"file:{secret}/s3"))
    secret_files.note_settings(settings, artifacts, None)
    named = secret_files.paths()
    wanted = {"jwt", "admin", "private.pem", "id_ed25519", "kubeconfig", "hook", "status", "s3"}
    assert {str(secret / name) for name in wanted} <= named
    assert str(secret / "public.pem") not in named
    assert not any(path.startswith("/srv") or "ODIN_OLD_HOOK" in path or "plain" in path for path in named)


def test_an_ssh_key_setting_that_is_a_reference_names_the_referenced_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", git_ssh_key=f"file:{tmp_path}/deploy-key")
    secret_files.note_settings(settings)
    assert str(tmp_path / "deploy-key") in secret_files.paths()
    assert f"file:{tmp_path}/deploy-key" not in secret_files.paths()


def test_every_file_reference_parsed_or_resolved_is_named(tmp_path: Path) -> None:
    """The API parses a repository's references when it is registered; webhooks, notifiers and the artifact store
    resolve theirs when used: each names its file before anything reads it."""
    parse_secret_ref(f"file:{tmp_path}/registered")
    parse_secret_ref("env:NOT_A_FILE")
    with pytest.raises(Exception, match="does not exist"):
        resolve_secret_ref(SecretRef("file", f"{tmp_path}/made-by-hand"))
    with pytest.raises(Exception, match="cannot read the credential file"):
        resolve_secret(SecretStr(f"file:{tmp_path}/s3-key"))
    named = secret_files.paths()
    assert {str(tmp_path / n) for n in ("registered", "made-by-hand", "s3-key")} <= named
    assert not any("NOT_A_FILE" in path for path in named)


LIBRARY_VARIABLES = (
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "BOTO_CONFIG", "NETRC", "DATABRICKS_CONFIG_FILE", "KUBECONFIG",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CREDENTIAL_FILE",
    "AWS_LOGIN_CACHE_DIRECTORY",
)  # fmt: skip


def test_the_credential_files_the_libraries_find_by_themselves_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no variable set, each library's default place in `HOME`, existing or not (the sandbox skips a missing
    one at each start); the server's `HOME` is the one that counts, not the password database's."""
    home = tmp_path / "home"
    for name in LIBRARY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    secret_files.note_library_defaults()
    wanted = {
        ".aws/credentials", ".aws/config", ".boto", ".netrc", "_netrc", ".kube/config", ".mlflow/credentials",
        ".databrickscfg",
    }  # fmt: skip
    named = secret_files.paths()
    assert {str(home / name) for name in wanted} <= named
    assert {"/etc/boto.cfg", library_credentials.SERVICE_ACCOUNT_TOKEN} <= named
    assert str(home) not in named and str(home / ".aws") not in named, "a directory is never named"


def test_a_librarys_variable_replaces_its_default_as_the_library_reads_it(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "elsewhere"
    env = {
        "HOME": str(home),
        "AWS_SHARED_CREDENTIALS_FILE": f"{other}/aws-credentials",
        "AWS_CONFIG_FILE": "~/aws-config",  # botocore expands `~`
        "KUBECONFIG": f"{other}/a::~/b",  # a list, `:` separated; empty entries skipped
        "NETRC": "",  # set but empty: requests reads no netrc at all
        "DATABRICKS_CONFIG_FILE": "",  # set but empty: the Databricks SDK falls back to its default
        "AWS_WEB_IDENTITY_TOKEN_FILE": f"{other}/web-identity",
        "BOTO_CONFIG": "relative.cfg",  # from the working directory, as boto would open it
    }
    files = library_credentials.default_files(env)
    assert files == [
        f"{other}/aws-credentials", f"{home}/aws-config", os.path.abspath("relative.cfg"), f"{home}/.databrickscfg",
        f"{other}/web-identity", f"{other}/a", f"{home}/b", f"{home}/.mlflow/credentials",
        library_credentials.SERVICE_ACCOUNT_TOKEN,
    ]  # fmt: skip
    assert not any(".netrc" in f or ".aws/credentials" in f or ".kube/config" in f for f in files)


LIBRARIES_SAY = r"""
import json, os
import botocore.session
from botocore.credentials import AssumeRoleWithWebIdentityProvider, BotoProvider, ContainerProvider
from databricks.sdk.config import Config
from kubernetes.config import incluster_config, kube_config
from mlflow.utils.credentials import _get_credentials_path
from requests.utils import NETRC_FILES

session = botocore.session.Session()
print(json.dumps({
    "aws": [os.path.expanduser(session.get_config_variable(v)) for v in ("credentials_file", "config_file")],
    "aws_variables": [botocore.session.Session.SESSION_VARIABLES[v][1] for v in ("credentials_file", "config_file")],
    "boto": [BotoProvider.BOTO_CONFIG_ENV, *map(os.path.expanduser, BotoProvider.DEFAULT_CONFIG_FILENAMES)],
    "tokens": [AssumeRoleWithWebIdentityProvider._CONFIG_TO_ENV_VAR["web_identity_token_file"],
               ContainerProvider.ENV_VAR_AUTH_TOKEN_FILE],
    "kube": [os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION), kube_config.ENV_KUBECONFIG_PATH_SEPARATOR,
             incluster_config.SERVICE_TOKEN_FILENAME],
    "netrc": [os.path.expanduser(f"~/{name}") for name in NETRC_FILES],
    "mlflow": _get_credentials_path(),
    "databricks": [a.env for a in Config.attributes() if a.name == "config_file"][0],
}))
"""


def test_the_copied_defaults_are_the_installed_libraries_own(tmp_path: Path) -> None:
    """`library_credentials` copies the libraries' constants rather than importing them (start-up cost, the
    import contracts): a real interpreter with the libraries imported says what they would read, in a `HOME` of
    the test's and with none of their variables set."""
    env = {k: v for k, v in os.environ.items() if k not in LIBRARY_VARIABLES} | {"HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", LIBRARIES_SAY], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    said = json.loads(out.splitlines()[-1])
    ours = library_credentials.default_files({"HOME": str(tmp_path)})
    assert said["aws_variables"] == ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"]
    assert said["boto"][0] == "BOTO_CONFIG" and said["databricks"] == "DATABRICKS_CONFIG_FILE"
    assert said["kube"][1] == ":" and said["kube"][2] == library_credentials.SERVICE_ACCOUNT_TOKEN
    for path in [*said["aws"], *said["boto"][1:], said["kube"][0], *said["netrc"], said["mlflow"]]:
        assert path in ours, f"{path} is read by a library but not closed"
    with_tokens = library_credentials.default_files({"HOME": str(tmp_path)} | {v: f"/t/{v}" for v in said["tokens"]})
    assert {f"/t/{v}" for v in said["tokens"]} <= set(with_tokens)


# The files that credential files name in turn (library_credentials.files_named_in): read out of them at each start.

OLD = 1_700_000_000  # a modification time far from now: a parse of the file is kept (library_credentials.RECENT_NS)


def _write(path: Path, text: str | bytes, *, old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def _kubeconfig(users: object, clusters: object = ()) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Config", "users": users, "clusters": list(clusters)})  # YAML too


def test_a_kubeconfig_names_its_users_key_certificate_and_token_files_relative_to_the_merged_files(
    tmp_path: Path,
) -> None:
    """A relative name is taken from the directory of a kubeconfig merged with the one that names it, as the
    Kubernetes client does (a client key from the cluster's file, a token file from the user's): a user in `a/`
    may pair with a cluster in `b/`. The cluster's `certificate-authority` is public and stays open."""
    first = _write(tmp_path / "a" / "config", _kubeconfig(
        [{"name": "u1", "user": {"client-key": "keys/u1.key", "client-certificate": "/pki/u1.crt",
                                 "tokenFile": "../tokens/u1"}}],
        [{"name": "c1", "cluster": {"server": "https://k", "certificate-authority": "ca.crt"}}],
    ))  # fmt: skip
    second = _write(tmp_path / "b" / "nested" / "kubeconfig", _kubeconfig([
        {"name": "u2", "user": {"client-key": "u2.key", "client-key-data": "aW5saW5l"}},  # the file closed anyway
        {"name": "odd", "user": None}, "not a user", {"name": "n", "user": {"client-key": 42, "tokenFile": ""}},
    ]))  # fmt: skip
    missing = tmp_path / "c" / "config"  # a `KUBECONFIG` entry that does not exist contributes nothing
    found = library_credentials.Sources(kubeconfigs=((str(first), str(missing), str(second)),))
    named = library_credentials.files_named_in(found)
    a, b = tmp_path / "a", tmp_path / "b" / "nested"
    wanted = {
        a / "keys/u1.key", b / "keys/u1.key", Path("/pki/u1.crt"), tmp_path / "tokens/u1", b.parent / "tokens/u1",
        a / "u2.key", b / "u2.key",
    }  # fmt: skip
    assert sorted(named) == sorted(map(str, wanted))
    assert not any("ca.crt" in path or str(missing.parent) in path for path in named)


def test_each_kubeconfig_list_is_merged_apart(tmp_path: Path) -> None:
    """`KUBECONFIG`'s list and `ODIN_KUBE_CONFIG`'s are loaded apart: a name in one is not taken from the other's
    directories. The directory is the kubeconfig's as named, not its link target's (`os.path.dirname`)."""
    target = _write(tmp_path / "real" / "config", _kubeconfig([{"name": "u", "user": {"tokenFile": "token"}}]))
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "config").symlink_to(target)
    other = _write(tmp_path / "other" / "config", _kubeconfig([{"name": "v", "user": {"client-key": "v.key"}}]))
    found = library_credentials.Sources(kubeconfigs=((str(tmp_path / "kube" / "config"),), (str(other),)))
    assert library_credentials.files_named_in(found) == [str(tmp_path / "kube" / "token"), str(other.parent / "v.key")]


def test_kubeconfig_entries_are_read_as_the_kubernetes_client_reads_kubeconfig(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert library_credentials.kubeconfig_entries("~/a::/etc/k8s/b:rel", env) == (
        str(tmp_path / "a"), "/etc/k8s/b", os.path.abspath("rel"),
    )  # fmt: skip


def test_aws_profiles_name_their_web_identity_token_files_as_botocore_opens_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every profile of the config and of the credentials file (`configparser`, as botocore reads them); a relative
    name from the working directory, which is where botocore opens it."""
    monkeypatch.chdir(tmp_path)
    config = _write(tmp_path / "aws" / "config", (
        "[default]\nregion = eu-west-1\nweb_identity_token_file = /var/run/eks/token\n\n"
        "[profile relative]\nrole_arn = arn:aws:iam::1:role/r\nWeb_Identity_Token_File = tokens/relative\n\n"
        "[profile nested]\ns3 =\n    web_identity_token_file = not-a-path\n\n"
        "[profile empty]\nweb_identity_token_file =\n\n[sso-session s]\nsso_start_url = https://x\n"
    ))  # fmt: skip
    credentials = _write(tmp_path / "aws" / "credentials", "[ci]\nweb_identity_token_file=/srv/ci/token\n")
    found = library_credentials.Sources(aws_configs=(str(config), str(credentials), str(tmp_path / "missing")))
    assert library_credentials.files_named_in(found) == [
        "/var/run/eks/token", str(tmp_path / "tokens" / "relative"), "/srv/ci/token",
    ]  # fmt: skip


def test_the_aws_token_caches_name_the_json_files_present_now(tmp_path: Path) -> None:
    """botocore's SSO and login caches and the AWS CLI's: each `<key>.json` there now, nothing else; a directory
    that does not exist names nothing. The directories follow `HOME` and `AWS_LOGIN_CACHE_DIRECTORY` as botocore's
    do (`$VAR` and `~` expanded; empty: none)."""
    home = tmp_path / "home"
    sso = home / ".aws" / "sso" / "cache"
    for name in ("0b5e.json", "f00d.json", "README", "0b5e.json.tmp"):
        _write(sso / name, "{}")
    found = library_credentials.sources({"HOME": str(home), "AWS_LOGIN_CACHE_DIRECTORY": "$HOME/login-cache"})
    assert found.aws_caches == (str(sso), str(home / "login-cache"), str(home / ".aws" / "cli" / "cache"))
    assert library_credentials.files_named_in(found) == [str(sso / "0b5e.json"), str(sso / "f00d.json")]
    _write(home / "login-cache" / "abc.json", "{}")
    assert str(home / "login-cache" / "abc.json") in library_credentials.files_named_in(found)
    no_login = library_credentials.sources({"HOME": str(home), "AWS_LOGIN_CACHE_DIRECTORY": ""})
    assert str(home / ".aws" / "login" / "cache") not in no_login.aws_caches and len(no_login.aws_caches) == 2
    assert library_credentials.sources({"HOME": str(home)}).aws_caches[1] == str(home / ".aws" / "login" / "cache")


def test_the_aws_files_expand_variables_as_botocore_does(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AWS_CONFIG_FILE": "${HOME}/conf/$PROFILE_DIR/config", "PROFILE_DIR": "p"}
    env["AWS_SHARED_CREDENTIALS_FILE"] = "~/$UNSET/credentials"  # an unset variable is left as it is
    found = library_credentials.sources(env)
    assert found.aws_configs == (f"{tmp_path}/$UNSET/credentials", f"{tmp_path}/conf/p/config")
    assert found.aws_configs[1] in library_credentials.default_files(env)


def test_a_credential_file_that_cannot_be_read_or_parsed_names_nothing_and_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed YAML or INI, the wrong shape, bytes that are not UTF-8 (which the libraries refuse too), a FIFO
    (never opened: it would block the start), a directory, an oversized file: each names nothing, never raises, and
    is logged once (with its path and never its content) until it changes."""
    secret = "s3cr3t-" + os.urandom(8).hex()
    kube = tmp_path / "kube"
    bad_kube = {
        "yaml": _write(kube / "yaml", f"users: [{{name: u, user: {{token: {secret}\n"),
        "list": _write(kube / "list", f"- {secret}\n"),
        "users": _write(kube / "users", f"users: {secret}\n"),
        "big": _write(kube / "big", _kubeconfig([{"name": "u", "user": {"client-key": "k" * 200}}])),
    }
    os.mkfifo(kube / "fifo")
    (kube / "directory").mkdir()
    aws = tmp_path / "aws"
    bad_aws = {
        "header": _write(aws / "header", f"aws_secret_access_key = {secret}\n"),
        "duplicate": _write(aws / "duplicate", f"[a]\nx = {secret}\n[a]\ny = 1\n"),
        "continuation": _write(aws / "continuation", f"[a]\n{secret}\n"),
        "latin-1": _write(aws / "latin-1", "[a]\nweb_identity_token_file = /k/\xe9\n".encode("latin-1")),
    }
    good = _write(kube / "good", "users: [{name: u, user: {client-key: /k/\xe9.key}}]\n")
    monkeypatch.setattr(library_credentials, "MAX_BYTES", 128)
    merged = (*map(str, bad_kube.values()), str(kube / "fifo"), str(kube / "directory"), str(good))
    found = library_credentials.Sources(kubeconfigs=(merged,), aws_configs=tuple(map(str, bad_aws.values())))
    with caplog.at_level(logging.DEBUG, logger="odin.controller.library_credentials"):
        first = library_credentials.files_named_in(found)
        again = library_credentials.files_named_in(found)
    assert first == again == ["/k/\xe9.key"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path in [*bad_kube.values(), *bad_aws.values(), kube / "fifo", kube / "directory"]:
        assert sum(f" {path} " in message for message in warned) == 1, (path, warned)
    assert not any(secret in message for message in caplog.messages), "a credential file's content was logged"
    assert any(f"{bad_kube['yaml']} " in m and "at line" in m for m in warned), warned


def test_a_parse_is_kept_while_the_file_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept per (path, device, inode, modification and change times, size): an unchanged file is not parsed again
    at the next start, a changed one is; one modified within `RECENT_NS` is parsed again at each start until it
    settles."""
    calls: list[str] = []
    parse = library_credentials._kubeconfig_names

    def counted(text: str) -> tuple[str, ...]:
        calls.append(text)
        return parse(text)

    monkeypatch.setattr(library_credentials, "_kubeconfig_names", counted)
    config = _write(tmp_path / "config", _kubeconfig([{"name": "u", "user": {"client-key": "a.key"}}]))
    found = library_credentials.Sources(kubeconfigs=((str(config),),))
    assert library_credentials.files_named_in(found) == [str(tmp_path / "a.key")]
    assert library_credentials.files_named_in(found) == [str(tmp_path / "a.key")]
    assert len(calls) == 1, "an unchanged file was parsed again"
    _write(config, _kubeconfig([{"name": "u", "user": {"client-key": "bb.key"}}]))  # another size
    assert library_credentials.files_named_in(found) == [str(tmp_path / "bb.key")]
    assert len(calls) == 2
    _write(config, _kubeconfig([{"name": "u", "user": {"client-key": "cc.key"}}]), old=False)  # same size, now
    for _ in range(2):
        assert library_credentials.files_named_in(found) == [str(tmp_path / "cc.key")]
    assert len(calls) == 4, "a file modified just now is read again at the next start"
    os.utime(config, (OLD + 1, OLD + 1))
    library_credentials.files_named_in(found)
    library_credentials.files_named_in(found)
    assert len(calls) == 5
    config.unlink()
    assert library_credentials.files_named_in(found) == []


def test_the_files_a_credential_file_names_join_the_secret_files_at_each_start_and_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`secret_files.paths()` (what the sandbox asks at each start) reads the named files out of the kubeconfigs
    (`KUBECONFIG`'s and `ODIN_KUBE_CONFIG`'s, `~` expanded as the client does) and the AWS files then; a key named
    before an edit stays closed after it."""
    home = tmp_path / "home"
    for name in LIBRARY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env-kubeconfig"))
    secret_files.note_library_defaults()
    settings = Settings(data_dir=tmp_path / "data", kube_config=Path("~/odin-kubeconfig"))
    secret_files.note_settings(settings)
    assert str(home / "odin-kubeconfig") in secret_files.paths()
    before = secret_files.paths()
    _write(tmp_path / "env-kubeconfig", _kubeconfig([{"name": "u", "user": {"client-key": "env.key"}}]))
    _write(home / "odin-kubeconfig", _kubeconfig([{"name": "u", "user": {"tokenFile": "/t/odin-token"}}]))
    _write(home / ".aws" / "config", "[profile p]\nweb_identity_token_file = /t/web\n")
    _write(home / ".aws" / "sso" / "cache" / "abc.json", "{}")
    new = {str(tmp_path / "env.key"), "/t/odin-token", "/t/web", str(home / ".aws" / "sso" / "cache" / "abc.json")}
    assert not new & before
    assert new <= secret_files.paths()
    _write(tmp_path / "env-kubeconfig", _kubeconfig([{"name": "u", "user": {"client-key": "rotated.key"}}]))
    assert {str(tmp_path / "env.key"), str(tmp_path / "rotated.key")} <= secret_files.paths()


KUBERNETES_SAYS = r"""
import json, sys
from kubernetes import client
from kubernetes.config import kube_config

out = {}
for context in ("user-a-cluster-b", "user-b-cluster-a"):
    configuration = client.Configuration()
    kube_config.load_kube_config(sys.argv[1], context=context, client_configuration=configuration,
                                 persist_config=False)
    out[context] = {"key": configuration.key_file, "cert": configuration.cert_file,
                    "token": configuration.api_key.get("BearerToken")}
print(json.dumps(out))
"""

BOTOCORE_SAYS = r"""
import json, os
import botocore.session
from botocore.credentials import OriginalEC2Provider, SSOProvider
from botocore.tokens import SSOTokenProvider
from botocore.utils import JSONFileCache
try:  # botocore 1.42+; older ones have no login token cache (Odin closes the directory whatever the version)
    from botocore.utils import get_login_token_cache_directory
except ImportError:
    get_login_token_cache_directory = lambda: None

session = botocore.session.Session(profile="web")
provider = session.get_component("credential_provider").get_provider("assume-role-with-web-identity")
cache = JSONFileCache(SSOProvider._SSO_TOKEN_CACHE_DIR)
print(json.dumps({
    "web_identity_token_file": provider._get_config("web_identity_token_file"),
    "sso": [SSOProvider._SSO_TOKEN_CACHE_DIR, SSOTokenProvider._SSO_TOKEN_CACHE_DIR],
    "sso_file": cache._convert_cache_key("k"),
    "login": get_login_token_cache_directory(),
    "ec2": OriginalEC2Provider.CRED_FILE_ENV,
}))
"""


def test_the_named_files_are_the_ones_the_installed_libraries_read(tmp_path: Path) -> None:
    """A real Kubernetes client loads two merged kubeconfigs (a user of one with a cluster of the other, both ways)
    and says which key, certificate and token files it took; real botocore says where its web identity token file
    and its token caches are. Each is among `files_named_in`'s."""
    for name in ("a/keys/a.key", "a/keys/a.crt", "b/keys/a.key", "b/keys/a.crt", "a/token-b", "b/token-b"):
        _write(tmp_path / name, name)  # the client checks each file exists; a token says which one was read
    server = {"server": "https://kube.invalid:6443"}
    first = _write(tmp_path / "a" / "config", json.dumps({
        "clusters": [{"name": "a", "cluster": server}],
        "users": [{"name": "a", "user": {"client-key": "keys/a.key", "client-certificate": "keys/a.crt"}}],
        "contexts": [{"name": "user-a-cluster-b", "context": {"cluster": "b", "user": "a"}}],
    }))  # fmt: skip
    second = _write(tmp_path / "b" / "config", json.dumps({
        "clusters": [{"name": "b", "cluster": server}],
        "users": [{"name": "b", "user": {"tokenFile": "token-b"}}],
        "contexts": [{"name": "user-b-cluster-a", "context": {"cluster": "a", "user": "b"}}],
    }))  # fmt: skip
    kubeconfig = f"{first}:{second}"
    said = json.loads(
        subprocess.run(
            [sys.executable, "-c", KUBERNETES_SAYS, kubeconfig], capture_output=True, text=True, timeout=120, check=True
        ).stdout.splitlines()[-1]
    )
    ours = library_credentials.files_named_in(library_credentials.sources({"KUBECONFIG": kubeconfig, "HOME": "/"}))
    assert said["user-a-cluster-b"]["key"] == str(tmp_path / "b/keys/a.key"), "the client's base is the cluster's"
    for context in said.values():
        for key in ("key", "cert"):
            assert context[key] is None or context[key] in ours, (context, ours)
    assert said["user-b-cluster-a"]["token"] == "Bearer b/token-b", "a token file's base is the user's"
    assert str(tmp_path / "b/token-b") in ours

    home = tmp_path / "home"
    _write(home / ".aws" / "config", "[profile web]\nweb_identity_token_file = tokens/web\nrole_arn = arn:r\n")
    env = {k: v for k, v in os.environ.items() if k not in LIBRARY_VARIABLES and not k.startswith("AWS_")}
    env["HOME"] = str(home)
    said = json.loads(
        subprocess.run(
            [sys.executable, "-c", BOTOCORE_SAYS], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=120, check=True,
        ).stdout.splitlines()[-1]
    )  # fmt: skip
    found = library_credentials.sources({"HOME": str(home)})
    assert said["ec2"] == "AWS_CREDENTIAL_FILE"
    assert "/t/ec2" in library_credentials.default_files({"HOME": str(home), said["ec2"]: "/t/ec2"})
    assert said["web_identity_token_file"] == "tokens/web"  # opened as given, from the working directory
    assert said["sso"] == [found.aws_caches[0]] * 2
    assert said["login"] in (None, found.aws_caches[1])  # None: a botocore without the login cache (the floor's)
    assert said["sso_file"] == f"{found.aws_caches[0]}/k.json"
    _write(Path(said["sso_file"]), "{}")
    with_cwd = library_credentials.files_named_in(found)
    assert said["sso_file"] in with_cwd and os.path.abspath("tokens/web") in with_cwd
