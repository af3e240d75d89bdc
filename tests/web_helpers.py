"""Builders for the tests of the app (app.py, Streamlit) and the API
(serve.py, index.html): synthetic uploads, a model root with thresholds, a
server in a thread, and the browser the page tests drive.

The model is a tiny random ResNet-18 on 2-s windows (helpers.tiny_checkpoint):
these tests check the app and the API, not the model's accuracy.
"""
import io
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import uvicorn
from helpers import tiny_checkpoint

import records
import serve
import synthetic
import utils
from records import uploads
from resnet import probabilities
from utils import CLASSES

WINDOW = 1000            # 2 s: cheap to score and explain
RUN = 'TINY-all-s42-f7'
TOKEN = 'test-token-0123456789abcdef'
CHROMIUM = os.environ.get('ECG_CHROMIUM', '/usr/bin/chromium')
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']


# --------------------------------------------------------------------------
# Uploads.

def record_files(name, cls='RBBB', seconds=6.0, seed=5):
    """A synthetic record (synthetic.make_record) as upload tuples keyed by
    suffix: {'hea': ('<name>.hea', bytes), 'mat': ('<name>.mat', bytes)}."""
    rec = synthetic.make_record(seed, CLASSES.index(cls), duration=seconds, classes=[cls])
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write_record(rec, tmp, name)
        return {s: (f'{name}.{s}', (Path(tmp) / f'{name}.{s}').read_bytes())
                for s in ('hea', 'mat')}


def record_upload(name, cls='RBBB', seconds=4.0, seed=5):
    """The same record as the list [(file name, bytes)] a form posts; 4 s by
    default, since the API tests post many."""
    return list(record_files(name, cls, seconds, seed).values())


def zip_of(members):
    """[(member name, bytes)] -> the bytes of a deflated zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def lying_zip(entries=20_000):
    """A ~1 MB zip whose central directory holds `entries` entries (one small
    member's entry, repeated) while its end record claims 1 (issue 28)."""
    one = zip_of([('x.dat', b'\0' * 16)])
    end = one.rfind(b'PK\x05\x06')
    _, _, _, _, _, cd_size, cd_at, _ = struct.unpack('<4s4H2LH', one[end:end + 22])
    cd = one[cd_at:cd_at + cd_size] * entries
    tail = struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, 1, 1, len(cd), cd_at, 0)
    return one[:cd_at] + cd + tail


def bad_utf8_zip(good):
    """A zip of the upload tuples `good` plus one member whose name sets the
    UTF-8 flag without being UTF-8."""
    data = bytearray(zip_of(list(good) + [('BADNAME.dat', b'\0' * 16)]))
    for sig, flag_at, name_at in ((b'PK\x03\x04', 6, 30), (b'PK\x01\x02', 8, 46)):
        pos = data.find(sig + b'', 0)
        while pos >= 0:
            if data[pos + name_at:pos + name_at + 7] == b'BADNAME':
                flags, = struct.unpack_from('<H', data, pos + flag_at)
                struct.pack_into('<H', data, pos + flag_at, flags | 0x800)
                data[pos + name_at:pos + name_at + 2] = b'\xff\xfe'
            pos = data.find(sig, pos + 4)
    return bytes(data)


# --------------------------------------------------------------------------
# The app under streamlit's AppTest.

def upload(app, files):
    """Set the app's file uploader to `files` [(name, bytes)] and rerun it."""
    app.file_uploader[0].set_value([(n, b, 'application/octet-stream') for n, b in files])
    app.run()
    assert not app.exception, app.exception
    return app


def errors(app):
    """The texts of the app's st.error boxes."""
    return [e.value for e in app.error]


# --------------------------------------------------------------------------
# The API.

def make_root(root):
    """models/TINY.../best.pt and results/TINY.../thresholds.json: each
    class's threshold is the model's score on a reference record, so that
    some classes are present on others."""
    model, path = tiny_checkpoint(root, RUN, WINDOW)
    recs, _ = uploads.load_uploads(record_upload('REF', 'SNR', seed=9), records.LEADS, WINDOW)
    th = probabilities(model, recs[0].x[None])[0]
    utils.atomic_write_json({'thresholds': dict(zip(CLASSES, map(float, th))),
                             'tuned_on': 'validation fold [3]'},
                            root / 'results' / RUN / 'thresholds.json')
    return path


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(root, extra=(), token=True):
    """A uvicorn server in a thread -> (url, service, stop)."""
    argv = ['--root', str(root), '--model-path', str(root / 'models' / RUN / 'best.pt'),
            '--audit-db', str(root / 'audit.sqlite3'), '--backend', 'torch', *extra]
    if token:
        (root / 'tokens.txt').write_text(f'# test\n{TOKEN}\n')
        argv += ['--token-file', str(root / 'tokens.txt')]
    cfg = serve.config(serve.get_args_parser().parse_args(argv))
    wrapped, app = serve.create_app(cfg)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(wrapped, host='127.0.0.1', port=port,
                                           log_level='warning', **serve.UVICORN))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f'http://127.0.0.1:{port}'
    for _ in range(300):  # model load: ~1-5 s
        try:
            if httpx.get(f'{url}/readyz', timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError('the test server did not get ready in 30 s')

    def stop():
        server.should_exit = True
        thread.join(10)
        app.state.svc.close()
    return url, app.state.svc, stop


# --------------------------------------------------------------------------
# A real browser.

def need_browser():
    """Skip when Playwright or Chromium is missing; fail instead under
    ECG_REQUIRE_BROWSER=1 (.ci/run sets it), where a skip would hide that
    the browser tests did not run."""
    why = None
    try:
        import playwright.sync_api  # noqa: F401 (only whether it imports)
    except ImportError:
        why = 'playwright is not installed (pip install -r requirements-dev.txt)'
    if why is None and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        why = f'no Chromium at {CHROMIUM} (apt-get install chromium)'
    if why:
        if os.environ.get('ECG_REQUIRE_BROWSER') == '1':
            pytest.fail(f'ECG_REQUIRE_BROWSER=1 but {why}')
        pytest.skip(why)
