"""End to end in headless Chromium: `streamlit run app/leaderboard.py` on localhost, every page visited
through its deep link, no Streamlit exception (or error box) allowed on any page, a screenshot of each.

Needs the Debian packages chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver);
skipped with the reason when they are missing. Screenshots go to the test's tmp dir and are copied to
/tmp/harness-screenshots.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from harness.synthetic import synthetic_store

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path("/tmp/harness-screenshots")
WIDTH = 1440

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        f"headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install -y chromium chromium-driver",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from test_app import (  # noqa: E402
    HOSTILE,
    HOSTILE_MODEL,
    HOSTILE_REFERENCE_MODEL,
    LIMITED_MODEL,
    LM_TASKS,
    build_zoo_store,
    ingest_hostile,
)

from harness.trust import TIERS  # noqa: E402

#: (screenshot name, path and query string): every page, through the deep links users share
VISITS = (
    ("01-leaderboard-calib", "/?task=calib"),
    ("02-leaderboard-ood-paired", "/?task=ood"),
    ("03-leaderboard-fpr95-fallback", "/?task=ood&metric=fpr95.energy.mean"),
    ("04-leaderboard-lm-filtered", "/?task=synth_blimp&family=synth-gpt"),
    ("05-leaderboard-mean-rank", "/?view=Mean+rank+across+tasks"),
    ("06-model-calib-reliability", f"/model?model={LIMITED_MODEL}&task=calib"),
    ("07-model-ood-roc", f"/model?model={LIMITED_MODEL}&task=ood"),
    ("08-model-longtail-per-class", "/model?model=harness-zoo/digits-lt100-mlp-none&task=longtail"),
    ("09-model-compressed-variant", "/model?model=synth/synth-gpt-00025-int4&task=compression"),
    ("10-correlations-loss-downstream", "/correlations?x=lm_loss/loss_nats&y=synth_blimp/lm_eval.acc"),
    ("11-correlations-parameters", "/correlations?x=card.n_parameters&y=synth_mc/lm_eval.acc&logx=true"),
    ("12-compression", "/compression?reference=synth/synth-gpt-00025&quality=synth_mc/lm_eval.acc"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def store(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits zoo evaluated for real, plus synthetic language-model and compression results, plus
    hostile submissions (links, images, HTML and LaTeX in every text field)."""
    path = build_zoo_store(tiny_zoo, tmp_path_factory.mktemp("browser-store"))
    synthetic_store(path, 40, 0, seed=1, bootstrap_values=200, task_names=LM_TASKS, bulk=True, replace=False)
    return ingest_hostile(path)


@pytest.fixture(scope="module")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "leaderboard.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--", "--store", str(store),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--window-size={WIDTH},1000", "--hide-scrollbars",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until_rendered(driver: Any, timeout: float = 90) -> None:
    """The script has finished (stApp's script state), the page has its title, and charts have drawn."""

    def done(d: Any) -> bool:
        apps = d.find_elements(By.CSS_SELECTOR, '[data-testid="stApp"]')
        return (
            bool(apps)
            and apps[0].get_attribute("data-test-script-state") == "notRunning"
            and bool(
                d.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] h1')
                or d.find_elements(By.CSS_SELECTOR, '[data-testid="stException"], [data-testid="stAlertContentError"]')
            )
        )

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(done)
    time.sleep(1.5)  # plotly draws after the script run ends


def full_page_screenshot(driver: Any, path: Path) -> None:
    """Grow the window to the page's content height (Streamlit scrolls inside stMain), then capture."""
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]');"
        "return Math.max(document.body.scrollHeight, m ? m.scrollHeight : 0);"
    )
    driver.set_window_size(WIDTH, min(max(int(height) + 40, 900), 7000))
    time.sleep(0.8)
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 1000)


def test_every_page_renders_without_exceptions_in_chromium(server: str, browser: Any, tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, path in VISITS:
        browser.get(server + path)
        wait_until_rendered(browser)
        exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
        shot = tmp_path / f"{name}.png"
        full_page_screenshot(browser, shot)
        shutil.copy(shot, SCREENSHOTS / shot.name)
        for element in exceptions + errors:
            problems.append(f"{path}: {element.text[:500]}")
        title = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMain"] h1')
        assert title, f"{path}: no page title"
    assert not problems, "\n".join(problems)


def test_deep_links_select_the_task_and_model(server: str, browser: Any) -> None:
    browser.get(server + "/?task=ood&metric=fpr95.energy.mean")
    wait_until_rendered(browser)
    text = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert "ood · fpr95.energy.mean" in text and "lower is better" in text
    browser.get(server + f"/model?model={LIMITED_MODEL}&task=ood")
    wait_until_rendered(browser)
    text = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text
    assert LIMITED_MODEL in text and "never ranked" in text  # table cells are drawn on a canvas
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')


#: pages that show the hostile submissions' text (card, provenance, metric name, reference)
HOSTILE_PAGES = (
    f"/model?model={HOSTILE_MODEL}&task=calib",
    f"/model?model={HOSTILE_REFERENCE_MODEL}",
    "/?" + urlencode({"task": "calib", "metric": HOSTILE}),
    "/?" + urlencode({"task": "calib", "tier": list(TIERS)}, doseq=True),
    "/compression?" + urlencode({"reference": HOSTILE}),
)
#: links or resources leaving the app, inline event handlers, and LaTeX, in the rendered page
ACTIVE_CONTENT = """
const main = document.querySelector('[data-testid="stMain"]');
const found = [];
for (const element of main.querySelectorAll('*')) {
  for (const attribute of element.attributes) {
    const name = attribute.name.toLowerCase();
    if (name.startsWith('on')) found.push(`${element.tagName} ${name}`);
    if (['href', 'xlink:href', 'src', 'srcset', 'action', 'formaction'].includes(name)) {
      let url;
      try { url = new URL(attribute.value, location.href); } catch (error) { continue; }
      if (!['data:', 'blob:'].includes(url.protocol) && url.host !== location.host) {
        found.push(`${element.tagName} ${name}=${attribute.value}`);
      }
    }
  }
}
for (const element of main.querySelectorAll('.katex, img')) found.push(element.outerHTML.slice(0, 120));
return found;
"""


def test_submitted_text_renders_as_text_in_chromium(server: str, browser: Any) -> None:
    """What Streamlit's renderer makes of the escaped text: no link away from the app, no image, no
    HTML, no LaTeX; the submitted characters themselves are on the page."""
    for path in HOSTILE_PAGES:
        browser.get(server + path)
        wait_until_rendered(browser)
        assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), path
        assert browser.execute_script(ACTIVE_CONTENT) == [], path
    browser.get(server + HOSTILE_PAGES[0])
    wait_until_rendered(browser)
    text = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]').text.replace("\u2060", "")
    assert " ".join(HOSTILE.split()) in text  # the description, character for character
