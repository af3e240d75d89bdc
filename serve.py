"""The model as an HTTP API (FastAPI on uvicorn), and the study's page on top of it.

    make serve                                       # = python serve.py (newest models/*/best.pt)
    python serve.py --model-path models/SYNTH-all-s42-f7/best.pt
    python serve.py --model-path M --host 0.0.0.0 --token-file tokens.txt --workers 2
    curl -s -F files=@A0001.hea -F files=@A0001.mat http://127.0.0.1:8000/v1/predict

Listens on 127.0.0.1:8000 unless told otherwise; on any other address it
refuses to start without --token-file (one bearer token a line, >= 16
characters), and then every /v1 call needs `Authorization: Bearer <token>`
(--require-token: a token file is needed on localhost too). A foreign Host
gets 421 (--allowed-hosts), a cross-site POST 403 (--allowed-origins).

    GET  /                the page (index.html, static/): drop a record, read it
    POST /v1/predict      files (one record, a .zip of records, several records;
                          any format the records package reads) [lang=en|fr|ar]
                          [segments=true] [signal=true] -> JSON per record;
                          Accept: application/fhir+json [fhir_subject=Patient/123]
                          -> a FHIR R4 Bundle of one Bundle a record (fhir_bundle.py)
    POST /v1/explain      the same files and [class=CODE] [nsamples=16] -> SHAP
                          per-lead shares, highlighted segments, additivity
    GET  /v1/model        the model card, thresholds, limits
    GET  /v1/audit        the audit log's last rows (only with a token)
    GET  /healthz /readyz /docs /openapi.json /app_text.json

The API is a thin layer: uploads.stage (the one upload path), records/,
runs.load_run / SegmentScorer, resnet.probabilities (or onnxruntime on
export.py's model.onnx, --backend onnx), shap_values.explain, clinic's texts
and measurements, app_text's strings. Each analysis is appended to the audit
log (web/audit.py; a SQLite file in WAL mode, or with --audit-db
postgresql://user@host/db one PostgreSQL table that every replica and worker
shares): time, endpoint, client address, status, the record's content hash,
the model's hash, scores and decisions; never a signal, a file name or a
patient field; refused requests are not logged. A request's whole body is
received (--body-seconds) and checked before it takes a slot in the bounded
pool; a full queue gets 503 with Retry-After, a job past --seconds 503 and
its worker back. Every bad input gets a 4xx with a JSON body
{error, file, reason}, naming the upload's files, never the server's.
docs/serving.md has the bench figures and how to run replicas behind a load
balancer.
"""
import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect

import export
import fhir_bundle
import records
import runs
import shap_values
import utils
from records import uploads
from records.measurements import AXES
from resnet import probabilities
from runs import SegmentScorer
from web import app_text, audit, clinic
from web.app_text import PROBLEM_KINDS, t

ROOT = Path(__file__).resolve().parent
STATIC = ROOT / 'web' / 'static'

# Request limits (defaults; each is a flag). A 10-60 s record is < 2 MB, a
# zip of a few hundred records < 50 MB; anything larger is a Holter for
# predict.py --segments, not for an HTTP call.
MAX_BODY_MB = 64
MAX_FILES = 64          # files per request (zip members count too)
MAX_ZIP_MB = 200        # uncompressed total of a request's zips (= uploads.MAX_ZIP_BYTES)
MAX_ZIP_RATIO = 50      # uncompressed / compressed of one member: ECG int16 gives 2-5
SECONDS = 30            # per /v1/predict request (the model reads ~0.1 s a record)
EXPLAIN_SECONDS = 180   # per /v1/explain (ResNet-34: ~10 s a class on 2 cores)
MAX_SEGMENTS = 480      # windows per segments=true record (4 h of 30-s windows)
QUEUE = 4               # requests waiting for the pool; more get 503 + Retry-After
BODY_SECONDS = 60       # to receive a whole body: 64 MB at ~10 Mbit/s; a slow client gets 408
SIGNAL_SECONDS = 10     # signal=true returns what a printout shows
TOKEN_MIN = 16


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-path', default=None, metavar='PT',
                        help='checkpoint (default: the newest models/*/best.pt under --root)')
    utils.add_root_arg(parser)
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on; any but localhost needs --token-file '
                             '(default: 127.0.0.1)')
    parser.add_argument('--port', default=8000, type=int, help='(default: 8000)')
    parser.add_argument('--token-file', default=None, metavar='F',
                        help='bearer tokens, one a line; required off localhost; given, every '
                             '/v1 call needs one, on any address (default: none)')
    parser.add_argument('--require-token', action='store_true',
                        help='refuse to start without --token-file, even on localhost (e.g. '
                             'behind a local TLS proxy that other machines reach) '
                             '(default: off; --token-file implies tokens)')
    parser.add_argument('--allowed-hosts', default=None, metavar='H,H',
                        help='Host header values accepted (DNS rebinding: a page of '
                             'attacker.example resolving to 127.0.0.1 gets 421); * accepts any '
                             '(default: the --host and localhost, 127.0.0.1, ::1; any on '
                             '0.0.0.0 or ::, where tokens are required)')
    parser.add_argument('--allowed-origins', default='', metavar='URL,URL',
                        help='browser origins besides the server itself that may POST (a '
                             'cross-site Origin gets 403) (default: none)')
    parser.add_argument('--trusted-proxy', default=None, metavar='ADDR',
                        help="the reverse proxy's address: from it (only), the last "
                             'X-Forwarded-For address is the client in the audit log '
                             "(default: none: the socket's address)")
    parser.add_argument('--backend', default='onnx', choices=['onnx', 'torch', 'onnx-int8'],
                        help="onnxruntime on export.py's model.onnx (made beside the checkpoint "
                             'at start-up when missing or stale), torch, or the int8 copy '
                             '(default: onnx: the same probabilities (max diff 6e-8), p50 103 '
                             'vs 153 ms served on an idle 2-core Intel Xeon, ~3x torch on busy '
                             'cores; bench.py --only serve, docs/serving.md)')
    parser.add_argument('--workers', default=1, type=int, metavar='N',
                        help='server processes, each loading the model once (default: 1)')
    parser.add_argument('--pool', default=1, type=int, metavar='N',
                        help='inference threads per process (default: 1; the model itself '
                             'uses every core)')
    parser.add_argument('--queue', default=QUEUE, type=int, metavar='N',
                        help=f'requests waiting for the pool before 503 (default: {QUEUE})')
    parser.add_argument('--audit-db', default='results/serve/audit.sqlite3', metavar='F|URL',
                        help='audit log of the analyses served: a SQLite file, or a PostgreSQL '
                             'URL (postgresql://user@host/db; password by PGPASSWORD or '
                             '~/.pgpass) that replicas and --workers share (default: '
                             'results/serve/audit.sqlite3)')
    parser.add_argument('--audit-max-rows', default=audit.MAX_ROWS, type=int, metavar='N',
                        help=f'rows kept, the oldest dropped first (default: {audit.MAX_ROWS})')
    parser.add_argument('--audit-days', default=None, type=float, metavar='D',
                        help='rows older than D days are dropped (default: kept)')
    parser.add_argument('--body-seconds', default=BODY_SECONDS, type=float, metavar='S',
                        help='to receive a whole request body, before any model slot is '
                             f'taken; slower clients get 408 (default: {BODY_SECONDS})')
    parser.add_argument('--max-body-mb', default=MAX_BODY_MB, type=float, metavar='MB',
                        help=f'request body (default: {MAX_BODY_MB})')
    parser.add_argument('--max-files', default=MAX_FILES, type=int, metavar='N',
                        help=f'files per request, zip members included (default: {MAX_FILES})')
    parser.add_argument('--max-zip-mb', default=MAX_ZIP_MB, type=float, metavar='MB',
                        help=f'uncompressed zips per request (default: {MAX_ZIP_MB})')
    parser.add_argument('--max-zip-ratio', default=MAX_ZIP_RATIO, type=float, metavar='R',
                        help=f'compression ratio of a zip member (default: {MAX_ZIP_RATIO})')
    parser.add_argument('--seconds', default=SECONDS, type=float, metavar='S',
                        help=f'per /v1/predict request (default: {SECONDS})')
    parser.add_argument('--explain-seconds', default=EXPLAIN_SECONDS, type=float, metavar='S',
                        help=f'per /v1/explain request (default: {EXPLAIN_SECONDS})')
    parser.add_argument('--nsamples', default=None, type=int, metavar='N',
                        help='SHAP samples per class when a request gives none (default: '
                             'shap_values.APP_NSAMPLES, 16)')
    parser.add_argument('--threads', default=None, type=int, metavar='N',
                        help="torch / onnxruntime threads (default: the runtime's own)")
    return parser


