"""Speed, `python bench.py --only metrics`: utils.compute_metrics' vectorised
bootstrap against sklearn's metrics recomputed per resample and class."""
import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

import utils
from benches.common import timeit


def run(args):
    """utils.compute_metrics: 1,000 bootstrap resamples, vectorised, vs
    sklearn's precision/recall/F1/AUC recomputed per resample."""
    n, n_boot, n_naive = (200, 100, 10) if args.quick else (700, 1000, 30)
    rng = np.random.default_rng(0)
    y = rng.random((n, len(utils.CLASSES))) < 0.15
    score = np.clip(y * 0.4 + rng.random(y.shape) * 0.8, 0, 1)
    thresholds = np.full(len(utils.CLASSES), 0.5)
    t_ours = timeit(lambda: utils.compute_metrics(y, score, thresholds, n_boot=n_boot), 3)

    def naive(n_resamples):
        for _ in range(n_resamples):
            i = rng.integers(0, n, n)
            for k in range(y.shape[1]):
                if 0 < y[i, k].sum() < n:
                    roc_auc_score(y[i, k], score[i, k])
                pred = utils.decide(score[i, k], thresholds[k])
                for fn in (precision_score, recall_score, f1_score):
                    fn(y[i, k], pred, zero_division=0)
    t_naive = timeit(lambda: naive(n_naive), 1) * n_boot / n_naive
    print(f'{n} records x 9 classes, {n_boot} resamples: compute_metrics {t_ours:.2f} s; '
          f'sklearn per resample and class {t_naive:.0f} s (measured on {n_naive}, '
          f'extrapolated): x{t_naive / t_ours:.0f}')
    return {'records': n, 'resamples': n_boot, 'ours_s': t_ours, 'naive_s': t_naive,
            'speedup': t_naive / t_ours}
