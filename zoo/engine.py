"""The one training loop (accelerate). Pretraining and fine-tuning are recipes that hand it a `Plan`.

Launch: `zoo <verb> …` on one device, or `accelerate launch -m zoo <verb> …` for DDP / FSDP from the
accelerate config; the loop is the same.

- Batches are a pure function of (seed, step): `plan.batch(step)` gives the items of the *global*
  batch, every process collates all of them with a seed derived from (seed, step) and takes its rows.
  A resumed run therefore needs only the step plus the states accelerate checkpoints (model, optimizer,
  RNG); the learning rate is a pure function of the step too.
- The loss is normalised over the whole global batch: `plan.loss` returns (sum, count), each micro-batch
  backpropagates its sum, and the gradients are scaled by world / (count over all processes and
  micro-batches) before clipping. 1 process × B, 2 processes × B/2 and gradient accumulation compute
  the same update.
- Checkpoints (`<workdir>/checkpoints/step-N`) are written to a temp dir and renamed: whole or absent.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import run as runs
from zoo.config import TrainConfig
from zoo.errors import UserError

Batch = dict[str, Any]


@dataclass
class Plan:
    """What a recipe asks the engine to train."""

    label: str
    """Shown on the progress bar."""
    steps: int
    batch: Callable[[int], Sequence[Any]]
    """Items (blocks, examples) of the global batch of a step: a pure function of the step."""
    collate: Callable[[Sequence[Any], int], Batch]
    """(items, seed) → tensors whose first dimension is the item."""
    loss: Callable[[Any, Mapping[str, Any]], tuple[Any, Any]]
    """(model, micro-batch) → (sum of item losses, item count)."""
    units: Callable[[Mapping[str, Any]], int]
    """Throughput units in a collated global batch (real tokens, examples)."""
    unit_name: str = "tok"
    seed: int = 0
    evaluate: Callable[[Any, int], dict[str, float]] | None = None
    """(model, step) → metrics, logged with the step; the model is in eval mode under no_grad."""
    eval_every: int = 0
    save_every: int = 0
    save_final: bool = False
    """Checkpoint the last step too, so a later phase of the same run can resume after it."""
    tags: dict[str, Any] = field(default_factory=dict)
    """Added to every metrics record (task, seed, phase): one metrics.jsonl holds several fits."""
    state: dict[str, Any] = field(default_factory=dict)
    """Hook state (e.g. the best dev score) saved with each checkpoint and restored on resume."""
    packed: bool = False
    """The batches are packed blocks whose mask the objective builds per the model's attention
    implementation: the engine may switch that implementation (train.attention)."""


@dataclass
class FitResult:
    model: Any
    """The trained model, unwrapped (still on the engine's device)."""
    steps: int
    last_loss: float
    units_seen: int


def lr_factor(cfg: TrainConfig, steps: int) -> Callable[[int], float]:
    """Linear warmup, then linear or cosine decay to min_lr_ratio (or constant)."""
    warm = int(cfg.warmup_ratio * steps)
    floor = cfg.min_lr_ratio

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, steps - warm))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
        return floor + (1 - floor) * decay

    return f


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919 + 17) % (2**31 - 1)


def stream_indices(n: int, start: int, count: int, seed: int) -> list[int]:
    """Items start..start+count of an endless stream of seeded permutations of range(n): every batch is
    full, and an epoch is n items wherever it falls."""
    import torch

    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        take = perm[offset : offset + count - len(out)]
        out += take
        pos += len(take)
    return out


