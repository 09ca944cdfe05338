"""Command line: ``python -m ftcourse <command>``.

Commands:
  fetch-model   download, verify and convert the course model into the cache (idempotent)
  check         print the environment check (one OK/FAIL row per requirement)
  progress      print the quiz progress summary, per lesson
  grade DIR     grade a folder of submitted exercise notebooks (workshop grading)
"""

from __future__ import annotations

import argparse
import sys

from .errors import CourseError


def _fetch_model(args) -> int:
    from .models import fetch_model

    fetch_model(force=args.force)
    return 0


def _check(args) -> int:
    from .classroom.envcheck import environment_check

    rows = environment_check(load=args.load)
    return 0 if all(r.ok for r in rows) else 1


def _progress(args) -> int:
    from .classroom.progress import cli_progress

    return cli_progress(args)


def _grade(args) -> int:
    from .classroom.grading import cli_grade

    return cli_grade(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ftcourse", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch-model", help="provision the course model into the cache")
    f.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    f.set_defaults(func=_fetch_model)
    c = sub.add_parser("check", help="environment check")
    c.add_argument("--load", action="store_true", help="also load the model and time it")
    c.set_defaults(func=_check)
    pr = sub.add_parser("progress", help="per-lesson quiz progress summary")
    pr.add_argument("--file", default=None, help="progress file (default: $FTCOURSE_PROGRESS or ~/.ftcourse/progress.json)")
    pr.set_defaults(func=_progress)
    g = sub.add_parser("grade", help="grade a folder of submitted exercise notebooks",
                       epilog="Exit status: 0 when every notebook was graded; 2 when a run changed the solutions, "
                              "the submissions or the course package (those notebooks score 0 and the gradebook's "
                              "problems column says what changed).")
    g.add_argument("submissions", help="folder of submissions (never modified)")
    g.add_argument("--out", default="grading-out", help="where gradebook.csv and feedback go")
    g.add_argument("--source", default="solutions", help="folder of solution notebooks (grader checksums)")
    g.add_argument("--cell-timeout", type=int, default=120)
    g.add_argument("--notebook-timeout", type=int, default=900)
    g.set_defaults(func=_grade)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
