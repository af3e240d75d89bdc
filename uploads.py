"""Uploaded files -> records: the one upload path of the web app (app.py) and
the API. Files come in as (browser name, bytes); they are written under
sanitised names into a temporary folder, paired into records (a WFDB header
with the signal files it names, a CPSC2018 .mat on its own), read through
records.py as every script reads them, and the folder is removed as soon as
the records are read (they are kept in memory only).

    import uploads
    records, problems = uploads.load_uploads([('A0001.hea', b'...'), ('A0001.mat', b'...')],
                                             leads, window)
    with tempfile.TemporaryDirectory() as tmp:
        paths, problems = uploads.stage(files, tmp)   # record paths inside tmp

A bad file is one (file, reason) problem; the rest of the upload goes on.
"""
import hashlib
import io
import re
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from utils import FS, LEADS

# One uploaded file, and the files of one .zip together (uncompressed): an ECG
# of 24 h at 500 Hz x 12 leads in int16 is ~1 GB; 10-60 s records are < 2 MB.
# Kept equal to server.maxUploadSize (MB) in .streamlit/config.toml.
MAX_FILE_BYTES = 50 * 2 ** 20
MAX_ZIP_BYTES = 200 * 2 ** 20
UNSAFE = re.compile(r'[^A-Za-z0-9._+-]')


def safe_name(name):
    """A browser's file name -> a plain file name, or None. Folders ('../',
    'C:\\'), and characters outside [A-Za-z0-9._+-] are dropped, so nothing
    from the browser chooses where a file is written."""
    base = str(name).replace('\\', '/').split('/')[-1]
    base = UNSAFE.sub('_', base).lstrip('.')[:128]
    return base or None


def _size(n):
    return f'{n / 2 ** 20:.1f} MB' if n >= 2 ** 20 else f'{n / 1024:.0f} kB'


