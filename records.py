"""Reading ECG records into model input: the one module every script uses.

    from records import RecordError, read_record, prepare
    rec = read_record('../shared/data/mitdb/100')   # header now, samples on demand
    rec.leads                                       # ['II', 'V5'] (MLII is lead II)
    x, real, quality = prepare(rec, ['II'])         # the last 30 s, as the model sees it
    x.shape, real, str(quality)                     # (1, 15000) [ True] ok

No torch here: the web app, visualize.py and the feature scripts import it
cheaply. The contract (kept small and stable on purpose):

read_record(path) -> Record, or RecordError. `path` is NAME.hea, NAME.mat,
NAME.dat or the bare NAME of a WFDB record (any signal format wfdb reads;
MATLAB v4 .mat as in the PhysioNet/CinC 2020/2021 challenges; any sampling
rate), or an original CPSC2018 .mat (struct ECG, no .hea beside it). Only
the header is parsed; samples are read when asked for, so a 24-hour Holter
costs nothing to open. A Record has
    name, path, fs (Hz, float), sig_len (samples at fs), duration (s)
    sig_names   the channel names as written in the file ('MLII', 'avr', 'D1')
    leads       the standard name of each channel (utils.LEADS spelling, by
                alias and case: MLII/ML2 -> II, D1..D3/DI..DIII -> I..III,
                AVR/avr -> aVR, ...), None for a channel that is no ECG lead
    units       per channel as written ('mV', 'uV', ...); values come in mV
    age (float, NaN if unknown), sex ('Male'/'Female'/'Unknown'),
    dx (list of SNOMED-CT codes, [] without a '# Dx:' comment; has_dx says
    which), comments (header comment lines), files (header and signal files)
    signal      (sig_len, nchannels) float64 mV, NaN where a sample is missing;
                reads the whole record (use read(start, stop) for a part)
    read(start, stop) -> the samples [start, stop) of every channel, as signal

prepare(record, leads, window=15000, end=None) -> Prepared(x, real, quality):
    x        float32 (len(leads), window) mV at 500 Hz: the `window` samples
             (at 500 Hz) that end at `end` (default: the record's end, i.e.
             the last 30 s, as in the study), front zero-padded when the record
             is shorter, quantised to 1 µV exactly as preprocess.py's cache
    real     bool (len(leads),): True for a lead the record holds, False for
             one derived from two other limb leads (Einthoven/Goldberger)
    quality  Quality: str() is 'ok' or the flags ('flat V3; clipped II 0.4%');
             quality.flags is the tuple of flags
Only the part needed is read: the window plus a margin for the resampling
filter (resample_poly by the exact rational ratio), so the result is the same
as resampling the whole record and cutting, to float precision.

RecordError (str() is 'NAME: reason') for every bad case: no such file,
missing signal file, truncated or corrupt file, zero length, a requested lead
that is neither recorded nor derivable (the message names it and what the
record has), NaN/missing samples inside the window used (outside it they do
no harm), and a window with no usable signal (every lead flat, or amplitudes
~1000x too large for the stated units).

Quality flags (conservative: every real record in ../shared/data passes):
    flat L          lead L is flat or near-flat: in at least half of its 2-s
                    blocks (at ~125 samples/s) the peak-to-peak is under
                    20 µV (electrode off)
    clipped L p%    at least 0.1% of the samples at the ADC's limits, or in
                    recurring plateaus (>= 3 runs of >= 20 ms) at the lead's
                    extreme value: saturation
    amplitude L     robust peak-to-peak over MAX_MV: implausible for an ECG
                    in mV (a lead with a unit or gain error)
The helpers recorded_leads(record), obtainable(leads) and missing_leads(record,
leads) tell which leads a record has, can give, and lacks.
"""
import glob
import os
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from utils import FS, LEADS, WINDOW

UNITS_TO_MV = {'mv': 1.0, '': 1.0, 'uv': 1e-3, 'µv': 1e-3, 'μv': 1e-3, 'v': 1e3}

# Other spellings of the twelve standard leads, lower case. MLII/ML2 is the
# modified lead II of Holter recordings (MIT-BIH), D1..D3 and DI..DIII the
# European names of the limb leads; the rest are exports' variants.
LEAD_ALIASES = {
    'mlii': 'II', 'ml2': 'II', 'mli': 'I', 'ml1': 'I', 'mliii': 'III', 'ml3': 'III',
    'd1': 'I', 'd2': 'II', 'd3': 'III', 'di': 'I', 'dii': 'II', 'diii': 'III',
    'lead i': 'I', 'lead ii': 'II', 'lead iii': 'III', 'avr': 'aVR', 'avl': 'aVL',
    'avf': 'aVF', 'mv1': 'V1', 'mv2': 'V2', 'mv3': 'V3', 'mv4': 'V4', 'mv5': 'V5',
    'mv6': 'V6',
}
_CANON = {name.lower(): name for name in LEADS} | LEAD_ALIASES

