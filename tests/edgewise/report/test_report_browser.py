"""The report in a real headless browser (Debian's chromium): it loads offline, logs no errors, shows the summary."""

import shutil

import pytest

from edgewise.pipeline import run_recipe
from edgewise.recipe import parse_recipe

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
def test_report_loads_in_headless_chromium_without_errors_and_shows_the_summary(tmp_path, digits_mlp):
    chromium = shutil.which("chromium")
    assert chromium, "make test installs Debian's chromium (tools/chromium.sh); or: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    recipe = parse_recipe({"name": "browser", "models": [{
        "zoo": "digits-mlp", "prune": {"criterion": "l1", "rate": 0.3},
        "quantize": {"method": "ecq", "bits": 4, "lambda": 0.1}, "encode": True, "export": {}, "emulate": {},
        "bench": {"targets": ["x86-host", "fantastic4-asic"], "duration_s": 0.1, "iterations": 20}}]})
    report = run_recipe(recipe, tmp_path).reports["html"]

    problems, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        summary = page.locator("section.lead").filter(has=page.locator("h2", has_text="Summary"))
        assert summary.locator("table").is_visible()
        cells = summary.locator("tbody tr").first.locator("td").all_inner_texts()
        first_section = page.locator("h2").first.inner_text()
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        browser.close()
    assert not problems, problems
    assert first_section == "Summary", "the summary comes before everything else"
    assert cells[0] == "digits-mlp" and cells[1].startswith("pruned l1")
    assert images and all(images), "every plot is inlined and decodes"
    assert all(url.startswith(("file:", "data:")) for url in requests), "the report needs no network"
