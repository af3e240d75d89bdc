"""Accuracy, `python bench.py --only qrs`: QRSDetectorOffline.py's Se, +P and
F1 against biosppy's Hamilton, wfdb XQRS and neurokit2 on the same records,
with each detector's CPU time per hour of signal beside them."""
import warnings

import numpy as np
import wfdb
from biosppy.signals import ecg
from biosppy.signals import tools as st
from scipy.signal import resample_poly
from wfdb.processing import xqrs_detect

import QRSDetectorOffline as qrs
import synthetic
from benches.common import SHARED, best_cpu, md_head, md_row
from records import LEADS


def _qrs_detectors():
    """{label: detector(signal 1-D, fs) -> R-peak samples}: ours and the
    public detectors at their default settings; neurokit2 only when it is
    installed (a bench-only dependency, requirements-bench.txt)."""

    def hamilton(x, fs):
        # biosppy.signals.ecg.ecg's own segmentation: FIR 3-45 Hz, Hamilton,
        # then R peaks corrected to the local maximum (50 ms).
        f, _, _ = st.filter_signal(signal=x, ftype='FIR', band='bandpass',
                                   order=int(0.3 * fs), frequency=[3, 45], sampling_rate=fs)
        r, = ecg.hamilton_segmenter(f, fs)
        r, = ecg.correct_rpeaks(f, r, fs, tol=0.05)
        return np.asarray(r)

    methods = {'ours': qrs.detect, 'biosppy hamilton': hamilton,
               'wfdb XQRS': lambda x, fs: np.asarray(xqrs_detect(x, fs, verbose=False))}
    try:
        import neurokit2 as nk
    except ImportError:
        print('neurokit2 is not installed: its column is skipped '
              '(pip install --no-deps -r requirements-bench.txt)')
        return methods

    def neurokit(x, fs):
        clean = nk.ecg_clean(x, sampling_rate=int(fs))
        _, info = nk.ecg_peaks(clean, sampling_rate=int(fs), method='neurokit')
        return np.asarray(info['ECG_R_Peaks'])

    methods['neurokit2 neurokit'] = neurokit
    return methods


