"""Speed, `python bench.py --only audit`: requests/s that serve.py answers with
its audit log in SQLite (the default) against PostgreSQL (web/audit.py), four
clients, side by side in one run (docs/serving.md). Goal: within 5%.

    python bench.py --only audit            # ~4 min
    python bench.py --only audit --quick    # ~40 s
    ECG_TEST_POSTGRES=postgresql+psycopg://user:pw@host/db python bench.py --only audit

The PostgreSQL server is ECG_TEST_POSTGRES, else .ci/run's local one (LOCAL);
the bench works in a schema of its own, dropped after. Without a server the
PostgreSQL half is skipped with the reason."""
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

import export
from benches.common import cpu_name, random_checkpoint
from benches.speed_serve import (
    _serve_clients,
    _serve_cpu,
    _serve_records,
    serve_process,
    wait_ready,
)
from records import WINDOW
from web import audit

LOCAL = 'postgresql+psycopg://ecg:ecg@127.0.0.1/ecg_test'   # .ci/run makes it
CLIENTS = 4


def _backends(target):
    """The PostgreSQL server processes serving serve.py's connections (its
    pool's application_name), whose CPU is the audit's too; none for SQLite."""
    import psutil
    if not audit.is_url(target):
        return []
    engine = audit.engine_for(audit.url_of(target))
    try:
        with engine.connect() as db:
            pids = db.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name "
                                      "= 'ecg-serve' AND pid <> pg_backend_pid()")).scalars()
            return [psutil.Process(pid) for pid in pids]
    finally:
        engine.dispose()


def _round(server, recs, n, seconds):
    """CLIENTS clients x n requests, or until `seconds`, on server (url,
    process, PostgreSQL backends) -> (requests/s, CPU ms a request, ok, errors)."""
    url, proc, backends = server
    cpu0 = _serve_cpu(proc) + sum(_serve_cpu(b) for b in backends)
    t0 = time.perf_counter()
    lat, errors = _serve_clients(url, recs, CLIENTS, n, t0 + seconds)
    rate = len(lat) / (time.perf_counter() - t0)
    cpu = _serve_cpu(proc) + sum(_serve_cpu(b) for b in backends) - cpu0
    return rate, cpu / max(1, len(lat)) * 1000, len(lat), len(errors)


def _add_ms(target, rows):
    """Milliseconds of Audit.add for one row (insert + retention), in this process."""
    log = audit.Audit(target)
    try:
        row = {'endpoint': 'predict', 'client': '127.0.0.1', 'status': 200,
               'record_sha256': 'r' * 64, 'model_sha256': 'm' * 64, 'backend': 'onnx',
               'scores': '{}', 'decisions': '[]'}
        t0 = time.perf_counter()
        for _ in range(rows):
            log.add([row])
        return (time.perf_counter() - t0) / rows * 1000
    finally:
        log.close()


def _count(target):
    engine = audit.engine_for(audit.url_of(target))
    try:
        with engine.connect() as db:
            return db.execute(sa.select(sa.func.count()).select_from(audit.ANALYSES)).scalar()
    finally:
        engine.dispose()


