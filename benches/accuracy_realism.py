"""Accuracy, `python bench.py --only realism`: how much synthetic.py's records
look like real ones. The same measurements, made by the project's own beat
code (measure.measure's QRS detection, measure.label_beats, qrs_bounds), on
the real labelled 12-lead records of ../shared/data and on synthetic records
of the same classes, printed side by side per class.

    python bench.py --only realism            # 24 synthetic 10-s records per class
    python bench.py --only realism --quick    # 3 per class

Per record: heart rate; premature beats per 10 s (RR under measure.PREMATURE
of the median RR) and their coupling (that RR over the median), the pause
after them (the next RR over the median); the share of premature beats whose
QRS is of another shape than the dominant one (label_beats' V: a PVC, or a
PAC conducted with aberration); the QRS width of the premature beats and the
record's (measure); how unlike the dominant beats the 250 ms before a
premature QRS are (1 - correlation: its P wave, or the T wave it hides in);
baseline wander (peak-to-peak of what a 0.5 Hz high-pass removes), high-
frequency noise (RMS above 40 Hz) and the QRS amplitude per lead. Each cell
is the median over the class's records [10th-90th percentile]. Real records
take their classes from their SNOMED CT Dx codes (utils.dx_to_classes, the
'sinus' SNR rule: every sinus-rhythm record is a normal-rhythm reference here).
The real records are read from ../shared/data; without them the section
prints why and measures the synthetic records only.
"""
import numpy as np

import measure
import synthetic
from benches.accuracy_sim2real import real_records
from benches.common import md_head, md_row
from QRSDetectorOffline import zero_phase
from records import FS, LEADS

CLASSES = ('SNR', 'RBBB', 'PAC', 'PVC')   # the classes with real positives in ../shared
SHOWN_LEADS = ('I', 'II', 'V1', 'V2', 'V5')
STATS = [  # key, row label, format
    ('hr', 'heart rate (/min)', '{:.0f}'),
    ('premature_per_10s', 'premature beats per 10 s', '{:.1f}'),
    ('coupling', 'coupling RR / median RR', '{:.2f}'),
    ('pause_after', 'RR after / median RR', '{:.2f}'),
    ('premature_other_shape', 'premature beats of another QRS shape', '{:.2f}'),
    ('premature_qrs_ms', 'QRS of premature beats (ms)', '{:.0f}'),
    ('qrs_ms', 'QRS of the record (ms)', '{:.0f}'),
    ('pre_qrs_unlike', '250 ms before premature QRS: 1 - corr', '{:.2f}'),
    ('baseline_mv', 'baseline wander p-p (mV)', '{:.2f}'),
    ('hf_noise_uv', 'noise above 40 Hz RMS (uV)', '{:.0f}'),
] + [(f'amp_{lead}', f'QRS amplitude {lead} (mV)', '{:.2f}') for lead in SHOWN_LEADS]


def _ms(s):
    return int(round(s * FS))


def _one_beat_qrs_ms(xh, r):
    """QRS width (ms) of one beat, qrs_bounds on its own +/-0.62/0.8 s window."""
    lo, hi = r - _ms(measure.PRE_S), r + _ms(measure.POST_S)
    if lo < 0 or hi > len(xh):
        return np.nan
    on, off = measure.qrs_bounds(xh[lo:hi], r - lo)
    return np.nan if on is None else (off - on) * 1000 / FS


