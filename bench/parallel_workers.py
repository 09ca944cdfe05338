"""Why `make test` runs two pytest workers with one torch thread each: the same model job, timed three ways
in one run on this machine.

    python bench/parallel_workers.py            # 16 LoRA steps (batch 4) + greedy answers to 24 tickets
    python bench/parallel_workers.py --steps 8  # shorter

The job runs in fresh processes:
* **one job, default threads** (torch takes every core);
* **two jobs at once, one thread each** (what `make test` does with WORKERS=2);
* **two jobs at once, default threads each** (what happens when two notebooks run side by side).

For each, the wall time until both jobs are done is compared with running the two jobs one after the
other with default threads. Run it on an otherwise idle machine: anything else that computes makes
every figure worse.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

JOB = """
import json, sys, time
t0 = time.perf_counter()
import torch
from ftcourse import lora
from ftcourse.chat import generate_batch
from ftcourse.datasets import load_tickets
from ftcourse.models import load_model
model, tok = load_model(verbose=False)
t1 = time.perf_counter()
run = lora.train_lora(model, tok, load_tickets("train"), max_steps={steps}, eval_every={steps}, target=None,
                      batch_size=4, plot=False, progress=False)
t2 = time.perf_counter()
generate_batch(run.model, tok, [t.text for t in load_tickets("test")[:24]], max_new_tokens=32, progress=False)
t3 = time.perf_counter()
print(json.dumps({{"threads": torch.get_num_threads(), "load": t1 - t0, "train": t2 - t1, "generate": t3 - t2}}))
"""


def run_jobs(n: int, threads: int | None, steps: int) -> tuple[float, list[dict]]:
    """Start ``n`` jobs at once; return the wall time until all are done and each job's own timings."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    if threads is None:
        env.pop("OMP_NUM_THREADS", None)
    else:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", JOB.format(steps=steps)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate() for p in procs]  # (stdout, stderr): progress bars go to stderr, kept for errors
    wall = time.perf_counter() - start
    for proc, (_, err) in zip(procs, outs, strict=True):
        if proc.returncode:
            raise SystemExit(f"a job failed (run `python -m ftcourse check` first):\n{err[-3000:]}")
    return wall, [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=16, help="LoRA steps per job (default 16)")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} cores; each job: load the model, {args.steps} LoRA steps, answer 24 tickets\n")
    one, (job,) = run_jobs(1, None, args.steps)
    sequential = 2 * one
    rows = [("one job, default threads", one, [job])]
    for label, threads in [("two jobs at once, 1 thread each", 1), ("two jobs at once, default threads", None)]:
        wall, jobs = run_jobs(2, threads, args.steps)
        rows.append((label, wall, jobs))
    print(f"{'setup':<36} {'threads':>7} {'wall s':>7} {'train s':>8} {'gen s':>6}  two jobs vs one after the other")
    for label, wall, jobs in rows:
        train = max(j["train"] for j in jobs)
        gen = max(j["generate"] for j in jobs)
        ratio = "" if len(jobs) == 1 else f"{sequential / wall:.2f}x ({wall:.0f} s against {sequential:.0f} s)"
        print(f"{label:<36} {jobs[0]['threads']:>7} {wall:>7.1f} {train:>8.1f} {gen:>6.1f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
