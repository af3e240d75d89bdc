"""Offline QRS detector after Pan & Tompkins (1985), vectorised with numpy/scipy.

    python QRSDetectorOffline.py --record ../shared/data/mitdb/100 --lead MLII --eval
    python QRSDetectorOffline.py --record data/SYNTH/A0001 --lead II --plot --eval \\
        --out results/qrs/A0001
    python QRSDetectorOffline.py --dataset ../shared/data/cpsc2019        # lead 0
    python QRSDetectorOffline.py --dataset ../shared/data/cpsc2021 --fused

Reads a record (records.read_record: any format it reads), detects R peaks on one lead (--lead, by
name, case-insensitive) and prints their count and heart rate. --eval scores the
detections against RECORD.atr (beat annotations only, 150 ms matching window):
sensitivity, positive predictivity, F1. --out PREFIX writes PREFIX_peaks.csv
(sample, time_s) and, with --plot, PREFIX.png (without --out the PNG goes next
to the working directory as <record>_qrs.png). --dataset DIR scores every
record of DIR (CPSC2019's data/ + ref/ layout, or WFDB records with .atr)
with Se, +P and F1 pooled over all its beats, on one lead (--lead, a name or
an index; default the first) or on all leads fused (--fused).

Python API:
  detect(signal, fs) -> np.ndarray of R-peak sample indices (one lead);
  detect_with_quality(signal, fs) -> (peaks, quality): quality is the median
      height of the beats in the QRS energy over that energy's median
      (clean ECG 200-350, white or 1/f^2 noise 1.5);
  detect_multilead(signals (n, leads), fs) -> (peaks, quality): per-lead
      detections fused by a quality-weighted vote (fuse_detections);
  match_beats(ref, test, fs) -> dict(tp, fn, fp, se, ppv, f1), 150 ms window;
  reference_set(folder), score_set(records, detector): what --dataset does.
Detections that look picked out of noise (quality < 3 and beats that do not
repeat one shape) come back empty; so do a flat lead and a record under 2 s;
NaN samples raise ValueError. Records over 10 minutes are detected in
overlapping chunks, so memory stays bounded (about 20 MB beside the signal
at 500 Hz, whatever its length: 24 h of Holter is fine).

Reference: J. Pan and W. J. Tompkins, "A real-time QRS detection algorithm",
IEEE Trans. Biomed. Eng. 32(3):230-236, 1985. What follows that paper:
five-point derivative, squaring, 150 ms moving-window integration, the
adaptive signal/noise peak levels SPKI/NPKI (integrated signal) and SPKF/NPKF
(band-passed signal) with THRESHOLD_I1/I2 and F1/F2, the two RR averages with
the 92-116 % limits, search-back at 166 % of the average RR with the lower
thresholds, thresholds halved for irregular rhythm, the 200 ms refractory
period and the T-wave test (a peak within 360 ms of the previous QRS with
less than half its maximal slope is a T wave). Where it differs, and why
(each change measured on the CPSC2019 and CPSC2021 halves in ../shared/data,
MIT-BIH 100 and the synthetic set, `python bench.py --only qrs`):
- Signal and noise levels are the medians of the last 8 signal and noise
  peaks with threshold coefficient 0.3125, after P. S. Hamilton and W. J.
  Tompkins, "Quantitative investigation of QRS detection rules using the
  MIT/BIH arrhythmia database", IEEE Trans. Biomed. Eng. 33(12):1157-1165,
  1986: an artefact 30x a QRS no longer lifts the threshold over a dozen
  beats.
- The QRS energy sums the integrated signals of two pass bands, each in
  units of its typical QRS: Pan & Tompkins' 5-15 Hz (wide QRS, PVCs) and
  8-20 Hz, the best band in M. Elgendi, M. Jonkman and F. De Boer,
  "Frequency bands effects on QRS detection", BIOSIGNALS 2010, pp. 428-431
  (less T wave, f wave and baseline); the threshold on the band-passed
  signal and the T-wave slope test use 8-20 Hz.
- One-sample glitches (CPSC2019 has samples at the int16 limit, 32.8 mV)
  are replaced by the median of their neighbours first: a Hampel-type test
  (F. R. Hampel, J. Am. Stat. Assoc. 69:383-393, 1974) on the residual from
  a 3-point median.
- Offline, the filters are zero-phase (sosfiltfilt, centred derivative and
  window, so no group delay to undo), the learning phase uses the whole
  record (median of 1-s maxima: 2-s maxima take the level of frequent large
  PVCs) instead of the first 2 s, and the peaks are refined to the extremum
  of the baseline-removed lead in the dominant polarity within +/-75 ms.
- After detection, a beat unlike the record's (correlation < 0.5 with the
  median beat over +/-80 ms of the baseline-removed lead) that lies within
  60 % of the median RR of another detection is dropped, the unlikest
  first. The rule is our own; comparing each beat with the record's
  template is what the beat classifier of P. S. Hamilton, "Open source ECG
  analysis", Computers in Cardiology 29:101-104, 2002, does. It removes muscle
  noise over a small QRS and f or T waves taken for beats in AF; the RR
  gate spares a beat of another shape that sits alone (a PVC keeps its
  compensatory pause). CPSC2021 lead I: F1 98.45 -> 99.18 % (+P 97.34 ->
  99.23 %, Se 99.60 -> 99.13 %); lead II 99.54 -> 99.58 %, fused 99.46 ->
  99.68 %, CPSC2019 95.16 -> 95.39 %, MIT-BIH 100 unchanged (100 / 100 %).
  Thresholds 0.4-0.6 and 50-70 % all give lead I 98.9-99.2 %.
- Multi-lead: the per-lead detections vote within 100 ms, each lead weighted
  by the log of its quality, a beat needing more than half of the weight;
  an RR search-back then admits, in gaps over 166 % of the lower-quartile RR,
  a beat that at least two leads and a fifth of the weight saw. The vote is
  our own design; weighting leads by a signal-quality estimate follows
  Q. Li, R. G. Mark and G. D. Clifford, "Robust heart rate estimation from
  multiple asynchronous noisy sources using signal quality indices and a
  Kalman filter", Physiol. Meas. 29(1):15-32, 2008.
"""
import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy import signal as sps