# Each limb lead as a combination of (I, II): Einthoven (III = II - I) and
# Goldberger (aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2). The six
# directions are 30 degrees apart, so any two of them give the other four.
LIMB = {'I': (1.0, 0.0), 'II': (0.0, 1.0), 'III': (-1.0, 1.0),
        'aVR': (-0.5, -0.5), 'aVL': (1.0, -0.5), 'aVF': (-0.5, 1.0)}

# Quality thresholds, in mV. An ECG lead's QRS is rarely under 0.1 mV in
# every beat, and the noise floor of real recordings is 10-30 µV peak to
# peak: 20 µV over 2 s means no signal. No real lead reaches 20 mV (QRS of
# LVH: ~5 mV), while a record in µV read as mV gives hundreds.
FLAT_MV = 0.02
FLAT_BLOCK_S = 2.0
FLAT_SHARE = 0.5
MAX_MV = 20.0
PLATEAU_S = 0.02
PLATEAU_RUNS = 3
CLIP_SHARE = 0.001  # report clipping from 0.1% of the window's samples (30 ms of 30 s)

# MATLAB v4 precision codes (the P digit of the type field) -> numpy dtype.
MAT4_DTYPES = {0: 'f8', 1: 'f4', 2: 'i4', 3: 'i2', 4: 'u2', 5: 'u1'}
# Bits of the WFDB formats (for the ADC's limits, i.e. clipping).
FMT_BITS = {'8': 8, '16': 16, '61': 16, '80': 8, '160': 16, '212': 12, '310': 10,
            '311': 10, '24': 24, '32': 32, '508': 8, '516': 16, '524': 24}


class RecordError(Exception):
    """A record that cannot be used; str() is 'RECORD: reason'."""

    def __init__(self, record, reason):
        super().__init__(f'{record}: {reason}')
        self.record = str(record)
        self.reason = reason


def canonical_lead(name):
    """'MLII' -> 'II', 'avr' -> 'aVR', 'D3' -> 'III'; None if no ECG lead."""
    return _CANON.get(' '.join(str(name).strip().lower().split()))


def parse_leads(leads):
    """'all', 'I,aVR,V5' or a list (any alias/case) -> standard names, in the
    order asked: the one lead vocabulary of every script. Unknown or repeated
    names raise ValueError listing the valid ones (utils.leads_arg turns it
    into the command line's error)."""
    if isinstance(leads, str):
        if leads.strip().lower() == 'all':
            return list(LEADS)
        leads = [s for s in leads.split(',') if s.strip()]
    out = []
    for name in leads:
        canon = canonical_lead(name)
        if canon is None:
            raise ValueError(f"unknown lead {name!r}; use 'all' or names from "
                             f"{','.join(LEADS)} (aliases such as MLII, D1, avr work too)")
        out.append(canon)
    if len(set(out)) != len(out):
        raise ValueError(f"a lead is asked for twice in {','.join(map(str, leads))}")
    return out


def obtainable(leads):
    """The standard leads (utils.LEADS order) that recorded `leads` give:
    themselves, and all six limb leads when at least two limb leads are there."""
    have = set(parse_leads(leads))
    if len(have & set(LIMB)) >= 2:
        have |= set(LIMB)
    return [lead for lead in LEADS if lead in have]


def recorded_leads(record):
    """The standard leads a record holds, in utils.LEADS order."""
    return [lead for lead in LEADS if lead in record.leads]


def missing_leads(record, leads):
    """Of `leads`, those the record neither holds nor can derive."""
    can = set(obtainable(recorded_leads(record)))
    return [lead for lead in parse_leads(leads) if lead not in can]


# --------------------------------------------------------------------------
# Headers.

def _parse_age(text):
    try:
        age = float(text)
    except ValueError:  # 'Unknown', '', '60+'...
        return float('nan')
    return age if 0 <= age < 150 else float('nan')


def _parse_sex(text):
    text = str(text).strip().lower()
    if text in ('male', 'm'):
        return 'Male'
    if text in ('female', 'f'):
        return 'Female'
    return 'Unknown'


def _parse_gain(field):
    """'1000.0(0)/mV' -> (gain, baseline or None, units)."""
    units = 'mV'
    if '/' in field:
        field, units = field.split('/', 1)
    baseline = None
    if '(' in field:
        field, rest = field.split('(', 1)
        baseline = int(rest.rstrip(')'))
    gain = float(field)
    return (gain if gain != 0 else 200.0), baseline, units  # WFDB: 0 means 200