def _unzip(name, data, problems):
    """Members of a zip -> [(name, bytes)]; folders are flattened, AppleDouble
    '._' files and __MACOSX/ are skipped, and sizes are checked before reading."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        problems.append((name, f'not a readable .zip ({e})'))
        return []
    out, total = [], 0
    for info in zf.infolist():
        member = PurePosixPath(info.filename.replace('\\', '/'))
        if info.is_dir() or '__MACOSX' in member.parts or member.name.startswith('._'):
            continue
        total += info.file_size
        if info.file_size > MAX_FILE_BYTES or total > MAX_ZIP_BYTES:
            problems.append((f'{name}/{member}', f'over the size limit ({_size(MAX_FILE_BYTES)} '
                                                 f'a file, {_size(MAX_ZIP_BYTES)} a zip)'))
            continue
        try:
            out.append((str(member), zf.read(info)))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            problems.append((f'{name}/{member}', f'corrupt member ({e})'))
    return out


def stage_files(files, folder):
    """[(browser name, bytes)] -> (staged {safe name: browser name}, problems).
    Zips are unpacked; each file is written into `folder` under its safe name."""
    problems, flat = [], []
    for name, data in files:
        if len(data) > MAX_FILE_BYTES:
            problems.append((name, f'{_size(len(data))} is over the size limit of '
                                   f'{_size(MAX_FILE_BYTES)} a file'))
        elif str(name).lower().endswith('.zip'):
            flat += _unzip(name, data, problems)
        else:
            flat.append((name, data))
    staged = {}
    for name, data in flat:
        safe = safe_name(name)
        if safe is None:
            problems.append((name, 'not a usable file name'))
        elif safe in staged:
            problems.append((name, f'a second file named {safe} in this upload; upload '
                                   'records with the same name separately'))
        else:
            (Path(folder) / safe).write_bytes(data)
            staged[safe] = name
    return staged, problems


def stage(files, folder):
    """[(browser name, bytes)] -> (record paths inside `folder`, problems):
    staged under safe names and paired into records."""
    staged, problems = stage_files(files, folder)
    paths, more = pair_records(folder, staged)
    return paths, problems + more


def header_files(text):
    """Signal-file names a WFDB header gives (first field of each signal line)."""
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith('#')]
    try:
        nsig = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return []
    return list(dict.fromkeys(ln.split()[0] for ln in lines[1:nsig + 1]))


def pair_records(folder, staged):
    """-> (record paths, problems). Records are paired by the signal-file names
    each header gives, not by basenames; a .mat no header names is taken as
    an original CPSC2018 .mat; any other file no header names is reported."""
    folder = Path(folder)
    records, problems, used = [], [], set()
    for safe in staged:
        if not safe.lower().endswith('.hea'):
            continue
        try:
            names = header_files((folder / safe).read_text(errors='replace'))
        except OSError as e:
            problems.append((staged[safe], f'unreadable header ({e})'))
            continue
        used.update(names)
        missing = [n for n in names if n not in staged]
        if missing:
            problems.append((staged[safe], f"signal file {', '.join(missing)} named by the "
                                           'header is missing from the upload'))
            continue
        records.append(folder / safe)
    headers = {Path(s).stem for s in staged if s.lower().endswith('.hea')}
    for safe, original in staged.items():
        low = safe.lower()
        if safe in used or low.endswith('.hea'):
            continue
        if Path(safe).stem in headers:  # its header is unreadable: reported once, there
            continue
        if low.endswith('.mat'):
            records.append(folder / safe)
        elif not low.endswith(('.atr', '.json', '.txt', '.csv')):  # annotations, notes
            problems.append((original, 'no .hea header in the upload names this file; '
                                       'upload the header with it'))
    return records, problems


# The display (printout, interactive view, QRS detector) shows the model's
# window, and at least 10 s (a printout) when the record has them.
DISPLAY_MIN = 10 * FS


def read_prepared(path, leads, window):
    """The ONE place the app reads a record: records.read_record and
    records.prepare, as every script (any rate, lead order, lead-name case or
    alias; limb leads derived) -> dict(rec (records.Record), x (len(leads),
    window) float32 model input, quality, display (n, k) mV at 500 Hz of the
    standard leads the record gives, display_leads, length, offset)."""
    import records
    rec = records.read_record(path)
    prep = records.prepare(rec, leads, window)
    total = records.length_at_fs(rec)
    shown = [lead for lead in LEADS if lead not in records.missing_leads(rec, LEADS)]
    n = min(total, max(window, DISPLAY_MIN))
    display = records.prepare(rec, shown, n).x.T
    length = min(total, window)
    return {'rec': rec, 'x': np.ascontiguousarray(prep.x), 'quality': str(prep.quality),
            'display': np.ascontiguousarray(display), 'display_leads': shown,
            'length': length, 'offset': n - length, 'total': total}


def _record(r, name, source):
    rec = r['rec']
    return {'name': name, 'signal': r['display'], 'leads': r['display_leads'],
            'fs': float(rec.fs), 'age': rec.age, 'sex': rec.sex or 'Unknown',
            'dx': [str(c) for c in rec.dx], 'x': r['x'], 'quality': r['quality'],
            'length': r['length'], 'offset': r['offset'], 'seconds': r['total'] / FS,
            'source': source, 'id': hashlib.sha256(r['x'].tobytes()).hexdigest()[:16]}


def read_records(paths, leads, window, staged=None):
    """Record paths -> (records, problems); a bad record is one problem line."""
    from records import RecordError
    out, problems = [], []
    for path in paths:
        label = (staged or {}).get(Path(path).name, Path(path).name)
        try:
            r = read_prepared(path, leads, window)
        except RecordError as e:
            problems.append((label, e.reason))
            continue
        except Exception as e:  # noqa: BLE001 (a damaged file must not stop the batch)
            problems.append((label, f'unreadable ({type(e).__name__}: {e})'))
            continue
        out.append(_record(r, safe_name(r['rec'].name or Path(path).stem), label))
    return out, problems


def load_uploads(files, leads, window):
    """[(browser name, bytes)] -> (records, problems [(file, reason)]). The files
    live in a temporary folder only while they are read."""
    with tempfile.TemporaryDirectory(prefix='ecg-upload-') as tmp:
        staged, problems = stage_files(files, tmp)
        paths, more = pair_records(tmp, staged)
        records, bad = read_records(paths, leads, window, staged)
    return records, problems + more + bad
