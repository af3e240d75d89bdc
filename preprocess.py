"""Labels, folds and the signal cache of a database: run once before training.

    python preprocess.py --data-dir data/CPSC                 # WFDB .hea + .mat
    python preprocess.py --data-dir data/CPSC2018 --format cpsc2018   # original download
    python preprocess.py --data-dir data/CPSC --strict        # stop at the first bad record
    python preprocess.py --data-dir data/PN2021 --workers 2   # 88,000 records, 2 processes
    python preprocess.py --data-dir data/PN2021 --resume      # after a kill: finish the cache
    # a hospital's exports (DICOM, MUSE/CardioSoft/Philips XML, aECG, SCP, ISHNE, EDF,
    # CSV; any mix) with their labels: columns record and dx (SNOMED-CT codes,
    # comma-separated) or the nine class columns (0/1)
    python preprocess.py --data-dir exports/ --labels exports/labels.csv

--data-dir holds WFDB records (NAME.hea + NAME.mat as in the PhysioNet/CinC
2020/2021 challenges, or any signal file wfdb reads; subfolders are searched)
or the original CPSC2018 download (TrainingSet*/A*.mat with struct ECG, and
REFERENCE.csv). Writes into that folder:

    reference.csv   patient_id, sample_rate, signal_len, age, sex, dx (SNOMED codes),
                    leads (the standard leads the record holds, by alias: MLII is
                    II), quality ('ok' or the flags of records/, e.g. 'flat V2';
                    empty for records not read: those with none of the nine classes),
                    ignored (channels that name no lead, e.g. 'Resp,Pleth': each
                    record with an unknown channel is named; --lead-map names them)
    labels.csv      patient_id, SNR, AF, IAVB, LBBB, RBBB, PAC, PVC, STD, STE, fold,
                    group, leads (those it holds less those flagged flat: main.py --leads X
                    trains on the records that hold or can derive X)
    folds.json      the fold manifest (sha256 of the record -> fold pairs, fold seed),
                    the SNR rule, the duplicates and patient groups found, and the
                    data's provenance ({"synthetic": true} for synthetic.py's records,
                    known by the synthetic.json it writes: main.py copies it into the
                    checkpoint, and a model trained on it is served as a demo)
    skipped.csv     patient_id, path, reason (bad records, one line each: unreadable,
                    or no usable signal in the last 30 s)
    cache/signals.npy, cache/index.csv, cache/meta.json
                    each labelled record's last 15,000 samples at 500 Hz, leads in
                    records.LEADS order, int16 µV, concatenated (dataset.ECGDataset
                    memory-maps it; training never parses a record again). Limb
                    leads a record lacks are derived from two others; leads it
                    cannot give are zero, and main.py --leads leaves it out.

Records are read by records/: any lead set and sampling rate, and only the
last 30 s (plus the resampling filter's margin) of a long recording.

The CSVs come from the headers alone (a fraction of a second for thousands of
records). Labels map SNOMED-CT codes to the nine classes with
utils.SNOMED_TO_CLASS; records with none of the nine are dropped from
labels.csv; 426783006 is SNR only when it is a record's only code (--snr-rule,
see utils.SNOMED_TO_CLASS). Records are grouped first (folds.py): identical
signal files, and one patient's records where PTB-XL's ptbxl_database.csv or
--groups CSV says who the patient is. The ten folds are then stratified over
the nine classes by group (iterative stratification), seeded by --fold-seed,
so no group spans two folds. An existing labels.csv keeps its folds (new
records get one) unless --reassign-folds: models trained on them stay valid. The cache is
rebuilt only when its inputs change (names, sizes and mtimes of the files,
and the settings; --force rebuilds). Every output is written atomically, so
Ctrl-C never leaves a half-written file.

At dataset scale (PhysioNet 2021's 88,000 records and more): --workers N
reads and prepares the records in N processes (0 or 1: in this one), and the
output is the same byte for byte whatever N. Each record's int16 rows are
appended to the cache as they come, in order (cache/signals.npy.partial,
renamed to signals.npy at the end), so memory stays flat in the number of
records; cache/progress.jsonl lists the records done with the fingerprint of
the run's inputs. After a kill or Ctrl-C, --resume continues from there and
writes the same files as an uninterrupted run; it is refused when the records
or settings changed since, and a run without --resume discards the partial
cache (one line each). On a 2-core AMD EPYC shared with other jobs, 1,000 and
10,000 synthetic records took 8-13 ms a record, whole run, with --workers 0
or 2 (no growth with the count), at a peak RSS of 125 and 156 MiB: the
signals add nothing, the headers' metadata and the label tables ~3 kB a
record (`python bench.py --only preprocess`).

Sanity check (a copy of ../shared/data/physionet2021, 40 real records, ~5 s
on 2 cores, most of it importing torch):

    read 40 records in 0.01 s
    dropped 13 records with none of the nine classes (SNR, AF, IAVB, ...)
    cache: 27 records, 3.1 MiB in 0.3 s -> .../cache
    wrote reference.csv (40 records), labels.csv (27), skipped.csv (0) in ...
"""
import argparse
import hashlib
import io
import json
import os
import signal
import sys
import time
from collections import deque
from itertools import islice
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from folds import (  # noqa: F401 (assign_folds is re-exported for tests and bench)
    FOLDS_JSON,
    assign_folds,
    assign_group_folds,
    describe_groups,
    find_groups,
    fold_manifest,
    keep_existing_folds,
    public,
    read_fold_seed,
)
from records import (
    FS,
    LEADS,
    WINDOW,
    RecordError,
    channel_lead,
    find_records,
    ignored_channels,
    obtainable,
    prepare,
    quantise,
    read_header,
    read_record,
    resampled_length,
)
from utils import (
    CLASS_TO_SNOMED,
    CLASSES,
    CPSC_NUMBER_TO_CLASS,
    SNR_CODE,
    SNR_RULES,
    atomic_to_csv,
    atomic_write_json,
    dx_to_classes,
)

