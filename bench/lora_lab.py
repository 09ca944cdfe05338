"""Benchmark for lesson 04: time to 95 % format compliance, this course's recipe against the LoRA SFT
recipe of the Hugging Face LLM course (chapter 11), on the same tickets, the same machine, in one run.

    python bench/lora_lab.py                  # both recipes, prints a table
    python bench/lora_lab.py --skip-trl       # only this course's recipe
    python bench/lora_lab.py --json out.json  # also write the numbers

What is compared
----------------
* **course**: ``ftcourse.lora.train_lora`` with its defaults: LoRA r=8 / alpha=16 on q_proj and v_proj,
  lr 5e-3, batch 4 (32 on CUDA), loss on the answer tokens only, each batch padded to its longest
  example, the output head run only where the loss looks.
* **hf-ch11**: TRL ``SFTTrainer`` with the settings of the LLM course, chapter 11, section 4 notebook
  (LoraConfig r=6, lora_alpha=8, lora_dropout=0.05, target_modules="all-linear"; SFTConfig batch 2,
  gradient accumulation 2, gradient checkpointing, adamw_torch_fused, lr 2e-4, max_grad_norm 0.3,
  warmup_ratio 0.03, constant schedule, packing to 1512 tokens, bf16). Changes, all forced by the
  comparison: ``max_steps`` replaces ``num_train_epochs=1`` (one epoch is only a few optimizer steps
  on this data, far from the target), so the 3 % warmup, which the notebook takes of one epoch (under
  one step here), becomes no warmup (a ratio of ``max_steps`` would be thousands of steps); bf16 is used
  only where the hardware has it (on a CPU without native bf16, autocast would emulate it and make the
  recipe look slower than it is); nothing is saved or pushed.

Both runs start from a freshly loaded base model, see the same 262 training tickets (chat format,
with the one-line triage system message), and are checked on the same validation tickets by greedy
generation with the bare prompt. Time to target counts forward, backward and optimizer time only:
the clock is paused while compliance is measured. A run that does not reach the target within
``--budget-s`` training seconds is reported as "not reached", and the speed-up as a lower bound.

Also printed: the training FLOP/s each run achieved (FLOPs counted with ``torch.utils.flop_counter``
on real batches, divided by training seconds) as a share of this machine's measured matmul peak,
and the peak resident memory of the process after each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftcourse.datasets import load_tickets  # noqa: E402
from ftcourse.device import choose_device  # noqa: E402
from ftcourse.lora import (  # noqa: E402
    LoraSettings,
    answer_loss,
    collate,
    compliance_metric,
    encode_examples,
    train_lora,
)
from ftcourse.models import load_model  # noqa: E402

HF_CH11_LORA = dict(r=6, lora_alpha=8, lora_dropout=0.05, bias="none", target_modules="all-linear",
                    task_type="CAUSAL_LM")
HF_CH11_ARGS = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2, gradient_checkpointing=True,
                    optim="adamw_torch_fused", learning_rate=2e-4, max_grad_norm=0.3,
                    warmup_steps=0,  # published: warmup_ratio=0.03 of one epoch, which is under one step here
                    lr_scheduler_type="constant", max_length=1512, packing=True,
                    dataset_kwargs={"add_special_tokens": False, "append_concat_token": False})


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def matmul_peak_flops(device: str, dtype: torch.dtype, seconds: float = 3.0, n: int = 1024) -> float:
    """Best sustained FLOP/s of a square matmul on this device: the ceiling training is measured against."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 10 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` (matmuls and attention), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def course_flops_per_token(model, tok, train) -> float:
    """FLOPs of one course training step (forward + backward) per token, on a real batch."""
    enc = encode_examples(tok, train[:8], system=False)
    batch = {k: v.to(next(model.parameters()).device) for k, v in collate(enc, tok.pad_token_id).items()}

    def step():
        answer_loss(model, batch).backward()

    flops = count_flops(step)
    model.zero_grad(set_to_none=True)
    return flops / int(batch["attention_mask"].sum())


