"""Fine-tune a causal language model with plain PyTorch DDP (Trainer's torch runtime starts torchrun)."""

import argparse
import os

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoTokenizer

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

dist.init_process_group("nccl")
rank, local_rank = dist.get_rank(), int(os.environ["LOCAL_RANK"])
torch.cuda.set_device(local_rank)
tokenizer = AutoTokenizer.from_pretrained(args.model)
model = AutoModelForCausalLM.from_pretrained(args.model).cuda()
model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank])
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
batch = tokenizer(["Odin runs this fine-tune from a commit."] * 4, return_tensors="pt").to("cuda")
for step in range(10):
    loss = model(**batch, labels=batch["input_ids"]).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if rank == 0:
        print(f"step {step} loss {loss.item():.4f}", flush=True)
if rank == 0:
    model.module.save_pretrained(args.out)
dist.destroy_process_group()