from records import RecordError, read_beats, read_record
from utils import atomic_to_csv, pyplot, save_figure

# Windows in seconds so that the detector works at any sampling rate.
BAND = (5.0, 15.0)          # Pan & Tompkins' pass band, where QRS energy peaks
SHARP_BAND = (8.0, 20.0)    # Elgendi's optimum: less T wave, f wave and drift
MWI_WINDOW = 0.150          # the paper's integration window (widest normal QRS)
LEARN_SEGMENT = 1.0         # learning phase: median of 1-s maxima (see _detect)
N_LEVELS = 8                # signal/noise levels: median of the last 8 peaks
THRESHOLD_COEF = 0.3125     # Hamilton & Tompkins' threshold coefficient
SPIKE_FACTOR = 20.0         # a one-sample step 20x a QRS's is a glitch (_despiked)
FUSION_TOLERANCE = 0.100    # leads agree on a beat within 100 ms (R vs S peak)
FUSION_WEAK = 0.2           # search-back: a fifth of the vote weight, 2 leads
CHUNK_SECONDS = 600         # longer records go in 10-min chunks: bounded memory
CHUNK_OVERLAP = 5.0         # ...with 5 s of context each side (thresholds settle)
REFRACTORY = 0.200          # no second QRS within 200 ms (physiological limit)
T_WAVE_WINDOW = 0.360       # within 360 ms a candidate must pass the slope test
SEARCH_BACK = 1.66          # search back when no beat for 166 % of the RR average
REFINE_WINDOW = 0.075       # R peak: extremum within +/-75 ms of the detection
MIN_DURATION = 2.0          # shorter records hold too few beats to adapt on
MIN_QUALITY = 3.0           # below this, beats do not stand out of the noise...
MIN_CONSISTENCY = 0.6       # ...and unless they repeat one shape, it is noise
UNLIKE_CORR = 0.5           # a beat this unlike the record's template...
UNLIKE_RR = 0.6             # ...within 60 % of the median RR of another is noise
SHAPE_WINDOW = 0.080        # QRS shape compared over +/-80 ms


@lru_cache(maxsize=32)
def _design(fs, btype, hz):
    """An order-2 Butterworth (sos) and its steady-state initial conditions.
    Cached: designing costs as much as filtering a 10-s record, and
    sosfiltfilt solves for the conditions on every call (a third of its time)."""
    sos = sps.butter(2, hz, btype=btype, fs=fs, output='sos')
    return sos, sps.sosfilt_zi(sos)


def zero_phase(x, fs, btype, hz):
    """sps.sosfiltfilt(butter(2, hz, btype, fs), x, axis=0) with its defaults
    (odd extension of 3 (2 sections + 1) samples, steady-state initial
    conditions), the design cached (_design). Forwards and backwards: order 4
    in effect, zero phase. measure.py filters through it too."""
    sos, zi = _design(float(fs), btype, hz)
    pad = min(3 * (2 * len(sos) + 1), len(x) - 1)
    # Odd extension, as scipy's: the ends mirrored through the end samples.
    ext = (np.concatenate([2 * x[:1] - x[pad:0:-1], x, 2 * x[-1:] - x[-2:-pad - 2:-1]])
           if pad > 0 else x)
    shape = (len(sos), 2) + (1,) * (x.ndim - 1)
    y, _ = sps.sosfilt(sos, ext, axis=0, zi=zi.reshape(shape) * ext[0])
    y, _ = sps.sosfilt(sos, y[::-1], axis=0, zi=zi.reshape(shape) * y[-1])
    y = y[::-1]
    return y[pad:len(y) - pad] if pad > 0 else y


def _filtfilt(x, fs, kind):
    """The detector's filters: 'band' / 'sharp' (BAND / SHARP_BAND, the top
    kept under 0.45 fs) or 'highpass' (0.5 Hz baseline removal)."""
    if kind in ('band', 'sharp'):
        lo, hi = BAND if kind == 'band' else SHARP_BAND
        return zero_phase(x, fs, 'bandpass', (lo, min(hi, 0.45 * float(fs))))
    return zero_phase(x, fs, 'highpass', 0.5)


def _bandpass(x, fs, kind='band'):
    return _filtfilt(x, fs, kind)


def _baseline_removed(x, fs):
    return _filtfilt(x, fs, 'highpass')


def _check_fs(fs):
    if not np.isfinite(fs) or fs < 4 * BAND[0] * 2:
        raise ValueError(f'detect: sampling rate {fs} Hz is too low for a '
                         f'{BAND[0]}-{BAND[1]} Hz band-pass (need >= 40 Hz)')


def _check(sig, fs):
    """The signal as a float 1-D array; ValueError naming what is wrong."""
    sig = np.asarray(sig, dtype=np.float64)
    if sig.ndim != 1:
        raise ValueError(f'detect: expected a 1-D signal (one lead), got shape {sig.shape}')
    _check_fs(fs)
    if not np.all(np.isfinite(sig)):
        bad = int(np.sum(~np.isfinite(sig)))
        raise ValueError(f'detect: signal has {bad} NaN/inf samples; '
                         'interpolate or drop them first')
    return sig


def _features(sig, fs, kind='band'):
    """Band-passed, derivative and integrated signals of Pan & Tompkins, along
    axis 0 (one lead, or (n, leads) for the multi-lead detector); kind
    'sharp' band-passes at SHARP_BAND instead of BAND."""
    bp = _bandpass(sig, fs, kind)
    # Five-point derivative, centred: y(n) = (-x(n-2) - 2x(n-1) + 2x(n+1) + x(n+2)) fs/8
    deriv = ndimage.convolve1d(bp, np.array([1.0, 2, 0, -2, -1]) * (fs / 8.0),
                               axis=0, mode='constant')
    mwi = ndimage.uniform_filter1d(deriv ** 2, max(1, round(MWI_WINDOW * fs)),
                                   axis=0, mode='constant')
    return bp, deriv, mwi