# --------------------------------------------------------------------------
# Errors, tokens.

class ApiError(Exception):
    """A 4xx/5xx answer {error, file, reason}."""

    def __init__(self, status, error, reason, file=None, headers=None):
        super().__init__(reason)
        self.status, self.error, self.reason, self.file = status, error, reason, file
        self.headers = headers or {}

    def body(self):
        return {'error': self.error, 'file': self.file, 'reason': self.reason}


def is_loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_tokens(path):
    """Token file -> set of the tokens' sha256 (the tokens themselves are not
    kept, so no log, traceback or dump of this process can show one)."""
    if path is None:
        return set()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise SystemExit(f'error: cannot read --token-file {path}: {e.strerror}') from e
    tokens = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith('#')]
    if not tokens:
        raise SystemExit(f'error: --token-file {path} holds no token (one a line)')
    if any(len(tok) < TOKEN_MIN for tok in tokens):
        raise SystemExit(f'error: --token-file {path}: every token needs >= {TOKEN_MIN} '
                         'characters (e.g. `python -c "import secrets; print(secrets.'
                         'token_urlsafe(32))"`)')
    return {hashlib.sha256(tok.encode()).hexdigest() for tok in tokens}


def token_ok(header, hashes):
    if not header or not header.startswith('Bearer '):
        return False
    given = hashlib.sha256(header[7:].strip().encode()).hexdigest()
    return any(hmac.compare_digest(given, h) for h in hashes)


def problem_kind(reason):
    """A problem's kind for the audit log (app_text's kinds): the reason text
    itself may name a file, which the log must not hold."""
    low = str(reason).lower()
    return next((k for k, pattern in PROBLEM_KINDS if pattern in low), 'other')


# --------------------------------------------------------------------------
# The model behind the API: loading, scoring, one request's analysis.

