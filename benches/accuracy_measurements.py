"""Accuracy, `python bench.py --only measurements`: measure.py's global PR,
QRS and QT against the synthetic truth and the carts' own values, judged by
IEC 60601-2-25's tolerances, beside neurokit2's delineation methods on lead
II; the time per record beside them."""
import time
import warnings
from pathlib import Path

import numpy as np

import measure
import synthetic
from benches.common import SHARED
from records import LEADS, RecordError, read_record
from records.measurements import MEASUREMENTS

_MEAS_IEC = {'pr_ms': (10, 10), 'qrs_ms': (10, 10), 'qt_ms': (25, 30)}   # |mean|, SD (ms)
_MEAS_KEYS = tuple(_MEAS_IEC)   # the intervals IEC 60601-2-25 sets tolerances for


def _meas_neurokit(sig, fs, leads, method):
    """neurokit2's delineation of lead II (ecg_clean, ecg_peaks, then
    ecg_delineate(method)), median over beats -> {pr_ms, qrs_ms, qt_ms}
    (None where the method gives no such wave boundary). Raises nothing."""
    import neurokit2 as nk  # optional (requirements-bench.txt): run() checks for it
    out = dict.fromkeys(_MEAS_KEYS)
    if 'II' not in leads:
        return out
    x = np.asarray(sig[leads.index('II')], dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            clean = nk.ecg_clean(x, sampling_rate=int(fs))
            _, info = nk.ecg_peaks(clean, sampling_rate=int(fs))
            _, waves = nk.ecg_delineate(clean, info['ECG_R_Peaks'], sampling_rate=int(fs),
                                        method=method)
    except Exception:   # noqa: BLE001 -- a method that fails on a record gives nothing
        return out

    def med(a, b):
        if a not in waves or b not in waves:
            return None
        # pair each later boundary with the nearest earlier one (the methods
        # may return lists of different lengths)
        ea = np.asarray(waves[a], float)
        ea = ea[np.isfinite(ea)]
        d = []
        for t in np.asarray(waves[b], float):
            before = ea[(ea < t) & (ea > t - 0.6 * fs)]
            if np.isfinite(t) and len(before):
                d.append(t - before.max())
        d = np.array(d)
        return float(np.median(d) * 1000 / fs) if len(d) else None
    out['pr_ms'] = med('ECG_P_Onsets', 'ECG_R_Onsets')
    out['qrs_ms'] = med('ECG_R_Onsets', 'ECG_R_Offsets')
    out['qt_ms'] = med('ECG_R_Onsets', 'ECG_T_Offsets')
    return out


def _meas_stats(pairs):
    """[(ours or None, reference)] -> (mean, SD, n) of the differences."""
    d = np.array([a - b for a, b in pairs if a is not None and b is not None
                  and np.isfinite(b)])
    return (float(d.mean()), float(d.std()), len(d)) if len(d) else (float('nan'),) * 2 + (0,)


def _meas_synthetic(n, nk_methods):
    """Ours and neurokit2's methods against the generator's truth on n 10-s
    records (IAVB, LBBB, RBBB, AF, PVC, SNR x noise 0/0.5/1/2) -> rows."""
    classes = [['SNR'], ['IAVB'], ['LBBB'], ['RBBB'], ['AF'], ['PVC']]
    noise = [0.0, 0.5, 1.0, 2.0]
    got = {'ours': []} | {m: [] for m in nk_methods}
    secs = {m: 0.0 for m in got}
    truths = []
    for i in range(n):
        rec = synthetic.make_record(11, i, duration=10, classes=classes[i % 6],
                                    noise_scale=noise[(i // 6) % 4], borderline=0.2)
        sig = rec['signal'].T
        truths.append(rec['truth'])
        t0 = time.perf_counter()
        got['ours'].append(measure.measure(sig, 500, LEADS))
        secs['ours'] += time.perf_counter() - t0
        for m in nk_methods:
            t0 = time.perf_counter()
            got[m].append(_meas_neurokit(sig, 500, LEADS, m))
            secs[m] += time.perf_counter() - t0
    rows = {}
    for m, res in got.items():
        for k in _MEAS_KEYS:
            defined = [(r[k], t[k]) for r, t in zip(res, truths) if t[k] == t[k]]
            rows[(m, k)] = _meas_stats(defined) + (len(defined),)
        af = [r['pr_ms'] for r, t in zip(res, truths) if t['rhythm'] == 'af']
        rows[(m, 'af_pr_given')] = sum(v is not None for v in af), len(af)
        rows[(m, 'ms_per_record')] = 1000 * secs[m] / n
    return rows


def _meas_cart_files(root):
    """Records under root that carry the cart's measurements
    (records.read_record -> rec.device_measurements, from the formats
    readers) -> [(name, record)]."""
    out = []
    for p in sorted(Path(root).rglob('*')):
        if not p.is_file() or p.suffix.lower() in ('.md', '.ann', '.atr', '.dat', '.mat'):
            continue
        try:
            rec = read_record(p)
        except (RecordError, ValueError, OSError):
            continue
        if rec.device_measurements:
            out.append((p.name, rec))
    return out


def run(args):
    """measure.py (IEC 60601-2-25 tolerances: PR and QRS mean difference
    within +/-10 ms and SD <= 10 ms, QT within +/-25 and <= 30) against the
    synthetic truth and against the carts' values on every file of
    ../shared/data/formats that carries them, beside neurokit2's
    delineation methods on lead II; time per 10-s 12-lead record."""
    try:
        import neurokit2  # noqa: F401
        # ('peak' gives no QRS onset or offset, so no interval)
        nk_methods = ['dwt', 'cwt', 'prominence']
    except ImportError:
        print('neurokit2 is not installed: its rows are skipped '
              '(pip install --no-deps -r requirements-bench.txt)')
        nk_methods = []
    n = 24 if args.quick else 240
    rows = _meas_synthetic(n, nk_methods)
    print(f'synthetic truth, {n} records (6 classes x 4 noise levels), difference '
          'mean +/- SD ms (records measured / with a defined figure); IEC limits '
          + ', '.join(f'{k} {a}/{b}' for k, (a, b) in _MEAS_IEC.items()))
    out = {}
    for m in ['ours'] + [f for f in nk_methods]:
        cells = []
        for k in _MEAS_KEYS:
            mu, sd, cnt, tot = rows[(m, k)]
            ok = abs(mu) <= _MEAS_IEC[k][0] and sd <= _MEAS_IEC[k][1]
            cells.append(f'{k} {mu:+6.1f} +/- {sd:5.1f} ({cnt}/{tot}){" ok" if ok else "   "}')
            out[f'{m}_{k}_mean'], out[f'{m}_{k}_sd'] = round(mu, 1), round(sd, 1)
        given, n_af = rows[(m, 'af_pr_given')]
        print(f'  {m:<11}' + '  '.join(cells) + f'  AF with a PR: {given}/{n_af}  '
              f'{rows[(m, "ms_per_record")]:.0f} ms/record')
        out[f'{m}_ms_per_record'] = round(rows[(m, 'ms_per_record')], 1)
    root = SHARED / 'formats'
    files = _meas_cart_files(root)
    if not files:
        print(f'no file under {root} carries the cart\'s measurements '
              '(needs ../shared/data and the formats readers: rec.device_measurements)')
        return out
    keys = [m.key for m in MEASUREMENTS if m.ours and m.cart]   # ours and the cart's alike
    print('against the cart (ours - cart; dwt = neurokit2 DWT on lead II - cart):')
    pairs = {k: [] for k in keys} | {f'dwt_{k}': [] for k in _MEAS_KEYS}
    for name, rec in files:
        cart = rec.device_measurements
        m = measure.measure(rec)
        sig = np.nan_to_num(rec.signal.T)
        dwt = _meas_neurokit(sig, rec.fs, rec.leads, 'dwt') if nk_methods else {}
        cells = []
        for k in keys:
            if k in cart:
                pairs[k].append((m[k], cart[k]))
                ours = '-' if m[k] is None else f'{m[k]:.0f}'
                cells.append(f'{k} {ours}/{cart[k]:.0f}')
            if k in _MEAS_KEYS and k in cart and dwt.get(k) is not None:
                pairs[f'dwt_{k}'].append((dwt[k], cart[k]))
        print(f'  {name[:34]:<34} ' + '  '.join(cells))
    for k, p in pairs.items():
        mu, sd, cnt = _meas_stats(p)
        if cnt:
            print(f'  {k:<12} {mu:+6.1f} +/- {sd:5.1f} over {cnt} files')
            out[f'cart_{k}_mean'], out[f'cart_{k}_sd'] = round(mu, 1), round(sd, 1)
    return out