def _despiked(x, fs):
    """x with one-sample glitches replaced by the median of the sample and its
    two neighbours: a Hampel-type test (Hampel 1974) on the residual from
    a 3-point median, which is large only where one sample leaves both
    neighbours. A residual over SPIKE_FACTOR (20) times the typical one of a QRS
    (median of 1-s maxima) is no heart signal: CPSC2019 has records with
    single samples at the int16 limit (32.8 mV), which would otherwise be
    the 'beats' that set every threshold."""
    if len(x) < 3:
        return x
    a, b, c = x[:-2], x[1:-1], x[2:]
    med = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    resid = np.abs(b - med)
    typical = _segment_max_median(resid, max(1, int(LEARN_SEGMENT * fs)))
    bad = resid > SPIKE_FACTOR * np.maximum(typical, 1e-12)
    if not bad.any():
        return x
    x = x.copy()
    x[1:-1][bad] = med[bad]
    return x


def _energy(sig, fs):
    """(band-passed, derivative, QRS energy) of one lead for the decision
    stage. The energy sums the integrated signals of two pass bands, each in
    units of its typical QRS (median of 1-s maxima): Pan & Tompkins' 5-15 Hz
    keeps the energy of wide QRS complexes (PVCs, bundle branch blocks),
    Elgendi's 8-20 Hz (Elgendi et al. 2010, the best of the bands they
    compared on MIT-BIH) that of a narrow QRS against T waves, f waves and
    baseline; a beat strong in either band stands out. The band-passed signal
    and slope for the second threshold and the T-wave test are the 8-20 Hz
    ones, where a T wave is smallest."""
    _, _, mwi = _features(sig, fs)
    bp, deriv, mwi_sharp = _features(sig, fs, 'sharp')
    seg = max(1, int(LEARN_SEGMENT * fs))
    energy = (mwi / np.maximum(_segment_max_median(mwi, seg), 1e-300)
              + mwi_sharp / np.maximum(_segment_max_median(mwi_sharp, seg), 1e-300))
    return bp, deriv, energy


def _window_max(x, centres, half):
    """max of x over [c-half, c+half] for every centre, vectorised."""
    offs = np.arange(-half, half + 1)
    idx = np.clip(centres[:, None] + offs[None, :], 0, len(x) - 1)
    return x[idx].max(axis=1)


def _segment_max_median(x, seg):
    """Median over seg-sample segments of their maxima, along axis 0 (a float
    for one lead, one value per column for (n, leads))."""
    n = len(x) // seg
    m = (x.max(axis=0) if n == 0 else
         np.median(x[:n * seg].reshape((n, seg) + x.shape[1:]).max(axis=1), axis=0))
    return float(m) if np.ndim(m) == 0 else m


def _median(values):
    # statistics.median without its overhead: 8 floats, once per candidate.
    v = sorted(values)
    m = len(v) // 2
    return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])


class _Levels:
    """Signal and noise peak levels (SPK, NPK) and the two thresholds
    THRESHOLD1 = NPK + 0.3125 (SPK - NPK) and THRESHOLD2 = THRESHOLD1 / 2,
    both halved for an irregular rhythm, as in Pan & Tompkins. The levels are
    the medians of the last 8 signal and of the last 8 noise peaks, after
    Hamilton & Tompkins (1986), not Pan & Tompkins' running means: with a
    mean, one artefact 30 times a QRS (CPSC2019 has many) lifts the threshold
    over the next dozen beats; a median ignores it."""

    def __init__(self, spk, npk):
        self.sig, self.noi = [spk], [npk]
        self.spk, self.npk = spk, npk

    def signal(self, peak):
        self.sig.append(peak)
        del self.sig[:-N_LEVELS]
        self.spk = _median(self.sig)

    def noise(self, peak):
        self.noi.append(peak)
        del self.noi[:-N_LEVELS]
        self.npk = _median(self.noi)

    def thresholds(self, irregular):
        t1 = self.npk + THRESHOLD_COEF * (self.spk - self.npk)
        if irregular:
            t1 *= 0.5
        return t1, 0.5 * t1


def _classify(pos, peak_i, peak_f, slope, init, length, fs):
    """The adaptive loop over candidate peaks only (a few per beat).

    pos: candidate positions (samples); peak_i / peak_f: their heights in the
    integrated and band-passed signals; slope: their maximal |derivative|;
    init: (SPKI, NPKI, SPKF, NPKF, RR average) from the learning phase;
    length: samples in the record. Returns a boolean mask of the candidates
    accepted as QRS.
    """
    n = len(peak_i)
    beat = np.zeros(n, dtype=bool)
    if n == 0:
        return beat
    pos = np.asarray(pos, dtype=np.float64)
    lev_i = _Levels(init[0], init[1])
    lev_f = _Levels(init[2], init[3])
    refractory, t_wave = REFRACTORY * fs, T_WAVE_WINDOW * fs
    rr_all, rr_regular = [], []
    rr_avg1 = rr_avg2 = init[4]
    irregular = False
    last = None                     # index (into candidates) of the last QRS

    def accept(k):
        nonlocal last, rr_avg1, rr_avg2, irregular
        beat[k] = True
        lev_i.signal(peak_i[k])
        lev_f.signal(peak_f[k])
        if last is not None:
            rr = pos[k] - pos[last]
            rr_all.append(rr)
            del rr_all[:-8]
            in_limits = 0.92 * rr_avg2 <= rr <= 1.16 * rr_avg2
            if in_limits or len(rr_regular) < 2:
                rr_regular.append(rr)
                del rr_regular[:-8]
            rr_avg1 = sum(rr_all) / len(rr_all)
            irregular = not in_limits and len(rr_all) >= 2
            rr_avg2 = rr_avg1 if irregular else sum(rr_regular) / len(rr_regular)
        last = k

    def is_t_wave(k):
        gap = pos[k] - pos[last]
        return gap < t_wave and slope[k] < 0.5 * slope[last]

    def search_back(k_end, t_end):
        """Highest rejected candidate since the last QRS above the low thresholds."""
        start = 0 if last is None else last + 1
        t0 = -np.inf if last is None else pos[last] + refractory
        ti2 = lev_i.thresholds(irregular)[1]
        tf2 = lev_f.thresholds(irregular)[1]
        ks = np.arange(start, k_end)
        ks = ks[(pos[ks] > t0) & (pos[ks] < t_end) & (peak_i[ks] > ti2) & (peak_f[ks] > tf2)]
        if last is not None:
            ks = ks[[not is_t_wave(k) for k in ks]]
        if len(ks):
            accept(ks[np.argmax(peak_i[ks])])
            return True
        return False

    for k in range(n):
        t_start = 0.0 if last is None else pos[last]
        if pos[k] - t_start > SEARCH_BACK * rr_avg2:
            search_back(k, pos[k] - refractory)
        if last is not None and pos[k] - pos[last] < refractory:
            continue
        ti1 = lev_i.thresholds(irregular)[0]
        tf1 = lev_f.thresholds(irregular)[0]
        if peak_i[k] > ti1 and peak_f[k] > tf1 and not (last is not None and is_t_wave(k)):
            accept(k)
        else:
            lev_i.noise(peak_i[k])
            lev_f.noise(peak_f[k])
    t_start = 0.0 if last is None else pos[last]
    if length - t_start > SEARCH_BACK * rr_avg2:
        search_back(n, length)
    return beat


