"""Speed, `python bench.py --only serve`: serve.py under a bounded load on
127.0.0.1 (throughput, latency percentiles, CPU and memory) against the same
records read, scored and measured in this process (docs/serving.md).

psutil and httpx are imported where they are used: they come with
requirements-bench.txt and requirements-dev.txt, not with requirements.txt."""
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import export
import serve
import synthetic
import utils
from benches.common import ROOT, SHARED, random_checkpoint
from records import WINDOW, uploads
from resnet import probabilities


def _serve_records(tmp):
    """The bench's uploads: 8 real 10-s 12-lead records, synthetic without ../shared."""
    shared = SHARED / 'physionet2021'
    names = sorted(p.stem for p in shared.glob('E075*.hea'))[:8] if shared.is_dir() else []
    if names:
        return [[(f'{n}.{s}', (shared / f'{n}.{s}').read_bytes()) for s in ('hea', 'mat')]
                for n in names], f'{len(names)} real 10-s 12-lead records (physionet2021 E075xx)'
    recs = []
    for i in range(8):
        synthetic.write_record(synthetic.make_record(i, i % 9, duration=10.0), tmp, f'S{i}')
        recs.append([(f'S{i}.{s}', (tmp / f'S{i}.{s}').read_bytes()) for s in ('hea', 'mat')])
    return recs, '8 synthetic 10-s records'


def _serve_in_process(info, score, recs, count, seconds, meas=False):
    """Records a second, read (uploads.load_uploads) and scored one at a time
    as the server does (+ its measurements, serve.measurements, with meas)
    -> (rate, CPU ms a record, first outputs)."""
    import psutil

    def one(files):
        r, _ = uploads.load_uploads(files, info.leads, info.window)
        if meas:
            serve.measurements(r[0])
        return score(r[0].x[None])
    outs = [one(f) for f in recs[:2]]  # warm-up
    me = psutil.Process()
    cpu0, t0, k = sum(me.cpu_times()[:2]), time.perf_counter(), 0
    while k < count and time.perf_counter() - t0 < seconds:
        one(recs[k % len(recs)])
        k += 1
    cpu = (sum(me.cpu_times()[:2]) - cpu0) / k * 1000
    return k / (time.perf_counter() - t0), cpu, outs


def _serve_rss(proc):
    """Resident MB of a process and its children (uvicorn's workers)."""
    import psutil
    try:
        return sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True)) / 2 ** 20
    except psutil.Error:
        return float('nan')


def _serve_cpu(proc):
    """CPU seconds (user + system) of a process and its children."""
    import psutil
    try:
        return sum(sum(p.cpu_times()[:2]) for p in [proc] + proc.children(recursive=True))
    except psutil.Error:
        return float('nan')


def _serve_clients(url, recs, clients, n, stop_at):
    """C concurrent clients (asyncio tasks on one connection pool, one
    thread) posting records N times each, or until stop_at -> (latencies,
    errors). One event loop rather than C threads: on 2 cores the threads'
    GIL hand-offs took 11 ms of CPU a request from the server they measure,
    the loop 4 ms."""
    import httpx
    lat, errors = [], []

    async def client(c, h):
        for i in range(n):
            if time.perf_counter() > stop_at:
                return
            t = time.perf_counter()
            try:
                r = await h.post('/v1/predict',
                                 files=[('files', f) for f in recs[(c + i) % len(recs)]])
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            (lat if ok else errors).append(time.perf_counter() - t)

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=clients)) as h:
            await asyncio.gather(*(client(c, h) for c in range(clients)))
    asyncio.run(run())
    return lat, errors


@contextlib.contextmanager
def serve_process(model_path, tmp, name, *flags):
    """`python serve.py FLAGS` on a free port of 127.0.0.1 (its audit log
    under tmp unless FLAGS name one) -> (its URL, the process, its log);
    stopped on exit."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    audit = [] if '--audit-db' in flags else ['--audit-db', str(tmp / 'audit.sqlite3')]
    log_path = tmp / f'serve-{name}.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / 'serve.py'), '--model-path', str(model_path),
             '--root', str(tmp), '--port', str(port), *audit, *map(str, flags)],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f'http://127.0.0.1:{port}', proc, log_path
    finally:
        utils.stop_process(proc, 20)


def wait_ready(url, proc, log_path, limit_s=180):
    """Until readyz is 200 (the model loaded); the log's end if it exits."""
    import httpx
    t0 = time.perf_counter()
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f'{url}/readyz', timeout=2).status_code == 200:
                return
        if proc.poll() is not None or time.perf_counter() - t0 > limit_s:
            raise RuntimeError(f'serve.py did not start: {log_path.read_text()[-500:]}')
        time.sleep(0.3)


