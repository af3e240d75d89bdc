"""web/audit.py, serve.py's audit log, the same checks on both back ends:
SQLite (a file) and PostgreSQL (a URL); and two serve.py processes writing
one PostgreSQL trail.

The PostgreSQL half needs a server: ECG_TEST_POSTGRES=postgresql+psycopg://
user:password@host/db (a role that may create schemas there; .ci/run starts
Debian's PostgreSQL and sets it). Without it those tests skip with the
reason, unless ECG_REQUIRE_POSTGRES=1 (CI), where they fail. Each test works
in a schema of its own (audit.scratch_schema), dropped after.

    ECG_TEST_POSTGRES=postgresql+psycopg://ecg:ecg@127.0.0.1/ecg_test \\
        .venv/bin/python -m pytest -q tests/test_audit.py
"""
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from web_helpers import TOKEN, free_port, make_root, record_upload

import serve
import utils
from web import audit

ROOT = Path(__file__).resolve().parents[1]


def postgres_url():
    """ECG_TEST_POSTGRES, or skip (fail under ECG_REQUIRE_POSTGRES=1)."""
    url = os.environ.get('ECG_TEST_POSTGRES')
    if not url:
        why = ('ECG_TEST_POSTGRES is unset (a PostgreSQL URL, e.g. postgresql+psycopg://'
               'ecg:ecg@127.0.0.1/ecg_test; .ci/run starts one)')
        if os.environ.get('ECG_REQUIRE_POSTGRES') == '1':
            pytest.fail(f'ECG_REQUIRE_POSTGRES=1 but {why}')
        pytest.skip(why)
    return url


@pytest.fixture
def pg_target():
    with audit.scratch_schema(postgres_url()) as url:
        yield url


@pytest.fixture(params=['sqlite', 'postgresql'])
def target(request, tmp_path):
    if request.param == 'sqlite':
        return str(tmp_path / 'audit.sqlite3')
    return request.getfixturevalue('pg_target')


@pytest.fixture
def log(target):
    log = audit.Audit(target, max_rows=3, days=1)
    yield log
    log.close()


def add(log, *names):
    for name in names:
        log.add([{'endpoint': 'predict', 'status': 200, 'model_sha256': name}])


def test_rows_come_back_newest_first_with_the_columns_given(log):
    log.add([{'endpoint': 'predict', 'client': '127.0.0.1', 'status': 200,
              'record_sha256': 'r' * 64, 'model_sha256': 'm' * 64, 'backend': 'onnx',
              'scores': json.dumps({'AF': 0.9}), 'decisions': json.dumps(['AF']),
              'file': 'A0001.mat', 'name': 'Jane Doe'},     # not columns: never stored
             {'endpoint': 'explain', 'status': 422, 'model_sha256': 'm' * 64,
              'error': 'corrupt'}])
    rows = log.last(10)
    assert [r['endpoint'] for r in rows] == ['explain', 'predict']
    assert rows[0]['id'] > rows[1]['id']
    assert set(rows[0]) == {'id', *audit.COLUMNS}
    assert rows[1]['scores'] == '{"AF": 0.9}' and rows[1]['status'] == 200
    assert rows[0]['error'] == 'corrupt' and rows[0]['record_sha256'] is None
    assert time.strptime(rows[0]['time'], audit.STAMP)
    assert 'A0001' not in repr(rows) and 'Jane' not in repr(rows)


def test_retention_by_rows_and_age(log):
    add(log, '0', '1', '2', '3', '4')
    assert [r['model_sha256'] for r in log.last(10)] == ['4', '3', '2']
    with log.engine.begin() as db:
        db.execute(audit.ANALYSES.update().where(audit.ANALYSES.c.model_sha256 == '4')
                   .values(time='2000-01-01T00:00:00Z'))
    add(log, '5')       # the scan by age ran at the first add: not again within a minute
    assert [r['model_sha256'] for r in log.last(10)] == ['5', '4', '3']
    log.pruned = -math.inf
    add(log, '6')
    assert [r['model_sha256'] for r in log.last(10)] == ['6', '5']


def test_the_table_has_no_column_for_a_name_a_signal_or_a_patient(log, target):
    """The columns, exactly: a new one has to be added here, on purpose."""
    columns = {c['name'] for c in sa.inspect(log.engine).get_columns('analyses')}
    assert columns == {'id', 'time', 'endpoint', 'client', 'status', 'record_sha256',
                       'model_sha256', 'backend', 'scores', 'decisions', 'error'}
    if not audit.is_url(target):    # the embedded log keeps WAL, its readers never blocked
        assert sqlite3.connect(target).execute('PRAGMA journal_mode').fetchone()[0] == 'wal'


