"""K networks trained as one: every image batch feeds K source models M_k = (w_k, h_k), each minimising its own
Eq. (2) on its own labels (paper Sec. 3.1). Uses: the sources of one matrix (they read the same images in the same
order: epoch e's shuffle is seeded from (seed, e), never from the source) and T copies of one trained network
fine-tuned on T target labellings (`init`).

The K networks run on each batch as one engine (stack_nets.py, `trainer.stack_engine`): `loop` (each network's own
kernels, on the batch prepared once: bit-identical to its single run on the CPU) or `grouped` (one wide network,
one grouped kernel per layer: what should keep a GPU busy). conf/trainer/cpu.yaml runs `loop`, gpu.yaml `grouped`.

Per network: its loss (their sum is minimised; the parameters are disjoint, so each gets its own gradient), its
AdamW state (AdamW is elementwise; weight decay follows each parameter's shape in one network, as in
training.SourceTask; the cosine schedule counts the same steps for all), validation metrics and early stopping
with Lightning's EarlyStopping rule. A network that stops keeps its weights from the epoch it stopped in and leaves
the stack, which goes on without it (optimizer state and schedule carried over); training ends when none is left
or at max_epochs. With the `checkpoint` callback every epoch is saved, and a rerun resumes all K (training.fit).

Each network starts as its single run would (training.seeded_net: seeded, then built).
"""
from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from ..config import BackboneConfig, CallbacksConfig, TrainerConfig
from . import training
from .backbones import SourceNet
from .callbacks import build_callbacks
from .stack_nets import ENGINES, take


@dataclasses.dataclass
class Stopping:
    """Lightning's EarlyStopping rule, one per network: an improvement is `current + min_delta < best` for a loss
    (`current - min_delta > best` for an accuracy); `patience` checks without one, or a non-finite value, stop."""
    monitor: str
    patience: int
    min_delta: float

    @property
    def higher_is_better(self) -> bool:
        return self.monitor.endswith("acc")

    def initial(self) -> dict:
        return {"best": -float("inf") if self.higher_is_better else float("inf"), "wait": 0}

    def update(self, state: dict, current: torch.Tensor) -> bool:
        """Update one network's state with this epoch's value (a float32 scalar, as Lightning compares it); True:
        it stops."""
        if not torch.isfinite(current):
            return True
        best = torch.tensor(state["best"], dtype=current.dtype)
        better = (current - self.min_delta > best) if self.higher_is_better else (current + self.min_delta < best)
        if bool(better):
            state.update(best=float(current), wait=0)
            return False
        state["wait"] += 1
        return state["wait"] >= self.patience