def run(args):
    """serve.py's requests/s, SQLite audit against PostgreSQL audit.

    One `python serve.py` per back end (onnx, one worker; --quick: ResNet-18
    on a 5-s window, else ResNet-34 on the study's 30 s), both up at once;
    rounds alternate between them (SQLite, PostgreSQL, SQLite, ...), each of
    4 concurrent clients posting N records, bounded in seconds, so that the
    shared machine's drift falls on both alike. Prints each round's
    requests/s and CPU time a request (serve.py's, plus PostgreSQL's server
    processes for its connections: less sensitive to other jobs than wall
    time), the median of each, the PostgreSQL/SQLite ratio (the median of the
    paired rounds' ratios), the rows each log holds after, and the cost of one
    Audit.add (insert + retention) timed in this process.
    """
    arch, window = ('resnet18', 2500) if args.quick else ('resnet34', WINDOW)
    rounds, n, seconds, adds = (1, 3, 15, 50) if args.quick else (8, 8, 40, 500)
    tmp = Path(tempfile.mkdtemp(prefix='bench-audit-'))
    out = {'cpu': cpu_name(), 'arch': arch, 'window': window, 'clients': CLIENTS}
    print(f"{out['cpu']}, {os.cpu_count()} cores; {arch}, 12 x {window}, onnx, 1 worker; "
          f'{CLIENTS} clients x {n} requests (<= {seconds} s) a round, {rounds} round(s) each:')
    try:
        with contextlib.ExitStack() as stack:
            targets = {'sqlite': str(tmp / 'audit.sqlite3')}
            pg = os.environ.get('ECG_TEST_POSTGRES') or LOCAL
            try:
                targets['postgresql'] = stack.enter_context(audit.scratch_schema(pg))
            except SQLAlchemyError as e:
                out['postgresql_skipped'] = (f'no PostgreSQL at {audit.shown(pg)}: '
                                             f'{audit.one_line(e, audit.url_of(pg))}')
                print(f"  PostgreSQL half skipped: {out['postgresql_skipped']} (set "
                      'ECG_TEST_POSTGRES, or run .ci/run once)')
            out.update(_measure(stack, tmp, targets, arch, window, rounds, n, seconds, adds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _measure(stack, tmp, targets, arch, window, rounds, n, seconds, adds):
    import psutil
    recs, which = _serve_records(tmp)
    model_path, info = random_checkpoint(tmp, arch, window)
    export.export(model_path, tmp, quantize=None, calibration=8, run=info)  # once, not per server
    started = {name: stack.enter_context(serve_process(
        model_path, tmp, name, '--queue', 2 * CLIENTS, '--audit-db', target))
        for name, target in targets.items()}
    servers = {}
    for name, (url, proc, log_path) in started.items():
        wait_ready(url, proc, log_path)
        _serve_clients(url, recs, 2, 1, time.perf_counter() + 60)   # warm-up
        servers[name] = (url, psutil.Process(proc.pid), _backends(targets[name]))
    rates, cpus = {name: [] for name in targets}, {name: [] for name in targets}
    for k in range(rounds):
        for name, server in servers.items():
            rate, cpu, ok, errors = _round(server, recs, n, seconds)
            rates[name].append(rate)
            cpus[name].append(cpu)
            print(f'  round {k + 1} {name:10s}: {ok} ok, {errors} errors, {rate:.2f} req/s, '
                  f'{cpu:.0f} ms CPU a request', flush=True)
    res = {'records': which, 'rps': {name: float(np.median(r)) for name, r in rates.items()},
           'cpu_ms': {name: float(np.median(c)) for name, c in cpus.items()},
           'rounds': rates, 'rows': {name: _count(t) for name, t in targets.items()},
           'add_ms': {name: _add_ms(t, adds) for name, t in targets.items()}}
    for name in targets:
        print(f"  {name:10s}: median {res['rps'][name]:.2f} req/s, {res['cpu_ms'][name]:.0f} ms "
              f"CPU a request; {res['rows'][name]} rows in its log; Audit.add "
              f"{res['add_ms'][name]:.2f} ms a row ({adds} rows, in-process)")
    if 'postgresql' in targets:
        # each PostgreSQL round against the SQLite round just before it: the
        # machine's drift between rounds cancels
        pairs = np.array(rates['postgresql']) / np.array(rates['sqlite'])
        res['ratio'] = float(np.median(pairs))
        res['cpu_ratio'] = res['cpu_ms']['postgresql'] / res['cpu_ms']['sqlite']
        print(f"  PostgreSQL / SQLite: x{res['ratio']:.3f} requests/s (median of the "
              f"{rounds} paired rounds; {'within' if abs(res['ratio'] - 1) <= 0.05 else 'outside'}"
              f" the 5% goal), x{res['cpu_ratio']:.3f} CPU a request")
    return res
