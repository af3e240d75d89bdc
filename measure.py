"""Global ECG measurements from the median beat: HR, PR, QRS, QT, QTc and axes.

    python measure.py ../shared/data/cpsc2018_wfdb/A0001
    python measure.py data/SYNTH/A0001 data/SYNTH/A0002 --json

prints one line per record, e.g.
    A0001  HR 77  PR 166  QRS 96  QT 386  QTcB 437  QTcF 419  axes P 55 QRS 27 T 42  (12 leads)
and, with --json, the dicts measure() returns.

Python API (torch-free):
    measure(record_or_signal, fs=None, leads=None) -> dict
        record_or_signal  a records.Record (fs and leads from the record), or
                          an array (leads, samples) in mV with fs (Hz) and
                          leads (names, any alias: records.parse_leads)
    keys: KEYS, from the one table of measurements (MEASUREMENTS, in
    records/measurements.py: key, name, unit): hr (beats/min), pr_ms,
    qrs_ms, qt_ms, qtc_bazett_ms, qtc_fridericia_ms, p_axis, qrs_axis,
    t_axis (degrees, frontal plane): float or None; `reasons` {key: why it
    is None}; `leads_used` (the leads the figures came from); `beats` (R
    peaks used for the median beat), `n_beats`, and `peaks` (every QRS
    found, samples at 500 Hz; absent when the record stopped before the
    detector: no usable lead, under 2 s, a detector error).
    label_beats(xh, peaks), qrs_bounds(median_beat, r0): the beat rules.

Method (what an electrocardiograph's global measurement does, after the
CSE/IEC 60601-2-25 conventions): the project's fused multi-lead QRS detector
(QRSDetectorOffline.detect_multilead) finds the beats; beats of another QRS
shape (PVCs) or premature ones (PACs) are left out; the dominant beats are
aligned by cross-correlation and their sample-wise median per lead is the
median beat. On the median beat of all leads together:
  QRS onset/offset  the earliest onset and latest offset across leads, found
                    on the spatial velocity (the root sum of squares of every
                    lead's slope, which rises with the earliest lead and falls
                    with the last): the first/last crossing of a fraction of
                    its peak, bridging notches shorter than 12 ms;
  T end             on the magnitude of the ST-T against the PR baseline, in
                    the plane of its two principal directions (the waves span
                    the 3 dimensions of the heart dipole, noise all leads):
                    from the steepest point of the descent (the tangent
                    method's, Lepeschkin & Surawicz, Circulation 6:378, 1952)
                    to where it reaches T_FRAC of the T wave above its floor,
                    at most twice the tangent's reach (a threshold method, as
                    in Laguna et al., Comput Biomed Res 27:45-60, 1994);
  P onset           where the P wave's magnitude (same plane) falls back to
                    P_FRAC of the wave above the level before it, searched
                    between the previous beat's T end and the QRS onset; a P wave
                    counts only if it repeats from beat to beat (correlation
                    with the median P over P_CONSISTENCY; higher when the RR
                    is irregularly irregular: AF's median f wave is no P).
HR is 60 / mean RR of all beats; QTc after Bazett (QT / sqrt(RR)) and
Fridericia (QT / RR^(1/3)), RR in seconds. Axes: atan2 of the net areas in
the frontal plane (I and aVF, solved from any two limb leads) over the P
wave, the QRS and the ST-T (the hexaxial convention).

A figure the record cannot support stays None and says why: no repeating P
wave (AF), fewer than MIN_BEATS dominant beats, no two limb leads for an
axis, a single lead (HR, PR and QRS only: its T end is unreliable), pacing
spikes (a paced QRS has no intrinsic PR or QRS), QRS/T not found.

The beat rules, label_beats (ectopic and premature beats) and qrs_bounds
(QRS onset and offset), are also shap_population.py's, so the QRS region of
a SHAP profile is the QRS measured here.
"""
import argparse
import json
import sys
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import scipy.signal as sps

