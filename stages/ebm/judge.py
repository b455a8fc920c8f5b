"""The judge: a LeNet-5 digit classifier that scores samples (see `ebm.quality`).

Trained on the data stage's train split only. Its logits say which digit a sample looks
like and how surely; its 84-d penultimate activations (`features`) embed samples for the
Frechet distance, the MNIST analogue of FID.
"""
import torch
from torch import nn
from torch.nn import functional as F

from ebm.checkpoint import load_checkpoint, save_checkpoint


class LeNet5(nn.Module):
    """(N, 1, 28, 28) in [-1, 1] -> 10 logits; conv 6@5x5 (pad 2), pool, conv 16@5x5, pool, 120, 84, 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)    # 28 -> 28, pooled to 14
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)              # 14 -> 10, pooled to 5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def features(self, x):
        """The 84-d penultimate activations (after ReLU): the embedding of the Frechet distance."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.relu(self.fc2(x))

    def forward(self, x):
        return self.fc3(self.features(x))


def _shift(x, max_shift, generator):
    """Light augmentation: translate each image by up to `max_shift` pixels (background -1)."""
    n = len(x)
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(n)])


def train_judge(x_train, y_train, seed, epochs, batch_size, lr, device="cpu", max_shift=0):
    """Adam on cross-entropy; x_train float (N, 1, 28, 28) in [-1, 1], y_train int labels.

    Seeded without touching the global RNG: init, shuffling and the +-`max_shift` pixel
    translations all come from `seed`. Trained in float64, returned in float32 and eval mode:
    float32 sums taken in another order (another CPU's vector width, oneDNN's kernel choice)
    move the weights enough to change a test digit's label, and every evaluation figure with
    it; in float64 such differences stay far below float32's resolution.
    """
    x_train = torch.as_tensor(x_train, dtype=torch.float64)
    y_train = torch.as_tensor(y_train, dtype=torch.int64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LeNet5().double()
    model.to(device).train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x = _shift(x_train[idx], max_shift, generator) if max_shift else x_train[idx]
            loss = F.cross_entropy(model(x.to(device)), y_train[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.float().eval()


@torch.no_grad()
def accuracy(model, x, y, batch_size=1000):
    device = next(model.parameters()).device
    y = torch.as_tensor(y)
    correct = sum((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def save_judge(path, model):
    save_checkpoint(path, {"arch": "LeNet5", "model": {k: v.cpu() for k, v in model.state_dict().items()}})


def load_judge(path="checkpoints/judge/judge.pt", device="cpu"):
    """The trained judge in eval mode, its parameters frozen; run `dvc repro judge` first."""
    from pathlib import Path

    from ebm.data import DataError

    if not Path(path).is_file():
        raise DataError(f"{path}: the judge is missing; run `dvc repro judge` (or `python stages/judge.py`)")
    state = load_checkpoint(path, device, "rebuild it: `dvc repro -f judge`")
    model = LeNet5().to(device)
    model.load_state_dict(state["model"])
    return model.eval().requires_grad_(False)