def _qrs_score(records, detector, margin_s=0.0, repeat=1):
    """Pooled Se, +P, F1 (150 ms) and CPU s per hour of signal of
    detector(signal, fs) over [(signal, fs, reference)]; beats within
    margin_s of either end are not scored (a synthetic QRS cut by the end)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        best, dets = best_cpu(lambda: [np.asarray(detector(x, fs), dtype=np.int64)
                                       for x, fs, _ in records], repeat)
    tp = fn = fp = 0
    for (x, fs, ref), det in zip(records, dets, strict=True):
        m0, n = int(margin_s * fs), len(x)
        m = qrs.match_beats(ref[(ref >= m0) & (ref < n - m0)], det[(det >= m0) & (det < n - m0)],
                            fs)
        tp, fn, fp = tp + m['tp'], fn + m['fn'], fp + m['fp']
    hours = sum(len(x) / fs for x, fs, _ in records) / 3600
    return {'se': tp / max(tp + fn, 1), 'ppv': tp / max(tp + fp, 1),
            'f1': 2 * tp / max(2 * tp + fn + fp, 1), 'fn': fn, 'fp': fp,
            's_per_hour': best / hours}


def _qrs_row(set_name, label, m):
    print(md_row(set_name, label, f"{100 * m['se']:.2f}", f"{100 * m['ppv']:.2f}",
                 f"{100 * m['f1']:.2f}", f"{m['s_per_hour']:.2f}"), flush=True)


def run(args):
    """QRS detection: ours against biosppy's Hamilton (+ correct_rpeaks), wfdb
    XQRS and neurokit2's 'neurokit' method (after ecg_clean), same records,
    same run.

    Real sets (when ../shared/data is present), scored like
    `QRSDetectorOffline.py --dataset`: whole records, 150 ms window, beats
    pooled over the set. CPSC2019 shared half (lead 0), CPSC2021 shared half
    (lead 0, lead 1, and ours with both leads fused), MIT-BIH 100 (MLII).
    Synthetic: 40 ten-second 12-lead records (seed 7) at noise
    x1, x2 and x4 (synthetic.py --noise-scale), every detector on lead II,
    and ours fused over the 12 leads (what expert_features.py uses) against
    our best single lead (the lead of highest F1 over the set); beats within
    100 ms of the ends are not scored. Speed: CPU seconds per hour of signal
    (best of 2), and ours on one hour of 500 Hz signal (MIT-BIH 100 resampled
    to 500 Hz, twice over). --quick: 10 synthetic records, x1 and x4.
    """
    methods = _qrs_detectors()
    out = {}
    print(md_head('set', 'detector', 'Se %', '+P %', 'F1 %', 's per hour', right=4))
    if SHARED.is_dir():
        real = {name: qrs.reference_set(SHARED / name)
                for name in ('cpsc2019', 'cpsc2021', 'mitdb')}
        for name, lead in (('cpsc2019', 0), ('cpsc2021', 0), ('cpsc2021', 1), ('mitdb', 0)):
            records = [(x[:, lead], fs, ref) for _, x, fs, ref, _ in real[name]]
            tag = f'{name} lead {real[name][0][4][lead]}'
            for label, fn in methods.items():
                m = _qrs_score(records, fn, repeat=2)
                _qrs_row(tag, label, m)
                out[f"{name}_{lead}_{label.split()[-1].lower()}_f1"] = round(m['f1'], 4)
        m = _qrs_score([(x, fs, ref) for _, x, fs, ref, _ in real['cpsc2021']],
                       lambda x, fs: qrs.detect_multilead(x, fs)[0], repeat=2)
        _qrs_row('cpsc2021 I+II', 'ours, fused', m)
        out['cpsc2021_fused_f1'] = round(m['f1'], 4)
    else:
        print(f'{SHARED} is absent: real records skipped')

    n_rec, noises = (10, (1.0, 4.0)) if args.quick else (40, (1.0, 2.0, 4.0))
    for noise in noises:
        recs = [synthetic.make_record(7, i, duration=10, noise_scale=noise) for i in range(n_rec)]
        sigs = [(r['signal'].astype(np.float64), float(r['fs']), np.asarray(r['beats']))
                for r in recs]
        tag = f'synthetic x{noise:g} lead II'
        for label, fn in methods.items():
            _qrs_row(tag, label, _qrs_score([(x[:, 1], fs, ref) for x, fs, ref in sigs], fn,
                                            margin_s=0.1))
        per_lead = [_qrs_score([(x[:, k], fs, ref) for x, fs, ref in sigs], qrs.detect,
                               margin_s=0.1) for k in range(12)]
        k = int(np.argmax([m['f1'] for m in per_lead]))
        _qrs_row(f'synthetic x{noise:g} {LEADS[k]}', 'ours, best single lead',
                 per_lead[k])
        fused = _qrs_score(sigs, lambda x, fs: qrs.detect_multilead(x, fs)[0], margin_s=0.1)
        _qrs_row(f'synthetic x{noise:g} 12 leads', 'ours, fused', fused)
        out[f'synthetic_x{noise:g}_fused_f1'] = round(fused['f1'], 4)
        out[f'synthetic_x{noise:g}_best_lead_f1'] = round(per_lead[k]['f1'], 4)

    if SHARED.is_dir():
        rec = wfdb.rdrecord(str(SHARED / 'mitdb' / '100'))
        hour = np.tile(resample_poly(rec.p_signal[:, 0], 25, 18), 2)   # 360 -> 500 Hz, 1 h
        t, _ = best_cpu(lambda: qrs.detect(hour, 500.0), 2)
        print(f'ours on {len(hour) / 500 / 3600:.2f} h of one lead at 500 Hz: {t:.2f} s of CPU '
              f'(target <= 0.5 s per hour)')
        out['ours_s_per_hour_500hz'] = round(t / (len(hour) / 500 / 3600), 3)
    return out