from QRSDetectorOffline import detect_multilead, zero_phase
from records import FS, LIMB, RecordError, parse_leads, read_record

# The table of measurements; callers read it here too, as measure.KEYS and measure.MEASUREMENTS.
from records.measurements import AXES, KEYS, MEASUREMENTS

MIN_BEATS = 3            # dominant beats needed for a median beat
PRE_S, POST_S = 0.62, 0.80   # median-beat window around the R peak: longest PR, QT
ALIGN_S = 0.020          # cross-correlation search for beat alignment
SHAPE_CORR = 0.85        # a beat whose QRS correlates less with the median is ectopic
PREMATURE = 0.85         # RR under this fraction of the median RR: premature (PAC)
QRS_FRAC = 0.05          # QRS bounds: spatial velocity falls under this share of its peak
QRS_NOISE = 2.5          # ... or this many times its 20th percentile outside the QRS
QRS_HALF_MAX_S = 0.15    # a QRS boundary further than this from the steepest point is noise
NOTCH_S = 0.012          # gaps in the spatial velocity shorter than this stay inside the QRS
T_FRAC = 0.05            # T end: the descent reaches this share of the T wave above its floor
P_FRAC = 0.07            # P onset: the same for the P wave
P_RISE_S = 0.12          # a P wave's onset lies at most this far before its peak
P_MIN_MV = 0.025         # a P wave under 25 uV (spatial) is not measured
P_CONSISTENCY = 0.6      # mean beat-to-median correlation of the P window for a real P
P_CONSISTENCY_IRREGULAR = 0.8   # the same when the RR is irregularly irregular
PACED_SLOPE = 1.0        # mV/ms: a pacing spike (intrinsic QRS slopes stay under ~0.2)


def _ms(s):
    return int(round(s * FS))


def _lowpass(x, hz):
    return zero_phase(x, FS, 'lowpass', hz)


def highpass(x, hz=0.5):
    """x (n, L) at FS without its baseline wander: the signal the beat rules read."""
    return zero_phase(x, FS, 'highpass', hz)


def _as_signal(record_or_signal, fs, leads):
    """-> (x (n, L) float64 mV at FS, lead names) with unusable leads dropped."""
    if hasattr(record_or_signal, 'signal') and hasattr(record_or_signal, 'fs'):
        rec = record_or_signal
        keep = [k for k, name in enumerate(rec.leads) if name is not None]
        x = np.asarray(rec.signal, dtype=np.float64)[:, keep]
        names, fs = [rec.leads[k] for k in keep], float(rec.fs)
    else:
        if fs is None or leads is None:
            raise ValueError('measure: an array needs fs and leads')
        names = parse_leads(leads)
        x = np.asarray(record_or_signal, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] != len(names):
            raise ValueError(f'measure: expected an array (leads, samples) with '
                             f'{len(names)} rows for {names}, got shape {x.shape}')
        x = x.T
    if fs != FS:
        r = Fraction(FS / float(fs)).limit_denominator(1000)
        x = sps.resample_poly(np.nan_to_num(x), r.numerator, r.denominator, axis=0)
    ok = [k for k in range(x.shape[1]) if np.isfinite(x[:, k]).all()
          and np.ptp(x[:, k]) > 0.02]
    return x[:, ok], [names[k] for k in ok]


# --------------------------------------------------------------------------
# Beats and the median beat.

def _add_missed(xf, peaks):
    """peaks plus the QRS complexes the detector left out: peaks of the
    spatial velocity (40 Hz) at least 40% of the detected beats' median and
    200 ms from every detection. The fused detector drops beats that are
    unlike the record's QRS and close to another (its muscle-artefact rule),
    which in ventricular bigeminy drops every PVC and halves the rate."""
    v = np.linalg.norm(np.diff(xf, axis=0), axis=1)
    vs = np.convolve(v, np.ones(_ms(0.02)) / _ms(0.02), mode='same')
    h = _ms(0.05)
    ref = np.median([vs[max(p - h, 0):p + h].max() for p in peaks])
    cand, _ = sps.find_peaks(vs, height=0.4 * ref, distance=_ms(0.2))
    far = np.min(np.abs(cand[:, None] - peaks[None, :]), axis=1) > _ms(0.2)
    return np.sort(np.r_[peaks, cand[far]]).astype(np.int64)


