"""Speed, `python bench.py --only features`: expert_features.py against the
straightforward per-lead pandas + pywt + biosppy path on the same records."""
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pywt
from biosppy.signals import ecg

import expert_features as ef
import synthetic
from benches.common import timeit
from records import quantise


def _naive_features(x, fs=500):
    """The study-style path on one record (samples x 12 leads, mV): per lead,
    pandas describe + var, the same per pywt.wavedec band with its entropy,
    and the rhythm from hamilton_segmenter on the lead with the most beats."""
    feats = []
    for lead in range(x.shape[1]):
        s = pd.Series(x[:, lead])
        d = s.describe(percentiles=[.05, .25, .5, .75, .95])
        feats += [d['5%'], d['25%'], d['50%'], d['75%'], d['95%'], d['mean'], d['std'],
                  s.var()]
        for c in pywt.wavedec(x[:, lead], 'db10', level=4):
            cs = pd.Series(c)
            dc = cs.describe(percentiles=[.05, .25, .5, .75, .95])
            p = c ** 2 / np.sum(c ** 2)
            feats += [float(-np.sum(p * np.log(p + 1e-300))), dc['5%'], dc['25%'],
                      dc['50%'], dc['75%'], dc['95%'], dc['mean'], dc['std'], cs.var()]
    rr_sets = []
    for lead in range(x.shape[1]):
        r, = ecg.hamilton_segmenter(x[:, lead], fs)
        rr_sets.append(pd.Series(np.diff(r) / fs))
    rr = max(rr_sets, key=len)
    feats += [len(rr) + 1, 60 / rr.mean(), rr.mean(), rr.std(), rr.min(), rr.max(),
              np.sqrt((rr.diff() ** 2).mean()), (rr.diff().abs() > 0.05).mean()]
    return feats


def run(args):
    """expert_features.py vs straightforward per-lead pandas/biosppy (>= 3x).

    The same records (synthetic, CPSC-like durations, cropped to the last 30 s
    and quantised as in the cache) through (a) the study-style path: per lead,
    pandas describe + var, pywt.wavedec per lead and pandas describe +
    entropy per band, biosppy hamilton_segmenter per lead for the rhythm; and
    (b) expert_features.record_features (vectorised over leads, three-lead
    rhythm). Ratios: both single-process; and extract_dataset with 2 worker
    processes (cache to features.csv included) against the single-process
    naive path.
    """
    n = 10 if args.quick else 40
    records = [quantise(synthetic.make_record(12, i)['signal'])[-15000:] for i in range(n)]
    signals = [r.astype(np.float32) / 1000.0 for r in records]

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        _naive_features(signals[0])
        ef.record_features(signals[0])
        t_naive = timeit(lambda: [_naive_features(x) for x in signals], 2)
        t_ours = timeit(lambda: [ef.record_features(x) for x in signals], 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / 'cache').mkdir()
        lengths = [len(r) for r in records]
        np.save(root / 'cache' / 'signals.npy', np.concatenate(records))
        pd.DataFrame({'patient_id': [f'B{i:04d}' for i in range(n)],
                      'offset': np.r_[0, np.cumsum(lengths)[:-1]], 'length': lengths}
                     ).to_csv(root / 'cache' / 'index.csv', index=False)
        t_pool = timeit(lambda: ef.extract_dataset(root, workers=2, force=True, quiet=True), 2)
    print(f'{n} records x 30 s, 12 leads ({len(ef.feature_names())} features; load average '
          f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    print(f'  naive per-lead pandas/pywt/hamilton, 1 process: {t_naive:.2f} s '
          f'({1e3 * t_naive / n:.0f} ms/record)')
    print(f'  expert_features.record_features, 1 process:    {t_ours:.2f} s '
          f'({1e3 * t_ours / n:.0f} ms/record)  x{t_naive / t_ours:.1f}')
    print(f'  extract_dataset, 2 processes (+ CSV):          {t_pool:.2f} s '
          f'({1e3 * t_pool / n:.0f} ms/record)  x{t_naive / t_pool:.1f} vs naive 1 process')
    return {'features_ms_per_record': 1e3 * t_ours / n,
            'naive_ms_per_record': 1e3 * t_naive / n,
            'speedup_single_process': t_naive / t_ours,
            'speedup_two_processes_vs_naive_single': t_naive / t_pool}
