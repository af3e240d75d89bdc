"""CSV, semicolon- or tab-separated text: one column per lead."""
import re
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _budget, _record, lead_name
from records.limits import MAX_CSV_BYTES

# --------------------------------------------------------------------------
# CSV.

TIME_COLUMNS = ('time', 't', 'time_s', 'time (s)', 'seconds', 'sec', 's', 'time_ms',
                'time (ms)', 'ms', 'timestamp')


def csv_column(label):
    """'II', 'V5 (uV)', 'I [mV]', 'ECG_II_uV' -> (lead or None, unit)."""
    text = label.strip().strip('"\'')
    unit = 'mV'
    m = re.search(r'[\s_\-\[(]*(uv|µv|μv|mv)[\])]?$', text, flags=re.I)
    if m and text[:m.start()].strip():
        unit = 'uV' if m.group(1).lower() != 'mv' else 'mV'
        text = text[:m.start()]
    return lead_name(text), unit


def read_csv(path, fs=None):
    """CSV (or ';'/tab separated) with a header row: one column per lead
    named by lead ('I', 'II', 'V1', aliases; a '(uV)' or '_uV' suffix gives
    the unit, else mV), and either `fs` or a time column (s, or ms when named
    so) giving the rate. Columns that name no lead are ignored and named
    (rec.ignored); a lead map (records.read_record) can name them."""
    name, file = Path(path).stem, Path(path).name
    size = Path(path).stat().st_size
    if size > MAX_CSV_BYTES:
        raise RecordError(name, f'{file} is {size / 2 ** 20:.1f} MB, over the '
                                f'{MAX_CSV_BYTES >> 20} MB a CSV record can be')
    raw = Path(path).read_bytes()
    ends = b'\n' if b'\n' in raw else b'\r'   # old Mac files end lines with CR alone
    first = raw.split(ends, 1)[0].decode('utf-8-sig', errors='replace').rstrip('\r')
    rows = raw.count(ends) + (not raw.endswith(ends)) - 1
    if rows < 1:
        raise RecordError(name, f'{file}: CSV without data rows')
    sep = max([',', ';', '\t'], key=lambda s: first.count(s))
    header = [h.strip().strip('"\'') for h in first.split(sep)]
    _budget(name, path, fs=fs, leads=len(header) - 1 or 1, values=rows * len(header),
            what='CSV')
    del raw
    try:  # numpy's C reader from the file: no list of lines, no Python floats
        with open(path, encoding='utf-8-sig', errors='replace') as f:
            data = np.loadtxt(f, delimiter=sep, ndmin=2, dtype=np.float64, skiprows=1)
    except ValueError as e:
        raise RecordError(name, f'{file}: non-numeric CSV data ({e})') from None
    if len(data) == 0:
        raise RecordError(name, f'{file}: CSV without data rows')
    if data.shape[1] != len(header):
        raise RecordError(name, f'CSV rows hold {data.shape[1]} values, the header names '
                                f'{len(header)} columns')
    low = [h.lower() for h in header]
    tcol = next((j for j, h in enumerate(low) if h in TIME_COLUMNS), None)
    if fs is None and tcol is not None:
        step = np.median(np.diff(data[:, tcol])) if len(data) > 1 else 0.0
        ms = 'ms' in low[tcol]
        if not step > 0:
            raise RecordError(name, f'{file}: time column {header[tcol]!r} does not increase '
                                    f'(median step {step:g} {"ms" if ms else "s"})')
        fs = 1.0 / (step / 1000.0 if ms else step)
        _budget(name, path, fs=fs)
    if not fs:
        raise RecordError(name, f'{Path(path).name}: CSV without a time column; give the '
                                f'sampling rate with --fs HZ')
    cols = [j for j in range(len(header)) if j != tcol]
    parsed = [csv_column(header[j]) for j in cols]
    return _record(path, name, fs, data[:, cols], [header[j] for j in cols],
                   [u for _, u in parsed], 'csv', leads=[lead for lead, _ in parsed])
