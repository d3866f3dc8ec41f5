"""`verify-grads`: the command line, `main(argv=None) -> int`.

    verify-grads [OPTIONS]            the main job: the reference backprop on random networks
    verify-grads replay REPORT.json   run a report's minimal failing case (or its run) again
    verify-grads check MODULE:LOSS --grad MODULE:GRAD --params MODULE:PARAMS
                                      check your own gradient function
    verify-grads selftest             every planted bug of verifier.mutants through the harness
    verify-grads campaign             the false-alarm campaign on drawn values, float64 and float32

Subcommands live in one registry, SUBCOMMANDS: a name, a help line, a function that adds the
subcommand's options to its parser and one that runs it; adding one is a `@subcommand(...)`.
Exit codes: 0 every gradient agrees, 1 a discrepancy, 2 a usage or input error (a message on
stderr, never a traceback). Nothing heavy is imported until a command runs: `--help` imports
neither JAX nor matplotlib. Output is a rich table on a terminal and plain text (no colour, no
squeezed columns) when piped or when NO_COLOR is set; `--format json|markdown` prints the
report itself instead.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TextIO

from verifier.arguments import positive_int
from verifier.arguments import seed as seed_arg
from verifier.arguments import tolerance as tolerance_arg
from verifier.errors import InvalidArgument

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from verifier.campaign import CampaignResult, Replay
    from verifier.report import Report

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a Unix tool stopped by SIGPIPE reports
FORMATS = ("text", "json", "markdown")
DTYPES = ("float64", "float32")
PIPE_WIDTH = 160  # text lines when piped; tables take the width they need
EPILOG = "exit codes: 0 all gradients agree, 1 a discrepancy was found, 2 usage or input error"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# --- argument types ------------------------------------------------------------------------


class _MainOption(argparse.Action):
    """Stores its value and notes that an option of the main job was given, so that one given in
    front of a subcommand is refused instead of silently ignored."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.main_options_given = [*getattr(namespace, "main_options_given", []), option]


def _add_format(parser: argparse.ArgumentParser, action: Any = "store") -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        action=action,
        help="text: tables for a person (default); json or markdown: the report itself on stdout",
    )


def _add_oracle_options(parser: argparse.ArgumentParser, action: Any = "store") -> None:
    from verifier.finite_diff import Method, Mode  # numpy only: no JAX

    parser.add_argument(
        "--method", choices=[m.value for m in Method], default="auto", action=action, help="finite-difference method"
    )
    parser.add_argument(
        "--mode", choices=[m.value for m in Mode], default="auto", action=action, help="finite-difference mode"
    )
    parser.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        action=action,
        help="seed of the random search (main job) and of the random directions (default 0)",
    )