class Service:
    """One process's model, pool and audit log. Request work runs in the pool
    (bounded); `busy` counts running + queued requests, up to `capacity`.
    `info` is the loaded runs.Run (None until load() is done), `session` its
    onnxruntime session (None with --backend torch).

    `gate` lets `pool` jobs run at once. A job past its deadline gives its
    permit back at once (the next request gets a free worker) and runs on,
    `overdue`, until its next check-in (each record, each window: late());
    at most `overdue_limit` such jobs, then 503."""

    def __init__(self, cfg):
        self.cfg, self.info, self.session, self.error = cfg, None, None, None
        self.capacity = cfg['pool'] + cfg['queue']
        self.overdue, self.overdue_limit = 0, self.capacity + 1
        self.gate = threading.Semaphore(cfg['pool'])
        self.pool = ThreadPoolExecutor(max_workers=self.capacity + self.overdue_limit,
                                       thread_name_prefix='infer')
        # The measurements (one core) run beside the model (every core) of the
        # same or the next request instead of after it, which leaves a core
        # idle (predict_job). Its queue is bounded by the pool's.
        self.measure_pool = ThreadPoolExecutor(max_workers=cfg['pool'],
                                               thread_name_prefix='measure')
        self.busy, self.lock = 0, threading.Lock()
        self.seconds = [0.1]  # recent service times, for Retry-After
        self.tokens = read_tokens(cfg.get('token_file'))
        self.audit = audit.Audit(cfg['audit_db'], cfg.get('audit_max_rows', audit.MAX_ROWS),
                                 cfg.get('audit_days'))
        # main() makes the folder (shared by --workers processes); else our own
        self.own_tmp = not cfg.get('tmp')
        self.tmp = Path(tempfile.mkdtemp(prefix='ecg-serve-') if self.own_tmp else cfg['tmp'])
        self.bg = None

    def close(self):
        """Release the audit log's connections; remove the temporary folder
        this Service made (not main()'s)."""
        self.audit.close()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def load(self):
        """Load the checkpoint (and the ONNX session); readyz turns 200 after."""
        try:
            if self.cfg['threads']:
                torch.set_num_threads(self.cfg['threads'])
            run = runs.load_run(self.cfg['model_path'], self.cfg['root'])
            run.sha256  # noqa: B018 (hashed now, for the audit log, not in a request)
            if self.cfg['backend'] != 'torch':
                self.session = onnx_session(run, self.cfg)
            self.info = run
        except (SystemExit, Exception) as e:  # noqa: BLE001 (readyz reports it)
            # clients read that it failed; the path and the exception are the log's
            self.error = "the model could not be loaded; see the server's log"
            print(f'error: cannot load the model: {e}', file=sys.stderr, flush=True)

    def score(self, xs):
        """Model inputs -> probabilities (n, classes), by the chosen backend."""
        x = np.stack(xs)
        if self.session is not None:
            return export.onnx_probabilities(self.session, x)
        return probabilities(self.info.model, x, 'cpu', 'fp32', batch_size=32)

    def acquire(self):
        with self.lock:
            if self.busy >= self.capacity or self.overdue >= self.overdue_limit:
                wait = math.ceil(self.busy / self.cfg['pool'] * float(np.mean(self.seconds)))
                raise ApiError(503, 'busy', f'{self.busy} requests running or queued; retry '
                               'later', headers={'Retry-After': str(max(1, wait))})
            self.busy += 1

    def release(self, seconds=None):
        with self.lock:
            self.busy -= 1
            if seconds is not None:
                self.seconds = (self.seconds + [seconds])[-20:]

    async def run(self, fn, limit):
        """fn(deadline) in the pool, once a permit of the gate is free; 503 when
        it runs past `limit` seconds. Then its slot and permit are free at once
        and the job, overdue, stops at its next check-in (late())."""
        deadline = time.monotonic() + limit
        t0 = time.perf_counter()
        job = {'permit': False, 'late': False}

        def gated():
            if not self.gate.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise ApiError(503, 'timeout', 'no worker was free in time')
            with self.lock:
                gone = job['permit'] is None   # timed out while waiting for the gate
                job['permit'] = job['permit'] if gone else True
            if gone:
                self.gate.release()
                raise ApiError(503, 'timeout', 'no worker was free in time')
            try:
                return fn(deadline)
            finally:
                self._give_back(job)

        def done(_):
            with self.lock:
                late = job['late']
                if late:
                    self.overdue -= 1
            if not late:
                self.release(time.perf_counter() - t0)
        fut = self.pool.submit(gated)
        fut.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), limit)
        except asyncio.TimeoutError:
            with self.lock:
                if not fut.done():   # else done() has freed or will free the slot
                    job['late'] = True
                    self.overdue += 1
                    self.busy -= 1
            self._give_back(job)
            raise ApiError(503, 'timeout', f'the request took longer than {limit:g} s; send '
                           'fewer or shorter records', headers={'Retry-After': '5'}) from None

    def _give_back(self, job):
        with self.lock:
            held, job['permit'] = job['permit'], None   # None: never taken again
        if held:
            self.gate.release()


def onnx_session(run, cfg):
    """export.py's model.onnx (or model.int8.onnx) for this checkpoint,
    written now when missing, made from another checkpoint (its sidecar's
    sha256) or by an older export.py (its export_version)."""
    precision = 'int8' if cfg['backend'] == 'onnx-int8' else 'fp32'
    path = export.onnx_path(run.path, precision)
    side = path.with_name(path.name + '.json')
    meta = json.loads(side.read_text()) if side.is_file() else {}
    fresh = path.is_file() and meta.get('checkpoint_sha256') == run.sha256 and \
        meta.get('export_version') == export.EXPORT_VERSION
    if not fresh:
        print(f'exporting {path} (export.py) ...', flush=True)
        export.export(run.path, cfg['root'], 'int8' if precision == 'int8' else None, run=run)
    return export.session(path, cfg['threads'])


def late(deadline):
    """A job's check-in, in every loop of an analysis: past its deadline (the
    client has had its 503), the job stops here and its thread is free."""
    if time.monotonic() > deadline:
        raise ApiError(503, 'timeout', 'the request ran out of time')


def record_hash(paths):
    h = hashlib.sha256()
    for p in sorted(paths, key=str):
        h.update(Path(p).read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def read_upload(svc, files, deadline, most=None):
    """Stage the files (uploads.stage) in a fresh folder under the server's
    temp folder and read every record once -> yields ([(records.Reading, the
    sha256 of its record's files)], problems); the folder (which a Reading's
    record reads its samples from, e.g. for segments) is removed when the
    block ends, once the records have let go of it. More than `most` records:
    400, before any is read."""
    info = svc.info
    out, problems = [], []
    with tempfile.TemporaryDirectory(prefix='req-', dir=svc.tmp) as tmp:
        paths, problems = uploads.stage(files, tmp)
        problems = list(problems)
        if most is not None and len(paths) > most:
            names = ', '.join(Path(p).name for p in paths[:5])
            raise ApiError(400, 'one_record', f'/v1/explain explains one record; this upload '
                           f'holds {len(paths)} ({names}{", ..." if len(paths) > 5 else ""}): '
                           'send them one at a time')
        for path in paths:
            late(deadline)
            got, bad = uploads.read_records([path], info.leads, info.window)
            problems += bad
            out += [(r, record_hash(r.record.files or [path])) for r in got]
        try:
            yield out, problems
        finally:
            for r, _ in out:
                r.record.close()


def class_rows(run, prob, lang):
    return [{'code': c, 'name': t(lang, f'class_{c}'), 'probability': round(float(p), 6),
             'threshold': round(float(th), 6), 'decision': bool(d)}
            for c, p, th, d in zip(run.classes, prob, run.thresholds,
                                   utils.decide(prob, run.thresholds))]


def measurements(r, lang='en'):
    """clinic.record_measurements on the displayed 500-Hz signal, as the app shows it:
    heart rate and RR, measure.py's global figures (PR, QRS, QT, QTc, axes;
    None with a reason where the record cannot support one), and the interval
    criteria they meet in words (beside the model's decision, never instead)."""
    m = clinic.record_measurements(r.signal, leads=r.leads,
                                   device=r.record.device_measurements)
    if m is None:
        return {'heart_rate': None, 'global': None, 'criteria': []}
    hr = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in m.items()
          if k not in ('peaks', 'global', 'device')}
    glob = json.loads(json.dumps(m['global'], default=float))
    # measure.py words its reasons in English; the page shows them in `lang`
    glob['reasons'] = {k: app_text.measure_reason(lang, why) if why else why
                       for k, why in (glob.get('reasons') or {}).items()}
    return {'heart_rate': hr, 'global': glob, 'criteria': clinic.criteria_lines(m, lang)}


