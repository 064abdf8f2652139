"""End to end in headless Chromium: `streamlit run app/leaderboard.py` on localhost, every page visited
through its deep link, no Streamlit exception (or error box) allowed on any page, a screenshot of each.

The window is 1280 x 800: no table may be wider than its frame (cut columns) or scroll inside a fixed
height (hidden rows). The first visit of the fresh server is a deep link (the same-loss view on the
Correlations page), which must get the app's navigation and wide layout. Model buttons open the model
page in the same tab; no link opens a new one.

Needs the Debian packages chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver);
skipped with the reason when they are missing. Screenshots go to the test's tmp dir and are copied to
/tmp/harness-screenshots (or $HARNESS_SCREENSHOTS).
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
SCREENSHOTS = Path(os.environ.get("HARNESS_SCREENSHOTS", "/tmp/harness-screenshots"))
WIDTH, HEIGHT = 1280, 800

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        f"headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install -y chromium chromium-driver",
        allow_module_level=True,
    )

from same_loss_store import FAMILY, add_same_loss_family  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
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
    ("00-correlations-same-loss-default", "/correlations"),  # first: a fresh server's first request is a deep link
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
    ("13-correlations-same-loss-ci-rule", f"/correlations?sl_family={FAMILY}&sl_rule=ci"),
    (
        "14-correlations-series",
        f"/correlations?runs={FAMILY}-adam-b0&runs={FAMILY}-sgd-b1&series_metric=synth_mc/lm_eval.acc",
    ),
    ("15-model-checkpoint-series", f"/model?model=synth/{FAMILY}-adam-b0-step3000&task=lm_loss"),
    ("16-leaderboard-ood-sets", "/?task=ood&details=true"),
    ("17-leaderboard-compression-by-reference", "/?task=compression"),
    ("18-leaderboard-paginated", "/?task=lm_loss&page=2"),
    ("19-tasks-ood", "/tasks?task=ood"),
    ("20-ladder", "/ladder?task=calib"),
    ("21-invalid-link", "/?task=no-such-task&tier=bogus"),
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
    add_same_loss_family(path)
    return ingest_hostile(path)


@pytest.fixture(scope="module")
def server(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    command = [
        sys.executable, str(ROOT / "app" / "server.py"), "run", str(ROOT / "app" / "leaderboard.py"),
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
        f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars",
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
    driver.set_window_size(WIDTH, min(max(int(height) + 40, HEIGHT), 9000))
    time.sleep(0.8)
    driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, HEIGHT)
    time.sleep(0.5)


#: per table: its frame's inner width and height against what the grid needs (glide's scroller)
TABLE_FIT = """
return Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')).map(t => {
  const s = t.querySelector('.dvn-scroller');
  return s ? {client_w: s.clientWidth, scroll_w: s.scrollWidth, client_h: s.clientHeight, scroll_h: s.scrollHeight} : null;
}).filter(x => x !== null);
"""


def table_problems(driver: Any, path: str) -> list[str]:
    """Tables wider than their frame at this window width (cut columns) or taller (rows behind a scroll box)."""
    problems = []
    for i, fit in enumerate(driver.execute_script(TABLE_FIT)):
        if fit["scroll_w"] > fit["client_w"] + 1:
            problems.append(f"{path}: table {i} is {fit['scroll_w']}px wide in a {fit['client_w']}px frame")
        if fit["scroll_h"] > fit["client_h"] + 1:
            problems.append(f"{path}: table {i} scrolls: {fit['scroll_h']}px of rows in a {fit['client_h']}px box")
    return problems


def test_every_page_renders_without_exceptions_in_chromium(server: str, browser: Any, tmp_path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, path in VISITS:
        browser.get(server + path)
        wait_until_rendered(browser)
        exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
        if "details=true" not in path:  # More columns asks for a table wider than the screen
            problems += table_problems(browser, path)  # at 1280 x 800
        nav = browser.find_element(By.CSS_SELECTOR, '[data-testid="stTopNav"]').text
        if "Overfitting guard" not in nav:  # the app's own navigation (not a bare page run without it)
            problems.append(f"{path}: the navigation shows {nav!r}, not the app's pages")
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


def test_the_same_loss_view_is_what_a_visitor_of_the_correlations_page_sees(server: str, browser: Any) -> None:
    browser.get(server + "/correlations")
    wait_until_rendered(browser)
    main = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"]')
    text = main.text
    assert "Same loss, different downstream?" in text and FAMILY in text
    assert "Partial correlation of downstream and flatness given loss" in text
    # Every parameter, defaults included, is in the address bar: the link to share.
    for key in ("sl_family", "sl_loss", "sl_rule", "sl_nats", "downstream", "flatness", "tier", "x", "y"):
        assert f"{key}=" in browser.current_url, (key, browser.current_url)
    charts = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
    assert len(charts) >= 3
    # No text labels on the scatter points (names on hover, the table lists them).
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .scatterlayer .textpoint')


def test_a_model_button_opens_the_model_page_in_the_same_tab(server: str, browser: Any) -> None:
    browser.get(server + "/?task=synth_mc")
    wait_until_rendered(browser)
    assert not browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=stMain] a[target=_blank]')).map(a => a.href)"
    )
    tabs = browser.window_handles
    grid = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] [data-testid="stDataFrame"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", grid)
    time.sleep(1)
    box = grid.rect
    for x in range(90, 480, 25):  # along the fifth row until the model column's button is hit
        actions = ActionBuilder(browser)
        actions.pointer_action.move_to_location(int(box["x"] + x), int(box["y"] + 35 * 5 + 17)).click()
        actions.perform()
        time.sleep(1.5)
        if "/model?" in browser.current_url:
            break
    assert "/model?" in browser.current_url and "task=synth_mc" in browser.current_url, browser.current_url
    assert browser.window_handles == tabs  # the same tab (and session), no new one
    wait_until_rendered(browser)
    header = browser.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] h2').text
    assert header.startswith("synth/")
