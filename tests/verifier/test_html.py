"""The HTML report: one self-contained page, both figures inline, every user name escaped."""

import copy
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.verifier.sample_reports import NET
from verifier import html
from verifier.campaign import CampaignResult
from verifier.strategies import Case

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def failing_page(failing):
    return html.report_html(failing, replay=["verify-grads replay reports/latest.json"])


def external_references(page):
    """Everything in the page that would load something from elsewhere, or run code."""
    found = re.findall(r"<script|<link|<iframe|<img|<object|<embed|\bsrc\s*=|@import|url\((?!#)", page, re.IGNORECASE)
    found += [h for h in re.findall(r'href\s*=\s*"([^"]*)"', page) if not h.startswith("#")]
    return found


def test_a_report_page_is_self_contained_with_two_inline_figures(failing_page):
    assert failing_page.startswith("<!DOCTYPE html>") and failing_page.rstrip().endswith("</html>")
    assert external_references(failing_page) == []
    assert failing_page.count("<svg") == 2 and "<?xml" not in failing_page and "<!DOCTYPE svg" not in failing_page


def test_the_page_names_verdict_root_cause_worst_entries_and_the_replay_command(failing, failing_page):
    assert "verdict v-fail" in failing_page and "<code>layer1</code>" in failing_page
    assert "Worst entries" in failing_page and "verify-grads replay reports/latest.json" in failing_page
    worst = failing_page.split("<h2>Worst entries</h2>", 1)[1].split("</table>", 1)[0]
    first_row = worst.split("<tr>")[2]
    assert "<code>layer1." in first_row  # the entry farthest over its tolerance leads


def test_a_layer_named_like_a_script_tag_is_escaped_everywhere(failing):
    report = copy.deepcopy(failing)
    layer = report.layers[0]
    layer.name = SCRIPT
    for p in layer.params:
        p.layer = SCRIPT
        p.path = f"{SCRIPT}.{p.path}"
        p.explanation = SCRIPT
    report.notes.append(SCRIPT)
    report.meta["backward"] = SCRIPT
    page = html.report_html(report, replay=[f"verify-grads replay '{SCRIPT}.json'"])
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert external_references(page) == []


def test_a_pytree_key_with_a_script_tag_checked_by_check_grads_is_escaped_in_the_page():
    import verifier.check

    if not hasattr(verifier.check, "check_grads"):
        pytest.skip("verifier.check.check_grads is not available yet")
    x = np.random.default_rng(3).normal(size=(4, 2))

    def loss(p):
        return float(np.sum(np.tanh(x @ p[SCRIPT]["w"]) ** 2))

    def grad(p):
        h = np.tanh(x @ p[SCRIPT]["w"])
        return {SCRIPT: {"w": x.T @ (2 * h * (1 - h**2))}}

    report = verifier.check.check_grads(loss, {SCRIPT: {"w": np.ones((2, 3))}}, grad)
    assert report.ok and report.layers[0].name == SCRIPT
    page = html.report_html(report)
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<svg") == 2 and external_references(page) == []


def test_names_that_look_like_math_are_drawn_as_they_are(passing):
    report = copy.deepcopy(passing)
    report.layers[1].name = r"cost $\frac{a}{b$ {}"
    report.layers[1].params[0].path = "$x$"
    page = html.report_html(report)
    assert page.count("<svg") == 2 and "cost $\\frac{a}{b$ {}" in page


def test_the_same_report_gives_the_same_page(failing, failing_page):
    assert html.report_html(failing, replay=["verify-grads replay reports/latest.json"]) == failing_page


def test_in_the_error_plot_only_the_failing_arrays_rise_above_the_tolerance(failing):
    hand = [("hand-written", "jax"), ("hand-written", "finite-differences")]
    for layer in failing.layers:
        for p in layer.params:
            column = html._param_column(p)
            above = [key for key in hand if column.ratio[key] is not None and column.ratio[key] > 1]
            assert bool(above) == (p.verdict.value == "fail"), p.path
            assert column.ratio[("jax", "finite-differences")] <= 1  # the two oracles agree


def _arrows_and_boxes(svg):
    return svg.count('id="patch_')


def test_the_network_is_drawn_with_its_skip_edges(passing):
    with_spec = html._network_plot(passing)
    chain = copy.deepcopy(passing)
    del chain.meta["network"]  # a report of a user's pytree: its layers in order, no skip edges known
    assert _arrows_and_boxes(with_spec) == _arrows_and_boxes(html._network_plot(chain)) + 1  # one skip edge: 1 -> 3


def test_a_campaign_page_shows_the_minimal_failing_network_only_when_there_is_one(passing, failing):
    result = CampaignResult(2, 0, "float64", "auto", "auto", backward="skip-overwritten")
    result.networks = 2
    result.record(passing)
    ok_page = html.campaign_html(result, replay=["verify-grads --examples 2"])
    assert "all gradients agree" in ok_page and "Minimal failing network" not in ok_page
    assert ok_page.count("<svg") == 1 and external_references(ok_page) == []

    result.record(failing)
    result.failing_case, result.failing_report = Case(NET, 0, 0, 3), failing
    page = html.campaign_html(result, replay=["verify-grads replay reports/latest.json"])
    assert "DISCREPANCY" in page and "Minimal failing network" in page and page.count("<svg") == 3
    assert "<code>skip-overwritten</code>" in page and external_references(page) == []


def test_importing_the_report_modules_does_not_import_matplotlib():
    probe = "import sys, verifier.html, verifier.report, verifier.cli; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
