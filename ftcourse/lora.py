"""Fine-tune the course model with LoRA: examples -> tensors, a short training loop, adapters.

The pieces, in the order lesson 04 uses them:

* ``encode_example`` / ``encode_examples``: a chat example becomes token ids plus *labels* that are
  ``-100`` (ignored by the loss) everywhere except the assistant's answer and its end-of-turn token.
  The model is never graded on re-typing the ticket, only on writing the answer.
* ``collate``: a batch padded to its *longest* example, not to a fixed length.
* ``answer_loss``: cross-entropy on the answer tokens; the vocabulary projection (576 x 49,152 for
  the course model) runs only at those positions instead of at every position of the batch.
* ``train_lora``: adds a LoRA adapter with peft and trains it, with a progress bar, a live plot of
  train and validation loss (in a notebook), and early stopping once a validation metric (format
  compliance, measured by generating answers) reaches a target.
* ``save_adapter`` / ``load_adapter`` / ``merge_adapter``: the adapter as a file, and folded into the
  base weights.

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

import copy
import dataclasses
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .chat import render
from .errors import CourseError

IGNORE = -100  # label value the cross-entropy loss skips


# --------------------------------------------------------------------------- settings
def default_batch_size(device: str | torch.device | None = None) -> int:
    """Examples per step: 4 on a CPU, 8 on an Apple GPU, 32 on a CUDA GPU.

    On a CPU a step costs in proportion to its tokens, and the format locks in after about as many
    *steps* with 4 examples as with 8 (measured: 12-16 steps either way at lr 5e-3), so 4 is nearly
    twice as fast to the target. A CUDA GPU has cores to spare: bigger batches cost it almost nothing.
    """
    kind = getattr(device, "type", device) or "cpu"
    return {"cuda": 32, "mps": 8}.get(str(kind), 4)


@dataclass
class LoraSettings:
    """Everything that decides a LoRA run. ``train_lora(..., r=16)`` overrides one field."""

    r: int = 8  # rank of the update B @ A added to each targeted weight
    alpha: int = 16  # the update is scaled by alpha / r
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    learning_rate: float = 5e-3
    batch_size: int | None = None  # None: default_batch_size(device)
    max_steps: int = 60
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    eval_every: int = 4  # steps between validation checks
    check_at_start: bool = False  # also check before the first step (the curve then starts at the base model)
    target: float | None = 0.95  # stop once the validation metric reaches this (None: never)
    max_seconds: float | None = None  # also stop once training time passes this
    system: str | bool | None = False  # system turn for examples without one (False: none at all)
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- data -> tensors
def messages_of(example) -> list[dict]:
    """The chat messages of an example: a ``Ticket`` (``.messages``), a JSONL row, or a message list."""
    if isinstance(example, dict) and "messages" in example:
        return list(example["messages"])
    if hasattr(example, "messages"):
        return list(example.messages)
    if isinstance(example, list):
        return list(example)
    raise CourseError(f"Cannot read chat messages from a {type(example).__name__}; pass dicts with a "
                      "'messages' list, Ticket objects, or lists of messages.")


def encode_example(tok, example, system: str | bool | None = False) -> dict:
    """Token ids of a chat example and its labels: the answer's tokens, ``-100`` everywhere else.

    The prompt (every turn but the last, plus the ``<|im_start|>assistant`` header) is rendered with
    the chat template exactly as ``ftcourse.chat`` renders it at generation time; the answer is the
    last (assistant) turn followed by the end-of-turn token, so the model learns to stop. Prompt and
    answer are tokenized separately and joined, so the label boundary is exact.
    """
    messages = messages_of(example)
    if not messages or messages[-1].get("role") != "assistant":
        raise CourseError("A training example must end with an assistant turn (the answer to learn).")
    prompt_text = render(tok, messages[:-1], system=system, add_generation_prompt=True)
    prompt_ids = tok(prompt_text, add_special_tokens=False).input_ids
    answer_ids = tok(messages[-1]["content"] + tok.eos_token, add_special_tokens=False).input_ids
    return {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE] * len(prompt_ids) + answer_ids}


def encode_examples(tok, examples: Sequence, system: str | bool | None = False) -> list[dict]:
    """``encode_example`` over a list."""
    return [encode_example(tok, ex, system=system) for ex in examples]


def token_stats(encoded: Sequence[dict]) -> dict:
    """Mean tokens per example, mean answer tokens, and the share of tokens the loss looks at."""
    if not encoded:
        return {"examples": 0, "mean_tokens": 0.0, "mean_answer_tokens": 0.0, "answer_share": 0.0}
    total = sum(len(e["input_ids"]) for e in encoded)
    answer = sum(sum(1 for x in e["labels"] if x != IGNORE) for e in encoded)
    return {"examples": len(encoded), "mean_tokens": total / len(encoded),
            "mean_answer_tokens": answer / len(encoded), "answer_share": answer / total}


def collate(batch: Sequence[dict], pad_id: int, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Stack encoded examples into tensors, padded on the right to the longest one in the batch.

    ``pad_to`` pads to a fixed length instead (what "pad everything to the maximum" costs). Padding
    positions get attention 0 and label -100, so they change neither the answer nor the loss.
    """
    longest = max(len(e["input_ids"]) for e in batch)
    width = max(longest, pad_to or 0)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_stream(n_examples: int, batch_size: int, seed: int = 0):
    """Endless lists of example indices: shuffled anew every epoch, with a fixed seed."""
    rng = random.Random(seed)
    order = list(range(n_examples))
    while True:
        rng.shuffle(order)
        for i in range(0, n_examples, batch_size):
            yield order[i:i + batch_size]


