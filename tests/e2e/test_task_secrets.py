"""A task run by the local executor cannot read `odin serve`'s secrets (issue 8, item 2).

A real `odin serve` follows a real repository whose pipeline is a probe: it tries the server's /proc/<pid>/environ
(found through its parent, the attempt's wrapper), every /proc/*/environ, /proc/<server>/mem, the database and the
JWT key file, and prints what it got. Secrets are unique per test, so other Odin servers on the machine do not
matter. Run as root, the same-user and start-error cases start the server as `nobody` (a root task reads
everything, whatever Odin does), so the kernel's checks are the ones an ordinary deployment gets.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from odin.controller import library_credentials
from odin.controller.executors import landlock
from tests.support.git import GitRemote
from tests.support.server import BIN, OdinServer, free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")

IS_ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody") if IS_ROOT else None
LANDLOCK_ABI, LANDLOCK_MISSING = landlock.abi_version()

PROBE = r"""
import json, os, sys

data_dir = sys.argv[1]


def read(path):
    try:
        with open(path, "rb") as f:
            return {"ok": f.read(1 << 20).decode("latin-1")}
    except OSError as e:
        return {"errno": e.errno}


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


wrapper = os.getppid()
server = parent_of(wrapper)
readable = []
for name in os.listdir("/proc"):
    if name.isdigit():
        got = read(f"/proc/{name}/environ")
        if "ok" in got:
            readable.append(got["ok"])
try:
    os.close(os.open(f"/proc/{server}/mem", os.O_RDONLY))
    mem = "opened"
except OSError as e:
    mem = e.errno
with open(os.path.join(os.environ["ODIN_RUN_PATH"], "written-by-task"), "w") as f:
    f.write("ok")
