"""serve.py: the API on synthetic records and real ones from ../shared, its
limits and each fault a client can send (garbage, truncated or huge files,
zip bombs and traversal, 500 files, an XML bomb, a dropped or oversized
body; each followed by a good request that must succeed, and a check that
nothing was written outside the server's temporary folder), auth, the
bounded queue and the audit log.

One real uvicorn server on 127.0.0.1 (a free port, in a thread;
web_helpers.start) with a tiny random ResNet-18 on 2-s windows and
thresholds that make some classes present (web_helpers.make_root): the
tests check the API, not the model's accuracy.
"""
import asyncio
import io
import json
import os
import socket
import sqlite3
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from web_helpers import RUN, TOKEN, WINDOW, record_upload, start

import records
import serve
import shap_values
import utils
from records import uploads
from utils import CLASSES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def root(api_root):
    return api_root


@pytest.fixture(scope='module')
def api(root):
    url, svc, stop = start(root, ['--nsamples', '2'])
    client = httpx.Client(base_url=url, timeout=60,
                          headers={'Authorization': f'Bearer {TOKEN}'})
    yield client, svc
    client.close()
    stop()


def post(client, files, path='/v1/predict', **fields):
    return client.post(path, files=[('files', (n, d)) for n, d in files], data=fields)


def outside():
    """What the server could write to outside its own folder: the system temp
    folder's entries and the checkout's top level."""
    return set(os.listdir(tempfile.gettempdir())) | set(os.listdir(ROOT))


def assert_still_serving(client, svc, before):
    r = post(client, record_upload('GOOD'))
    assert r.status_code == 200, r.text
    assert r.json()['records'][0]['record'] == 'GOOD'
    for _ in range(50):  # the slot is released by the pool's callback
        if svc.busy == 0:
            break
        time.sleep(0.1)
    assert svc.busy == 0
    assert list(Path(svc.tmp).iterdir()) == []   # every request's folder is gone
    assert outside() - before <= {'.pytest_cache'}, outside() - before


# --------------------------------------------------------------------------
# The API.

def test_predict_is_the_one_scoring_path(api, root):
    from resnet import probabilities
    client, svc = api
    files = record_upload('R1', 'RBBB', seconds=5) + record_upload('R2', 'AF', seed=7)
    r = post(client, files, lang='fr')
    assert r.status_code == 200, r.text
    body = r.json()
    assert body['model']['run'] == RUN and len(body['model']['sha256']) == 64
    got = {x['record']: x for x in body['records']}
    recs, _ = uploads.load_uploads(files, records.LEADS, WINDOW)
    want = probabilities(svc.info.model, np.stack([r.x for r in recs]))
    th = json.loads((root / 'results' / RUN / 'thresholds.json').read_text())['thresholds']
    for rec, p in zip(recs, want):
        res = got[rec.name]
        assert [c['code'] for c in res['classes']] == CLASSES
        assert np.allclose([c['probability'] for c in res['classes']], p, atol=1e-6)
        assert [c['threshold'] for c in res['classes']] == pytest.approx([th[c] for c in CLASSES])
        assert res['diagnoses'] == [c for c, v in zip(CLASSES, p) if v >= th[c]]
        assert res['classes'][4]['name'] == 'bloc de branche droit'
        assert res['fs'] == 500 and res['quality'] == 'ok' and res['derived'] == []
        assert res['measurements']['heart_rate']['hr_bpm'] > 30
        assert res['device_measurements'] == {} and res['device_statements'] == []


def test_each_upload_is_read_once(api, monkeypatch):
    """The API reads an upload's record once: the Reading it scores carries
    the Record its file hash, the cart's reading and its segments come from."""
    _, svc = api
    read = []
    real = records.read_record

    def counted(*a, **k):
        read.append(a)
        return real(*a, **k)
    for module in (records, uploads):  # the package's name and the one uploads uses
        monkeypatch.setattr(module, 'read_record', counted)
    opts = {'lang': 'en', 'segments': True, 'signal': False, 'cls': None, 'nsamples': 2}
    res, problems = serve.predict_job(svc, record_upload('ONCE'), opts, time.monotonic() + 60)
    assert problems == [] and [r['record'] for r in res] == ['ONCE'] and res[0]['segments']
    assert len(read) == 1