def test_processes_appending_at_once_lose_no_row(target):
    """Three processes (as --workers or replicas) append 40 rows each at once."""
    code = ('import sys; from web import audit; log = audit.Audit(sys.argv[1]); '
            '[log.add([{"endpoint": "predict", "status": 200, "model_sha256": sys.argv[2]}]) '
            'for _ in range(40)]')
    audit.Audit(target).close()   # the table exists before they race
    children = [subprocess.Popen([sys.executable, '-c', code, target, f'p{i}'], cwd=ROOT,
                                 stderr=subprocess.PIPE, text=True) for i in range(3)]
    for child in children:
        assert child.wait(120) == 0, child.stderr.read()
    log = audit.Audit(target)
    try:
        rows = log.last(1000)
    finally:
        log.close()
    assert len(rows) == 120
    assert {name: sum(r['model_sha256'] == name for r in rows) for name in ('p0', 'p1', 'p2')} \
        == {'p0': 40, 'p1': 40, 'p2': 40}
    assert len({r['id'] for r in rows}) == 120


def test_targets_and_what_is_shown_of_them(tmp_path):
    assert audit.where('a/b.sqlite3') == str(Path('a/b.sqlite3').resolve())
    url = 'postgresql://ecg:s3cret-pw@db.example:5433/ecg'
    assert audit.where(url) == url
    assert audit.url_of(url).drivername == 'postgresql+psycopg'
    assert audit.shown(url) == 'postgresql+psycopg://ecg:***@db.example:5433/ecg'
    assert 's3cret' not in audit.shown(url + '?password=s3cret-pw')
    with pytest.raises(SystemExit, match='a SQLite path or a postgresql:// URL'):
        audit.url_of('mysql://ecg@db.example/ecg')
    with pytest.raises(SystemExit, match='neither a path nor a database URL'):
        audit.url_of('postgresql://ecg@db.example:port/ecg')


def test_an_unreachable_database_stops_the_server_in_one_line_without_its_password(
        tmp_path, capsys):
    """serve.py with a PostgreSQL URL nothing answers: one line that names the
    URL, the password left out, and no server (main() ends before uvicorn)."""
    make_root(tmp_path)
    url = f'postgresql://ecg:s3cret-pw@127.0.0.1:{free_port()}/ecg'
    with pytest.raises(SystemExit) as e:
        serve.main(['--root', str(tmp_path), '--backend', 'torch', '--port', str(free_port()),
                    '--audit-db', url])
    line = str(e.value)
    assert line.startswith('error: cannot open the audit log postgresql+psycopg://ecg:***@'
                           '127.0.0.1:'), line
    assert len(line.splitlines()) == 1 and 'refused' in line and 's3cret' not in line
    out = capsys.readouterr()
    assert out.out == '' and 's3cret' not in out.err   # not even the "serving ..." line


def serve_process(root, url, log):
    """`python serve.py` on a free port with --audit-db url -> (process, base url)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / 'serve.py'), '--root', str(root),
                             '--backend', 'torch', '--port', str(port), '--audit-db', url,
                             '--token-file', str(root / 'tokens.txt')],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc, f'http://127.0.0.1:{port}'


def wait_ready(proc, base, log_path):
    for _ in range(600):
        try:
            if httpx.get(f'{base}/readyz', timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log_path.read_text()[-2000:]
        time.sleep(0.2)
    raise AssertionError(f'serve.py not ready in 120 s: {log_path.read_text()[-2000:]}')


@pytest.mark.slow
def test_two_servers_write_one_trail(tmp_path, pg_target):
    """Two serve.py processes, one PostgreSQL URL: every analysis of either
    is a row of the one table, and each server's /v1/audit shows them all."""
    make_root(tmp_path)
    (tmp_path / 'tokens.txt').write_text(f'{TOKEN}\n')
    logs = [tmp_path / f'serve{i}.log' for i in range(2)]
    servers = []
    try:
        for path in logs:
            with open(path, 'w') as log:
                servers.append(serve_process(tmp_path, pg_target, log))
        for (proc, base), path in zip(servers, logs):
            wait_ready(proc, base, path)
        auth = {'Authorization': f'Bearer {TOKEN}'}
        for i, (_, base) in enumerate(servers * 2):
            files = [('files', f) for f in record_upload(f'TWO{i}', seed=20 + i)]
            r = httpx.post(f'{base}/v1/predict', files=files, headers=auth, timeout=60)
            assert r.status_code == 200, r.text
        seen = [httpx.get(f'{base}/v1/audit', headers=auth, timeout=30).json()['rows']
                for _, base in servers]
    finally:
        for proc, _ in servers:
            utils.stop_process(proc, 20)
    assert seen[0] == seen[1] and len(seen[0]) == 4
    assert all(r['status'] == 200 and len(r['record_sha256']) == 64 for r in seen[0])
    assert len({r['record_sha256'] for r in seen[0]}) == 4
    engine = sa.create_engine(audit.url_of(pg_target))
    try:
        with engine.connect() as db:
            assert db.execute(sa.text('SELECT COUNT(*) FROM analyses')).scalar() == 4
    finally:
        engine.dispose()
    shown = audit.shown(pg_target)
    assert all(f'audit log {shown};' in p.read_text() for p in logs)
