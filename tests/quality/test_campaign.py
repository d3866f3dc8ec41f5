"""The false-alarm campaign: the correct reference on random networks with drawn values (exact
zeros, kinks), float64 and float32 mixed, never gives `fail`.

The full campaign is 10 chunks of 1,000 networks, each chunk its own seed, so that
`pytest -m slow -n 2` spreads them over workers and gives the same verdicts as a serial run.
"""

import pytest

from verifier.campaign import run_campaign
from verifier.cli import main

DRAWN = {"values": "drawn", "max_width": 8}


def _assert_quiet(result, networks):
    assert result.networks == networks, result.failing_report and result.failing_report.to_markdown()
    assert result.ok and result.network_verdicts["fail"] == 0 and result.network_verdicts["error"] == 0


def test_a_few_hundred_drawn_networks_in_both_dtypes_raise_no_false_alarm():
    _assert_quiet(run_campaign(200, seed=101, dtype="both", network_options=DRAWN), 200)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(10))
def test_ten_thousand_drawn_networks_raise_no_false_alarm(chunk, record_property):
    result = run_campaign(1000, seed=1000 + chunk, dtype="both", network_options=DRAWN)
    record_property("network_verdicts", result.network_verdicts)
    record_property("elapsed_s", result.elapsed)
    _assert_quiet(result, 1000)


def test_the_same_seed_gives_the_same_verdicts():
    a = run_campaign(30, seed=5, dtype="both", network_options=DRAWN)
    b = run_campaign(30, seed=5, dtype="both", network_options=DRAWN)
    assert a.network_verdicts == b.network_verdicts and a.params == b.params


def test_the_campaign_command_ends_with_its_summary_line(tmp_path, capsys):
    assert main(["campaign", "--examples", "20", "--report-dir", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("campaign: 20 networks, 0 fail, ") and " error in " in last
    assert (tmp_path / "latest.html").exists()


def test_a_planted_bug_makes_the_campaign_fail():
    result = run_campaign(50, seed=3, dtype="both", network_options=DRAWN, backward="sign-flip")
    assert not result.ok and result.network_verdicts["fail"] >= 1
