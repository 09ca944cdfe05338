"""Chat examples to tensors: what the loss is allowed to look at, and how a batch is padded.

* ``encode_example`` / ``encode_examples``: a chat example becomes token ids plus *labels* that are
  ``IGNORE`` (-100, skipped by the loss) everywhere except the assistant's answer and its end-of-turn
  token. The model is never graded on re-typing the ticket, only on writing the answer.
* ``token_stats`` and ``tokens_per_epoch``: how many tokens a set holds, and how many of them the
  loss sees; what padding to a fixed length would cost.
* ``collate``: a batch padded to its *longest* example, not to a fixed length.
* ``batch_stream``: the shuffled order in which ``train_lora`` draws examples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from ..chat import render
from ..errors import CourseError

IGNORE = -100  # label value the cross-entropy loss skips


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