def _optimizer(model: Any, cfg: TrainConfig) -> Any:
    """AdamW without weight decay on biases and norms; one fused kernel per step on CUDA."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    if not decay and not no_decay:
        raise UserError(
            "the tuning method left no trainable parameters; choose another method or its options"
        )
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.is_cuda for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.adam_beta2), eps=cfg.adam_eps, fused=fused)


def _attention_dropout(model: Any) -> float:
    cfg = getattr(model, "config", None)
    return max(
        float(getattr(cfg, k, 0.0) or 0.0) for k in ("attention_probs_dropout_prob", "attention_dropout")
    )


def attention_implementation(choice: str, model: Any, device: Any) -> str | None:
    """The transformers attention implementation for packed blocks (None: leave the model's own).

    FlexAttention has no attention dropout, so `auto` takes it only for models trained without one
    (Llama's default; BERT's default 0.1 keeps the dense mask unless model.attention_probs_dropout_prob=0).
    """
    flex_ok = getattr(model, "_supports_flex_attn", False)
    dropout = _attention_dropout(model)
    if choice == "auto":
        return "flex_attention" if device.type == "cuda" and flex_ok and dropout == 0 else None
    if choice == "flex" and (not flex_ok or dropout > 0):
        why = "has no FlexAttention implementation" if not flex_ok else f"uses attention dropout {dropout}"
        raise UserError(
            f"train.attention=flex: {type(model).__name__} {why}, which FlexAttention cannot run; "
            "set the model's attention dropout to 0 or use train.attention=auto or sdpa"
        )
    return {"flex": "flex_attention", "sdpa": "sdpa", "eager": "eager"}[choice]


def mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _rows(batch: Mapping[str, Any], lo: int, hi: int) -> Batch:
    return {k: v[lo:hi] for k, v in batch.items()}


def hardware(device: Any) -> str:
    """The device as the leaderboard names it: the GPU's name, or the CPU with its thread count."""
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


class Engine:
    """One accelerate `Accelerator` per process; `fit` may run several times (seeds, phases)."""

    def __init__(self, cfg: TrainConfig, *, quiet: bool = False) -> None:
        from accelerate import Accelerator

        self.cfg = cfg
        self.quiet = quiet
        self.acc = Accelerator(mixed_precision=mixed_precision(cfg.mixed_precision))
        self.world = self.acc.num_processes
        per_proc, rem = divmod(cfg.batch_size, self.world * cfg.grad_accum)
        if rem or per_proc == 0:
            raise UserError(
                f"train.batch_size={cfg.batch_size} must be a multiple of processes × grad_accum "
                f"= {self.world} × {cfg.grad_accum}"
            )
        self.per_proc = per_proc
        if cfg.attention == "flex" and self.acc.device.type != "cuda":
            raise UserError(
                f"train.attention=flex needs a CUDA device (FlexAttention has no backward on {self.acc.device.type}); "
                "use train.attention=auto or sdpa"
            )

    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    @property
    def device(self) -> Any:
        return self.acc.device

    @property
    def precision(self) -> str:
        return {"no": "fp32"}.get(str(self.acc.mixed_precision), str(self.acc.mixed_precision))

    def hardware(self) -> str:
        return hardware(self.device)

    def facts(self) -> dict[str, Any]:
        """What a run records about where it ran (run.json, the leaderboard)."""
        return {"device": self.hardware(), "precision": self.precision, "world_size": self.world}

    def wait(self) -> None:
        self.acc.wait_for_everyone()

    def new_run_dir(self, domain: str, verb: str, out: Any) -> Path:
        """One run directory for all processes: each checks `out` (so a user error stops every process),
        then all take the main process's choice (auto names carry a timestamp)."""
        from accelerate.utils import broadcast_object_list

        chosen = [runs.new_run_dir(domain, verb, out)]
        self.wait()
        if self.world > 1:
            broadcast_object_list(chosen, from_process=0)
        return Path(chosen[0])

    def autocast(self) -> Any:
        return self.acc.autocast()

    # ------------------------------------------------------------------------------------------ fit

    def fit(
        self, model: Any, plan: Plan, workdir: Path, metrics_path: Path, *, resume: bool = False
    ) -> FitResult:
        """Train `model` for `plan.steps` steps; with `resume`, continue from workdir's last checkpoint."""
        from accelerate.utils import set_seed

        set_seed(plan.seed)
        model = self._setup_model(model, plan)
        optimizer = _optimizer(model, self.cfg)
        self.acc.free_memory()  # forget the models of earlier fits: checkpoints hold this one only
        model, optimizer = self.acc.prepare(model, optimizer)
        start, units_seen = 0, 0
        last = runs.checkpoints(workdir)[-1] if resume and runs.checkpoints(workdir) else None
        if last is not None:
            try:
                self.acc.load_state(str(last))
                saved = json.loads((last / "trainer_state.json").read_text())
            except (OSError, ValueError, RuntimeError, KeyError) as err:  # a damaged or foreign checkpoint
                raise UserError(
                    f"checkpoint '{last}' cannot be resumed ({type(err).__name__}: {err}); delete it to "
                    "resume from the one before it"
                ) from None
            start, units_seen = saved["step"], saved["units_seen"]
            plan.state.update(saved.get("state", {}))
        if resume:  # what was logged after the checkpoint (or before any) is about to be redone
            self._drop_records_after(metrics_path, start, plan.tags)
        log = _MetricsLog(metrics_path, plan.tags, self.is_main)
        last_loss: Any = float("nan")
        schedule = lr_factor(self.cfg, plan.steps)
        with _Progress(plan, start, self.is_main and not self.quiet) as bar:
            model.train()
            window = _Window()
            for step, batch in self._batches(plan, start):
                lr = self.cfg.lr * schedule(step)
                last_loss = self._step(model, optimizer, batch, plan, lr)
                units = plan.units(batch)
                units_seen += units
                window.add(units)
                done = step + 1
                if done % self.cfg.log_every == 0 or done in (start + 1, plan.steps):
                    last_loss = float(last_loss)  # the step's only wait for the GPU
                    rate = window.rate()
                    log.write(
                        step=done,
                        loss=last_loss,
                        lr=lr,
                        **{plan.unit_name + "s": units_seen, plan.unit_name + "s_per_s": rate},
                    )
                    bar.update(done, loss=last_loss, rate=rate)
                bar.update(done)
                if (
                    plan.evaluate is not None
                    and plan.eval_every
                    and (done % plan.eval_every == 0 or done == plan.steps)
                ):
                    log.write(step=done, **self._evaluate(model, plan, done))
                final = done == plan.steps and plan.save_final
                if final or (plan.save_every and done % plan.save_every == 0 and done < plan.steps):
                    save_checkpoint(self, workdir, done, {"units_seen": units_seen, "state": plan.state})
        self.wait()
        return FitResult(self.acc.unwrap_model(model), plan.steps, float(last_loss), units_seen)

    def _batches(self, plan: Plan, start: int) -> Iterator[tuple[int, Batch]]:
        """(step, collated global batch) from `start` on. For packed pretraining the next batch is
        collated in a background thread while the current step runs (collation is a pure function of the
        step, and on a GPU it would otherwise leave the device idle); on CUDA it comes in pinned memory so
        the copy to the device does not block."""
        import torch

        def make(step: int) -> Batch:
            batch = plan.collate(plan.batch(step), step_seed(plan.seed, step))
            if self.device.type == "cuda":
                batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            return batch

        if not plan.packed:  # fine-tuning collates through tokenizers shared with evaluation: stay serial
            for step in range(start, plan.steps):
                yield step, make(step)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-collate") as pool:
            pending = pool.submit(make, start) if start < plan.steps else None
            for step in range(start, plan.steps):
                batch = pending.result()
                pending = pool.submit(make, step + 1) if step + 1 < plan.steps else None
                yield step, batch

    def _setup_model(self, model: Any, plan: Plan) -> Any:
        """On the device, with the attention implementation for packed blocks and, if asked, compiled
        (in place: the state dict keeps its keys)."""
        model = model.to(self.device)
        impl = attention_implementation(self.cfg.attention, model, self.device) if plan.packed else None
        if impl is not None and getattr(model.config, "_attn_implementation", None) != impl:
            model.set_attn_implementation(impl)
        if self.cfg.compile:
            model.compile()
        return model

    def _step(self, model: Any, optimizer: Any, batch: Batch, plan: Plan, lr: float) -> Any:
        """One optimizer step; returns the mean loss as a 0-d tensor (read it only when logging: reading
        it waits for the GPU)."""
        import torch

        rank, per, accum = self.acc.process_index, self.per_proc, self.cfg.grad_accum
        mine = _rows(batch, rank * per * accum, (rank + 1) * per * accum)
        totals = torch.zeros(2, device=self.device)
        for m in range(accum):
            micro = {
                k: v.to(self.device, non_blocking=True)
                for k, v in _rows(mine, m * per, (m + 1) * per).items()
            }
            sync = m == accum - 1
            with nullcontext() if sync else self.acc.no_sync(model), self.acc.autocast():
                loss_sum, count = plan.loss(model, micro)
                self.acc.backward(loss_sum)
            totals += torch.stack(
                [loss_sum.detach().float(), torch.as_tensor(count, device=self.device).float()]
            )
        totals = self.acc.reduce(totals, reduction="sum")
        count = totals[1].clamp(min=1)
        # DDP averaged the gradients of the per-process sums; rescale to the mean over the global batch.
        scale = self.world / count
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, scale)
        self.acc.clip_grad_norm_(model.parameters(), self.cfg.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return totals[0] / count

    def _evaluate(self, model: Any, plan: Plan, step: int) -> dict[str, float]:
        import torch

        assert plan.evaluate is not None
        model.eval()
        try:
            with torch.no_grad(), self.acc.autocast():
                return plan.evaluate(model, step)
        finally:
            model.train()

    def _drop_records_after(self, metrics_path: Path, step: int, tags: Mapping[str, Any]) -> None:
        """Drop what this fit logged after the checkpoint: those steps are about to be redone."""
        if self.is_main and metrics_path.exists():
            lines = metrics_path.read_text().splitlines()

            def redone(line: str) -> bool:
                r = json.loads(line)
                return r.get("step", 0) > step and all(r.get(k) == v for k, v in tags.items())

            runs.atomic_write_text(metrics_path, "".join(x + "\n" for x in lines if not redone(x)))
        self.wait()


def save_checkpoint(engine: Engine, workdir: Path, step: int, extra: Mapping[str, Any]) -> None:
    """Write checkpoints/step-N whole or not at all (temp dir + rename); keep the newest few."""
    folder = workdir / "checkpoints"
    tmp = folder / f".tmp-step-{step}"
    if engine.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    engine.wait()
    engine.acc.save_state(str(tmp))
    engine.wait()
    if engine.is_main:
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **extra}))
        shutil.rmtree(folder / f"step-{step}", ignore_errors=True)
        tmp.rename(folder / f"step-{step}")
        runs.prune_checkpoints(workdir, engine.cfg.keep_checkpoints)
    engine.wait()