CACHE_VERSION = 2  # bump when the cache's content or layout changes (2: any lead set)


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-dir', default='data/CPSC', metavar='DIR',
                        help='folder of the records; outputs go there too (default: data/CPSC)')
    parser.add_argument('--format', default='auto',
                        choices=['auto', 'wfdb', 'cpsc2018', 'exports'],
                        help='auto: exports with --labels, cpsc2018 when REFERENCE.csv and '
                             '.mat files without .hea are found, else wfdb (default: auto)')
    parser.add_argument('--labels', default=None, metavar='CSV',
                        help="labels of a folder of exports (records/formats/'s DICOM, XML, SCP, "
                             'ISHNE, EDF, CSV files): columns record (file stem or name) and '
                             'dx (SNOMED-CT codes) or the nine class columns (default: none)')
    parser.add_argument('--lead-map', default=None, metavar='NAME=LEAD[,...]',
                        help="which lead a generically named channel is, e.g. 'ECG=II'")
    parser.add_argument('--fs', default=None, type=float, metavar='HZ',
                        help='sampling rate of CSV records without a time column')
    parser.add_argument('--fold-seed', '--seed', dest='fold_seed', default=42, type=int,
                        metavar='N',
                        help='seed of the fold assignment, its own flag: the run seed of '
                             'main.py --seed only picks which folds are train/val/test; '
                             'used when folds are (re)assigned (default: 42)')
    parser.add_argument('--reassign-folds', action='store_true',
                        help='assign every record a new fold; without it the folds of an '
                             'existing labels.csv are kept, so models trained on them stay '
                             'valid, and only new records get one (default: keep)')
    parser.add_argument('--groups', default=None, metavar='CSV',
                        help='CSV of record -> patient (columns record, patient): the '
                             "records of one patient share a fold. PTB-XL's "
                             'ptbxl_database.csv in --data-dir is read without it '
                             '(default: none)')
    parser.add_argument('--snr-rule', default='only', choices=SNR_RULES,
                        help='only: SNR when 426783006 is the only diagnosis code (the '
                             "study's CPSC2018 Normal); sinus: whenever 426783006 appears "
                             '(the challenge meaning); see utils.SNOMED_TO_CLASS (default: only)')
    parser.add_argument('--workers', default=len(os.sched_getaffinity(0)), type=int,
                        metavar='N', help='processes reading and preparing the records; 0 '
                                          'or 1: this process (default: all cores, '
                                          f'{len(os.sched_getaffinity(0))} here); the output '
                                          'is the same byte for byte whatever N')
    parser.add_argument('--resume', action='store_true',
                        help='continue the cache build of a killed or interrupted run from '
                             'its partial cache (refused when the records or settings changed '
                             'since); without it a partial cache is discarded (default: off)')
    parser.add_argument('--strict', action='store_true',
                        help='stop with an error at the first bad record instead of '
                             'skipping it (default: skip and report)')
    parser.add_argument('--allow-outside-folder', action='store_true',
                        help="read files outside the record's folder (signal files a header "
                             'names by absolute paths or ../, and symlinks out, of any format); '
                             'refused by default')
    parser.add_argument('--force', action='store_true',
                        help='rebuild the cache even when its inputs are unchanged')
    return parser


