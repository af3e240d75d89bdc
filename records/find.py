"""Finding the records that globs, files and folders name."""
import contextlib
import glob
import hashlib
import os
import re
import sys
from pathlib import Path

from records.formats.csv import csv_column

# Extensions of the hospital formats records.formats reads (the content decides;
# these pick files out of a folder). WFDB's .hea/.mat/.dat are read here.
FORMAT_SUFFIXES = ('.dcm', '.dicom', '.xml', '.scp', '.ecg', '.edf', '.bdf', '.csv', '.mwf')


# --------------------------------------------------------------------------
# Finding records.

# The files that are (part of) a record; a WFDB record is one record however
# many of its files a pattern names.
WFDB_SUFFIXES = {'.hea', '.mat', '.dat'}
# WFDB's files and the hospital formats' (records.formats, recognised by content).
RECORD_SUFFIXES = WFDB_SUFFIXES | set(FORMAT_SUFFIXES)
# A record's signal files beside its header: found through the header.
_SIGNAL_ONLY = {'.dat'}


def record_base(path):
    """A record file or bare record name -> the path without its suffix."""
    p = Path(path)
    return p.with_suffix('') if p.suffix.lower() in WFDB_SUFFIXES else p


def _record_file(path):
    """The file read_record is given for `path`: a WFDB record's header where
    there is one (A0001.mat + A0001.hea is a WFDB record, not a CPSC struct)."""
    p = Path(path)
    if p.suffix.lower() in {'.mat', '.dat'} and p.with_suffix('.hea').is_file():
        return p.with_suffix('.hea')
    return p


def csv_names_a_lead(path):
    """A CSV is a record when its header names a lead (labels.csv and
    reference.csv beside WFDB records name none)."""
    try:
        with open(path, encoding='utf-8-sig', errors='replace') as f:
            head = f.readline()
    except OSError:
        return False
    return any(csv_column(c)[0] for c in re.split(r'[,;\t]', head))


def _walk(folder):
    """A folder's files, recursively, in sorted order, one directory listed at
    a time (an archive of a million files is never listed whole)."""
    try:
        # a folder sorts as 'name/', so the order is that of the sorted full paths
        entries = sorted(os.scandir(folder),
                         key=lambda e: e.name + ('/' if e.is_dir(follow_symlinks=False) else ''))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        elif entry.is_file():
            yield Path(entry.path)


def _is_record_file(m):
    # A wide glob such as data/CPSC/* also finds labels.csv, .atr, cache/.
    return m.suffix.lower() in RECORD_SUFFIXES and m.is_file() \
        and (m.suffix.lower() != '.csv' or csv_names_a_lead(m))


def _matches(pattern):
    """One pattern -> its record files, lazily for a folder (a glob is
    expanded whole: glob sorts nothing, and the order must be the same every run)."""
    p = Path(pattern)
    if p.is_dir():
        return (m for m in _walk(p) if _is_record_file(m))
    found = [Path(m) for m in sorted(glob.glob(pattern, recursive=True))]
    found = [m for m in found if _is_record_file(m)]
    if not found and Path(pattern + '.hea').is_file():
        found = [Path(pattern)]  # a bare WFDB record name such as mitdb/100
    return found


def _pattern_problem(pattern):
    p = Path(pattern)
    return f'{pattern}: ' + ('no such file or WFDB record' if not p.exists()
                             else 'names no .hea, .mat or .dat record, nor a file of the '
                                  f"formats read ({', '.join(FORMAT_SUFFIXES)})")


def iter_records(patterns):
    """Globs, files, folders (searched recursively, lazily) and bare WFDB
    record names -> yields (path, None) once per record, in the order given
    (A0001.hea and A0001.mat are one record), or (None, 'PATTERN: reason')
    for a pattern that names no record. Memory holds one directory's listing
    and an 8-byte key a record."""
    seen = set()
    for pattern in patterns:
        pattern = str(Path(pattern).expanduser())
        found = False
        for m in _matches(pattern):
            found = True
            m = _record_file(m)
            if m.suffix.lower() in _SIGNAL_ONLY:
                continue  # a signal file with no header is no record
            key = hashlib.blake2b(str(record_base(m).resolve()).encode(), digest_size=8).digest()
            if key not in seen:
                seen.add(key)
                yield m, None
        if not found:
            yield None, _pattern_problem(pattern)


def read_list(path):
    """--records-from: a text file (or '-', standard input) of one path, glob
    or folder a line, read lazily; blank lines and '# ...' are skipped."""
    f = sys.stdin if str(path) == '-' else open(path, encoding='utf-8')
    with f if f is not sys.stdin else contextlib.nullcontext(f):
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                yield line


def find_records(patterns):
    """iter_records as lists -> (paths, problems). The one record finder of
    every script that needs them all (preprocess.py, visualize.py)."""
    paths, problems = [], []
    for path, problem in iter_records(patterns):
        (paths if path is not None else problems).append(path or problem)
    return paths, problems
