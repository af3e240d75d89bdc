"""serve.py's audit log: one table, `analyses`, in an embedded SQLite file (a
path, the default) or in PostgreSQL (a URL), so that replicas and
`--workers N` processes write one trail. One code path for both (SQLAlchemy
Core), with the same rows, schema and retention:

    python serve.py --audit-db results/serve/audit.sqlite3             # the default
    python serve.py --audit-db postgresql://ecg@db.example/ecg         # every replica, one table
    PGPASSWORD=... python serve.py --audit-db postgresql+psycopg://ecg@127.0.0.1/ecg

`postgresql://` means psycopg 3. Give the password by PGPASSWORD or
~/.pgpass rather than on the command line; wherever it comes from, it is never
printed. `?options=-csearch_path%3DNAME` puts the table in schema NAME.

A row: time (UTC), endpoint, client address, HTTP status, the record's and the
model's sha256, backend, scores and decisions (JSON), an error kind. No
signal, no file name, no patient field. Retention: the newest `max_rows`
rows, none older than `days` (pruned as rows come).
"""
import contextlib
import math
import secrets
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

MAX_ROWS = 1_000_000   # ~200 B a row: ~200 MB of log at most
AGE_SCAN_SECONDS = 60  # retention by age scans the table: once a minute at most
SQLITE_TIMEOUT = 30    # seconds a writer waits for another process's lock
PG_POOL = 2            # the event loop thread writes; /v1/audit reads beside it
CONNECT_TIMEOUT = 10   # seconds, so that a wrong host fails start-up quickly
STAMP = '%Y-%m-%dT%H:%M:%SZ'

METADATA = sa.MetaData()
# id: BIGINT identity on PostgreSQL (many replicas, years of rows); on SQLite
# INTEGER PRIMARY KEY, the rowid, as existing log files already have it.
ANALYSES = sa.Table(
    'analyses', METADATA,
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Identity(),
              primary_key=True),
    sa.Column('time', sa.Text, nullable=False),
    sa.Column('endpoint', sa.Text, nullable=False),
    sa.Column('client', sa.Text),
    sa.Column('status', sa.Integer, nullable=False),
    sa.Column('record_sha256', sa.Text),
    sa.Column('model_sha256', sa.Text, nullable=False),
    sa.Column('backend', sa.Text),
    sa.Column('scores', sa.Text),
    sa.Column('decisions', sa.Text),
    sa.Column('error', sa.Text))
COLUMNS = tuple(c.name for c in ANALYSES.columns if c.name != 'id')


def is_url(target):
    return '://' in str(target)


def where(target):
    """--audit-db as every process must read it: a path made absolute (uvicorn's
    workers may start elsewhere), a URL as given."""
    return str(target) if is_url(target) else str(Path(target).resolve())


def url_of(target):
    """A path or URL -> the SQLAlchemy URL: a path is SQLite; postgresql:// (and
    postgres://) is psycopg 3, the driver requirements.txt installs."""
    if not is_url(target):
        return sa.URL.create('sqlite', database=where(target))
    try:
        url = make_url(str(target))
    except (ArgumentError, ValueError):
        raise SystemExit('error: --audit-db is neither a path nor a database URL such as '
                         'postgresql://user@host/db') from None
    if url.drivername in ('postgresql', 'postgres'):
        url = url.set(drivername='postgresql+psycopg')
    if url.get_backend_name() not in ('sqlite', 'postgresql'):
        raise SystemExit(f'error: --audit-db {shown(url)}: give a SQLite path or a '
                         'postgresql:// URL')
    return url


def shown(target):
    """What may be printed of the target: a path, or the URL without its
    password (in the user part or as a query parameter)."""
    url = target if isinstance(target, sa.URL) else url_of(target)
    if url.get_backend_name() == 'sqlite':
        return url.database
    return url.difference_update_query(['password']).render_as_string(hide_password=True)