def _usable(sig, fs):
    """False for a record too short to adapt on or a flat one (no beats)."""
    return len(sig) >= MIN_DURATION * fs and np.ptp(sig, axis=0).max() > 1e-9 * max(
        1.0, float(np.abs(sig).max()))


def _detect(bp_mag, slope_mag, mwi, fs):
    """Pan & Tompkins' decision stage on the integrated signal mwi, with the
    band-passed magnitude and |slope| beside it -> peaks (candidate indices)."""
    empty = np.zeros(0, dtype=np.int64)
    if mwi.max() <= 0:
        return empty
    # Candidates: local maxima of the integrated signal at least 200 ms apart
    # (offline, the larger of two close peaks wins, as the refractory intends).
    # Zero-padded so that a QRS cut by the record's first or last sample can
    # still be a candidate.
    cand, _ = sps.find_peaks(np.r_[0.0, mwi, 0.0], distance=max(1, int(REFRACTORY * fs)))
    cand = np.clip(cand - 1, 0, len(mwi) - 1)
    if len(cand) == 0:
        return empty
    half = round(MWI_WINDOW / 2 * fs)
    peak_i = mwi[cand]
    peak_f = _window_max(bp_mag, cand, half)
    slope = _window_max(slope_mag, cand, half)
    # Learning phase over the whole record: the median of 1-s maxima is a
    # typical QRS and ignores artefacts (most seconds hold a QRS down to
    # ~50 bpm, and below that the median of 8 beats soon takes over). 2-s
    # maxima, closer to the paper's 2-s learning phase, take the level of
    # large PVCs in bigeminy or frequent ectopy, and then every small
    # normal beat is noise (CPSC2019: 30 of 389 beats lost). The median
    # spacing of candidates above half of it starts the RR average (instead
    # of a guess, which delays search-back over the first beats).
    seg = max(1, int(LEARN_SEGMENT * fs))
    spki = _segment_max_median(mwi, seg)
    strong = cand[peak_i > 0.5 * spki]
    rr0 = float(np.median(np.diff(strong))) if len(strong) > 2 else fs * 1.0
    init = (spki, 0.5 * float(np.mean(mwi)),
            _segment_max_median(bp_mag, seg), 0.5 * float(np.mean(bp_mag)),
            float(np.clip(rr0, 0.3 * fs, 2.0 * fs)))
    beat = _classify(cand, peak_i, peak_f, slope, init, float(len(mwi)), fs)
    peaks = cand[beat]
    if len(peaks) < 2:
        return empty
    return peaks


def _quality(mwi, peaks):
    """Median height of the beats in the integrated signal over its median."""
    if len(peaks) == 0:
        return 0.0
    return float(np.median(mwi[peaks]) / max(float(np.median(mwi)), 1e-300))


def _template_corr(x, peaks, fs, half_width=0.1):
    """Median correlation of each beat (+/-100 ms) with the median beat, per
    column of x (n, leads)."""
    half = max(1, round(half_width * fs))
    idx = np.clip(peaks[:, None] + np.arange(-half, half + 1)[None, :], 0, len(x) - 1)
    win = x[idx]                                          # (beats, window, leads)
    win = win - win.mean(axis=1, keepdims=True)
    template = np.median(win, axis=0)                     # (window, leads)
    num = np.einsum('bwl,wl->bl', win, template)
    den = np.linalg.norm(win, axis=1) * np.linalg.norm(template, axis=0)
    return np.median(num / np.maximum(den, 1e-300), axis=0)


def _is_noise(sig, bp, peaks, quality, fs):
    """True when the detections look picked out of noise: beats that neither
    stand out of the integrated signal (quality < MIN_QUALITY) nor repeat
    one morphology (template correlation < MIN_CONSISTENCY in every lead,
    both raw and band-passed). A wide QRS with a big T wave (LBBB) can have a
    low quality, but its beats are alike; 10 s of white or 1/f^2 noise stay
    under quality 2.2 and correlation 0.45."""
    if len(peaks) < 2:
        return True
    if quality >= MIN_QUALITY:
        return False
    sig, bp = sig.reshape(len(sig), -1), bp.reshape(len(bp), -1)
    corr = np.minimum(_template_corr(_baseline_removed(sig, fs), peaks, fs),
                      _template_corr(bp, peaks, fs))
    return bool(corr.max() < MIN_CONSISTENCY)


