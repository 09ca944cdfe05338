"""Run a notebook top to bottom and print how long each code cell took.

    python bench/cell_times.py lessons/04_lora_lab.ipynb [--top 10]

The notebook is run in a fresh kernel from its own folder, as a learner would run it; nothing is written
back. Use it to see where a lesson's minutes go before cutting anything.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def cell_times(path: Path, timeout: int = 1200, save: Path | None = None) -> tuple[list[tuple[int, float, str]], float]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    times = []
    start = time.perf_counter()
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t0 = time.perf_counter()
                client.execute_cell(cell, index)
                first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
                times.append((index, time.perf_counter() - t0, first))
                print(f"[{index:2d}] {times[-1][1]:7.1f} s  {first}", flush=True)
    finally:  # a failing cell still leaves the executed notebook to read
        if save is not None:
            nbformat.write(nb, save)
    return times, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--top", type=int, default=8, help="list this many slowest cells at the end")
    parser.add_argument("--save", type=Path, help="also write the executed notebook (with outputs) here")
    args = parser.parse_args()
    times, total = cell_times(args.notebook, save=args.save)
    print(f"\ntotal {total:.0f} s (kernel start included); slowest cells:")
    for index, seconds, first in sorted(times, key=lambda t: -t[1])[: args.top]:
        print(f"  [{index:2d}] {seconds:6.1f} s ({seconds / total:.0%})  {first}")


if __name__ == "__main__":
    main()
