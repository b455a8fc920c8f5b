"""Data-parallel training on torch.distributed, when the stage is launched by torchrun.

Plain `python stages/train.py` is one process (world size 1) and none of this costs
anything. Under `torchrun --nproc_per_node N`, each rank trains on its slice of every
batch with its own replay-buffer shard, DistributedDataParallel averages the gradients
(NCCL on CUDA, gloo on CPU), and rank 0 writes the outputs.
"""

import os

import torch
import torch.distributed as dist


def init(device_choice, pick_device):
    """Return (rank, world_size, device); join the process group when torchrun set one up."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, pick_device(device_choice)
    device = pick_device(device_choice)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def wrap(model, world, device):
    if world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def average_terms(terms, world, device):
    """Mean of each logged term over the ranks (max for the largest |E|), so all ranks agree."""
    if world == 1:
        return terms
    keys = list(terms)
    values = torch.tensor([terms[k] for k in keys], device=device, dtype=torch.float64)
    biggest = values[keys.index("e_max_abs")].clone()
    dist.all_reduce(values)
    dist.all_reduce(biggest, op=dist.ReduceOp.MAX)
    out = dict(zip(keys, (values / world).tolist()))
    out["e_max_abs"] = biggest.item()
    return out


def barrier(world):
    if world > 1:
        dist.barrier()


def finish(world):
    if world > 1:
        dist.destroy_process_group()