class StackedTask(pl.LightningModule):
    """Cross-entropy training of K networks run by one engine (stack_nets.ENGINES); networks leave the stack when
    they stop early."""

    def __init__(self, nets: Sequence[SourceNet], cfg: TrainerConfig, seed: int, stopping: Stopping | None,
                 engine: str = "loop"):
        super().__init__()
        self.cfg, self.seed, self.stopping, self.engine = cfg, seed, stopping, engine
        self.n_classes = [n.fc.out_features for n in nets]
        self.c_max = max(self.n_classes)
        # One template per class count (the nets of a count are identical at the start): the shapes to rebuild
        # stacks and final models from; kept out of the module's parameters.
        self._templates = {c: copy.deepcopy(n).cpu() for n, c in zip(nets, self.n_classes)}
        self.active = list(range(len(nets)))                   # networks still training, in stack order
        self.net = self._build(self.active, nets)
        self.histories: list[list[dict]] = [[] for _ in nets]
        self.finals: dict[int, dict] = {}                       # network -> state_dict when it stopped
        self.watch = [stopping.initial() for _ in nets] if stopping else None
        self._stop_now: list[int] = []
        self._val: dict = {}
        self._sums: dict[str, list] = {}

    def template(self, k: int) -> SourceNet:
        return self._templates[self.n_classes[k]]

    # -- steps --
    def _step(self, batch, stage: str):
        x, y = batch
        if stage == "train" and self.cfg.augment and self.net.images:
            flip = torch.rand(len(x), device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(2), x)
        losses, correct = self.net.losses(x, y[:, self.active])   # each network's Eq. 2, (K,)
        sums = self._sums[stage]
        n = len(y)
        sums[0] += losses.detach().float() * n
        sums[1] += correct
        sums[2] += (correct.float() / n) * n   # the accuracy as Lightning averages what SourceTask logs
        sums[3] += n
        return losses.sum()

    def training_step(self, batch, batch_idx):
        # The same draws as a single run's step (training.SourceTask): (seed, step) alone.
        torch.manual_seed(training.epoch_seed(self.seed, self.global_step, stream=1))
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def _reset(self, stage: str) -> None:
        k = len(self.active)
        self._sums[stage] = [torch.zeros(k, device=self.device), torch.zeros(k, device=self.device, dtype=torch.long),
                             torch.zeros(k, device=self.device), 0]

    def _means(self, stage: str) -> tuple[list[dict], dict[str, torch.Tensor], int]:
        """Per network, its epoch record as SourceTask writes it; the float32 means Lightning's EarlyStopping
        would compare (a single run monitors what it logs); the rows seen."""
        loss, correct, acc, n = (t.cpu() if isinstance(t, torch.Tensor) else t for t in self._sums[stage])
        rows = [{f"{stage}_loss": float(loss[j]) / max(n, 1), f"{stage}_acc": float(correct[j]) / max(n, 1)}
                for j in range(len(self.active))]
        return rows, {"val_loss": loss / max(n, 1), "val_acc": acc / max(n, 1)}, n

    # -- epochs --
    def on_train_start(self) -> None:
        # Resumed from the checkpoint of the epoch in which the last network stopped: nothing left to train.
        if len(self.finals) == len(self.n_classes):
            self.trainer.should_stop = True

    def on_train_epoch_start(self) -> None:
        self._reset("train")
        self._val, self._stop_now = {}, []
        self._t0 = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._reset("val")
        self._v0 = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        rows, monitored, n = self._means("val")
        seconds = time.perf_counter() - self._v0
        self._val = {k: dict(rows[j], val_seconds=seconds, val_images=n) for j, k in enumerate(self.active)}
        if self.stopping is not None and not self.trainer.sanity_checking:
            value = monitored[self.stopping.monitor]
            self._stop_now = [k for j, k in enumerate(self.active) if self.stopping.update(self.watch[k], value[j])]
        self.log("val_loss", float(monitored["val_loss"].mean()), prog_bar=True)

    def on_train_epoch_end(self) -> None:
        rows, _, n = self._means("train")
        seconds = time.perf_counter() - self._t0
        for j, k in enumerate(self.active):
            self.histories[k].append({"epoch": self.current_epoch, **rows[j], "seconds": seconds, "images": n,
                                      **self._val.get(k, {})})
        self.log("networks", float(len(self.active)), prog_bar=True)
        if self._stop_now:
            keep = [k for k in self.active if k not in self._stop_now]
            for k in self._stop_now:
                self.finals[k] = self.net.network_state(self.active.index(k), self.template(k))
            if keep:
                self._shrink(keep)
            else:
                self.trainer.should_stop = True

    # -- the stack loses stopped networks --
    def _build(self, keep: list[int], nets: Sequence[SourceNet] | None = None):
        """The engine over the networks `keep`, from `nets` (their initial state) or their templates."""
        nets = nets if nets is not None else [self.template(k) for k in keep]
        if self.engine == "loop":   # its own modules per network (the templates stay untouched)
            return ENGINES["loop"]([copy.deepcopy(n) for n in nets]).to(self.device)
        return ENGINES[self.engine](nets, pad_to=self.c_max).to(self.device)

    def _shrink(self, keep: list[int]) -> None:
        """The stack, its AdamW state and schedule with the networks `keep` only (same values)."""
        positions, k = [self.active.index(i) for i in keep], len(self.active)
        old_params = dict(self.net.named_parameters())
        self.net, origin = self.net.subset(positions, [self.template(i) for i in keep])
        self.active = keep
        trainer = self.trainer
        old_opt, config = trainer.optimizers[0], trainer.lr_scheduler_configs[0]
        new_opt = self._optimizer()
        for name, p in self.net.named_parameters():
            old_name, sliced = origin[name]
            state = old_opt.state.get(old_params[old_name])
            if state:
                new_opt.state[p] = {key: take(v, positions, k) if sliced and v.ndim else v for key, v in state.items()}
        sched = self._schedule(new_opt)
        sched.load_state_dict(config.scheduler.state_dict())
        for old_group, new_group in zip(old_opt.param_groups, new_opt.param_groups):
            new_group["lr"] = old_group["lr"]
        trainer.strategy.optimizers = [new_opt]
        config.scheduler = sched

    # -- checkpoints: the stack's composition and each network's record travel with the weights --
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # `history` per epoch done (training.resume_point counts them); each network's rows are in `stack`.
        checkpoint["history"] = [None] * max((len(h) for h in self.histories), default=0)
        checkpoint["stack"] = {"active": list(self.active), "histories": self.histories, "finals": self.finals,
                               "watch": self.watch}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stack = checkpoint["stack"]
        self.histories, self.finals, self.watch = stack["histories"], stack["finals"], stack["watch"]
        if stack["active"] != self.active:
            self.active = list(stack["active"])
            self.net = self._build(self.active)                # the saved weights are loaded into it next

    # -- optimisation: as training.SourceTask, over the stacked parameters --
    def _optimizer(self) -> torch.optim.Optimizer:
        # No weight decay on norms and biases, judged by each parameter's shape in one network.
        shapes = {name: p.ndim for name, p in self.template(self.active[0]).named_parameters()}
        named = [(self.net.base_name(name), p) for name, p in self.net.named_parameters()]
        decay = [p for name, p in named if shapes[name] > 1]
        rest = [p for name, p in named if shapes[name] <= 1]
        return torch.optim.AdamW([{"params": decay, "weight_decay": self.cfg.weight_decay},
                                  {"params": rest, "weight_decay": 0.0}], lr=self.cfg.lr)

    def _schedule(self, opt) -> torch.optim.lr_scheduler.LRScheduler:
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    def configure_optimizers(self):
        opt = self._optimizer()
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self._schedule(opt), "interval": "step"}}

    def final_nets(self) -> list[SourceNet]:
        """Every network in eval mode on the CPU: as it stopped, or as training ended."""
        nets = []
        for k in range(len(self.n_classes)):
            state = self.finals.get(k)
            if state is None:
                state = self.net.network_state(self.active.index(k), self.template(k))
            net = copy.deepcopy(self.template(k))
            net.load_state_dict(state)
            nets.append(net.eval())
        return nets