def display_signal(r):
    """The first 10 s of a Reading's display (uploads.read_prepared: the
    model's window, at least 10 s) as the page draws them: leads x samples,
    integer µV at 500 Hz (a printout shows 10 s; SHAP segments are in the
    same time, ms from its start)."""
    n = min(len(r.signal), SIGNAL_SECONDS * records.FS)
    return {'fs': records.FS, 'leads': r.leads, 'units': 'uV',
            'display_s': len(r.signal) / records.FS,
            'model_start_s': r.offset / records.FS, 'model_s': r.length / records.FS,
            'data': np.round(r.signal[:n].T * 1000).astype(int).tolist()}


def segment_rows(svc, rec, deadline):
    """segments=true: every window of the record, as predict.py --segments."""
    info = svc.info
    ends = records.segment_ends(records.length_at_fs(rec), info.window)
    if len(ends) > MAX_SEGMENTS:
        raise ApiError(413, 'too_long', f'{len(ends)} windows; the API scores up to '
                       f'{MAX_SEGMENTS} (use predict.py --segments for a Holter)', rec.name)
    scorer = SegmentScorer(svc.score, info.classes, info.thresholds, 32)
    rows = []
    for end in ends:
        late(deadline)
        try:
            x, _, quality = records.prepare(rec, info.leads, info.window, end=end)
        except records.RecordError as e:
            x, quality = None, e.reason
        stop = end / records.FS
        rows += scorer.add({'start_s': max(0.0, stop - info.window / records.FS),
                            'end_s': stop, 'quality': str(quality)}, x)
    rows += scorer.flush()
    for row in rows:
        row['scores'] = {c: (None if np.isnan(row[f'score_{c}']) else round(row[f'score_{c}'], 6))
                         for c in info.classes}
        for c in info.classes:
            row.pop(f'score_{c}')
        row['diagnoses'] = [d for d in row['diagnoses'].split(';') if d]
    return rows


def record_result(svc, r, digest, prob, meas, opts, deadline):
    """One record's answer of /v1/predict (r: a Reading, digest: its files'
    sha256, meas: its measurements())."""
    info, lang, rec = svc.info, opts['lang'], r.record
    have = set(records.recorded_leads(rec))
    res = {'record': r.name, 'file': r.source, 'fs': rec.fs,
           'duration_s': round(r.seconds, 3), 'leads_used': list(info.leads),
           'derived': [lead for lead in info.leads if lead not in have],
           'quality': str(r.quality), 'record_sha256': digest,
           'classes': class_rows(info, prob, lang),
           'diagnoses': clinic.predicted(prob, info.thresholds, info.classes),
           'diagnoses_text': clinic.diagnoses_text(prob, info.thresholds, info.classes, lang),
           'measurements': meas,
           # the cart's own reading, where the file carries one (records.formats)
           'device_measurements': dict(rec.device_measurements),
           'device_statements': list(rec.device_statements)}
    if opts['segments']:
        res['segments'] = segment_rows(svc, rec, deadline)
    if opts['signal']:
        res['signal'] = display_signal(r)
    return res


def predict_job(svc, files, opts, deadline):
    """The whole of /v1/predict in the pool -> (results, problems); the
    records' files exist until the last one is answered (segments read them)."""
    with read_upload(svc, files, deadline) as (got, problems):
        if not got:
            return [], problems
        # onnxruntime's idle threads sleep (export.session): the measurements
        # run beside the model. torch's OpenMP threads spin, and a thread
        # beside them slowed both (p50 139 -> 160 ms): there they run after.
        overlap = svc.session is not None
        meas = [svc.measure_pool.submit(measurements, r, opts['lang']) if overlap
                else None for r, _ in got]
        try:
            late(deadline)
            probs = svc.score([r.x for r, _ in got])
            out = []
            for (r, digest), p, m in zip(got, probs, meas):
                late(deadline)
                out.append(record_result(svc, r, digest, p, m.result() if m else
                                         measurements(r, opts['lang']), opts, deadline))
        except BaseException:   # a failed or late job leaves no measurement queued for nothing
            for m in meas:
                if m is not None:
                    m.cancel()
            raise
        return out, problems


def explain_job(svc, files, opts, deadline):
    """/v1/explain in the pool: the upload's one record -> (result, problems)."""
    info, lang = svc.info, opts['lang']
    with read_upload(svc, files, deadline, most=1) as (got, problems):
        if not got:
            return None, problems
        r, digest = got[0]   # in memory: the files can go
    if svc.bg is None:
        svc.bg = shap_values.background(info, svc.cfg['root'])
    late(deadline)
    prob = svc.score([r.x])[0]
    # A named class is explained whatever its score (a clinician asking why
    # not LBBB); without one, the predicted classes, or the most likely.
    want = None if opts['cls'] is None else [info.classes.index(opts['cls'])]
    # progress is called after each batch of samples: the check-in that stops
    # a late explanation there, not after its last batch
    ex = shap_values.explain(info, r, opts['nsamples'], svc.cfg['root'], bg=svc.bg,
                             classes=want, progress=lambda done, total: late(deadline))
    out = {'record': r.name, 'file': r.source, 'record_sha256': digest,
           'nsamples': ex['nsamples'], 'seconds': round(ex['seconds'], 2),
           'background': {k: v for k, v in ex['background'].items() if k != 'expected'},
           'explained': []}
    for j, c in enumerate(ex['classes']):
        code = info.classes[c]
        share = clinic.lead_shares(ex['values'][j], r.length)
        mask = clinic.record_mask(r, ex['values'][j], info.leads)
        segs = [{'lead': lead, 'start_ms': round(a * 1000 / records.FS, 1),
                 'end_ms': round(b * 1000 / records.FS, 1)}
                for k, lead in enumerate(r.leads) for a, b in clinic.runs(mask[k])]
        out['explained'].append({
            'code': code, 'name': t(lang, f'class_{code}'), 'probability': float(prob[c]),
            'lead_shares': dict(zip(info.leads, map(float, share))), 'segments': segs,
            'segments_time': 'ms from the start of the returned signal (signal=true)',
            'additivity': {'shap_sum': float(ex['shap_sum'][j]), 'fx': float(ex['fx'][j]),
                           'expected': float(ex['expected'][j]),
                           'rel_error': float(ex['rel_error'][j])}})
    return out, problems