def tokens_per_epoch(encoded: Sequence[dict], batch_size: int, pad_to: int | None = None, seed: int = 0) -> int:
    """Tokens one pass over ``encoded`` pushes through the model, padding included: each batch
    padded to its longest example (``pad_to=None``) or every example padded to ``pad_to``."""
    n = len(encoded)
    if n == 0:
        return 0
    order = next(batch_stream(n, n, seed=seed))
    total = 0
    for i in range(0, n, batch_size):
        rows = [len(encoded[j]["input_ids"]) for j in order[i:i + batch_size]]
        total += len(rows) * max(max(rows), pad_to or 0)
    return total


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


# --------------------------------------------------------------------------- validation metric
def ticket_metric(tok, tickets: Sequence, key: str = "compliance", max_new_tokens: int = 24, rung: str = "bare",
                  system: str | bool | None = False) -> Callable:
    """A function ``model -> share`` on ``tickets`` for early stopping: ``key`` is ``"compliance"``
    (format) or ``"accuracy"`` (both labels right).

    It generates greedy answers with the short ``bare`` prompt (what the tuned model will serve with)
    and scores them with ``ftcourse.evals``. A compliant answer is ~16 tokens, so a small
    ``max_new_tokens`` keeps each check cheap, and an answer stops as soon as it cannot pass (before the
    format locks in, that is after one token). Both numbers come from the same answers, so every check
    records both (``metric.last``; ``train_lora`` stores them as ``val_compliance`` and ``val_accuracy``).
    """
    from .evals import evaluate_tickets

    if key not in ("compliance", "accuracy"):
        raise CourseError(f"ticket_metric measures 'compliance' or 'accuracy', not {key!r}.")
    tickets = list(tickets)

    def metric(model) -> float:
        report = evaluate_tickets(model, tok, tickets, rung=rung, max_new_tokens=max_new_tokens, system=system,
                                  progress=False, stop_at_failure=True)
        metric.last = {"compliance": report.compliance, "accuracy": report.accuracy, "n": report.n}
        return getattr(report, key)

    metric.last = None
    metric.__name__ = f"validation {'compliance' if key == 'compliance' else 'label accuracy'}"
    return metric


def compliance_metric(tok, tickets: Sequence, max_new_tokens: int = 24, rung: str = "bare",
                      system: str | bool | None = False) -> Callable:
    """A function ``model -> format compliance`` on ``tickets`` (``ticket_metric`` with its default key)."""
    return ticket_metric(tok, tickets, "compliance", max_new_tokens=max_new_tokens, rung=rung, system=system)