def _codes(y, n_classes: list[int], what: str) -> np.ndarray:
    """(N, K) int64 codes, every row labelled for every network (a stack shares every batch)."""
    y = np.asarray(y).astype(np.int64)
    if y.ndim != 2 or y.shape[1] != len(n_classes):
        raise ValueError(f"{what}: expected labels of shape (N, {len(n_classes)}), got {y.shape}")
    if (y < 0).any():
        raise ValueError(f"{what}: {int((y < 0).any(1).sum())} rows lack a label for some network; networks "
                         "stacked together must share their labelled rows (stack them by labelled rows)")
    if (y >= np.asarray(n_classes)).any():
        raise ValueError(f"{what}: a label is >= its network's class count {n_classes}")
    return y


def initial_nets(x_train, n_classes: list[int], backbone: BackboneConfig, trainer: TrainerConfig, *, seed: int,
                 init: SourceNet | None = None) -> list[SourceNet]:
    """Each network as a single run of it starts (training.seeded_net), or, with `init`, a copy of init's
    representation w and input normalisation under a fresh classifier of the network's class count."""
    in_channels, image_size = training.input_shape(x_train, backbone)
    stats = training.channel_stats(x_train) if backbone.name != "features" and init is None else None
    built: dict[int, SourceNet] = {}
    for c in dict.fromkeys(n_classes):
        net = training.seeded_net(backbone, in_channels, image_size, c, seed=seed,
                                  channels_last=trainer.channels_last, stats=stats)
        if init is not None:
            try:
                net.backbone.load_state_dict(init.backbone.state_dict())
            except RuntimeError as e:
                raise ValueError(f"init does not fit backbone {backbone.name}: {str(e).splitlines()[0]}") from None
            with torch.no_grad():
                net.mean.copy_(init.mean)
                net.std.copy_(init.std)
        built[c] = net
    return [built[c] for c in n_classes]


