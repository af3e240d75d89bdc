"""Scoring an archive of records: the per-record work of `predict.py --records`
(read, prepare, measure: one function, the same on every engine), run in the
main process, in worker processes or on a Ray cluster while the model scores,
with the rows streamed to CSV or Parquet and a run that can be resumed.

    python predict.py --model-path M --records archive/ --workers 2 --out scores.parquet
    python predict.py --model-path M --records-from list.txt --resume --out scores.csv
    python predict.py --model-path M --records archive/ --engine ray --address auto

Rows go to OUT.partial as they are scored (one flushed line a record), so a
kill loses at most the batch being scored; the finished file appears under
OUT (CSV, or Parquet converted from the journal in bounded memory) only at
the end, atomically. --resume keeps the journal's complete lines and skips
the records it holds (by name and content hash). docs/scale.md has the figures.
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import measure
import utils
from records import (
    FS,
    RecordError,
    iter_records,
    length_at_fs,
    prepare,
    read_list,
    read_record,
    WFDB_SUFFIXES,
    record_base,
    segment_ends,
)
from records.measurements import DEVICE_KEYS, device_column

MEASURE_COLUMNS = list(measure.KEYS)
DEVICE_COLUMNS = [device_column(k) for k in DEVICE_KEYS] + [device_column('statements')]
# Windows a worker prepares in one task with --segments: a 24-h Holter is
# 2,880 windows of 30 s, which must not sit in memory at once.
CHUNK_WINDOWS = 64
# Ray: the CPUs a reading task reserves. Reading waits on the disk as much as
# it computes, and one core each left the cores idle beside the model's actor.
READ_CPUS = 0.5


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a worker needs to read a record as the model expects it (picklable)."""
    leads: tuple
    window: int
    segments: bool = False
    lead_map: str = None
    fs: float = None
    allow_outside: bool = False


# --------------------------------------------------------------------------
# Paths and keys.

def walk(patterns=(), records_from=None):
    """--records and --records-from -> yields (path, None) or (None, problem),
    lazily: a folder is listed one directory at a time, a list file one line
    at a time."""
    yield from iter_records(list(patterns))
    if records_from:
        yield from iter_records(read_list(records_from))


def content_hash(path):
    """sha256 (16 hex digits) of a record's bytes: the file read, or a WFDB
    record's header and the signal files beside it with its base name."""
    path = Path(path)
    files = [path]
    if path.suffix.lower() in WFDB_SUFFIXES or not path.is_file():   # also a bare name: mitdb/100
        base = str(record_base(path))
        files = [Path(base + s) for s in ('.hea', '.mat', '.dat') if Path(base + s).is_file()]
    h = hashlib.sha256()
    for f in files:
        with open(f, 'rb') as fh:
            for block in iter(lambda: fh.read(1 << 20), b''):
                h.update(block)
    return h.hexdigest()[:16]


def key_of(name, sha):
    """(record name, content hash) -> an 8-byte integer: the resume set holds
    one a record, 8 MB for a million."""
    return int.from_bytes(hashlib.blake2b(f'{name}\0{sha}'.encode(), digest_size=8).digest(),
                          'little')


class Done:
    """The records a journal already holds (sorted keys; searched, never scanned)."""

    def __init__(self, keys=()):
        self.keys = np.unique(np.asarray(list(keys), dtype=np.uint64))

    def __contains__(self, key):
        i = np.searchsorted(self.keys, np.uint64(key))
        return bool(i < len(self.keys) and self.keys[i] == np.uint64(key))

    def __len__(self):
        return len(self.keys)


# --------------------------------------------------------------------------
# One record: the per-record work, the same on every engine.

def device_columns(rec):
    """The cart's own measurements and statements (records.formats), as
    columns; empty where the file carries none. They are the device's, not ours."""
    meas = getattr(rec, 'device_measurements', {}) or {}
    row = {device_column(k): meas.get(k, np.nan) for k in DEVICE_KEYS}
    row[device_column('statements')] = ' | '.join(getattr(rec, 'device_statements', []) or [])
    return row


def public_path(rec, path):
    """The path to show: the file's, unless its stem is an identifier (the
    reader then named the record '<format>-<content hash>',
    records.formats.common.record_name): then none (''). No file has the
    pseudonym's name, and the real one must not be printed; the record
    column holds the pseudonym."""
    path = Path(path)
    if path.is_file() and rec.name != path.stem:
        return ''
    return str(path)