def detect_with_quality(sig, fs, refine=True):
    """R peaks of one lead and a quality score (see module docstring).

    Returns (peaks int64 array, quality float). A flat lead, a record shorter
    than 2 s, or detections that look picked out of noise (_is_noise) give
    an empty array; NaN/inf samples, a 2-D input or a sampling rate under
    40 Hz raise ValueError naming the problem. A record longer than
    CHUNK_SECONDS is detected in overlapping chunks (_in_chunks), so memory
    stays bounded and a noisy stretch of a Holter recording only empties
    its own chunk.
    """
    sig = _check(sig, fs)
    if len(sig) > CHUNK_SECONDS * fs:
        return _in_chunks(lambda x: _detect_one(x, fs, refine), sig, fs)
    return _detect_one(sig, fs, refine)


def _detect_one(sig, fs, refine):
    return _detect_columns(sig[:, None], fs, refine)[0]


def _detect_columns(x, fs, refine):
    """(n, leads) finite -> [(peaks, quality)] per lead, each lead on its
    own; the filters run on all leads in one call (a 12-lead record costs
    about 6 single leads, not 12)."""
    out = [(np.zeros(0, dtype=np.int64), 0.0)] * x.shape[1]
    usable = [k for k in range(x.shape[1]) if _usable(x[:, k], fs)]
    if not usable:
        return out
    xs = _despiked(x[:, usable], fs)
    bp, deriv, energy = _energy(xs, fs)
    base = _baseline_removed(xs, fs) if refine else xs
    for j, k in enumerate(usable):
        out[k] = _decide(xs[:, j], bp[:, j], deriv[:, j], energy[:, j], base[:, j], fs, refine)
    return out


def _decide(sig, bp, deriv, energy, base, fs, refine):
    """Decision stage of one lead on its features -> (peaks, quality)."""
    peaks = _detect(np.abs(bp), np.abs(deriv), energy, fs)
    quality = _quality(energy, peaks)
    # Judged before refining, which aligns any peaks, noise included, on an
    # extremum and so makes even noise look repetitive.
    if _is_noise(sig, bp, peaks, quality, fs):
        return np.zeros(0, dtype=np.int64), quality
    if refine:
        peaks = _refine(base, fs, peaks, energy[peaks])
        peaks = _drop_unlike(base, peaks, fs)
    return peaks, quality


def _shape_corr(x, peaks, fs):
    """Correlation of each beat of x (+/-80 ms, mean removed) with the
    record's median beat."""
    half = max(1, round(SHAPE_WINDOW * fs))
    idx = np.clip(peaks[:, None] + np.arange(-half, half + 1)[None, :], 0, len(x) - 1)
    win = x[idx]
    win = win - win.mean(axis=1, keepdims=True)
    template = np.median(win, axis=0)
    den = np.linalg.norm(win, axis=1) * np.linalg.norm(template)
    return win @ template / np.maximum(den, 1e-300)


def _drop_unlike(x, peaks, fs):
    """peaks without the detections that are both unlike the record's beat
    (shape correlation < UNLIKE_CORR with the median beat, on the
    baseline-removed lead) and closer than UNLIKE_RR x the median RR to
    another detection: two beats that close are rarely both real, and of
    the pair the one that does not look like the record's QRS is the muscle
    artefact, f wave or T wave. The unlikest goes first, so of two unlike
    neighbours only one goes. The RR gate keeps any beat that sits alone
    (a PVC of another shape keeps its compensatory pause). Needs 8 beats
    for a template."""
    if len(peaks) < N_LEVELS:
        return peaks
    corr = _shape_corr(x, peaks, fs)
    near = UNLIKE_RR * float(np.median(np.diff(peaks)))
    keep = np.ones(len(peaks), dtype=bool)
    for k in np.argsort(corr):
        if corr[k] >= UNLIKE_CORR:
            break
        kept = np.flatnonzero(keep)
        j = np.searchsorted(kept, k)
        prev = kept[j - 1] if j > 0 else None
        nxt = kept[j + 1] if j + 1 < len(kept) else None
        if ((prev is not None and peaks[k] - peaks[prev] < near)
                or (nxt is not None and peaks[nxt] - peaks[k] < near)):
            keep[k] = False
    return peaks[keep]


def _in_chunks(detector, x, fs):
    """detector(x chunk) -> (peaks, quality) run over CHUNK_SECONDS chunks of
    x (axis 0) with CHUNK_OVERLAP s of context on each side; each chunk keeps
    the beats of its own span. Quality: the median over chunks with beats."""
    n, size, pad = len(x), int(CHUNK_SECONDS * fs), int(CHUNK_OVERLAP * fs)
    peaks, qualities = [], []
    for start in range(0, n, size):
        lo, end = max(0, start - pad), min(n, start + size)
        p, q = detector(x[lo:min(n, end + pad)])
        p = p + lo
        peaks.append(p[(p >= start) & (p < end)])
        if len(p):
            qualities.append(q)
    out = np.concatenate(peaks).astype(np.int64)
    # A beat on a chunk boundary can be found from both sides.
    out = out[np.r_[True, np.diff(out) >= REFRACTORY * fs]] if len(out) else out
    return out, float(np.median(qualities)) if qualities else 0.0


def _lead_weight(peaks, quality):
    """Vote weight of one lead: log of its quality (median beat height over
    the median of the QRS energy), 0 without beats. A lead with beats has
    quality >= MIN_QUALITY or beats that repeat one shape; log keeps one very
    clean lead (quality 300) from outvoting three ordinary ones (30)."""
    return float(np.log(max(quality, 1.0))) if len(peaks) >= 2 else 0.0


def _box_sum(x, width):
    return ndimage.uniform_filter1d(x, width, mode='constant') * width