class _MetricsLog:
    def __init__(self, path: Path, tags: Mapping[str, Any], enabled: bool) -> None:
        self.path, self.tags, self.enabled = path, dict(tags), enabled

    def write(self, **record: Any) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps({**record, **self.tags}) + "\n")


class _Window:
    """Throughput over the steps since the last log line."""

    def __init__(self) -> None:
        self.units, self.t = 0, time.perf_counter()

    def add(self, units: int) -> None:
        self.units += units

    def rate(self) -> float:
        now = time.perf_counter()
        rate = self.units / max(now - self.t, 1e-9)
        self.units, self.t = 0, now
        return rate


class _Progress:
    """The rich progress bar (loss, throughput, ETA) on the main process; nothing elsewhere."""

    def __init__(self, plan: Plan, start: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn(f"[bold]{plan.label}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[rate]} " + plan.unit_name + "s/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("fit", total=plan.steps, completed=start, loss="–", rate="–")

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, done: int, loss: float | None = None, rate: float | None = None) -> None:
        if self.bar is None:
            return
        fields: dict[str, Any] = {"completed": done}
        if loss is not None:
            fields["loss"] = f"{loss:.3f}"
        if rate is not None:
            fields["rate"] = f"{rate:,.0f}"
        self.bar.update(self.task, **fields)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def plot_curves(metrics_path: Path, png: Path, eval_key: str) -> None:
    """Train loss and one evaluation curve (eval_loss, or a dev metric) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(metrics_path)
    fig, ax = plt.subplots(figsize=(6, 4))
    groups = sorted({tuple((k, r[k]) for k in ("task", "seed", "phase") if k in r) for r in rows})
    for group in groups:
        mine = [r for r in rows if all(r.get(k) == v for k, v in group)]
        name = " ".join(str(v) for _, v in group)
        train = [(r["step"], r["loss"]) for r in mine if "loss" in r]
        evals = [(r["step"], r[eval_key]) for r in mine if eval_key in r]
        if train:
            ax.plot(*zip(*train), label=f"train loss {name}".strip())
        if evals:
            ax.plot(*zip(*evals), "o-", label=f"{eval_key} {name}".strip())
    ax.set_xlabel("step")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
