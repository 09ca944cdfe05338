"""Talk to the model: one prompt, a batch of prompts, and a token counter.

A *prompt* is either a string (one user turn), or a list of chat messages
``[{"role": "system" | "user" | "assistant", "content": ...}, ...]``. Pass ``raw=True`` to send a
string verbatim, with no chat template at all.

``system`` controls the system turn when the messages have none:
``None`` keeps whatever the chat template adds by itself (SmolLM2 adds a ~20-token default),
a string puts that text in, and ``False`` leaves the system turn out entirely.

Decoding is greedy unless ``temperature > 0``, so by default the same prompt always gives the same
answer. With sampling, ``seed`` makes a run repeatable.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence

import torch

Messages = list[dict]
Prompt = str | Messages

_CHATML_SYSTEM = re.compile(r"^<\|im_start\|>system\n.*?<\|im_end\|>\n", re.DOTALL)


def to_messages(prompt: Prompt, system: str | bool | None = None) -> Messages:
    """Turn a prompt into a list of messages, with the system turn ``system`` asks for."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    has_system = bool(messages) and messages[0].get("role") == "system"
    if isinstance(system, str) and not has_system:
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def render(tokenizer, prompt: Prompt, system: str | bool | None = None, raw: bool = False,
           add_generation_prompt: bool = True) -> str:
    """The exact text the model sees for ``prompt``."""
    if raw:
        if not isinstance(prompt, str):
            raise TypeError("raw=True needs a string prompt")
        return prompt
    messages = to_messages(prompt, system)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    if system is False and messages and messages[0].get("role") != "system":
        text = _CHATML_SYSTEM.sub("", text, count=1)  # drop the template's default system turn
    return text


def count_tokens(tokenizer, prompt: Prompt, system: str | bool | None = None, raw: bool = False) -> int:
    """How many tokens the model reads for ``prompt`` (chat template included): what you pay for."""
    return len(tokenizer(render(tokenizer, prompt, system=system, raw=raw), add_special_tokens=False).input_ids)


MIN_SHARED_PREFIX = 16  # tokens; below this, computing the prefix once is not worth it


def _shared_prefix(token_lists: list[list[int]]) -> int:
    """Length of the token prefix every prompt shares (each prompt keeps at least one token of its own)."""
    n = min(len(t) for t in token_lists) - 1
    first = token_lists[0]
    for k in range(max(n, 0)):
        if any(t[k] != first[k] for t in token_lists):
            return k
    return max(n, 0)


def _prefix_cache(model, prefix_ids: list[int]):
    """The KV cache of a prompt prefix, computed once (batch of one)."""
    with torch.inference_mode():
        out = model(torch.tensor([prefix_ids], device=model.device), use_cache=True)
    return out.past_key_values


class _StopWhen:
    """A ``generate`` stopping criterion: a row ends as soon as ``predicate(its new text)`` is true.

    Returns one flag per row (transformers then pads finished rows and stops when all are done)."""

    def __init__(self, tokenizer, prompt_width: int, predicate: Callable[[str], bool]):
        self.tokenizer, self.width, self.predicate = tokenizer, prompt_width, predicate

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.width:], skip_special_tokens=True)
        return torch.tensor([self.predicate(t) for t in texts], dtype=torch.bool, device=input_ids.device)


def _generate_rows(model, tokenizer, rows: list[list[int]], max_new_tokens: int, temperature: float,
                   seed: int, top_p: float, prefix=None, stop_when=None) -> list[str]:
    """Generate for one batch of token-id rows. Each row is left-padded to the longest; with
    ``prefix=(ids, cache)`` every row starts with the tokens ``ids``, which are cut off the rows and
    whose KV cache is reused: a row is then ``prefix + padding + own tokens`` (padding in the middle,
    masked out; position ids follow the mask), so the shared prefix is not recomputed per row."""
    prefix_ids, cache = prefix if prefix is not None else ([], None)
    p = len(prefix_ids)
    rows = [r[p:] for r in rows]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = [prefix_ids + [pad] * (width - len(r)) + r for r in rows]
    mask = [[1] * p + [0] * (width - len(r)) + [1] * len(r) for r in rows]
    inputs = dict(input_ids=torch.tensor(input_ids, device=model.device),
                  attention_mask=torch.tensor(mask, device=model.device))
    if cache is not None:
        cache = copy.deepcopy(cache)  # generation extends the cache in place; keep the original for the next batch
        cache.batch_repeat_interleave(len(rows))
        inputs["past_key_values"] = cache
    sample = bool(temperature and temperature > 0)
    if sample:
        torch.manual_seed(seed)
    extra = {}
    if stop_when is not None:
        from transformers import StoppingCriteriaList

        extra["stopping_criteria"] = StoppingCriteriaList([_StopWhen(tokenizer, inputs["input_ids"].shape[1],
                                                                     stop_when)])
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            **extra,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            do_sample=sample,
            temperature=float(temperature) if sample else None,
            top_p=top_p if sample else None,
            top_k=None,  # no top-k cut: temperature (and top_p) alone shape the sampling
        )
    new = out[:, inputs["input_ids"].shape[1]:]
    return [s.strip() for s in tokenizer.batch_decode(new, skip_special_tokens=True)]