def fuse_detections(detections, weights, fs, length, tolerance=FUSION_TOLERANCE):
    """Weighted vote over per-lead detections -> fused R peaks (int64).

    detections: one array of R-peak samples per lead; weights: one weight per
    lead. A beat's support is the weight of the leads that detected it
    within `tolerance` s (a window sliding over the record). Kept: every
    peak of support with more than half of the total weight, and, as Pan &
    Tompkins' search-back does within a lead, in a gap longer than 166 % of
    the lower quartile of RR the best-supported peak that at least two leads and a
    fifth of the weight saw (a PVC along an axis that most leads see
    only faintly). Two beats closer than the 200 ms refractory period are
    one. Its position is the detection of the heaviest lead that saw it, so
    RR intervals come from one lead wherever they can (leads differ by up
    to tens of ms, R in one, S in another)."""
    weights = np.asarray(weights, dtype=np.float64)
    total = float(weights.sum())
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    width = max(1, round(tolerance * fs))
    vote = np.zeros(int(length) + width + 1)
    count = np.zeros_like(vote)
    for p, w in zip(detections, weights, strict=True):
        if w > 0 and len(p):
            np.add.at(vote, np.asarray(p, dtype=np.int64), w)
            np.add.at(count, np.asarray(p, dtype=np.int64), 1.0)
    support = _box_sum(vote, width)
    refractory = max(1, int(REFRACTORY * fs))
    beats, _ = sps.find_peaks(np.r_[0.0, support, 0.0], height=0.5 * total + 1e-9,
                              distance=refractory)
    beats = beats - 1
    weak, _ = sps.find_peaks(np.r_[0.0, np.where(_box_sum(count, width) >= 2, support, 0.0),
                                   0.0], height=FUSION_WEAK * total - 1e-9, distance=refractory)
    beats = _fused_search_back(beats, weak - 1, support, refractory)
    if len(beats) == 0:
        return np.zeros(0, dtype=np.int64)
    half = width // 2 + 1
    out = np.full(len(beats), -1, dtype=np.int64)
    best = np.full(len(beats), -1.0)
    for p, w in zip(detections, weights, strict=True):
        p = np.sort(np.asarray(p, dtype=np.int64))
        if w <= 0 or len(p) == 0:
            continue
        near = p[_nearest(p, beats)]
        take = (np.abs(near - beats) <= half) & (w > best)
        out[take], best[take] = near[take], w
    out = np.where(out >= 0, out, beats)
    return np.unique(np.clip(out, 0, length - 1))


def _fused_search_back(beats, weak, support, refractory):
    """beats plus, in each gap over SEARCH_BACK x the lower quartile of RR,
    the weak peak of highest support at least a refractory period from both
    ends. The quartile, not the median: where every other beat is a missed
    PVC, the median RR is the long one and no gap looks long. An observed
    interval (method 'lower'): in a 4-s record of 3 intervals an interpolated
    quartile is pulled up by the very gap under test."""
    if len(beats) < 3 or len(weak) == 0:
        return beats
    rr = float(np.percentile(np.diff(beats), 25, method='lower'))
    edges = _edge_beats(beats, weak, support, rr, refractory)
    gap = np.searchsorted(beats, weak) - 1        # weak[i] lies after beats[gap[i]]
    ok = (gap >= 0) & (gap < len(beats) - 1)
    weak, gap = weak[ok], gap[ok]
    long_gap = (beats[gap + 1] - beats[gap]) > SEARCH_BACK * rr
    clear = (weak - beats[gap] >= refractory) & (beats[gap + 1] - weak >= refractory)
    weak, gap = weak[long_gap & clear], gap[long_gap & clear]
    if len(weak) == 0:
        return np.sort(np.r_[beats, edges])
    # The best-supported weak peak of each gap: sort by (gap, -support).
    order = np.lexsort((-support[weak], gap))
    first = np.r_[True, np.diff(gap[order]) != 0]
    return np.sort(np.r_[beats, weak[order][first], edges])


def _edge_beats(beats, weak, support, rr, refractory):
    """The search-back of the segments before the first and after the last
    beat, where one side of the gap is the record's edge: the best-supported
    weak peak at least half the search-back span (0.83 RR) from the beat next
    to it. A beat cut by the start of a record (often an ectopic one, whose
    compensatory pause keeps it far from the next beat) is otherwise lost."""
    reach = max(refractory, 0.5 * SEARCH_BACK * rr)
    out = []
    for side in (weak[weak <= beats[0] - reach], weak[weak >= beats[-1] + reach]):
        if len(side):
            out.append(side[np.argmax(support[side])])
    return np.asarray(out, dtype=np.int64)


def detect_multilead(signals, fs, refine=True, tolerance=FUSION_TOLERANCE):
    """R peaks fused from the leads of one record, (n, leads) -> (peaks, quality).

    Each lead is detected on its own (detect_with_quality), weighted by its
    quality (_lead_weight), and the detections vote (fuse_detections): a
    beat seen by most of the weight is real, one seen in a single noisy lead
    is not, and a lead whose QRS is nearly isoelectric or whose T waves
    outgrow it is outvoted. This is the decision fusion of multi-lead
    detectors such as Christov (2004), with the per-lead quality in place
    of equal votes. A lead with NaN/inf samples, or flat, gets no vote;
    quality is the weighted mean of the voting leads' qualities.
    """
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f'detect_multilead: expected (samples, leads), got shape {x.shape}')
    _check_fs(fs)
    if len(x) > CHUNK_SECONDS * fs:
        return _in_chunks(lambda c: _fuse_one(c, fs, refine, tolerance), x, fs)
    return _fuse_one(x, fs, refine, tolerance)


def _fuse_one(x, fs, refine, tolerance):
    finite = [k for k in range(x.shape[1]) if np.isfinite(x[:, k]).all()]
    detections = [(np.zeros(0, dtype=np.int64), 0.0)] * x.shape[1]
    if finite:
        for k, d in zip(finite, _detect_columns(x[:, finite], fs, refine), strict=True):
            detections[k] = d
    found = [p for p, _ in detections]
    qualities = [q for _, q in detections]
    w = np.array([_lead_weight(p, q) for p, q in detections])
    if w.sum() <= 0:
        return np.zeros(0, dtype=np.int64), 0.0
    peaks = fuse_detections(found, w, fs, len(x), tolerance)
    quality = float(np.dot(w, qualities) / w.sum())
    if len(peaks) < 2:
        return np.zeros(0, dtype=np.int64), quality
    return peaks, quality