def label_beats(xh, peaks):
    """Each beat labelled as a beat annotation (.atr) labels it -> str array:
    'V' a QRS of another shape than the median QRS (correlation of the
    +/-60 ms around the R peak, all leads, under SHAPE_CORR: a PVC), 'A' a
    beat of the median shape that comes early (RR under PREMATURE of the
    median RR: a PAC), 'N' the others, 'Q' a beat too close to the record's
    ends for its QRS window (not judged). xh (n, L) at FS, high-passed
    (highpass). One rule for measure() (its median beat is made of the N
    beats) and shap_population.py (it aligns PAC and PVC on the A and V)."""
    peaks = np.asarray(peaks, dtype=np.int64)
    sym = np.full(len(peaks), 'Q', dtype='<U1')
    h = _ms(0.06)
    ok = (peaks >= h) & (peaks + h < len(xh))
    if not ok.any():
        return sym
    segs = np.stack([xh[p - h:p + h].ravel() for p in peaks[ok]])
    segs = segs - segs.mean(axis=1, keepdims=True)
    tmpl = np.median(segs, axis=0)
    corr = segs @ tmpl / (np.linalg.norm(segs, axis=1) * np.linalg.norm(tmpl) + 1e-12)
    sym[ok] = np.where(corr >= SHAPE_CORR, 'N', 'V')
    if len(peaks) >= 2:
        rr = np.diff(peaks)
        premature = np.r_[False, rr < PREMATURE * np.median(rr)]
        sym[premature & (sym == 'N')] = 'A'
    return sym


def _dominant(xh, peaks):
    """Indices into peaks of the beats of the dominant shape that are not
    premature (label_beats' N); those of the dominant shape (N and A) when
    fewer than MIN_BEATS are N."""
    sym = label_beats(xh, peaks)
    dom = np.flatnonzero(sym == 'N')
    return dom if len(dom) >= MIN_BEATS else np.flatnonzero((sym == 'N') | (sym == 'A'))


def _align(xf, peaks):
    """Shift each R peak to the best cross-correlation of its QRS (band-limited,
    all leads) with the first median QRS, within +/-ALIGN_S."""
    h, s = _ms(0.05), _ms(ALIGN_S)
    ok = (peaks - h - s >= 0) & (peaks + h + s < len(xf))
    p = peaks[ok]
    tmpl = np.median(np.stack([xf[q - h:q + h] for q in p]), axis=0)
    tmpl = tmpl - tmpl.mean(axis=0)
    # every beat's every shift at once: (beats, shifts, leads, 2h) views, no copies
    segs = np.stack([xf[q - h - s:q + h + s] for q in p])
    win = sliding_window_view(segs, 2 * h, axis=1)[:, :2 * s + 1]
    score = np.einsum('bdlt,tl->bd', win - win.mean(axis=-1, keepdims=True), tmpl)
    return p + np.argmax(score, axis=1) - s


def _median_beat(x, peaks):
    """Sample-wise median (W, L) over beats of the window [-PRE_S, POST_S]
    around each R peak; samples outside the record do not vote."""
    pre, post = _ms(PRE_S), _ms(POST_S)
    n = len(x)
    idx = peaks[:, None] + np.arange(-pre, post)[None, :]
    inside = (idx >= 0) & (idx < n)
    segs = x[np.clip(idx, 0, n - 1)]                       # (B, W, L)
    segs[~inside] = np.nan
    return nanmedian0(segs), pre, segs