def leak_metric(tok, prompts: Sequence, max_new_tokens: int = 32) -> Callable:
    """A function ``model -> share of general prompts answered as ticket JSON`` (lower is better), to
    watch a regression at every check of a run instead of at one lucky step."""
    prompts = list(prompts)

    def metric(model) -> float:
        return ticket_format_leak(model, tok, prompts, max_new_tokens=max_new_tokens).rate

    metric.__name__ = "probe leak"
    return metric


def fact_metric(tok, questions: Sequence, facts: Sequence, max_new_tokens: int = 24,
                system: str | bool | None = False) -> Callable:
    """A function ``model -> fact accuracy`` on ``questions`` graded against the sheet ``facts``."""
    from .evals import evaluate_facts

    questions, facts = list(questions), list(facts)

    def metric(model) -> float:
        return evaluate_facts(model, tok, questions, facts, max_new_tokens=max_new_tokens, system=system,
                              progress=False).accuracy

    metric.__name__ = "fact accuracy"
    return metric


def flops_per_token(model, tok, examples: Sequence, system: str | bool | None = False) -> dict[str, float]:
    """FLOPs per token of reading a prompt (a forward pass, output head on the last position only,
    as in generation) and of a training step (forward + backward through the adapter), counted by
    ``torch.utils.flop_counter`` on one real batch of ``examples``."""
    from torch.utils.flop_counter import FlopCounterMode

    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = collate(encode_examples(tok, examples, system=system), pad_id)
    batch = {k: v.to(_device_of(model)) for k, v in batch.items()}
    tokens = int(batch["attention_mask"].sum())
    forward = FlopCounterMode(display=False)
    with forward, torch.no_grad():  # as in serving: the output head runs on the last position only
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1)
    train = FlopCounterMode(display=False)
    was_training = model.training
    model.train()
    with train:
        answer_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {"forward": forward.get_total_flops() / tokens, "train_step": train.get_total_flops() / tokens}


def compliance_checker_cases() -> list[str]:
    """Answers that test a format-compliance checker (exercise 04.1): the good shape, and the ways
    a model gets it almost right."""
    good = '{"category": "billing", "urgency": "high"}'
    return [
        good,
        "  " + good + "\n",
        '{"category":"hardware","urgency":"urgent"}',
        '{"category": "feature_request", "urgency": "low"}',
        "Sure! " + good,
        good + " Let me know if you need more.",
        "```json\n" + good + "\n```",
        '{"urgency": "high", "category": "billing"}',
        '{"category": "billing"}',
        '{"category": "billing", "urgency": "high", "reason": "double charge"}',
        '{"category": "Billing", "urgency": "high"}',
        '{"category": "billing", "urgency": "critical"}',
        '{"category": "refund", "urgency": "high"}',
        '{"category": "billing", "urgency": "high", "urgency": "low"}',
        '[{"category": "billing", "urgency": "high"}]',
        '[["category", "billing"], ["urgency", "high"]]',
        '{"category": "billing", "urgency": "high"',
        "{'category': 'billing', 'urgency': 'high'}",
        '{"category": ["billing"], "urgency": "high"}',
        '{"category": "billing", "urgency": null}',
        "",
        "billing, high",
    ]


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