def _refine(x, fs, peaks, strength):
    """Move each detection to the R peak: the extremum of x within +/-75 ms,
    in the polarity that dominates the record. detect_with_quality passes
    the lead with only its baseline removed (0.5 Hz high-pass): the R peak
    as annotators mark it (CPSC2019: median error 6 ms, against 11 ms on the
    8-20 Hz band-passed lead, which moves a negative or wide QRS to a side
    lobe; 37 instead of 39 beats wrong).

    Then two clean-ups that need the refined positions: a detection at the
    record's first or last 75 ms (where filter transients and cut T waves
    live) stays only if its R amplitude is at least half the median beat's,
    and of two detections closer than 200 ms the one with the larger
    integrated peak (strength) stays.
    """
    half = max(1, round(REFINE_WINDOW * fs))
    offs = np.arange(-half, half + 1)
    idx = np.clip(peaks[:, None] + offs[None, :], 0, len(x) - 1)
    win = x[idx]
    polarity = 1.0 if np.median(win.max(axis=1)) >= np.median(-win.min(axis=1)) else -1.0
    out = idx[np.arange(len(peaks)), np.argmax(polarity * win, axis=1)]
    amp = polarity * x[out]
    edge = (out < half) | (out >= len(x) - half)
    keep = ~edge | (amp >= 0.5 * np.median(amp[~edge] if (~edge).any() else amp))
    out, strength = out[keep], np.asarray(strength)[keep]
    order = np.argsort(out, kind='stable')
    out, strength = out[order], strength[order]
    kept = []
    for k in range(len(out)):
        if kept and out[k] - out[kept[-1]] < REFRACTORY * fs:
            if strength[k] > strength[kept[-1]]:
                kept[-1] = k
            continue
        kept.append(k)
    return out[kept].astype(np.int64)


def detect(sig, fs):
    """R-peak sample indices of one ECG lead sampled at fs Hz (np.int64 array)."""
    return detect_with_quality(sig, fs)[0]


# --------------------------------------------------------------------------
# Evaluation against reference annotations.

def _nearest(sorted_x, t):
    """Index into sorted_x (non-empty) of the element nearest to each t."""
    j = np.searchsorted(sorted_x, t)
    left = np.clip(j - 1, 0, len(sorted_x) - 1)
    right = np.clip(j, 0, len(sorted_x) - 1)
    return np.where(np.abs(t - sorted_x[left]) <= np.abs(sorted_x[right] - t), left, right)


def match_beats(ref, test, fs, window=0.150):
    """Beat-by-beat comparison with the standard 150 ms matching window
    (ANSI/AAMI EC57, as wfdb.processing.compare_annotations(window_width=
    0.15 fs)): a detection is a true positive when its nearest reference beat
    is at most 150 ms away and no other detection claimed that beat.
    Returns dict(tp, fn, fp, se, ppv, f1)."""
    ref = np.sort(np.asarray(ref, dtype=np.int64))
    test = np.sort(np.asarray(test, dtype=np.int64))
    tol = window * fs
    tp = 0
    if len(ref) and len(test):
        # Nearest reference for each detection; a reference claimed by several
        # detections counts once (the others are false positives).
        nearest = _nearest(ref, test)
        ok = np.abs(test - ref[nearest]) <= tol
        tp = len(np.unique(nearest[ok]))
    fn, fp = len(ref) - tp, len(test) - tp
    se = tp / len(ref) if len(ref) else float('nan')
    ppv = tp / len(test) if len(test) else float('nan')
    f1 = 2 * tp / (len(ref) + len(test)) if len(ref) + len(test) else float('nan')
    return {'tp': tp, 'fn': fn, 'fp': fp, 'se': se, 'ppv': ppv, 'f1': f1}


def reference_set(folder):
    """The records of a folder with reference beats, as a list of
    (name, signal float (n, leads), fs, reference R-peak samples, lead names).

    Two layouts: CPSC2019's (data/data_NNNNN.mat with `ecg`, ref/R_NNNNN.mat
    with `R_peak`, 500 Hz, one lead) and WFDB records with .atr beat
    annotations (CPSC2021, MIT-BIH; beat symbols only), read by records/ in
    mV. SystemExit naming the folder when it holds neither."""
    import scipy.io

    folder = Path(folder)
    out = []
    mats = sorted((folder / 'data').glob('data_*.mat'))
    for mat in mats:
        ref = folder / 'ref' / mat.name.replace('data_', 'R_')
        if not ref.exists():
            raise SystemExit(f'error: {ref} not found; every CPSC2019 data file needs '
                             'its ref/R_*.mat')
        # CPSC2019's files are no ECG record format (no header, a bare `ecg`
        # array): read as the challenge ships them.
        x = scipy.io.loadmat(mat)['ecg'].astype(np.float64).reshape(-1, 1)
        r = scipy.io.loadmat(ref)['R_peak'].astype(np.int64).ravel()
        out.append((mat.stem, x, 500.0, np.sort(r), ['ECG']))
    if not mats:
        for hea in sorted(folder.glob('*.hea')):
            rec_path = hea.with_suffix('')
            if not hea.with_suffix('.atr').exists():
                continue
            try:
                rec, beats = read_record(hea), read_beats(rec_path)
                signal = rec.signal
            except RecordError as e:
                raise SystemExit(f'error: {e}') from None
            out.append((hea.stem, signal, rec.fs, np.sort(beats.samples), rec.sig_names))
    if not out:
        raise SystemExit(f'error: {folder} holds neither CPSC2019 data/ + ref/ files nor '
                         'WFDB records with .atr annotations')
    return out


def score_set(records, detector):
    """Pooled Se, +P, F1 (match_beats, 150 ms) of detector(signal (n, leads),
    fs) -> peaks over records from reference_set, and its CPU seconds per
    hour of signal: dict(tp, fn, fp, se, ppv, f1, beats, s_per_hour)."""
    import time
    tp = fn = fp = 0
    cpu = hours = 0.0
    for _, x, fs, ref, _ in records:
        t0 = time.process_time()
        peaks = detector(x, fs)
        cpu += time.process_time() - t0
        hours += len(x) / fs / 3600
        m = match_beats(ref, peaks, fs)
        tp, fn, fp = tp + m['tp'], fn + m['fn'], fp + m['fp']
    return {'tp': tp, 'fn': fn, 'fp': fp, 'se': tp / max(tp + fn, 1),
            'ppv': tp / max(tp + fp, 1), 'f1': 2 * tp / max(2 * tp + fn + fp, 1),
            'beats': tp + fn, 's_per_hour': cpu / max(hours, 1e-12)}