class Skips:
    """Bad records: one line each on the console, one row each in skipped.csv;
    under --strict the first one stops the run."""

    def __init__(self, strict):
        self.strict, self.rows = strict, []

    def add(self, record, path, reason):
        if self.strict:
            raise SystemExit(f'error: {record}: {reason} ({path}); fix or remove the '
                             'record, or run without --strict to skip it')
        # Cleared bar, the line, flushed, the bar again: a block-buffered stdout
        # (| tee, a log file) would otherwise emit the line later, in the
        # middle of the progress bar's line on the terminal.
        with tqdm.external_write_mode(file=sys.stdout):
            print(f'skip {record}: {reason}', flush=True)
        self.rows.append({'patient_id': record, 'path': str(path), 'reason': reason})


# --------------------------------------------------------------------------
# Finding and scanning records.

def detect_format(data_dir, labels=None):
    if labels:
        return 'exports'
    if any(data_dir.rglob('*.hea')):
        return 'wfdb'
    if any(data_dir.rglob('REFERENCE.csv')) and any(data_dir.rglob('*.mat')):
        return 'cpsc2018'
    raise SystemExit(f'error: no records in {data_dir}: expected WFDB headers (*.hea) or the '
                     'CPSC2018 download (A*.mat + REFERENCE.csv); check --data-dir')


def _in_cache_dir(path, data_dir):
    return path.relative_to(data_dir).parts[0] == 'cache'


def scan_wfdb(data_dir, skips, allow_outside=False):
    """Every header under data_dir -> one dict per usable record."""
    records, extra = [], {}
    for hea in sorted(data_dir.rglob('*.hea')):
        if _in_cache_dir(hea, data_dir):
            continue
        try:
            hdr = read_header(hea, allow_outside)
            if hdr['dx'] is None:
                raise RecordError(hdr['name'], "header has no '# Dx:' comment (no labels)")
            leads = header_leads(hdr)
        except RecordError as e:
            skips.add(e.record, hea, e.reason)
            continue
        others = [n for n in hdr['sig_names'] if channel_lead(n)[0] is None]
        if others:
            extra[hdr['name']] = others
        records.append({
            'patient_id': hdr['name'], 'path': hea, 'sample_rate': hdr['fs'],
            'signal_len': hdr['sig_len'], 'age': hdr['age'], 'sex': hdr['sex'],
            'dx': hdr['dx'], 'leads': leads, 'ignored': others,
            'files': [hea] + [hea.parent / f for f in dict.fromkeys(hdr['files'])],
        })
    if extra:
        name, leads = next(iter(extra.items()))
        print(f"note: {len(extra)} records also hold non-standard leads, ignored (e.g. {name}: "
              f"{', '.join(leads)})")
    return records


def header_leads(hdr):
    """The standard leads a header's signals are (by alias and case), in
    records.LEADS order. Raises RecordError when none is an ECG lead."""
    leads = {channel_lead(n)[0] for n in hdr['sig_names']} - {None}
    if not leads:
        raise RecordError(hdr['name'], 'no ECG lead among the signals '
                                       f"{', '.join(hdr['sig_names'])}")
    return [lead for lead in LEADS if lead in leads]


def read_cpsc_reference(data_dir):
    """REFERENCE.csv (Recording, First_label, Second_label, Third_label; 1..9)
    -> {recording: [SNOMED codes]}."""
    labels = {}
    for path in sorted(data_dir.rglob('REFERENCE.csv')):
        df = pd.read_csv(path, dtype={'Recording': str})
        if 'Recording' not in df.columns or 'First_label' not in df.columns:
            raise SystemExit(f'error: {path} lacks the columns Recording, First_label '
                             '(CPSC2018 REFERENCE.csv); check --format')
        cols = [c for c in ('First_label', 'Second_label', 'Third_label') if c in df.columns]
        for row in df.itertuples(index=False):
            numbers = [int(v) for v in (getattr(row, c) for c in cols) if pd.notna(v)]
            labels[row.Recording] = [CLASS_TO_SNOMED[CPSC_NUMBER_TO_CLASS[v]]
                                     for v in numbers if v in CPSC_NUMBER_TO_CLASS]
    return labels


def _scan_cpsc_one(job):
    path, allow_outside = job
    try:
        rec = read_record(path, allow_outside)
    except RecordError as e:
        return None, e.reason
    return {'signal_len': rec.sig_len, 'age': rec.age, 'sex': rec.sex, 'leads': list(LEADS)}, None