# --- the registry of subcommands -----------------------------------------------------------
@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register `verify-grads NAME`: `configure` adds its options, the decorated function runs it."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verify-grads",
        description="Check the reference backpropagation against JAX autodiff and finite differences "
        "on random networks, layer by layer (the main job, when no command is given).",
        epilog=EPILOG,
    )
    main = _MainOption
    parser.add_argument(
        "--examples", type=positive_int, default=100, action=main, help="random networks to check (default 100)"
    )
    _add_oracle_options(parser, main)
    parser.add_argument("--dtype", choices=DTYPES, default="float64", action=main, help="dtype of the reference")
    _add_format(parser, main)
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports"),
        action=main,
        help="where latest.json/.md/.html go (default reports/)",
    )
    parser.add_argument(
        "--plant",
        metavar="BUG",
        default="reference",
        action=main,
        help="run the job with a planted bug of verifier.mutants in place of the reference backward, "
        "to see a discrepancy reported and replayed (default: reference, no bug)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands (none: the main job)")
    for cmd in SUBCOMMANDS.values():
        sub = commands.add_parser(cmd.name, help=cmd.help, description=cmd.help, epilog=EPILOG)
        cmd.configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = getattr(args, "main_options_given", [])
    if args.command is not None and given:
        parser.error(
            f"{given[0]} is an option of the main job, not of {args.command!r}; "
            f"give {args.command}'s options after it: verify-grads {args.command} ... {given[0]} ..."
        )
    run = SUBCOMMANDS[args.command].run if args.command else _run_main
    try:
        return run(args)
    except InvalidArgument as exc:
        print(f"verify-grads: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("verify-grads: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `verify-grads | head`: the reader left; the reports are already written
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


# --- output --------------------------------------------------------------------------------
def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _stderr_is_terminal() -> bool:
    return _is_terminal(sys.stderr)


def _console(stream: TextIO) -> Console:
    """Colour and the terminal's width on a terminal; plain text, wide, when piped or NO_COLOR."""
    from rich.console import Console

    terminal = _is_terminal(stream)
    plain = not terminal or bool(os.environ.get("NO_COLOR"))
    return Console(
        file=stream,
        color_system=None if plain else "auto",
        width=None if terminal else max(PIPE_WIDTH, int(os.environ.get("COLUMNS", "0") or 0)),
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=not terminal,
    )


class _Output:
    """stdout carries the chosen format; in json/markdown mode, remarks go to stderr."""

    def __init__(self, fmt: str) -> None:
        self.format = fmt
        self.out = _console(sys.stdout)
        self.note_console = self.out if fmt == "text" else _console(sys.stderr)

    def note(self, text: str) -> None:
        self.note_console.print(text)

    def table(self, table: Table) -> None:
        if self.format != "text":
            return
        if _is_terminal(self.out.file):
            self.out.print(table)
        else:  # never squeeze a table to the pipe's width: give it the width it needs
            width = self.out.width
            needed = self.out.measure(table, options=self.out.options.update_width(100_000)).maximum
            self.out.width = max(width, needed)
            try:
                self.out.print(table)
            finally:
                self.out.width = width

    def document(self, text: str) -> None:
        if self.format != "text":
            sys.stdout.write(text)
            sys.stdout.flush()


def _new_table(title: str, columns: Sequence[str], numeric: Sequence[str]) -> Table:
    """The `numeric` columns right-justified, the others (names, verdicts, entries) left."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False)
    for col in columns:
        table.add_column(col, justify="right" if col in numeric else "left", no_wrap=True)
    return table


def _cell(value: object, verdict: str | None = None) -> Any:
    from rich.text import Text

    styles = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "error": "bold magenta"}
    return Text(str(value), style=styles.get(verdict or str(value), ""))


def _campaign_table(result: CampaignResult) -> Table:
    from verifier.report import VERDICT_ORDER

    columns = ["layer", *VERDICT_ORDER, "max rel err hand/jax", "hand/fd", "jax/fd", "max err/tol"]
    table = _new_table("per-layer summary (all networks)", columns, numeric=columns[1:])
    for name, stats in result.to_dict()["layers"].items():
        v, e = stats["verdicts"], stats["max_rel_err"]
        table.add_row(
            _cell(name),
            *(_cell(v[k], k if v[k] else "") for k in VERDICT_ORDER),
            *(_cell(f"{x:.1e}") for x in e.values()),
            _cell(f"{max(stats['max_err_over_tol'].values()):.1e}"),
        )
    return table


def _report_table(report: Report) -> Table:
    from verifier.report import COMPARISONS, comparison_cell, worst_entry_cell, worst_ratio

    columns = ["layer", "array", "verdict", "blame", "hand vs jax", "hand vs fd", "jax vs fd", "err/tol", "worst entry"]
    table = _new_table("per array, output layer first", columns, numeric=["err/tol"])
    for layer in reversed(report.layers):
        for p in layer.params:
            ratio = worst_ratio(p)
            table.add_row(
                _cell(layer.name),
                _cell(p.path),
                _cell(p.verdict.value),
                _cell("" if p.blame.value == "none" else p.blame.value),
                *(_cell(comparison_cell(p.comparison(a, b))) for a, b in COMPARISONS),
                _cell("-" if ratio is None else f"{ratio:.1e}"),
                _cell(worst_entry_cell(p.worst)),
            )
    return table


def _print_report(out: _Output, report: Report) -> None:
    out.table(_report_table(report))
    for line in _report_lines(report):
        out.note(line)


def _report_lines(report: Report) -> list[str]:
    lines = [f"verdict: {report.verdict.value}" + (f", root cause: {report.root_cause}" if report.root_cause else "")]
    if report.next_step:
        lines.append(f"next step: {report.next_step}")
    lines += [f"note: {n}" for n in report.notes]
    return lines


class _Progress:
    """A progress bar on stderr while a run goes over many networks: only when stderr is a
    terminal, and only once the run has lasted longer than a moment."""

    DELAY = 0.5

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what = total, what
        self.bar: Any = None
        self.task: Any = None
        self.started = False
        self.t0 = time.monotonic()

    def __enter__(self) -> _Progress:
        if _stderr_is_terminal():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(file=sys.stderr, force_terminal=True, no_color=bool(os.environ.get("NO_COLOR")))
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.task = self.bar.add_task(self.what, total=self.total)
        return self

    def _show(self) -> None:
        if self.bar is not None and not self.started and time.monotonic() - self.t0 >= self.DELAY:
            self.bar.start()
            self.started = True

    def example(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=n)
            self._show()

    def shrink(self, steps: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=f"shrinking the failing network: {steps} tries")
            self._show()

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.bar.stop()


# --- writing reports -----------------------------------------------------------------------
def _prepare_report_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"--report-dir {directory}: cannot create it ({exc.strerror or exc})") from None


def _write(directory: Path, json_text: str, markdown: str, html: str) -> list[Path]:
    from verifier.report import write_latest

    try:
        return write_latest(directory, json=json_text, markdown=markdown, html=html)
    except OSError as exc:
        raise InvalidArgument(
            f"--report-dir {directory}: cannot write the reports ({exc.strerror or exc}); the old ones are intact"
        ) from None


def _deliver(out: _Output, documents: tuple[str, str, str], directory: Path | None, show: Callable[[], None]) -> None:
    """Write the reports first (a broken pipe or ^C while printing cannot lose them), then print
    the output; a write that failed is reported after it."""
    written: list[Path] = []
    failure: InvalidArgument | None = None
    if directory is not None:
        try:
            written = _write(directory, *documents)
        except InvalidArgument as exc:
            failure = exc
    show()
    out.document(documents[0] if out.format == "json" else documents[1])
    if failure is not None:
        raise failure
    if written:
        out.note("reports written: " + ", ".join(str(p) for p in written))


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _replay_command(directory: Path) -> str:
    return f"verify-grads replay {shlex.quote(str(directory / 'latest.json'))}"


def _rerun_command(result: CampaignResult) -> str | None:
    """The main-job command line that runs `result` again, when its settings fit on one."""
    if result.network_options:
        return None
    words = ["verify-grads", "--examples", str(result.examples), "--seed", str(result.seed), "--dtype", result.dtype]
    words += ["--method", result.method, "--mode", result.mode]
    if result.backward != "reference":
        words += ["--plant", result.backward]
    return shlex.join(words)


def _campaign_documents(result: CampaignResult, directory: Path | None) -> tuple[str, str, str]:
    """(json, markdown, html) of a run; the replay commands point at `directory`/latest.json."""
    from verifier.html import campaign_html
    from verifier.report import json_text

    replay = _replay_command(directory) if directory is not None and not result.ok else None
    commands = [c for c in (replay, _rerun_command(result)) if c]
    return (
        json_text(result.to_dict(timestamp=_now())),
        result.to_markdown(replay_command=replay),
        campaign_html(result, replay=commands),
    )


def _report_documents(report: Report, commands: Sequence[str]) -> tuple[str, str, str]:
    from verifier.html import report_html
    from verifier.report import json_text

    data = report.to_dict()
    data["timing"] = {"created": _now()}
    return json_text(data), report.to_markdown(), report_html(report, replay=commands)


# --- the main job --------------------------------------------------------------------------
def _run_main(args: argparse.Namespace) -> int:
    from verifier.campaign import resolve_backward

    _prepare_report_dir(args.report_dir)
    resolve_backward(args.plant, "--plant")  # an unknown bug is a usage error before the run
    planted = "" if args.plant == "reference" else f", planted bug {args.plant}"
    headline = (
        f"verify-grads: {args.examples} random networks, seed {args.seed}, {args.dtype}, "
        f"method {args.method}, mode {args.mode}{planted}"
    )
    _, result = _run_random_networks(args, headline, backward=args.plant, network_options={})
    return EXIT_OK if result.ok else EXIT_DISCREPANCY


def _run_random_networks(
    args: argparse.Namespace, headline: str, *, backward: str, network_options: dict[str, Any]
) -> tuple[_Output, CampaignResult]:
    """The main job and `campaign`: random networks through verify_network, then the reports
    written and the summary printed."""
    from verifier.campaign import run_campaign

    out = _Output(args.format)
    _prepare_report_dir(args.report_dir)
    out.note(headline)
    with _Progress(args.examples, "checking random networks") as progress:
        result = run_campaign(
            args.examples,
            seed=args.seed,
            dtype=args.dtype,
            method=args.method,
            mode=args.mode,
            backward=backward,
            on_example=progress.example,
            on_shrink=progress.shrink,
            network_options=network_options,
        )
    documents = _campaign_documents(result, args.report_dir)
    _deliver(out, documents, args.report_dir, lambda: _print_campaign(out, result, args.report_dir))
    return out, result


def _print_campaign(out: _Output, result: CampaignResult, directory: Path | None) -> None:
    out.table(_campaign_table(result))
    out.note(f"{result.summary_line()} in {result.elapsed:.1f} s")
    if result.failing_report is None or result.failing_case is None:
        out.note("all gradients agree")
        return
    out.note(
        f"DISCREPANCY: minimal failing network (after {result.shrink_steps} shrink steps): "
        f"{json.dumps(result.failing_case.to_dict())}"
    )
    out.table(_report_table(result.failing_report))
    for line in _report_lines(result.failing_report):
        out.note(line)
    if directory is not None:
        out.note(f"replay: {_replay_command(directory)}")


# --- replay --------------------------------------------------------------------------------
def _configure_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT", type=Path, help="a report written by verify-grads (latest.json)")
    _add_format(parser)
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="also write the replayed report's latest.json/.md/.html here (default: write nothing)",
    )


@subcommand(
    "replay",
    "run a report again: its minimal failing network (or, if it found none, the whole run) with the same "
    "seed, method, mode and backward; prints and exits with the verdict",
    _configure_replay,
)
def _run_replay(args: argparse.Namespace) -> int:
    from verifier.report import read_report

    data = read_report(args.report)
    from verifier.campaign import plan_replay, replay

    plan = plan_replay(data)
    out = _Output(args.format)
    if args.report_dir is not None:
        _prepare_report_dir(args.report_dir)
    out.note(f"replaying {args.report} ({data['kind']} report): {plan.describe()}")
    total = int(plan.campaign["examples"]) if plan.campaign is not None else 1
    with _Progress(total, "replaying the run") as progress:
        result = replay(plan, on_example=progress.example, on_shrink=progress.shrink)

    def show() -> None:
        if result.report is not None:
            _print_report(out, result.report)
        else:
            assert result.campaign is not None
            _print_campaign(out, result.campaign, None)
        if result.reproduced:
            out.note(f"reproduced: {result.replayed.describe()}, as recorded")
        else:
            out.note(f"NOT reproduced: recorded {result.recorded.describe()}; replayed {result.replayed.describe()}")

    _deliver(out, _replay_documents(result, args.report, args.report_dir), args.report_dir, show)
    return EXIT_OK if result.ok else EXIT_DISCREPANCY


def _replay_documents(result: Replay, source: Path, directory: Path | None) -> tuple[str, str, str]:
    if result.campaign is not None:
        return _campaign_documents(result.campaign, directory)
    assert result.report is not None
    commands = (
        [_replay_command(directory)] if directory is not None else [f"verify-grads replay {shlex.quote(str(source))}"]
    )
    return _report_documents(result.report, commands)


# --- check ---------------------------------------------------------------------------------
_SPEC = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("loss", metavar="MODULE:LOSS", help="the loss function, loss(params) -> scalar")
    parser.add_argument(
        "--grad", metavar="MODULE:GRAD", required=True, help="your gradient function, grad(params) -> pytree"
    )
    parser.add_argument(
        "--params",
        metavar="MODULE:PARAMS",
        required=True,
        help="the parameters (a pytree), or a function of no arguments that returns them",
    )
    parser.add_argument("--jax-loss", metavar="MODULE:FN", default=None, help="a jax.numpy version of the loss")
    _add_oracle_options(parser)
    parser.add_argument(
        "--rtol", type=tolerance_arg, default=None, help="relative tolerance (default: the error model)"
    )
    parser.add_argument(
        "--atol", type=tolerance_arg, default=None, help="absolute tolerance (default: the error model)"
    )
    _add_format(parser)
    parser.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="where latest.json/.md/.html go (default reports/)"
    )


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
    """Modules are looked up in the current directory first, as `python -m` does."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def load_object(spec: str, option: str, *, function: bool) -> Any:
    """The object `spec` = MODULE:NAME names (NAME may be dotted). InvalidArgument names `option`."""
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise InvalidArgument(
            f"{option} {spec!r}: expected MODULE:NAME, e.g. mymodel:loss (a module importable from the "
            "current directory and a name defined in it)"
        )
    module_name, attr = m["module"], m["attr"]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise InvalidArgument(
                f"{option} {spec!r}: no module named {missing!r} in the current directory or on sys.path; "
                f"run verify-grads where {missing.replace('.', '/')}.py is, or install it"
            ) from None
        raise InvalidArgument(f"{option} {spec!r}: importing {module_name!r} failed: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise InvalidArgument(
            f"{option} {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = sorted(n for n in vars(module) if not n.startswith("_"))
            raise InvalidArgument(
                f"{option} {spec!r}: module {module_name!r} has no attribute {attr!r}; it defines {names[:20]}"
            ) from None
    if function and not callable(obj):
        raise InvalidArgument(
            f"{option} {spec!r} is not callable (it is of type {type(obj).__name__}); give the name of a function"
        )
    return obj


def _check_command(args: argparse.Namespace) -> str:
    words = ["verify-grads", "check", args.loss, "--grad", args.grad, "--params", args.params]
    if args.jax_loss:
        words += ["--jax-loss", args.jax_loss]
    words += ["--method", args.method, "--mode", args.mode, "--seed", str(args.seed)]
    for name in ("rtol", "atol"):
        if getattr(args, name) is not None:
            words += [f"--{name}", repr(getattr(args, name))]
    return shlex.join(words)


@subcommand(
    "check",
    "check your own gradient function against JAX autodiff of your loss (when JAX can trace it, or of "
    "--jax-loss) and finite differences of it, per layer of your parameters",
    _configure_check,
)
def _run_check(args: argparse.Namespace) -> int:
    with _cwd_on_path():
        loss = load_object(args.loss, "MODULE:LOSS", function=True)
        grad = load_object(args.grad, "--grad", function=True)
        jax_loss = None if args.jax_loss is None else load_object(args.jax_loss, "--jax-loss", function=True)
        params = load_object(args.params, "--params", function=False)
        if callable(params):
            try:
                params = params()
            except Exception as exc:
                raise InvalidArgument(
                    f"--params {args.params!r}: calling it raised {type(exc).__name__}: {exc}"
                ) from None
        check_grads = getattr(importlib.import_module("verifier.check"), "check_grads", None)
        if check_grads is None:
            raise InvalidArgument("check: this installation has no verifier.check.check_grads; upgrade verify-grads")
        out = _Output(args.format)
        _prepare_report_dir(args.report_dir)
        report = check_grads(
            loss,
            params,
            grad,
            jax_loss_fn=jax_loss,
            method=args.method,
            mode=args.mode,
            rtol=args.rtol,
            atol=args.atol,
            seed=args.seed,
        )
    command = _check_command(args)
    report.meta["command"] = command
    _deliver(out, _report_documents(report, [command]), args.report_dir, lambda: _print_report(out, report))
    return EXIT_OK if report.ok else EXIT_DISCREPANCY


# --- selftest ------------------------------------------------------------------------------
def _configure_selftest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--examples", type=positive_int, default=200, help="random networks tried per planted bug (default 200)"
    )
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the random search (default 0)")
    parser.add_argument(
        "--only",
        metavar="BUG[,BUG...]",
        default=None,
        help="run only these planted bugs (names as `verify-grads selftest --list` prints them)",
    )
    parser.add_argument("--list", action="store_true", help="list the planted bugs and exit")
    _add_format(parser)


def _selected_mutants(only: str | None) -> list[Any]:
    from verifier.mutants import CATALOGUE, MUTANTS

    if only is None:
        return list(CATALOGUE)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in MUTANTS]
    if unknown or not names:
        raise InvalidArgument(f"--only {only!r}: unknown planted bug(s) {unknown}; choose from {sorted(MUTANTS)}")
    return [MUTANTS[n] for n in names]