def run_course(model, tok, train, metric, target, budget_s, eval_every):
    settings = LoraSettings(target=target, max_steps=100_000, eval_every=eval_every, max_seconds=budget_s)
    t0 = time.perf_counter()
    result = train_lora(model, tok, train, metric=metric, settings=settings, progress=False, plot=False)
    wall = time.perf_counter() - t0
    for step, score in zip(*result.curve(), strict=True):
        print(f"  course step {step}: compliance {score:.0%}")
    per_token = course_flops_per_token(result.model, tok, train)
    flops = per_token * result.trained_tokens
    return {"recipe": "course", "reached": result.reached_step is not None,
            "seconds_to_target": result.seconds_to_target, "train_seconds": result.train_seconds,
            "steps": result.n_steps, "tokens": result.trained_tokens,
            "final_compliance": result.final_metric, "curve": list(zip(*result.curve(), strict=True)),
            "flops": flops, "flops_per_s": flops / result.train_seconds, "wall_seconds": wall,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.as_dict().items()}}


def run_hf_ch11(tok_path, train, metric_factory, target, budget_s, device, use_bf16):
    """The chapter 11 recipe through TRL's SFTTrainer, stopped by a callback at the target."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    model = AutoModelForCausalLM.from_pretrained(tok_path, dtype=torch.float32).to(device)
    train_tok = AutoTokenizer.from_pretrained(tok_path)
    eval_tok = AutoTokenizer.from_pretrained(tok_path)
    eval_tok.padding_side = "left"
    metric = metric_factory(eval_tok)
    data = Dataset.from_list([{"messages": t.messages} for t in train])

    clock = {"train": 0.0, "eval": 0.0, "last": None, "reached_step": None, "reached_s": None,
             "curve": [], "tokens": 0}

    class CompliancePause(TrainerCallback):
        """Check compliance after every optimizer step, with the training clock paused."""

        def on_train_begin(self, args, state, control, **kw):
            clock["last"] = time.perf_counter()

        def on_step_end(self, args, state, control, model=None, **kw):
            # everything since the previous check is training: data, forward, backward, optimizer
            if device == "cuda":
                torch.cuda.synchronize()
            clock["train"] += time.perf_counter() - clock["last"]
            t0 = time.perf_counter()
            was_training = model.training
            model.eval()
            score = metric(model)
            if was_training:
                model.train()
            clock["eval"] += time.perf_counter() - t0
            clock["curve"].append((state.global_step, score))
            print(f"  hf-ch11 step {state.global_step}: compliance {score:.0%} after "
                  f"{clock['train']:.1f} s of training", flush=True)
            if score >= target and clock["reached_step"] is None:
                clock["reached_step"], clock["reached_s"] = state.global_step, clock["train"]
                control.should_training_stop = True
            if clock["train"] > budget_s:
                control.should_training_stop = True
            clock["last"] = time.perf_counter()
            return control

    out = Path(os.environ.get("TMPDIR", "/tmp")) / "ftcourse-bench-hf-ch11"
    args = SFTConfig(output_dir=str(out), max_steps=100_000, logging_steps=10, save_strategy="no",
                     report_to="none", bf16=use_bf16, use_cpu=device == "cpu", seed=0,
                     disable_tqdm=True, **HF_CH11_ARGS)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, peft_config=LoraConfig(**HF_CH11_LORA),
                         processing_class=train_tok, callbacks=[CompliancePause()])
    # tokens the recipe pushes through the model per optimizer step (packed rows, no padding)
    packed = trainer.train_dataset
    tokens_per_row = sum(len(r) for r in packed["input_ids"]) / max(len(packed), 1)
    rows_per_step = HF_CH11_ARGS["per_device_train_batch_size"] * HF_CH11_ARGS["gradient_accumulation_steps"]

    sample = trainer.get_train_dataloader()
    batch = next(iter(sample))
    batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    trainer.model.train()

    def one_micro_step():
        trainer.model(**batch).loss.backward()

    micro_flops = count_flops(one_micro_step)
    micro_tokens = int(batch["input_ids"].numel())
    trainer.model.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    steps = len(clock["curve"])
    tokens = steps * rows_per_step * tokens_per_row
    flops = micro_flops / micro_tokens * tokens
    return {"recipe": "hf-ch11", "reached": clock["reached_step"] is not None,
            "seconds_to_target": clock["reached_s"], "train_seconds": clock["train"], "steps": steps,
            "tokens": int(tokens), "final_compliance": clock["curve"][-1][1] if clock["curve"] else None,
            "curve": clock["curve"], "flops": flops, "flops_per_s": flops / max(clock["train"], 1e-9),
            "wall_seconds": wall, "bf16": use_bf16,
            "settings": {"lora": HF_CH11_LORA, "args": {k: v for k, v in HF_CH11_ARGS.items()}}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=float, default=0.95, help="validation compliance to reach (0.95)")
    p.add_argument("--n-val", type=int, default=20, help="validation tickets checked (20)")
    p.add_argument("--budget-s", type=float, default=900, help="training seconds before giving up (900)")
    p.add_argument("--eval-every", type=int, default=2, help="course steps between checks (2)")
    p.add_argument("--skip-trl", action="store_true", help="only run this course's recipe")
    p.add_argument("--skip-course", action="store_true", help="only run the chapter 11 recipe")
    p.add_argument("--json", type=Path, help="write the results to this file")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    choice = choose_device(os.environ.get("COURSE_DEVICE") or None)
    device = choice.device
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; device {choice}")
    peak = matmul_peak_flops(device, choice.dtype)
    print(f"matmul peak ({str(choice.dtype).removeprefix('torch.')}): {peak / 1e9:.1f} GFLOP/s")

    train = load_tickets("train")
    val = load_tickets("val")[:args.n_val]
    model, tok = load_model(verbose=False)
    results = {"device": str(choice), "threads": torch.get_num_threads(), "matmul_peak_flops": peak,
               "target": args.target, "n_val": len(val), "budget_s": args.budget_s, "runs": []}

    if not args.skip_course:
        print("\n[course recipe]")
        course = run_course(model, tok, train, compliance_metric(tok, val), args.target, args.budget_s,
                            args.eval_every)
        course["peak_rss_mb"] = peak_rss_mb()
        results["runs"].append(course)
        print(f"  reached {args.target:.0%}: {course['reached']} after {course['seconds_to_target']} s, "
              f"{course['steps']} steps; peak RSS so far {course['peak_rss_mb']:.0f} MB")
    del model

    if not args.skip_trl:
        print("\n[Hugging Face LLM course, chapter 11 recipe: TRL SFTTrainer + LoRA]")
        from ftcourse.models import default_model_dir

        use_bf16 = device == "cuda" and choice.dtype == torch.bfloat16
        hf = run_hf_ch11(str(default_model_dir()), train, lambda t: compliance_metric(t, val), args.target,
                         args.budget_s, device, use_bf16)
        hf["peak_rss_mb"] = peak_rss_mb()
        results["runs"].append(hf)

    print("\n" + report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


def report(results: dict) -> str:
    peak = results["matmul_peak_flops"]
    lines = [f"device {results['device']}, {results['threads']} threads; target {results['target']:.0%} "
             f"compliance on {results['n_val']} validation tickets",
             f"{'recipe':<10} {'time to target':>15} {'steps':>6} {'tokens':>9} {'GFLOP/s':>8} "
             f"{'% of peak':>9} {'peak RSS':>9}"]
    for r in results["runs"]:
        tt = f"{r['seconds_to_target']:.1f} s" if r["reached"] else f"> {r['train_seconds']:.0f} s"
        lines.append(f"{r['recipe']:<10} {tt:>15} {r['steps']:>6} {r['tokens']:>9,} "
                     f"{r['flops_per_s'] / 1e9:>8.1f} {100 * r['flops_per_s'] / peak:>8.0f}% "
                     f"{r['peak_rss_mb']:>7.0f} MB")
    runs = {r["recipe"]: r for r in results["runs"]}
    if "course" in runs and "hf-ch11" in runs and runs["course"]["reached"]:
        ours, theirs = runs["course"], runs["hf-ch11"]
        if theirs["reached"]:
            lines.append(f"speed-up to target: {theirs['seconds_to_target'] / ours['seconds_to_target']:.1f}x")
        else:
            lines.append(f"speed-up to target: at least {theirs['train_seconds'] / ours['seconds_to_target']:.1f}x "
                         f"(the chapter 11 recipe had not reached it; it stood at "
                         f"{theirs['final_compliance']:.0%})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