def measurement_columns(rec, seconds=30.0):
    """measure.py's figures for the last `seconds` of a record (what the
    model scores; a Holter is not measured whole), rounded, NaN when the
    record cannot support them. The cart's own are device_columns'."""
    stop = rec.sig_len
    start = max(0, stop - int(round(seconds * rec.fs)))
    keep = [k for k, lead in enumerate(rec.leads) if lead is not None]
    out = dict.fromkeys(MEASURE_COLUMNS, np.nan)
    if keep:
        m = measure.measure(rec.read(start, stop)[:, keep].T, rec.fs,
                            [rec.leads[k] for k in keep])
        out.update({k: round(m[k], 1) for k in MEASURE_COLUMNS if m[k] is not None})
    return out


def identify(path, settings, sha=None):
    """A record, opened (a header; the signal is read as windows need it),
    and its resume key -> (record, info columns, key). sha: its content
    hash when known (a Holter's every chunk of windows must not hash it again)."""
    rec = read_record(path, lead_map=settings.lead_map, fs=settings.fs,
                      allow_outside=settings.allow_outside)
    sha = sha or content_hash(path)
    info = {'record': rec.name, 'path': public_path(rec, path), 'sha256': sha, 'fs': rec.fs,
            'duration_s': rec.duration}
    return rec, info, key_of(rec.name, sha)


def guarded(path, step, *args, **kwargs):
    """step(*args, **kwargs); whatever a bad file makes it raise becomes one
    RecordError line naming the record, never a traceback that ends the run."""
    try:
        return step(*args, **kwargs)
    except RecordError:
        raise
    except Exception as e:  # noqa: BLE001 (one bad record must not end a run)
        raise RecordError(Path(path).stem, f'unusable ({type(e).__name__}: {e})') from None


def window_row(info, settings, quality, real, end=None, total=None):
    row = dict(info, quality=str(quality), derived='' if real is None else
               ','.join(lead for lead, r in zip(settings.leads, real) if not r))
    if settings.segments:
        stop = (total if end is None else end) / FS
        row.update(start_s=max(0.0, stop - settings.window / FS), end_s=stop)
    return row


def load(path, settings, done=None):
    """One record's work before the model -> a dict: kind 'rows' with
    items [(row, x)], its key and the seconds each step took; kind 'done'
    (the journal holds it); kind 'skip' with its one line. Runs in a worker."""
    t0 = time.perf_counter()
    try:
        rec, info, key = guarded(path, identify, path, settings)
        if done is not None and key in done:
            return {'kind': 'done', 'key': key}
        t1 = time.perf_counter()
        x, real, quality = guarded(path, prepare, rec, settings.leads, settings.window)
        t2 = time.perf_counter()
        info.update(guarded(path, measurement_columns, rec))
        info.update(device_columns(rec))
    except RecordError as e:
        return {'kind': 'skip', 'line': str(e)}
    t3 = time.perf_counter()
    return {'kind': 'rows', 'key': key, 'first': True,
            'items': [(window_row(info, settings, quality, real), x)],
            'warn': None if str(quality) == 'ok' else f'{rec.name}: quality {quality}',
            'seconds': {'read': t1 - t0, 'prepare': t2 - t1, 'measure': t3 - t2}}


def load_windows(path, settings, ends, first, sha):
    """--segments: some of a record's windows -> kind 'rows' (an unusable
    window is a row without scores: the others go on)."""
    t0 = time.perf_counter()
    try:
        rec, info, key = guarded(path, identify, path, settings, sha)
        info.update(device_columns(rec))
    except RecordError as e:
        return {'kind': 'skip', 'line': str(e)}
    total, items = length_at_fs(rec), []
    for end in ends:
        try:
            x, real, quality = guarded(path, prepare, rec, settings.leads, settings.window,
                                        end=end)
        except RecordError as e:
            x, real, quality = None, None, e.reason
        items.append((window_row(info, settings, quality, real, end, total), x))
    return {'kind': 'rows', 'key': key, 'items': items, 'first': first,
            'seconds': {'read': 0.0, 'prepare': time.perf_counter() - t0, 'measure': 0.0}}


