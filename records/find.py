"""Finding the records that globs, files and folders name."""
import glob
import re
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


def find_records(patterns):
    """Globs, files, folders (searched recursively) and bare WFDB record names
    -> (paths, problems): one path per record, in the order given (A0001.hea
    and A0001.mat are one record); problems are 'PATTERN: reason' lines for
    patterns that name no record. The one record finder of every script."""
    paths, seen, problems = [], set(), []
    for pattern in patterns:
        pattern = str(Path(pattern).expanduser())
        p = Path(pattern)
        if p.is_dir():
            matches = [m for m in sorted(p.rglob('*')) if m.is_file()]
        else:
            matches = [Path(m) for m in sorted(glob.glob(pattern, recursive=True))]
        # A wide glob such as data/CPSC/* also finds labels.csv, .atr, cache/.
        matches = [m for m in matches if m.is_file() and m.suffix.lower() in RECORD_SUFFIXES
                   and (m.suffix.lower() != '.csv' or csv_names_a_lead(m))]
        if not matches and Path(pattern + '.hea').is_file():
            matches = [Path(pattern)]  # a bare WFDB record name such as mitdb/100
        if not matches:
            problems.append(f'{pattern}: ' + ('no such file or WFDB record' if not p.exists()
                                              else 'names no .hea, .mat or .dat record, nor '
                                                   'a file of the formats read '
                                                   f"({', '.join(FORMAT_SUFFIXES)})"))
        for m in matches:
            m = _record_file(m)
            if m.suffix.lower() in _SIGNAL_ONLY:
                continue  # a signal file with no header is no record
            key = str(record_base(m).resolve())
            if key not in seen:
                seen.add(key)
                paths.append(m)
    return paths, problems
