"""app.py in a real browser, end to end: `streamlit run app.py` on a free port,
Playwright driving Debian's Chromium (Playwright cannot download its own
browser here, so it is launched by path).

Uploads ../shared/data/cpsc2018_wfdb/A0001 (a synthetic record without
../shared), waits for the diagnosis, opens the explanation, switches to Arabic
and checks the layout's computed direction is rtl, downloads the PDF report,
checks no request left localhost, and saves screenshots (into
$ECG_APP_SCREENSHOTS when set, else the test's tmp folder). The model is a
tiny random one (the fixture tiny_root, conftest.py), or the models/ of
$ECG_APP_ROOT.

Skips when Chromium or Playwright is missing, unless ECG_REQUIRE_BROWSER=1
(.ci/run sets it), which turns the skip into a failure.
"""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from web_helpers import CHROMIUM, FLAGS, free_port, need_browser, record_files

import utils

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 90_000


@pytest.fixture
def server(tiny_root):
    need_browser()
    root = Path(os.environ.get('ECG_APP_ROOT') or tiny_root)  # e.g. a demo run, for the README
    port = free_port()
    log = open(tiny_root / f'streamlit-{port}.log', 'w')
    proc = subprocess.Popen(
        [sys.executable, '-m', 'streamlit', 'run', 'app.py', '--server.port', str(port),
         '--server.headless', 'true', '--', '--root', str(root)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://localhost:{port}'
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f'{url}/_stcore/health', timeout=1).read() == b'ok':
                    break
            except OSError:
                time.sleep(0.5)
            if proc.poll() is not None:
                break
        else:
            pytest.fail('streamlit did not start in 60 s')
        if proc.poll() is not None:
            pytest.fail(f'streamlit exited: {(tiny_root / f"streamlit-{port}.log").read_text()}')
        yield url
    finally:
        utils.stop_process(proc, 10)
        log.close()


def record_paths(tmp_path):
    """A0001 of ../shared, a synthetic A0001 without it, or the files of the
    record $ECG_APP_RECORD (a path without suffix; for the README's screenshots)."""
    if os.environ.get('ECG_APP_RECORD'):
        base = Path(os.environ['ECG_APP_RECORD'])
        return sorted(base.parent.glob(base.name + '.*'))
    shared = ROOT.parent / 'shared' / 'data' / 'cpsc2018_wfdb'
    if (shared / 'A0001.hea').is_file():
        return [shared / 'A0001.hea', shared / 'A0001.mat']
    out = []
    for name, data in record_files('A0001', cls='RBBB', seconds=12).values():
        (tmp_path / name).write_bytes(data)
        out.append(tmp_path / name)
    return out


def shoot(page, path, height=2600):
    """Streamlit scrolls inside its own container, so full_page sees one
    screen: make the window tall, shoot from the top, then restore it."""
    size = page.viewport_size
    page.set_viewport_size({'width': size['width'], 'height': height})
    page.evaluate('document.querySelector(\'[data-testid="stMain"]\')?.scrollTo(0, 0)')
    page.wait_for_timeout(1500)  # plots re-layout to the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


@pytest.mark.slow
def test_upload_diagnose_explain_arabic_pdf(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    shots = Path(os.environ.get('ECG_APP_SCREENSHOTS') or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    hosts = set()
    expect.set_options(timeout=WAIT_MS)  # the first page loads torch and the model
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000},
                                accept_downloads=True)
        page.on('request', lambda r: hosts.add(urlparse(r.url).hostname or r.url[:5]))
        page.set_default_timeout(WAIT_MS)
        page.goto(server)
        expect(page.get_by_text('ECG diagnosis').first).to_be_visible()
        paths = record_paths(tmp_path)
        name = paths[0].stem
        page.locator('input[type=file]').set_input_files([str(p) for p in paths])
        expect(page.get_by_role('heading', name='Diagnosis')).to_be_visible()
        expect(page.get_by_text(f'{name} ·').first).to_be_visible()
        page.get_by_role('button', name='Explain').click()
        expect(page.get_by_text('Explained in').first).to_be_visible()
        expect(page.locator('[data-testid="stImage"] img').first).to_be_visible()
        shoot(page, shots / 'app-en.png')

        page.get_by_text('العربية').click()
        expect(page.get_by_text('تشخيص تخطيط القلب').first).to_be_visible()
        # the rerun replaces the page's elements one by one: wait for the style
        page.wait_for_function('getComputedStyle(document.querySelector('
                               '\'[data-testid="stAppViewContainer"]\')).direction == "rtl"')
        direction = page.evaluate('getComputedStyle(document.querySelector('
                                  '\'[data-testid="stAppViewContainer"]\')).direction')
        assert direction == 'rtl'
        expect(page.locator('[data-testid="stImage"] img').first).to_be_visible()
        shoot(page, shots / 'app-ar.png')
        with page.expect_download() as dl:
            page.get_by_role('button', name='تنزيل التقرير (PDF)').click()
        pdf = Path(dl.value.path()).read_bytes()
        browser.close()
    assert pdf.startswith(b'%PDF-') and name.encode() in pdf
    assert hosts <= {'localhost', '127.0.0.1', 'data:', 'blob:'}, hosts
    assert (shots / 'app-en.png').stat().st_size > 10_000
