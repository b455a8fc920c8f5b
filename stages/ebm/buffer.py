"""The replay buffer of persistent chains: one tensor on the model's device.

Each training batch starts its chains from images drawn uniformly from the buffer; a
fraction `restart_prob` of them restart from fresh U(-1, 1) noise instead. After
sampling, the chains' end states are written back FIFO (a ring), as in the UvA
tutorial, where new samples push out the oldest.

Each slot also records its chain's age: how many times the chain has been drawn and
continued (`draws`) and its Langevin steps since it last started from noise (`steps`). The
original journey blames exp 4's collapse on a feedback loop, which needs chains drawn again
and again; a slot is drawn about batch x iterations / capacity times in a run.
"""

import torch

from ebm.sampler import langevin


def uniform_noise(n, shape, device, generator=None):
    return torch.rand((n, *shape), device=device, generator=generator) * 2 - 1


class ReplayBuffer:
    def __init__(self, capacity, restart_prob, initial_fill, shape=(1, 28, 28), device="cpu"):
        if initial_fill > capacity:
            raise ValueError(f"buffer initial_fill {initial_fill} exceeds its capacity {capacity}")
        self.capacity, self.restart_prob, self.shape = capacity, restart_prob, tuple(shape)
        self.images = torch.empty((capacity, *shape), device=device)
        self.images[:initial_fill] = uniform_noise(initial_fill, shape, device)
        self.size = initial_fill  # how many slots hold images
        self.head = initial_fill % capacity  # the next slot to overwrite
        # per slot: times continued
        self.draws = torch.zeros(capacity, dtype=torch.long, device=device)
        # per slot: steps since noise
        self.steps = torch.zeros(capacity, dtype=torch.long, device=device)
        self.drawn = None  # (draws, steps) of the chains `sample` handed out last

    @property
    def device(self):
        return self.images.device

    def sample(self, n):
        """n chain starts: buffer images, each restarted from noise with prob restart_prob."""
        picks = torch.randint(0, self.size, (n,), device=self.device)
        starts = self.images[picks]
        restart = torch.rand(n, device=self.device) < self.restart_prob
        fresh = uniform_noise(n, self.shape, self.device)
        self.drawn = (
            torch.where(restart, 0, self.draws[picks]),
            torch.where(restart, 0, self.steps[picks]),
        )
        return torch.where(restart.view(-1, 1, 1, 1), fresh, starts)

    def draw(self, n):
        """n stored images picked at random, as they are (no restarts)."""
        return self.images[torch.randint(0, self.size, (n,), device=self.device)]

    def push(self, samples, steps=0):
        """Write samples into the ring, overwriting the oldest once full. When they are the chains
        of the last `sample`, continued `steps` Langevin steps, their ages go with them."""
        n = min(len(samples), self.capacity)
        slots = (self.head + torch.arange(n, device=self.device)) % self.capacity
        self.images[slots] = samples[-n:].detach()
        if self.drawn is not None and len(self.drawn[0]) == len(samples):
            self.draws[slots] = self.drawn[0][-n:] + 1
            self.steps[slots] = self.drawn[1][-n:] + steps
        else:
            self.draws[slots], self.steps[slots] = 0, 0
        self.drawn = None
        self.head = int((self.head + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def latest(self, n):
        """The n images written most recently (fewer if the buffer holds fewer), newest last."""
        n = min(n, self.size)
        slots = (self.head - n + torch.arange(n, device=self.device)) % self.capacity
        return self.images[slots]

    def ages(self):
        """(draws, steps) of the chains in the filled slots."""
        return self.draws[: self.size], self.steps[: self.size]

    def state_dict(self):
        return {
            "images": self.images[: self.size].clone()
            if self.size < self.capacity
            else self.images.clone(),
            "size": self.size,
            "head": self.head,
            "draws": self.draws[: self.size].clone(),
            "steps": self.steps[: self.size].clone(),
        }

    def load_state_dict(self, state):
        size = state["size"]
        self.images[:size] = state["images"][:size].to(self.device)
        self.size, self.head = size, state["head"]
        if "draws" in state:  # (a buffer saved before ages were recorded: ages unknown, left at 0)
            self.draws[:size] = state["draws"][:size].to(self.device)
            self.steps[:size] = state["steps"][:size].to(self.device)


class ChainPool:
    """Long-lived chains: every iteration each advances `chain.steps` Langevin steps, and a share
    of the batch's negatives is drawn from them. A model trained only on short chains (restarted,
    or a few hundred steps old) never sees where its long chains go; training against chains
    thousands of steps old puts the energy's drift itself into the loss (Hill, Nijkamp et al.
    2022, "the life cycle of EBMs", train_longrun; Nijkamp et al. 2020, "On the anatomy of
    MCMC-based maximum likelihood learning of EBMs": persistent chains).

    The pool should hold every stage of the path from noise to an old chain, the path a
    generation takes: chains that all started together leave the model free to spoil the early
    part of that path once they are old. Two ways to spread the ages, either or both:
    - `restart_prob`: a chain restarts from U(-1, 1) with this probability per iteration
      (geometric ages; 1/200 spreads them over thousands of steps, few reach the oldest);
    - `lifetime`: a chain restarts once it is this many steps old, and the first restarts are
      staggered over the first lifetime, so that after one lifetime the ages are uniform over
      [0, lifetime): with the generation's length, every stage of a generation is trained on
      equally. 0 means no limit.
    All chains advance in one batch, the sampler's cheapest shape per image.
    """

    def __init__(self, n, restart_prob, lifetime=0, shape=(1, 28, 28), device="cpu"):
        self.images = uniform_noise(n, shape, device)
        self.restart_prob, self.lifetime = restart_prob, lifetime
        # Langevin steps since each (re)start
        self.ages = torch.zeros(n, dtype=torch.long, device=device)
        # the age at which each chain restarts next: chain i first at (i + 1) / n of a lifetime
        self.restart_age = (
            (torch.arange(1, n + 1, device=device) * lifetime) // n if lifetime else None
        )

    def advance(self, energy, chain, grad_fn=None, run=langevin):
        """Restart the chains due, then move every chain `chain.steps` steps under `energy`
        (run: langevin, or its CUDA-graph stand-in, ebm.graphs)."""
        restart = torch.rand(len(self.images), device=self.images.device) < self.restart_prob
        if self.lifetime:
            due = self.ages >= self.restart_age
            self.restart_age[due] = self.lifetime
            restart |= due
        self.images[restart] = uniform_noise(
            int(restart.sum()), self.images.shape[1:], self.images.device
        )
        self.ages[restart] = 0
        self.images = run(energy, self.images, chain, grad_fn=grad_fn)
        self.ages += chain.steps

    def sample(self, n):
        return self.images[torch.randint(0, len(self.images), (n,), device=self.images.device)]

    def state_dict(self):
        return {
            "images": self.images.clone(),
            "ages": self.ages.clone(),
            "restart_age": None if self.restart_age is None else self.restart_age.clone(),
        }

    def load_state_dict(self, state):
        self.images = state["images"].to(self.images.device)
        self.ages = state["ages"].to(self.images.device)
        if self.lifetime:
            self.restart_age = state["restart_age"].to(self.images.device)
