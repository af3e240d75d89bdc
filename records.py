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
rate), or an original CPSC2018 .mat (struct ECG, no .hea beside it), or a
file of a hospital format, recognised by content and read by formats.py
(DICOM, GE MUSE/CardioSoft XML, Philips XML, HL7 aECG, SCP-ECG, ISHNE, EDF,
CSV; read_record(path, lead_map='ECG=II', fs=250) names generic channels and
gives a CSV's rate). Only the header is parsed; samples are read when asked
for, so a 24-hour Holter costs nothing to open. A Record has
    name, path, fs (Hz, float), sig_len (samples at fs), duration (s)
    sig_names   the channel names as written in the file ('MLII', 'avr', 'D1')
    leads       the standard name of each channel (utils.LEADS spelling, by
                alias and case: MLII/ML2 -> II, D1..D3/DI..DIII -> I..III,
                AVR/avr -> aVR, ...), None for a channel that is no ECG lead
    units       per channel as written ('mV', 'uV', ...); values come in mV
    age (float, NaN if unknown), sex ('Male'/'Female'/'Unknown'),
    dx (list of SNOMED-CT codes, [] without a '# Dx:' comment; has_dx says
    which), comments (header comment lines), files (header and signal files)
    device_measurements, device_statements   the cart's own reading where a
                file carries one (formats.py; {} and [] otherwise)
    ignored     channels a reader dropped (ignored_channels(record) adds
                those that name no lead)
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
import re
import stat
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

# Ceilings on what a file may make us allocate or walk (hostile input: a
# few-kB file must not cost gigabytes or crash the process; see docs/hostile.md).
MAX_HEADER_BYTES = 2 ** 20       # real headers are < 10 kB; comments of a few kB
MAX_SIGNALS = 256                # 12 leads + auxiliaries; EEG-style exports reach 256
FS_RANGE = (1.0, 500_000.0)      # Hz; resample_ratio needs a ratio within 1/1000..500
# Readers that must load a whole matrix for any window (v5 .mat through scipy,
# the CPSC2018 struct): 12 leads x 30 min at 500 Hz, 86 MB as float64.
WHOLE_MAX_VALUES = 12 * 500 * 1800
# One window read (rows x channels at the record's rate): 30 s x 12 leads at
# 500 Hz is 180 k values; this admits ~45 s of 12 leads at 30 kHz.
READ_MAX_VALUES = 2 ** 24
MAT_MAX_DEPTH = 2                # containers at depth 0 (ECG struct) and 1 only
MAT_MAX_ELEMENTS = 4096          # matrices in one .mat (scipy builds one object each)
REASON_MAX = 300                 # characters of a RecordError's reason
OUTSIDE_HINT = 'pass --allow-outside-folder to read it anyway'

# MATLAB v4 precision codes (the P digit of the type field) -> numpy dtype.
MAT4_DTYPES = {0: 'f8', 1: 'f4', 2: 'i4', 3: 'i2', 4: 'u2', 5: 'u1'}
# Bits of the WFDB formats (for the ADC's limits, i.e. clipping).
# Format 8 stores differences, so its values have no ADC limit: not listed.
FMT_BITS = {'16': 16, '61': 16, '80': 8, '160': 16, '212': 12, '310': 10,
            '311': 10, '24': 24, '32': 32, '508': 8, '516': 16, '524': 24}


class RecordError(Exception):
    """A record that cannot be used; str() is 'RECORD: reason'."""

    def __init__(self, record, reason):
        record, reason = _clip(str(record), 120), _clip(str(reason), REASON_MAX)
        super().__init__(f'{record}: {reason}')
        self.record = record
        self.reason = reason


def _clip(text, n):
    """A message part cut to n characters: a 10 MB header line must not be
    copied into an error, a log or a page."""
    return text if len(text) <= n else text[:n - 25] + f'... ({len(text)} characters)'


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
    """NAME, NAME.mat, NAME.dat -> NAME.hea; a header given (any case of .hea)
    is itself: x.HEA is never swapped for a different file x.hea."""
    path = Path(path)
    if path.suffix.lower() == '.hea':
        return path
    if path.suffix.lower() in ('.mat', '.dat'):
        return path.with_suffix('.hea')
    return path.with_name(path.name + '.hea')


def contained(path, folder, name, what, allow_outside=False):
    """The containment rule, the one for every file a record names: `path`
    resolves (symlinks followed) inside `folder` (the record's own folder, or
    an upload's staging folder), else RecordError. -> the path as given."""
    if allow_outside:
        return path
    real, root = Path(path).resolve(), Path(folder).resolve()
    if not real.is_relative_to(root):
        raise RecordError(name, f'{what} {Path(path).name} resolves outside the record\'s '
                                f'folder; refused ({OUTSIDE_HINT})')
    return path


def _read_text(path, name, what='header'):
    """A regular file's text, at most MAX_HEADER_BYTES (no FIFO, device or
    /dev/zero; no 10 MB header)."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise RecordError(name, f'{what} {path.name} is not a regular file')
        if st.st_size > MAX_HEADER_BYTES:
            raise RecordError(name, f'{what} {path.name} is {st.st_size} bytes, over the '
                                    f'{MAX_HEADER_BYTES} a header may have')
        with open(path, 'rb') as f:
            return f.read(MAX_HEADER_BYTES + 1)[:MAX_HEADER_BYTES].decode('utf-8', 'replace')
    except OSError as e:
        raise RecordError(name, f'cannot read {what} {path}: {e.strerror}') from None


# FORMAT[xSAMPLES_PER_FRAME][:SKEW][+BYTE_OFFSET], as wfdb's rx_signal: no signs.
_FMT = re.compile(r'(\d{1,3})(?:x(\d{1,4}))?(?::(\d{1,12}))?(?:\+(\d{1,15}))?')
WFDB_FORMATS = {'8', '16', '24', '32', '61', '80', '160', '212', '310', '311', '508', '516',
                '524'}
# Bytes per sample of the formats whose file size follows from the length.
FMT_BYTES = {'8': 1, '16': 2, '24': 3, '32': 4, '61': 2, '80': 1, '160': 2, '212': 1.5,
             '310': 4 / 3, '311': 4 / 3}


def _record_line(name, line):
    """'NAME NSIG FS NSAMP' -> (nsig, fs, sig_len), checked."""
    rec = line.split()
    try:
        if '/' in rec[0]:
            raise RecordError(name, 'multi-segment records are not supported')
        nsig = int(rec[1])
        fs = float(rec[2].split('/')[0].split('(')[0]) if len(rec) > 2 else 250.0
        sig_len = int(rec[3]) if len(rec) > 3 else None
    except (IndexError, ValueError):
        raise RecordError(name, f'malformed record line {line!r}') from None
    if not (np.isfinite(fs) and FS_RANGE[0] <= fs <= FS_RANGE[1]):
        raise RecordError(name, f'sampling rate {fs:g} Hz is outside {FS_RANGE[0]:g}-'
                                f'{FS_RANGE[1]:g} Hz')
    if not 0 < nsig <= MAX_SIGNALS:
        raise RecordError(name, f'header declares {nsig} signals (1 to {MAX_SIGNALS} are read)')
    if sig_len == 0:
        raise RecordError(name, 'zero-length record (0 samples)')
    if sig_len is not None and sig_len < 0:
        raise RecordError(name, f'negative signal length {sig_len}')
    return nsig, fs, sig_len  # None: no length given (inferred from the file's size)


def _signal_line(name, line, sig_len):
    """One signal line -> dict (file, fmt, spf, skew, offset, gain, baseline,
    unit, init, sig_name), checked: no sign where WFDB has none, a finite gain,
    a skew inside the record."""
    f = line.split(maxsplit=8)
    m = _FMT.fullmatch(f[1]) if len(f) > 1 else _FMT.fullmatch('16')
    try:
        if m is None:
            raise ValueError
        gain, baseline, unit = _parse_gain(f[2]) if len(f) > 2 else (200.0, None, 'mV')
        adczero = int(f[4]) if len(f) > 4 else 0
        init = int(f[5]) if len(f) > 5 else 0
    except ValueError:
        raise RecordError(name, f'malformed signal line {line!r}') from None
    fmt, spf, skew, offset = m.group(1), int(m.group(2) or 1), int(m.group(3) or 0), \
        int(m.group(4) or 0)
    if fmt not in WFDB_FORMATS:
        raise RecordError(name, f'unknown signal format {fmt} (WFDB has '
                                f"{', '.join(sorted(WFDB_FORMATS, key=int))})")
    if not np.isfinite(gain):
        raise RecordError(name, f'gain {gain} of signal {f[0]} is not finite')
    if spf < 1:
        raise RecordError(name, f'{spf} samples per frame in {f[1]}')
    if sig_len is not None and skew >= sig_len:
        raise RecordError(name, f'skew {skew} of signal {f[0]} is beyond the record\'s '
                                f'{sig_len} samples')
    return {'file': f[0], 'fmt': fmt, 'spf': spf, 'skew': skew, 'offset': offset,
            'gain': gain, 'baseline': adczero if baseline is None else baseline,
            'unit': unit, 'init': init, 'sig_name': f[8].strip() if len(f) > 8 else ''}


def read_header(path, allow_outside=False):
    """Parse a WFDB header without touching the signal (~20x faster than
    wfdb.rdheader, which matters over tens of thousands of records) -> dict
    (name, path, fs, sig_len, files, fmts, gains, baselines, units, sig_names,
    offsets (byte offsets), skews, inits, age, sex, dx (None without a Dx
    comment), comments). Raises RecordError: no such file, a malformed line,
    a zero- or negative-length or multi-segment record, a bad rate, a missing
    signal file, or one outside the header's folder (see contained())."""
    path = header_path(path)
    try:
        return _read_header(path, path.stem, allow_outside)
    except RecordError:
        raise
    except Exception as e:  # noqa: BLE001 (e.g. a symlink loop: RuntimeError)
        raise RecordError(path.stem, f'unreadable header ({type(e).__name__}: {e})') from None


def _read_header(path, name, allow_outside):
    contained(path, path.parent, name, 'header', allow_outside)
    text = _read_text(path, name)
    comments, lines = [], []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('#'):
            comments.append(line.lstrip('#').strip())
        elif line:
            lines.append(line)
    if not lines:
        raise RecordError(name, 'empty header')
    nsig, fs, sig_len = _record_line(name, lines[0])
    if len(lines) - 1 < nsig:
        raise RecordError(name, f'header declares {nsig} signals but describes {len(lines) - 1}')
    sigs = [_signal_line(name, line, sig_len) for line in lines[1:nsig + 1]]
    h = {k: [s[key] for s in sigs] for k, key in (
        ('files', 'file'), ('fmts', 'fmt'), ('offsets', 'offset'), ('spf', 'spf'),
        ('skews', 'skew'), ('inits', 'init'), ('gains', 'gain'), ('baselines', 'baseline'),
        ('units', 'unit'), ('sig_names', 'sig_name'))}
    for fname in dict.fromkeys(h['files']):
        contained(path.parent / fname, path.parent, name, 'signal file', allow_outside)
        if not (path.parent / fname).is_file():
            raise RecordError(name, f'signal file {fname} is missing (header {path})')
    inferred = sig_len is None
    if inferred:  # wfdb infers it from the signal file's size; so do we
        sig_len = _length_from_size(path.parent, h, name)
    age, sex, dx = _header_fields(comments)
    return {'name': name, 'path': path, 'fs': fs, 'sig_len': sig_len, 'inferred': inferred,
            **h,
            'age': age, 'sex': sex, 'dx': dx, 'comments': comments}


def _length_from_size(folder, h, name):
    """Samples per signal of a header without a length, from the signal
    file(s)' size as wfdb does: (bytes - byte offset) x 8 / bits per frame."""
    lengths = []
    for fname in dict.fromkeys(h['files']):
        cols = [j for j, f in enumerate(h['files']) if f == fname]
        bits = [FMT_BITS.get(h['fmts'][j]) for j in cols]
        if None in bits:
            raise RecordError(name, f"header gives no signal length and format "
                                    f"{h['fmts'][cols[0]]} has no fixed sample size")
        frame = sum(b * h['spf'][j] for b, j in zip(bits, cols))
        size = (folder / fname).stat().st_size - h['offsets'][cols[0]]
        lengths.append(size * 8 // frame)
    n = min(lengths)
    if n <= 0:
        raise RecordError(name, 'zero-length record (0 samples)')
    return n


# --------------------------------------------------------------------------
# Signal readers: each returns a function (start, stop) -> digital or physical
# samples of every channel, reading only those rows.

def _mat4_header(head, name, path):
    """A MATLAB v4 matrix header (20 bytes) -> (dtype, rows, cols, imagf,
    namelen), or None when it is not one."""
    if len(head) < 20:
        raise RecordError(name, f'truncated .mat file {path.name} ({len(head)} bytes)')
    for order in '<>':
        mopt, rows, cols, imagf, namelen = (int(v) for v in np.frombuffer(head[:20], f'{order}i4'))
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if 0 <= mopt < 5000 and o == 0 and t == 0 and p in MAT4_DTYPES and 0 < namelen < 64 \
                and (m == 0) == (order == '<') and imagf in (0, 1) and rows >= 0 and cols >= 0:
            return np.dtype(order + MAT4_DTYPES[p]), rows, cols, imagf, namelen
    return None


def _mat4_layout(path, name):
    """(dtype, offset, rows, cols) of a MATLAB v4 file's first matrix, or None
    when the file is not MATLAB v4. Complex data is refused, not halved."""
    with open(path, 'rb') as f:
        head = f.read(20)
    layout = _mat4_header(head, name, path)
    if layout is None:
        return None
    dtype, rows, cols, imagf, namelen = layout
    if imagf:
        raise RecordError(name, f'{path.name} holds complex data; an ECG is real')
    return dtype, 20 + namelen, rows, cols


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


def _diff8_reader(path, name, offset, shape, inits):
    """Format 8: each byte is the difference from the channel's previous
    sample, so a window's values need the sum of every byte before it. The
    sums are kept at every CHUNK rows (computed once, in bounded chunks), so a
    window reads its chunk's remainder and itself, never the whole record in
    memory; the values equal wfdb.rdrecord's from sample 0."""
    diffs = _memmap_reader(path, name, np.dtype('i1'), offset, shape)
    chunk, sums = 2 ** 16, [np.asarray(inits, dtype=np.int64)]

    def read(start, stop):
        k = start // chunk
        while len(sums) <= k:  # the running sum at row len(sums) * chunk
            at = (len(sums) - 1) * chunk
            sums.append(sums[-1] + diffs(at, at + chunk).sum(axis=0, dtype=np.int64))
        base = sums[k] + diffs(k * chunk, start).sum(axis=0, dtype=np.int64)
        return base + np.cumsum(diffs(start, stop), axis=0, dtype=np.int64)
    return read


def _skewed(rows, skews, nframes):
    """Honour WFDB skew: channel j's sample n is the file's frame n + skew_j,
    missing (NaN) past the file's end, as wfdb reads it. rows(a, b) -> digital
    frames [a, b); -> read(start, stop) as float64 digital values."""
    skews = np.asarray(skews, dtype=np.int64)

    def read(start, stop):
        block = rows(start, min(stop + int(skews.max()), nframes))
        x = block.astype(np.float64)
        if block.dtype.kind == 'i' and block.dtype.itemsize < 8:
            x[block == np.iinfo(block.dtype).min] = np.nan
        out = np.full((stop - start, x.shape[1]), np.nan)
        for j, s in enumerate(skews):
            part = x[s:s + stop - start, j]
            out[:len(part), j] = part
        return out
    return read if skews.any() else rows


def _digital_to_mv(hdr, digital):
    """Digital samples -> float64 in the header's units, NaN for WFDB's
    missing-sample value (the format's most negative number)."""
    signal = digital.astype(np.float64)
    if digital.dtype.kind == 'i' and digital.dtype.itemsize < 8:  # int64: format 8's sums
        signal[digital == np.iinfo(digital.dtype).min] = np.nan
    signal -= np.asarray(hdr['baselines'], dtype=np.float64)
    signal /= np.asarray(hdr['gains'], dtype=np.float64)
    return signal


def _check_file_sizes(hdr):
    """Each signal file holds the samples its header declares (before any is
    read: a 48-byte header must not declare a billion samples that wfdb then
    pads). FLAC (5xx) is compressed: wfdb reads only the window from it."""
    folder, sig_len = hdr['path'].parent, hdr['sig_len']
    for fname in dict.fromkeys(hdr['files']):
        idx = [i for i, f in enumerate(hdr['files']) if f == fname]
        fmt = hdr['fmts'][idx[0]]
        if fmt not in FMT_BYTES:
            continue
        need = hdr['offsets'][idx[0]] + int(np.ceil(sig_len * sum(hdr['spf'][i] for i in idx)
                                                    * FMT_BYTES[fmt]))
        size = os.path.getsize(folder / fname)
        if size < need:
            raise RecordError(hdr['name'], f'truncated signal file {fname}: {size} bytes, '
                                           f'expected {need} for {sig_len} samples')


def _signal_reader(hdr):
    """The fastest reader for this record's files -> (read(start, stop) ->
    float64 physical samples (header units), digital limits or None)."""
    name, folder, nsig = hdr['name'], hdr['path'].parent, len(hdr['files'])
    one_file = len(set(hdr['files'])) == 1 and len(set(hdr['offsets'])) == 1 \
        and set(hdr['spf']) == {1}
    shape, skews = (hdr['sig_len'], nsig), hdr['skews']
    if one_file and hdr['files'][0].lower().endswith('.mat'):
        path = folder / hdr['files'][0]
        layout = _mat4_layout(path, name)
        if layout is not None:
            dtype, offset, rows, cols = layout
            if (rows, cols) != (nsig, hdr['sig_len']):
                raise RecordError(name, f'{path.name} holds {rows} x {cols} values, header '
                                        f"says {nsig} signals x {hdr['sig_len']} samples")
            # MATLAB stores column-major: the (nsig, N) matrix is (N, nsig) rows.
            read = _skewed(_memmap_reader(path, name, dtype, offset, shape), skews, shape[0])
            limit = np.iinfo(dtype).max if dtype.kind == 'i' else None
            return (lambda a, b: _digital_to_mv(hdr, read(a, b))), limit
        return _scipy_mat_reader(hdr, path), None
    if one_file and set(hdr['fmts']) == {'16'}:
        # Format 16 (little-endian int16, interleaved) is what wfdb.wrsamp and
        # most exports write: memory-mapped, as the .mat.
        read = _skewed(_memmap_reader(folder / hdr['files'][0], name, np.dtype('<i2'),
                                      hdr['offsets'][0], shape), skews, shape[0])
        return (lambda a, b: _digital_to_mv(hdr, read(a, b))), 32767
    if one_file and set(hdr['fmts']) == {'8'}:
        # wfdb reads format 8 from sampfrom with the header's initial value,
        # losing the running sum: read here from the record's start instead.
        read = _skewed(_diff8_reader(folder / hdr['files'][0], name, hdr['offsets'][0],
                                     shape, hdr['inits']), skews, shape[0])
        return (lambda a, b: _digital_to_mv(hdr, read(a, b))), None
    if '8' in hdr['fmts']:
        raise RecordError(name, 'format 8 is read only as one file of format-8 signals, one '
                                'sample per frame')
    _check_file_sizes(hdr)
    # wfdb opens NAME.hea itself: it must be the very header parsed here (no
    # x.HEA read while wfdb takes a different x.hea).
    theirs = hdr['path'].with_suffix('.hea')
    if not theirs.is_file() or not os.path.samefile(theirs, hdr['path']):
        what = 'another file' if theirs.is_file() else 'missing'
        raise RecordError(name, f"{hdr['path'].name}: wfdb reads {theirs.name}, which is "
                                f'{what}; rename the header to end in .hea')
    bits = {FMT_BITS.get(f) for f in hdr['fmts']}
    limit = 2 ** (bits.pop() - 1) - 1 if len(bits) == 1 and None not in bits else None
    return (lambda a, b: _wfdb_read(hdr, a, b)), limit


def _scipy_mat_reader(hdr, path):
    """Any other .mat scipy reads (v5 from savemat, ...): the variable `val`
    or the file's only array, read whole once (such files are small; the
    layout and size are checked before scipy reads it, see mat_check)."""
    import scipy.io
    name, cache = hdr['name'], {}

    def read(start, stop):
        if 'x' not in cache:
            mat_check(path, name)
            try:
                mat = scipy.io.loadmat(path)
            except Exception as e:  # noqa: BLE001 (scipy raises many types for corrupt files)
                raise RecordError(name, f'corrupt .mat file {path.name}: {e}') from None
            arrays = {k: v for k, v in mat.items() if not k.startswith('__')}
            arr = arrays.get('val', next(iter(arrays.values())) if len(arrays) == 1 else None)
            if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind not in 'iuf':
                raise RecordError(name, f'{path.name} holds no real 2-D signal matrix `val`')
            if arr.T.shape != (hdr['sig_len'], len(hdr['files'])):
                raise RecordError(name, f'{path.name} holds {arr.shape[0]} x {arr.shape[1]} '
                                        f"values, header says {len(hdr['files'])} x "
                                        f"{hdr['sig_len']}")
            cache['x'] = _skewed(lambda a, b: arr.T[a:b], hdr['skews'], hdr['sig_len'])
        return _digital_to_mv(hdr, cache['x'](start, stop))
    return read


def _wfdb_read(hdr, start, stop):
    """Every other WFDB format (212, 24, several files...): wfdb.rdrecord of
    the rows [start, stop) only (it seeks; it does not read the whole file).
    wfdb reads the skew's extra rows too: a skew beyond the read ceiling is
    refused rather than padded."""
    import wfdb
    # a header without a length is read whole (wfdb reads a part only given one)
    n = hdr['sig_len'] if hdr.get('inferred') else stop - start
    rows = (n + max(hdr['skews'])) * sum(hdr['spf'])
    if rows > READ_MAX_VALUES:
        raise RecordError(hdr['name'], f"{stop - start} samples with skew {max(hdr['skews'])} "
                                       f'need {rows} values, over {READ_MAX_VALUES}')
    try:
        if hdr.get('inferred'):  # wfdb reads a part only when the header gives the length
            rec = wfdb.rdrecord(str(hdr['path'].with_suffix('')), physical=True, return_res=64)
            rec.p_signal = rec.p_signal[int(start):int(stop)]
        else:
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
# MATLAB files: checked before scipy reads them. scipy.io.loadmat recurses in
# C through nested cells (20,000 levels in 40 kB overflow the stack: exit
# 139, which no `except` catches) and allocates whatever a matrix declares.
# Walking the v5 tags here costs 0.2 ms for a 144-s CPSC2018 record, against
# 0.64 s for a child process that imports scipy and loads it (measured on
# 2 CPU cores, docs/hostile.md), so the file is walked, not sandboxed: a
# layout other than the flat ones read here is refused.

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
MX_CELL, MX_STRUCT, MX_CHAR = 1, 2, 4
MX_NUMERIC = set(range(6, 16))  # double, single, int8 ... uint64
MX_NAMES = {3: 'object', 5: 'sparse', 16: 'function', 17: 'opaque'}


class _MatBytes:
    """The bytes of a v5 .mat in order, from the file or inflated from one
    compressed element, never more than 1 MB held at a time."""

    def __init__(self, f, size, name, inflate=False):
        import zlib
        self.f, self.left, self.name, self.pos = f, size, name, 0
        self.z = zlib.decompressobj() if inflate else None

    def _raw(self, n):
        data = self.f.read(min(n, self.left))
        self.left -= len(data)
        return data

    def _inflate(self, n):
        import zlib
        out, got = [], 0
        while got < n and not self.z.eof:
            data = self.z.unconsumed_tail or self._raw(2 ** 16)
            if not data:
                break
            try:
                piece = self.z.decompress(data, min(n - got, 2 ** 20))
            except zlib.error as e:
                raise RecordError(self.name, f'corrupt compressed .mat element ({e})') from None
            out.append(piece)
            got += len(piece)
        return b''.join(out)

    def read(self, n):
        data = self._inflate(n) if self.z else self._raw(n)
        if len(data) < n:
            raise RecordError(self.name, 'truncated .mat file (an element runs past its end)')
        self.pos += n
        return data

    def skip(self, n):
        if self.z is None:
            if n > self.left:
                raise RecordError(self.name, 'truncated .mat file (an element runs past its end)')
            self.f.seek(n, 1)
            self.left -= n
            self.pos += n
            return
        while n > 0:
            step = min(n, 2 ** 20)
            self.read(step)
            n -= step


class _MatWalk:
    """Walks the v5 elements: depth, count, classes and declared sizes."""

    def __init__(self, name, order):
        self.name, self.order, self.values, self.elements = name, order, 0, 0

    def refuse(self, why):
        raise RecordError(self.name, f'.mat layout refused: {why}')

    def tag(self, s):
        """-> (type, nbytes, data of a small element or None)."""
        raw = s.read(8)
        mtype, nbytes = np.frombuffer(raw, f'{self.order}u4').tolist()
        if mtype >> 16:  # small data element: up to 4 bytes inside the tag
            return mtype & 0xFFFF, mtype >> 16, raw[4:4 + (mtype >> 16)]
        return mtype, nbytes, None

    def element(self, s, limit=2 ** 16):
        """-> (type, bytes) of a small sub-element (flags, dims, names)."""
        mtype, nbytes, small = self.tag(s)
        if small is not None:
            return mtype, small
        if nbytes > limit:
            self.refuse(f'a header element of {nbytes} bytes')
        data = s.read(nbytes)
        s.read(-nbytes % 8)  # padding to 8 bytes
        return mtype, data

    def matrix(self, s, nbytes, depth):
        """One miMATRIX of nbytes (its tag read): checked, then skipped."""
        self.elements += 1
        if self.elements > MAT_MAX_ELEMENTS:
            self.refuse(f'more than {MAT_MAX_ELEMENTS} matrices')
        if nbytes == 0:  # an empty cell or field
            return
        end = s.pos + nbytes
        mtype, flags = self.element(s)
        if mtype != MI_UINT32 or len(flags) != 8:
            self.refuse('a matrix without array flags')
        word = int(np.frombuffer(flags[:4], f'{self.order}u4')[0])
        cls, is_complex = word & 0xFF, bool(word & 0x800)
        mtype, dims = self.element(s)
        if mtype != MI_INT32 or not 0 < len(dims) <= 16 or len(dims) % 4:
            self.refuse('a matrix without dimensions')
        dims = np.frombuffer(dims, f'{self.order}i4').astype(np.int64)
        if (dims < 0).any():
            self.refuse(f'negative dimensions {dims.tolist()}')
        count = int(np.prod(dims, dtype=object))
        self.element(s)  # the array's name
        if cls in MX_NUMERIC or cls == MX_CHAR:
            if is_complex:
                raise RecordError(self.name, 'the .mat holds complex data; an ECG is real')
            self.values += count
            if self.values > WHOLE_MAX_VALUES:
                self.refuse(f'{self.values} values declared, over the {WHOLE_MAX_VALUES} '
                            'read from one .mat')
            if s.pos < end:  # scipy reads the data element whole: its size, not the dims'
                _, n, small = self.tag(s)
                if small is None and n > 8 * count + 8:
                    self.refuse(f'{n} bytes of data for {count} values')
        elif cls in (MX_CELL, MX_STRUCT):
            if depth >= MAT_MAX_DEPTH:
                self.refuse(f'cells or structs nested more than {MAT_MAX_DEPTH} deep')
            if cls == MX_STRUCT:
                _, width = self.element(s)
                width = int(np.frombuffer(width[:4], f'{self.order}i4')[0])
                _, names = self.element(s)
                if width <= 0 or len(names) % width:
                    self.refuse('malformed struct field names')
                count *= len(names) // width
            if count > MAT_MAX_ELEMENTS - self.elements:
                self.refuse(f'{count} cells or fields, over {MAT_MAX_ELEMENTS}')
            for _ in range(count):
                mtype, n, small = self.tag(s)
                if mtype != MI_MATRIX or small is not None:
                    self.refuse('a cell or field that is not a matrix')
                self.matrix(s, n, depth + 1)
        else:
            self.refuse(f"{MX_NAMES.get(cls, f'class {cls}')} arrays are not read")
        if s.pos > end:
            self.refuse('a matrix overruns its declared size')
        s.skip(end - s.pos)


def _mat4_check(f, size, name, path):
    """MATLAB v4: a flat list of matrices; their declared sizes and no complex."""
    values = 0
    while f.tell() < size:
        layout = _mat4_header(f.read(20), name, path)
        if layout is None:
            raise RecordError(name, f'corrupt .mat file {path.name}: no MATLAB layout scipy '
                                    'reads safely')
        dtype, rows, cols, imagf, namelen = layout
        if imagf:
            raise RecordError(name, f'{path.name} holds complex data; an ECG is real')
        values += rows * cols
        if values > WHOLE_MAX_VALUES:
            raise RecordError(name, f'.mat layout refused: {values} values declared, over the '
                                    f'{WHOLE_MAX_VALUES} read from one .mat')
        f.seek(namelen + rows * cols * dtype.itemsize, 1)


def mat_check(path, name):
    """Refuse a .mat before scipy reads it unless it is one of the flat
    layouts read here (numeric matrices; a struct of numeric/char fields such
    as CPSC2018's ECG), with no complex data and at most WHOLE_MAX_VALUES
    values declared in all. Costs the tags only: compressed elements are
    inflated 1 MB at a time and data is skipped, never held."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(128)
        order = {b'IM': '<', b'MI': '>'}.get(head[126:128]) if len(head) == 128 else None
        if order is None:
            f.seek(0)
            return _mat4_check(f, size, name, path)
        if head[124:126] not in (b'\x00\x01', b'\x01\x00'):
            raise RecordError(name, f'{path.name} is a MATLAB v7.3 (HDF5) or unknown .mat; '
                                    'save it with -v7 or -v4')
        walk, variables = _MatWalk(name, order), 0
        while f.tell() < size:
            top = _MatBytes(f, size - f.tell(), name)
            mtype, nbytes, small = walk.tag(top)
            start = f.tell()
            variables += 1
            if small is not None or mtype not in (MI_MATRIX, MI_COMPRESSED) \
                    or variables > MAT_MAX_ELEMENTS:
                walk.refuse(f'an element of type {mtype} at the top level')
            if nbytes > size - start:
                raise RecordError(name, 'truncated .mat file (an element runs past its end)')
            if mtype == MI_COMPRESSED:
                inner = _MatBytes(f, nbytes, name, inflate=True)
                mtype, n, small = walk.tag(inner)
                if mtype != MI_MATRIX or small is not None:
                    walk.refuse('a compressed element that is not a matrix')
                walk.matrix(inner, n, 0)
            else:
                walk.matrix(_MatBytes(f, nbytes, name), nbytes, 0)
            f.seek(start + nbytes)
    return walk.values


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
        # The cart's own reading (formats.py; PLAN.md keys), never the project's.
        self.device_measurements, self.device_statements = {}, []
        self.ignored = []  # channels a reader dropped (other rates, pressure, ...)

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
        try:
            x = self._reader(start, stop)
        except RecordError:
            raise
        except Exception as e:  # noqa: BLE001 (every failure reaching a script is a RecordError)
            raise RecordError(self.name, f'unreadable signal ({type(e).__name__}: {e})') from None
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
        a = (self._limit - self._baselines) / self._gains * scale
        b = (-self._limit - self._baselines) / self._gains * scale
        # A negative gain (an inverted lead, legal in WFDB) swaps the limits.
        return np.minimum(a, b), np.maximum(a, b), np.abs(0.5 / self._gains * scale)


def _read_cpsc_struct(path):
    """The original CPSC2018 download: A0001.mat with struct ECG(sex, age, data
    12 x N mV at 500 Hz), leads in the standard order."""
    import scipy.io
    name = path.stem
    mat_check(path, name)
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        ecg = mat['ECG']
        if np.iscomplexobj(ecg.data):
            raise RecordError(name, 'ECG.data is complex; an ECG is real')
        data = np.asarray(ecg.data, dtype=np.float64)
    except RecordError:
        raise
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


# Extensions of the hospital formats formats.py reads (the content decides;
# these pick files out of a folder). WFDB's .hea/.mat/.dat are read here.
FORMAT_SUFFIXES = ('.dcm', '.dicom', '.xml', '.scp', '.ecg', '.edf', '.bdf', '.csv')


def parse_lead_map(text):
    """'ECG=II,ECG 2=V5' (or a dict) -> {channel name (lower case): lead}.
    ValueError naming a bad pair or an unknown lead."""
    if not text:
        return {}
    pairs = text.items() if isinstance(text, dict) else \
        (p.split('=', 1) if '=' in p else (p, None) for p in str(text).split(',') if p.strip())
    out = {}
    for channel, lead in pairs:
        if lead is None or not str(channel).strip():
            raise ValueError(f'bad lead map entry {channel!r}: use NAME=LEAD, e.g. ECG=II')
        canon = canonical_lead(lead)
        if canon is None:
            raise ValueError(f'lead map {channel}={lead}: {lead!r} is no lead (use names '
                             f"from {','.join(LEADS)})")
        out[' '.join(str(channel).lower().split())] = canon
    return out


def apply_lead_map(record, lead_map):
    """Name a record's channels by a lead map (parse_lead_map's dict or text)."""
    mapping = parse_lead_map(lead_map)
    for i, name in enumerate(record.sig_names):
        lead = mapping.get(' '.join(str(name).lower().split()))
        if lead:
            record.leads[i] = lead
    return record


def ignored_channels(record):
    """Channels that give the model nothing: those naming no lead, and those a
    reader dropped (other rates, pressure) -> list of names as written."""
    return [n for n, lead in zip(record.sig_names, record.leads) if lead is None] + \
        list(getattr(record, 'ignored', []))


def _no_lead_error(rec):
    """The refusal of a record none of whose channels names a lead."""
    names = ', '.join(rec.sig_names) or 'none'
    first = rec.sig_names[0] if rec.sig_names else 'ECG'
    return RecordError(rec.name, f'no ECG lead among the signals {names}; say which lead '
                                 f"each is with --lead-map, e.g. --lead-map '{first}=II'")


def read_record(path, allow_outside=False, lead_map=None, fs=None):
    """NAME(.hea/.mat/.dat) of a WFDB record, a CPSC2018 .mat, or a file of a
    hospital format (DICOM, GE MUSE/CardioSoft XML, Philips XML, HL7 aECG,
    SCP-ECG, ISHNE, EDF, CSV: formats.py, recognised by content) -> Record.
    lead_map: 'ECG=II,...' names generic channels; fs: a CSV's rate without
    a time column. Raises RecordError (see the module docstring), and only RecordError:
    whatever a damaged or hostile file makes a reader raise becomes one, and
    every file the record names lies in its own folder (see contained();
    allow_outside=True lifts that rule for a user's own folders)."""
    path = Path(path)
    try:
        return _read_record(path, allow_outside, lead_map, fs)
    except RecordError:
        raise
    except Exception as e:  # noqa: BLE001 (a bad file must not end a batch or a server)
        raise RecordError(path.stem, f'unreadable ({type(e).__name__}: {e})') from None


def _read_record(path, allow_outside, lead_map=None, fs=None):
    if path.is_file() and path.suffix.lower() not in ('.hea', '.mat', '.dat'):
        import formats
        rec = apply_lead_map(formats.read(path, fs=fs), lead_map)
        if not any(rec.leads):
            raise _no_lead_error(rec)
        return rec
    hea = header_path(path)
    if path.suffix.lower() == '.mat' and not hea.exists():
        if not path.exists():
            raise RecordError(path.stem, f'no such file {path}')
        contained(path, path.parent, path.stem, 'file', allow_outside)
        if not path.is_file():
            raise RecordError(path.stem, f'{path.name} is not a regular file')
        return _read_cpsc_struct(path)
    hdr = read_header(hea, allow_outside)
    reader, limit = _signal_reader(hdr)
    rec = Record(hdr['name'], hea, hdr['fs'], hdr['sig_len'], hdr['sig_names'], hdr['units'],
                 reader, limit, age=hdr['age'], sex=hdr['sex'], dx=hdr['dx'],
                 comments=hdr['comments'],
                 files=[hea] + [hea.parent / f for f in dict.fromkeys(hdr['files'])],
                 fmts=hdr['fmts'])
    rec._gains = np.asarray(hdr['gains'], dtype=np.float64)
    rec._baselines = np.asarray(hdr['baselines'], dtype=np.float64)
    apply_lead_map(rec, lead_map)
    if not any(rec.leads):
        raise _no_lead_error(rec)
    return rec


# --------------------------------------------------------------------------
# Finding records.

# The files that are (part of) a record; a WFDB record is one record however
# many of its files a pattern names.
WFDB_SUFFIXES = {'.hea', '.mat', '.dat'}
# WFDB's files and the hospital formats' (formats.py, recognised by content).
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


def _csv_names_a_lead(path):
    """A CSV is a record when its header names a lead (labels.csv and
    reference.csv beside WFDB records name none)."""
    try:
        with open(path, encoding='utf-8-sig', errors='replace') as f:
            head = f.readline()
    except OSError:
        return False
    import formats
    return any(formats._csv_column(c)[0] for c in re.split(r'[,;\t]', head))


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
                   and (m.suffix.lower() != '.csv' or _csv_names_a_lead(m))]
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
    if (b - a) * len(record.sig_names) > READ_MAX_VALUES:
        raise RecordError(record.name, f'a {window / FS:g}-s window at {record.fs:g} Hz is '
                                       f'{b - a} rows x {len(record.sig_names)} signals, over '
                                       f'the {READ_MAX_VALUES} values read at once')
    raw = record.read(a, b)[:, channels]
    up, down = resample_ratio(record.fs)
    # The rows of the window itself: quality is judged there, not on the margins.
    w0, w1 = max(0, start * down // up - a), min(b - a, -(-end * down // up) - a)
    inside = raw[w0:w1]
    bad = ~np.isfinite(inside)
    if bad.any():
        cols = [record.sig_names[channels[j]] for j in np.flatnonzero(bad.any(axis=0))]
        what = 'NaN/missing' if not np.isinf(inside).any() else 'NaN/missing or infinite'
        raise RecordError(record.name, f'{int(bad.sum())} {what} samples in lead(s) '
                                       f"{', '.join(cols)} inside the window used "
                                       f'({start / FS:.1f}-{end / FS:.1f} s)')
    if not np.isfinite(raw).all():  # in the margins only: hold the window's edge values
        raw = raw.copy()
        raw[:w0] = np.where(np.isfinite(raw[:w0]), raw[:w0], inside[:1])
        raw[w1:] = np.where(np.isfinite(raw[w1:]), raw[w1:], inside[-1:])
    if (up, down) != (1, 1):
        from scipy.signal import resample_poly
        raw = resample_poly(raw, up, down, axis=0)
    raw = raw[start - offset:end - offset]  # the window at 500 Hz, per channel read
    # Quality of what the model sees (a record at 200 kHz whose signal lies
    # above 250 Hz resamples to ~0: flat), clipping at the ADC's own rate.
    quality = check_quality(record, inside, channels, at_fs=raw)
    if real.all():  # every lead recorded: pick columns, no arithmetic
        sig = raw[:, mix.argmax(axis=1)]
    else:  # derivation is linear: after resampling is the same as before
        sig = raw @ mix.T
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


def check_quality(record, x, channels=None, at_fs=None):
    """Flags of a window x (n, len(channels)) mV at the record's own rate,
    columns = the record's `channels` (default: all); at_fs: the same window
    resampled to 500 Hz, where flatness and amplitude are judged (default: x
    itself, for a record at 500 Hz). Raises RecordError when no usable signal
    is left (see the module docstring)."""
    channels = list(range(x.shape[1])) if channels is None else list(channels)
    names = [record.sig_names[c] for c in channels]
    if len(x) == 0:
        raise RecordError(record.name, 'zero-length window')
    seen, fs = (x, record.fs) if at_fs is None else (at_fs, FS)
    flat = _flat(seen, fs)
    smx, smn = seen.max(axis=0), seen.min(axis=0)
    big = smx - smn > MAX_MV
    if big.any():  # robust peak-to-peak (a spike or two is no unit error), where needed
        lo, hi = np.percentile(seen[::_thin(fs)][:, big], [0.5, 99.5], axis=0)
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
    mx, mn = x.max(axis=0), x.min(axis=0)
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


def read_beats(path, stop=None, fs=None):
    """The beats of a record -> Beats(samples, symbols, fs), the non-beat
    annotations dropped; only those before sample `stop` (at fs) when given;
    None when the record has none. The one beat reader of every script
    (visualize.py, the QRS harness, shap_population.py): a WFDB record's .atr,
    or an ISHNE Holter's .ann beside its .ecg (formats.read_ishne_beats; the
    .ann gives no rate: `fs`, else the record's). Raises RecordError when the
    file is unreadable."""
    import wfdb
    base = record_base(path)
    atr = Path(f'{base}.atr')
    if not atr.is_file():
        return _ishne_beats(Path(path), stop, fs)
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


def _ishne_beats(path, stop, fs):
    """An ISHNE .ann beside RECORD.ecg -> Beats, or None without one."""
    ann = path.with_suffix('.ann') if path.suffix.lower() == '.ecg' else Path(f'{path}.ann')
    if not ann.is_file():
        return None
    import formats
    samples, labels = formats.read_ishne_beats(ann)
    fs = float(fs or read_record(path).fs)
    keep = [i for i, s in enumerate(labels) if s in BEAT_SYMBOLS
            and (stop is None or samples[i] < stop)]
    return Beats(samples[keep], [str(labels[i]) for i in keep], fs)