# --------------------------------------------------------------------------
# Engines: the main process, or worker processes, in order.

_DONE = None


def _init_worker(done):
    global _DONE
    _DONE = done
    os.environ.setdefault('OMP_NUM_THREADS', '1')


def run_task(task):
    """A task -> load's result; the resume set is the worker's own copy."""
    path, settings, ends, first, sha = task
    if ends is None:
        return load(path, settings, _DONE)
    return load_windows(path, settings, ends, first, sha)


def tasks(paths, settings, done, skip, resumed):
    """(path, settings, ends, first, sha) a record, or with --segments one a chunk
    of its windows: the record is opened here to know its length (a header;
    the windows are read in the workers). skip(line) reports what cannot be
    opened, resumed() a record the journal holds."""
    for path in paths:
        if not settings.segments:
            yield path, settings, None, True, None
            continue
        try:
            rec, info, key = guarded(path, identify, path, settings)
            if key in done:
                resumed()
                continue
            # the last window, made once here: a record the model cannot read
            # at all (a lead missing, too short) is one line, not a row a window
            guarded(path, prepare, rec, settings.leads, settings.window)
        except RecordError as e:
            skip(str(e))
            continue
        ends = segment_ends(length_at_fs(rec), settings.window)
        for i in range(0, len(ends), CHUNK_WINDOWS):
            yield path, settings, ends[i:i + CHUNK_WINDOWS], i == 0, info['sha256']


def ordered(fn, items, workers, done, ahead=None):
    """fn over items, results in order; with workers > 0 in that many
    processes with at most `ahead` items in flight, so the readers work
    while the model scores and memory stays bounded whatever their number."""
    if workers <= 0:
        _init_worker(done)
        yield from map(fn, items)
        return
    ahead = ahead or 4 * workers
    # fork where there is one, as torch's DataLoader does: spawn would import the
    # calling script (torch and all) again in every worker; the workers never use torch
    ctx = multiprocessing.get_context(
        'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn')
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(done,)) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --------------------------------------------------------------------------
# Output: a journal of complete lines, finished atomically.

def clean(value):
    """Strings with no line break (a journal line is a row) and no delimiter surprises."""
    return ' '.join(value.split()) if isinstance(value, str) and ('\n' in value or '\r' in value) \
        else value


class Journal:
    """Rows appended to OUT.partial as they are scored, a flushed batch at a
    time; close() turns it into OUT (CSV as is; Parquet converted a block at
    a time), atomically, and removes the journal."""

    def __init__(self, out, columns, resume=False):
        self.out, self.columns = Path(out), list(columns)
        self.partial = self.out.with_name(self.out.name + '.partial')
        self.rows = 0
        self.done = Done(self._recover() if resume else self._fresh())
        self.f = open(self.partial, 'a', encoding='utf-8', newline='')
        if self.f.tell() == 0:
            self.f.write(','.join(self.columns) + '\n')
            self.f.flush()

    def _fresh(self):
        if self.partial.exists():
            raise SystemExit(f'error: {self.partial} holds an interrupted run: add --resume to '
                             'go on with it, or delete it to start again')
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        return ()

    def _recover(self):
        """The journal's complete lines (a half-written last one is cut), its
        keys; a finished CSV is taken up again as the journal."""
        if not self.partial.exists() and self.out.exists():
            if self.out.suffix.lower() == '.parquet':
                raise SystemExit(f'error: {self.out} is a finished run; --resume continues an '
                                 'interrupted one (OUT.partial). Write to a new --out')
            os.replace(self.out, self.partial)
        if not self.partial.exists():
            return self._fresh()
        with open(self.partial, 'rb+') as f:
            data = f.read()
            f.truncate(data.rfind(b'\n') + 1)
        head = data.split(b'\n', 1)[0].decode('utf-8')
        if head.split(',') != self.columns:
            raise SystemExit(f'error: {self.partial} was written with other columns (another '
                             'model, or --segments changed): delete it or write to a new --out')
        keys = pd.read_csv(self.partial, usecols=['record', 'sha256'], dtype=str,
                           keep_default_na=False)
        self.rows = len(keys)
        return [key_of(n, s) for n, s in zip(keys['record'], keys['sha256'])]

    def write(self, rows):
        if not rows:
            return
        df = pd.DataFrame([{k: clean(v) for k, v in r.items()} for r in rows],
                          columns=self.columns)
        df.to_csv(self.f, header=False, index=False, float_format='%.6f')
        self.f.flush()
        os.fsync(self.f.fileno())
        self.rows += len(rows)

    def close(self):
        self.f.close()
        if self.out.suffix.lower() == '.parquet':
            to_parquet(self.partial, self.out, self.columns)
            self.partial.unlink()
        else:
            os.replace(self.partial, self.out)

    def abandon(self):
        """On an error: the journal stays for --resume, unless it holds no row."""
        self.f.close()
        if self.rows == 0:
            self.partial.unlink()


