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

from . import errors
from .lab import cost as _cost, experiment as _experiment

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage block too: one line is the contract
        raise UsageError(f"{self.prog}: error: {message}")


def _add_experiment_flags(parser: argparse.ArgumentParser, exp) -> None:
    for p in exp.params:
        # a help text that already tells its default keeps it; argparse %-formats help, so % is doubled
        default = "" if "default" in p.help else f" (default: {_shown(p.default)})"
        kw = {"dest": p.name, "default": argparse.SUPPRESS, "help": (p.help + default).replace("%", "%%")}
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


def _shown(value) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) if value else "none"
    return repr(value)


def build_parser(experiments=None) -> argparse.ArgumentParser:
    """The parser; `experiments`: the names whose `run` flags are built (default all; the others get a
    placeholder, so that `poisonlab --help` need not import them)."""
    parser = _Parser(prog="poisonlab", description=__doc__.splitlines()[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="{render,run}", parser_class=_Parser)
    sub.required = True

    render = sub.add_parser("render", help="render the book (Quarto where installed, else Jupyter)",
                            description="Render the book to HTML (and PDF with Quarto).", allow_abbrev=False)
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
                                     "metrics are means over repeats with 95% confidence intervals.",
                         allow_abbrev=False)
    available = _experiment.available()
    run_sub = run.add_subparsers(dest="experiment", metavar="{" + ",".join(available) + "}",
                                 parser_class=_Parser)
    run_sub.required = True
    for name in available:
        if experiments is not None and name not in experiments:
            # not asked for: a placeholder (importing an experiment imports torch, seconds)
            run_sub.add_parser(name, help=f"the {name} experiment", add_help=False, allow_abbrev=False)
            continue
        exp = _experiment.get(name)
        p = run_sub.add_parser(name, help=exp.help, description=exp.help, allow_abbrev=False)
        p.add_argument("--repeats", type=int, default=5, help="independent repeats (seeds) (default: 5)")
        p.add_argument("--seed", type=int, default=0, help="base seed; repeat r uses seed + r (default: 0)")
        p.add_argument("--json", action="store_true", help="print exactly one JSON object")
        p.add_argument("--no-cache", action="store_true", help="ignore and do not write the result cache")
        p.add_argument("--executor", default=None, metavar="{local,dask}",
                       help="where the repeats are trained: here (local) or as tasks of a Dask cluster, the "
                            "scheduler at $POISONLAB_DASK_SCHEDULER or a local one "
                            "(default: $POISONLAB_EXECUTOR, else local)")
        p.add_argument("--workers", type=int, default=None,
                       help="worker processes of a local Dask cluster (default: $POISONLAB_DASK_WORKERS, "
                            "else one per core)")
        p.add_argument("--yes", action="store_true",
                       help="run even when the run is estimated to take longer than the time limit "
                            f"(${_cost.TIME_ENV} seconds, default {_cost.TIME_LIMIT:g})")
        if exp.save_data is not None:
            p.add_argument("--save-data", metavar="PATH", default=None,
                           help="write the first repeat's poisoned train set, clean test set, mask "
                                "and true parameters to PATH (.npz)")
        _add_experiment_flags(p, exp)
    return parser


SEED_MAX = 2**62  # seeds are offset by a few billion per stream; torch takes up to 2^64 - 1