def _serve_load(model_path, tmp, recs, backend, workers, clients, n, load_s):
    """`python serve.py` in a subprocess under C clients x N requests -> dict."""
    import psutil
    with serve_process(model_path, tmp, f'{backend}-{workers}', '--workers', workers,
                       '--backend', backend, '--queue', 2 * clients) as (url, proc, log_path):
        wait_ready(url, proc, log_path)
        _serve_clients(url, recs, workers * 2, 1, time.perf_counter() + 60)  # warm-up
        ps = psutil.Process(proc.pid)
        rss0, cpu0 = _serve_rss(ps), _serve_cpu(ps)
        t0 = time.perf_counter()
        lat, errors = _serve_clients(url, recs, clients, n, t0 + load_s)
        wall = time.perf_counter() - t0
        rss1, cpu1 = _serve_rss(ps), _serve_cpu(ps)
    ms = np.array(lat) * 1000
    pct = {f'p{q}_ms': float(np.percentile(ms, q)) if len(ms) else float('nan')
           for q in (50, 95, 99)}
    return {'backend': backend, 'workers': workers, 'clients': clients, 'requests': len(lat),
            'errors': len(errors), 'rps': len(lat) / wall, **pct, 'rss_warm_mb': rss0,
            'rss_end_mb': rss1, 'cpu_ms': (cpu1 - cpu0) / max(1, len(lat)) * 1000}


def run(args):
    """serve.py under a bounded load on 127.0.0.1 (docs/serving.md).

    A random ResNet-34 on the study's 30-s window (the cost does not depend
    on the weights; --quick: ResNet-18, 5 s, two settings) is served by
    `python serve.py` in a subprocess per setting: backend torch / onnx
    (fp32) / onnx-int8, --workers 1 or 2. C clients (asyncio tasks) each
    post real 10-s 12-lead records (../shared/data/physionet2021, synthetic
    without it) N times; every loop stops after its count or its seconds.
    Prints throughput, p50/p95/p99 latency, errors, the server's CPU time a
    request and resident memory (all its processes) after the warm-up and at
    the end, and the same records read, scored and measured in-process one
    at a time (everything the API computes), so that the HTTP and multipart
    cost is a ratio ('x in-process'; the model alone is printed beside it).
    """
    arch, window = ('resnet18', 2500) if args.quick else ('resnet34', WINDOW)
    n_one, n_four, load_s = (2, 2, 20) if args.quick else (40, 15, 120)
    backends = ('torch', 'onnx') if args.quick else ('torch', 'onnx', 'onnx-int8')
    settings = [('torch', 1, 1, n_one), ('onnx', 1, 2, n_four)] if args.quick else [
        ('torch', 1, 1, n_one), ('torch', 1, 4, n_four), ('torch', 2, 4, n_four),
        ('onnx', 1, 1, n_one), ('onnx', 1, 4, n_four), ('onnx-int8', 1, 1, n_one)]
    tmp = Path(tempfile.mkdtemp(prefix='bench-serve-'))
    try:
        recs, which = _serve_records(tmp)
        model_path, info = random_checkpoint(tmp, arch, window)
        export.export(model_path, tmp, quantize=None if args.quick else 'int8', calibration=8,
                      run=info)
        scorers = {'torch': lambda x: probabilities(info.model, x)}
        for b, p in (('onnx', 'fp32'), ('onnx-int8', 'int8'))[:len(backends) - 1]:
            sess = export.session(export.onnx_path(model_path, p))
            scorers[b] = lambda x, sess=sess: export.onnx_probabilities(sess, x)
        print(f'{arch}, 12 x {window}, {torch.get_num_threads()} torch thread(s), {which}; '
              f'each setting bounded to {load_s} s:')
        out = {'arch': arch, 'window': window, 'records': which, 'in_process_rps': {},
               'in_process_api_work_rps': {}, 'in_process_cpu_ms': {}}
        count, ref = (2 if args.quick else 2 * len(recs)), None
        for backend in backends:
            rate, _, probs = _serve_in_process(info, scorers[backend], recs, count, load_s / 8)
            api, cpu, _ = _serve_in_process(info, scorers[backend], recs, count, load_s / 8,
                                            True)
            ref = probs if ref is None else ref
            diff = max(float(np.abs(a - b).max()) for a, b in zip(probs, ref))
            out['in_process_rps'][backend] = rate
            out['in_process_api_work_rps'][backend] = api
            out['in_process_cpu_ms'][backend] = cpu
            print(f'  in-process {backend:9s}: read + model {rate:.2f} records/s ({1000 / rate:.0f}'
                  f' ms each), + measurements (all the API computes) {api:.2f}/s '
                  f'({1000 / api:.0f} ms, CPU {cpu:.0f} ms); max |prob - torch| {diff:.1e}')
        out['runs'] = []
        for backend, workers, clients, n in settings:
            r = _serve_load(model_path, tmp, recs, backend, workers, clients, n, load_s)
            # the HTTP, multipart, staging and JSON cost: served against the
            # same work (read, model, measurements) done in this process
            r['vs_in_process'] = r['rps'] / out['in_process_api_work_rps'][backend]
            out['runs'].append(r)
            print(f"  serve {backend:9s} workers {workers} clients {clients}: {r['requests']} "
                  f"ok, {r['errors']} errors, {r['rps']:.2f} req/s (x{r['vs_in_process']:.2f} "
                  f"in-process), p50 {r['p50_ms']:.0f} / p95 {r['p95_ms']:.0f} / p99 "
                  f"{r['p99_ms']:.0f} ms; server CPU {r['cpu_ms']:.0f} ms a request; RSS "
                  f"{r['rss_warm_mb']:.0f} -> {r['rss_end_mb']:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