def _header_fields(comments):
    """Age, sex, Dx from the comments: the Challenge's 'Age: 74' / 'Sex: Male'
    / 'Dx: 59118001,...', or MIT-BIH's '69 M 1085 1629 x1'."""
    fields, mitbih = {}, None
    for line in comments:
        key, sep, value = line.partition(':')
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
        elif mitbih is None:
            words = line.split()
            if len(words) >= 2 and words[0].isdigit() and words[1] in ('M', 'F'):
                mitbih = words[:2]
    age, sex = fields.get('age', ''), fields.get('sex', '')
    if mitbih and not age:
        age, sex = mitbih
    dx = fields.get('dx')
    return (_parse_age(age), _parse_sex(sex),
            None if dx is None else [c.strip() for c in dx.split(',') if c.strip()])


def header_path(path):
    path = Path(path)
    if path.suffix.lower() in ('.hea', '.mat', '.dat'):
        return path.with_suffix('.hea')
    return path.with_name(path.name + '.hea')


def read_header(path):
    """Parse a WFDB header without touching the signal (~20x faster than
    wfdb.rdheader, which matters over tens of thousands of records) -> dict
    (name, path, fs, sig_len, files, fmts, gains, baselines, units, sig_names,
    offsets (byte offsets), age, sex, dx (None without a Dx comment),
    comments). Raises RecordError: no such file, a malformed line, a zero-
    length or multi-segment record, a bad rate, a missing signal file."""
    path = header_path(path)
    name = path.stem
    try:
        text = path.read_text(errors='replace')
    except OSError as e:
        raise RecordError(name, f'cannot read header {path}: {e.strerror}') from None
    comments, lines = [], []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('#'):
            comments.append(line.lstrip('#').strip())
        elif line:
            lines.append(line)
    if not lines:
        raise RecordError(name, 'empty header')
    rec = lines[0].split()
    try:
        if '/' in rec[0]:
            raise RecordError(name, 'multi-segment records are not supported')
        nsig = int(rec[1])
        fs = float(rec[2].split('/')[0].split('(')[0]) if len(rec) > 2 else 250.0
        sig_len = int(rec[3]) if len(rec) > 3 else None
    except (IndexError, ValueError):
        raise RecordError(name, f'malformed record line {lines[0]!r}') from None
    if not fs > 0:
        raise RecordError(name, f'sampling rate {fs:g} Hz is not positive')
    if nsig == 0:
        raise RecordError(name, 'header declares no signals')
    if sig_len is None:
        raise RecordError(name, 'header gives no signal length')
    if sig_len == 0:
        raise RecordError(name, 'zero-length record (0 samples)')
    if len(lines) - 1 < nsig:
        raise RecordError(name, f'header declares {nsig} signals but describes {len(lines) - 1}')

    h = {k: [] for k in ('files', 'fmts', 'offsets', 'spf', 'gains', 'baselines', 'units',
                         'sig_names')}
    for line in lines[1:nsig + 1]:
        f = line.split(maxsplit=8)
        try:
            gain, baseline, unit = _parse_gain(f[2]) if len(f) > 2 else (200.0, None, 'mV')
            adczero = int(f[4]) if len(f) > 4 else 0
            fmt = f[1] if len(f) > 1 else '16'
            offset = int(fmt.split('+')[1]) if '+' in fmt else 0
            spf = int(fmt.split('x')[1].split('+')[0].split(':')[0]) if 'x' in fmt else 1
        except ValueError:
            raise RecordError(name, f'malformed signal line {line!r}') from None
        h['files'].append(f[0])
        h['fmts'].append(fmt.split('x')[0].split(':')[0].split('+')[0])
        h['offsets'].append(offset)
        h['spf'].append(spf)
        h['gains'].append(gain)
        h['baselines'].append(adczero if baseline is None else baseline)
        h['units'].append(unit)
        h['sig_names'].append(f[8].strip() if len(f) > 8 else '')
    for fname in dict.fromkeys(h['files']):
        if not (path.parent / fname).is_file():
            raise RecordError(name, f'signal file {fname} is missing (header {path})')
    age, sex, dx = _header_fields(comments)
    return {'name': name, 'path': path, 'fs': fs, 'sig_len': sig_len, **h,
            'age': age, 'sex': sex, 'dx': dx, 'comments': comments}


# --------------------------------------------------------------------------
# Signal readers: each returns a function (start, stop) -> digital or physical
# samples of every channel, reading only those rows.

def _mat4_layout(path, name):
    """(dtype, offset, rows, cols) of a MATLAB v4 file's first matrix, or None
    when the file is not MATLAB v4."""
    with open(path, 'rb') as f:
        head = f.read(20)
    if len(head) < 20:
        raise RecordError(name, f'truncated .mat file {path.name} ({len(head)} bytes)')
    for order in '<>':
        mopt, rows, cols, imagf, namelen = (int(v) for v in np.frombuffer(head, f'{order}i4'))
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if 0 <= mopt < 5000 and o == 0 and t == 0 and p in MAT4_DTYPES and 0 < namelen < 64 \
                and (m == 0) == (order == '<') and imagf == 0 and rows >= 0 and cols >= 0:
            return np.dtype(order + MAT4_DTYPES[p]), 20 + namelen, rows, cols
    return None