def engine_for(url):
    """SQLite: WAL (readers and the workers' writers do not block each other),
    its busy timeout; PostgreSQL: a small pool that tests a connection before
    use (a restarted server or a dropped connection costs no request)."""
    if url.get_backend_name() == 'sqlite':
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={'timeout': SQLITE_TIMEOUT,
                                                     'check_same_thread': False})
        sa.event.listen(engine, 'connect',
                        lambda dbapi, _: dbapi.execute('PRAGMA journal_mode=WAL'))
        return engine
    return sa.create_engine(url, pool_size=PG_POOL, max_overflow=PG_POOL, pool_pre_ping=True,
                            pool_recycle=1800,
                            connect_args={'connect_timeout': CONNECT_TIMEOUT,
                                          'application_name': 'ecg-serve'})


def one_line(error, url):
    """A driver's error as one line, the password taken out should it appear."""
    text = str(getattr(error, 'orig', None) or error)
    text = '; '.join(line.strip() for line in text.splitlines() if line.strip())
    return text.replace(url.password, '***') if url.password else text


class Audit:
    """The append-only log (see the module's docstring). Several processes
    append at once: SQLite by WAL and its lock, PostgreSQL by its identity
    column. Opening it creates the table if absent; a database that cannot be
    reached is one line, naming it without its password, and no server."""

    def __init__(self, target, max_rows=MAX_ROWS, days=None):
        self.url = url_of(target)
        self.shown = shown(self.url)
        self.max_rows, self.days, self.pruned = max(1, int(max_rows)), days, -math.inf
        try:
            self.engine = engine_for(self.url)
        except (NoSuchModuleError, ImportError) as e:
            raise SystemExit(f'error: --audit-db {self.shown}: its driver is missing ({e}); '
                             'pip install -r requirements.txt') from None
        except OSError as e:
            raise SystemExit(f'error: cannot create the audit log {self.shown}: '
                             f'{e.strerror}') from None
        try:
            create_table(self.engine)
        except SQLAlchemyError as e:
            self.engine.dispose()
            raise SystemExit(f'error: cannot open the audit log {self.shown}: '
                             f'{one_line(e, self.url)}') from None

    def add(self, rows):
        stamp = time.strftime(STAMP, time.gmtime())
        values = [{c: stamp if c == 'time' else r.get(c) for c in COLUMNS} for r in rows]
        if not values:
            return
        # one transaction, one commit (the cost of a row is its commit's flush)
        with self.engine.begin() as db:
            db.execute(ANALYSES.insert(), values)
            self.prune(db)

    def prune(self, db):
        """Retention, the same on both: ids below the newest minus max_rows
        (an index range), and by age once every AGE_SCAN_SECONDS at most.
        Writers of several processes delete in the same (id) order: one waits
        for the other's commit, then finds those rows gone."""
        newest = sa.select(sa.func.max(ANALYSES.c.id)).scalar_subquery()
        db.execute(ANALYSES.delete().where(ANALYSES.c.id <= newest - self.max_rows))
        if self.days is not None and time.monotonic() - self.pruned > AGE_SCAN_SECONDS:
            self.pruned = time.monotonic()
            cut = time.strftime(STAMP, time.gmtime(time.time() - self.days * 86400))
            db.execute(ANALYSES.delete().where(ANALYSES.c.time < cut))

    def last(self, n):
        """The newest n rows, newest first, as dicts (id and COLUMNS)."""
        query = sa.select(ANALYSES).order_by(ANALYSES.c.id.desc()).limit(n)
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def close(self):
        self.engine.dispose()


def create_table(engine):
    try:
        METADATA.create_all(engine)
    except DBAPIError:
        # Replicas starting at once: another one created it between the
        # check and our CREATE TABLE.
        if not sa.inspect(engine).has_table(ANALYSES.name):
            raise


@contextlib.contextmanager
def scratch_schema(url):
    """A PostgreSQL URL -> the same URL (a string, password kept) on a new
    empty schema, dropped with its rows on exit: a test or bench run of its
    own that no other run sees."""
    url = url_of(url)
    name = f'ecg_audit_{secrets.token_hex(6)}'
    engine = sa.create_engine(url, connect_args={'connect_timeout': CONNECT_TIMEOUT})
    try:
        with engine.begin() as db:
            db.execute(sa.text(f'CREATE SCHEMA {name}'))
        try:
            yield url.update_query_dict({'options': f'-csearch_path={name}'}) \
                .render_as_string(hide_password=False)
        finally:
            with engine.begin() as db:
                db.execute(sa.text(f'DROP SCHEMA {name} CASCADE'))
    finally:
        engine.dispose()
