"""Nodes and GPUs of the whole cluster, and who holds each GPU (Midgard aggregation; docs/midgard-aggregation.md).

Viewer role, like every read: knowing which run sits on which GPU is what the page is for. The answer never waits
for a dead or slow node longer than one agent timeout (see `odin.midgard.aggregate`).
"""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from odin.api.errors import errors
from odin.api.schemas.gpus import GpuList, NodeList
from odin.api.services.gpus import GpuService

NodeName = Annotated[str | None, QueryParameter(description="Only this node", max_length=253)]


@get(
    "/v1/nodes",
    operation_id="listNodes",
    summary="Every node with its system and GPUs; unreachable ones with their last reading and its age",
    tags=["gpus"],
    responses=errors(),
)
async def list_nodes(gpus: NamedDependency[GpuService], node: NodeName = None) -> NodeList:
    return await gpus.nodes(node=node)


@get(
    "/v1/gpus",
    operation_id="listGpus",
    summary="Every GPU of the cluster: free or held, and the run, task and commit holding it",
    tags=["gpus"],
    responses=errors(),
)
async def list_gpus(
    gpus: NamedDependency[GpuService],
    free: Annotated[bool | None, QueryParameter(description="true: only free GPUs; false: only held ones")] = None,
    node: NodeName = None,
    model: Annotated[
        str | None,
        QueryParameter(
            description="Only GPUs whose model contains this text (case-insensitive), e.g. H100", max_length=200
        ),
    ] = None,
    run: Annotated[str | None, QueryParameter(description="Only GPUs held by this run", max_length=100)] = None,
) -> GpuList:
    return await gpus.gpus(free=free, node=node, model=model, run=run)