def _memmap_reader(path, name, dtype, offset, shape):
    """A (sig_len, nsig) matrix stored row after row at `offset`: memory-map
    it and slice, so reading a window of a 24-h record touches only its pages."""
    expected = offset + shape[0] * shape[1] * dtype.itemsize
    size = os.path.getsize(path)
    if size < expected:
        raise RecordError(name, f'truncated signal file {path.name}: {size} bytes, expected '
                                f'{expected} for {shape[1]} signals x {shape[0]} samples')
    data = np.memmap(path, dtype=dtype, mode='r', offset=offset, shape=shape)
    return lambda start, stop: np.array(data[start:stop])


def _digital_to_mv(hdr, digital):
    """Digital samples -> float64 in the header's units, NaN for WFDB's
    missing-sample value (the format's most negative number)."""
    signal = digital.astype(np.float64)
    if digital.dtype.kind == 'i':
        signal[digital == np.iinfo(digital.dtype).min] = np.nan
    signal -= np.asarray(hdr['baselines'], dtype=np.float64)
    signal /= np.asarray(hdr['gains'], dtype=np.float64)
    return signal


def _signal_reader(hdr):
    """The fastest reader for this record's files -> (read(start, stop) ->
    float64 physical samples (header units), digital limits or None)."""
    name, folder, nsig = hdr['name'], hdr['path'].parent, len(hdr['files'])
    one_file = len(set(hdr['files'])) == 1 and len(set(hdr['offsets'])) == 1 \
        and set(hdr['spf']) == {1}
    shape = (hdr['sig_len'], nsig)
    if one_file and hdr['files'][0].lower().endswith('.mat'):
        path = folder / hdr['files'][0]
        layout = _mat4_layout(path, name)
        if layout is not None:
            dtype, offset, rows, cols = layout
            if (rows, cols) != (nsig, hdr['sig_len']):
                raise RecordError(name, f'{path.name} holds {rows} x {cols} values, header '
                                        f"says {nsig} signals x {hdr['sig_len']} samples")
            # MATLAB stores column-major: the (nsig, N) matrix is (N, nsig) rows.
            read = _memmap_reader(path, name, dtype, offset, shape)
            limit = np.iinfo(dtype).max if dtype.kind == 'i' else None
            return (lambda a, b: _digital_to_mv(hdr, read(a, b))), limit
        return _scipy_mat_reader(hdr, path), None
    if one_file and set(hdr['fmts']) == {'16'}:
        # Format 16 (little-endian int16, interleaved) is what wfdb.wrsamp and
        # most exports write: memory-mapped, as the .mat.
        read = _memmap_reader(folder / hdr['files'][0], name, np.dtype('<i2'),
                              hdr['offsets'][0], shape)
        return (lambda a, b: _digital_to_mv(hdr, read(a, b))), 32767
    bits = {FMT_BITS.get(f) for f in hdr['fmts']}
    limit = 2 ** (bits.pop() - 1) - 1 if len(bits) == 1 and None not in bits else None
    return (lambda a, b: _wfdb_read(hdr, a, b)), limit


def _scipy_mat_reader(hdr, path):
    """Any other .mat scipy reads (v5 from savemat, ...): the variable `val`
    or the file's only array, read whole once (such files are small)."""
    import scipy.io
    name, cache = hdr['name'], {}

    def read(start, stop):
        if 'x' not in cache:
            try:
                mat = scipy.io.loadmat(path)
            except Exception as e:  # noqa: BLE001 (scipy raises many types for corrupt files)
                raise RecordError(name, f'corrupt .mat file {path.name}: {e}') from None
            arrays = {k: v for k, v in mat.items() if not k.startswith('__')}
            arr = arrays.get('val', next(iter(arrays.values())) if len(arrays) == 1 else None)
            if not isinstance(arr, np.ndarray) or arr.ndim != 2:
                raise RecordError(name, f'{path.name} holds no 2-D signal matrix `val`')
            if arr.T.shape != (hdr['sig_len'], len(hdr['files'])):
                raise RecordError(name, f'{path.name} holds {arr.shape[0]} x {arr.shape[1]} '
                                        f"values, header says {len(hdr['files'])} x "
                                        f"{hdr['sig_len']}")
            cache['x'] = arr.T
        return _digital_to_mv(hdr, cache['x'][start:stop])
    return read


