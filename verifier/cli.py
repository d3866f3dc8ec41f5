"""`verify-grads`: the command line.

With no arguments it runs the built-in reference through random networks from the strategies,
prints a per-layer summary and writes latest.json / latest.md under --report-dir.
Exit codes: 0 every gradient agrees, 1 a discrepancy, 2 a usage or input error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"verify-grads: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed >= 0, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer seed >= 0, found {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from verifier.finite_diff import Method, Mode  # light: no JAX

    parser = _Parser(
        prog="verify-grads",
        description="Check the reference backpropagation against JAX autodiff and finite differences "
        "on random networks, layer by layer.",
        epilog="exit codes: 0 all gradients agree, 1 a discrepancy was found, 2 usage or input error",
    )
    parser.add_argument("--examples", type=_positive_int, default=100, help="random networks to check (default 100)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the random search (default 0)")
    parser.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="where latest.json/.md go (default reports/)"
    )
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="dtype of the reference")
    parser.add_argument("--method", choices=[m.value for m in Method], default="auto", help="finite-difference method")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default="auto", help="finite-difference mode")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("verify-grads: interrupted", file=sys.stderr)
        return 130


def _plain() -> bool:
    return bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from verifier.campaign import run_campaign

    console = Console(no_color=_plain(), highlight=False, soft_wrap=True)
    try:
        args.report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(
            f"verify-grads: error: --report-dir {args.report_dir}: cannot create it ({exc.strerror})", file=sys.stderr
        )
        return EXIT_USAGE
    console.print(
        f"verify-grads: {args.examples} random networks, seed {args.seed}, {args.dtype}, "
        f"method {args.method}, mode {args.mode}"
    )
    result = run_campaign(args.examples, seed=args.seed, dtype=args.dtype, method=args.method, mode=args.mode)
    _print_summary(console, result)
    _write_reports(args.report_dir, result)
    console.print(f"reports written to {args.report_dir / 'latest.json'} and {args.report_dir / 'latest.md'}")
    return EXIT_OK if result.ok else EXIT_DISCREPANCY


def _print_summary(console: Any, result: Any) -> None:
    from rich.table import Table

    table = Table(title="per-layer summary (all networks)", show_lines=False)
    for col in (
        "layer",
        "pass",
        "fail",
        "inconclusive",
        "not-exercised",
        "error",
        "max rel err hand/jax",
        "hand/fd",
        "jax/fd",
    ):
        table.add_column(col, justify="right" if col != "layer" else "left")
    for name, stats in result.to_dict()["layers"].items():
        v, e = stats["verdicts"], stats["max_rel_err"]
        table.add_row(
            name,
            *(str(v[k]) for k in ("pass", "fail", "inconclusive", "not-exercised", "error")),
            *(f"{x:.1e}" for x in e.values()),
        )
    console.print(table)
    p = result.params
    console.print(
        f"{result.networks} networks, {sum(p.values())} arrays checked: {p['pass']} pass, {p['fail']} fail, "
        f"{p['inconclusive']} inconclusive, {p['not-exercised']} not-exercised, {p['error']} error "
        f"in {result.elapsed:.1f} s"
    )
    if result.failing_report is not None:
        rep = result.failing_report
        console.print(
            f"DISCREPANCY: minimal failing network (after {result.shrink_steps} shrink steps): "
            f"{result.failing_case.net.to_dict()}"
        )
        console.print(rep.to_markdown(), markup=False)
    else:
        console.print("all gradients agree")


def _write_reports(directory: Path, result: Any) -> None:
    import json

    from verifier.report import _jsonable, write_atomic

    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    data = result.to_dict(timestamp=stamp)
    write_atomic(directory / "latest.json", json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")
    write_atomic(directory / "latest.md", campaign_markdown(result))


def campaign_markdown(result: Any) -> str:
    d = result.to_dict()
    p = d["params"]
    lines = [
        f"# verify-grads: {'all gradients agree' if result.ok else 'DISCREPANCY'}",
        "",
        f"{d['networks']} random networks (seed {d['settings']['seed']}, {d['settings']['dtype']}, "
        f"method {d['settings']['method']}, mode {d['settings']['mode']}): "
        f"{p['pass']} pass, {p['fail']} fail, {p['inconclusive']} inconclusive, "
        f"{p['not-exercised']} not-exercised, {p['error']} error.",
        "",
        "| layer | pass | fail | inconclusive | not-exercised | error | max rel err hand/jax | hand/fd | jax/fd |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, stats in d["layers"].items():
        v, e = stats["verdicts"], stats["max_rel_err"]
        lines.append(
            f"| {name} | "
            + " | ".join(str(v[k]) for k in ("pass", "fail", "inconclusive", "not-exercised", "error"))
            + " | "
            + " | ".join(f"{x:.1e}" for x in e.values())
            + " |"
        )
    if result.failing_report is not None:
        lines += [
            "",
            "## Minimal failing network",
            "",
            f"`{d['failing_case']}`",
            "",
            result.failing_report.to_markdown(),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