class Lines:
    """A file of one line a row beside the journal (the FHIR NDJSON), with
    the journal's life: OUT.partial, flushed a batch at a time; on --resume
    its first `keep` lines stay (the journal's rows: they were written
    first); close() renames it to OUT."""

    def __init__(self, out, keep=None):
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + '.partial')
        if keep is None and self.partial.exists():
            raise SystemExit(f'error: {self.partial} holds an interrupted run: add --resume to '
                             'go on with it, or delete it to start again')
        if keep is not None and not self.partial.exists() and self.out.exists():
            os.replace(self.out, self.partial)
        self.count = self._keep(keep) if keep is not None and self.partial.exists() else 0
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.partial, 'a' if self.count else 'w', encoding='utf-8')

    def _keep(self, n):
        with open(self.partial, 'rb+') as f:
            end = 0
            for _ in range(n):
                line = f.readline()
                if not line.endswith(b'\n'):
                    break
                end += len(line)
            f.truncate(end)
            f.seek(0)
            return sum(1 for _ in f)

    def write(self, line):
        self.f.write(line if line.endswith('\n') else line + '\n')
        self.count += 1

    def flush(self):
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self):
        self.f.close()
        os.replace(self.partial, self.out)

    def abandon(self):
        self.f.close()
        if self.count == 0:
            self.partial.unlink()


TEXT_COLUMNS = {'record', 'path', 'sha256', 'quality', 'derived', 'diagnoses',
                device_column('statements')}


def read_rows(path):
    """predict.py's CSV or Parquet -> DataFrame: text columns as text (an
    empty one is ''), the others numbers (an empty one is NaN)."""
    path = Path(path)
    if path.suffix.lower() == '.parquet':
        return pd.read_parquet(path)
    head = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, keep_default_na=False,
                       dtype={c: str for c in head if c in TEXT_COLUMNS},
                       na_values={c: [''] for c in head if c not in TEXT_COLUMNS})


def to_parquet(journal, out, columns, block_bytes=4 << 20):
    """The journal (CSV) -> Parquet, a block of the file at a time, atomically."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    types = {c: pa.string() if c in TEXT_COLUMNS else pa.float64() for c in columns}
    schema = pa.schema([(c, types[c]) for c in columns])
    reader = pacsv.open_csv(journal, read_options=pacsv.ReadOptions(block_size=block_bytes),
                            convert_options=pacsv.ConvertOptions(
                                column_types=types, strings_can_be_null=False,
                                quoted_strings_can_be_null=False))
    with utils.atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as w:
        for batch in reader:
            w.write_table(pa.Table.from_batches([batch]).cast(schema))


# --------------------------------------------------------------------------
# Progress.

class Progress:
    """A bar with records/s; its total (hence the ETA) comes from a count of
    the same walk in a background thread, once the count has finished."""

    def __init__(self, patterns, records_from, enabled=True):
        self.bar = tqdm(total=None, unit='rec', desc='records', disable=not enabled,
                        dynamic_ncols=True, file=sys.stderr)
        if enabled and records_from != '-':
            threading.Thread(target=self._count, args=(patterns, records_from),
                             daemon=True).start()

    def _count(self, patterns, records_from):
        n = sum(1 for path, _ in walk(patterns, records_from) if path is not None)
        self.bar.total = n
        self.bar.refresh()

    def update(self, n=1):
        self.bar.update(n)

    def write(self, line):
        tqdm.write(line, file=sys.stdout)

    def close(self):
        self.bar.close()


# --------------------------------------------------------------------------
# Timings of a run.

class Clock:
    """Seconds per step, summed over records, and the model's share of the run."""

    def __init__(self, ray=False):
        self.start, self.steps, self.model, self.records = time.perf_counter(), {}, 0.0, 0
        self.ray, self.first = ray, None

    def add(self, seconds):
        self.records += 1
        self.first = self.first or time.perf_counter()
        for k, v in seconds.items():
            self.steps[k] = self.steps.get(k, 0.0) + v

    @contextlib.contextmanager
    def scoring(self):
        t = time.perf_counter()
        yield
        self.model += time.perf_counter() - t

    def line(self, scored):
        wall = time.perf_counter() - self.start
        rate = scored / wall if wall > 0 else math.nan
        since = time.perf_counter() - (self.first or self.start)
        steady = (self.records - 1) / since if self.records > 1 and since > 0 else math.nan
        per = ', '.join(f'{k} {1000 * v / max(1, self.records):.1f} ms'
                        for k, v in self.steps.items())
        model = '' if not scored else ' (the model in Ray actors)' if self.ray else (
            f', model {1000 * self.model / scored:.1f} ms; the model busy '
            f'{100 * self.model / wall:.0f}% of the run')
        return (f'{scored} in {wall:.1f} s: {rate:.1f}/s ({steady:.1f}/s after the first, '
                f'start-up left out); per record {per}{model}')