# --------------------------------------------------------------------------
# Request checks before any work.

def check_zips(files, cfg):
    """Zip members counted, expansion total and ratio checked from the
    central directory (uploads.zip_directory: walked with a bound, whatever
    the end record claims), before anything is unpacked. A zip that cannot
    be listed is left to uploads.stage: one problem line, as in the app.
    Runs off the event loop (a directory of 1000 entries is ~1 ms)."""
    total, count = 0, 0
    for name, data in files:
        if not str(name).lower().endswith('.zip'):
            count += 1
            continue
        members = uploads.zip_directory(data)
        if isinstance(members, str):   # its one problem line comes from uploads.stage
            if 'size limit' in members:
                raise ApiError(413, 'too_many_files', members, name)
            count += 1
            continue
        members = [m for m in members if not m[0].endswith(b'/')]
        count += len(members)
        for _, _, csize, usize in members:
            total += usize
            ratio = usize / max(csize, 1)
            if ratio > cfg['max_zip_ratio'] and usize > 2 ** 20:
                raise ApiError(413, 'zip_ratio', f'member expands {ratio:.0f}x (limit '
                               f"{cfg['max_zip_ratio']:g}x): a zip bomb?", name)
        if total > cfg['max_zip_mb'] * 2 ** 20:
            raise ApiError(413, 'zip_size', f"expands to over {cfg['max_zip_mb']:g} MB "
                           '(limit per request)', name)
    if count > cfg['max_files']:
        raise ApiError(413, 'too_many_files', f"{count} files (zip members included); the "
                       f"limit is {cfg['max_files']} a request", None)


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """ASGI middleware: a body over the limit stops being read (413), whether
    or not it declared its Content-Length."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        declared = dict(scope.get('headers') or []).get(b'content-length')
        if declared and declared.isdigit() and int(declared) > self.limit:
            return await json_asgi(send, 413, ApiError(
                413, 'too_large', f'body of {int(declared) / 2 ** 20:.1f} MB; the limit is '
                f'{self.limit / 2 ** 20:.0f} MB').body())
        seen = 0

        async def limited():
            nonlocal seen
            msg = await receive()
            seen += len(msg.get('body', b''))
            if seen > self.limit:
                raise BodyTooLarge(f'body over {self.limit / 2 ** 20:.0f} MB')
            return msg
        return await self.app(scope, limited, send)


# Every response: no other site may frame the page, load its script from
# elsewhere or sniff a JSON answer as HTML. The docs page's one inline script
# is allowed by its hash (csp()).
SECURITY_HEADERS = [(b'x-content-type-options', b'nosniff'), (b'x-frame-options', b'DENY'),
                    (b'referrer-policy', b'no-referrer')]
CSP = ("default-src 'self'; script-src 'self'{extra}; style-src 'self'; img-src 'self' data: "
       "blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
LOCAL_NAMES = {'localhost', '127.0.0.1', '::1'}


def csp():
    """The Content-Security-Policy, with the hash of docs.html's inline script."""
    page = (STATIC / 'docs.html').read_text() if (STATIC / 'docs.html').is_file() else ''
    hashes = [" 'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
              for m in re.findall(r'<script>(.*?)</script>', page, re.S)]
    return CSP.format(extra=''.join(hashes)).encode()


def allowed_hosts(cfg):
    """--allowed-hosts as a set of host names (no port), or None for any: by
    default the bind host and the localhost names; any on 0.0.0.0 / ::,
    where every call needs a token (a rebinding page has none)."""
    given = cfg.get('allowed_hosts')
    if given:
        names = {h.strip().lower().strip('[]') for h in given.split(',') if h.strip()}
        return None if '*' in names else names
    host = str(cfg.get('host') or '127.0.0.1').lower().strip('[]')
    if host in ('0.0.0.0', '::'):
        return None
    return LOCAL_NAMES | {host}


def host_name(value):
    """'example.org:8000' / '[::1]:8000' -> 'example.org' / '::1'."""
    value = value.strip().lower()
    if value.startswith('['):
        return value[1:].split(']', 1)[0]
    return value.rsplit(':', 1)[0] if value.count(':') == 1 else value


class Guard:
    """ASGI middleware before everything else: a Host the server does not
    answer to gets 421 (DNS rebinding), a POST from another site's page (its
    Origin is neither this server nor --allowed-origins) gets 403, and every
    response carries SECURITY_HEADERS and the CSP."""

    def __init__(self, app, cfg):
        self.app, self.hosts = app, allowed_hosts(cfg)
        self.origins = {o.strip().rstrip('/').lower()
                        for o in (cfg.get('allowed_origins') or '').split(',') if o.strip()}
        self.headers = SECURITY_HEADERS + [(b'content-security-policy', csp())]

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        head = {k.decode('latin-1').lower(): v.decode('latin-1')
                for k, v in scope.get('headers') or []}
        host = head.get('host', '')

        async def secured(msg):
            if msg['type'] == 'http.response.start':
                msg = {**msg, 'headers': list(msg.get('headers') or []) + self.headers}
            await send(msg)
        if self.hosts is not None and host_name(host) not in self.hosts:
            return await json_asgi(secured, 421, ApiError(
                421, 'bad_host', 'this server does not answer to that Host name (start it '
                'with --allowed-hosts to add one)').body())
        origin = head.get('origin')
        if scope['method'] == 'POST' and origin is not None and \
                origin.rstrip('/').lower() not in self.origins and \
                origin.lower().split('://', 1)[-1] != host.lower():
            return await json_asgi(secured, 403, ApiError(
                403, 'cross_origin', 'a POST from another site is refused (start the server '
                'with --allowed-origins to allow one)').body())
        return await self.app(scope, receive, secured)