def add_lora(model, settings: LoraSettings | None = None, adapter_name: str = "default"):
    """Wrap ``model`` with a fresh LoRA adapter (or add one more to a model that has some).

    The base weights are frozen; only the adapter's A and B matrices train. A model that already
    carries adapters gets a new named one, made active, so one copy of the base model serves them all.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    s = settings or LoraSettings()
    if not adapter_name or "." in adapter_name:
        raise CourseError(f"Adapter name {adapter_name!r} cannot be used: pick a non-empty name without dots, "
                          "such as 'format_v2'.")
    config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                        target_modules=list(s.target_modules), task_type="CAUSAL_LM", bias="none")
    torch.manual_seed(s.seed)  # A is initialised at random: same seed, same adapter
    with warnings.catch_warnings():  # peft asks transformers a deprecated question; nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        if isinstance(model, PeftModel):
            if adapter_name in model.peft_config:
                raise CourseError(f"The model already has an adapter named {adapter_name!r}; pick another name.")
            model.add_adapter(adapter_name, config)
            model.set_adapter(adapter_name)
        else:
            model = get_peft_model(model, config, adapter_name=adapter_name)
    for name, p in model.named_parameters():  # only the new adapter learns
        p.requires_grad = f".{adapter_name}." in name and "lora_" in name
    return model


def copy_adapter_weights(model, source: str, target: str) -> None:
    """Start adapter ``target`` from the weights of adapter ``source`` (same rank and modules)."""
    if source not in getattr(model, "peft_config", {}):
        raise CourseError(f"The model has no adapter named {source!r} to start from; "
                          f"it has {sorted(getattr(model, 'peft_config', {}))}.")
    params = dict(model.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, p in params.items():
            if f".{source}." in name and "lora_" in name:
                other = params.get(name.replace(f".{source}.", f".{target}."))
                if other is None or other.shape != p.shape:
                    raise CourseError(f"Adapters {source!r} and {target!r} differ in shape ({name}); "
                                      "start from an adapter with the same rank and target modules.")
                other.copy_(p)
                copied += 1
    if not copied:
        raise CourseError(f"Adapter {source!r} has no LoRA weights to copy.")


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


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


# --------------------------------------------------------------------------- data mix
def mix_examples(task: Sequence, extra: Sequence, share: float = 0.25, seed: int = 0) -> list:
    """Task examples plus enough ``extra`` ones (e.g. general chat) that they make up ``share`` of
    the result, shuffled with a fixed seed. ``extra`` is reused if it is too short."""
    if not 0 <= share < 1:
        raise CourseError("share must be at least 0 and below 1 (it is the fraction of extra examples).")
    task, extra = list(task), list(extra)
    n_extra = round(len(task) * share / (1 - share))
    if n_extra and not extra:
        raise CourseError("share > 0 needs some extra examples to mix in.")
    picked = [extra[i % len(extra)] for i in range(n_extra)]
    mixed = task + picked
    random.Random(seed).shuffle(mixed)
    return mixed


# --------------------------------------------------------------------------- adapters on disk
def folder_bytes(path: str | Path) -> int:
    """Size of a file, or of every file in a folder (recursively), in bytes."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def model_bytes(model, exclude: str | None = None) -> int:
    """Bytes of the model's weights in memory (what a full checkpoint of it would hold).

    ``exclude``: skip tensors whose name contains it (``"lora_"`` counts the base model only).
    """
    seen, total = set(), 0
    named = list(model.named_parameters()) + list(model.named_buffers())
    for name, t in named:
        if exclude and exclude in name:
            continue
        if t.data_ptr() in seen:  # tied weights (embedding = output head) count once
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def save_adapter(model, path: str | Path) -> Path:
    """Save only the active adapter (its config and LoRA weights, as safetensors) into ``path``.

    Returns the folder that holds ``adapter_config.json``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    active = getattr(model, "active_adapter", None)
    kwargs = {"selected_adapters": [active]} if isinstance(active, str) else {}
    model.save_pretrained(str(path), safe_serialization=True, **kwargs)
    return _adapter_dir(path)


def _adapter_dir(path: Path) -> Path:
    """The folder holding adapter_config.json (peft puts non-default adapters in a subfolder)."""
    if (path / "adapter_config.json").is_file():
        return path
    found = sorted(path.rglob("adapter_config.json")) if path.is_dir() else []
    if not found:
        raise CourseError(f"No adapter_config.json under {path}; save an adapter there with save_adapter.")
    return found[0].parent


def load_adapter(model, path: str | Path, adapter_name: str = "default"):
    """Put a saved adapter on ``model`` and make it the active one, ready for generation.

    ``model`` is either the plain base model (it gets wrapped) or a model that already carries
    adapters (the saved one is added next to them, under ``adapter_name``).
    """
    from peft import PeftModel

    path = _adapter_dir(Path(path))
    if isinstance(model, PeftModel):
        model.load_adapter(str(path), adapter_name=adapter_name, is_trainable=False)
        model.set_adapter(adapter_name)
    else:
        model = PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name, is_trainable=False)
    return model.eval()


def merge_adapter(model, keep_original: bool = False):
    """Fold the active adapter into the base weights (W + B @ A * alpha / r) and drop the LoRA layers.

    The result is a plain transformers model: no peft needed to serve it, and no extra matmuls.
    ``keep_original=True`` merges a deep copy and leaves ``model`` as it was (costs one more copy;
    to compare merged and unmerged outputs without a copy, use peft's ``model.merge_adapter()`` and
    ``model.unmerge_adapter()``).
    """
    target = copy.deepcopy(model) if keep_original else model
    return target.merge_and_unload().eval()


# --------------------------------------------------------------------------- measurements for the lab
def compliance_by_temperature(model, tok, tickets: Sequence, temperatures: Sequence[float] = (0.0, 0.7, 1.0),
                              seeds: Sequence[int] = (0, 1), rung: str = "bare", max_new_tokens: int = 24,
                              system: str | bool | None = False, label: str | None = None,
                              greedy: Sequence[str] | None = None) -> list[dict]:
    """Format compliance and accuracy at each temperature: ``len(seeds)`` samples per ticket (greedy once).

    One row per sample run: ``{"setup", "temperature", "seed", "compliance", "shape", "accuracy"}``, where
    ``shape`` is the share of answers that are one JSON object with exactly the two keys (labels not
    checked) and ``compliance`` also requires both labels to be in the taxonomy.

    All samples of one temperature are drawn in one ``generate_batch`` call (each ticket repeated once
    per seed, seeded with ``seeds[0]``), which packs them into as few batches as its token budget allows:
    the rows sample independently, and a few long batches cost far less than a short batch per seed,
    while the budget keeps memory bounded. Run ``j`` is the ``j``-th sample of every ticket.

    ``greedy``: answers this model already gave these tickets greedily with this ``rung`` (for example
    ``report.outputs[:n]`` of an ``evaluate_tickets`` run); temperature 0 then scores them instead of
    generating the same answers again.
    """
    from .chat import generate_batch
    from .evals import build_prompts, cannot_be_ticket_json, check_ticket_format, score_outputs

    tickets = list(tickets)
    if greedy is not None and len(greedy) != len(tickets):
        raise CourseError(f"greedy has {len(greedy)} answers for {len(tickets)} tickets; pass the answers "
                          "to exactly these tickets (e.g. report.outputs[:len(tickets)]).")
    prompts = build_prompts(tickets, rung)
    rows = []
    for temperature in temperatures:
        runs = list(seeds) if temperature > 0 else list(seeds[:1])
        if temperature <= 0 and greedy is not None:
            outputs = list(greedy)
        else:
            outputs = generate_batch(model, tok, [p for p in prompts for _ in runs], max_new_tokens=max_new_tokens,
                                     temperature=temperature, seed=runs[0], system=system,
                                     progress=False,  # generate_batch's token budget bounds the memory
                                     stop_when=cannot_be_ticket_json)  # scores unchanged, time saved
        for j, seed in enumerate(runs):
            run = outputs[j::len(runs)]
            shape = sum(check_ticket_format(o).exact_schema for o in run) / len(run)
            score = score_outputs(run, tickets)
            rows.append({"setup": label or rung, "temperature": temperature, "seed": seed, "n": len(run),
                         "compliance": score["compliance"], "shape": shape, "accuracy": score["accuracy"]})
    return rows


def by_temperature(rows: Sequence[dict], key: str = "compliance") -> dict[float, dict]:
    """``{temperature: {"mean", "min", "max", "runs", "rate"}}`` of one setup's rows.

    ``rate`` pools every sampled answer at that temperature (runs x tickets) into one ``Rate``, with its
    n and 95 % Wilson interval (rows without an ``n`` count as one answer each).
    """
    from .stats import Rate

    out: dict[float, dict] = {}
    for t in dict.fromkeys(r["temperature"] for r in rows):
        picked = [r for r in rows if r["temperature"] == t]
        vals = [r[key] for r in picked]
        ns = [int(r.get("n", 1)) for r in picked]
        rate = Rate.of(round(sum(v * n for v, n in zip(vals, ns, strict=True))), sum(ns))
        out[t] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals), "runs": len(vals),
                  "rate": rate}
    return out


_SWEEP_TITLES = {"shape": "one JSON object, exactly the two keys", "compliance": "full compliance (labels too)",
                 "accuracy": "both labels right"}


def plot_temperature_sweep(sweeps: dict[str, Sequence[dict]], keys: Sequence[str] = ("shape", "compliance")):
    """Share of answers against temperature for each setup, one panel per metric; error bars are the
    95 % Wilson interval over every sampled answer (runs x tickets)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.8 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for k, (name, rows) in enumerate(sweeps.items()):
            summary = by_temperature(rows, key)
            ts = [t + 0.015 * (k - (len(sweeps) - 1) / 2) for t in summary]  # side by side, not on top
            rates = [v["rate"] for v in summary.values()]
            err = [[max(0.0, r.value - r.low) for r in rates], [max(0.0, r.high - r.value) for r in rates]]
            ax.errorbar(ts, [r.value for r in rates], yerr=err, marker="o", capsize=4, label=name)
        ax.set_title(_SWEEP_TITLES.get(key, key), fontsize=10)
        _style_share_axis(ax, "sampling temperature", "share of answers", "lower left", fontsize=8)
    fig.tight_layout()
    return fig