def _lead_index(names, lead, where):
    """Index of lead (a name, case-insensitive, or an index) in names."""
    lower = [n.lower() for n in names]
    if lead is None:
        return 0
    if lead.isdigit() and int(lead) < len(names):
        return int(lead)
    if lead.lower() in lower:
        return lower.index(lead.lower())
    raise SystemExit(f'error: {where}: no lead {lead!r}; leads are {",".join(names)} '
                     '(or give an index)')


def _eval_dataset(folder, lead, fused):
    """--dataset: every record of the folder, pooled scores, one line."""
    records = reference_set(folder)
    if fused:
        what = 'all leads fused'

        def detector(x, fs):
            return detect_multilead(x, fs)[0]
    else:
        k = _lead_index(records[0][4], lead, folder)
        what = f'lead {k} ({records[0][4][k]})'

        def detector(x, fs):
            return detect(x[:, k], fs)
    m = score_set(records, detector)
    print(f"{Path(folder).name}: {len(records)} records, {m['beats']} reference beats, {what}: "
          f"TP {m['tp']} FN {m['fn']} FP {m['fp']}; Se {100 * m['se']:.2f}%  "
          f"+P {100 * m['ppv']:.2f}%  F1 {100 * m['f1']:.2f}%  "
          f"({m['s_per_hour']:.2f} s per hour of signal)")


def read_lead(record_path, lead):
    """(signal 1-D float mV, fs, lead name) of one lead of a record (records/)."""
    try:
        rec = read_record(record_path)
        names = {n.lower(): i for i, n in enumerate(rec.sig_names)}
        if lead.lower() not in names:
            raise SystemExit(f'error: {record_path}: no lead {lead!r}; '
                             f'leads are {",".join(rec.sig_names)}')
        i = names[lead.lower()]
        return rec.signal[:, i], rec.fs, rec.sig_names[i]
    except RecordError as e:
        raise SystemExit(f'error: {e}') from None


def plot(sig, fs, peaks, path, title, ref=None, seconds=10.0):
    plt = pyplot()
    n = min(len(sig), int(seconds * fs))
    t = np.arange(n) / fs
    fig, ax = plt.subplots(figsize=(12, 3))
    ax.plot(t, sig[:n], lw=0.8, color='k')
    p = peaks[peaks < n]
    ax.plot(p / fs, sig[p], 'rv', label='detected')
    if ref is not None:
        r = ref[ref < n]
        ax.plot(r / fs, sig[r], 'g^', mfc='none', label='reference')
    ax.set(xlabel='time (s)', ylabel='amplitude', title=title)
    ax.legend(loc='upper right')
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--record', metavar='PATH',
                        help='WFDB record without extension, e.g. data/SYNTH/A0001')
    source.add_argument('--dataset', metavar='DIR',
                        help='score every record of DIR against its references, pooled '
                             '(CPSC2019 data/ + ref/, or WFDB records with .atr)')
    parser.add_argument('--lead', default=None, metavar='NAME',
                        help='lead name, case-insensitive (MLII for mitdb), or with --dataset '
                             'an index (default: II; with --dataset the first lead)')
    parser.add_argument('--fused', action='store_true',
                        help='with --dataset: fuse all leads (detect_multilead)')
    parser.add_argument('--plot', action='store_true',
                        help='write a PNG of the first 10 s with the detections')
    parser.add_argument('--eval', action='store_true',
                        help='score against RECORD.atr (150 ms window)')
    parser.add_argument('--out', default=None, metavar='PREFIX',
                        help='write PREFIX_peaks.csv and PREFIX.png (default: no CSV; '
                             'the PNG goes to ./<record>_qrs.png)')
    args = parser.parse_args()
    if args.dataset:
        _eval_dataset(args.dataset, args.lead, args.fused)
        return

    record = Path(args.record)
    record = record.with_suffix('') if record.suffix in ('.hea', '.mat', '.dat') else record
    if not record.with_suffix('.hea').exists():
        raise SystemExit(f'error: {record}.hea not found; give the record path '
                         'without extension')
    sig, fs, lead = read_lead(record, args.lead or 'II')
    peaks, quality = detect_with_quality(sig, fs)
    dur = len(sig) / fs
    hr = 60.0 * fs / np.median(np.diff(peaks)) if len(peaks) > 1 else float('nan')
    print(f'{record.name} lead {lead}: {len(peaks)} beats in {dur:.1f} s, '
          f'median HR {hr:.1f} bpm, quality {quality:.1f}')
    ref = None
    if args.eval:
        atr = record.with_suffix('.atr')
        if not atr.exists():
            raise SystemExit(f'error: {atr} not found; --eval needs reference annotations')
        ref = read_beats(record).samples
        m = match_beats(ref, peaks, fs)
        print(f"eval vs {atr.name}: {len(ref)} reference beats, TP {m['tp']} FN {m['fn']} "
              f"FP {m['fp']}; Se {100 * m['se']:.2f}%  +P {100 * m['ppv']:.2f}%  "
              f"F1 {100 * m['f1']:.2f}%")
    if args.out:

        out = Path(args.out)
        atomic_to_csv(pd.DataFrame({'sample': peaks, 'time_s': peaks / fs}),
                      f'{out}_peaks.csv', index=False)
        print(f'wrote {out}_peaks.csv')
    if args.plot:
        png = Path(f'{args.out}.png') if args.out else Path(f'{record.name}_qrs.png')
        png.parent.mkdir(parents=True, exist_ok=True)
        plot(sig, fs, peaks, png, f'{record.name} {lead}', ref)
        print(f'wrote {png}')


if __name__ == '__main__':
    main()