print("PROBE " + json.dumps({
    "uid": os.getuid(),
    "groups": os.getgroups(),
    "env": dict(os.environ),
    "wrapper_environ": read(f"/proc/{wrapper}/environ"),
    "server_environ": read(f"/proc/{server}/environ"),
    "all_environ": readable,
    "server_mem": mem,
    "database": read(os.path.join(data_dir, "odin.db")),
    "jwt_secret": read(os.path.join(data_dir, "jwt-secret")),
}))
"""


def _odin_as_nobody() -> list[str] | None:
    """A command line that runs `odin` as `nobody`: this interpreter if `nobody` may run it, else the system's
    interpreter of the same version over this environment's site-packages; None when neither works."""
    assert NOBODY is not None
    site = sysconfig.get_paths()["purelib"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    start = (
        f"import site, sys; site.addsitedir({site!r}); sys.argv[0] = 'odin'; from odin.cli.admin import main; main()"
    )
    for python in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        probe = [python, "-c", f"import site; site.addsitedir({site!r}); import odin.cli.admin"]
        try:
            ok = (
                subprocess.run(
                    probe,
                    check=False,
                    capture_output=True,
                    timeout=60,
                    env={**os.environ, **NOBODY_ENV},
                    **_nobody_kwargs(),
                ).returncode
                == 0
            )
        except OSError:
            ok = False
        if ok:
            return [python, "-c", start]
    return None


def _nobody_kwargs() -> dict[str, Any]:
    assert NOBODY is not None
    return {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid, "extra_groups": []}


NOBODY_ENV = {"HOME": tempfile.gettempdir()}  # HOME=/root would make libgit2 fail on /root/.gitconfig


def _unprivileged(base: Path, data_dir: Path) -> tuple[list[str], dict[str, Any]]:
    """How to start `odin` as a user other than root, with `base` given to it."""
    data_dir.mkdir(exist_ok=True)
    if NOBODY is None:
        return [str(BIN / "odin")], {}
    found = _odin_as_nobody()
    if found is None:
        pytest.skip("no Python interpreter the user nobody may run")
    _chown_tree(base, NOBODY.pw_uid, NOBODY.pw_gid)
    return found, _nobody_kwargs()


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A directory for the test: tmp_path, or (as root) a fresh one `nobody` can be given (tmp_path is 0700 root)."""
    if not IS_ROOT:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="odin-secrets-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _probe_repo(base: Path, data_dir: Path) -> GitRemote:
    remote = GitRemote.create(base / "repo")
    pipeline = {
        "name": "probe",
        "tasks": [{"name": "probe", "image": "python", "command": ["python3", "probe.py", str(data_dir)]}],
    }
    remote.commit({"probe/main.yml": json.dumps(pipeline), "probe/probe.py": PROBE})
    return remote


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _probe_result(data_dir: Path, server: OdinServer) -> dict[str, Any]:
    def result() -> dict[str, Any] | None:
        for log in (data_dir / "tasks").glob("*/probe.1.log"):
            if log.with_name("probe.1.exit").exists() or ") finished: " in server.log():
                for line in log.read_text(errors="replace").splitlines():
                    if line.startswith("PROBE "):
                        return dict(json.loads(line[len("PROBE ") :]))
                raise AssertionError(f"the probe ended without a result:\n{log.read_text()}\n{server.log()}")
        return None

    found = wait_until(result, 60, interval=0.1, message=f"the probe task ran (server log: {server.log_path})")
    assert found is not None
    return found


def _secret(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def _assert_secrets_unseen(probe: dict[str, Any], secrets: list[str]) -> None:
    env_text = json.dumps(probe["env"])
    for secret in secrets:
        assert secret not in env_text, "a secret reached the task's environment"
        assert secret not in json.dumps(probe["wrapper_environ"]), "a secret is in the wrapper's environment"
        assert secret not in json.dumps(probe["server_environ"]), "the task read a secret from Odin's environ"
        assert not any(secret in blob for blob in probe["all_environ"]), "a secret is readable in /proc/*/environ"
    assert not any(k.startswith("ODIN_") and any(w in k for w in ("SECRET", "PASSWORD", "TOKEN")) for k in probe["env"])
    assert "errno" in probe["server_environ"], "Odin's /proc/<pid>/environ must be closed to its tasks"
    assert probe["server_mem"] != "opened", "Odin's /proc/<pid>/mem must be closed to its tasks"


def test_a_task_of_the_same_user_cannot_read_the_servers_secrets(base: Path) -> None:
    data_dir = base / "state"
    remote = _probe_repo(base, data_dir)
    secrets = [_secret("jwt"), _secret("hook"), _secret("admin-pw")]
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_JWT_SECRET": secrets[0],
        "ODIN_WEBHOOK_SECRET": secrets[1],
        "ODIN_ADMIN_PASSWORD": secrets[2],
    }
    command, as_user = _unprivileged(base, data_dir)
    if as_user:
        env.update(NOBODY_ENV)
    with OdinServer(data_dir, env, command=command, popen_kwargs=as_user) as server:
        probe = _probe_result(data_dir, server)
    assert probe["uid"] == (NOBODY.pw_uid if NOBODY is not None else os.geteuid())
    _assert_secrets_unseen(probe, secrets)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "odin.db").stat().st_mode) == 0o600


@pytest.mark.skipif(not IS_ROOT, reason="ODIN_LOCAL_TASK_USER needs Odin to run as root")
def test_a_task_user_cannot_read_the_data_directory(base: Path) -> None:
    assert NOBODY is not None
    base.chmod(0o711)  # the task user must reach the data directory (Odin refuses to start otherwise)
    data_dir = base / "state"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # left loose by an older version: fixed at start, with a warning
    key = _secret("jwt-file")
    (data_dir / "jwt-secret").write_text(key)
    (data_dir / "jwt-secret").chmod(0o644)
    remote = _probe_repo(base, data_dir)
    secrets = [key, _secret("hook"), _secret("admin-pw")]
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_WEBHOOK_SECRET": secrets[1],
        "ODIN_ADMIN_PASSWORD": secrets[2],
        "ODIN_LOCAL_TASK_USER": "nobody",
    }
    with OdinServer(data_dir, env) as server:
        probe = _probe_result(data_dir, server)
        log = server.log()
    assert probe["uid"] == NOBODY.pw_uid and 0 not in probe["groups"]
    _assert_secrets_unseen(probe, secrets)
    assert "errno" in probe["database"], "the task read Odin's database"
    assert "errno" in probe["jwt_secret"], "the task read Odin's JWT key"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o711
    for name in ("odin.db", "jwt-secret"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600
    assert "jwt-secret had mode 644" in log and "state had mode 755" in log
    [run_path] = (data_dir / "runs").iterdir()
    assert run_path.stat().st_uid == NOBODY.pw_uid
    assert (run_path / "written-by-task").read_text() == "ok"


def test_a_task_user_without_root_is_a_clear_start_error(base: Path) -> None:
    data_dir = base / "state"
    command, as_user = _unprivileged(base, data_dir)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
        "ODIN_DATA_DIR": str(data_dir),
        "ODIN_PORT": str(free_port()),
        "ODIN_LOCAL_TASK_USER": "nobody",
        **(NOBODY_ENV if as_user else {}),
    }
    proc = subprocess.Popen([*command, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **as_user)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"odin serve started with an unusable ODIN_LOCAL_TASK_USER:\n{out.decode()}") from None
    text = out.decode()
    assert proc.returncode == 2, text
    assert "ODIN_LOCAL_TASK_USER=nobody needs Odin to run as root" in text
    assert "Traceback" not in text


# -- the data directory, closed by ODIN_LOCAL_SANDBOX (Landlock) ------------------------------------------------------

SANDBOX_PROBE = r"""
import errno, json, os, sys, time

targets_file, artifact = sys.argv[1], sys.argv[2]


def attempt(op, path):
    try:
        if op == "read":
            with open(path, "rb") as f:
                return "ok:" + f.read(200).decode("latin-1")
        if op == "list":
            os.listdir(path)
        elif op == "write":
            with open(path, "w") as f:
                f.write("written")
        elif op == "signal":
            os.kill(int(path), 0)
        elif op == "mkstemp":  # in TMPDIR, as mktemp(1) does (the data directory is under /tmp here, which the
            import tempfile  # sandbox closes; Python's own default would quietly fall back to /var/tmp)
            fd, name = tempfile.mkstemp(dir=os.environ.get("TMPDIR", "/tmp"))
            os.write(fd, b"x")
            os.close(fd)
            os.unlink(name)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


deadline = time.monotonic() + 60
while not os.path.exists(targets_file) and time.monotonic() < deadline:
    time.sleep(0.05)
with open(targets_file) as f:
    targets = json.load(f)
server = int(open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()[1])
env = os.environ
targets.update({
    "server_environ": ["read", f"/proc/{server}/environ"],
    "server_mem": ["read", f"/proc/{server}/mem"],
    "signal_server": ["signal", str(server)],
    "own_tree": ["read", os.path.join(env["ODIN_WORK_PATH"], "probe.py")],
    "own_run": ["write", os.path.join(env["ODIN_RUN_PATH"], "written-by-probe")],
    "own_task_path": ["write", os.path.join(sys.argv[3], "x")],
    "own_root": ["write", os.path.join(env["ODIN_ROOT_PATH"], "written-by-probe")],
    "own_output": ["write", os.path.join(env["OUTPUT_PATH"], "x")],
    "own_results": ["write", os.path.join(env["RESULTS_PATH"], "x")],
    "own_ephemeral": ["write", os.path.join(env["ODIN_EPHEM_SCRATCH"], "x")],
    "own_tmp": ["mkstemp", ""],
    "artifact": ["read", artifact],
})
print("PROBE " + json.dumps({"artifact_path": artifact, **{k: attempt(*v) for k, v in targets.items()}}), flush=True)
"""

REFUSED_BY_THE_SANDBOX = (
    "jwt_secret", "database", "git_mirror", "list_git", "list_data", "list_runs", "plant", "other_run",
    "other_output", "other_tree",
)  # fmt: skip
CLOSED_ANYWAY = ("server_environ", "server_mem")  # non-dumpable
OWN = (
    "own_tree",
    "own_run",
    "own_task_path",
    "own_root",
    "own_output",
    "own_results",
    "own_ephemeral",
    "own_tmp",
    "artifact",
)


def _sandbox_repo(base: Path) -> GitRemote:
    """`victim` leaves files in its run and outputs; `probe` (after `made`, cached) tries the data directory."""
    remote = GitRemote.create(base / "repo")
    victim = {
        "name": "victim",
        "tasks": [{
            "name": "keep", "image": "sh",
            "command": ["sh", "-c", "echo theirs > $ODIN_RUN_PATH/secret && echo theirs > $OUTPUT_PATH/secret"],
            "outputs": {"artifacts": ["secret"]},
        }],
    }  # fmt: skip
    probe = {
        "name": "probe",
        "tasks": [
            {"name": "made", "image": "sh", "cache": True, "command": ["sh", "-c", "echo made > $OUTPUT_PATH/made"],
             "outputs": {"artifacts": ["made"]}},
            {"name": "probe", "image": "python", "depends": "made",
             "command": ["python3", "probe.py", str(base / "given" / "targets.json"), "${tasks.made.artifacts.made}",
                         "${TASK_PATH}"],
             "ephem_volumes": [{"name": "scratch", "type": "emptyDir"}], "mounts": [{"name": "scratch", "path": "/s"}]},
        ],
    }  # fmt: skip
    remote.commit({
        "victim/main.yml": json.dumps(victim), "probe/main.yml": json.dumps(probe), "probe/probe.py": SANDBOX_PROBE,
    })  # fmt: skip
    return remote


def _probe_results(data_dir: Path, server: OdinServer, count: int) -> dict[str, dict[str, Any]]:
    """Each finished probe's result, by run id, once `count` have finished."""

    def results() -> dict[str, dict[str, Any]] | str | None:
        found = {}
        for log in (data_dir / "tasks").glob("*/probe.1.log"):
            if not log.with_name("probe.1.exit").exists():
                return None
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("PROBE ")]
            if not lines:
                return f"the probe ended without a result:\n{log.read_text()}\n{server.log()}"
            found[log.parent.name] = json.loads(lines[0][len("PROBE ") :])
        return found if len(found) == count else None

    found = wait_until(results, 90, interval=0.1, message=f"{count} probe runs (server log: {server.log_path})")
    assert isinstance(found, dict), found
    return found


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_a_task_of_the_same_user_is_closed_out_of_the_data_directory(base: Path, mode: str) -> None:
    """With the sandbox (the default) a task reaches only its own paths in the data directory and the artifacts
    it references, a cache hit's (another run's) included; with `off`, the same task reads Odin's secrets and
    other runs' files: the sandbox is what closes them."""
    data_dir = base / "state"
    remote = _sandbox_repo(base)
    (base / "given").mkdir()  # beside the data directory, before the tasks start (what is made directly in `base`
    # afterwards is not theirs: only its entries as they start are, docs/local-executor.md)
    password = _secret("admin-pw")
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_ADMIN_PASSWORD": password,
        "ODIN_LOCAL_SANDBOX": mode,
    }
    command, as_user = _unprivileged(base, data_dir)
    if as_user:
        env.update(NOBODY_ENV)
    with OdinServer(data_dir, env, command=command, popen_kwargs=as_user) as server:
        [victim_exit] = wait_until(lambda: list((data_dir / "tasks").glob("*/keep.1.exit")), 60, message="victim ran")
        [victim_output] = (data_dir / "outputs" / victim_exit.parent.name).glob("keep/1/artifacts/secret")
        [victim_run_file] = (data_dir / "runs").glob("*/secret")
        [victim_tree] = [p for p in (data_dir / "trees").glob("*/main.yml") if "victim" in p.read_text()]
        mirror_file = next(p for p in sorted((data_dir / "git").rglob("*")) if p.is_file())
        targets = {
            "jwt_secret": ["read", str(data_dir / "jwt-secret")],
            "database": ["read", str(data_dir / "odin.db")],
            "git_mirror": ["read", str(mirror_file)],
            "list_git": ["list", str(data_dir / "git")],
            "list_data": ["list", str(data_dir)],
            "list_runs": ["list", str(data_dir / "runs")],
            "plant": ["write", str(data_dir / "planted")],
            "other_run": ["read", str(victim_run_file)],
            "other_output": ["read", str(victim_output)],
            "other_tree": ["read", str(victim_tree)],
        }
        (base / "given" / "targets.json").write_text(json.dumps(targets))
        [first] = _probe_results(data_dir, server, 1).values()
        # A second run of the same commit: `made` is a cache hit, its artifact is the first run's.
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        created = httpx.post(f"{server.url}/v1/runs", json={"pipeline": "probe"}, headers=headers)
        assert created.status_code == 201, created.text
        second = _probe_results(data_dir, server, 2)[created.json()["id"]]
        log = server.log()
    for probe in (first, second):
        assert {k: probe[k] for k in OWN if not probe[k].startswith("ok")} == {}, "a task lost its own paths"
        assert probe["artifact"] == "ok:made\n"
        assert {k: probe[k] for k in CLOSED_ANYWAY if probe[k] != "EACCES"} == {}
    assert first["artifact_path"] == second["artifact_path"], "the cache hit reads the first run's artifact"
    assert not second["artifact_path"].startswith(str(data_dir / "outputs" / created.json()["id"]))
    if mode == "auto":
        for probe in (first, second):
            assert {k: probe[k] for k in REFUSED_BY_THE_SANDBOX if probe[k] != "EACCES"} == {}, "the sandbox leaked"
            assert probe["signal_server"] == "EPERM"
        assert not (data_dir / "planted").exists()
        assert "in a Landlock (ABI" in log and "the data directory" in log and "ODIN_LOCAL_SANDBOX=auto" in log
    else:
        assert first["jwt_secret"] == "ok:" + (data_dir / "jwt-secret").read_text(encoding="latin-1")[:200]
        assert first["database"].startswith("ok:SQLite format 3")
        assert first["other_run"] == first["other_output"] == "ok:theirs\n"
        assert "with no sandbox (ODIN_LOCAL_SANDBOX=off)" in log and "ODIN_LOCAL_TASK_USER" in log