def sweep_table(sweeps: dict[str, Sequence[dict]], keys: Sequence[str] = ("shape", "compliance")):
    """A pandas table of each metric: one row per (metric, setup), one column per temperature, each cell
    the share over all sampled answers with its n and 95 % interval."""
    import pandas as pd

    rows = {}
    for key in keys:
        for name, runs in sweeps.items():
            rows[(key, name)] = {f"T={t:g}": (f"{v['rate'].value:.0%} (n={v['rate'].n}, "
                                              f"{v['rate'].low:.0%}-{v['rate'].high:.0%})")
                                 for t, v in by_temperature(runs, key).items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["metric", "setup"]
    return table


@dataclass
class LeakReport:
    """How often answers to general (non-ticket) prompts came out as ticket JSON."""

    rate: float
    outputs: list[str] = field(repr=False)
    leaked: list[int] = field(repr=False)  # indexes of the prompts that leaked

    def __str__(self) -> str:
        return f"{len(self.leaked)}/{len(self.outputs)} general prompts answered as ticket JSON ({self.rate:.0%})"


def ticket_format_leak(model, tok, prompts: Sequence, max_new_tokens: int = 32,
                       system: str | bool | None = False) -> LeakReport:
    """Answer general prompts (chat examples, message lists or strings) and count the ticket-format
    answers with ``ftcourse.evals.looks_like_ticket_json``: the regression probe of lesson 04."""
    from .chat import generate_batch
    from .evals import looks_like_ticket_json

    chats = [messages_of(p) if not isinstance(p, str) else p for p in prompts]
    chats = [[m for m in c if m.get("role") != "assistant"] if isinstance(c, list) else c for c in chats]
    outputs = generate_batch(model, tok, chats, max_new_tokens=max_new_tokens, system=system, progress=False)
    leaked = [i for i, o in enumerate(outputs) if looks_like_ticket_json(o)]
    return LeakReport(rate=len(leaked) / max(len(outputs), 1), outputs=outputs, leaked=leaked)


def plot_locking_in(result: TrainResult, test_compliance: float | None = None, label: str = "validation"):
    """Format compliance against training steps: the format locking in."""
    import matplotlib.pyplot as plt

    steps, values = result.curve()
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.plot(steps, values, "o-", color="tab:green", label=f"{label} compliance")
    if result.settings.target is not None:
        ax.axhline(result.settings.target, ls="--", color="grey", lw=1, label=f"target {result.settings.target:.0%}")
    if test_compliance is not None and steps:
        ax.plot([steps[-1]], [test_compliance], "s", color="tab:red", label="held-out test, after training")
    _style_share_axis(ax, "training step", "format compliance", "center right")
    fig.tight_layout()
    return fig


def plot_label_climb(result: TrainResult, baselines: dict | None = None, test: dict | None = None,
                     title: str = "The format locks in fast; the labels keep climbing"):
    """Validation format compliance and label accuracy against training steps, from a run whose checks
    used ``ticket_metric`` (which records both at every check).

    ``baselines``: ``{name: Rate or share}`` drawn as horizontal lines (the majority label, the best
    prompt). ``test``: ``{name: (step, Rate)}`` drawn as points with their 95 % intervals.
    """
    import matplotlib.pyplot as plt

    rows = [e for e in result.evals if e.get("val_accuracy") is not None]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = [e["step"] for e in rows]
    ax.plot(steps, [e["val_compliance"] for e in rows], "o-", color="tab:green", label="format compliance (val)")
    ax.plot(steps, [e["val_accuracy"] for e in rows], "o-", color="tab:blue", label="label accuracy (val)")
    for (name, value), style in zip((baselines or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(float(value), ls=style, color="grey", lw=1.2, label=name)
    for name, (step, rate) in (test or {}).items():
        ax.errorbar([step], [rate.value], yerr=[[max(0.0, rate.value - rate.low)], [max(0.0, rate.high - rate.value)]], fmt="s",
                    color="tab:red", capsize=4, label=name)
    ax.set_title(title, fontsize=10)
    _style_share_axis(ax, "training step", "share of validation tickets", None)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def facts_training_for(rows: Sequence[dict], facts: Sequence) -> list[dict]:
    """The fact-teaching examples re-written for another sheet: each answer becomes that sheet's note
    for the example's ``fact_id`` (what "retrain on the new facts" means for lesson 04)."""
    notes = {f.id: f.note for f in facts}
    out = []
    for row in rows:
        fact_id = row.get("fact_id")
        if fact_id not in notes:
            raise CourseError(f"Example {row.get('id')} is about {fact_id!r}, which the new sheet does not have.")
        messages = [dict(m) for m in row["messages"]]
        messages[-1]["content"] = notes[fact_id]
        out.append({**row, "messages": messages})
    return out


def stale_answers(outputs: Sequence[str], questions: Sequence, old_facts: Sequence, new_facts: Sequence) -> list[bool]:
    """For each answer about a fact that changed between the sheets: True if it states the old value
    and not the new one. Questions about unchanged (or no) facts are left out."""
    from .evals import fact_is_correct

    old = {f.id: f for f in old_facts}
    new = {f.id: f for f in new_facts}
    flags = []
    for out, q in zip(outputs, questions, strict=True):
        fid = getattr(q, "fact_id", None)
        if fid in old and fid in new and old[fid].answer != new[fid].answer:
            flags.append(fact_is_correct(out, old[fid]) and not fact_is_correct(out, new[fid]))
    return flags


def plot_fact_accuracy(table: dict[str, dict[str, float]], title: str = "Fact accuracy before and after the change"):
    """Grouped bars: ``{"facts in weights": {"sheet v1": 0.9, "sheet v2": 0.3}, "facts in retrieval": {...}}``.

    Values may be shares or ``Rate`` objects; a ``Rate`` also draws its 95 % interval as an error bar.
    """
    import matplotlib.pyplot as plt

    setups = list(table)
    phases = list(dict.fromkeys(p for v in table.values() for p in v))
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    width = 0.8 / max(len(phases), 1)
    for j, phase in enumerate(phases):
        xs = [i + (j - (len(phases) - 1) / 2) * width for i in range(len(setups))]
        cells = [table[s].get(phase, float("nan")) for s in setups]
        vals = [float(v) for v in cells]
        err = None
        if all(hasattr(v, "low") for v in cells):
            err = [[max(0.0, v.value - v.low) for v in cells], [max(0.0, v.high - v.value) for v in cells]]
        bars = ax.bar(xs, vals, width, label=phase, yerr=err, capsize=3, error_kw={"lw": 1})
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in vals], fontsize=8)
    ax.set_xticks(range(len(setups)), setups)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("answers correct for the sheet in force")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