@subcommand(
    "selftest",
    "run every planted backprop bug of the catalogue through the harness with its default settings: "
    "killed or survived, networks needed, the layer blamed and whether it was the right one",
    _configure_selftest,
)
def _run_selftest(args: argparse.Namespace) -> int:
    mutants = _selected_mutants(args.only)
    out = _Output(args.format)
    if args.list:
        for m in mutants:
            out.note(f"{m.name:<30} {m.description}")
        return EXIT_OK
    from verifier.selftest import run_selftest

    out.note(
        f"verify-grads selftest: {len(mutants)} planted bugs, up to {args.examples} networks each, seed {args.seed}"
    )
    with _Progress(len(mutants), "planted bugs") as progress:
        done: list[Any] = []

        def on_result(r: Any) -> None:
            done.append(r)
            progress.example(len(done))

        result = run_selftest(examples=args.examples, seed=args.seed, mutants=mutants, on_result=on_result)
    columns = ["planted bug", "killed", "networks", "blamed first/expected", "blamed minimal/expected"]
    columns += ["right layer", "seconds"]
    table = _new_table("planted bugs (first failing network found, and the minimal one)", columns, ["networks"])
    for r in result.mutants:
        table.add_row(
            _cell(r.name),
            _cell("killed" if r.killed else "SURVIVED", "pass" if r.killed else "fail"),
            _cell(r.networks),
            _cell(f"{r.first_blamed or '-'} / {r.first_expected or '-'} (depth {r.first_depth})"),
            _cell(f"{r.blamed or '-'} / {r.expected or '-'}"),
            _cell("yes" if r.right_layer else "no", "pass" if r.right_layer else "inconclusive"),
            _cell(f"{r.seconds:.1f}"),
        )
    out.table(table)
    if args.format == "json":
        out.document(json.dumps(result.to_dict(), indent=2) + "\n")
    elif args.format == "markdown":
        out.document(result.to_markdown())
    for line in result.summary_lines():
        out.note(line)
    return EXIT_OK if result.ok else EXIT_DISCREPANCY


