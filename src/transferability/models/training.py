"""Training the source model M = (w_Z, h_Z) on a source task (paper Sec. 3.1, Eq. 1-2); the only Lightning code.

w_Z is a backbone (backbones.py), h_Z one linear layer with softmax. Eq. (1) picks (w, h) minimising the
cross-entropy loss of Eq. (2), L_Z(w, h) = -1/n sum_i log P(z_i | x_i; w, h); here approximately, with AdamW
and a cosine learning-rate schedule. Afterwards w_Z is frozen and `extract` computes, in one forward pass,
the embeddings r = w_Z(x) (what the transfer heads are fitted on) and the source softmax P(z | x).

Images stay uint8 (N, H, W, C) until they reach the device: loading is one fancy-index per batch, and the
conversion to float, per-channel normalisation and optional horizontal flips run inside the model.
For backbone `features`, inputs are float32 (N, D) embeddings and only h_Z is trained (Discussion 1).

Resuming (a rerun, or a Slurm job requeued after a timeout or preemption): with a checkpoint directory and the
`checkpoint` callback, Lightning saves model, optimizer, scheduler, loop and callback state after every epoch,
and `train_source` continues from the last one. Lightning does not save random-number-generator state, so
nothing here depends on it across steps: epoch e's shuffle is seeded from (seed, e) and step t's augmentation
draws from (seed, t) alone. A resumed run therefore makes the same weights as one that never stopped (bit-identical on
the CPU with `deterministic`; tests/models/test_training.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.environments import SLURMEnvironment
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import io
from ..config import BackboneConfig, CallbacksConfig, TrainerConfig
from ..data.images import select_rows
from ..errors import UserError
from ..logs import progress
from .backbones import SourceNet, build_net
from .callbacks import LAST, AtomicCheckpointIO, build_callbacks

log = logging.getLogger(__name__)


@dataclass
class TrainedSource:
    model: nn.Module          # SourceNet: backbone + fc, eval mode, on the CPU
    history: list[dict]       # per epoch: epoch, train_loss, train_acc, seconds, images (+ val_loss, val_acc)
    epochs: int
    seconds: float
    resumed_from_epoch: int = 0   # epochs already done in the checkpoint it resumed from (0: from scratch)


class _Rows(Dataset):
    """Indexed by a list of rows (a BatchSampler's batch): one fancy-index per batch, no per-item collate."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        return torch.from_numpy(np.ascontiguousarray(self.x[rows])), torch.from_numpy(self.y[rows])


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A well-mixed 32-bit seed for one epoch (shuffle, stream 0) or one step (augmentation, stream 1)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class _EpochBatches:
    """Batches of row indices for one epoch. Shuffled from (seed, epoch), the epoch being set by Lightning
    through `set_epoch` before each epoch, so the order never depends on how many epochs this process ran."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int):
        self.n, self.batch_size, self.shuffle, self.seed, self.epoch = n, batch_size, shuffle, seed, 0
        # A last batch of one would break BatchNorm's batch statistics; a full epoch still sees every
        # row in expectation because the order is reshuffled.
        self.drop_last = shuffle and n > batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            gen = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=gen).numpy()
        else:
            order = np.arange(self.n)
        for i in range(len(self)):
            yield order[i * self.batch_size:(i + 1) * self.batch_size]


class SourceTask(pl.LightningModule):
    """Cross-entropy training of a SourceNet (Eq. 1-2), with per-epoch history for the caller."""

    def __init__(self, net: SourceNet, cfg: TrainerConfig, seed: int = 0):
        super().__init__()
        self.net, self.cfg, self.seed = net, cfg, seed
        self.history: list[dict] = []
        self._val: dict = {}
        self._sums: dict[str, list] = {}  # per stage: summed loss and correct (on the device), rows seen

    def _step(self, batch, stage: str):
        x, y = batch
        if stage == "train" and self.cfg.augment and self.net.images:
            flip = torch.rand(len(x), device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(2), x)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum()
        n = len(y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"{stage}_acc", correct.float() / n, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        sums = self._sums[stage]
        sums[0] += loss.detach().float() * n
        sums[1] += correct
        sums[2] += n
        return loss

    def training_step(self, batch, batch_idx):
        # This step's random draws (flips, any dropout) come from (seed, step) alone: the same after a resume.
        torch.manual_seed(epoch_seed(self.seed, self.global_step, stream=1))
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def _reset(self, stage: str) -> None:
        # Device tensors: summing per step costs no host synchronisation; one at the epoch's end.
        self._sums[stage] = [torch.zeros((), device=self.device),
                             torch.zeros((), device=self.device, dtype=torch.long), 0]

    def _means(self, stage: str) -> dict:
        loss, correct, n = self._sums[stage]
        return {f"{stage}_loss": float(loss) / max(n, 1), f"{stage}_acc": float(correct) / max(n, 1)}

    def on_train_epoch_start(self) -> None:
        self._reset("train")
        self._val = {}
        self._t0 = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._reset("val")
        self._v0 = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        # Lightning validates inside the training epoch: its time is kept apart, so `seconds - val_seconds`
        # is the training alone (a training rate over the epoch's wall time would count a full validation pass).
        self._val = dict(self._means("val"), val_seconds=time.perf_counter() - self._v0,
                         val_images=int(self._sums["val"][2]))

    def on_train_epoch_end(self) -> None:
        row = dict(epoch=self.current_epoch, **self._means("train"), seconds=time.perf_counter() - self._t0,
                   images=int(self._sums["train"][2]))
        self.history.append({**row, **self._val})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("history", []))

    def configure_optimizers(self):
        # No weight decay on norms and biases: it only shrinks scales the next layer undoes.
        decay = [p for p in self.net.parameters() if p.ndim > 1]
        rest = [p for p in self.net.parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.cfg.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=self.cfg.lr)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def labelled(x: np.ndarray, y: np.ndarray, n_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Drop the rows whose label is missing (-1); the rest must be codes 0..n_classes-1."""
    y = np.asarray(y).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels")
    keep = y >= 0
    if (y[keep] >= n_classes).any():
        raise ValueError(f"{what}: label {int(y[keep].max())} >= n_classes={n_classes}")
    if not keep.any():
        raise UserError(f"{what}: no labelled rows (all labels missing)")
    return (x, y) if keep.all() else (select_rows(x, keep), y[keep])


def channel_stats(x: np.ndarray, max_rows: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of x / 255 over evenly spaced rows (a sample is enough for normalising)."""
    rows = np.unique(np.linspace(0, len(x) - 1, min(len(x), max_rows)).astype(np.int64))
    sample = x[rows].astype(np.float32) / 255.0
    mean = sample.mean(axis=(0, 1, 2))
    std = np.maximum(sample.std(axis=(0, 1, 2)), 1e-3)  # a constant channel must not divide by zero
    return mean, std


def input_shape(x: np.ndarray, backbone: BackboneConfig) -> tuple[int, int]:
    """(in_channels, image_size): (C, H) of uint8 images, or (D, 0) for the `features` backbone."""
    if backbone.name == "features":
        if x.ndim != 2:
            raise ValueError(f"backbone features: expected float (N, D) inputs, got shape {x.shape}")
        return x.shape[1], 0
    if x.ndim != 4 or x.dtype != np.uint8 or x.shape[1] != x.shape[2]:
        raise ValueError(f"expected square uint8 images (N, H, W, C), got {x.dtype} {x.shape}")
    return x.shape[3], x.shape[1]


def seeded_net(backbone: BackboneConfig, in_channels: int, image_size: int, n_classes: int, *, seed: int,
               channels_last: bool = False, stats: tuple[np.ndarray, np.ndarray] | None = None) -> SourceNet:
    """The initial source model of a run with `seed`: every generator seeded, then the net built (so its weights
    depend on the seed and the shapes alone); `stats`: the per-channel (mean, std) the images are normalised by."""
    pl.seed_everything(seed, workers=True, verbose=False)
    net = build_net(backbone, in_channels, image_size, n_classes, channels_last=channels_last)
    if net.images and stats is not None:
        mean, std = stats
        net.mean.copy_(torch.from_numpy(mean).view_as(net.mean))
        net.std.copy_(torch.from_numpy(std).view_as(net.std))
    return net


def batch_loader(x, y, cfg: TrainerConfig, *, shuffle: bool, seed: int) -> DataLoader:
    ds = _Rows(x, y)
    batches = _EpochBatches(len(ds), cfg.batch_size, shuffle=shuffle, seed=seed)
    gpu = cfg.accelerator in ("gpu", "cuda")
    return DataLoader(ds, sampler=batches, batch_size=None, num_workers=cfg.num_workers, pin_memory=gpu,
                      persistent_workers=cfg.num_workers > 0)


def resume_point(ckpt_dir: Path | None) -> tuple[Path | None, int]:
    """(the checkpoint to resume from, epochs it has done), or (None, 0). A file cut short by a kill during
    its writing cannot be read: training starts again from scratch rather than failing every rerun."""
    path = ckpt_dir / f"{LAST}.ckpt" if ckpt_dir is not None else None
    if path is None or not path.is_file():
        return None, 0
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        return path, len(blob.get("history", []))
    except Exception as e:  # noqa: BLE001  (any unreadable file means the same: start over)
        log.info(f"ignoring unreadable checkpoint {path} ({type(e).__name__}); training from scratch")
        path.unlink(missing_ok=True)
        return None, 0


def train_source(x_train: np.ndarray, y_train: np.ndarray, n_classes: int, backbone: BackboneConfig,
                 trainer: TrainerConfig, *, seed: int, out_dir: Path, loggers: list | None = None,
                 x_val=None, y_val=None, callbacks: CallbacksConfig | None = None, ckpt_dir: Path | None = None,
                 extra_callbacks: list | None = None) -> TrainedSource:
    """Fit M = (w_Z, h_Z) to the source labels by minimising Eq. (2); rows labelled -1 are dropped.

    Same seed, same data and `trainer.deterministic` give the same weights (on the CPU), also when training
    resumed from `ckpt_dir` (where the `checkpoint` callback saves every epoch)."""
    t_start = time.perf_counter()
    x_train, y_train = labelled(x_train, y_train, n_classes, "source training labels")
    in_channels, image_size = input_shape(x_train, backbone)
    stats = channel_stats(x_train) if backbone.name != "features" else None
    net = seeded_net(backbone, in_channels, image_size, n_classes, seed=seed, channels_last=trainer.channels_last,
                     stats=stats)
    task = SourceTask(net, trainer, seed=seed)
    train_loader = batch_loader(x_train, y_train, trainer, shuffle=True, seed=seed)
    val_loader = None
    if x_val is not None and y_val is not None:
        x_val, y_val = labelled(x_val, y_val, n_classes, "source validation labels")
        val_loader = batch_loader(x_val, y_val, trainer, shuffle=False, seed=seed)
    made = build_callbacks(callbacks, ckpt_dir=ckpt_dir, has_val=val_loader is not None,
                           has_logger=bool(loggers)) if callbacks is not None else []
    resumed_from = fit(task, train_loader, val_loader, trainer, made + list(extra_callbacks or []),
                       loggers=loggers, ckpt_dir=ckpt_dir, out_dir=out_dir)
    net = task.net.cpu().eval()
    return TrainedSource(model=net, history=task.history, epochs=len(task.history),
                         seconds=time.perf_counter() - t_start, resumed_from_epoch=resumed_from)


def fit(task: pl.LightningModule, train_loader: DataLoader, val_loader: DataLoader | None, trainer: TrainerConfig,
        callbacks: list, *, loggers: list | None, ckpt_dir: Path | None, out_dir: Path) -> int:
    """Run Lightning's fit loop on `task` with the trainer settings; resumes from `ckpt_dir`'s last checkpoint when
    `callbacks` hold the checkpoint callback. Returns the epochs the checkpoint had done (0: from scratch)."""
    checkpointing = any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks)
    resume, resumed_from = resume_point(ckpt_dir if checkpointing else None)
    if resume is not None:
        log.info(f"resuming source training after epoch {resumed_from} from {resume}")
    n_batches = len(train_loader)
    # Lightning switches determinism on process-wide (in Trainer()); later code should not inherit it.
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with warnings.catch_warnings():
            # num_workers=0 is the right choice for in-memory uint8 arrays on a CPU run; validation is optional.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`.*")
            # Resuming: the checkpoint directory holds the checkpoint being resumed from.
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            # A Slurm job of one task runs one process per source model: no `srun python` needed.
            warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
            pl_trainer = pl.Trainer(
                accelerator=trainer.accelerator, devices=trainer.devices, precision=trainer.precision,
                max_epochs=trainer.max_epochs, deterministic=trainer.deterministic,
                # cuDNN autotuning pays off with fixed image sizes; it is off whenever determinism is asked for.
                benchmark=(not trainer.deterministic) if trainer.accelerator in ("gpu", "cuda") else None,
                limit_train_batches=trainer.limit_train_batches,
                logger=list(loggers) if loggers else False, log_every_n_steps=max(1, min(50, n_batches)),
                callbacks=callbacks, enable_model_summary=False, enable_checkpointing=checkpointing,
                enable_progress_bar=any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks),
                num_sanity_val_steps=0, use_distributed_sampler=False, default_root_dir=str(out_dir),
                # submitit requeues a timed-out or preempted job (USR2); Lightning's own requeue (USR1, with a
                # mid-epoch checkpoint we do not resume from) stays off.
                plugins=[AtomicCheckpointIO()]
                + ([SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []),
            )
            pl_trainer.fit(task, train_dataloaders=train_loader, val_dataloaders=val_loader,
                           ckpt_path=str(resume) if resume is not None else None)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    return resumed_from


def torch_device(accelerator: str) -> torch.device:
    """The torch device of a trainer's `accelerator`: cuda for gpu/cuda, else the CPU."""
    return torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")


def device_name(accelerator: str) -> str:
    """`cpu`, or `cuda:<the GPU's name>`: what a row records it was computed on."""
    device = torch_device(accelerator)
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"


def extract(model: SourceNet, x: np.ndarray, *, batch_size: int,
            accelerator: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(r = w_Z(x) float32 (N, D), P(z | x) float32 (N, K)) for the frozen source model, in one forward pass.

    On a GPU the pass runs in bfloat16 autocast (as trained with bf16-mixed); outputs are float32."""
    device = torch_device(accelerator)
    home = next(model.parameters()).device
    model = model.to(device).eval()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    # Batches are written into arrays allocated once: a list of per-batch outputs joined at the end would hold
    # the embeddings twice at the peak, and its small blocks, kept between freed activations, leave the heap
    # fragmented for the heads that follow (`make bench-scale`: a full-size CelebA row's peak RSS went from
    # 4.14 to 3.70 GB, under the 4 GB goal).
    z_out = np.empty((len(x), model.embedding_dim), np.float32)
    p_out = np.empty((len(x), model.fc.out_features), np.float32)
    try:
        with torch.inference_mode(), amp:
            for start in progress(range(0, len(x), batch_size), desc="extract", unit="batch", leave=False):
                xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
                z = model.embed(xb.to(device, non_blocking=True))
                stop = start + len(xb)
                z_out[start:stop] = z.float().cpu().numpy()
                p_out[start:stop] = torch.softmax(model.fc(z).float(), dim=1).cpu().numpy()
    finally:
        model.to(home)
    return z_out, p_out


def save_checkpoint(model: SourceNet, path) -> None:
    """The weights (and normalisation buffers) with what built them; written atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    io.torch_save({"spec": model.spec, "state_dict": state}, path)


def load_checkpoint(path, backbone: BackboneConfig, in_channels: int, image_size: int,
                    n_classes: int) -> SourceNet:
    """A SourceNet in eval mode from `save_checkpoint`'s file; the file must match the given shape."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        spec, state = blob["spec"], blob["state_dict"]
    except Exception as e:
        raise UserError(f"{path}: not a source-model checkpoint ({type(e).__name__}: {e})") from None
    # The pretrained-weights file only matters for training; the checkpoint holds the trained weights.
    net = build_net(dataclasses.replace(backbone, weights=None), in_channels, image_size, n_classes)
    # Where the pretrained weights or features came from does not change the network's shape.
    shape = lambda s: dict(s, backbone={k: v for k, v in s["backbone"].items()  # noqa: E731
                                        if k not in ("weights", "path")})
    spec, wanted = shape(spec), shape(net.spec)
    if spec != wanted:
        diff = sorted(k for k in wanted if spec.get(k) != wanted[k])
        raise UserError(f"{path}: checkpoint was made for a different model ({', '.join(diff)} differ: "
                        f"file has {[spec.get(k) for k in diff]}, expected {[wanted[k] for k in diff]})")
    net.load_state_dict(state)
    return net.eval()
