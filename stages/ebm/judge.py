"""The judge: LeNet-5s that read digits and say "not a digit", scoring samples (`ebm.quality`).

Trained on the data stage's train split, never its test split. Ten of its eleven classes are
the digits; the eleventh, NOT_A_DIGIT, is trained on synthetic images that are no digit
(`non_digits`) and on the EBM's own samples that a person did not read (labels/calibration).
A ten-class classifier must call everything some digit, and it does so confidently: one that
reads 99% of real test digits was at least 0.9 sure of 22% of +-1 speckle and 61% of
sharp-edged blobs. With the eleventh class it can say no. The digits are augmented with small
shifts and, as the EBM's chains often draw them, thickened strokes and pixels at +-1, so that
bold or saturated digits still read as digits. Several such judges, trained alike from
consecutive seeds, read a sample by their mean probability (`Judges`): one judge is sure of
blotchy textures that another calls no digit, and their mean is sure only where they agree
(docs/labelling.md). The first judge's 84-d penultimate activations (`features`) embed samples
for the Frechet distance, the MNIST analogue of FID.
"""

import torch
from torch import nn
from torch.nn import functional as F

from ebm import paths
from ebm.checkpoint import load_checkpoint, save_checkpoint
from ebm.non_digits import non_digits
from ebm.runtime import cpu_cores


NOT_A_DIGIT = 10  # the eleventh class
# share of training digits given thicker strokes, and pixels at +-1
THICKEN, BINARISE = (1 / 3, 1 / 3)


class LeNet5(nn.Module):
    """(N, 1, 28, 28) in [-1, 1] -> 11 logits (digits 0-9, NOT_A_DIGIT); conv 6@5x5 (pad 2), pool,
    conv 16@5x5, pool, 120, 84, 11."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)  # 28 -> 28, pooled to 14
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)  # 14 -> 10, pooled to 5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, NOT_A_DIGIT + 1)

    def features(self, x):
        """The 84-d penultimate activations (after ReLU): the embedding of the Frechet distance."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.relu(self.fc2(x))

    def forward(self, x):
        return self.fc3(self.features(x))

    def read(self, x):
        """(features, logits) from one pass."""
        features = self.features(x)
        return features, self.fc3(features)