def scan_cpsc2018(data_dir, skips, workers, allow_outside=False):
    """The original CPSC2018 download has no headers: the .mat files are read
    (in the pool) for age, sex and length, labels come from REFERENCE.csv."""
    reference = read_cpsc_reference(data_dir)
    paths = [p for p in sorted(data_dir.rglob('*.mat'))
             if not p.with_suffix('.hea').exists() and not _in_cache_dir(p, data_dir)]
    records = []
    with _pool(workers) as imap:
        results = imap(_scan_cpsc_one, [(p, allow_outside) for p in paths])
        for path, (meta, reason) in zip(paths, tqdm(results, total=len(paths), desc='scan',
                                                    unit='rec')):
            if reason is None and path.stem not in reference:
                reason = 'not listed in REFERENCE.csv (no labels)'
            if reason is not None:
                skips.add(path.stem, path, reason)
                continue
            records.append({'patient_id': path.stem, 'path': path, 'sample_rate': FS,
                            'dx': reference[path.stem], 'files': [path], **meta})
    return records


def read_export_labels(path):
    """--labels CSV -> {record: [SNOMED codes]}: a `dx` column of codes, or the
    nine class columns (1 = the class), keyed by the `record` column."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise SystemExit(f'error: --labels {path}: unreadable ({e})') from None
    if 'record' not in df.columns or not ('dx' in df.columns or set(CLASSES) <= set(df)):
        raise SystemExit(f'error: --labels {path} needs a column record and either dx '
                         f"(SNOMED-CT codes) or the nine class columns ({', '.join(CLASSES)})")
    out = {}
    for row in df.to_dict('records'):
        if 'dx' in df.columns:
            codes = [c.strip() for c in str(row['dx']).replace(';', ',').split(',') if c.strip()]
        else:
            codes = [CLASS_TO_SNOMED[c] for c in CLASSES if str(row[c]).strip() in ('1', '1.0')]
        out[str(row['record']).strip()] = codes
    return out


def scan_exports(data_dir, labels_csv, skips, lead_map=None, fs=None, allow_outside=False):
    """A folder of hospital exports (any mix of records/formats/'s formats) with a
    --labels CSV -> one dict per record. Each file is read (they are small),
    named as records.read_record names it (a content hash where the file
    name is an identifier), labelled by its stem or file name."""
    labels = read_export_labels(labels_csv)
    paths, _ = find_records([str(data_dir)])
    skip = {Path(labels_csv).resolve()}
    records = []
    for path in paths:
        if _in_cache_dir(path, data_dir) or path.resolve() in skip or \
                path.name in ('reference.csv', 'labels.csv', 'skipped.csv'):
            continue
        key = next((k for k in (path.stem, path.name, str(path.relative_to(data_dir)))
                    if k in labels), None)
        try:  # every per-record step inside: one bad file is one line, never a traceback
            rec = read_record(path, allow_outside, lead_map=lead_map, fs=fs)
            resampled_length(rec.sig_len, rec.fs)  # build_cache sizes the cache by it
            row = {'patient_id': rec.name, 'path': path, 'sample_rate': rec.fs,
                   'signal_len': rec.sig_len, 'age': rec.age, 'sex': rec.sex,
                   'dx': labels.get(key), 'leads': [lead for lead in LEADS if lead in rec.leads],
                   'ignored': ignored_channels(rec), 'files': [path]}
        except RecordError as e:
            skips.add(e.record, path, e.reason)
            continue
        except Exception as e:  # noqa: BLE001 (a bad file must not end a long build)
            skips.add(path.stem, path, f'unreadable ({type(e).__name__}: {e})')
            continue
        if key is None:
            skips.add(rec.name, path, f'not listed in {Path(labels_csv).name} (no labels)')
            continue
        records.append(row)
    return records


def data_provenance(data_dir):
    """Where DATA_DIR's records come from -> {'synthetic': bool, ...}.
    synthetic.py writes synthetic.json beside its records (its generator and
    seed); one anywhere under DATA_DIR makes the data synthetic, whatever the
    folder is called. Any other data is {'synthetic': False}."""
    for path in sorted(Path(data_dir).rglob('synthetic.json')):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and (meta.get('provenance') == 'synthetic' or
                                       str(meta.get('generator', '')).startswith('synthetic.py')):
            return {'synthetic': True, 'generator': meta.get('generator'),
                    'seed': meta.get('seed'),
                    'manifest': str(path.relative_to(data_dir))}
    return {'synthetic': False}


def drop_duplicates(records, skips):
    seen, out = {}, []
    for rec in records:
        first = seen.setdefault(rec['patient_id'], rec['path'])
        if first != rec['path']:
            skips.add(rec['patient_id'], rec['path'], f'duplicate record name (also {first})')
        else:
            out.append(rec)
    return out


# --------------------------------------------------------------------------
# Folds.

# --------------------------------------------------------------------------
# Cache.

class _SerialMap:
    """workers <= 1: no processes (one worker process would only add the pipe)."""

    def __enter__(self):
        return lambda fn, items: map(fn, items)

    def __exit__(self, *exc):
        return False


def _map_chunk(fn, items):
    return [fn(item) for item in items]


class _PoolMap:
    """An ordered map over a process pool with at most `window` chunks of
    CHUNK jobs in flight: Pool.imap would queue every job and every
    finished result, so a parent slower than its workers (a slow disk) would
    hold them all. Chunks of a few records cut the pool's cost per job."""

    CHUNK = 4

    def __init__(self, workers):
        # Workers ignore Ctrl-C: the parent handles it, tears the pool down and
        # keeps the partial cache, instead of N tracebacks.
        self.pool = Pool(workers, initializer=signal.signal,
                         initargs=(signal.SIGINT, signal.SIG_IGN))
        self.window = 2 * workers

    def __enter__(self):
        return self.imap

    def imap(self, fn, items):
        pending, items = deque(), iter(items)
        while chunk := list(islice(items, self.CHUNK)):
            pending.append(self.pool.apply_async(_map_chunk, (fn, chunk)))
            if len(pending) >= self.window:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()

    def __exit__(self, *exc):
        self.pool.terminate()
        self.pool.join()
        return False


def _pool(workers):
    return _PoolMap(workers) if workers > 1 else _SerialMap()


def fingerprint(records, fmt, data_dir):
    """Hash of the cache's inputs: every file's name (relative, so a moved
    folder keeps its cache), size and mtime, and the settings."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, FS, WINDOW, LEADS, fmt]).encode())
    for rec in records:
        h.update(rec['patient_id'].encode() + b'\0')
        for f in rec['files']:
            st = os.stat(f)
            # relpath: with --allow-outside-folder a file may lie outside data_dir
            h.update(f'{os.path.relpath(f, data_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def cache_is_current(cache_dir, fp):
    try:
        meta = json.loads((cache_dir / 'meta.json').read_text())
    except (OSError, ValueError):
        return None
    files_ok = (cache_dir / 'signals.npy').exists() and (cache_dir / 'index.csv').exists()
    return meta if files_ok and meta.get('fingerprint') == fp else None


def _cache_one(job):
    """Worker: read one record's last WINDOW samples at 500 Hz (records.prepare:
    only that tail is read) -> (None, quality text, int16 µV rows (length, 12)),
    or (the reason it is bad, None, None). Every lead the record holds or
    derives gets its column; the others stay zero (labels.csv's `leads`
    keeps such records out of models that need them)."""
    path, length, allow_outside, *options = job  # options: lead_map, fs
    try:
        rec = read_record(path, allow_outside, *options)
        have = obtainable([lead for lead in rec.leads if lead])
        x, _, quality = prepare(rec, have, WINDOW)
    except RecordError as e:
        return e.reason, None, None
    except Exception as e:  # noqa: BLE001 (a bad file must not end a long build)
        return f'unreadable ({type(e).__name__}: {e})', None, None
    n = min(resampled_length(rec.sig_len, rec.fs), WINDOW)
    if n != length:
        return f'{n} samples read, header implies {length}', None, None
    rows = np.zeros((length, len(LEADS)), dtype=np.int16)
    rows[:, [LEADS.index(lead) for lead in have]] = quantise(x[:, WINDOW - length:].T)
    return None, str(quality), rows


# The cache being built: signals.npy's bytes so far, and one JSON line per
# record done (in order) after a first line with the inputs' fingerprint. A
# killed run leaves both; --resume continues from them.
PARTIAL, PROGRESS = 'signals.npy.partial', 'progress.jsonl'
NPY_HEADER = 128  # np.save's header of an int16 (rows, 12) array, whatever rows is


def npy_header(rows):
    """np.save's header bytes for an int16 (rows, 12) array. numpy pads it
    to the same length for any row count, so it is rewritten in place once
    the count is known."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {
        'descr': np.lib.format.dtype_to_descr(np.dtype(np.int16)),
        'fortran_order': False, 'shape': (int(rows), len(LEADS))})
    assert len(buf.getvalue()) == NPY_HEADER, 'numpy changed its .npy header layout'
    return buf.getvalue()