def _check_save_path(path: str) -> None:
    """The --save-data target must be a writable file path, checked before the run (not after it)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"poisonlab: error: argument --save-data: {path} is a folder; give a file path (.npz)")
    if not os.path.isdir(folder):
        raise UsageError(f"poisonlab: error: argument --save-data: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"poisonlab: error: argument --save-data: {path} is not writable")


def _note(text: str) -> None:
    print(f"poisonlab: note: {text}", file=sys.stderr)


def _run(args) -> int:
    from . import validate
    from .lab import sweep

    exp = _experiment.get(args.experiment)
    overrides = {p.name: getattr(args, p.name) for p in exp.params if hasattr(args, p.name)}
    try:
        repeats = validate.positive_int("repeats", args.repeats)
    except ValueError as e:
        raise errors.ParameterError("repeats", str(e)) from None
    if not 0 <= args.seed <= SEED_MAX:
        raise errors.ParameterError("seed", f"seed must be a whole number in [0, 2^62], got {args.seed}")
    if getattr(args, "save_data", None):
        _check_save_path(args.save_data)
    from .lab import executor as _executor

    executor = _executor.resolve(args.executor)
    workers = _executor.workers(args.workers) if executor == "dask" else None
    params = exp.resolve(**overrides)
    _cost.check_cost(exp, params, repeats, yes=args.yes)
    notes = list(exp.notes(params)) if exp.notes is not None else []
    poisoned = exp.poisoned(params) if exp.poisoned is not None else None
    if poisoned == 0 and params.get("alpha", 0) > 0:
        notes.append(f"--alpha {params['alpha']:g} poisons round(alpha n_train) = 0 training points: "
                     f"the run is unpoisoned (as alpha = 0)")
    for line in notes:
        _note(line)
    result = sweep.run(exp, grid={k: [v] for k, v in params.items()}, repeats=repeats, seed=args.seed,
                       cache=not args.no_cache, progress=not args.json, executor=executor, workers=workers)
    record = result.record(ranges=exp.ranges)
    record["poisoned_count"] = poisoned
    record["notes"] = notes
    if getattr(args, "save_data", None):
        exp.save_data({**params, "seed": args.seed}, args.save_data)
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{exp.name}: {repeats} repeats, seed {args.seed}")
        for k, v in record["params"].items():
            print(f"  {k:>20} = {v}")
        if poisoned is not None:
            print(f"  {'poisoned_count':>20} = {poisoned}")
        for k, m in record["metrics"].items():
            lo, hi = m["ci95"]
            print(f"  {k:>20}: {m['mean']:.6g}  (95% CI {lo:.6g} .. {hi:.6g})")
    return 0


_signalled: list[int] = []


@contextlib.contextmanager
def _terminated_as_interrupt():
    """Ctrl-C and SIGTERM end a render alike: staging and kernel cleaned up, exit 130 (see main)."""
    def handler(signum, frame):
        _signalled.append(signum)
        raise KeyboardInterrupt
    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _experiments_needed(argv) -> list | None:
    """The experiments whose flags parsing `argv` needs: none unless `run`, the one named after it, or all."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "run" not in argv:
        return []
    rest = argv[argv.index("run") + 1:]
    named = [a for a in rest if a in _experiment.available()]
    return named[:1] if named else None


def _interrupted(error: BaseException) -> bool:
    """Whether `error` was raised while handling Ctrl-C or SIGTERM (its context chain holds one)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__ or error.__cause__
    return False


def main(argv=None) -> int:
    try:
        args = build_parser(_experiments_needed(argv)).parse_args(argv)
        if args.command == "render":
            from bookrender import render
            try:
                with _terminated_as_interrupt():
                    return render.main(engine=args.engine, profile=args.profile, chapters=args.chapters,
                                       output=args.output, to=args.to)
            except Exception as e:
                if not (_signalled or _interrupted(e)):
                    raise
                # nbclient turned the interrupt into its own cleanup error; the kernel is already shut down
                # and the staging folder removed: exit without its leftover exit-time callbacks
                print("poisonlab: interrupted", file=sys.stderr, flush=True)
                os._exit(130)
        return _run(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    except errors.ParameterError as e:
        flag = "--" + e.name.replace("_", "-")
        print(f"poisonlab: error: argument {flag}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"poisonlab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except errors.DivergenceError as e:
        if e.name is not None:
            print(f"poisonlab: error: argument --{e.name.replace('_', '-')}: {e.line()}", file=sys.stderr)
        else:
            print(f"poisonlab: error: {e.line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("poisonlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`poisonlab run ... | head`): not an error of ours;
        # point stdout at devnull so that Python's exit-time flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
