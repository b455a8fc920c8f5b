"""The typed config: one frozen dataclass per section of params.yaml, each field with its check.

`ebm.params.load_params` checks the file against these declarations and returns a `Params`;
the stages read attributes (`cfg.sampler.steps`), never dict keys. A field's order is the
order its section lists in an error ("allowed here: ..."); what each value means is said
where params.yaml sets it.
"""

from dataclasses import dataclass, field

from ebm.fields import Field, fraction, image_count, non_negative, positive, positive_int
from ebm.fields import SCALES

frozen = dataclass(frozen=True, kw_only=True)


def leaf(spec):
    """A value checked by `spec` (an ebm.fields.Field)."""
    return field(metadata={"spec": spec})


def section(cls):
    """A nested mapping checked field by field against the dataclass `cls`."""
    return field(metadata={"section": cls})


@frozen
class Data:
    source: str = leaf(Field(str, choices=("auto", "torchvision", "bundled")))
    download_timeout_s: float = leaf(positive())
    test_fraction: float = leaf(Field(float, lo=0.0, hi=1.0, lo_open=True))
    split_seed: int = leaf(Field(int, lo=0))


@frozen
class Model:
    width: int = leaf(positive_int())


@frozen
class Sampler:
    steps: int = leaf(positive_int())  # K, Langevin steps per training iteration
    step_size: float = leaf(positive())
    noise_std: float = leaf(non_negative())
    grad_clamp: float = leaf(positive())
    no_grad_bug: bool = leaf(Field(bool))  # experiment 1's bug: sample under torch.no_grad()
    precision: str = leaf(Field(str, choices=("fp32", "bf16")))
    compile: bool = leaf(Field(bool))
    cuda_graph: bool | str = leaf(Field("switch"))  # true, false or auto (on CUDA)


@frozen
class Buffer:
    capacity: int = leaf(image_count())
    restart_prob: float = leaf(fraction())
    initial_fill: int = leaf(positive_int())


@frozen
class Loss:
    alpha: float = leaf(non_negative())
    r1_weight: float = leaf(non_negative())
    data_noise_std: float = leaf(non_negative())
    kl_weight: float = leaf(non_negative())
    repel_weight: float = leaf(non_negative())


@frozen
class Optim:
    lr: float = leaf(positive())
    beta1: float = leaf(Field(float, lo=0.0, hi=1.0))
    beta2: float = leaf(Field(float, lo=0.0, hi=1.0))
    lr_decay: float = leaf(Field(float, lo=0.0, hi=1.0, lo_open=True))  # StepLR gamma per epoch
    grad_clip: float = leaf(positive())


@frozen
class Train:
    """The shared recipe (`train`), and each experiment: `train` with the experiment's changes."""

    seed: int = leaf(Field(int, lo=0))
    model: Model = section(Model)
    sampler: Sampler = section(Sampler)
    buffer: Buffer = section(Buffer)
    loss: Loss = section(Loss)
    optim: Optim = section(Optim)
    batch_size: int = leaf(image_count())
    epochs: int = leaf(positive_int())
    sample_epochs: list[int] = leaf(Field("ints", lo=1))
    grid_size: int = leaf(image_count())
    generated_chains: int = leaf(image_count())  # chains from noise at every sample epoch
    generated_steps: int = leaf(Field(int, lo=0))  # their Langevin steps
    log_every: int = leaf(positive_int())
    expected_error: str | None = leaf(Field(str, optional=True))
    max_abs_energy: float = leaf(positive())
    train_subset: int = leaf(Field(int, lo=0))


@frozen
class Pool:
    """The long run's long-lived chains (ebm.buffer.ChainPool) and the sampler that moves them."""

    chains: int = leaf(image_count())
    restart_prob: float = leaf(fraction())  # per chain and iteration: rare, so ages spread out
    lifetime: int = leaf(Field(int, lo=0))  # steps after which a chain restarts (0: none)
    steps: int = leaf(positive_int())  # Langevin steps each chain advances per iteration
    share: float = leaf(fraction())  # fraction of each batch's negatives drawn from the pool
    step_size: float = leaf(positive())
    noise_std: float = leaf(non_negative())
    grad_clamp: float = leaf(positive())


