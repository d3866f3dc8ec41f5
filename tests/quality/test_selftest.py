"""The planted-bug catalogue: every mutant is killed and blamed on the right layer."""

import re

import numpy as np
import pytest

from reference import Layer, Network, init_params
from verifier.check import verify_network
from verifier.cli import main
from verifier.mutants import CATALOGUE, MUTANTS
from verifier.selftest import run_selftest
from verifier.strategies import make_batch

# a network where every mutant can show: curved activations, a square layer, skip edges,
# a unit read by two layers, equal widths one above the other, batch > 1
SHOWCASE = Network(
    4,
    (
        Layer(4, "tanh"),
        Layer(4, "sigmoid"),
        Layer(4, "tanh"),
        Layer(4, "softplus", inputs=(2, 3)),
        Layer(4, "identity", inputs=(1, 4)),
    ),
    "mse",
)


def test_the_catalogue_has_at_least_twenty_named_and_described_bugs():
    assert len(CATALOGUE) >= 20
    assert len(MUTANTS) == len(CATALOGUE)
    for m in CATALOGUE:
        assert re.fullmatch(r"[a-z0-9-]+", m.name) and len(m.description) > 10


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_every_mutant_is_caught_at_its_expected_layer_on_a_network_that_exposes_it(mutant):
    params = init_params(SHOWCASE, seed=3)
    x, y = make_batch(SHOWCASE, 3, 5, np.dtype(np.float64))
    backward = mutant.backward()
    verify_network(SHOWCASE, params, x, y, backward=backward)  # a stale cache needs a previous batch
    x2, y2 = make_batch(SHOWCASE, 3, 6, np.dtype(np.float64))
    report = verify_network(SHOWCASE, params, x2, y2, backward=backward)
    expected = mutant.expected_root(SHOWCASE, 3)
    assert expected is not None, "the showcase network should expose every mutant"
    assert not report.ok
    assert report.root_cause == expected, report.to_markdown()


@pytest.mark.parametrize("mutant", [m for m in CATALOGUE if m.name != "stale-cache"], ids=lambda m: m.name)
def test_a_mutant_passes_exactly_where_its_expected_root_says_it_cannot_show(mutant):
    params = init_params(SHOWCASE, seed=3)
    x, y = make_batch(SHOWCASE, 1, 5, np.dtype(np.float64))
    expected = mutant.expected_root(SHOWCASE, 1)  # with a batch of one, batch-size bugs cannot show
    report = verify_network(SHOWCASE, params, x, y, backward=mutant.backward())
    assert (expected is None) == report.ok
    assert report.root_cause == expected


FAST_SUBSET = ["no-activation-derivative", "transposed-weight", "skip-overwritten", "bias-not-summed", "tiny-scale"]


def test_a_fast_subset_of_mutants_is_killed_with_the_right_root_cause_by_random_search():
    result = run_selftest(examples=100, mutants=[MUTANTS[n] for n in FAST_SUBSET])
    for r in result.mutants:
        assert r.killed, r.name
        assert r.right_layer, (r.name, r.first_blamed, r.first_expected, r.blamed, r.expected)
    assert result.summary_lines() == ["kill rate: 100.0% (5/5)", "root-cause accuracy: 100.0% (5/5)"]


def test_the_selftest_command_ends_with_the_two_summary_lines_and_exits_0(capsys):
    assert main(["selftest", "--only", "sign-flip,loss-gradient-sign", "--examples", "20"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == ["kill rate: 100.0% (2/2)", "root-cause accuracy: 100.0% (2/2)"]


def test_an_unknown_planted_bug_is_a_usage_error(capsys):
    assert main(["selftest", "--only", "no-such-bug"]) == 2
    assert "no-such-bug" in capsys.readouterr().err
