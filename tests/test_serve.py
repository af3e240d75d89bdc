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
from web_helpers import RUN, TOKEN, WINDOW, make_root, record_upload, start

import records
import serve
import utils
from records import uploads
from utils import CLASSES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('serveroot')
    make_root(root)
    return root


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
    assert {r['status'] for r in rows} >= {200, 401}
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
    from runs import segment_ends
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
