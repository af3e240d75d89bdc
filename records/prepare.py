"""From a record to model input: rates, the window, quality flags, and the
Reading that carries a record, its model input and its display together."""
import hashlib
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

import numpy as np

from records.errors import RecordError
from records.leads import LIMB, missing_leads, parse_leads
from records.limits import MIN_SECONDS, READ_MAX_VALUES
from records.record import Record

# LVH: ~5 mV), while a record in µV read as mV gives hundreds.
FS = 500          # every record is resampled to this rate (CPSC2018's own)
WINDOW = 15000    # 30 s at 500 Hz: the study's input length

FLAT_MV = 0.02
FLAT_BLOCK_S = 2.0
FLAT_SHARE = 0.5
MAX_MV = 20.0
PLATEAU_S = 0.02
PLATEAU_RUNS = 3
CLIP_SHARE = 0.001  # report clipping from 0.1% of the window's samples (30 ms of 30 s)
# A record shorter than the model's window is front-padded with zeros, as the
# study's were (CPSC2018: 6-60 s in a 30-s window); below its shortest record,
# 6 s, the model sees more padding than any record it learnt from: flagged.
SHORT_S = 6.0


# --------------------------------------------------------------------------
# Rates.

def resample_ratio(fs):
    """Sampling rate -> (up, down) for resample_poly to records.FS (500 Hz)."""
    r = Fraction(FS / float(fs)).limit_denominator(1000)
    return r.numerator, r.denominator


def resampled_length(n, fs):
    """Samples after resampling n samples at fs to 500 Hz (resample_poly's length)."""
    up, down = resample_ratio(fs)
    return -(-int(n) * up // down)


def length_at_fs(record):
    """The record's length in samples at 500 Hz."""
    return resampled_length(record.sig_len, record.fs)


def segment_ends(total, window):
    """Ends (samples at 500 Hz) of consecutive windows from the start; the
    last one ends at the record's end, overlapping the one before rather than
    padded (a record shorter than one window is front-padded, as always)."""
    return [min(start + window, total) for start in range(0, total, window)] or [total]


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


@dataclass(kw_only=True, eq=False, repr=False)
class Reading:
    """A record read for people and for the model: the one shape the app,
    the API (serve.py) and visualize.py pass around (uploads.read_prepared
    and visualize.load_record build it)."""
    record: Record          # as read: header fields, the cart's reading, samples on
                            # demand while its files exist (Record.close lets them go)
    name: str               # the name shown, and given to downloads
    signal: np.ndarray      # (n, len(leads)) mV at fs: what is drawn and measured
    leads: list             # signal's columns: standard leads, or the channel names of
                            # a record drawn as it is (visualize.py)
    fs: float = FS          # signal's rate (FS; a record drawn as it is keeps its own)
    source: str = ''        # the file as the user named it (uploads)
    # The model's input, as prepare() gives it (None where no model reads it).
    x: np.ndarray = None    # (model leads, window) float32
    real: np.ndarray = None
    quality: Quality = None
    length: int = 0         # samples of the window that are the record's (the rest: padding)
    offset: int = 0         # where in `signal` the window's record samples start

    def __repr__(self):
        return (f'Reading({self.name!r}, {len(self.signal)} samples at {self.fs:g} Hz, '
                f'leads {self.leads})')

    @cached_property
    def id(self):
        """The model input's content hash: the app caches scores, measurements
        and explanations under it."""
        return hashlib.sha256(self.x.tobytes()).hexdigest()[:16]

    @property
    def seconds(self):
        """The whole record's length in seconds, at 500 Hz."""
        return length_at_fs(self.record) / FS


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
    if not record.duration >= MIN_SECONDS:  # NaN too
        raise RecordError(record.name, f'{record.duration:.3g} s of signal, under the '
                                       f'{MIN_SECONDS:g} s a diagnosis needs (two beats)')
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
        # here, not on top: scipy.signal takes 0.8 s to import, and a record
        # at 500 Hz never needs it
        from scipy.signal import resample_poly
        raw = resample_poly(raw, up, down, axis=0)
    raw = raw[start - offset:end - offset]  # the window at 500 Hz, per channel read
    # Quality of what the model sees (a record at 200 kHz whose signal lies
    # above 250 Hz resamples to ~0: flat), clipping at the ADC's own rate.
    quality = check_quality(record, inside, channels, at_fs=raw)
    if end - start < min(int(window), SHORT_S * FS):
        quality = Quality(quality.flags + (f'short {(end - start) / FS:.1f} s',))
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