def test_one_response_carries_arabic_text_segments_and_the_signal(api):
    from web import clinic
    client, svc = api
    r = post(client, record_upload('LONG', 'PVC', seconds=5), lang='ar', segments='true',
             signal='true')
    res = r.json()['records'][0]
    prob = [c['probability'] for c in res['classes']]
    info = svc.info
    assert res['diagnoses_text'] == clinic.diagnoses_text(prob, info.thresholds,
                                                          info.classes, 'ar')
    # windows of 2 s from the start, the last ending at the end (predict.py --segments)
    assert [(s['start_s'], s['end_s']) for s in res['segments']] == [(0, 2), (2, 4), (3, 5)]
    assert np.allclose(list(res['segments'][-1]['scores'].values()), prob, atol=1e-5)
    sig = res['signal']
    assert sig['fs'] == 500 and sig['leads'] == records.LEADS and len(sig['data'][0]) == 2500


def test_real_records_and_a_zip_of_records_are_scored_in_one_request(api, shared_data):
    client, _ = api
    cpsc = shared_data / 'cpsc2018_wfdb'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        for name in ('E07500', 'HR06002', 'JS20005'):
            for s in ('hea', 'mat'):
                z.write(shared_data / 'physionet2021' / f'{name}.{s}', f'batch/{name}.{s}')
    files = [(p.name, p.read_bytes()) for p in sorted(cpsc.glob('A0001.*'))]
    r = post(client, files + [('batch.zip', buf.getvalue())])
    assert r.status_code == 200, r.text
    got = {x['record']: x for x in r.json()['records']}
    assert set(got) == {'A0001', 'E07500', 'HR06002', 'JS20005'}
    assert got['A0001']['duration_s'] == 15.0 and got['HR06002']['fs'] == 500


def test_explain_gives_segments_and_additivity(api):
    client, svc = api
    r = post(client, record_upload('EX', 'RBBB'), path='/v1/explain')
    assert r.status_code == 200, r.text
    ex = r.json()['explanation']
    assert ex['nsamples'] == 2 and ex['explained']
    first = ex['explained'][0]
    assert sum(first['lead_shares'].values()) == pytest.approx(1.0, abs=1e-5)
    assert first['segments'] and all(s['lead'] in records.LEADS and s['end_ms'] > s['start_ms']
                                     for s in first['segments'])
    assert set(first['additivity']) == {'shap_sum', 'fx', 'expected', 'rel_error'}
    other = next(c for c in CLASSES if c not in [e['code'] for e in ex['explained']])
    r = post(client, record_upload('EX', 'RBBB'), path='/v1/explain', **{'class': other})
    assert r.status_code == 200, r.text   # a class that is not predicted is explained too
    assert [e['code'] for e in r.json()['explanation']['explained']] == [other]


def test_model_health_docs_page_and_strings(api):
    client, _ = api
    m = client.get('/v1/model').json()
    assert m['classes'] == CLASSES and m['window'] == WINDOW
    assert m['threshold_source']['kind'] == 'tuned'
    assert 'serveroot' not in json.dumps(m) and '/' not in json.dumps(m['card'])  # no paths
    assert client.get('/healthz').json() == {'status': 'ok'}
    assert client.get('/readyz').json()['status'] == 'ready'
    assert '/v1/predict' in client.get('/openapi.json').json()['paths']
    docs = client.get('/docs').text
    page = client.get('/').text
    assert 'openapi.json' in docs and 'static/app.js' in page
    text = client.get('/app_text.json').json()
    assert text['rtl'] == ['ar'] and text['text']['class_AF']['fr'] == 'fibrillation atriale'
    # errors of routing and validation come in the API's own error shape
    for r, status in ((client.get('/nowhere'), 404),
                      (client.get('/v1/predict'), 405),    # a POST route
                      (client.get('/v1/audit', params={'limit': 'x'}), 422),
                      (client.get('/static/../serve.py'), 404)):   # the server's source: never
        assert r.status_code == status, (r.request.url, r.status_code, r.text)
        assert set(r.json()) == {'error', 'file', 'reason'}
    for name in ('index.html', 'static/app.js', 'static/app.css', 'static/docs.html'):
        src = (ROOT / 'web' / name).read_text()
        assert 'http://' not in src and 'https://' not in src and '//cdn' not in src, name


