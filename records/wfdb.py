"""WFDB records (.hea + .dat/.mat) and the original CPSC2018 .mat."""
import os
import re
import stat
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.leads import LEADS
from records.limits import FS_RANGE, MAX_HEADER_BYTES, MAX_SIGNALS, OUTSIDE_HINT, READ_MAX_VALUES
from records.mat import _mat4_layout, mat_check
from records.prepare import FS
from records.record import Record

# Bits of the WFDB formats (for the ADC's limits, i.e. clipping).
# Format 8 stores differences, so its values have no ADC limit: not listed.
FMT_BITS = {'16': 16, '61': 16, '80': 8, '160': 16, '212': 12, '310': 10,
            '311': 10, '24': 24, '32': 32, '508': 8, '516': 16, '524': 24}


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
    import scipy.io  # here, not on top: 0.17 s to import, for rare layouts only
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
    import wfdb  # here, not on top: 0.2 s to import, for the formats not read by hand
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


def _read_cpsc_struct(path):
    """The original CPSC2018 download: A0001.mat with struct ECG(sex, age, data
    12 x N mV at 500 Hz), leads in the standard order."""
    import scipy.io  # here, not on top: 0.17 s to import, for this layout only
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
    return Record(name=name, path=path, fs=FS, sig_len=len(signal), sig_names=LEADS,
                  units=['mV'] * 12, reader=lambda a, b: signal[a:b], format='cpsc2018',
                  age=age, sex=_parse_sex(sex if isinstance(sex, str) else ''), files=[path],
                  fmts=['mat'])
