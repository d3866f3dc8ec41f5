"""Speed of the gradient check, side by side with its floor and its peers, in one run.

    python benchmarks/bench_speed.py            # every section (a few minutes)
    python benchmarks/bench_speed.py --quick    # fewer networks, no full-mode gradcheck

BLAS is pinned to one thread with threadpoolctl (small matrix products stall with two threads
on a 2-core machine). Every figure is a ratio against something measured in the same run:

1. throughput of the three-way check (reference, JAX, finite differences) on random small
   networks drawn by hypothesis, against a naive baseline that compiles the JAX gradient for
   every architecture, and against the numpy-only floor (draw + forward + backward + batched
   directional finite differences, no JAX, no comparison);
2. a ~26k-parameter MLP: our per-layer verification against torch.autograd.gradcheck in fast
   and full mode (optional: `pip install -e ".[bench]"` pins torch==2.13.0) and
   jax.test_util.check_grads;
3. a ~400k-parameter MLP: verification time;
4. verification cost at three sizes, to show how it grows;
5. `verify-grads --help` start-up time, against `python -c pass`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import blas_line, median_seconds
from reference import Network, backward, build, forward, init_params
from verifier import autodiff
from verifier.check import _network_objective, verify_network
from verifier.finite_diff import Items, Method, estimate, random_directions
from verifier.strategies import Case, cases

BATCH = 32


# --- 1. throughput on random small networks ------------------------------------------------
def draw_cases(n: int, seed: int) -> list[Case]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    out: list[Case] = []

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @hseed(seed)
    @given(cases())
    def collect(case: Case) -> None:
        out.append(case)

    collect()
    return out


def three_way(case: Case) -> bool:
    x, y = case.data()
    return verify_network(case.net, case.params(), x, y).ok


def numpy_floor(case: Case) -> float:
    """Forward + backward + one batched run of directional complex-step differences, one random
    direction per array (as many as the three-way check screens with when JAX is there)."""
    params = case.params()
    x, y = case.data()
    backward(case.net, params, forward(case.net, params, x), y)
    objective, theta, slots = _network_objective(case.net, params, x, y)
    rng = np.random.default_rng(0)
    dense = np.zeros((len(slots), theta.size))
    for j, s in enumerate(slots):
        dense[j : j + 1, s.start : s.start + s.size] = random_directions(rng, 1, s.size)
    est = estimate(
        objective,
        theta,
        Items(directions=dense),
        np.ones(len(dense)),
        method=Method.AUTO,
        supports_complex=True,
        analytic=True,  # as the check itself: one complex step per direction, no cross-check
    )
    return float(est.value[0])


def per_network_rate(fn: Callable[[Case], object], todo: list[Case]) -> float:
    start = time.perf_counter()
    for case in todo:
        fn(case)
    return len(todo) / (time.perf_counter() - start)


def best_rates(fns: list[Callable[[Case], object]], todo: list[Case], passes: int = 3) -> list[float]:
    """The best rate of each fn over `passes` passes, taken in turn (fn0, fn1, fn0, fn1, ...), so
    that a burst of load from elsewhere slows one pass, not one function."""
    best = [0.0] * len(fns)
    for _ in range(passes):
        for k, fn in enumerate(fns):
            best[k] = max(best[k], per_network_rate(fn, todo))
    return best


def throughput(n: int) -> None:
    print(f"\n## 1. three-way check on {n} random small networks (depth <= 5, width <= 16, batch <= 8)")
    todo = draw_cases(n, seed=1)
    draw_rate = 0.0
    for _ in range(3):
        start = time.perf_counter()
        draw_cases(n, seed=1)
        draw_rate = max(draw_rate, n / (time.perf_counter() - start))
    three_way(todo[0])  # compile the padded program once (a few buckets at most)
    for case in todo[:20]:
        three_way(case)
    ours, floor = best_rates([three_way, numpy_floor], todo)
    # naive baseline: the JAX gradient compiled per architecture (no padding, no cache)
    real_bucket = autodiff.bucket_for
    autodiff.bucket_for = lambda net, batch: None  # type: ignore[assignment]
    try:
        few = todo[: max(10, n // 10)]
        autodiff._compiled.cache_clear()
        naive = per_network_rate(three_way, few)  # one pass: compilation dominates, not noise
    finally:
        autodiff.bucket_for = real_bucket  # type: ignore[assignment]

    def with_draw(rate: float) -> float:
        return 1.0 / (1.0 / rate + 1.0 / draw_rate)

    print(f"hypothesis draw alone        {draw_rate:8.0f} networks/s (each figure: the best of 3 passes)")
    print(f"three-way check (ours)       {with_draw(ours):8.0f} networks/s incl. draw ({ours:.0f}/s without)")
    print(f"naive per-architecture jit   {with_draw(naive):8.1f} networks/s incl. draw (on {len(few)} networks)")
    print(f"numpy-only floor             {with_draw(floor):8.0f} networks/s incl. draw")
    print(
        f"ours / naive = {with_draw(ours) / with_draw(naive):.1f}x   "
        f"ours / floor = {with_draw(ours) / with_draw(floor):.2f}"
    )


# --- 2-4. MLPs ----------------------------------------------------------------------------
def mlp(n_in: int, widths: list[int]) -> Network:
    return build(n_in, [(w, "tanh") for w in widths[:-1]] + [(widths[-1], "identity")], loss="softmax_cross_entropy")


MLP_26K = mlp(64, [128, 128, 10])
MLP_400K = mlp(784, [512, 10])


def batch_for(net: Network) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, net.n_inputs))
    y = np.eye(net.n_outputs)[rng.integers(net.n_outputs, size=BATCH)]
    return x, y


def ours(net: Network) -> tuple[float, float, bool]:
    """(first call incl. compilation, warm median) in seconds, and whether it passed."""
    params = init_params(net)
    x, y = batch_for(net)
    autodiff._compiled.cache_clear()
    start = time.perf_counter()
    ok = verify_network(net, params, x, y).ok
    first = time.perf_counter() - start
    (warm,) = median_seconds([lambda: verify_network(net, params, x, y)], 20)
    return first, warm, ok


def torch_gradcheck(net: Network, fast: bool) -> Callable[[], None] | None:
    """A call of torch.autograd.gradcheck on the network (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    params = init_params(net)
    x, y = batch_for(net)
    tensors = []
    for name in net.layer_names:
        tensors += [
            torch.tensor(params[name]["W"], requires_grad=True),
            torch.tensor(params[name]["b"], requires_grad=True),
        ]
    xt, yt = torch.tensor(x), torch.tensor(y)

    def loss(*ps: torch.Tensor) -> torch.Tensor:
        h = xt
        for r in range(net.depth):
            a = h @ ps[2 * r].T + ps[2 * r + 1]
            h = torch.tanh(a) if r < net.depth - 1 else a
        return -(yt * torch.log_softmax(h, dim=-1)).sum(-1).mean()

    torch.set_num_threads(1)

    def run() -> None:
        assert torch.autograd.gradcheck(loss, tuple(tensors), fast_mode=fast)

    return run


def jax_check_grads(net: Network) -> Callable[[], None]:
    """A call of jax.test_util.check_grads (reverse mode, first order) on the network."""
    import jax
    from jax.test_util import check_grads

    params = init_params(net)
    x, y = batch_for(net)
    fn = autodiff.jax_loss(net)
    taps = [np.zeros((BATCH, layer.width)) for layer in net.layers]

    def run() -> None:
        with jax.enable_x64(True):
            check_grads(lambda p: fn(p, taps, x, y), (params,), order=1, modes=["rev"])

    return run


PEERS = {
    "gradcheck-fast": lambda net: torch_gradcheck(net, True),
    "gradcheck-full": lambda net: torch_gradcheck(net, False),
    "check-grads": jax_check_grads,
}
ROUNDS = ("gradcheck-fast", "check-grads")


def peer_seconds(peer: str, calls: int) -> float | None:
    """Median seconds of `calls` calls of a peer on the 26k MLP, in a process of its own: importing
    torch slows numpy in the importing process (seen: 10 -> 13 ms for our check), and JAX's CPU
    threads linger after a call, so neither is run beside our check. None: torch is missing."""
    done = subprocess.run(
        [sys.executable, __file__, "--peer", peer, "--calls", str(calls)], capture_output=True, text=True, check=True
    )
    last = done.stdout.strip().splitlines()[-1]
    return None if last == "missing" else float(last)


def mlp_26k(full_gradcheck: bool) -> None:
    net = MLP_26K
    print(f"\n## 2. MLP 64-128-128-10, {net.n_params} parameters, batch {BATCH}, float64")
    print("(3 rounds of 7 calls each, ours here and each peer in a process of its own; medians over the rounds)")
    first, _, ok = ours(net)
    params = init_params(net)
    x, y = batch_for(net)
    rounds: dict[str, list[float]] = {"ours": [], **{peer: [] for peer in ROUNDS}}
    for _ in range(3):
        rounds["ours"] += median_seconds([lambda: verify_network(net, params, x, y)], 7)
        for peer in ROUNDS:
            t = peer_seconds(peer, 7)
            if t is not None:
                rounds[peer].append(t)
    warm = statistics.median(rounds["ours"])
    print(
        f"{'ours (W, b, Delta per layer; JAX + FD)':<40}{warm * 1e3:9.2f} ms   "
        f"first call {first * 1e3:.0f} ms (compiles), ok={ok}"
    )
    if not rounds["gradcheck-fast"]:
        print("torch not installed: pip install -e '.[bench]' for the gradcheck comparison")
    else:
        fast = statistics.median(rounds["gradcheck-fast"])
        print(f"{'torch gradcheck fast_mode=True':<40}{fast * 1e3:9.2f} ms   ours/gradcheck-fast = {warm / fast:.2f}")
        full_t = peer_seconds("gradcheck-full", 1) if full_gradcheck else None
        if full_t is not None:
            print(f"{'torch gradcheck fast_mode=False':<40}{full_t * 1e3:9.0f} ms   full/ours = {full_t / warm:.0f}x")
    jx = statistics.median(rounds["check-grads"])
    print(f"{'jax.test_util.check_grads (rev)':<40}{jx * 1e3:9.2f} ms   ours/check_grads = {warm / jx:.2f}")


def mlp_400k() -> None:
    net = MLP_400K
    print(f"\n## 3. MLP 784-512-10, {net.n_params} parameters, batch {BATCH}")
    first, warm, ok = ours(net)
    print(
        f"ours: warm {warm * 1e3:.1f} ms, first call {first * 1e3:.0f} ms (incl. compilation), ok={ok}; "
        "target <= 1000 ms"
    )


def growth() -> None:
    print("\n## 4. cost against size (warm, median)")
    rows = [
        ("2 layers x 32", mlp(32, [32, 10])),
        ("3 layers x 128", MLP_26K),
        ("2 layers x 512", MLP_400K),
        ("6 layers x 128", mlp(64, [128] * 5 + [10])),
    ]
    base = None
    for label, net in rows:
        _, warm, _ = ours(net)
        x, _y = batch_for(net)
        params = init_params(net)
        (fwd,) = median_seconds([lambda net=net, params=params, x=x: forward(net, params, x)], 50)
        base = base or warm
        print(
            f"{label:<16}{net.n_params:>9} params {net.depth} layers   check {warm * 1e3:8.2f} ms   "
            f"= {warm / fwd:6.0f} forward passes"
        )


def startup() -> None:
    print("\n## 5. start-up")

    def run(args: list[str]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    floor = run([sys.executable, "-c", "pass"])
    helptime = run([sys.executable, "-m", "verifier.cli", "--help"])
    print(
        f"python -c pass {floor * 1e3:.0f} ms; verify-grads --help {helptime * 1e3:.0f} ms "
        f"(+{(helptime - floor) * 1e3:.0f} ms; target < 300 ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer networks; skip full-mode gradcheck")
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:  # one peer's timing, for peer_seconds
        with threadpool_limits(1):
            run = PEERS[args.peer](MLP_26K)
            if run is None:
                print("missing")
            elif args.calls == 1:  # a single, unwarmed call (gradcheck's full mode takes seconds)
                start = time.perf_counter()
                run()
                print(time.perf_counter() - start)
            else:
                print(median_seconds([run], args.calls)[0])
        return 0
    with threadpool_limits(1):
        print(blas_line())
        throughput(100 if args.quick else 400)
        mlp_26k(full_gradcheck=not args.quick)
        mlp_400k()
        growth()
        startup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
