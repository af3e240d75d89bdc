"""index.html (served by serve.py at /) in a real browser: Debian's Chromium
driven by Playwright, as tests/test_app_browser.py drives the Streamlit app.

Uploads ../shared/data/cpsc2018_wfdb/A0001 (a synthetic record without
../shared), waits for the diagnosis, asks for the explanation and shades a
class on the tracing, switches to Arabic (dir=rtl), checks that no request
left localhost, and saves screenshots into $ECG_SERVE_SCREENSHOTS when set
(docs/serve-en.png, docs/serve-ar.png come from a run with the demo model:
ECG_SERVE_ROOT=<folder with models/ and results/>), else the test's tmp folder.

Skips when Chromium or Playwright is missing, unless ECG_REQUIRE_BROWSER=1.
"""
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from web_helpers import CHROMIUM, FLAGS, RUN, make_root, need_browser, record_upload, start

from web.app_text import TEXT

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 60_000


@pytest.fixture
def page_server(tmp_path):
    need_browser()
    root = Path(os.environ['ECG_SERVE_ROOT']) if os.environ.get('ECG_SERVE_ROOT') else tmp_path
    if not os.environ.get('ECG_SERVE_ROOT'):
        make_root(root)
    model = next((root / 'models').glob('*/best.pt')) if os.environ.get('ECG_SERVE_ROOT') \
        else root / 'models' / RUN / 'best.pt'
    url, svc, stop = start(root, ['--nsamples', '4', '--model-path', str(model),
                                  '--audit-db', str(tmp_path / 'audit.sqlite3')], token=False)
    yield url
    stop()


def record_paths(tmp_path):
    shared = ROOT.parent / 'shared' / 'data' / 'cpsc2018_wfdb'
    if (shared / 'A0001.hea').is_file():
        return [shared / 'A0001.hea', shared / 'A0001.mat']
    out = []
    for name, data in record_upload('A0001', 'RBBB', seconds=12):
        (tmp_path / name).write_bytes(data)
        out.append(tmp_path / name)
    return out


@pytest.mark.slow
def test_page_upload_diagnose_shade_arabic(page_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    shots = Path(os.environ.get('ECG_SERVE_SCREENSHOTS') or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    hosts = set()
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={'width': 1300, 'height': 1000})
        page.on('request', lambda r: hosts.add(urlparse(r.url).hostname or r.url[:5]))
        blocked = []   # serve.py's Content-Security-Policy must let the page work
        page.on('console', lambda m: blocked.append(m.text)
                if 'Content Security Policy' in m.text else None)
        page.set_default_timeout(WAIT_MS)
        page.goto(page_server)
        expect(page.locator('h1')).to_have_text('ECG diagnosis')
        page.locator('#files').set_input_files([str(x) for x in record_paths(tmp_path)])
        expect(page.locator('#record-line')).to_contain_text('A0001')
        expect(page.locator('#decisions tbody tr')).to_have_count(9)
        diagnosis = page.locator('#diagnoses').inner_text()
        assert diagnosis.strip()
        expect(page.locator('#measurements dd').first).to_be_visible()
        # the interval rows come from the server's one measurement table, in its order
        labels = page.locator('#measurements dt').all_inner_texts()
        wanted = [TEXT[k]['en'] for k in ('meas_pr', 'meas_qrs', 'meas_qt', 'meas_qtc_bazett',
                                          'meas_qtc_fridericia', 'meas_axes')]
        assert [x for x in labels if x in wanted] == wanted, labels
        page.locator('#explain').click()
        expect(page.locator('#highlight-row')).to_be_visible()
        shaded = page.locator('#highlight').input_value()
        assert shaded  # the first explained class is shaded at once
        expect(page.locator('#highlight-note')).to_contain_text('Shaded')
        page.screenshot(path=str(shots / 'serve-en.png'), full_page=True)

        page.get_by_role('radio', name='العربية').click()
        expect(page.locator('h1')).to_have_text('تشخيص تخطيط القلب')
        assert page.evaluate('document.documentElement.dir') == 'rtl'
        assert page.evaluate('getComputedStyle(document.body).direction') == 'rtl'
        page.locator('#highlight').select_option(shaded)
        expect(page.locator('#highlight-note')).not_to_be_empty()
        page.screenshot(path=str(shots / 'serve-ar.png'), full_page=True)
        page.goto(page_server + '/docs')   # its inline script runs by the CSP's hash
        expect(page.locator('#paths h3').first).to_be_visible()
        browser.close()
    assert blocked == [], blocked
    assert hosts <= {'localhost', '127.0.0.1'}, hosts
    assert (shots / 'serve-en.png').stat().st_size > 10_000
