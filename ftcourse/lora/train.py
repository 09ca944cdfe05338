"""The training loop: the loss on answer tokens, ``train_lora``, and its live plot.

* ``answer_loss``: cross-entropy on the answer tokens; the vocabulary projection (576 x 49,152 for
  the course model) runs only at those positions instead of at every position of the batch.
  ``dataset_loss`` is the same number over a whole set (the validation loss).
* ``train_lora``: adds a LoRA adapter with peft (``adapters.add_lora``) and trains it, with a progress
  bar, a live plot of train and validation loss (in a notebook), and early stopping once a validation
  metric (format compliance, measured by generating answers) reaches a target. ``TrainResult`` is
  what a run did; ``plot_training`` draws it afterwards.

Why a short explicit loop rather than ``transformers.Trainer``
--------------------------------------------------------------
The training step itself is six lines of ``train_lora`` (collate a batch, ``answer_loss``, backward,
clip, optimizer step, zero the gradients): the same six lines lesson 04 writes out by hand before the
loop takes over. The rest of the function (about a hundred lines) is bookkeeping you can read top to
bottom: the clock, the progress bar, validation checks, early stopping and continuing a run. Every
lever the lesson talks about is a visible line: which tokens are in the loss, how a batch is padded,
when to stop.
Early stopping here is decided by *generating* answers for validation tickets and checking their
format; ``Trainer``'s evaluation loop computes a loss, so the same thing there needs a callback that
reaches into the model and tokenizer and pauses the clock by hand. On a laptop CPU, where a step
takes about a second, ``Trainer``'s per-step machinery (accelerate wrapping, logging, checkpoint
bookkeeping) is also time you pay for. ``bench/lora_lab.py`` runs the ``Trainer`` route (TRL's
``SFTTrainer`` with the settings of the Hugging Face LLM course) on the same data, side by side.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import CourseError
from .adapters import add_lora, copy_adapter_weights
from .data import IGNORE, batch_stream, collate, encode_examples
from .settings import LoraSettings


# --------------------------------------------------------------------------- batch size
def default_batch_size(device: str | torch.device | None = None) -> int:
    """Examples per step: 4 on a CPU, 8 on an Apple GPU, 32 on a CUDA GPU.

    On a CPU a step costs in proportion to its tokens, and the format locks in after about as many
    *steps* with 4 examples as with 8 (measured: 12-16 steps either way at lr 5e-3), so 4 is nearly
    twice as fast to the target. A CUDA GPU has cores to spare: bigger batches cost it almost nothing.
    """
    kind = getattr(device, "type", device) or "cpu"
    return {"cuda": 32, "mps": 8}.get(str(kind), 4)


# --------------------------------------------------------------------------- the loss
def _parts(model):
    """(decoder trunk, output head) of a causal LM, under any peft wrapper; (None, None) if unknown."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    get_decoder = getattr(base, "get_decoder", None)
    trunk = get_decoder() if callable(get_decoder) else None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    return trunk, head


def answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of a batch (the same number ``model(labels=...)``
    returns), with the output head applied only where a label exists.

    Position t predicts token t+1, so hidden states are shifted against labels. For a ticket, the
    answer is ~16 of ~60 tokens: skipping the head at the other positions saves most of its cost.
    """
    labels = batch["labels"]
    trunk, head = _parts(model)
    if trunk is None or head is None:  # an unusual architecture: let the model do it all
        return model(**batch).loss
    hidden = trunk(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    if not keep.any():
        raise CourseError("This batch has no answer tokens to learn from; check the labels.")
    logits = head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


@torch.no_grad()
def dataset_loss(model, encoded: Sequence[dict], pad_id: int, batch_size: int = 16) -> float:
    """Mean answer-token loss over a whole encoded set (validation loss)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = _device_of(model)
    for i in range(0, len(encoded), batch_size):
        chunk = encoded[i:i + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        n = int((batch["labels"][:, 1:] != IGNORE).sum())
        total += float(answer_loss(model, batch)) * n
        count += n
    if was_training:
        model.train()
    return total / max(count, 1)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------- live display
def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a figure can be redrawn in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class LiveLossPlot:
    """Train and validation loss (left) and the validation metric (right), redrawn in place.

    It is redrawn at every validation check and otherwise at most every ``min_interval_s`` seconds:
    a redraw costs about 0.4 s of CPU on 2 cores, which a redraw per step would take from training.
    Outside a notebook every method does nothing, so scripts and tests pay nothing for it.
    """

    def __init__(self, enabled: bool | None = None, metric_name: str = "validation compliance",
                 target: float | None = None, min_interval_s: float = 10.0):
        self.enabled = in_notebook() if enabled is None else enabled
        self.metric_name, self.target, self.min_interval_s = metric_name, target, min_interval_s
        self._last = 0.0
        self.handle = None
        if not self.enabled:
            return
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.fig, (self.ax_loss, self.ax_metric) = plt.subplots(1, 2, figsize=(9.5, 3.2))
        plt.close(self.fig)  # shown through the display handle only, not again at the end of the cell
        self.handle = display(self.fig, display_id=True)

    def update(self, steps: list[dict], evals: list[dict], force: bool = False) -> None:
        if not self.enabled or (not force and time.perf_counter() - self._last < self.min_interval_s):
            return
        self._last = time.perf_counter()
        draw_training(steps, evals, self.ax_loss, self.ax_metric, self.metric_name, self.target)
        self.fig.tight_layout()
        self.handle.update(self.fig)


def _style_share_axis(ax, xlabel: str, ylabel: str, legend_loc: str | None = None, fontsize: int = 9) -> None:
    """Labels, a 0-100 % y range with a little room, a light grid and (optionally) a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    if legend_loc:
        ax.legend(loc=legend_loc, fontsize=fontsize)


def draw_training(steps: list[dict], evals: list[dict], ax_loss, ax_metric=None,
                  metric_name: str = "validation compliance", target: float | None = None) -> None:
    """Draw loss curves (and the metric curve) of a run on the given matplotlib axes."""
    ax_loss.clear()
    if steps:
        ax_loss.plot([s["step"] for s in steps], [s["loss"] for s in steps], label="train loss", lw=1.2)
    val = [e for e in evals if e.get("val_loss") is not None]
    if val:
        ax_loss.plot([e["step"] for e in val], [e["val_loss"] for e in val], "o-", label="validation loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss on answer tokens")
    ax_loss.legend(loc="upper right")
    ax_loss.grid(alpha=0.3)
    if ax_metric is None:
        return
    ax_metric.clear()
    scored = [e for e in evals if e.get("metric") is not None]
    if scored:
        ax_metric.plot([e["step"] for e in scored], [e["metric"] for e in scored], "o-", color="tab:green")
    if target is not None:
        ax_metric.axhline(target, ls="--", color="grey", lw=1, label=f"target {target:.0%}")
    _style_share_axis(ax_metric, "step", metric_name, "lower right" if target is not None else None, fontsize=10)


# --------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What a run did: per-step losses, the validation checks, and the clock."""

    model: object = field(repr=False)
    settings: LoraSettings
    steps: list[dict]  # {"step", "loss", "train_s"} for every optimizer step
    evals: list[dict]  # {"step", "val_loss", "metric", "train_s"} for every validation check
    train_seconds: float  # forward, backward and optimizer time only
    eval_seconds: float  # time spent on validation checks
    wall_seconds: float  # everything, plotting included
    trained_tokens: int
    reached_step: int | None  # first step whose validation metric reached the target
    device: str = "cpu"
    adapter_name: str = "default"
    state: dict = field(default_factory=dict, repr=False)  # optimizer and data order, to continue a run

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def stopped_early(self) -> bool:
        return self.reached_step is not None and self.n_steps < self.settings.max_steps

    @property
    def final_metric(self) -> float | None:
        scored = [e["metric"] for e in self.evals if e.get("metric") is not None]
        return scored[-1] if scored else None

    @property
    def seconds_to_target(self) -> float | None:
        """Training seconds (validation excluded) until the first check that met the target."""
        for e in self.evals:
            if self.reached_step is not None and e["step"] == self.reached_step:
                return e["train_s"]
        return None

    def curve(self) -> tuple[list[int], list[float]]:
        """(steps, metric) at every validation check: the "locking in" curve."""
        scored = [e for e in self.evals if e.get("metric") is not None]
        return [e["step"] for e in scored], [e["metric"] for e in scored]

    def summary(self) -> str:
        lines = [f"{self.n_steps} steps on {self.device}: {self.train_seconds:.1f} s training, "
                 f"{self.eval_seconds:.1f} s validation checks, {self.wall_seconds:.1f} s in all; "
                 f"{self.trained_tokens:,} tokens"]
        if self.final_metric is not None:
            line = f"last validation metric {self.final_metric:.0%}"
            if self.settings.target is not None:
                line += f", target reached at step {self.reached_step}" if self.reached_step else ", target not reached"
            lines.append(line)
        return "; ".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def train_lora(model, tok, train: Sequence, val: Sequence | None = None, *,
               metric: Callable | None = None, settings: LoraSettings | None = None,
               adapter_name: str = "default", plot: bool | None = None, progress: bool = True,
               continue_from: TrainResult | None = None, init_from: str | None = None,
               **overrides) -> TrainResult:
    """Train a LoRA adapter on ``train`` (chat examples) and return a ``TrainResult``.

    ``val``: examples for the validation loss. ``metric``: a function ``model -> score`` checked every
    ``eval_every`` steps (e.g. ``compliance_metric(tok, val_tickets)``); training stops as soon as it
    reaches ``target``. Any field of ``LoraSettings`` can be passed as a keyword (``r=16, max_steps=40``).
    ``plot``: live loss plot (default: on in a notebook). The clock ``train_seconds`` counts forward,
    backward and optimizer steps only; validation and plotting are timed apart.

    ``continue_from``: a finished run to train further (same adapter, optimizer and data order);
    ``max_steps`` then counts the *extra* steps, and the result holds the whole history.
    """
    prev = continue_from
    if prev is not None:
        model, adapter_name = prev.model, prev.adapter_name
        settings = settings or prev.settings
    s = dataclasses.replace(settings or LoraSettings(), **overrides)
    device = _device_of(model)
    batch_size = s.batch_size or default_batch_size(device)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = encode_examples(tok, train, system=s.system)
    if not encoded:
        raise CourseError("No training examples; pass a list of chat examples.")
    val_encoded = encode_examples(tok, val, system=s.system) if val else []

    wall0 = time.perf_counter()
    if prev is None:
        model = add_lora(model, s, adapter_name)
        if init_from is not None:
            copy_adapter_weights(model, init_from, adapter_name)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
        warm = max(s.warmup_steps, 0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / (warm + 1)))
        stream = batch_stream(len(encoded), batch_size, seed=s.seed)
    else:
        model.set_adapter(adapter_name)
        for name, p in model.named_parameters():
            p.requires_grad = f".{adapter_name}." in name and "lora_" in name
        optimizer, scheduler, stream = prev.state["optimizer"], prev.state["scheduler"], prev.state["stream"]
        params = [p for group in optimizer.param_groups for p in group["params"]]
    live = LiveLossPlot(plot, target=s.target if metric else None,
                        metric_name=getattr(metric, "__name__", "validation metric"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.max_steps, desc="LoRA training", unit="step")

    steps: list[dict] = list(prev.steps) if prev else []
    evals: list[dict] = list(prev.evals) if prev else []
    train_s = prev.train_seconds if prev else 0.0
    eval_s = prev.eval_seconds if prev else 0.0
    tokens = prev.trained_tokens if prev else 0
    reached: int | None = prev.reached_step if prev else None
    first = len(steps) + 1
    last = first + s.max_steps - 1

    def check(step: int) -> None:
        nonlocal eval_s, reached
        t0 = time.perf_counter()
        model.eval()
        row = {"step": step, "train_s": train_s,
               "val_loss": dataset_loss(model, val_encoded, pad_id) if val_encoded else None,
               "metric": float(metric(model)) if metric else None}
        extra = getattr(metric, "last", None)  # a metric that measures more than it returns (ticket_metric)
        if isinstance(extra, dict):
            row.update({f"val_{k}": v for k, v in extra.items()})
        model.train()
        eval_s += time.perf_counter() - t0
        evals.append(row)
        if (reached is None and step > 0 and row["metric"] is not None and s.target is not None
                and row["metric"] >= s.target):
            reached = step

    if s.check_at_start and prev is None and (metric or val_encoded):
        check(0)
        live.update(steps, evals, force=True)
    model.train()
    try:
        for step in range(first, last + 1):
            t0 = time.perf_counter()
            batch = collate([encoded[i] for i in next(stream)], pad_id)
            tokens += int(batch["attention_mask"].sum())
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = answer_loss(model, batch)
            loss.backward()
            if s.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())  # waits for the device, so the clock below is honest
            _sync(device)
            train_s += time.perf_counter() - t0
            if not math.isfinite(value):
                raise CourseError(f"The loss became {value} at step {step}; lower the learning rate.")
            steps.append({"step": step, "loss": value, "train_s": train_s})
            if (step - first + 1) % s.eval_every == 0 or step == last:  # counted from this call's first step
                check(step)
                live.update(steps, evals, force=True)
            else:
                live.update(steps, evals)
            if bar is not None:
                latest = evals[-1] if evals else {}
                post = {"loss": f"{value:.3f}"}
                if latest.get("metric") is not None:
                    post["val"] = f"{latest['metric']:.0%}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if (reached is not None and reached >= first) or (s.max_seconds is not None and train_s >= s.max_seconds):
                break
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    live.update(steps, evals, force=True)
    return TrainResult(model=model, settings=s, steps=steps, evals=evals, train_seconds=train_s,
                       eval_seconds=eval_s, wall_seconds=time.perf_counter() - wall0 + (prev.wall_seconds if prev else 0),
                       trained_tokens=tokens, reached_step=reached, device=device.type, adapter_name=adapter_name,
                       state={"optimizer": optimizer, "scheduler": scheduler, "stream": stream})


def plot_training(result: TrainResult, title: str | None = None):
    """A finished run as a static figure: loss curves, and the metric against steps."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.2))
    draw_training(result.steps, result.evals, ax1, ax2, target=result.settings.target)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