def _without_landlock() -> None:
    """preexec_fn: a seccomp filter that answers ENOSYS to `landlock_create_ruleset`, as a kernel without Landlock
    does (the real `odin serve` then finds none; nothing in Odin is patched)."""
    import ctypes

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    enosys = 38
    program = (Filter * 4)(
        Filter(0x20, 0, 0, 0),  # load the system call number
        Filter(0x15, 0, 1, 444),  # landlock_create_ruleset?
        Filter(0x06, 0, 0, 0x00050000 | enosys),  # then fail with ENOSYS
        Filter(0x06, 0, 0, 0x7FFF0000),  # else allow
    )
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(Program(4, program)), 0, 0):
        raise OSError(ctypes.get_errno(), "seccomp")


def test_without_landlock_auto_warns_and_landlock_refuses_to_start(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("seccomp is Linux's")
    data_dir = tmp_path / "state"
    with OdinServer(data_dir, {}, popen_kwargs={"preexec_fn": _without_landlock}) as server:
        log = server.log()
    assert "local tasks run as Odin's own user with no sandbox (this kernel" in log and "has no Landlock" in log
    assert "ODIN_LOCAL_TASK_USER" in log
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
        "ODIN_DATA_DIR": str(data_dir),
        "ODIN_PORT": str(free_port()),
        "ODIN_LOCAL_SANDBOX": "landlock",
    }
    done = subprocess.run(
        [str(BIN / "odin"), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_without_landlock,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "cannot start: ODIN_LOCAL_SANDBOX=landlock, but this kernel" in text and "Traceback" not in text


PEEK = r"""
# Each line of the targets file: a label and a path. `cat` each, as a curious task would.
while read -r label path; do
    if out=$(cat "$path" 2>&1); then echo "PEEK $label ok:$out"; else echo "PEEK $label refused:$out"; fi
done < "$1"
"""


def _peek_results(data_dir: Path, server: OdinServer) -> dict[str, str]:
    """What the `peek` task printed, by label, once it finished."""

    def result() -> dict[str, str] | None:
        for log in (data_dir / "tasks").glob("*/peek.1.log"):
            if log.with_name("peek.1.exit").exists():
                lines = [line.split(" ", 2) for line in log.read_text(errors="replace").splitlines()]
                return {label: rest for word, label, rest in (ln for ln in lines if len(ln) == 3) if word == "PEEK"}
        return None

    found = wait_until(result, 90, interval=0.1, message=f"the peek task ran (server log: {server.log_path})")
    assert found is not None
    return found


LIBRARY_VARIABLES = (
    "HOME", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "BOTO_CONFIG", "NETRC", "DATABRICKS_CONFIG_FILE",
    "KUBECONFIG", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CREDENTIAL_FILE",
    "AWS_LOGIN_CACHE_DIRECTORY",
)  # fmt: skip
"""The variables from which Odin's libraries find credential files by themselves (controller/library_credentials.py)."""


def _own_credentials(server: OdinServer, home: Path, env: dict[str, str]) -> OdinServer:
    """`server` with `home` as its `HOME` and, of the library variables, only those in `env`: the test runner's own
    (`~/.aws/credentials`, a `KUBECONFIG`) neither leak into the server nor change what it closes."""
    for name in LIBRARY_VARIABLES:
        server.env.pop(name, None)
    server.env.update({"HOME": str(home), **{k: v for k, v in env.items() if k in LIBRARY_VARIABLES}})
    return server


def _closed_at_start(log: str) -> list[str]:
    """The secret files outside the data directory that `odin serve` said at start it closes."""
    line = log.split("the secret files Odin reads outside it (", 1)[1].split(";", 1)[0]
    count, _, listed = line.partition(" now: ")
    found = [] if listed == "none" else listed.split(", ")
    assert int(count) == len(found), line
    return found


def _machine_wide() -> list[str]:
    """The library defaults outside any home directory that exist on this machine (a ServiceAccount token in a pod,
    `/etc/boto.cfg`): closed too, whatever the test does."""
    named = (library_credentials.SERVICE_ACCOUNT_TOKEN, "/etc/boto.cfg")
    return [os.path.realpath(path) for path in named if os.path.isfile(path)]


@pytest.mark.skipif(LANDLOCK_ABI == 0, reason=f"needs Landlock: {LANDLOCK_MISSING}")
def test_secret_files_outside_the_data_directory_are_closed_to_a_task(base: Path) -> None:
    """`ODIN_JWT_SECRET_FILE`, `ODIN_ADMIN_PASSWORD_FILE`, a `file:` reference in the settings and the `file:`
    references of a repository registered through the API while the server runs all lie outside the data
    directory; a task started after the registration cannot `cat` any of them, nor reach them through a link,
    while the files beside them that are not secrets stay readable (the sandbox closes the secrets, not their
    directory)."""
    data_dir = base / "state"
    remote = GitRemote.create(base / "repo")
    peek = {"name": "peek", "image": "sh", "command": ["sh", "peek.sh", str(base / "given" / "targets.txt")]}
    pipeline = {"name": "peek", "tasks": [peek]}
    remote.commit({"peek/main.yml": json.dumps(pipeline), "peek/peek.sh": PEEK})
    etc = base / "etc-odin"  # as /etc/odin would be
    nested = base / "vault" / "repos"  # a second directory, two levels below a sibling of the data directory
    nested.mkdir(parents=True)
    etc.mkdir()
    password = _secret("admin-pw")
    secrets = {
        "jwt_secret_file": (etc / "jwt-secret", _secret("jwt")),
        "admin_password_file": (etc / "admin-password", password),
        "settings_webhook_ref": (etc / "webhook-secret", _secret("hook")),
        "repo_credentials_ref": (nested / "git-token", _secret("token")),
        "repo_webhook_ref": (nested / "hook-secret", _secret("repo-hook")),
    }
    for path, value in secrets.values():
        path.write_text(value + "\n")
        path.chmod(0o600)
    neighbours = {"etc_neighbour": etc / "odin.conf", "vault_neighbour": nested / "README"}
    neighbours["vault_top"] = base / "vault" / "notes"
    for path in neighbours.values():
        path.write_text(f"not a secret: {path.name}\n")
    (base / "jwt-link").symlink_to(etc / "jwt-secret")
    (base / "given").mkdir()
    (base / "home").mkdir()  # empty: no library credential file in it
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_LOCAL_SANDBOX": "landlock",
        "ODIN_JWT_SECRET_FILE": str(secrets["jwt_secret_file"][0]),
        "ODIN_ADMIN_PASSWORD_FILE": str(secrets["admin_password_file"][0]),
        "ODIN_WEBHOOK_SECRET": f"file:{secrets['settings_webhook_ref'][0]}",
    }
    command, as_user = _unprivileged(base, data_dir)
    server = _own_credentials(OdinServer(data_dir, env, command=command, popen_kwargs=as_user), base / "home", {})
    with server:
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": password})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        registered = httpx.post(f"{server.url}/v1/repos", headers=headers, json={
            "name": "private", "url": "https://git.example.invalid/acme/ml.git",
            "credentials_ref": f"file:{secrets['repo_credentials_ref'][0]}",
            "webhook_secret_ref": f"file:{secrets['repo_webhook_ref'][0]}",
        })  # fmt: skip
        assert registered.status_code == 201, registered.text
        targets = {label: path for label, (path, _) in secrets.items()} | neighbours
        targets["jwt_through_a_link"] = base / "jwt-link"
        (base / "given" / "targets.txt").write_text("".join(f"{k} {v}\n" for k, v in targets.items()))
        if as_user:
            _chown_tree(base / "given", NOBODY.pw_uid, NOBODY.pw_gid)  # type: ignore[union-attr]

        def started() -> bool:
            r = httpx.post(f"{server.url}/v1/runs", json={"pipeline": "peek"}, headers=headers)
            return r.status_code == 201

        wait_until(started, 60, interval=0.2, message="a run of peek was created (the repository synced)")
        seen = _peek_results(data_dir, server)
        log = server.log()
    at_start = [str(secrets[k][0]) for k in ("jwt_secret_file", "admin_password_file", "settings_webhook_ref")]
    assert _closed_at_start(log) == sorted(at_start + _machine_wide()), log
    refused = [*secrets, "jwt_through_a_link"]
    assert {k: seen.get(k) for k in refused if "Permission denied" not in seen.get(k, "")} == {}, "a secret leaked"
    for label, (_, value) in secrets.items():
        assert value not in json.dumps(seen), f"{label}'s content reached the task"
    assert {k: seen.get(k) for k in neighbours} == {k: f"ok:not a secret: {p.name}" for k, p in neighbours.items()}