class Judges(nn.Module):
    """LeNet5 members read together: `forward` gives the log of their mean softmax (a member's
    own logits when there is one), `features` the first member's embedding."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def features(self, x):
        return self.members[0].features(x)

    def forward(self, x):
        return self.read(x)[1]

    def read(self, x):
        """(the first member's features, the members' log mean probability) from one pass each."""
        features, logits = self.members[0].read(x)
        if len(self.members) == 1:
            return features, logits
        others = [torch.softmax(m(x), dim=1) for m in self.members[1:]]
        probs = torch.stack([torch.softmax(logits, dim=1), *others]).mean(0)
        return features, probs.log()


def _shift(x, max_shift, generator):
    """Light augmentation: translate each image by up to `max_shift` pixels (background -1)."""
    n = len(x)
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28] for i in range(n)])


def augment_digits(x, generator):
    """Training digits, a share of them with strokes grown by a pixel and a share set to +-1."""
    n = len(x)
    thick = (torch.rand(n, generator=generator) < THICKEN).view(-1, 1, 1, 1)
    x = torch.where(thick, F.max_pool2d(x, 3, stride=1, padding=1), x)
    binary = (torch.rand(n, generator=generator) < BINARISE).view(-1, 1, 1, 1)
    return torch.where(binary, torch.where(x > 0, 1.0, -1.0).to(x.dtype), x)


def _halves(n, parts):
    """n split into `parts` (1 or 2) counts that differ by at most one."""
    return [n] if parts == 1 else [n - n // 2, n // 2]


def train_judge(
    x_train,
    y_train,
    seed,
    epochs,
    batch_size,
    lr,
    device="cpu",
    max_shift=0,
    non_digit_ratio=0.0,
    read_by_eye=None,
    read_by_eye_per_batch=0,
):
    """Adam on cross-entropy; x_train float (N, 1, 28, 28) in [-1, 1], y_train int labels 0-9.

    non_digit_ratio > 0: each batch also holds this many `non_digits` per digit, labelled
    NOT_A_DIGIT, and its digits are augmented (`augment_digits`).
    read_by_eye: (x, y) of generated samples a person labelled (y a digit, or NOT_A_DIGIT for
    every tile the person did not read); each batch also holds read_by_eye_per_batch of them,
    drawn with replacement and shifted by up to 2 pixels: half of them from the tiles read as a
    digit and half from the rest. Drawn from the whole pool, ~95% would be non-digits (most of a
    journey's grids are failures), and the judge learnt to refuse the EBM's legible digits too.
    Seeded without touching the global RNG: init, shuffling, augmentation, the non-digits and
    the +-`max_shift` pixel translations all come from `seed`. Trained in float64, returned in
    float32 and eval mode: float32 sums taken in another order (another CPU's vector width,
    oneDNN's kernel choice) move the weights enough to change a test digit's label, and every
    evaluation figure with it; in float64 such differences stay far below float32's resolution.
    """
    x_train = torch.as_tensor(x_train, dtype=torch.float64)
    y_train = torch.as_tensor(y_train, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    # one fixed set of non-digits, drawn once (drawing them per batch cost more than the
    # training step)
    others = non_digits(round(non_digit_ratio * len(x_train)), generator)
    if read_by_eye is not None:
        eye_x = torch.as_tensor(read_by_eye[0], dtype=torch.float64)
        eye_y = torch.as_tensor(read_by_eye[1], dtype=torch.int64)
        eye_groups = [
            torch.nonzero(read).ravel() for read in (eye_y != NOT_A_DIGIT, eye_y == NOT_A_DIGIT)
        ]
        eye_groups = [group for group in eye_groups if len(group)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LeNet5().double()
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        other_order = torch.randperm(len(others), generator=generator)
        for b, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            x, y = x_train[idx], y_train[idx]
            if len(others):
                share = len(others) * len(idx) // len(x_train)
                picked = others[other_order[b * share : (b + 1) * share]]
                x = torch.cat([augment_digits(x, generator), picked])
                y = torch.cat([y, torch.full((len(picked),), NOT_A_DIGIT)])
            x = _shift(x, max_shift, generator) if max_shift else x
            if read_by_eye is not None and read_by_eye_per_batch:
                pick = torch.cat(
                    [
                        group[torch.randint(0, len(group), (n,), generator=generator)]
                        for group, n in zip(
                            eye_groups, _halves(read_by_eye_per_batch, len(eye_groups))
                        )
                    ]
                )
                x = torch.cat([x, _shift(eye_x[pick], 2, generator)])
                y = torch.cat([y, eye_y[pick]])
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.float().eval()


def _train_one(args):
    """One member in a worker process, on one thread: the cores are shared among the members."""
    x_train, y_train, seed, training = args
    torch.set_num_threads(1)
    return train_judge(x_train, y_train, seed, **training).state_dict()


class JudgesTraining:
    """Judges training side by side on the CPU, each in a process of its own on one thread, as
    `train_judges` trains them. The caller may go on meanwhile (the test suite does: its judge
    trains on the core the tiny pipelines leave idle); `result()` waits for them and gives the
    `Judges`, `cancel()` stops the workers (a test run that ends before it needs them)."""

    def __init__(self, x_train, y_train, seed, members, **training):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked copy of a process that has run OpenMP threads can hang
        self.pool = ProcessPoolExecutor(members, mp_context=multiprocessing.get_context("spawn"))
        self.jobs = [
            self.pool.submit(_train_one, (x_train, y_train, seed + i, training))
            for i in range(members)
        ]

    def result(self):
        trained = []
        for job in self.jobs:
            with torch.random.fork_rng(devices=[]):  # the global RNG as a serial run leaves it
                model = LeNet5()
            model.load_state_dict(job.result())
            trained.append(model.eval())
        self.pool.shutdown()
        return Judges(trained).eval()

    def cancel(self):
        workers = list((self.pool._processes or {}).values())  # before shutdown forgets them
        self.pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()


def train_judges(x_train, y_train, seed, members, parallel=True, **training):
    """`members` judges trained as `train_judge` trains one, from seeds seed, seed + 1, ...

    parallel: on a CPU with more than one core, side by side (`JudgesTraining`). A
    LeNet-5 batch is too small to keep two threads busy (2 cores: 1.3x the speed of one), so
    members side by side finish sooner. Each member draws only from its own generator and
    trains in float64, so the weights are the same either way (tests/test_quality.py)."""
    on_cpu = torch.device(training.get("device", "cpu")).type == "cpu"
    # cores, not torch's thread count: the stages set that to one (ebm.runtime.pick_device)
    if parallel and on_cpu and members > 1 and cpu_cores() > 1:
        return JudgesTraining(x_train, y_train, seed, members, **training).result()
    return Judges(
        [train_judge(x_train, y_train, seed + i, **training) for i in range(members)]
    ).eval()


@torch.no_grad()
def accuracy(model, x, y, batch_size=1000):
    device = next(model.parameters()).device
    y = torch.as_tensor(y)
    correct = sum(
        (model(x[i : i + batch_size].to(device)).argmax(1).cpu() == y[i : i + batch_size])
        .sum()
        .item()
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def save_judge(path, judges):
    """judges: a `Judges` or a single LeNet5 (saved as a one-member `Judges`)."""
    members = judges.members if isinstance(judges, Judges) else [judges]
    states = [{k: v.cpu() for k, v in m.state_dict().items()} for m in members]
    save_checkpoint(path, {"arch": "LeNet5", "members": states})


def load_judge(path=paths.JUDGE, device="cpu"):
    """The trained `Judges` in eval mode, parameters frozen; run `dvc repro judge` first."""
    from pathlib import Path

    from ebm.data import DataError

    if not Path(path).is_file():
        raise DataError(
            f"{path}: the judge is missing; run `dvc repro judge` (or `python stages/judge.py`)"
        )
    state = load_checkpoint(path, device, "rebuild it: `dvc repro -f judge`")
    weights = state.get("members") or [state["model"]]  # "model": a file of one judge
    # The first member's init draws from the global RNG, as the one judge always did: the
    # training stages load the judge after seeding, so those draws are part of every run's
    # trajectory. The others draw nothing, so the number of judges leaves the runs as they are.
    members = [LeNet5()]
    with torch.random.fork_rng(devices=[]):
        members += [LeNet5() for _ in weights[1:]]
    for member, member_weights in zip(members, weights):
        member.load_state_dict(member_weights)
    return Judges(members).to(device).eval().requires_grad_(False)