def _wfdb_read(hdr, start, stop):
    """Every other WFDB format (212, 24, several files...): wfdb.rdrecord of
    the rows [start, stop) only (it seeks; it does not read the whole file)."""
    import wfdb
    try:
        rec = wfdb.rdrecord(str(hdr['path'].with_suffix('')), sampfrom=int(start),
                            sampto=int(stop), physical=True, return_res=64)
    except Exception as e:  # noqa: BLE001 (wfdb raises many types for damaged files)
        raise RecordError(hdr['name'], f'cannot read signal: {type(e).__name__}: {e}') from None
    signal = rec.p_signal
    if signal is None or signal.shape[0] != stop - start:
        got = 0 if signal is None else signal.shape[0]
        raise RecordError(hdr['name'], f'signal file holds {got} samples from {start}, '
                                       f'expected {stop - start} (truncated?)')
    return signal


# --------------------------------------------------------------------------
# Records.

class Record:
    """One ECG record: header fields now, samples on demand (see the module
    docstring for the attributes)."""

    def __init__(self, name, path, fs, sig_len, sig_names, units, reader, limit=None,
                 age=float('nan'), sex='Unknown', dx=None, comments=(), files=(), fmts=()):
        self.name, self.path, self.fs, self.sig_len = name, Path(path), float(fs), int(sig_len)
        self.sig_names, self.units = list(sig_names), list(units)
        self.leads = [canonical_lead(n) for n in self.sig_names]
        self.age, self.sex = age, sex
        self.has_dx = dx is not None
        self.dx = list(dx or [])
        self.comments, self.files, self.fmts = list(comments), list(files), list(fmts)
        self._reader, self._limit = reader, limit
        scale = [UNITS_TO_MV.get(u.strip().lower()) for u in self.units]
        self._scale = np.array([np.nan if s is None else s for s in scale])
        self._signal = None

    def __repr__(self):
        return (f'Record({self.name!r}, {self.fs:g} Hz, {self.sig_len} samples, '
                f'leads {self.sig_names})')

    @property
    def duration(self):
        return self.sig_len / self.fs

    def read(self, start=0, stop=None):
        """Samples [start, stop) of every channel: float64 mV (NaN = missing;
        a channel in unknown units stays in its own)."""
        stop = self.sig_len if stop is None else min(int(stop), self.sig_len)
        start = max(0, int(start))
        if stop <= start:
            return np.zeros((0, len(self.sig_names)))
        x = self._reader(start, stop)
        known = np.isfinite(self._scale)
        if (self._scale[known] != 1).any():
            x = x * np.where(known, self._scale, 1.0)
        return x

    @property
    def signal(self):
        if self._signal is None:
            self._signal = self.read(0, self.sig_len)
        return self._signal

    def clip_limits(self):
        """Physical (mV) value of each channel's ADC limits, or None."""
        if self._limit is None or not hasattr(self, '_gains'):
            return None
        scale = np.where(np.isfinite(self._scale), self._scale, 1.0)
        hi = (self._limit - self._baselines) / self._gains * scale
        lo = (-self._limit - self._baselines) / self._gains * scale
        return lo, hi, 0.5 / self._gains * scale


def _read_cpsc_struct(path):
    """The original CPSC2018 download: A0001.mat with struct ECG(sex, age, data
    12 x N mV at 500 Hz), leads in the standard order."""
    import scipy.io
    name = path.stem
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        ecg = mat['ECG']
        data = np.asarray(ecg.data, dtype=np.float64)
    except Exception as e:  # noqa: BLE001 (corrupt file or another layout)
        raise RecordError(name, f'not a readable CPSC2018 .mat (struct ECG with data): '
                                f'{e}') from None
    if data.ndim != 2 or data.shape[0] != len(LEADS):
        raise RecordError(name, f'ECG.data has shape {data.shape}, expected (12, N)')
    if data.shape[1] == 0:
        raise RecordError(name, 'zero-length record (0 samples)')
    age = getattr(ecg, 'age', np.nan)
    age = _parse_age(str(age)) if np.size(age) == 1 else float('nan')
    sex = getattr(ecg, 'sex', '')
    signal = data.T
    return Record(name, path, FS, len(signal), LEADS, ['mV'] * 12,
                  lambda a, b: signal[a:b], age=age,
                  sex=_parse_sex(sex if isinstance(sex, str) else ''), dx=None,
                  files=[path], fmts=['mat'])