async def json_asgi(send, status, body):
    data = json.dumps(body).encode()
    await send({'type': 'http.response.start', 'status': status,
                'headers': [(b'content-type', b'application/json'),
                            (b'content-length', str(len(data)).encode()),
                            (b'connection', b'close')]})
    await send({'type': 'http.response.body', 'body': data})


# --------------------------------------------------------------------------
# Request handling (module level, so each piece is small and testable).

def answer(e):
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def client(request, proxy=None):
    """The socket's address; from --trusted-proxy only, the last address of
    X-Forwarded-For (the one that proxy added), when it is an address at all.
    uvicorn's own proxy_headers is off (UVICORN), so nothing else rewrites it."""
    peer = request.client.host if request.client else None
    if proxy and peer == proxy:
        last = request.headers.get('x-forwarded-for', '').split(',')[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return peer


def need_token(svc, request, always=False):
    """401 unless the request carries one of the tokens (when the server has
    tokens; `always`: even when it has none, for the audit log)."""
    if (svc.tokens or always) and not token_ok(request.headers.get('authorization'),
                                               svc.tokens):
        raise ApiError(401, 'unauthorized', 'a valid bearer token is required'
                       + ('' if svc.tokens else ' (start the server with --token-file)'),
                       headers={'WWW-Authenticate': 'Bearer'})


def ready(svc):
    if svc.info is None:
        raise ApiError(503, 'not_ready', svc.error or 'the model is loading',
                       headers={'Retry-After': '2'})


async def files_and_fields(request, cfg):
    """The multipart body -> ([(file name, bytes)], {field: value})."""
    try:
        form = await request.form(max_files=cfg['max_files'], max_fields=16,
                                  max_part_size=64 * 1024)
    except BodyTooLarge as e:
        raise ApiError(413, 'too_large', str(e)) from None
    except ClientDisconnect:
        raise
    except Exception as e:  # noqa: BLE001 (starlette's MultiPartException, malformed bodies)
        status = 413 if 'Too many files' in str(e) else 400
        raise ApiError(status, 'too_many_files' if status == 413 else 'bad_request',
                       str(e)) from None
    files, fields = [], {}
    for key, value in form.multi_items():
        if hasattr(value, 'read'):
            files.append((value.filename or key, await value.read()))
            await value.close()
        else:
            fields[key] = value
    await form.close()
    if not files:
        raise ApiError(400, 'no_files', "no file in the request: send multipart form "
                       "field(s) 'files'")
    return files, fields


def options(fields, query, svc):
    """Form fields and query parameters -> the job's options, checked."""
    get = {**dict(query), **fields}.get
    lang = get('lang', 'en')
    if lang not in ('en', 'fr', 'ar'):
        raise ApiError(400, 'bad_lang', f'lang {lang!r}: use en, fr or ar')
    try:
        nsamples = int(get('nsamples', svc.cfg.get('nsamples') or 16))
    except ValueError:
        raise ApiError(400, 'bad_nsamples', 'nsamples must be an integer') from None
    cls = get('class') or None
    if cls is not None and cls not in svc.info.classes:
        raise ApiError(400, 'bad_class', f"class {cls!r}: use one of "
                       f"{', '.join(svc.info.classes)}")
    yes = {'1', 'true', 'yes', 'on'}
    try:   # Accept: application/fhir+json only: the Bundles' subject (default none)
        subject = fhir_bundle.check_subject(get('fhir_subject') or None)
    except ValueError as e:
        raise ApiError(400, 'bad_subject', f'fhir_subject: {e}') from None
    return {'lang': lang, 'segments': str(get('segments', '')).lower() in yes,
            'signal': str(get('signal', '')).lower() in yes, 'cls': cls,
            'nsamples': max(1, min(nsamples, 64)), 'fhir_subject': subject}


async def analyse(svc, request, endpoint, job, limit):
    """Auth and readiness; then the whole body, within --body-seconds and the
    size limits, and the zips' directories (off the event loop): a slow
    client costs a connection, never a slot. Then a pool slot and the job.
    Only analyses that ran are audited: no row for a refused request."""
    row = {'endpoint': endpoint, 'client': client(request, svc.cfg.get('trusted_proxy')),
           'backend': svc.cfg['backend']}
    try:
        need_token(svc, request)
        ready(svc)
        try:
            files, fields = await asyncio.wait_for(files_and_fields(request, svc.cfg),
                                                   svc.cfg.get('body_seconds', BODY_SECONDS))
        except asyncio.TimeoutError:
            raise ApiError(408, 'slow_body', 'the request body did not arrive within '
                           f"{svc.cfg.get('body_seconds', BODY_SECONDS):g} s",
                           headers={'Connection': 'close'}) from None
        opts = options(fields, request.query_params, svc)
        await asyncio.to_thread(check_zips, files, svc.cfg)
        svc.acquire()
    except ClientDisconnect:
        return JSONResponse({'error': 'disconnected', 'file': None,
                             'reason': 'the client went away'}, status_code=400)
    except ApiError as e:
        return answer(e)
    except Exception as e:  # noqa: BLE001 (a body or zip no check foresaw: one 400, keep serving)
        print(f'error: {endpoint}: reading the request: {type(e).__name__}: {e}',
              file=sys.stderr, flush=True)
        return answer(ApiError(400, 'bad_request', 'the request could not be read'))
    # from here the pool's callback (or the timeout) frees the slot
    try:
        result, problems = await svc.run(lambda d: job(svc, files, opts, d), limit)
    except ApiError as e:
        svc.audit.add([row | {'status': e.status, 'error': e.error,
                              'model_sha256': svc.info.sha256}])
        return answer(e)
    except Exception as e:  # noqa: BLE001 (a bug or a library's surprise: one 500, keep serving)
        print(f'error: {endpoint}: {type(e).__name__}: {e}', file=sys.stderr, flush=True)
        svc.audit.add([row | {'status': 500, 'error': 'internal',
                              'model_sha256': svc.info.sha256}])
        return answer(ApiError(500, 'internal', "an internal error while analysing (the "
                               "server's log has it); the server keeps serving"))
    fhir = {'subject': opts['fhir_subject']} if endpoint == 'predict' and wants_fhir(request) \
        else None
    return respond(svc, row, result, problems, fhir)


def wants_fhir(request):
    """Accept lists application/fhir+json (anywhere, whatever its q) -> FHIR R4."""
    accept = request.headers.get('accept', '')
    return any(part.split(';')[0].strip().lower() == fhir_bundle.MEDIA_TYPE
               for part in accept.split(','))


def respond(svc, row, result, problems, fhir=None):
    """The job's result -> JSON (200, or 422 when no record was usable) and its audit rows;
    fhir ({'subject': ...}): a FHIR R4 collection Bundle of the records' Bundles instead
    (docs/fhir.md; errors keep the JSON shape above)."""
    info = svc.info
    row = row | {'model_sha256': info.sha256}
    probs = [{'file': f, 'reason': str(why)[:500]} for f, why in problems]
    bad = [row | {'status': 422, 'error': problem_kind(why)} for _, why in problems]
    if not result:
        f, why = problems[0] if problems else (None, 'no record in the upload')
        svc.audit.add(bad or [row | {'status': 422, 'error': 'other'}])
        return JSONResponse({'error': 'unreadable', 'file': f, 'reason': str(why)[:500],
                             'problems': probs}, status_code=422)
    rows = []
    for res in result if isinstance(result, list) else [result]:
        if 'classes' in res:
            scores = {c['code']: c['probability'] for c in res['classes']}
            decisions = res['diagnoses']
        else:   # an explanation: the explained classes
            scores = {e['code']: e['probability'] for e in res['explained']}
            decisions = [e['code'] for e in res['explained']]
        rows.append(row | {'status': 200, 'record_sha256': res['record_sha256'],
                           'scores': json.dumps(scores), 'decisions': json.dumps(decisions)})
    svc.audit.add(rows + bad)
    model = {'run': info.name, 'sha256': info.sha256, 'backend': svc.cfg['backend'],
             'synthetic': info.synthetic}
    key = 'records' if isinstance(result, list) else 'explanation'
    if fhir is not None and key == 'records':
        desc = fhir_bundle.model_info(info)
        issued = fhir_bundle.now()
        bundle = fhir_bundle.collection(
            [fhir_bundle.result_bundle(res, desc, fhir['subject'], issued) for res in result],
            [(p['file'], p['reason']) for p in probs], issued)
        return JSONResponse(bundle, media_type=fhir_bundle.MEDIA_TYPE)
    return JSONResponse({'model': model, key: result, 'problems': probs})


def _no_paths(obj):
    """The card without the server's file-system paths (a client needs the run,
    not where it lives): 'path' and 'data_dir' keep their last part only; the
    source's 'text' (which quotes a path) is left out."""
    if isinstance(obj, dict):
        return {k: Path(v).name if k in ('path', 'data_dir') and isinstance(v, str)
                else _no_paths(v) for k, v in obj.items() if k != 'text'}
    return obj


def model_answer(svc):
    run, cfg = svc.info, svc.cfg
    return {'card': _no_paths(run.card), 'classes': run.classes, 'leads': run.leads,
            'window': run.window, 'sampling_rate_hz': records.FS,
            'thresholds': dict(zip(run.classes, map(float, run.thresholds))),
            'threshold_source': _no_paths(run.source), 'sha256': run.sha256,
            'backend': cfg['backend'], 'synthetic': run.synthetic,
            'limits': {k: cfg[k] for k in ('max_body_mb', 'max_files', 'max_zip_mb',
                                           'max_zip_ratio', 'seconds', 'explain_seconds',
                                           'pool', 'queue')}}


# --------------------------------------------------------------------------
# The app.

def page_measurement_rows():
    """The page's measurement rows, from the one table (clinic.GLOBAL_ROWS and
    the axes): {'intervals': [[key, text key]], 'axes': [key, ...]}."""
    return {'intervals': [[key, label] for key, label, _ in clinic.GLOBAL_ROWS],
            'axes': list(AXES)}


def create_app(cfg=None):
    """-> (the ASGI app with the body limit, the FastAPI app) for a config
    dict (main() builds it from the flags; uvicorn's workers read
    $ECG_SERVE_CONFIG). The model loads in the background (readyz)."""
    cfg = cfg or json.loads(os.environ['ECG_SERVE_CONFIG'])
    # Uploads stay in memory (the body is capped) instead of spooling to /tmp.
    MultiPartParser.spool_max_size = int(cfg['max_body_mb'] * 2 ** 20) + 1
    svc = Service(cfg)
    threading.Thread(target=svc.load, daemon=True, name='load-model').start()
    app = FastAPI(title='ECG diagnosis API', version='1', docs_url=None, redoc_url=None,
                  description=__doc__.split('\n\n')[0])
    app.state.svc = svc

    @app.exception_handler(ApiError)
    async def api_error(request, e):
        return answer(e)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, e):   # unknown path, wrong method: the same JSON shape
        return answer(ApiError(e.status_code, 'http', str(e.detail), headers=e.headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e):
        first = e.errors()[0] if e.errors() else {}
        return answer(ApiError(422, 'invalid', f"{'.'.join(map(str, first.get('loc', [])))}: "
                               f"{first.get('msg', 'invalid request')}"))

    @app.post('/v1/predict', summary='Diagnose records',
              description='multipart files (a record, a .zip, several records); form or query '
                          'fields lang=en|fr|ar, segments=true, signal=true. With '
                          '`Accept: application/fhir+json`: a FHIR R4 collection Bundle of one '
                          'Bundle a record (field fhir_subject=Patient/123 adds that subject)')
    async def predict_endpoint(request: Request):
        return await analyse(svc, request, 'predict', predict_job, cfg['seconds'])

    @app.post('/v1/explain', summary='SHAP of one record: its predicted classes, or `class`',
              description='multipart files of one record; fields class=CODE, nsamples=16, lang')
    async def explain_endpoint(request: Request):
        return await analyse(svc, request, 'explain', explain_job, cfg['explain_seconds'])

    @app.get('/v1/model', summary='The model card, thresholds and limits')
    async def model_endpoint(request: Request):
        need_token(svc, request)
        ready(svc)
        return model_answer(svc)

    @app.get('/v1/audit', summary='The audit log, newest first (token required)')
    async def audit_endpoint(request: Request, limit: int = 100):
        need_token(svc, request, always=True)
        return {'rows': svc.audit.last(max(1, min(limit, 1000)))}

    @app.get('/healthz')
    async def healthz():
        return {'status': 'ok'}

    @app.get('/readyz')
    async def readyz():
        if svc.info is None:
            return JSONResponse({'status': 'loading' if svc.error is None else 'failed',
                                 'reason': svc.error}, status_code=503)
        return {'status': 'ready', 'busy': svc.busy, 'capacity': svc.capacity}

    @app.get('/app_text.json', include_in_schema=False)
    async def strings():
        return {'languages': app_text.LANGUAGES, 'rtl': sorted(app_text.RTL),
                'text': app_text.TEXT, 'measurements': page_measurement_rows()}

    @app.get('/', include_in_schema=False)
    async def index():
        return FileResponse(ROOT / 'web' / 'index.html', media_type='text/html')

    @app.get('/static/{name}', include_in_schema=False)
    async def static(name: str):
        path = STATIC / Path(name).name
        if not path.is_file():
            raise ApiError(404, 'not_found', f'no static file {Path(name).name}')
        return FileResponse(path)

    @app.get('/docs', include_in_schema=False)
    async def docs():
        return HTMLResponse((STATIC / 'docs.html').read_text())

    return Guard(LimitBody(app, int(cfg['max_body_mb'] * 2 ** 20)), cfg), app


def config(args):
    """Flags -> the config every worker process reads (tokens stay in their file)."""
    path = args.model_path
    if path is None:
        found = runs.find_models(args.root)
        if not found:
            raise SystemExit(f'error: no models/*/best.pt under {Path(args.root).resolve()}; '
                             'train one (make demo) or pass --model-path')
        path = found[0]
    if not Path(path).is_file():
        raise SystemExit(f'error: no checkpoint {path}; pass --model-path models/<run>/best.pt')
    if not is_loopback(args.host) and not args.token_file:
        raise SystemExit(f'error: --host {args.host} listens beyond this machine; give '
                         '--token-file with bearer tokens (refusing to serve without them)')
    if args.require_token and not args.token_file:
        raise SystemExit('error: --require-token needs --token-file with bearer tokens')
    read_tokens(args.token_file)  # fail now, not in a worker
    return {'model_path': str(Path(path).resolve()), 'root': str(Path(args.root).resolve()),
            'backend': args.backend, 'pool': max(1, args.pool), 'queue': max(0, args.queue),
            'audit_db': audit.where(args.audit_db), 'tmp': None,
            'token_file': str(Path(args.token_file).resolve()) if args.token_file else None,
            'max_body_mb': args.max_body_mb, 'max_files': args.max_files,
            'max_zip_mb': args.max_zip_mb, 'max_zip_ratio': args.max_zip_ratio,
            'seconds': args.seconds, 'explain_seconds': args.explain_seconds,
            'threads': args.threads, 'nsamples': args.nsamples,
            'host': args.host, 'allowed_hosts': args.allowed_hosts,
            'allowed_origins': args.allowed_origins, 'trusted_proxy': args.trusted_proxy,
            'audit_max_rows': args.audit_max_rows, 'audit_days': args.audit_days,
            'body_seconds': args.body_seconds}


# uvicorn's options for every server: its proxy_headers (on by default)
# would take X-Forwarded-For from 127.0.0.1 as the client; --trusted-proxy
# does that, for the one proxy named (client()).
UVICORN = {'proxy_headers': False, 'server_header': False}


def factory():
    """uvicorn --factory entry for --workers N: each process builds its own app."""
    return create_app()[0]


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    cfg = config(args)
    # An audit database that cannot be reached stops the server here, in one line.
    audit.Audit(cfg['audit_db'], cfg['audit_max_rows'], cfg['audit_days']).close()
    cfg['tmp'] = tempfile.mkdtemp(prefix='ecg-serve-')
    # uvicorn re-raises SIGTERM after its graceful shutdown: make that an
    # exit, so that the finally below removes the temporary folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Anything a library writes to a temporary file lands in the server's folder.
    os.environ['TMPDIR'] = cfg['tmp']
    tempfile.tempdir = cfg['tmp']
    print(f"serving {cfg['model_path']} ({cfg['backend']}) on http://{args.host}:{args.port} "
          f"with {args.workers} worker(s); tokens: "
          f"{'required' if cfg['token_file'] else 'none (localhost only)'}; audit log "
          f"{audit.shown(cfg['audit_db'])}; temporary files in {cfg['tmp']}", flush=True)
    try:
        if args.workers > 1:
            if cfg['backend'] != 'torch':  # export once here, not in every worker at once
                svc = Service(cfg)
                svc.load()
                svc.close()
                if svc.error:
                    raise SystemExit(f'error: {svc.error}')
            os.environ['ECG_SERVE_CONFIG'] = json.dumps(cfg)
            # a worker imports torch and the model before its first health check:
            # uvicorn's 5 s would restart it in a loop on a loaded machine
            uvicorn.run('serve:factory', factory=True, host=args.host, port=args.port,
                        workers=args.workers, log_level='info', app_dir=str(ROOT),
                        timeout_worker_healthcheck=60, **UVICORN)
        else:
            uvicorn.run(create_app(cfg)[0], host=args.host, port=args.port, log_level='info',
                        **UVICORN)
    finally:
        shutil.rmtree(cfg['tmp'], ignore_errors=True)


if __name__ == '__main__':
    main()
