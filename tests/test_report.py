"""The static report: built from a run, opened in a real browser (headless Chromium) over a local
HTTP server, every link and image followed, no console error, every page with its heading."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pandas as pd
import pytest

from respine_nb import config, report, results

EXE = str(Path(sys.executable).parent / "respine-nb")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    data = tmp / "data"
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    subprocess.run(
        [EXE, "generate", "--seed", "3", "--n-msc", "25", "--n-sham", "25", "--out", str(data)],
        check=True,
        capture_output=True,
        env=env,
    )  # with MANIFEST.json: the report says synthetic
    out = tmp / "out"
    proc = subprocess.run(
        [
            EXE,
            "run",
            "--data",
            str(data),
            "--out",
            str(out),
            "--only",
            "01_cohort",
            "02_primary_endpoint",
            "-p",
            "n_imputations",
            "5",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([EXE, "report", "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_report_tree_and_headline(run_out):
    rep = run_out / "report"
    assert (rep / "index.html").is_file() and (rep / "results.csv").is_file()
    for name in ("01_cohort", "02_primary_endpoint"):
        full = (rep / "notebooks" / f"{name}.html").read_text()
        bare = (rep / "notebooks" / f"{name}-no-code.html").read_text()
        assert "<script" not in full and "<script" not in bare  # no JS, nothing fetched from a CDN
        assert 'class="jp-CodeMirrorEditor' in full and 'class="jp-CodeMirrorEditor' not in bare  # the variant without code
    index = (rep / "index.html").read_text()
    assert "Synthetic data." in index and "Headline results" in index and "sha256" in index
    head = report.headline(results.read(run_out / "derived" / "results.csv"))
    resp = head[head["result"].str.startswith("Responders")]
    assert len(resp) == 2 and resp["estimate [95 % CI]"].str.match(r"^\d+% \[\d+, \d+\]$").all()


def test_report_of_missing_run_is_a_clear_error(tmp_path):
    proc = subprocess.run([EXE, "report", "--out", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert proc.returncode == 2 and "run `respine-nb run` first" in proc.stderr


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="Debian chromium + chromium-driver not installed and not installable here "
    "(scripts/ensure-chromium.sh, run by `make test`, installs them where it can)",
)
def test_report_in_a_real_browser(run_out):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    server = _serve(run_out / "report")
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={run_out / 'chromium-profile'}",
        "--window-size=1280,1600",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(base + "index.html")
        assert driver.find_element(By.TAG_NAME, "h1").text.startswith("RESPINE")
        driver.save_screenshot(str(run_out / "report-index-screenshot.png"))  # kept as a test artifact
        pages = {base + "index.html"}
        links = {urljoin(base, a.get_attribute("href")) for a in driver.find_elements(By.TAG_NAME, "a")}
        problems = []
        for url in sorted(links):
            parsed = urlparse(url)
            assert parsed.netloc == urlparse(base).netloc, f"external link in the report: {url}"
            with urllib.request.urlopen(url) as resp:  # every link answers 200
                if resp.status != 200:
                    problems.append(f"{url}: HTTP {resp.status}")
            if url.endswith(".html"):
                pages.add(url.split("#")[0])
        for page in sorted(pages):
            driver.get(page)
            h1 = driver.find_elements(By.TAG_NAME, "h1")
            if not h1 or not h1[0].text.strip():
                problems.append(f"{page}: no heading")
            broken = driver.execute_script(
                "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
            )
            problems += [f"{page}: broken image {src[:80]}" for src in broken]
            for entry in driver.get_log("browser"):
                if entry["level"] in ("SEVERE", "ERROR"):
                    problems.append(f"{page}: console {entry['level']}: {entry['message'][:200]}")
        assert len(pages) >= 5
        assert not problems, "\n".join(problems)
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        shutil.rmtree(run_out / "chromium-profile", ignore_errors=True)
    assert (run_out / "report-index-screenshot.png").stat().st_size > 10_000


def test_headline_ids_are_registered(monkeypatch):
    report.check_headline()  # every id of the headline table is in the analysis registry
    registered = set(results.registry()["analysis_id"])
    assert {aid for aid, _, _ in report.HEADLINE} <= registered
    bogus = (*report.HEADLINE, ("primary.not_an_analysis", "Nothing", "mean"))
    with pytest.raises(ValueError, match="primary.not_an_analysis"):
        report.check_headline(bogus)
    monkeypatch.setattr(report, "HEADLINE", bogus)
    with pytest.raises(ValueError, match="not in the registry"):
        report.headline(pd.DataFrame(columns=results.COLUMNS))