# --------------------------------------------------------------------------
# Auth, queue, time limit, audit.

def test_requests_without_a_valid_token_get_401_and_tokens_are_never_logged(api, root, caplog):
    client, _ = api
    files = record_upload('AUTH')
    with httpx.Client(base_url=str(client.base_url), timeout=30) as bare:
        r = bare.post('/v1/predict', files=[('files', f) for f in files])
        assert r.status_code == 401 and r.json()['error'] == 'unauthorized'
        wrong = {'Authorization': 'Bearer not-the-token-0000000000'}
        assert bare.get('/v1/model', headers=wrong).status_code == 401
        assert bare.get('/v1/audit', headers=wrong).status_code == 401
        assert bare.get('/healthz').status_code == 200
    assert TOKEN not in caplog.text and 'not-the-token' not in caplog.text
    with pytest.raises(SystemExit, match='token'):
        serve.config(serve.get_args_parser().parse_args(
            ['--model-path', str(root / 'models' / RUN / 'best.pt'), '--host', '0.0.0.0']))
    (root / 'short.txt').write_text('abc\n')
    with pytest.raises(SystemExit, match='16 characters'):
        serve.read_tokens(root / 'short.txt')


def test_full_queue_gets_503_with_retry_after(api):
    client, svc = api
    for _ in range(svc.capacity):
        svc.acquire()
    try:
        r = post(client, record_upload('Q'))
    finally:
        for _ in range(svc.capacity):
            svc.release()
    assert r.status_code == 503 and int(r.headers['Retry-After']) >= 1


def test_a_job_over_the_time_limit_gets_503_and_frees_its_slot(api):
    _, svc = api
    svc.acquire()
    with pytest.raises(serve.ApiError, match='longer than 0.2 s') as e:
        asyncio.run(svc.run(lambda deadline: time.sleep(1.0), 0.2))
    assert e.value.status == 503
    for _ in range(30):
        if svc.busy == 0:
            break
        time.sleep(0.1)
    assert svc.busy == 0


def test_audit_log_keeps_hashes_and_scores_but_no_names_or_signals(api, root):
    client, _ = api
    post(client, record_upload('AUDITED', 'AF', seed=11))
    rows = client.get('/v1/audit', params={'limit': 1000}).json()['rows']
    ok = [r for r in rows if r['status'] == 200]
    assert ok and all(len(r['record_sha256']) == 64 and len(r['model_sha256']) == 64
                      for r in ok)
    assert set(json.loads(ok[0]['scores'])) == set(CLASSES)
    assert 401 not in {r['status'] for r in rows}   # refused requests: no row
    db = sqlite3.connect(root / 'audit.sqlite3')
    assert db.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    cols = [c[1] for c in db.execute('PRAGMA table_info(analyses)')]
    assert not {'file', 'name', 'signal', 'age', 'sex'} & set(cols)
    raw = b''.join(p.read_bytes() for p in root.glob('audit.sqlite3*'))
    assert b'AUDITED' not in raw and b'A0001' not in raw and TOKEN.encode() not in raw


# --------------------------------------------------------------------------
# Faults: each one, then a good request, then nothing outside the server's folder.

def _bomb():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('bomb.hea', b'0' * (40 * 2 ** 20))
    return buf.getvalue()


def _traversal():
    good = record_upload('TRAV')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('../../x.hea', good[0][1].replace(b'TRAV', b'x'))
        z.writestr('/tmp/abs/x.mat', good[1][1])
    return buf.getvalue()