# --- campaign ------------------------------------------------------------------------------
def _configure_campaign(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=positive_int, default=1000, help="random networks to check (default 1000)")
    parser.add_argument(
        "--dtype",
        choices=["both", *DTYPES],
        default="both",
        help="dtype of the networks; both (default): each network drawn in float64 or float32",
    )
    parser.add_argument(
        "--values",
        choices=["drawn", "seeded"],
        default="drawn",
        help="drawn (default): hypothesis draws every parameter and input, exact zeros and kinks included, "
        "and shrinks toward zeros; seeded: continuous random draws",
    )
    parser.add_argument(
        "--max-width", type=positive_int, default=8, help="widest layer of the random networks (default 8)"
    )
    _add_oracle_options(parser)
    _add_format(parser)
    parser.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="where latest.json/.md/.html go (default reports/)"
    )


@subcommand(
    "campaign",
    "the false-alarm campaign: the correct reference on many random networks, every activation and loss, "
    "parameters and inputs drawn by hypothesis (exact zeros, kinks); any fail is a false alarm",
    _configure_campaign,
)
def _run_campaign(args: argparse.Namespace) -> int:
    headline = (
        f"verify-grads campaign: {args.examples} random networks, {args.dtype}, values {args.values}, "
        f"max width {args.max_width}, seed {args.seed}, method {args.method}, mode {args.mode}"
    )
    options = {"values": args.values, "max_width": args.max_width}
    out, result = _run_random_networks(args, headline, backward="reference", network_options=options)
    out.note(result.campaign_line())
    return EXIT_OK if result.ok else EXIT_DISCREPANCY


if __name__ == "__main__":
    raise SystemExit(main())
