"""Reading ECG records and feeding the cache built by preprocess.py to PyTorch.

    from dataset import ECGDataset, split_data
    train_folds, val_folds, test_folds = split_data(seed=42)
    ds = ECGDataset('data/CPSC', train_folds, leads='all', augment=True)
    x, y = ds[0]          # x: float32 (12, 15000) mV, front zero-padded; y: (9,)
    loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate)
                          # each batch is built in one tensor (__getitems__), no copy

    rec = read_record('data/CPSC/A0001.hea')         # any WFDB record, any rate
    x = prepare_signal(rec['signal'])                 # exactly as the cache does

Records are WFDB (`NAME.hea` + MATLAB v4 `.mat` as in the PhysioNet/CinC 2020/
2021 challenges, or any signal file wfdb reads) or the original CPSC2018 `.mat`
holding a struct `ECG` (fields sex, age, data 12 x N mV at 500 Hz). Every
record comes out the same way: 500 Hz, the twelve leads in utils.LEADS order,
millivolts. The cache (preprocess.py) stores each record's last 15,000 samples
as int16 microvolts in one memory-mapped array, so a training step never
parses a file; padding happens here, at load time, as in the study.
"""
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from utils import CLASSES, FS, LEADS, WINDOW, parse_leads, split_data  # noqa: F401 (split_data is re-exported)

UNITS_TO_MV = {'mv': 1.0, '': 1.0, 'uv': 1e-3, 'µv': 1e-3, 'μv': 1e-3, 'v': 1e3}
LEAD_BY_LOWER = {name.lower(): name for name in LEADS}

# The study's augmentation (dataset.transform): each of scaling and shift is
# applied when np.random.randn() > 0.5, i.e. with probability 1 - Phi(0.5).
AUG_PROB = 0.3085
AUG_SCALE_SIGMA = 0.1   # amplitude factor per lead ~ N(1, 0.1)
AUG_SHIFT_UV = 20       # baseline shift per lead, uniform integer in [-20, 20] µV

# Length-aware batches are padded to a multiple of this (friendlier shapes for
# the convolutions and for cudnn's per-shape autotuning).
PAD_MULTIPLE = 64

# MATLAB v4 precision codes (the P digit of the type field) -> numpy dtype.
MAT4_DTYPES = {0: 'f8', 1: 'f4', 2: 'i4', 3: 'i2', 4: 'u2', 5: 'u1'}


class RecordError(Exception):
    """A record that cannot be used; str() is 'RECORD: reason'."""

    def __init__(self, record, reason):
        super().__init__(f'{record}: {reason}')
        self.record = str(record)
        self.reason = reason


# --------------------------------------------------------------------------
# Headers.

def _parse_age(text):
    try:
        age = float(text)
    except ValueError:  # 'Unknown', '', '60+'...
        return float('nan')
    return age if 0 <= age < 150 else float('nan')


def _parse_sex(text):
    text = text.strip().lower()
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


