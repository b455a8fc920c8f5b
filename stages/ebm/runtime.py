"""Device choice and seeding, each in one place."""

import os
import random

import numpy as np
import torch


def pick_device(choice="auto"):
    """`auto` takes CUDA when present; `cuda` without a GPU is an error, not a silent CPU run.

    On the CPU, torch's kernels are made single-threaded: this network's small convolutions
    gain little from a second thread inside one op, and threads that spin-wait for each other
    slow down many times over as soon as another process shares the cores. The sampler uses
    the cores instead by running one slice of the batch per core (see sampler.py).
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for in params.yaml, but torch sees no CUDA GPU")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        torch.set_num_threads(1)
        return torch.device("cpu")
    return torch.device("cuda")


def place(model, device):
    """Move the energy network to `device`; on the CPU, in channels_last layout.

    oneDNN runs this network's convolutions (and their input gradients) about a quarter
    faster with NHWC weights on this project's 2-core machine; benchmarks/sampler.py
    measures it. On CUDA the layout is left alone (fp32 small convolutions gain nothing).
    """
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cpu" else model


def cpu_cores():
    """Cores this process may run on (what a container or taskset allows, not the host's count)."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def seed_everything(seed):
    """Seed Python, NumPy and torch (all devices) so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    """Every RNG state a training run consumes, for an exact resume, as plain data (numbers, lists,
    tensors): a checkpoint holds nothing else (ebm.checkpoint). NumPy's key becomes an int64
    tensor, Python's state tuple a list; `set_rng_state` turns them back."""
    version, internal, gauss_next = random.getstate()
    numpy = np.random.get_state(legacy=False)
    state = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": numpy["bit_generator"],
            "key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)),
            "pos": int(numpy["state"]["pos"]),
            "has_gauss": int(numpy["has_gauss"]),
            "gauss": float(numpy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    python, numpy = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    np.random.set_state(
        {
            "bit_generator": numpy["bit_generator"],
            "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