def generate(model, tokenizer, prompt: Prompt, max_new_tokens: int = 128, temperature: float = 0.0,
             seed: int = 0, system: str | bool | None = None, raw: bool = False, top_p: float = 1.0) -> str:
    """Answer one prompt. Greedy (deterministic) unless ``temperature > 0``."""
    return generate_batch(model, tokenizer, [prompt], max_new_tokens=max_new_tokens, temperature=temperature,
                          seed=seed, system=system, raw=raw, top_p=top_p, progress=False)[0]


TOKENS_PER_BATCH = 16_384  # rows x (prompt + answer) tokens in one batch on a CPU or Apple GPU
MAX_ROWS = 64


def plan_batches(lengths: Sequence[int], max_new_tokens: int, device_type: str = "cpu",
                 batch_size: int | None = None) -> list[list[int]]:
    """Split prompts (their token counts) into batches: lists of indexes, shortest prompts first.

    Sorting by length keeps the padding small. ``batch_size`` fixes the rows per batch; by default a
    CUDA GPU takes ``MAX_ROWS`` rows and a CPU (or Apple GPU) as many as fit in ``TOKENS_PER_BATCH``
    tokens of prompt plus answer. One wide batch is faster on a CPU than several narrow ones: each
    generated token costs one pass over the weights however many rows share it. The budget bounds
    the attention cache (about 46 kB a token for SmolLM2-135M), and the batches come out near-equal
    in size, so no batch is a short leftover.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if not order:
        return []
    if batch_size is None:
        if device_type == "cuda":
            batch_size = MAX_ROWS
        else:
            batch_size = max(1, min(MAX_ROWS, TOKENS_PER_BATCH // (max(lengths) + max_new_tokens)))
        n_batches = -(-len(order) // batch_size)
        batch_size = -(-len(order) // n_batches)  # near-equal batches
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def generate_batch(model, tokenizer, prompts: Sequence[Prompt], max_new_tokens: int = 64,
                   temperature: float = 0.0, seed: int = 0, system: str | bool | None = None,
                   raw: bool = False, top_p: float = 1.0, batch_size: int | None = None,
                   progress: bool | str = True, share_prefix: bool = True,
                   stop_when: Callable[[str], bool] | None = None) -> list[str]:
    """Answer many prompts at once; results come back in the order of ``prompts``.

    Prompts are sorted by length and padded on the left, so each batch wastes little compute
    and every row continues from its own last token. ``progress`` shows a bar (a string names it).
    When all prompts start with the same long text (a system prompt, few-shot examples), that
    prefix is run through the model once and its cache reused by every row (``share_prefix``).
    ``stop_when(text) -> bool``: end a row as soon as its answer so far makes this true (for example,
    once it can no longer pass a check); its answer is then cut there.
    """
    if tokenizer.padding_side != "left":
        tokenizer.padding_side = "left"
    texts = [render(tokenizer, p, system=system, raw=raw) for p in prompts]
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    answers: list[str | None] = [None] * len(texts)
    chunks = plan_batches([len(i) for i in ids], max_new_tokens, getattr(model.device, "type", "cpu"), batch_size)
    bar = None
    if progress and len(chunks) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), desc=progress if isinstance(progress, str) else "generating", unit="case")
    prefix = None
    if share_prefix and len(ids) > 1:
        p = _shared_prefix(ids)
        if p >= MIN_SHARED_PREFIX:
            prefix = (ids[0][:p], _prefix_cache(model, ids[0][:p]))
    for n, chunk in enumerate(chunks):
        rows = _generate_rows(model, tokenizer, [ids[i] for i in chunk], max_new_tokens, temperature,
                              seed + n, top_p, prefix=prefix, stop_when=stop_when)
        for i, answer in zip(chunk, rows, strict=True):
            answers[i] = answer
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return answers  # type: ignore[return-value]