def read_header(path):
    """Parse a WFDB header (PhysioNet/CinC 2020/2021 variants included) without
    touching the signal; ~20x faster than wfdb.rdheader, which matters when a
    database has tens of thousands of records.

    Returns dict(name, path, fs, sig_len, files, fmts, gains, baselines,
    units, sig_names, lead_index (row of each of utils.LEADS in the record),
    extra_leads, age, sex, dx (list of codes, or None without a Dx comment)).
    Raises RecordError for a record that cannot be used: no such file, a
    malformed line, a zero-length or multi-segment record, a bad sampling
    rate, a missing or unknown lead, a missing signal file.
    """
    path = Path(path)
    if path.suffix != '.hea':
        path = path.with_name(path.name + '.hea') if path.suffix == '' else path.with_suffix('.hea')
    name = path.stem
    try:
        text = path.read_text(errors='replace')
    except OSError as e:
        raise RecordError(name, f'cannot read header {path}: {e.strerror}') from None
    comments, lines = {}, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('#'):
            key, sep, value = line.lstrip('#').partition(':')
            if sep:
                comments.setdefault(key.strip().lower(), value.strip())
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
    if sig_len is None:
        raise RecordError(name, 'header gives no signal length')
    if sig_len == 0:
        raise RecordError(name, 'zero-length record (0 samples)')
    if len(lines) - 1 < nsig:
        raise RecordError(name, f'header declares {nsig} signals but describes {len(lines) - 1}')

    files, fmts, gains, baselines, units, names = [], [], [], [], [], []
    for line in lines[1:nsig + 1]:
        f = line.split(maxsplit=8)
        try:
            gain, baseline, unit = _parse_gain(f[2]) if len(f) > 2 else (200.0, None, 'mV')
            adczero = int(f[4]) if len(f) > 4 else 0
        except ValueError:
            raise RecordError(name, f'malformed signal line {line!r}') from None
        files.append(f[0])
        fmts.append(f[1].split('x')[0].split(':')[0].split('+')[0] if len(f) > 1 else '16')
        gains.append(gain)
        baselines.append(adczero if baseline is None else baseline)
        units.append(unit)
        names.append(f[8].strip() if len(f) > 8 else '')

    lead_index, extra = {}, []
    for i, sig_name in enumerate(names):
        canon = LEAD_BY_LOWER.get(sig_name.lower())
        if canon is None:
            extra.append(sig_name)
        elif canon in lead_index:
            raise RecordError(name, f'lead {canon} appears twice')
        else:
            lead_index[canon] = i
    missing = [lead for lead in LEADS if lead not in lead_index]
    if missing:
        unknown = f"; unknown lead name(s) {', '.join(map(repr, extra))}" if extra else ''
        raise RecordError(name, f"missing lead(s) {', '.join(missing)}{unknown}")
    for u in set(units):
        if u.lower() not in UNITS_TO_MV:
            raise RecordError(name, f'unknown signal units {u!r} (expected mV or uV)')
    for fname in dict.fromkeys(files):
        if not (path.parent / fname).is_file():
            raise RecordError(name, f'signal file {fname} is missing (header {path})')

    dx = comments.get('dx')
    return {'name': name, 'path': path, 'fs': fs, 'sig_len': sig_len, 'files': files,
            'fmts': fmts, 'gains': gains, 'baselines': baselines, 'units': units,
            'sig_names': names, 'lead_index': [lead_index[lead] for lead in LEADS],
            'extra_leads': extra, 'age': _parse_age(comments.get('age', '')),
            'sex': _parse_sex(comments.get('sex', '')),
            'dx': None if dx is None else [c.strip() for c in dx.split(',') if c.strip()]}


# --------------------------------------------------------------------------
# Signals.

def resample_ratio(fs):
    """Sampling rate -> (up, down) for resample_poly to utils.FS (500 Hz)."""
    r = Fraction(FS / float(fs)).limit_denominator(1000)
    return r.numerator, r.denominator