def nanmedian0(a):
    """np.nanmedian(a, axis=0), exactly, by one sort (NaNs sort last): numpy's
    own takes a masked-array path for under 600 beats, several times slower."""
    s = np.sort(a, axis=0)
    n = np.sum(~np.isnan(a), axis=0)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(s, np.maximum(n // 2, 0)[None], axis=0)[0]
    with np.errstate(invalid='ignore'):
        return np.where(n > 0, (lo + hi) / 2, np.nan)


# --------------------------------------------------------------------------
# Delineation on the median beat.

def _blank(med, on, off):
    """The median beat with its QRS replaced by a straight line, so that the
    low-pass for the P and T waves does not spread the QRS into the PR
    segment (whose level is the baseline) or the ST segment."""
    out = np.nan_to_num(med).copy()
    w = np.linspace(0, 1, off - on + 1)[:, None]
    out[on:off + 1] = (1 - w) * out[on] + w * out[off]
    return out


def _walk(above, start, step, gap):
    """From `start`, move by `step` while `above`, crossing runs of False
    shorter than `gap` samples; -> the last index above."""
    k, last = start, start
    while 0 <= k + step < len(above):
        k += step
        if above[k]:
            last = k
        elif abs(k - last) > gap:
            break
    return last


def qrs_bounds(med, r0):
    """QRS onset/offset (samples in the median beat med (W, L) at FS, whose R
    peak is at sample r0) on the spatial velocity of the 40 Hz low-passed
    median beat (the multilead delineation of Laguna et al., Med Biol Eng
    Comput 32:21-28, 1994, reduced to the QRS), bridging notches shorter
    than NOTCH_S; (None, None) where the slope never settles. One rule for
    measure()'s QRS duration and the QRS region of shap_population.py's
    profiles: off - on is the QRS."""
    v = np.linalg.norm(np.diff(_lowpass(med, 40.0), axis=0), axis=1)
    lo, hi = r0 - _ms(0.12), r0 + _ms(0.12)
    peak = lo + int(np.argmax(v[lo:hi]))
    # Noise: with few beats at high noise the median beat's slope floor
    # (its 20th percentile outside +/-150 ms of R: the flat stretches) can
    # exceed QRS_FRAC of the peak.
    outside = np.r_[v[:max(r0 - _ms(0.15), 0)], v[r0 + _ms(0.15):]]
    floor = QRS_NOISE * np.percentile(outside, 20) if len(outside) else 0.0
    above = v > max(QRS_FRAC * v[peak], floor)
    on = _walk(above, peak, -1, _ms(NOTCH_S))
    off = _walk(above, peak, 1, _ms(NOTCH_S)) + 1
    if peak - on > _ms(QRS_HALF_MAX_S) or off - peak > _ms(QRS_HALF_MAX_S):
        return None, None   # the slope never settles: noise or f waves as steep as the QRS
    return on, off


def _magnitude(d, lo, hi, k=2):
    """Magnitude of d (W, L) in the plane of its k principal directions over
    [lo, hi): the ECG's waves span the 3 dimensions of the heart dipole,
    noise every lead, so the plane of a wave keeps its signal and ~k/L of
    the noise power."""
    if d.shape[1] <= k:
        return np.linalg.norm(d, axis=1)
    u = np.linalg.svd(d[lo:hi], full_matrices=False)[2][:k]
    return np.linalg.norm(d @ u.T, axis=1)


def _t_end(lp, on, off, base, rr):
    """T end by the tangent method (Lepeschkin & Surawicz, Circulation
    6:378-388, 1952), on the ST-T magnitude against the PR baseline: the
    tangent at the steepest point of the T wave's descent meets the level
    the magnitude settles to after it (its lowest 20-ms mean before the next
    P wave). The tangent uses the descent's high-amplitude part, so it
    stands noise and a U wave better than a threshold on the tail. None
    when no T wave stands out."""
    stop = min(on + _ms(min(0.85 * rr, 0.79)), len(lp) - 1)
    e = _magnitude(lp - base, off, stop + 1)
    lo = off + _ms(0.06)
    hi = min(on + _ms(min(0.72, 0.5 + 0.35 * rr)), stop - _ms(0.04))
    if hi - lo < _ms(0.1):
        return None
    tp = lo + int(np.argmax(e[lo:hi]))
    d = np.gradient(e)
    end = min(tp + _ms(0.25), stop)
    if end - tp < _ms(0.02):
        return None
    k = tp + int(np.argmin(d[tp:end]))
    if d[k] >= 0:
        return None
    w = _ms(0.02)
    tail = e[k:stop + 1]
    floor = np.convolve(tail, np.ones(w) / w, mode='valid').min() if len(tail) > w else 0.0
    tangent = int(round(min(max(k + (floor - e[k]) / d[k], k), stop)))
    # The tangent ends where the wave's tail still runs (a Gaussian's tangent
    # stops at 2 sigma, its visible end is near 2.6): from the steepest
    # point, follow the descent down to T_FRAC of the T wave above the
    # floor, but no further than as far again as the tangent's end.
    cap = min(tangent + (tangent - k), stop)
    thr = floor + T_FRAC * (e[tp] - floor)
    below = np.flatnonzero(e[k:cap + 1] <= thr)
    return int(k + below[0]) if len(below) else cap


def _p_wave(lp, on, base, start):
    """(P onset, P wave height) before QRS onset `on`: the largest deviation
    from the PR baseline between `start` (the previous T end) and on - 20 ms;
    onset where it falls back to P_FRAC of the wave above the level before
    it (the TP segment sits off the PR baseline when the atria repolarise),
    at a trough under a third of it (a T wave running into the P), or at
    most P_RISE_S before the P peak."""
    hi = on - _ms(0.02)
    if hi - start < _ms(0.04):
        return None, 0.0
    e = _magnitude(lp - base, start, on)
    pk = start + int(np.argmax(e[start:hi]))
    lo = max(start, pk - _ms(P_RISE_S))
    floor = e[lo:pk + 1].min()
    top = e[pk]
    thr = floor + P_FRAC * (top - floor)
    k = pk
    while k > lo and e[k - 1] > thr and not (e[k - 1] > e[k] and e[k] < floor + (top - floor) / 3):
        k -= 1
    if k == start and e[k] > thr:
        return -1, float(top - floor)   # still rising at the previous T end: P on T
    return k, float(top - floor)


def _p_consistency(segs_lp, p_on, on):
    """Mean correlation of each beat's P window with the median beat's:
    ~1 for a P wave that repeats, ~0 for f waves or noise."""
    w = segs_lp[:, p_on:on]                                 # (B, W, L)
    good = np.isfinite(w).all(axis=(1, 2))                  # beats inside the record
    if good.sum() < 2:
        return 0.0
    w = w[good] - w[good].mean(axis=1, keepdims=True)
    m = np.median(w, axis=0).ravel()
    w = w.reshape(len(w), -1)
    c = w @ m / (np.linalg.norm(w, axis=1) * np.linalg.norm(m) + 1e-12)
    return float(np.mean(c))


def _frontal_axis(area, names):
    """Frontal axis (degrees) from net areas per lead: (I, II) solved by least
    squares from every limb lead present; None with fewer than two."""
    rows = [(LIMB[n], a) for n, a in zip(names, area) if n in LIMB]
    if len(rows) < 2:
        return None
    m = np.array([r[0] for r in rows])
    if np.linalg.matrix_rank(m) < 2:
        return None
    i, ii = np.linalg.lstsq(m, np.array([r[1] for r in rows]), rcond=None)[0]
    avf = ii - i / 2
    return float(np.degrees(np.arctan2(2 * avf / np.sqrt(3), i)))


def _paced(x, peaks):
    """Pacing spikes: in most beats, a step steeper than PACED_SLOPE mV/ms
    within 200 ms before the R peak (intrinsic QRS slopes stay under ~0.2),
    in three leads at once (a step in one or two leads is an electrode
    artefact)."""
    steep = np.abs(np.diff(x, axis=0)) * FS / 1000 > PACED_SLOPE   # mV per ms
    d = steep.sum(axis=1) >= min(3, x.shape[1])
    h = _ms(0.2)
    hits = [d[max(p - h, 0):p].any() for p in peaks]
    return np.mean(hits) > 0.5


# --------------------------------------------------------------------------

def _empty(reason, leads):
    return {**dict.fromkeys(KEYS), 'reasons': dict.fromkeys(KEYS, reason),
            'leads_used': list(leads), 'beats': [], 'n_beats': 0}


def measure(record_or_signal, fs=None, leads=None):
    """Global measurements of one record (see the module docstring)."""
    x, names = _as_signal(record_or_signal, fs, leads)
    if not names:
        return _empty('no usable lead (flat or missing samples)', [])
    if len(x) < _ms(2.0):
        return _empty('record under 2 s', names)
    xh = highpass(x)
    try:
        peaks, _ = detect_multilead(xh, FS)
    except ValueError as e:
        return _empty(f'QRS detector: {e}', names)
    if len(peaks) < MIN_BEATS:
        return {**_empty(f'too few beats ({len(peaks)} found, {MIN_BEATS} needed)', names),
                'peaks': [int(p) for p in peaks]}
    xf = _lowpass(xh, 40.0)
    peaks = _add_missed(xf, peaks)
    out = _empty('', names)
    out['reasons'] = {}
    out['peaks'] = [int(p) for p in peaks]   # every QRS (samples at FS): clinic's heart rate
    rr = np.diff(peaks) / FS
    out['hr'] = float(60.0 / rr.mean())
    out['n_beats'] = int(len(peaks))
    if _paced(x, peaks):
        for k in KEYS[1:]:
            out['reasons'][k] = 'paced rhythm (pacing spikes before the QRS)'
        return out
    dom = peaks[_dominant(xh, peaks)]
    if len(dom) < MIN_BEATS:
        for k in KEYS[1:]:
            out['reasons'][k] = f'too few beats of one shape ({len(dom)}, {MIN_BEATS} needed)'
        return out
    # The cycles around the dominant beats (in bigeminy the next QRS is the
    # PVC, not the next sinus beat): they bound the T and P searches.
    k = np.searchsorted(peaks, dom)
    nxt = np.diff(peaks)[k[k < len(peaks) - 1]] / FS
    prv = np.diff(peaks)[k[k > 0] - 1] / FS
    cycles = (float(np.median(prv)) if len(prv) else float(np.median(rr)),
              float(np.median(nxt)) if len(nxt) else float(np.median(rr)))
    # Irregularly irregular RR (successive differences over 10% of the RR):
    # a P wave must then repeat clearly to count (AF's median f wave can
    # look like one).
    irregular = float(np.sqrt(np.mean(np.diff(rr) ** 2)) / rr.mean()) > 0.10
    dom = _align(xf, dom)
    out['beats'] = [int(p) for p in dom]
    _delineate(out, xh, dom, names, float(rr.mean()), cycles, irregular)
    return out


def _delineate(out, xh, dom, names, rr, cycles, irregular):
    """Fill the interval and axis figures of `out` from the median beat; rr
    the mean RR (s, for QTc), cycles the median RR before and after the
    dominant beats."""
    why = out['reasons']
    med, r0, segs = _median_beat(xh, dom)
    on, off = qrs_bounds(med, r0)
    if on is None:
        for k in KEYS[1:]:
            why[k] = 'QRS onset/offset not found (noise as steep as the QRS)'
        return
    out['qrs_ms'] = (off - on) * 1000.0 / FS
    lp = _lowpass(_blank(med, on, off), 20.0)
    # PR baseline: 16-4 ms before QRS onset
    base = lp[max(on - _ms(0.016), 0):on - _ms(0.004)].mean(axis=0)
    multi = len(names) >= 2
    lt = _lowpass(_blank(med, on, off), 12.0)
    t_end = _t_end(lt, on, off, lt[max(on - _ms(0.016), 0):on - _ms(0.004)].mean(axis=0),
                   cycles[1]) if multi else None
    if t_end is not None:
        qt = (t_end - on) * 1000.0 / FS
        out['qt_ms'] = qt
        out['qtc_bazett_ms'] = float(qt / np.sqrt(rr))
        out['qtc_fridericia_ms'] = float(qt / rr ** (1 / 3))
    else:
        reason = 'QT needs two or more leads' if not multi else 'no T wave end found'
        for k in ('qt_ms', 'qtc_bazett_ms', 'qtc_fridericia_ms', 't_axis'):
            why[k] = reason
    # the P wave lies after the previous beat's T wave
    prev_t = on - _ms(cycles[0]) + ((t_end - on) if t_end is not None
                                    else _ms(0.4 * cycles[0] ** (1 / 3)))
    start = max(prev_t, on - _ms(PRE_S) + r0 - on + 1, on - _ms(0.45), 1)
    p_on, p_top = _p_wave(lp, on, base, start)
    if p_on == -1:
        why['pr_ms'] = why['p_axis'] = 'the P wave runs into the previous T wave'
        p_on = None
    consistent = 0.0
    if p_on is not None and p_top >= P_MIN_MV:
        segs_lp = _lowpass(np.nan_to_num(segs.transpose(1, 0, 2)), 20.0).transpose(1, 0, 2)
        segs_lp[np.isnan(segs)] = np.nan
        consistent = _p_consistency(segs_lp, p_on, on)
    out['p_consistency'] = round(consistent, 3)
    need = P_CONSISTENCY_IRREGULAR if irregular else P_CONSISTENCY
    if p_on is not None and p_top >= P_MIN_MV and consistent >= need:
        out['pr_ms'] = (on - p_on) * 1000.0 / FS
    else:
        why.setdefault('pr_ms', 'no P wave that repeats from beat to beat '
                                '(atrial fibrillation or flutter, or noise)')
        why.setdefault('p_axis', why['pr_ms'])
        p_on = None
    limb = sum(n in LIMB for n in names)
    if limb < 2:
        for k in AXES:
            why.setdefault(k, 'an axis needs two limb leads')
        return
    out['qrs_axis'] = _frontal_axis((med[on:off] - base).sum(axis=0), names)
    if p_on is not None:
        out['p_axis'] = _frontal_axis((lp[p_on:on] - base).sum(axis=0), names)
    if t_end is not None:
        out['t_axis'] = _frontal_axis((lp[off:t_end] - base).sum(axis=0), names)
    for k in AXES:
        if out[k] is None:
            why.setdefault(k, 'an axis needs two independent limb leads')


def line(name, m):
    """One printable line of a measure() result."""
    def f(k):
        return '-' if m[k] is None else f'{m[k]:.0f}'
    ours = [x for x in MEASUREMENTS if x.ours]
    figures = '  '.join(f'{x.abbrev} {f(x.key)}' for x in ours if x.key not in AXES)
    axes = ' '.join(f'{x.abbrev} {f(x.key)}' for x in ours if x.key in AXES)
    return f"{name}  {figures}  axes {axes}  ({len(m['leads_used'])} leads)"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('records', nargs='+', metavar='RECORD', help='record paths (any '
                        'format records.read_record reads)')
    parser.add_argument('--json', action='store_true', help='print the dicts as JSON lines')
    args = parser.parse_args()
    for path in args.records:
        try:
            rec = read_record(path)
        except RecordError as e:
            print(f'error: {e}', file=sys.stderr)
            continue
        m = measure(rec)
        if args.json:
            print(json.dumps({'record': rec.name, **m}))
        else:
            print(line(rec.name, m))
            for k, why in m['reasons'].items():
                print(f'    {k}: {why}')


if __name__ == '__main__':
    main()