def read_progress(cache_dir, fp, records, lengths, resume):
    """The records a killed build finished, in order (one dict each: id and
    quality, or id and skip), after checking them against this run's inputs;
    [] when there is nothing to resume. The partial signals file is cut to
    the records the progress file lists (a kill between the two writes leaves
    one record's rows without its line)."""
    progress, partial = cache_dir / PROGRESS, cache_dir / PARTIAL
    if not progress.exists():
        if resume:
            print(f'resume: no partial cache in {cache_dir}; building it from the start')
        return []
    lines = progress.read_text().split('\n')[:-1]  # a torn last line (no newline) is dropped
    try:
        head, done = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    except (IndexError, ValueError):
        head, done = {}, []
    if not resume:
        print(f'discarding the partial cache of an interrupted run ({max(0, len(lines) - 1)} '
              'records done); --resume continues it instead')
        return []
    if head.get('fingerprint') != fp or len(done) > len(records) or \
            any(d.get('id') != r['patient_id'] for d, r in zip(done, records)):
        raise SystemExit(f'error: --resume: the partial cache in {cache_dir} was built from '
                         'other inputs (records or settings changed since); run without '
                         '--resume to rebuild the cache from the start')
    size = NPY_HEADER + 2 * len(LEADS) * int(sum(
        n for d, n in zip(done, lengths) if 'skip' not in d))
    if not partial.exists() or partial.stat().st_size < size:
        raise SystemExit(f'error: --resume: {partial} is missing or shorter than {progress} '
                         'says; run without --resume to rebuild the cache from the start')
    os.truncate(partial, size)
    print(f'resume: {len(done)} of {len(records)} records already in the partial cache')
    return done