def resampled_length(n, fs):
    """Samples after resampling n samples at fs to 500 Hz (resample_poly's length)."""
    up, down = resample_ratio(fs)
    return -(-n * up // down)


def _read_mat4(path, name, nsig, sig_len):
    """The PhysioNet/CinC .mat: a MATLAB v4 matrix `val` (nsig x N), read with
    np.fromfile (MATLAB stores column-major, so the file is already (N, nsig)).
    Returns None when the file is not MATLAB v4 (the caller tries scipy)."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(20)
    if len(head) < 20:
        raise RecordError(name, f'truncated .mat file {path.name} ({size} bytes)')
    for order in '<>':
        mopt, rows, cols, imagf, namelen = np.frombuffer(head, dtype=f'{order}i4')
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if 0 <= mopt < 5000 and o == 0 and t == 0 and p in MAT4_DTYPES and 0 < namelen < 64 \
                and (m == 0) == (order == '<') and imagf == 0 and rows >= 0 and cols >= 0:
            break
    else:
        return None
    dtype = np.dtype(order + MAT4_DTYPES[p])
    offset = 20 + namelen
    expected = offset + rows * cols * dtype.itemsize
    if size < expected:
        raise RecordError(name, f'truncated .mat file {path.name}: {size} bytes, '
                                f'expected {expected} for {rows} x {cols}')
    if rows != nsig or cols != sig_len:
        raise RecordError(name, f'{path.name} holds {rows} x {cols} values, header says '
                                f'{nsig} signals x {sig_len} samples')
    data = np.fromfile(path, dtype=dtype, count=rows * cols, offset=offset)
    return data.reshape(cols, rows)


def _read_mat_scipy(path, name):
    """Any other .mat scipy reads (v5 from savemat, ...): the variable `val` or
    the file's only array."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # noqa: BLE001 (scipy raises many types for corrupt files)
        raise RecordError(name, f'corrupt .mat file {path.name}: {e}') from None
    arrays = {k: v for k, v in mat.items() if not k.startswith('__')}
    arr = arrays.get('val', next(iter(arrays.values())) if len(arrays) == 1 else None)
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise RecordError(name, f'{path.name} holds no 2-D signal matrix `val`')
    return arr.T


def _read_wfdb_signal(hdr):
    """(sig_len, nsig) float64 in physical units (mV), NaN where WFDB marks a
    sample as missing."""
    name, folder = hdr['name'], hdr['path'].parent
    nsig = len(hdr['files'])
    if len(set(hdr['files'])) == 1 and hdr['files'][0].endswith('.mat'):
        path = folder / hdr['files'][0]
        digital = _read_mat4(path, name, nsig, hdr['sig_len'])
        if digital is None:
            digital = _read_mat_scipy(path, name)
            if digital.shape != (hdr['sig_len'], nsig):
                raise RecordError(name, f'{path.name} holds {digital.shape[1]} x '
                                        f"{digital.shape[0]} values, header says {nsig} x "
                                        f"{hdr['sig_len']}")
        signal = digital.astype(np.float64)
        if digital.dtype == np.int16:
            signal[digital == -32768] = np.nan  # WFDB format 16's "missing sample"
        signal -= np.asarray(hdr['baselines'], dtype=np.float64)
        signal /= np.asarray(hdr['gains'], dtype=np.float64)
    else:
        import wfdb
        try:
            record = wfdb.rdrecord(str(hdr['path'].with_suffix('')))
        except Exception as e:  # noqa: BLE001 (wfdb raises many types for damaged files)
            raise RecordError(name, f'cannot read signal: {e}') from None
        signal = record.p_signal
        if signal is None or signal.shape[0] != hdr['sig_len']:
            got = 0 if signal is None else signal.shape[0]
            raise RecordError(name, f"signal has {got} samples, header says {hdr['sig_len']}")
    scale = np.array([UNITS_TO_MV[u.lower()] for u in hdr['units']])
    if (scale != 1).any():
        signal = signal * scale
    return signal


def _read_cpsc_struct(path):
    """The original CPSC2018 download: A0001.mat with struct ECG(sex, age, data)."""
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
    sex = _parse_sex(sex if isinstance(sex, str) else '')
    # The CPSC2018 data are in the standard lead order, I ... V6.
    return {'name': name, 'signal': data.T, 'fs': float(FS), 'age': age, 'sex': sex,
            'dx': [], 'extra_leads': []}


def read_record(path):
    """Read one record -> dict(name, signal float32 (n, 12) mV at 500 Hz in
    utils.LEADS order, fs (original rate), age, sex, dx (list of SNOMED codes;
    empty when the header has none), extra_leads (ignored non-standard leads)).

    `path` is NAME.hea, NAME.mat, NAME.dat or the bare NAME of a WFDB record,
    or an original CPSC2018 .mat (struct ECG, no .hea beside it; dx then
    comes from REFERENCE.csv, see preprocess.py). Other rates are resampled
    with scipy.signal.resample_poly by the exact rational ratio.
    Raises RecordError on bad input (missing files, corrupt or truncated
    files, missing or unknown leads, NaNs, zero length).
    """
    path = Path(path)
    hea = path.with_suffix('.hea') if path.suffix in ('.mat', '.dat', '.hea') \
        else path.with_name(path.name + '.hea')
    if path.suffix == '.mat' and not hea.exists():
        if not path.exists():
            raise RecordError(path.stem, f'no such file {path}')
        rec = _read_cpsc_struct(path)
        signal = rec['signal']
    else:
        hdr = read_header(hea)
        signal = _read_wfdb_signal(hdr)[:, hdr['lead_index']]
        rec = {k: hdr[k] for k in ('name', 'fs', 'age', 'sex', 'extra_leads')}
        rec['dx'] = hdr['dx'] or []
    bad = ~np.isfinite(signal)
    if bad.any():
        leads = [LEADS[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise RecordError(rec['name'], f'{int(bad.sum())} NaN/missing samples in lead(s) '
                                       f"{', '.join(leads)}")
    if rec['fs'] != FS:
        from scipy.signal import resample_poly
        up, down = resample_ratio(rec['fs'])
        signal = resample_poly(signal, up, down, axis=0)
    rec['signal'] = np.ascontiguousarray(signal, dtype=np.float32)
    return rec


def quantise(signal_mV):
    """mV -> int16 µV, the cache's storage (range ±32.767 mV, clipped beyond)."""
    uv = np.rint(np.asarray(signal_mV, dtype=np.float64) * 1000.0)
    return np.clip(uv, -32768, 32767).astype(np.int16)


def to_mV(q, out=None):
    """int16 µV -> float32 mV; the one conversion the cache and predict share."""
    return np.divide(q, np.float32(1000), out=out, dtype=np.float32)


def prepare_signal(signal_mV, window=WINDOW):
    """(n, 12) mV -> float32 (12, window): quantised to int16 µV as the cache
    is, the last `window` samples, zero-padded at the front (as in the study)."""
    q = quantise(signal_mV)[-window:]
    out = np.zeros((q.shape[1], window), dtype=np.float32)
    if len(q):
        out[:, window - len(q):] = to_mV(q.T)
    return out


# --------------------------------------------------------------------------
# The cache and labels written by preprocess.py.

def _require(path, data_dir):
    if not Path(path).exists():
        raise SystemExit(f'error: {path} is missing; run python preprocess.py '
                         f'--data-dir {data_dir}')


def load_index(data_dir):
    """cache/index.csv: patient_id, offset, length (rows in signals.npy)."""
    path = Path(data_dir) / 'cache' / 'index.csv'
    _require(path, data_dir)
    return pd.read_csv(path, dtype={'patient_id': str})


def load_cache(data_dir):
    """-> (signals: read-only memmap int16 (T, 12) µV, index DataFrame)."""
    path = Path(data_dir) / 'cache' / 'signals.npy'
    _require(path, data_dir)
    index = load_index(data_dir)
    signals = np.load(path, mmap_mode='r', allow_pickle=False)
    end = int((index['offset'] + index['length']).max()) if len(index) else 0
    if signals.ndim != 2 or signals.shape[1] != len(LEADS) or signals.shape[0] < end:
        raise SystemExit(f'error: {path} (shape {signals.shape}) does not match '
                         f'cache/index.csv; rerun python preprocess.py --data-dir '
                         f'{data_dir} --force')
    return signals, index


def load_labels(data_dir):
    """labels.csv: patient_id, the nine classes (0/1), fold (1..10)."""
    path = Path(data_dir) / 'labels.csv'
    _require(path, data_dir)
    return pd.read_csv(path, dtype={'patient_id': str})


# --------------------------------------------------------------------------
# PyTorch side.

class ECGDataset(Dataset):
    """Records of the given folds from the cache.

    ds[i] -> (x float32 (nleads, window) mV, front zero-padded; y float32 (9,)).
    With trim=True x holds only the record's real samples (nleads, lengths[i]);
    batch such items with LengthBucketSampler + pad_collate.

    augment=True applies the study's augmentation to the real samples: with
    probability AUG_PROB each, one amplitude factor per lead ~ N(1, 0.1), and
    one baseline shift per lead of -20..20 µV. Its random numbers come from
    (seed, epoch, index), so a run is reproducible with any number of
    DataLoader workers; call set_epoch(e) before each epoch (the epoch lives
    in shared memory, so persistent workers see it too).
    The memmap is opened lazily in each process: workers fork cleanly.
    """

    def __init__(self, data_dir, folds, leads='all', window=WINDOW, augment=False,
                 seed=42, trim=False):
        self.data_dir = Path(data_dir)
        self.leads = parse_leads(leads)
        self.lead_idx = np.array([LEADS.index(lead) for lead in self.leads])
        self._all_leads = list(self.leads) == list(LEADS)
        self.window, self.augment, self.seed, self.trim = int(window), augment, seed, trim
        labels = load_labels(data_dir)
        labels = labels[labels['fold'].isin([int(f) for f in folds])]
        index = load_index(data_dir).set_index('patient_id')
        missing = labels.loc[~labels['patient_id'].isin(index.index), 'patient_id']
        if len(missing):
            raise SystemExit(f'error: {len(missing)} records of labels.csv (e.g. '
                             f'{missing.iloc[0]}) are not in {self.data_dir}/cache; rerun '
                             f'python preprocess.py --data-dir {data_dir}')
        self.patient_ids = labels['patient_id'].tolist()
        self.labels = labels[CLASSES].to_numpy(dtype=np.float32)
        rows = index.loc[self.patient_ids]
        self.ends = (rows['offset'] + rows['length']).to_numpy(dtype=np.int64)
        self.lengths = np.minimum(rows['length'].to_numpy(dtype=np.int64), self.window)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._signals = None

    def __len__(self):
        return len(self.patient_ids)

    def __getstate__(self):
        # A pickled dataset (spawned workers) reopens the memmap, never copies it.
        state = self.__dict__.copy()
        state['_signals'] = None
        return state

    def set_epoch(self, epoch):
        self._epoch.fill_(int(epoch))

    def _augment(self, x, index):
        """x (nleads, n) float32 mV, in place."""
        rng = np.random.default_rng([self.seed, int(self._epoch), index])
        # Draw for all 12 leads, then select: a lead gets the same factor
        # whichever lead subset is trained.
        do_scale, do_shift = rng.random(2) < AUG_PROB
        scale = rng.normal(1.0, AUG_SCALE_SIGMA, len(LEADS))[self.lead_idx]
        shift = rng.integers(-AUG_SHIFT_UV, AUG_SHIFT_UV + 1, len(LEADS))[self.lead_idx]
        if do_scale:
            x *= scale[:, None].astype(np.float32)
        if do_shift:
            x += (shift[:, None] / 1000.0).astype(np.float32)
        return x

    def _open(self):
        if self._signals is None:
            self._signals = np.load(self.data_dir / 'cache' / 'signals.npy',
                                    mmap_mode='r', allow_pickle=False)
        return self._signals

    def _fill(self, out, index):
        """Write record `index` into out (nleads, width): real samples in the
        tail, zeros in front; returns out."""
        signals = self._open()
        n, end = int(self.lengths[index]), int(self.ends[index])
        width = out.shape[-1]
        out[:, :width - n] = 0
        real = out[:, width - n:]
        rows = signals[end - n:end].T  # (12, n) strided view of the memmap
        # All twelve leads in order: no fancy-index copy of the record.
        to_mV(rows if self._all_leads else rows[self.lead_idx], out=real)
        if self.augment:
            self._augment(real, index)
        return out

    def __getitem__(self, index):
        width = int(self.lengths[index]) if self.trim else self.window
        x = np.empty((len(self.lead_idx), width), dtype=np.float32)
        return torch.from_numpy(self._fill(x, index)), torch.from_numpy(self.labels[index])

    def __getitems__(self, indices):
        """A whole batch for the DataLoader (it calls this instead of
        __getitem__ per item): every record is written straight into one
        (B, nleads, L) tensor, so collating copies nothing. L is the window,
        or with trim=True the longest record rounded up to 64 (as pad_collate).

        Returns a Batch: the usual list of (x_i, y_i), views of that tensor, so
        any collate_fn still works; `collate` hands the tensor over as is.
        """
        indices = [int(i) for i in indices]
        if self.trim:
            width = padded_width(self.lengths[indices].max() if indices else 0)
        else:
            width = self.window
        shape = (len(indices), len(self.lead_idx), width)
        if torch.utils.data.get_worker_info() is not None:
            # In a worker, build the batch in shared memory, as default_collate
            # does: sending it to the main process then copies nothing.
            storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * 4)
            x = torch.empty(0, dtype=torch.float32).set_(storage).view(shape)
        else:
            x = torch.empty(shape, dtype=torch.float32)
        xn = x.numpy()
        for row, index in zip(xn, indices):
            self._fill(row, index)
        y = torch.from_numpy(self.labels[indices])
        return Batch(x, y)


def padded_width(longest, multiple=PAD_MULTIPLE):
    return -(-int(longest) // multiple) * multiple


class Batch(list):
    """What ECGDataset.__getitems__ returns: a list of (x_i, y_i) like the one
    a DataLoader gives its collate_fn, whose items are views of the batch
    tensors x (B, nleads, L) and y (B, 9); `collate` returns those tensors
    without copying."""

    def __init__(self, x, y):
        super().__init__(zip(x, y))
        self.x, self.y = x, y


def collate(batch):
    """The DataLoader collate_fn for ECGDataset, full window or trim=True:
    a Batch from __getitems__ passes through as (x, y); a plain list of items
    (a Subset of a Subset, a custom sampler...) is stacked, or padded to its
    longest with pad_collate when the lengths differ (trim=True)."""
    if isinstance(batch, Batch):
        return batch.x, batch.y
    if len({x.shape for x, _ in batch}) > 1:
        return pad_collate(batch)
    return torch.utils.data.default_collate(batch)


def pad_collate(batch, multiple=PAD_MULTIPLE):
    """[(x (nleads, n_i), y)] -> (x (B, nleads, L), y (B, 9)): front zero-padded
    to the longest record, L rounded up to a multiple of PAD_MULTIPLE."""
    length = padded_width(max(x.shape[-1] for x, _ in batch), multiple)
    out = torch.zeros((len(batch), batch[0][0].shape[0], length), dtype=batch[0][0].dtype)
    for i, (x, _) in enumerate(batch):
        out[i, :, length - x.shape[-1]:] = x
    return out, torch.stack([y for _, y in batch])


class LengthBucketSampler(Sampler):
    """Batch sampler grouping records of similar length, so length-aware
    training (ECGDataset(trim=True) + pad_collate) pads little.

    Each epoch (seeded by seed and set_epoch): shuffle, sort by length inside
    pools of 100 batches (randomness between epochs, similar lengths inside a
    batch), cut into batches of at most batch_size, shuffle the batch order.
    The number of batches is a multiple of num_replicas and rank r takes every
    num_replicas-th batch: the ranks partition the data (no record repeated or
    dropped) and all take the same number of steps, as DDP requires.
    """

    def __init__(self, lengths, batch_size, shuffle=True, seed=42, num_replicas=1, rank=0,
                 pool_batches=100):
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank {rank} is not in 0..{num_replicas - 1}')
        self.lengths = np.asarray(lengths)
        if len(self.lengths) < num_replicas:
            raise ValueError(f'{len(self.lengths)} records cannot feed {num_replicas} replicas')
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, seed
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.pool = self.batch_size * pool_batches
        n = len(self.lengths)
        nbatches = max(-(-n // self.batch_size), 1)
        self.nbatches = -(-nbatches // self.num_replicas) * self.num_replicas
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.nbatches // self.num_replicas

    def __iter__(self):
        n = len(self.lengths)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(n)
            for start in range(0, n, self.pool):
                pool = order[start:start + self.pool]
                order[start:start + self.pool] = pool[np.argsort(self.lengths[pool], kind='stable')]
        else:
            order = np.argsort(self.lengths, kind='stable')
        batches = np.array_split(order, self.nbatches)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        for batch in batches[self.rank::self.num_replicas]:
            yield batch.tolist()
