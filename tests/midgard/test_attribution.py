"""Attribution: cgroup paths of every kubepods layout, environ and the parent chain in a proc-like directory, and the
kubelet's pod-resources API served by a real gRPC server on a unix socket."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import pytest

from odin.midgard.attribution import PodRef, ProcAttributor, pod_from_cgroup
from odin.midgard.collect import Collector, CollectorConfig
from odin.midgard.podresources import PodResources
from odin.midgard.podresources_v1 import kubelet_podresources_v1_pb2 as pb
from odin.midgard.report import decode_report
from odin.testing.nvml import FakeNvml, fake_gpu, fake_mig_device
from tests.support.midgard import MidgardAgent

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
CID = "a" * 64


@pytest.mark.parametrize(
    "cgroup",
    [
        # cgroup v1, cgroupfs driver (burstable and guaranteed QoS)
        f"12:memory:/kubepods/burstable/pod{UID}/{CID}\n11:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n",
        f"4:devices:/kubepods/pod{UID}/{CID}\n",
        # cgroup v1, systemd driver
        f"9:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/"
        f"cri-containerd-{CID}.scope\n",
        # cgroup v2, systemd driver (also guaranteed: no QoS level)
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
        f"crio-{CID}.scope\n",
        f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/docker-{CID}.scope\n",
        # cgroup v2, cgroupfs driver
        f"0::/kubepods/besteffort/pod{UID}/{CID}\n",
    ],
)
def test_pod_uid_from_every_cgroup_layout(cgroup: str) -> None:
    assert pod_from_cgroup(cgroup) == PodRef(uid=UID, container_id=CID)


@pytest.mark.parametrize(
    "cgroup",
    ["0::/user.slice/user-1000.slice/session-3.scope\n", "0::/\n", "12:memory:/docker/" + CID + "\n", ""],
)
def test_no_pod_outside_kubepods(cgroup: str) -> None:
    assert pod_from_cgroup(cgroup) is None


def _proc(root: Path, pid: int, *, ppid: int, environ: dict[str, str], cgroup: str = "0::/\n") -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items()))
    (d / "status").write_text(f"Name:\tpython\nPid:\t{pid}\nPPid:\t{ppid}\n")
    (d / "cgroup").write_text(cgroup)
    (d / "comm").write_text("python\n")


def test_proc_root_pod_names_environ_and_ancestors(tmp_path: Path) -> None:
    proc, pods = tmp_path / "proc", tmp_path / "pods"
    (pods / f"odin-runs_r-7-train-0_{UID}").mkdir(parents=True)
    pod_cgroup = f"0::/kubepods/burstable/pod{UID}/{CID}\n"
    task_env = {
        "PATH": "/bin",
        "ODIN_RUN": "r-7",
        "ODIN_TASK": "train",
        "ODIN_COMMIT_SHA": "c0ffee",
        "ODIN_ATTEMPT": "1",
    }
    _proc(proc, 100, ppid=1, environ=task_env, cgroup=pod_cgroup)  # the task's main process, in a pod
    _proc(proc, 101, ppid=100, environ={"PATH": "/bin"}, cgroup=pod_cgroup)  # its worker, env cleared
    _proc(proc, 200, ppid=1, environ={"ODIN_RUN": "r-8", "ODIN_TASK": "eval"})  # a local task: no pod
    _proc(proc, 201, ppid=200, environ={})
    _proc(proc, 300, ppid=1, environ={"HOME": "/root"})  # nobody's
    found = ProcAttributor(proc, str(pods)).attribute([100, 101, 200, 201, 300, 999])
    assert set(found) == {100, 101, 200, 201}
    main, worker = found[100], found[101]
    assert (main.source, main.pod_uid, main.pod_namespace, main.pod_name) == ("cgroup", UID, "odin-runs", "r-7-train-0")
    assert (main.odin_run, main.odin_task, main.odin_commit, main.odin_attempt) == ("r-7", "train", "c0ffee", 1)
    assert worker.pod_uid == UID and worker.odin_run == "r-7"
    assert (found[200].source, found[200].odin_task, found[200].pod_uid) == ("environ", "eval", None)
    assert (found[201].source, found[201].odin_run) == ("parent-environ", "r-8")


class _Kubelet:
    """A pod-resources server: real gRPC on a unix socket, answering `List` with the pods it is given."""

    def __init__(self, socket_path: str) -> None:
        self.response = pb.ListPodResourcesResponse()
        self.calls = 0
        handler = grpc.method_handlers_generic_handler(
            "v1.PodResourcesLister",
            {
                "List": grpc.unary_unary_rpc_method_handler(
                    self._list,
                    request_deserializer=pb.ListPodResourcesRequest.FromString,
                    response_serializer=pb.ListPodResourcesResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"unix://{socket_path}")

    def _list(self, request: pb.ListPodResourcesRequest, context: object) -> pb.ListPodResourcesResponse:
        self.calls += 1
        return self.response


@pytest.fixture
def kubelet() -> Iterator[tuple[_Kubelet, str]]:
    # A short path: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="kubelet-") as d:
        socket_path = os.path.join(d, "kubelet.sock")
        server = _Kubelet(socket_path)
        server.server.start()
        try:
            yield server, socket_path
        finally:
            server.server.stop(0)


def _pod(namespace: str, name: str, container: str, *device_ids: str) -> pb.PodResources:
    return pb.PodResources(
        name=name,
        namespace=namespace,
        containers=[
            pb.ContainerResources(
                name=container,
                devices=[pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=list(device_ids))],
            )
        ],
    )


def test_pod_resources_ties_gpus_and_processes_to_pods(kubelet: tuple[_Kubelet, str], tmp_path: Path) -> None:
    server, socket_path = kubelet
    gpu0, gpu1 = fake_gpu(0), fake_gpu(1)
    mig = fake_mig_device(3)
    gpu2 = fake_gpu(2, mig_mode=[1, 1], mig_devices=[mig])
    server.response = pb.ListPodResourcesResponse(
        pod_resources=[
            _pod("odin-runs", "r-9-train", "main", gpu0["uuid"]),
            _pod("team-a", "notebook", "jupyter", mig["uuid"]),
        ]
    )
    proc = tmp_path / "proc"
    _proc(
        proc, 4242, ppid=1, environ={"ODIN_RUN": "r-9", "ODIN_TASK": "train"}, cgroup=f"0::/kubepods/pod{UID}/{CID}\n"
    )
    gpu0["processes"] = [{"pid": 4242, "used_memory": 5}]
    client = PodResources(socket_path)
    collector = Collector(FakeNvml([gpu0, gpu1, gpu2]), CollectorConfig(proc_root=str(proc), pod_log_root=None), client)
    try:
        report = collector.collect()
    finally:
        collector.close()
        client.close()
    first, second, third = report.gpus
    assert [(a.pod_namespace, a.pod_name, a.container) for a in first.allocations] == [
        ("odin-runs", "r-9-train", "main")
    ]
    (process,) = first.processes
    assert process.attribution is not None
    assert process.attribution.source == "pod-resources"
    assert (process.attribution.pod_name, process.attribution.pod_uid) == ("r-9-train", UID)
    assert (process.attribution.odin_run, process.attribution.odin_task) == ("r-9", "train")
    assert second.allocations == []
    assert third.allocations == [] and third.mig_devices[0].allocations[0].pod_name == "notebook"
    assert server.calls == 1


def test_agent_uses_the_socket_and_survives_a_dead_kubelet(kubelet: tuple[_Kubelet, str], tmp_path: Path) -> None:
    server, socket_path = kubelet
    gpu = fake_gpu(0)
    server.response = pb.ListPodResourcesResponse(pod_resources=[_pod("ns", "p", "c", gpu["uuid"])])
    with MidgardAgent(tmp_path, gpus=[gpu], args=("--pod-resources-socket", socket_path, "--ttl", "0")) as agent:
        report = decode_report(httpx.get(f"{agent.url}/v1/report", headers=agent.headers).content)
        assert report.gpus[0].allocations[0].pod_name == "p"
        server.server.stop(0)
        report = decode_report(httpx.get(f"{agent.url}/v1/report", headers=agent.headers).content)
        assert report.gpus[0].allocations == []
        assert any(w.startswith("pod-resources:") for w in report.warnings)
        assert report.gpus[0].uuid == gpu["uuid"]