# --------------------------------------------------------------------------
# Ray Data: the same per-record work as tasks, the model in an actor pool.

def _ray_load(item, settings, done):
    """load() as a Ray row: the window as bytes (rows of one schema)."""
    res = load(item['path'], settings, done)
    items = res.pop('items', [])
    row, x = items[0] if items else (None, None)
    return {'meta': json.dumps(dict(res, row=row)),
            'x': b'' if x is None else np.ascontiguousarray(x, np.float32).tobytes()}


class _RayScorer:
    """One loaded model per actor (its process): scores a batch of rows."""

    def __init__(self, spec, settings):
        import runs   # torch: only in the actors and the driver, never in the readers
        import utils as u
        from resnet import probabilities
        device = u.select_device(spec['device'], spec['use_gpu'])
        self.precision, self.device, self.probabilities = (
            u.select_precision(device, spec['precision']), device, probabilities)
        self.run = runs.load_run(spec['model_path'], spec['root'], leads=spec['leads'],
                                 device=device, thresholds=spec['thresholds'])
        self.shape = (len(settings.leads), settings.window)

    def __call__(self, batch):
        metas = [json.loads(m) for m in batch['meta']]
        has = [len(b) > 0 for b in batch['x']]
        scores = np.full((len(metas), len(self.run.classes)), np.nan)
        if any(has):
            xs = np.stack([np.frombuffer(b, np.float32).reshape(self.shape)
                           for b, h in zip(batch['x'], has) if h])
            scores[np.array(has)] = self.probabilities(self.run.model, xs, self.device,
                                                       self.precision, batch_size=len(xs))
        return {'meta': np.array([json.dumps(m) for m in metas], dtype=object),
                'scores': scores}


def ray_results(paths, settings, done, spec, batch_size, workers, address=None):
    """Results as ordered() yields them, each with its scores, from Ray Data:
    reading and preparing are tasks, scoring an actor pool of `workers`
    models (at least one), in the walk's order."""
    import ray
    here = str(Path(__file__).resolve().parent)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={'env_vars': {'PYTHONPATH': here, 'OMP_NUM_THREADS': '1'}})
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ds = ray.data.from_items([{'path': str(p)} for p in paths])
    ds = ds.map(_ray_load, fn_kwargs={'settings': settings, 'done': done}, num_cpus=READ_CPUS)
    # Ray hides the GPUs from an actor that does not ask for one
    gpus = 1 if spec['device'] == 'cuda' or spec['use_gpu'] else 0
    ds = ds.map_batches(_RayScorer, fn_constructor_kwargs={'spec': spec, 'settings': settings},
                        batch_size=batch_size, concurrency=max(1, workers), num_gpus=gpus,
                        batch_format='numpy')
    try:
        for out in ds.iter_rows():
            res = json.loads(out['meta'])
            if res['kind'] == 'rows':
                res['items'], res['first'] = [(res.pop('row'), None)], True
                res['scores'] = np.asarray(out['scores'], dtype=np.float64)
            yield res
    finally:
        if started:   # a cluster this run did not start is left as it was
            ray.shutdown()