def read_record(path):
    """NAME(.hea/.mat/.dat) of a WFDB record or a CPSC2018 .mat -> Record.
    Raises RecordError (see the module docstring)."""
    path = Path(path)
    hea = header_path(path)
    if path.suffix.lower() == '.mat' and not hea.exists():
        if not path.exists():
            raise RecordError(path.stem, f'no such file {path}')
        return _read_cpsc_struct(path)
    hdr = read_header(hea)
    reader, limit = _signal_reader(hdr)
    rec = Record(hdr['name'], hea, hdr['fs'], hdr['sig_len'], hdr['sig_names'], hdr['units'],
                 reader, limit, age=hdr['age'], sex=hdr['sex'], dx=hdr['dx'],
                 comments=hdr['comments'],
                 files=[hea] + [hea.parent / f for f in dict.fromkeys(hdr['files'])],
                 fmts=hdr['fmts'])
    rec._gains = np.asarray(hdr['gains'], dtype=np.float64)
    rec._baselines = np.asarray(hdr['baselines'], dtype=np.float64)
    if not any(rec.leads):
        raise RecordError(rec.name, f"no ECG lead among the signals {', '.join(rec.sig_names)}")
    return rec


# --------------------------------------------------------------------------
# Finding records.

# The files that are (part of) a record; a WFDB record is one record however
# many of its files a pattern names.
RECORD_SUFFIXES = {'.hea', '.mat', '.dat'}
# A record's signal files beside its header: found through the header.
_SIGNAL_ONLY = {'.dat'}


def record_base(path):
    """A record file or bare record name -> the path without its suffix."""
    p = Path(path)
    return p.with_suffix('') if p.suffix.lower() in RECORD_SUFFIXES else p


def _record_file(path):
    """The file read_record is given for `path`: a WFDB record's header where
    there is one (A0001.mat + A0001.hea is a WFDB record, not a CPSC struct)."""
    p = Path(path)
    if p.suffix.lower() in {'.mat', '.dat'} and p.with_suffix('.hea').is_file():
        return p.with_suffix('.hea')
    return p


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
        matches = [m for m in matches if m.is_file() and m.suffix.lower() in RECORD_SUFFIXES]
        if not matches and Path(pattern + '.hea').is_file():
            matches = [Path(pattern)]  # a bare WFDB record name such as mitdb/100
        if not matches:
            problems.append(f'{pattern}: ' + ('no such file or WFDB record' if not p.exists()
                                              else 'names no .hea, .mat or .dat record'))
        for m in matches:
            m = _record_file(m)
            if m.suffix.lower() in _SIGNAL_ONLY:
                continue  # a signal file with no header is no record
            key = str(record_base(m).resolve())
            if key not in seen:
                seen.add(key)
                paths.append(m)
    return paths, problems


# --------------------------------------------------------------------------
# Rates.

def resample_ratio(fs):
    """Sampling rate -> (up, down) for resample_poly to utils.FS (500 Hz)."""
    r = Fraction(FS / float(fs)).limit_denominator(1000)
    return r.numerator, r.denominator