@pytest.mark.skipif(LANDLOCK_ABI == 0, reason=f"needs Landlock: {LANDLOCK_MISSING}")
def test_credential_files_the_libraries_find_by_themselves_are_closed_to_a_task(base: Path) -> None:
    """Odin's settings name no credentials here, so its libraries would look in their own places: boto3 in
    `~/.aws/credentials` and `~/.aws/config` and the web identity token `AWS_WEB_IDENTITY_TOKEN_FILE` names, the
    Kubernetes client in each `KUBECONFIG` entry, MLflow's client in `~/.mlflow/credentials`, requests in
    `~/.netrc`; and in the files those name in turn: a kubeconfig's client key, certificate and token file (a
    relative one from the kubeconfig's directory), a profile's `web_identity_token_file`, botocore's SSO token
    cache and the AWS CLI's cache. A task of Odin's user, whose `HOME` is Odin's, cannot `cat` any of them, while
    the ordinary files beside them (in `~`, in `~/.aws`, beside the kubeconfig and its key, in the SSO cache, and
    the cluster's public CA certificate) stay readable: the files are closed, not `HOME`."""
    data_dir = base / "state"
    remote = GitRemote.create(base / "repo")
    peek = {"name": "peek", "image": "sh", "command": ["sh", "peek.sh", str(base / "given" / "targets.txt")]}
    remote.commit({"peek/main.yml": json.dumps({"name": "peek", "tasks": [peek]}), "peek/peek.sh": PEEK})
    home, kube, tokens = base / "home", base / "kube", base / "tokens"
    sso, cli = home / ".aws" / "sso" / "cache", home / ".aws" / "cli" / "cache"
    for directory in (home / ".aws", home / ".mlflow", kube / "keys", tokens, sso, cli, base / "given"):
        directory.mkdir(parents=True)
    credentials = {
        "aws_credentials": home / ".aws" / "credentials",
        "aws_config": home / ".aws" / "config",
        "netrc": home / ".netrc",
        "mlflow": home / ".mlflow" / "credentials",
        "kubeconfig": kube / "config",
        "kubeconfig_second": kube / "other-cluster",
        "web_identity_token": tokens / "web-identity",
    }
    named = {  # the files the credential files above name
        "kube_client_key": kube / "keys" / "client.key",
        "kube_client_certificate": kube / "keys" / "client.crt",
        "kube_token_file": tokens / "kube-token",
        "profile_web_identity_token": tokens / "profile-web-identity",
        "sso_cache": sso / "d033e22ae348aeb5660fc2140aec35850c4da997.json",
        "cli_cache": cli / "2f1e0c9b8a7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f.json",
    }
    values = {label: _secret(label) for label in credentials | named}
    contents = {label: values[label] + "\n" for label in values}
    contents["kubeconfig"] = json.dumps({  # YAML; a relative key and certificate, from the kubeconfig's directory
        "clusters": [{"name": "c", "cluster": {"server": "https://k.invalid", "certificate-authority": "keys/ca.crt"}}],
        "users": [{"name": "u", "user": {"client-key": "keys/client.key", "client-certificate": "keys/client.crt",
                                         "token": values["kubeconfig"]}}],
    })  # fmt: skip
    contents["kubeconfig_second"] = json.dumps({
        "users": [{"name": "v", "user": {"tokenFile": str(named["kube_token_file"]),
                                         "password": values["kubeconfig_second"]}}],
    })  # fmt: skip
    contents["aws_config"] = (
        f"[profile web]\naws_secret_access_key = {values['aws_config']}\nrole_arn = arn:aws:iam::1:role/r\n"
        f"web_identity_token_file = {named['profile_web_identity_token']}\n"
    )
    contents["aws_credentials"] = f"[default]\naws_secret_access_key = {values['aws_credentials']}\n"
    for label, path in (credentials | named).items():
        path.write_text(contents[label])
        path.chmod(0o600)
    neighbours = {"home_file": home / "notes", "aws_neighbour": home / ".aws" / "notes"}
    neighbours |= {"kube_neighbour": kube / "README", "kube_ca": kube / "keys" / "ca.crt"}
    neighbours |= {"sso_neighbour": sso / "README", "tokens_neighbour": tokens / "README"}
    for path in neighbours.values():
        path.write_text(f"not a secret: {path.name}\n")
    targets = {label: str(path) for label, path in (credentials | named | neighbours).items()}
    (base / "given" / "targets.txt").write_text("".join(f"{k} {v}\n" for k, v in targets.items()))
    password = _secret("admin-pw")
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_LOCAL_SANDBOX": "landlock",
        "ODIN_ADMIN_PASSWORD": password,
    }
    library_env = {
        "KUBECONFIG": f"{credentials['kubeconfig']}:{credentials['kubeconfig_second']}",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(credentials["web_identity_token"]),
    }
    command, as_user = _unprivileged(base, data_dir)
    server = _own_credentials(OdinServer(data_dir, env, command=command, popen_kwargs=as_user), home, library_env)
    with server:
        seen = _peek_results(data_dir, server)
        log = server.log()
    leaked = {k: seen.get(k) for k in credentials | named if "Permission denied" not in seen.get(k, "")}
    assert leaked == {}, "a credential leaked"
    for label, value in values.items():
        assert value not in json.dumps(seen), f"{label}'s content reached the task"
        assert value not in log, f"{label}'s content was logged"
    assert {k: seen.get(k) for k in neighbours} == {k: f"ok:not a secret: {p.name}" for k, p in neighbours.items()}
    closed = [*map(str, (credentials | named).values()), *_machine_wide()]
    assert _closed_at_start(log) == sorted(closed), log
