"""Time an all-reduce of 256 MiB across the MPI world."""

import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
data = np.ones(64 * 1024 * 1024, dtype=np.float32)
out = np.empty_like(data)
start = time.perf_counter()
comm.Allreduce(data, out, op=MPI.SUM)
if comm.Get_rank() == 0:
    print(f"all-reduce of 256 MiB over {comm.Get_size()} ranks: {time.perf_counter() - start:.3f}s")