def record_stats(x):
    """x (n, 12) mV at FS -> {stat: value} (NaN where a record has none)."""
    x = np.asarray(x, dtype=np.float64)
    m = measure.measure(x.T, FS, LEADS)
    out = {k: np.nan for k, _, _ in STATS}
    peaks = np.asarray(m.get('peaks') or [], dtype=np.int64)
    xh = measure.highpass(x)
    out['baseline_mv'] = float(np.median(np.ptp(x - xh, axis=0)))
    out['hf_noise_uv'] = float(np.median(zero_phase(x, FS, 'highpass', 40.0).std(axis=0)) * 1000)
    out['qrs_ms'] = m['qrs_ms'] if m['qrs_ms'] is not None else np.nan
    if len(peaks) < 3:
        return out
    rr = np.diff(peaks)
    med = np.median(rr)
    out['hr'] = 60 * FS / med
    sym = measure.label_beats(xh, peaks)
    prem = np.flatnonzero(np.r_[False, rr < measure.PREMATURE * med])
    out['premature_per_10s'] = len(prem) / (len(x) / FS) * 10
    dom = [p for p, s in zip(peaks, sym) if s == 'N' and _ms(0.3) <= p < len(x) - _ms(0.1)]
    h = _ms(0.06)
    amps = [np.ptp(xh[p - h:p + h], axis=0) for p in dom] or [np.full(12, np.nan)]
    for lead in SHOWN_LEADS:
        out[f'amp_{lead}'] = float(np.median([a[LEADS.index(lead)] for a in amps]))
    if not len(prem):
        return out
    out['coupling'] = float(np.median(rr[prem - 1] / med))
    after = [rr[k] / med for k in prem if k < len(rr)]
    out['pause_after'] = float(np.median(after)) if after else np.nan
    out['premature_other_shape'] = float(np.mean(sym[prem] == 'V'))
    widths = np.array([_one_beat_qrs_ms(xh, peaks[k]) for k in prem])
    if np.isfinite(widths).any():
        out['premature_qrs_ms'] = float(np.nanmedian(widths))
    w = _ms(0.25)
    if len(dom) >= 2:
        ref = np.median(np.stack([xh[p - w:p - _ms(0.03)] for p in dom]), axis=0).ravel()
        unlike = []
        for k in prem:
            p = peaks[k]
            if p >= w:
                seg = xh[p - w:p - _ms(0.03)].ravel()
                unlike.append(1 - np.corrcoef(seg, ref)[0, 1])
        out['pre_qrs_unlike'] = float(np.median(unlike)) if unlike else np.nan
    return out


def _summary(rows):
    """[{stat: value}] -> {stat: (median, p10, p90)} over the finite values."""
    out = {}
    for k, _, _ in STATS:
        v = np.array([r[k] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = (float(np.median(v)), float(np.percentile(v, 10)),
                  float(np.percentile(v, 90))) if len(v) else (np.nan,) * 3
    return out


def _cell(s, fmt):
    if not np.isfinite(s[0]):
        return '-'
    return f'{fmt.format(s[0])} [{fmt.format(s[1])}-{fmt.format(s[2])}]'


def synthetic_stats(n, seed=0):
    """{class: [record_stats]} of n 10-s synthetic records per class, made as
    the demo's data is made (noise and borderline at synthetic.py's defaults)."""
    return {c: [record_stats(synthetic.make_record(seed, 10_000 + 100 * k + i, duration=10,
                                                   classes=[c])['signal'])
                for i in range(n)] for k, c in enumerate(CLASSES)}


def run(args):
    n = 3 if args.quick else 24
    real = {c: [] for c in CLASSES}
    recs = real_records('sinus')
    if not recs:
        print('no real labelled records under ../shared/data: the synthetic column only')
    for rec, classes in recs:
        stats = record_stats(np.nan_to_num(rec.signal))
        for c in classes:
            if c in real:
                real[c].append(stats)
    synth = synthetic_stats(n)
    result = {}
    for c in CLASSES:
        rs, ss = _summary(real[c]) if real[c] else None, _summary(synth[c])
        print(f'\n{c}: {len(real[c])} real records, {len(synth[c])} synthetic '
              '(median [10th-90th percentile])')
        print(md_head('statistic', 'real', 'synthetic'))
        for k, label, fmt in STATS:
            print(md_row(label, _cell(rs[k], fmt) if rs else '-', _cell(ss[k], fmt)))
        result[c] = {'real': rs, 'synthetic': ss}
    return {c: {side: {k: v[0] for k, v in (r[side] or {}).items()} for side in r}
            for c, r in result.items()}
