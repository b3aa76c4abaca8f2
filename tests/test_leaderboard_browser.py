"""The self-contained HTML leaderboard in a real headless Chromium (Debian's `chromium`, driven by Playwright):
sorting by a column header, filtering by domain, and a screenshot kept in test-artifacts/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from zoo.leaderboard import BenchResult, TaskScore, query, record, render

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def chromium() -> str:
    """The system Chromium: $ZOO_CHROMIUM or `chromium` on PATH. Missing: fails under CI=true (.ci/run installs
    Debian's chromium), skips on a developer machine without it."""
    found = os.environ.get("ZOO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium executable (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium executable on PATH")
    return found


def _results() -> list[BenchResult]:
    bio = [("bert-a", 0.70, 0.50), ("bert-b", 0.90, 0.40), ("bert-c", 0.60, 0.80), ("bert-d", 0.80, 0.55)]
    out = [
        BenchResult(
            "biomedical",
            model,
            [
                TaskScore("ncbi_disease", "f1", f1, is_primary=True),
                TaskScore("pubmedqa", "accuracy", acc, is_primary=True),
            ],
            run_id=model,
            total_params=1000 * (i + 1),
        )  # fmt: skip
        for i, (model, f1, acc) in enumerate(bio)
    ]
    out += [
        BenchResult("genomic", m, [TaskScore("gue_prom_core_all", "mcc", v, is_primary=True)], run_id=m)
        for m, v in (("dna-x", 0.3), ("dna-y", 0.5))
    ]
    return out


def test_html_leaderboard_sorts_and_filters_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    db = tmp_path / "lb.sqlite"
    for r in _results():
        record(r, db)
    page_file = tmp_path / "board.html"
    page_file.write_text(render(query(db=db), "html"))
    executable = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        bio = page.locator('section.domain[data-domain="biomedical"]')
        models = lambda: bio.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
        # Best average first: b 65, d 67.5, c 70, a 60 → c, d, b, a.
        assert models() == ["bert-c", "bert-d", "bert-b", "bert-a"]
        header = bio.locator("th", has_text="ncbi_disease (f1)")
        header.click()
        assert models() == ["bert-c", "bert-a", "bert-d", "bert-b"]  # f1 ascending
        assert "asc" in (header.get_attribute("class") or "")
        header.click()
        assert models() == ["bert-b", "bert-d", "bert-a", "bert-c"]  # and descending
        bio.locator("th", has_text="Model").click()
        assert models() == ["bert-a", "bert-b", "bert-c", "bert-d"]  # text columns sort as text
        genomic = page.locator('section.domain[data-domain="genomic"]')
        assert bio.is_visible() and genomic.is_visible()
        page.select_option("#domain-filter", "genomic")
        assert genomic.is_visible() and not bio.is_visible()
        assert genomic.locator("tbody tr").count() == 2
        page.select_option("#domain-filter", "")
        assert bio.is_visible() and genomic.is_visible()
        page.select_option("#domain-filter", "biomedical")
        shot = ARTIFACTS / "leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