def _big_header(files):
    hea = files[0][1].decode().splitlines()
    f = hea[0].split()
    f[3] = str(10 ** 12)   # the record line: name, signals, rate, samples
    return [(files[0][0], ('\n'.join([' '.join(f)] + hea[1:]) + '\n').encode()), files[1]]


XML_BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b''.join(b'<!ENTITY lol%d "%s">' % (i, (b'&lol%d;' % (i - 1) if i else b'&lol;')
                                                   * 10) for i in range(9))
            + b']><AnnotatedECG>&lol8;</AnnotatedECG>')


@pytest.mark.parametrize('fault', ['garbage', 'truncated_mat', 'header_1e12', 'zip_bomb',
                                   'zip_traversal', 'files_500', 'xml_bomb'])
def test_fault_then_good_request(api, fault, tmp_path):
    client, svc = api
    before = outside()
    good = record_upload('F')
    if fault == 'garbage':
        files, want = [('x.hea', os.urandom(3000)), ('x.mat', os.urandom(5000))], 422
    elif fault == 'truncated_mat':
        files, want = [good[0], (good[1][0], good[1][1][:len(good[1][1]) // 3])], 422
    elif fault == 'header_1e12':
        files, want = _big_header(good), 422
    elif fault == 'zip_bomb':
        files, want = [('bomb.zip', _bomb())], 413
    elif fault == 'zip_traversal':   # members named ../../x.hea and /tmp/abs/x.mat
        files, want = [('t.zip', _traversal())], 422
    elif fault == 'files_500':
        files, want = [(f'f{i}.dat', b'\0' * 16) for i in range(500)], 413
    else:
        files, want = [('ecg.xml', XML_BOMB)], 422
    t0 = time.perf_counter()
    r = post(client, files)
    assert time.perf_counter() - t0 < 20
    body = r.json()
    assert r.status_code == want, r.text
    if r.status_code >= 400:
        assert set(body) >= {'error', 'file', 'reason'} and body['reason']
    for p in (Path(svc.tmp).parent / 'x.hea', Path(svc.tmp).parent.parent / 'x.hea',
              Path('/tmp/abs/x.mat'), ROOT / 'x.hea', ROOT.parent / 'x.hea'):
        assert not p.exists(), p
    assert_still_serving(client, svc, before)


def test_client_disconnect_mid_upload(api):
    client, svc = api
    before = outside()
    port = int(str(client.base_url).rsplit(':', 1)[1])
    boundary = 'b0undary'
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="A.mat"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    with socket.create_connection(('127.0.0.1', port)) as s:
        s.sendall((f'POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                   f'Authorization: Bearer {TOKEN}\r\n'
                   f'Content-Type: multipart/form-data; boundary={boundary}\r\n'
                   f'Content-Length: 4000000\r\n\r\n').encode() + head + b'\0' * 200_000)
        time.sleep(0.3)
    assert_still_serving(client, svc, before)


def test_case_twin_upload_is_refused_by_the_api(api):
    """Defect 1 of docs/hostile.md, through the API: x.HEA (empty) beside x.hea, which
    names a file outside the upload, is a conflict; both twins are refused,
    nothing outside is read, and the server goes on serving."""
    client, svc = api
    before = outside()
    good = record_upload('x')
    evil = good[0][1].decode().replace('x.mat', '/etc/passwd', 1).encode()
    r = post(client, [('x.HEA', b''), ('x.hea', evil), good[1]])
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) >= {'error', 'file', 'reason'}
    twins = {p['file'] for p in body['problems'] if 'differ' in p['reason']}
    assert twins == {'x.HEA', 'x.hea'}, body
    assert 'root:' not in r.text and 'passwd' not in json.dumps(body.get('records', []))
    assert_still_serving(client, svc, before)


def test_body_over_the_limit_without_content_length(api):
    client, svc = api
    before = outside()

    def chunks():  # chunked: no Content-Length, 70 MB > the 64 MB default
        yield (b'--x\r\nContent-Disposition: form-data; name="files"; filename="A.mat"\r\n'
               b'Content-Type: application/octet-stream\r\n\r\n')
        for _ in range(70):
            yield b'\0' * 2 ** 20
    r = client.post('/v1/predict', content=chunks(),
                    headers={'Content-Type': 'multipart/form-data; boundary=x'})
    assert r.status_code == 413, r.text
    assert_still_serving(client, svc, before)


def test_segments_of_real_dat_records(tmp_path, shared_data):
    """segments=true on WFDB .dat records read on demand: a 41-s CPSC2021
    record in 2-s windows, and a 30-min MIT-BIH record refused (903 windows)."""
    from resnet import build_model
    from records import segment_ends
    torch.manual_seed(0)
    path = tmp_path / 'models' / 'TINYII-II-s42-f7' / 'best.pt'
    utils.atomic_torch_save({'model': build_model('resnet18', 1).state_dict(), 'leads': ['II'],
                             'arch': 'resnet18', 'window': WINDOW}, path)
    svc = serve.Service(serve.config(serve.get_args_parser().parse_args(
        ['--model-path', str(path), '--root', str(tmp_path), '--backend', 'torch',
         '--audit-db', str(tmp_path / 'audit.sqlite3')])))
    svc.load()
    opts = {'lang': 'en', 'segments': True, 'signal': False, 'cls': None, 'nsamples': 2}

    def files(folder, name):
        return [(p.name, p.read_bytes()) for p in sorted((shared_data / folder).glob(name + '.*'))]
    try:
        res, problems = serve.predict_job(svc, files('cpsc2021', 'data_8_4'), opts,
                                          time.monotonic() + 60)
        assert problems == [] and res[0]['fs'] == 200
        segs = res[0]['segments']
        assert len(segs) == len(segment_ends(round(8235 * 500 / 200), WINDOW)) == 21
        assert all(len(s['scores']) == 9 and s['quality'] for s in segs)
        with pytest.raises(serve.ApiError, match='903 windows; the API scores up to 480') as e:
            serve.predict_job(svc, files('mitdb', '100'), opts, time.monotonic() + 60)
        assert e.value.status == 413
    finally:
        svc.close()


# --------------------------------------------------------------------------
# Hostile clients (issue 28): slow bodies, overdue jobs, lying zips, the audit
# log, paths in answers, Host and Origin, one bad member.

@pytest.fixture(scope='module')
def tight(root):
    """A second server: one slot (--pool 1 --queue 0), 3 s a request (an
    explanation too), 2 s a body, a reverse proxy trusted at 127.0.0.1."""
    url, svc, stop = start(root, ['--seconds', '3', '--explain-seconds', '3', '--queue', '0',
                                  '--body-seconds', '2',
                                  '--trusted-proxy', '127.0.0.1'])
    client = httpx.Client(base_url=url, timeout=60,
                          headers={'Authorization': f'Bearer {TOKEN}'})
    yield client, svc
    client.close()
    stop()


def _port(client):
    return int(str(client.base_url).rsplit(':', 1)[1])


def test_idle_clients_cost_a_connection_never_a_slot(tight):
    """Five clients send their headers and part of a body, then nothing: a
    good request is answered 200 all the same (the body is received before a
    slot is taken), and each idle client gets 408 at --body-seconds."""
    client, svc = tight
    head = (f'POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n'
            'Content-Type: multipart/form-data; boundary=b0\r\nContent-Length: 100000\r\n\r\n'
            '--b0\r\nContent-Disposition: form-data; name="files"; filename="A.mat"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n').encode() + b'\0' * 1000
    idle = []
    try:
        for _ in range(5):
            s = socket.create_connection(('127.0.0.1', _port(client)), timeout=10)
            s.sendall(head)
            idle.append(s)
        time.sleep(0.3)
        r = post(client, record_upload('PATIENT'))
        assert r.status_code == 200, r.text   # was 503: the idle ones held the slot
        for s in idle:   # each gets its 408 at --body-seconds (2 s), bounded by the timeout
            assert s.recv(4096).startswith(b'HTTP/1.1 408'), 'no 408 for an idle client'
    finally:
        for s in idle:
            s.close()
    assert svc.busy == 0


def test_the_request_after_a_timed_out_one_is_served(tight, monkeypatch):
    """A job past --seconds (3) gets 503 and gives its worker back at once: a
    good request sent 1 s later is served (one slot, no queue; it was 503), and
    the late job stops at its next check-in."""
    client, svc = tight
    real = serve.measurements

    def slow(r, lang='en'):
        if r.name == 'SLOW':
            time.sleep(6)
        return real(r, lang)
    monkeypatch.setattr(serve, 'measurements', slow)
    r = post(client, record_upload('SLOW'))
    assert r.status_code == 503 and r.json()['error'] == 'timeout', r.text
    time.sleep(1)
    r = post(client, record_upload('NEXT'))
    assert r.status_code == 200, r.text
    for _ in range(100):
        if svc.overdue == 0 and svc.busy == 0:
            break
        time.sleep(0.1)
    assert svc.overdue == 0 and svc.busy == 0


def test_a_late_explanation_stops_at_its_next_batch(tight, monkeypatch):
    """/v1/explain past --explain-seconds (3): the client gets 503 and the explanation
    stops at the check-in after its current batch of samples, not after all of
    them (8 batches of 8 samples, each made 1 s slower here)."""
    client, svc = tight
    real, batches = shap_values.expected_gradients, []

    def slow(f, x, bg, classes, nsamples, rseed, batch=8, progress=None):
        def step(done, total):
            batches.append(done)
            time.sleep(1.0)
            progress(done, total)
        return real(f, x, bg, classes, nsamples, rseed, 8, step)
    monkeypatch.setattr(shap_values, 'expected_gradients', slow)
    r = post(client, record_upload('LATE'), path='/v1/explain', nsamples='64')
    assert r.status_code == 503 and r.json()['error'] == 'timeout', r.text
    for _ in range(100):
        if svc.overdue == 0 and svc.busy == 0:
            break
        time.sleep(0.1)
    assert svc.overdue == 0 and svc.busy == 0
    assert 0 < len(batches) < 8, batches


def test_healthz_answers_while_a_hostile_zip_is_checked(api):
    """A 1 MB zip whose directory holds 20,000 entries while its end record
    claims 1: listed with a bound (1001 entries), off the event loop; /healthz
    stays fast and the request is refused for its member count."""
    import threading
    from web_helpers import lying_zip
    client, svc = api
    before = outside()
    got = {}
    bad = lying_zip(20_000)
    worker = threading.Thread(target=lambda: got.setdefault(
        'r', post(client, record_upload('BESIDE') + [('lying.zip', bad)])))
    worker.start()
    slowest = 0.0
    with httpx.Client(base_url=str(client.base_url), timeout=10) as probe:
        while worker.is_alive():
            t0 = time.perf_counter()
            assert probe.get('/healthz').status_code == 200
            slowest = max(slowest, time.perf_counter() - t0)
    worker.join()
    r = got['r']   # over --max-files, counted by the directory, not by the claim
    assert r.status_code == 413 and r.json()['file'] == 'lying.zip', r.text
    assert slowest < 0.1, slowest
    assert_still_serving(client, svc, before)


def test_audit_keeps_served_requests_only_and_the_socket_address(api, root):
    client, _ = api
    db = sqlite3.connect(root / 'audit.sqlite3')

    def count():
        return db.execute('SELECT COUNT(*) FROM analyses').fetchone()[0]
    n = count()
    files = [('files', f) for f in record_upload('NOAUTH')]
    with httpx.Client(base_url=str(client.base_url), timeout=30) as bare:
        for _ in range(20):
            assert bare.post('/v1/predict', files=files).status_code == 401
    assert post(client, []).status_code == 400                        # no file
    assert post(client, [('f.dat', b'0')] * 70).status_code == 413     # refused before a slot
    assert count() == n
    forged = '<script>alert(1)</script>' + 'x' * 2000
    r = client.post('/v1/predict', files=files, headers={'X-Forwarded-For': forged})
    assert r.status_code == 200
    assert count() == n + 1
    assert db.execute('SELECT client FROM analyses ORDER BY id DESC').fetchone()[0] \
        == '127.0.0.1'


def test_trusted_proxy_gives_the_client_of_its_last_hop(tight, root):
    client, _ = tight
    db = sqlite3.connect(root / 'audit.sqlite3')
    for xff, want in (('198.51.100.1, 203.0.113.7', '203.0.113.7'),
                      ('<script>x</script>', '127.0.0.1')):
        r = post(client.__class__(base_url=str(client.base_url), timeout=30,
                                  headers={**client.headers, 'X-Forwarded-For': xff}),
                 record_upload('PROXIED'))
        assert r.status_code == 200, r.text
        assert db.execute('SELECT client FROM analyses ORDER BY id DESC').fetchone()[0] == want


def _edf(name):
    """An EDF header that promises more than the file holds."""
    head = b'0       ' + b' ' * 80 * 2 + b'01.01.0100.00.00' + b'512     ' + b' ' * 44 \
        + b'10      ' + b'1       ' + b'1   '
    return (name, head + b'garbage' * 20)


def test_no_server_path_reaches_a_response_or_problem_line(api, root):
    """Every response and problem line of a set of bad requests is searched
    for the server's folders (its temporary folder, the repository, the test
    root) and finds none, nor a traceback."""
    from web_helpers import zip_of
    client, svc = api
    csv = ('x.csv', b'I,II,V1\n' + b'1,2,3\n' * 600)
    requests = [[_edf('broken.edf')], [csv], [('x.hea', os.urandom(300))],
                [('z.zip', b'PK\x03\x04 not a zip')], [('ecg.xml', XML_BOMB)],
                [('z.zip', zip_of([('broken.edf', _edf('b')[1]), ('x.csv', csv[1])]))],
                record_upload('A') + [_edf('broken.edf')]]
    server = [str(svc.tmp), 'ecg-serve-', 'req-', str(ROOT), str(root), tempfile.gettempdir()
              + '/', 'Traceback', '--fs']
    for files in requests:
        for path in ('/v1/predict', '/v1/explain'):
            text = post(client, files, path=path).text
            assert not [s for s in server if s in text], (files[0][0], text)
    r = post(client, [csv])
    assert 'time column' in r.json()['reason'], r.text


def test_a_corrupt_checkpoint_is_reported_without_its_path(tmp_path):
    from fastapi.testclient import TestClient
    path = tmp_path / 'models' / 'BROKEN-all-s42-f7' / 'best.pt'
    path.parent.mkdir(parents=True)
    path.write_bytes(b'not a checkpoint at all')
    cfg = serve.config(serve.get_args_parser().parse_args(
        ['--model-path', str(path), '--root', str(tmp_path), '--backend', 'torch',
         '--audit-db', str(tmp_path / 'audit.sqlite3')]))
    wrapped, app = serve.create_app(cfg)
    svc = app.state.svc
    try:
        for _ in range(300):
            if svc.error:
                break
            time.sleep(0.05)
        with TestClient(wrapped, base_url='http://127.0.0.1') as c:
            answers = [c.get('/readyz'), c.post('/v1/predict', files=[('files', ('a.mat', b'0'))])]
        for r in answers:
            assert r.status_code == 503, r.text
            assert str(tmp_path) not in r.text and 'best.pt' not in r.text and \
                'pickle' not in r.text.lower(), r.text
    finally:
        svc.close()


def test_host_origin_security_headers_and_required_token(api, root):
    client, _ = api
    r = client.get('/healthz', headers={'Host': 'attacker.example'})
    assert r.status_code == 421, r.text   # DNS rebinding: a foreign Host name
    assert client.get('/healthz', headers={'Host': 'localhost:1234'}).status_code == 200
    here = str(client.base_url)
    assert post(client.__class__(base_url=here, timeout=30, headers={
        **client.headers, 'Origin': 'http://attacker.example'}), record_upload('O')).status_code \
        == 403
    assert post(client.__class__(base_url=here, timeout=30, headers={
        **client.headers, 'Origin': here}), record_upload('O')).status_code == 200
    for r in (client.get('/'), client.get('/healthz'), client.get('/nowhere'),
              client.get('/healthz', headers={'Host': 'attacker.example'})):
        assert r.headers['x-content-type-options'] == 'nosniff'
        assert "frame-ancestors 'none'" in r.headers['content-security-policy']
    with pytest.raises(SystemExit, match='--require-token needs --token-file'):
        serve.config(serve.get_args_parser().parse_args(
            ['--model-path', str(root / 'models' / RUN / 'best.pt'), '--require-token']))
    cfg = {'host': '127.0.0.1', 'allowed_hosts': 'ecg.example.org'}
    assert serve.allowed_hosts(cfg) == {'ecg.example.org'}
    assert serve.allowed_hosts({'host': '0.0.0.0'}) is None


def test_one_bad_member_is_one_line_as_in_the_app(api):
    from web_helpers import bad_utf8_zip
    client, svc = api
    good = record_upload('KEPT')
    for files, bad in ((good + [('bad.zip', b'PK\x05\x06 not a zip at all')], 'bad.zip'),
                       ([('named.zip', bad_utf8_zip(good))], 'named.zip/')):
        r = post(client, files)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x['record'] for x in body['records']] == ['KEPT']
        assert len(body['problems']) == 1 and body['problems'][0]['file'].startswith(bad)


def test_explain_refuses_more_than_one_record_and_names_the_one(api):
    client, _ = api
    r = post(client, record_upload('E1') + record_upload('E2', seed=7), path='/v1/explain')
    assert r.status_code == 400 and r.json()['error'] == 'one_record', r.text
    assert 'E1' in r.json()['reason'] and 'E2' in r.json()['reason']
    r = post(client, record_upload('E1'), path='/v1/explain')
    assert r.status_code == 200 and r.json()['explanation']['record'] == 'E1'


def _measure_reasons():
    """Every reason text measure.py writes (its _empty(...) calls, why[...] =
    and why.setdefault(...)), f-string fields as 3."""
    import ast

    def text(node):
        if isinstance(node, ast.JoinedStr):
            return ''.join(v.value if isinstance(v, ast.Constant) else '3' for v in node.values)
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            else None

    def strings(expr):   # the reason texts of an expression, an f-string as one
        if text(expr) is not None:
            return [text(expr)] if len(text(expr)) > 8 else []
        if isinstance(expr, ast.Call):   # ', '.join(...) and the like: not a reason
            return []
        return [x for child in ast.iter_child_nodes(expr) for x in strings(child)]
    out = set()
    for node in ast.walk(ast.parse((ROOT / 'measure.py').read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == '_empty':
            out |= set(strings(node.args[0]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == 'setdefault' and ast.unparse(node.func.value) == 'why':
            out |= set(strings(node.args[1]))
        elif isinstance(node, ast.Assign) and any(
                ast.unparse(tg).startswith(('why[', "out['reasons'][")) or ast.unparse(tg) ==
                'reason' for tg in node.targets):
            out |= set(strings(node.value))
    return out


def test_measurement_reasons_come_in_the_page_language(api):
    """Issue 28: measure.py's reasons (English) are translated for lang=fr/ar,
    and every reason measure.py writes has its text key."""
    from web import app_text
    written = _measure_reasons()
    assert len(written) >= 10, written
    for why in written:
        assert app_text.measure_reason('fr', why) != why, why
    client, _ = api
    r = post(client, record_upload('AFIB', 'AF', seconds=4), lang='fr')
    reasons = r.json()['records'][0]['measurements']['global']['reasons']
    english = {app_text.t('en', key) for _, key in app_text.MEASURE_REASONS}
    assert reasons and not english & set(reasons.values()), reasons