@frozen
class LongRun(Train):
    """Beyond the original journey: the experiment it `continues`, with long_run's changes to
    any `train` key, trained against a pool of long-lived chains."""

    continues: str = leaf(Field(str))
    pool: Pool = section(Pool)
    ema_decay: float = leaf(Field(float, lo=0.0, hi=0.9999))  # 0: sample with the last weights


@frozen
class Judge:
    seed: int = leaf(Field(int, lo=0))
    epochs: int = leaf(positive_int())
    batch_size: int = leaf(image_count())
    lr: float = leaf(positive())
    non_digits: float = leaf(non_negative())  # "not a digit" images per training digit
    max_shift: int = leaf(Field(int, lo=0, hi=4))  # pixels a training image may be shifted by
    read_by_eye: int = leaf(Field(int, lo=0))  # labelled EBM samples per batch (0: none)
    members: int = leaf(Field(int, lo=1, hi=9))  # judges read by their mean probability


@frozen
class Evaluate:
    seed: int = leaf(Field(int, lo=0))
    num_samples: int = leaf(image_count())
    fresh_steps: int = leaf(Field(int, lo=0))
    batch_size: int = leaf(image_count())


@frozen
class Generate:
    seed: int = leaf(Field(int, lo=0))
    steps: int = leaf(positive_int())
    chains: dict[str, int] = leaf(Field("counts", lo=1, images=True))  # model -> its chains
    init: str = leaf(Field(str, choices=("noise", "buffer")))
    step_size: float = leaf(positive())
    noise_std: float = leaf(non_negative())
    noise_std_final: float = leaf(non_negative())
    grad_clamp: float = leaf(positive())
    snapshots: list[int] = leaf(Field("ints", lo=0))
    show_chains: int = leaf(positive_int())


REGIONS = ("lower_half", "right_half", "square")  # ebm.restore.hide's regions


@frozen
class Completion:
    digits: int = leaf(image_count())
    regions: list[str] = leaf(Field("names", choices=REGIONS))
    square: int = leaf(Field(int, lo=1, hi=20))  # side of the random square, in the central 20x20
    steps: int = leaf(positive_int())


@frozen
class Denoise:
    digits: int = leaf(image_count())
    sigmas: list[float] = leaf(Field("numbers", lo=0.0, lo_open=True))
    steps: int = leaf(positive_int())
    step_size: float = leaf(positive())
    noise_std: float = leaf(non_negative())
    grad_clamp: float = leaf(positive())


@frozen
class FashionMnist:
    path: str | None = leaf(Field(str, optional=True))  # a t10k-images-idx3-ubyte[.gz] on disk
    download: bool = leaf(Field(bool))
    download_timeout_s: float = leaf(positive())


@frozen
class Ood:
    digits: int = leaf(image_count())
    per_set: int = leaf(image_count())
    fashion_mnist: FashionMnist = section(FashionMnist)


@frozen
class Abilities:
    seed: int = leaf(Field(int, lo=0))
    models: list[str] = leaf(Field("names"))  # trained models (experiments or long_run)
    completion: Completion = section(Completion)
    denoise: Denoise = section(Denoise)
    ood: Ood = section(Ood)


@frozen
class Params:
    """params.yaml at one scale. A section a stage did not ask `load_params` for is None."""

    scale: str = leaf(Field(str, choices=SCALES))
    device: str = leaf(Field(str, choices=("auto", "cuda", "cpu")))
    data: Data | None = None
    train: Train | None = None
    experiments: dict[str, Train] | None = None  # in the journey's (the file's) order
    judge: Judge | None = None
    evaluate: Evaluate | None = None
    generate: Generate | None = None
    long_run: LongRun | None = None
    abilities: Abilities | None = None