def train_stacked(x_train: np.ndarray, y_train: np.ndarray, n_classes: Sequence[int], backbone: BackboneConfig,
                  trainer: TrainerConfig, *, seed: int, out_dir: Path, init: SourceNet | None = None,
                  x_val=None, y_val=None, callbacks: CallbacksConfig | None = None, ckpt_dir: Path | None = None,
                  extra_callbacks: list | None = None, engine: str | None = None) -> list[training.TrainedSource]:
    """Train K networks on the shared inputs `x_train`, network k on the labels `y_train[:, k]` (codes
    0..n_classes[k]-1, no row missing), validated on (x_val, y_val[:, k]); one TrainedSource per network.

    Fresh networks start as their single runs (`train_source` with the same seed) would; with `init` (a trained
    SourceNet) each is a copy of init's backbone under a fresh classifier: the fine-tuning of T targets.
    Early stopping (`callbacks.use`) applies per network; the `checkpoint` callback makes a rerun resume all K.
    `engine`: `loop` or `grouped` (stack_nets.py); None: `trainer.stack_engine`."""
    t_start = time.perf_counter()
    n_classes = [int(c) for c in n_classes]
    y_train = _codes(y_train, n_classes, "stacked training labels")
    if len(x_train) != len(y_train):
        raise ValueError(f"stacked training: {len(x_train)} inputs but {len(y_train)} label rows")
    nets = initial_nets(x_train, n_classes, backbone, trainer, seed=seed, init=init)
    has_val = x_val is not None and y_val is not None and len(x_val) > 0
    use = list(callbacks.use) if callbacks is not None else []
    stopping = (Stopping(callbacks.monitor, callbacks.patience, callbacks.min_delta)
                if "early_stopping" in use and has_val else None)
    engine = engine or trainer.stack_engine
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    task = StackedTask(nets, trainer, seed, stopping, engine)
    train_loader = training.batch_loader(x_train, y_train, trainer, shuffle=True, seed=seed)
    val_loader = None
    if has_val:
        y_val = _codes(y_val, n_classes, "stacked validation labels")
        val_loader = training.batch_loader(x_val, y_val, trainer, shuffle=False, seed=seed)
    # Early stopping is the task's own (per network); the learning rate is the same for all and not logged.
    made = build_callbacks(dataclasses.replace(callbacks, use=[u for u in use if u not in ("early_stopping",
                                                                                          "lr_monitor")]),
                           ckpt_dir=ckpt_dir, has_val=has_val, has_logger=False) if callbacks is not None else []
    resumed_from = training.fit(task, train_loader, val_loader, trainer, made + list(extra_callbacks or []),
                                loggers=None, ckpt_dir=ckpt_dir, out_dir=out_dir)
    seconds = time.perf_counter() - t_start
    return [training.TrainedSource(model=net, history=history, epochs=len(history), seconds=seconds,
                                   resumed_from_epoch=resumed_from)
            for net, history in zip(task.final_nets(), task.histories)]


# -- memory: how many networks fit in one stack --
def network_bytes(net: SourceNet, x: np.ndarray, batch_size: int) -> int:
    """Training memory of one network of a stack, an upper estimate: its parameters four times (weights,
    gradients, AdamW's two moments) and, twice (kept for the backward pass, and their gradients), every layer's
    output for a batch of `batch_size` rows, measured by one forward pass of two rows of `x`."""
    seen = [0]

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor):
            seen[0] += output.numel() * output.element_size()

    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.from_numpy(np.ascontiguousarray(x[:2])))
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    rows = min(2, len(x))
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    return int(4 * params + 2 * seen[0] * batch_size / max(rows, 1))


def device_free_bytes(accelerator: str) -> int | None:
    """Free memory of the training device (torch.cuda.mem_get_info), or None for the CPU."""
    device = training.torch_device(accelerator)
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


# Shares of the free memory a stack may take: the rest is for the images, the extraction and the heads after it.
GPU_SHARE, CPU_SHARE = 0.8, 0.5


def memory_budget(accelerator: str, host_memory) -> tuple[int, str]:
    """(bytes a stack may take on the training device, where that figure comes from): a share of the GPU's free
    memory, or of what the job may still allocate on the CPU, `host_memory()` -> (bytes, why) (the stages pass
    threads.allotted_memory: the job's allotment is theirs to know)."""
    free = device_free_bytes(accelerator)
    if free is not None:
        return int(GPU_SHARE * free), f"{GPU_SHARE:.0%} of the GPU's free {free / 1e9:.1f} GB"
    host, why = host_memory()
    return int(CPU_SHARE * host), f"{CPU_SHARE:.0%} of {host / 1e9:.1f} GB ({why})"


def split(items: list, sizes: list[int]) -> list[list]:
    """`items` cut into consecutive pieces of `sizes` (stack_sizes' answer), in order."""
    starts = np.cumsum([0, *sizes])
    return [items[a:b] for a, b in zip(starts[:-1], starts[1:])]


def stack_sizes(k: int, per_network: int, budget: int) -> list[int]:
    """K networks split into as few stacks as fit `budget` bytes, of near-equal sizes (largest first)."""
    fit = max(1, budget // max(per_network, 1))
    n = -(-k // fit)
    return [k // n + (1 if i < k % n else 0) for i in range(n)]