def build_cache(records, cache_dir, fmt, fp, workers, skips, allow_outside=False,
                options=(), resume=False):
    """Read every record (in a pool, results in order) and append its int16
    rows to the cache as it comes, so memory stays flat in the number of
    records; returns the records that made it. Progress is kept record by
    record, so a killed build resumes (--resume) where it stopped."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / 'meta.json').unlink(missing_ok=True)  # the old cache is stale from here on
    for stale in cache_dir.glob('.*.tmp'):  # left by a killed run
        stale.unlink()
    lengths = np.array([min(resampled_length(r['signal_len'], r['sample_rate']), WINDOW)
                        for r in records], dtype=np.int64)
    done = read_progress(cache_dir, fp, records, lengths, resume)
    first_skip = len(skips.rows)
    ok, quality = [], []
    for rec, entry in zip(records, done):  # what the killed run found, as it reported it
        if 'skip' in entry:
            skips.add(rec['patient_id'], rec['path'], entry['skip'])
        ok.append('skip' not in entry)
        quality.append(entry.get('quality', ''))
    jobs = ((r['path'], int(n), allow_outside, *options)
            for r, n in zip(records[len(done):], lengths[len(done):]))
    with open(cache_dir / PARTIAL, 'r+b' if done else 'wb') as sig, \
            open(cache_dir / PROGRESS, 'a' if done else 'w') as progress:
        sig.seek(0, os.SEEK_END)
        if not done:
            sig.write(npy_header(0))
            progress.write(json.dumps({'fingerprint': fp, 'records': len(records)}) + '\n')
        with _pool(workers) as imap:
            results = tqdm(imap(_cache_one, jobs), total=len(records), initial=len(done),
                           desc='cache', unit='rec')
            for rec, (reason, flags, rows) in zip(records[len(done):], results):
                if reason is not None:
                    skips.add(rec['patient_id'], rec['path'], reason)
                else:  # rows first: a line in the progress file vouches for them
                    sig.write(rows)
                    sig.flush()
                entry = {'id': rec['patient_id'], **({'skip': reason} if reason is not None
                                                     else {'quality': flags})}
                progress.write(json.dumps(entry) + '\n')
                progress.flush()
                ok.append(reason is None)
                quality.append(flags or '')
        ok = np.array(ok, dtype=bool)
        sig.seek(0)
        sig.write(npy_header(lengths[ok].sum()))
    return finish_cache(records, cache_dir, fmt, fp, lengths, ok, quality,
                        skips.rows[first_skip:])


def finish_cache(records, cache_dir, fmt, fp, lengths, ok, quality, skipped):
    """The partial cache becomes the cache: signals.npy, index.csv, and
    meta.json last (its fingerprint is what marks the cache as complete)."""
    os.replace(cache_dir / PARTIAL, cache_dir / 'signals.npy')
    kept = [r for r, k in zip(records, ok) if k]
    lengths = lengths[ok]
    index = pd.DataFrame({'patient_id': [r['patient_id'] for r in kept],
                          'offset': np.cumsum(lengths) - lengths, 'length': lengths,
                          'quality': [q for q, k in zip(quality, ok) if k]})
    atomic_to_csv(index, cache_dir / 'index.csv', index=False)
    (cache_dir / PROGRESS).unlink()
    atomic_write_json({'fingerprint': fp, 'version': CACHE_VERSION, 'format': fmt, 'fs': FS,
                       'window': WINDOW, 'leads': LEADS, 'dtype': 'int16', 'units': 'uV',
                       'records': len(kept), 'samples': int(lengths.sum()),
                       'skipped': skipped}, cache_dir / 'meta.json')
    return kept


# --------------------------------------------------------------------------

def read_quality(cache_dir):
    """{patient_id: quality text} of the cached records (cache/index.csv)."""
    index = pd.read_csv(cache_dir / 'index.csv', dtype=str, keep_default_na=False)
    return dict(zip(index['patient_id'], index.get('quality', [''] * len(index))))


def live_leads(leads, quality):
    """A record's leads for labels.csv: those it holds, less the ones flagged
    flat (a dead electrode is no lead to train on), comma-separated."""
    flat = set()
    for flag in quality.split('; '):
        if flag.startswith('flat '):
            flat |= {channel_lead(n)[0] for n in flag[5:].split(',')}
    return ','.join(lead for lead in leads if lead not in flat)


def report_quality(quality):
    """One warning line for the records with quality flags (they are kept)."""
    flagged = {k: v for k, v in quality.items() if v not in ('', 'ok')}
    if flagged:
        kinds = pd.Series([f.split()[0] for v in flagged.values() for f in v.split('; ')])
        name, flags = next(iter(sorted(flagged.items())))
        counts = ', '.join(f'{k} {n}' for k, n in kinds.value_counts().items())
        print(f'warning: quality flags on {len(flagged)} of {len(quality)} records ({counts}; '
              f'e.g. {name}: {flags}); kept, see the quality column of reference.csv')


def snr_rule_note(records, rule):
    """How many records the SNR rule changes, in one line (None when none)."""
    mixed = [r for r in records if SNR_CODE in r['dx'] and set(r['dx']) != {SNR_CODE}]
    if not mixed:
        return None
    if rule == 'sinus':
        return (f'SNR rule sinus: {len(mixed)} records with 426783006 among other codes '
                'are labelled SNR (sinus rhythm)')
    gone = sum(1 for r in mixed if not dx_to_classes(r['dx'], rule))
    return (f'SNR rule only: {len(mixed)} records have 426783006 (sinus rhythm) among other '
            f'codes and are not SNR; {gone} of them have none of the other eight classes '
            'and are dropped (--snr-rule sinus keeps them as SNR)')


def assign_record_folds(labels, records, data_dir, args):
    """labels (sorted by patient_id, no fold yet) and the same records ->
    (folds, group names, group report). Existing folds in labels.csv are kept
    unless --reassign-folds."""
    groups, report = find_groups(records, data_dir, args.groups)
    labels = labels.assign(group=groups)
    old_path = data_dir / 'labels.csv'
    old = None
    if old_path.exists() and not args.reassign_folds:
        old = pd.read_csv(old_path, dtype={'patient_id': str})
        if 'fold' not in old.columns:
            old = None
    if old is None or not len(labels):
        folds = assign_group_folds(labels[CLASSES].to_numpy(), groups, seed=args.fold_seed) \
            if len(labels) else np.zeros(0, dtype=np.int64)
        report['folds'] = 'assigned'
    else:
        folds = keep_existing_folds(labels, old, args.fold_seed)
        kept = int(labels['patient_id'].isin(old['patient_id']).sum())
        seed = read_fold_seed(data_dir)
        report['folds'] = 'kept'
        print(f'folds: kept the existing folds of {kept} records from labels.csv (fold seed '
              f'{seed}), {len(labels) - kept} new records assigned; --reassign-folds '
              f'reassigns all with --fold-seed {args.fold_seed}')
        if seed is not None:
            report['fold_seed'] = seed
    report.setdefault('fold_seed', args.fold_seed)
    return folds, groups, report


def fold_table(labels):
    """Per-fold record and class counts, to eyeball the stratification."""
    table = labels.groupby('fold')[CLASSES].sum()
    table.insert(0, 'n', labels.groupby('fold').size())
    return table


def reference_table(records, quality):
    """reference.csv: one row per record read (labelled or not), sorted by id."""
    return pd.DataFrame({
        'patient_id': [r['patient_id'] for r in records],
        'sample_rate': [int(r['sample_rate']) if float(r['sample_rate']).is_integer()
                        else r['sample_rate'] for r in records],
        'signal_len': [r['signal_len'] for r in records],
        'age': pd.array([None if np.isnan(r['age']) else round(r['age']) for r in records],
                        dtype='Int64'),
        'sex': [r['sex'] for r in records],
        'dx': [','.join(r['dx']) for r in records],
        'leads': [','.join(r['leads']) for r in records],
        'quality': [quality.get(r['patient_id'], '') for r in records],
        'ignored': [','.join(r.get('ignored', [])) for r in records],
    }).sort_values('patient_id', kind='stable')


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise SystemExit(f'error: --data-dir {data_dir} is not a folder; download the data '
                         'or make synthetic records (python synthetic.py --out data/SYNTH)')
    data_dir = data_dir.resolve()
    fmt = detect_format(data_dir, args.labels) if args.format == 'auto' else args.format
    if fmt == 'exports' and not args.labels:
        raise SystemExit('error: --format exports needs --labels FILE.csv (columns record and '
                         'dx, or the nine class columns)')
    workers = max(0, args.workers)
    print(f'preprocess {data_dir} (format {fmt}, fold seed {args.fold_seed}, '
          f"{f'{workers} workers' if workers > 1 else 'in this process'})")
    skips = Skips(args.strict)

    t0 = time.perf_counter()
    if fmt == 'wfdb':
        records = scan_wfdb(data_dir, skips, args.allow_outside_folder)
    elif fmt == 'exports':
        records = scan_exports(data_dir, args.labels, skips, args.lead_map, args.fs,
                               args.allow_outside_folder)
    else:
        records = scan_cpsc2018(data_dir, skips, workers, args.allow_outside_folder)
    records = drop_duplicates(records, skips)
    print(f'read {len(records) + len(skips.rows)} records in {time.perf_counter() - t0:.2f} s')

    labelled = [r for r in records if dx_to_classes(r['dx'], args.snr_rule)]
    note = snr_rule_note(records, args.snr_rule)
    if note:
        print(note)
    print(f'dropped {len(records) - len(labelled)} records with none of the nine classes '
          f"({', '.join(CLASSES)})")

    cache_dir = data_dir / 'cache'
    # a lead map or rate changes what an export's samples are: part of the cache's inputs
    fp = fingerprint(labelled, fmt if fmt != 'exports' else f'{fmt} {args.lead_map} {args.fs}',
                     data_dir)
    meta = None if args.force else cache_is_current(cache_dir, fp)
    if meta is not None:
        print(f"cache up to date ({meta['records']} records, {meta['samples']} samples); "
              '--force rebuilds it')
        bad = {s['patient_id'] for s in meta['skipped']}
        for s in meta['skipped']:
            skips.add(s['patient_id'], s['path'], s['reason'])
        labelled = [r for r in labelled if r['patient_id'] not in bad]
    else:
        t1 = time.perf_counter()
        labelled = build_cache(labelled, cache_dir, fmt, fp, workers, skips,
                               args.allow_outside_folder,
                               (args.lead_map, args.fs) if fmt == 'exports' else (), args.resume)
        size = (cache_dir / 'signals.npy').stat().st_size
        print(f'cache: {len(labelled)} records, {size / 2**20:.1f} MiB in '
              f'{time.perf_counter() - t1:.1f} s -> {cache_dir}')
    bad = {s['patient_id'] for s in skips.rows}
    records = [r for r in records if r['patient_id'] not in bad]
    quality = read_quality(cache_dir)
    report_quality(quality)

    reference = reference_table(records, quality)
    labelled = sorted(labelled, key=lambda r: r['patient_id'])
    y = np.array([[int(c in dx_to_classes(r['dx'], args.snr_rule)) for c in CLASSES]
                  for r in labelled], dtype=np.int64).reshape(-1, len(CLASSES))
    labels = pd.DataFrame(y, columns=CLASSES)
    labels.insert(0, 'patient_id', [r['patient_id'] for r in labelled])
    folds, groups, group_report = assign_record_folds(labels, labelled, data_dir, args)
    labels['fold'] = folds
    labels['group'] = groups
    labels['leads'] = [live_leads(r['leads'], quality.get(r['patient_id'], ''))
                       for r in labelled]
    skipped = pd.DataFrame(skips.rows, columns=['patient_id', 'path', 'reason'])

    atomic_to_csv(reference, data_dir / 'reference.csv', index=False)
    atomic_to_csv(labels, data_dir / 'labels.csv', index=False)
    atomic_to_csv(skipped, data_dir / 'skipped.csv', index=False)
    manifest = public(fold_manifest(labels, group_report['fold_seed']))
    provenance = data_provenance(data_dir)
    atomic_write_json({**manifest, 'snr_rule': args.snr_rule, 'groups_file': args.groups,
                       **group_report, 'provenance': provenance}, data_dir / FOLDS_JSON)
    if provenance['synthetic']:
        print(f"data: synthetic ({provenance['manifest']}); a model trained on it is a demo")
    print(describe_groups(group_report))
    if len(labels):
        print('records and class counts per fold:')
        print(fold_table(labels).to_string())
    print(f'wrote reference.csv ({len(reference)} records), labels.csv ({len(labels)}), '
          f'skipped.csv ({len(skipped)}), folds.json (manifest {manifest["hash"][:12]}) in '
          f'{data_dir}')


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        # Every output is written atomically: nothing half-written is left.
        raise SystemExit('\ninterrupted: no output is half-written; run it again with '
                         '--resume to finish the cache from where it stopped') from None
