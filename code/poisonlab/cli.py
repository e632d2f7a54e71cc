"""The `poisonlab` command: `render` the book, `run` an experiment.

Bad input ends with one line naming the parameter and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys

from . import experiment as _experiment

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage block too: one line is the contract
        raise UsageError(f"{self.prog}: error: {message}")


def _add_experiment_flags(parser: argparse.ArgumentParser, exp) -> None:
    for p in exp.params:
        kw = {"dest": p.name, "default": argparse.SUPPRESS, "help": f"{p.help} (default: {p.default!r})"}
        if p.type is bool:
            parser.add_argument(p.flag, action="store_true", **kw)
            continue
        kw["type"] = p.type
        if p.choices is not None:
            kw["choices"] = p.choices
        if p.nargs is not None:
            kw["nargs"] = p.nargs
            kw["metavar"] = p.name.upper()
        parser.add_argument(p.flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poisonlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="{render,run}", parser_class=_Parser)
    sub.required = True

    render = sub.add_parser("render", help="render the book (Quarto where installed, else Jupyter)",
                            description="Render the book to HTML (and PDF with Quarto).")
    render.add_argument("--engine", choices=("auto", "quarto", "jupyter"), default="auto",
                        help="auto: Quarto when on PATH, else the Jupyter engine (default: auto)")
    render.add_argument("--profile", choices=("quick", "full"), default="full",
                        help="sweep sizes: quick for tests, full for the book (default: full)")
    render.add_argument("--chapters", nargs="+", metavar="FILE",
                        help="render only these chapter files (jupyter engine)")
    render.add_argument("--output", metavar="DIR", default=None,
                        help="output folder (default: _book or _book-quick with Quarto, _preview or "
                             "_preview-quick with the jupyter engine); only a folder a render made is replaced")
    render.add_argument("--to", choices=("html", "pdf"), default=None,
                        help="one format only (Quarto; default: every format of _quarto.yml)")

    run = sub.add_parser("run", help="run one experiment over repeats and print its metrics",
                         description="Run an experiment: every parameter has a flag; "
                                     "metrics are means over repeats with 95%% confidence intervals.")
    run_sub = run.add_subparsers(dest="experiment", metavar="{" + ",".join(_experiment.available()) + "}",
                                 parser_class=_Parser)
    run_sub.required = True
    for name in _experiment.available():
        exp = _experiment.get(name)
        p = run_sub.add_parser(name, help=exp.help, description=exp.help)
        p.add_argument("--repeats", type=int, default=5, help="independent repeats (seeds) (default: 5)")
        p.add_argument("--seed", type=int, default=0, help="base seed; repeat r uses seed + r (default: 0)")
        p.add_argument("--json", action="store_true", help="print exactly one JSON object")
        p.add_argument("--no-cache", action="store_true", help="ignore and do not write the result cache")
        if exp.save_data is not None:
            p.add_argument("--save-data", metavar="PATH", default=None,
                           help="write the first repeat's poisoned train set, clean test set, mask "
                                "and true parameters to PATH (.npz)")
        _add_experiment_flags(p, exp)
    return parser


def _run(args) -> int:
    from . import sweep, validate

    exp = _experiment.get(args.experiment)
    overrides = {p.name: getattr(args, p.name) for p in exp.params if hasattr(args, p.name)}
    repeats = validate.positive_int("repeats", args.repeats)
    params = exp.resolve(**overrides)
    result = sweep.run(exp, grid={k: [v] for k, v in params.items()}, repeats=repeats, seed=args.seed,
                       cache=not args.no_cache, progress=not args.json)
    record = result.record()
    if getattr(args, "save_data", None):
        exp.save_data({**params, "seed": args.seed}, args.save_data)
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{exp.name}: {repeats} repeats, seed {args.seed}")
        for k, v in record["params"].items():
            print(f"  {k:>20} = {v}")
        for k, m in record["metrics"].items():
            lo, hi = m["ci95"]
            print(f"  {k:>20}: {m['mean']:.6g}  (95% CI {lo:.6g} .. {hi:.6g})")
    return 0


@contextlib.contextmanager
def _terminated_as_interrupt():
    """SIGTERM ends a render as Ctrl-C does: staging and kernel cleaned up, exit 130."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "render":
            from . import render
            with _terminated_as_interrupt():
                return render.main(engine=args.engine, profile=args.profile, chapters=args.chapters,
                                   output=args.output, to=args.to)
        return _run(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    except _experiment.ParameterError as e:
        flag = "--" + e.name.replace("_", "-")
        print(f"poisonlab: error: argument {flag}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"poisonlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except _experiment.DivergenceError as e:
        print(f"poisonlab: error: training diverged: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("poisonlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`poisonlab run ... | head`): not an error of ours;
        # point stdout at devnull so that Python's exit-time flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
