"""Accuracy, `python bench.py --only deviations`: the measurable deviations
from the study's code (the README's table), each scored (validation and test
macro AUC / F1) against the study's choice on the same records and seed."""
import contextlib
import io
import warnings

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline

import baselines
import utils
from benches.common import md_head, md_row
from benches.small_runs import HEAD, row, small_runs
from expert_features import extract_dataset
from records import LEADS


def study_thresholds(y_true, y_score):
    """The study's rule (utils.find_optimal_threshold): per class the best of
    100 thresholds np.linspace(0, 1, 100) by F1 of `score > t`."""
    grid = np.linspace(0, 1, 100)
    return np.array([grid[int(np.argmax([f1_score(y_true[:, c], y_score[:, c] > t,
                                                   zero_division=0) for t in grid]))]
                     for c in range(y_true.shape[1])])


def _lr_plain():
    """The study's logistic regression: imputed, not standardised."""
    return make_pipeline(SimpleImputer(strategy='median', keep_empty_features=True),
                         LogisticRegression(max_iter=1000, random_state=42))


def _baseline_rows(data_dir):
    """baselines.py's LR and LGB against the study's variants on small_runs'
    records -> {variant: {test_auc, test_f1}}."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = baselines.load_xy(data_dir, 42, None, jobs=1)
    cols = extract_dataset(data_dir, workers=1).columns
    lead_cols = np.array([c.split('_')[0] in LEADS for c in cols])

    def score(name, make, keep):
        sub = {k: (v[0], v[1][:, keep], v[2]) for k, v in data.items() if k != 'folds'}
        sub['folds'] = data['folds']
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = baselines.OneVsRest(make).fit(sub['train'][1], sub['train'][2])
            vsc, tsc = model.predict_proba(sub['val'][1]), model.predict_proba(sub['test'][1])
        thr = utils.f1_optimal_thresholds(sub['val'][2], vsc)
        m = utils.compute_metrics(sub['test'][2], tsc, thr, n_boot=0).loc['macro']
        return {'test_auc': float(m['auc']), 'test_f1': float(m['f1'])}

    every = np.ones(len(cols), dtype=bool)
    return {'LR, standardised (ours)': score(
                'LR', lambda: baselines.build_baseline('LR', 42), every),
            'LR, raw features (study)': score('LR', _lr_plain, every),
            'LGB, with rhythm features (ours)': score(
                'LGB', lambda: baselines.build_baseline('LGB', 42), every),
            'LGB, lead features only (study)': score(
                'LGB', lambda: baselines.build_baseline('LGB', 42), lead_cols)}


def run(args):
    """The measurable deviations from the study's code (README table), each
    against the study's choice on the same records and seed: the LR schedule
    (small_runs 'constant' vs 'cosine'), the decision thresholds (the
    study's 100-point grid vs exact F1-optimal cut points, on the constant-LR
    model), and in the baselines the standardisation of LR's inputs and the
    rhythm features (not in the study's final feature set)."""
    runs = small_runs(args)
    out = {}
    print(runs['setting'] + ':')
    print(HEAD)
    print(row('constant lr (study)', runs['constant']))
    print(row('cosine lr (ours)', runs['cosine']))
    out['schedule'] = {m: {k: runs[m][k] for k in ('val_auc', 'val_f1', 'test_auc', 'test_f1')}
                       for m in ('constant', 'cosine')}
    vy, vs, ty, ts = runs['constant']['scores']
    f1 = {}
    for name, thr in (('grid', study_thresholds(vy, vs)),
                      ('exact', utils.f1_optimal_thresholds(vy, vs))):
        f1[name] = float(utils.compute_metrics(ty, ts, thr, n_boot=0).loc['macro', 'f1'])
    out['thresholds'] = f1
    print(f"thresholds (constant-lr model, tuned on validation): test macro F1 "
          f"{f1['grid']:.3f} with the study's 100-point grid, {f1['exact']:.3f} with exact "
          f"F1-optimal cut points")

    rows = _baseline_rows(runs['data_dir'])
    out['baselines'] = rows
    print(md_head('baseline variant', 'test macro AUC', 'test macro F1'))
    for name, r in rows.items():
        print(md_row(name, f"{r['test_auc']:.3f}", f"{r['test_f1']:.3f}"))