def resampled_length(n, fs):
    """Samples after resampling n samples at fs to 500 Hz (resample_poly's length)."""
    up, down = resample_ratio(fs)
    return -(-int(n) * up // down)


def length_at_fs(record):
    """The record's length in samples at 500 Hz."""
    return resampled_length(record.sig_len, record.fs)


def quantise(signal_mV):
    """mV -> int16 µV, the cache's storage (range ±32.767 mV, clipped beyond)."""
    uv = np.rint(np.asarray(signal_mV, dtype=np.float64) * 1000.0)
    return np.clip(uv, -32768, 32767).astype(np.int16)


def to_mV(q, out=None):
    """int16 µV -> float32 mV; the one conversion the cache and predict share."""
    return np.divide(q, np.float32(1000), out=out, dtype=np.float32)


# --------------------------------------------------------------------------
# From a record to model input.

class Quality(NamedTuple):
    flags: tuple = ()

    def __str__(self):
        return '; '.join(self.flags) if self.flags else 'ok'

    @property
    def ok(self):
        return not self.flags


class Prepared(NamedTuple):
    x: np.ndarray
    real: np.ndarray
    quality: Quality


def _plan(record, leads):
    """-> (channels to read, matrix turning them into the leads asked for,
    real mask). Raises RecordError naming the leads that cannot be had."""
    leads = parse_leads(leads)
    index = {}
    for i, lead in enumerate(record.leads):
        if lead is not None and lead not in index:
            index[lead] = i  # a lead recorded twice: the first one
    lacking = missing_leads(record, leads)
    if lacking:
        have = ', '.join(n for n, lead in zip(record.sig_names, record.leads) if lead) or 'none'
        raise RecordError(record.name, f"lacks lead(s) {', '.join(lacking)} (it has {have}; "
                                       f'limb leads are derived only from two others)')
    limb = [lead for lead in LIMB if lead in index]
    base = limb[:2] if {'I', 'II'} - set(limb) else ['I', 'II']
    channels = list(dict.fromkeys([index[lead] for lead in leads if lead in index]
                                  + [index[lead] for lead in base if len(limb) >= 2]))
    col = {ch: j for j, ch in enumerate(channels)}
    mix = np.zeros((len(leads), len(channels)))
    if len(limb) >= 2:  # (I, II) from the two base leads, then any limb lead
        inv = np.linalg.inv(np.array([LIMB[b] for b in base]))  # base = M @ (I, II)
    for k, lead in enumerate(leads):
        if lead in index:
            mix[k, col[index[lead]]] = 1.0
        else:
            coef = np.array(LIMB[lead]) @ inv
            for b, c in zip(base, coef):
                mix[k, col[index[b]]] += c
    real = np.array([lead in index for lead in leads])
    units = [j for j in channels if not np.isfinite(record._scale[j])]
    if units:
        raise RecordError(record.name, f"unknown signal units {record.units[units[0]]!r} of "
                                       f'{record.sig_names[units[0]]} (expected mV or uV)')
    return channels, mix, real


def _input_span(record, start, end):
    """Output samples [start, end) at 500 Hz -> input rows [a, b) at fs to
    read, with a margin for resample_poly's filter and `a` on the grid that
    keeps the output samples where a full-record resampling puts them."""
    up, down = resample_ratio(record.fs)
    if (up, down) == (1, 1):
        return start, end, start
    margin = 10 * max(up, down) // up + 2  # resample_poly's half filter, in input rows
    a = max(0, (start * down // up - margin) // down * down)
    b = min(record.sig_len, -(-end * down // up) + margin)
    return a, b, a * up // down


def prepare(record, leads, window=WINDOW, end=None):
    """The model's input from a record -> Prepared(x, real, quality); see the
    module docstring. Raises RecordError."""
    channels, mix, real = _plan(record, leads)
    total = length_at_fs(record)
    end = total if end is None else min(int(end), total)
    start = max(0, end - int(window))
    if end <= start:
        raise RecordError(record.name, f'window ending at sample {end} is empty')
    a, b, offset = _input_span(record, start, end)
    raw = record.read(a, b)[:, channels]
    up, down = resample_ratio(record.fs)
    # The rows of the window itself: quality is judged there, not on the margins.
    w0, w1 = max(0, start * down // up - a), min(b - a, -(-end * down // up) - a)
    inside = raw[w0:w1]
    bad = np.isnan(inside)
    if bad.any():
        cols = [record.sig_names[channels[j]] for j in np.flatnonzero(bad.any(axis=0))]
        raise RecordError(record.name, f'{int(bad.sum())} NaN/missing samples in lead(s) '
                                       f"{', '.join(cols)} inside the window used "
                                       f'({start / FS:.1f}-{end / FS:.1f} s)')
    quality = check_quality(record, inside, channels)
    if np.isnan(raw).any():  # in the margins only: hold the window's edge values
        raw = raw.copy()
        raw[:w0] = np.where(np.isnan(raw[:w0]), inside[:1], raw[:w0])
        raw[w1:] = np.where(np.isnan(raw[w1:]), inside[-1:], raw[w1:])
    if real.all():  # every lead recorded: pick columns, no arithmetic
        sig = raw[:, mix.argmax(axis=1)]
    else:  # derivation is linear: before resampling is the same as after
        sig = raw @ mix.T
    if (up, down) != (1, 1):
        from scipy.signal import resample_poly
        sig = resample_poly(sig, up, down, axis=0)
    sig = sig[start - offset:end - offset]
    x = np.zeros((len(real), int(window)), dtype=np.float32)
    if len(sig):
        x[:, x.shape[1] - len(sig):] = to_mV(quantise(sig).T)
    return Prepared(x, real, quality)


# --------------------------------------------------------------------------
# Signal quality.

def _thin(fs):
    """Step that keeps ~125 samples/s for the robust statistics: a QRS
    (>= 60 ms) still spans several samples, and the statistics cost 4x less."""
    return max(1, int(fs // 125))


def _flat(x, fs):
    """Per column: in at least FLAT_SHARE of the 2-s blocks (at ~125
    samples/s), the peak-to-peak under FLAT_MV."""
    step = _thin(fs)
    x, fs = x[::step], fs / step
    block = max(1, int(round(FLAT_BLOCK_S * fs)))
    n = len(x) // block
    if n == 0:
        return np.ptp(x, axis=0) < FLAT_MV if len(x) else np.zeros(x.shape[1], bool)
    blocks = x[:n * block].reshape(n, block, -1)
    return (np.ptp(blocks, axis=1) < FLAT_MV).mean(axis=0) >= FLAT_SHARE


def _clipped_share(x, fs, limits, mx, mn):
    """Per column: share of samples at the ADC's limits, or in plateaus of
    >= PLATEAU_S at the column's extreme value (mx, mn: the columns' max, min)."""
    n = len(x)
    run = max(3, int(round(PLATEAU_S * fs)))
    hits = np.zeros(x.shape, bool)
    if limits is not None:
        lo, hi, tol = limits
        if (mx >= hi - tol).any() or (mn <= lo + tol).any():  # else no sample is there
            hits |= (x >= hi - tol) | (x <= lo + tol)
    at_extreme = np.count_nonzero(x == mx, axis=0) + np.count_nonzero(x == mn, axis=0)
    for j in np.flatnonzero(at_extreme >= PLATEAU_RUNS * run):  # few columns, if any
        col, hit = x[:, j], hits[:, j]
        for extreme in (col.max(), col.min()):
            at = col == extreme
            if at.sum() < PLATEAU_RUNS * run:
                continue
            edges = np.flatnonzero(np.diff(np.r_[0, at.view(np.int8), 0]))
            runs = [(s, e) for s, e in zip(edges[::2], edges[1::2]) if e - s >= run]
            # Saturation recurs beat after beat; one held stretch (a device
            # holding its last value at the end of a record) is not clipping.
            if len(runs) >= PLATEAU_RUNS:
                for s, e in runs:
                    hit[s:e] = True
    return np.count_nonzero(hits, axis=0) / n if n else np.zeros(x.shape[1])


def check_quality(record, x, channels=None):
    """Flags of a window x (n, len(channels)) mV at the record's own rate,
    columns = the record's `channels` (default: all). Raises RecordError
    when no usable signal is left (see the module docstring)."""
    channels = list(range(x.shape[1])) if channels is None else list(channels)
    names = [record.sig_names[c] for c in channels]
    if len(x) == 0:
        raise RecordError(record.name, 'zero-length window')
    flat = _flat(x, record.fs)
    mx, mn = x.max(axis=0), x.min(axis=0)
    big = mx - mn > MAX_MV
    if big.any():  # robust peak-to-peak (a spike or two is no unit error), where needed
        lo, hi = np.percentile(x[::_thin(record.fs)][:, big], [0.5, 99.5], axis=0)
        big[big] = (hi - lo) > MAX_MV
        amp = hi - lo
    units = '/'.join(dict.fromkeys(record.units[c] for c in channels))
    if big.all():
        raise RecordError(record.name, f'implausible amplitude for an ECG in {units}: '
                                       f'{np.median(amp):.0f} {units} peak to peak '
                                       f'(~1000x too large: are the units uV?)')
    if flat.all():
        raise RecordError(record.name, f"no usable signal: lead(s) {', '.join(names)} flat "
                                       f'(under {FLAT_MV * 1000:.0f} uV peak to peak; '
                                       f'electrodes off, or ~1000x too small for {units}?)')
    limits = record.clip_limits()
    if limits is not None:
        limits = tuple(v[channels] for v in limits)
    clipped = _clipped_share(x, record.fs, limits, mx, mn)
    flags = []
    if flat.any():
        flags.append('flat ' + ','.join(n for n, f in zip(names, flat) if f))
    for n, c, f in zip(names, clipped, flat):
        if c >= CLIP_SHARE and not f:
            flags.append(f'clipped {n} {100 * c:.1f}%')
    if big.any():
        flags.append('amplitude ' + ','.join(n for n, b in zip(names, big) if b))
    return Quality(tuple(flags))


# --------------------------------------------------------------------------
# Beat annotations.

# wfdb's beat codes (MIT-BIH): everything else ('+' rhythm change, '~' noise,
# '|', '"' comments, ...) marks no QRS complex.
BEAT_SYMBOLS = frozenset('NLRBAaJSVrFejnE/fQ?')


class Beats(NamedTuple):
    samples: np.ndarray   # int64, at fs, from the record's start
    symbols: list         # wfdb beat codes, one per sample
    fs: float             # the annotation's rate (its own, else the header's)


def read_beats(path, stop=None):
    """The beats of a WFDB record's .atr -> Beats(samples, symbols, fs), the
    non-beat annotations dropped; only those before sample `stop` (at fs) when
    given; None when the record has no .atr. The one .atr reader of every
    script (visualize.py, the QRS harness, shap_population.py). Raises
    RecordError when the file is unreadable."""
    import wfdb
    base = record_base(path)
    atr = Path(f'{base}.atr')
    if not atr.is_file():
        return None
    try:
        ann = wfdb.rdann(str(base), 'atr', sampto=stop)
    except Exception as e:  # noqa: BLE001 (wfdb raises many types on a broken file)
        raise RecordError(base.name, f'unreadable {atr} ({type(e).__name__}: {e})') from None
    if not ann.fs:
        raise RecordError(base.name, f'{atr} gives no sampling rate and {base}.hea '
                                     'is missing')
    keep = [i for i, s in enumerate(ann.symbol) if s in BEAT_SYMBOLS]
    return Beats(np.asarray(ann.sample, dtype=np.int64)[keep],
                 [ann.symbol[i] for i in keep], float(ann.fs))
