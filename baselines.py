"""Classical baselines on the expert features: LR, RF, LightGBM, MLP.

    python baselines.py --data-dir data/CPSC --classifier all --seed 42
    python baselines.py --data-dir data/CPSC --classifier LGB --test-fold 3
    python baselines.py --data-dir data/SYNTH --classifier LR,LGB --quick   # smoke test

The folds are the ResNet's (utils.split_data): fit on the eight training
folds, tune one F1-optimal threshold per class on the validation fold, score
the test fold once. Features come from expert_features.py (computed and
cached in DATA_DIR/features/ on the first run). Missing values (e.g. rhythm
features of records with too few beats) are imputed with the training
median; LR and MLP also see standardised features. LR, RF and LightGBM are
one-vs-rest (one binary model per class, as in the study); the MLP is one
multi-label network. Every source of randomness is seeded (random_state,
LightGBM deterministic=True with a fixed thread count), so the same command
prints the same numbers.

Writes results/baselines/<classifier>/<run>/ (run = utils.run_name(data_dir,
'all', seed, test_fold), e.g. CPSC-all-s42-f10): metrics.csv (9 classes +
macro with 95 % bootstrap CIs, as predict.py), thresholds.json,
predictions.csv (patient_id, score_<class>, true_<class>, pred_<class>),
folds.json (the fold manifest; when models/<run>/best.pt exists and was
trained on other folds, the run is refused: see --trust-folds). Prints the
per-class table of each classifier and one comparison line each.
The shared flags of main.py are accepted so the same command line works;
--leads must be 'all' and --device/--use-gpu are ignored (sklearn/LightGBM on
the CPU).
"""
import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import records
import utils
from expert_features import extract_dataset
from folds import add_trust_folds_arg, check_manifest, current_manifest, write_results_manifest
from records import parse_leads
from records.cache import load_labels
from utils import CLASSES

CLASSIFIERS = ['LR', 'RF', 'LGB', 'MLP']


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    utils.add_common_args(parser)
    parser.add_argument('--classifier', default='all', metavar='NAMES',
                        help=f"{', '.join(CLASSIFIERS)}, a comma-separated list of them, "
                             "or 'all' (default: all)")
    parser.add_argument('-j', '--jobs', default=None, type=int, metavar='N',
                        help='RF threads and feature-extraction processes; results do '
                             'not depend on it (LightGBM always uses 1) (default: all cores)')
    parser.add_argument('--n-boot', default=1000, type=int, metavar='N',
                        help='bootstrap resamples for the 95%% CIs (default: 1000)')
    parser.add_argument('--force-features', action='store_true',
                        help='recompute DATA_DIR/features/features.csv')
    add_trust_folds_arg(parser)
    parser.add_argument('--quick', action='store_true',
                        help="small models (30 trees, 20 rounds, 50 epochs) to check the "
                             "pipeline runs; not the study's numbers")
    return parser


def build_baseline(name, seed, jobs=1, quick=False):
    """An unfitted sklearn estimator for one binary class (LR, RF, LGB) or
    for all classes at once (MLP). Hyperparameters are the study's; quick
    shrinks the models (30 trees, 20 boosting rounds, 50 MLP epochs) for
    smoke tests."""
    impute = SimpleImputer(strategy='median', keep_empty_features=True)
    if name == 'LR':
        return make_pipeline(impute, StandardScaler(),
                             LogisticRegression(max_iter=200 if quick else 1000,
                                                random_state=seed))
    if name == 'RF':
        return make_pipeline(impute, RandomForestClassifier(
            n_estimators=30 if quick else 300, max_depth=10, random_state=seed, n_jobs=jobs))
    if name == 'LGB':
        # deterministic + force_col_wise + one thread on every machine:
        # bit-identical results from run to run (LightGBM docs, "deterministic"
        # holds for a fixed num_threads); one thread also avoids OpenMP
        # spinning on a busy machine, which made 2 threads slower here.
        return make_pipeline(impute, LGBMClassifier(
            n_estimators=20 if quick else 100, random_state=seed, deterministic=True,
            force_col_wise=True,
            num_threads=1, verbose=-1))
    if name == 'MLP':
        return make_pipeline(impute, StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(100, 50), max_iter=50 if quick else 500, random_state=seed))
    raise ValueError(f'unknown classifier {name!r}; use one of {CLASSIFIERS}')


class OneVsRest:
    """One binary model per class; a class with a single label value in the
    training folds (e.g. no positives) gets a constant score equal to that
    value instead of a model, so it never stops a run (its AUC is NaN)."""

    def __init__(self, make):
        self.make = make

    def fit(self, X, Y):
        self.models = []
        for c in range(Y.shape[1]):
            y = Y[:, c]
            if y.min() == y.max():
                self.models.append(float(y[0]))
            else:
                self.models.append(self.make().fit(X, y))
        return self

    def predict_proba(self, X):
        return np.column_stack([np.full(len(X), m) if isinstance(m, float)
                                else m.predict_proba(X)[:, 1] for m in self.models])


class MultiLabel:
    """The MLP fits all classes at once; a constant column stays constant."""

    def __init__(self, make):
        self.make = make

    def fit(self, X, Y):
        self.const = {c: float(Y[0, c]) for c in range(Y.shape[1])
                      if Y[:, c].min() == Y[:, c].max()}
        self.model = self.make().fit(X, Y)
        return self

    def predict_proba(self, X):
        scores = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        for c, v in self.const.items():
            scores[:, c] = v
        return scores


def load_xy(data_dir, seed, test_fold, jobs=None, force=False):
    """-> dict split -> (patient_ids, X, Y) for the train/val/test folds."""
    labels = load_labels(data_dir)
    feats = extract_dataset(data_dir, workers=jobs, force=force)
    missing = sorted(set(labels['patient_id']) - set(feats.index))
    if missing:
        raise SystemExit(f'error: {len(missing)} records of {data_dir}/labels.csv have no '
                         f'features (first: {missing[0]}); rerun python expert_features.py '
                         f'--data-dir {data_dir} --force')
    train_f, val_f, test_f = utils.split_data(seed, test_fold)
    out = {}
    for split, folds in (('train', train_f), ('val', val_f), ('test', test_f)):
        rows = labels[labels['fold'].isin(folds)]
        X = feats.loc[rows['patient_id']].to_numpy(dtype=np.float64)
        out[split] = (rows['patient_id'].tolist(), X, rows[CLASSES].to_numpy(dtype=int))
        if len(rows) == 0:
            raise SystemExit(f'error: {data_dir}/labels.csv has no records in {split} '
                             f'folds {folds}; rerun python preprocess.py --data-dir {data_dir}')
    out['folds'] = {'train': train_f, 'val': val_f, 'test': test_f}
    return out


def fit_and_score(name, data, seed, jobs=1, quick=False):
    """Fit on train, thresholds on val, scores on test -> (val_scores, test_scores,
    thresholds)."""
    _, X_tr, Y_tr = data['train']
    wrapper = MultiLabel if name == 'MLP' else OneVsRest
    model = wrapper(lambda: build_baseline(name, seed, jobs, quick))
    with warnings.catch_warnings():
        # MLP (and LR with --quick) may stop at max_iter before converging;
        # the study's settings are kept, so the ConvergenceWarning is noise.
        warnings.filterwarnings('ignore', message='.*Stochastic Optimizer.*')
        warnings.filterwarnings('ignore', message='.*failed to converge.*')
        model.fit(X_tr, Y_tr)
    val_s = model.predict_proba(data['val'][1])
    test_s = model.predict_proba(data['test'][1])
    thresholds = utils.f1_optimal_thresholds(data['val'][2], val_s)
    return val_s, test_s, thresholds


def write_results(out, name, run, data, test_s, thresholds, metrics, seed):
    ids, _, test_y = data['test']
    utils.atomic_to_csv(metrics, out / 'metrics.csv', index_label='class')
    utils.write_thresholds(out / 'thresholds.json', thresholds, CLASSES,
                          {'split': 'validation', 'folds': data['folds']['val'], 'metric': 'F1',
                           'model': name},
                          classifier=name, seed=seed, run=run, folds=data['folds'],
                          commit=utils.git_commit())
    preds = pd.DataFrame({'patient_id': ids})
    test_pred = utils.decide(test_s, thresholds).astype(int)
    for prefix, values in (('score', test_s), ('true', test_y.astype(int)), ('pred', test_pred)):
        for c, cls in enumerate(CLASSES):
            preds[f'{prefix}_{cls}'] = values[:, c]
    utils.atomic_to_csv(preds, out / 'predictions.csv', index=False, float_format='%.6f')


def check_resnet_folds(args, run):
    """The baselines fit on the current folds, so they cannot leak by
    themselves; but they are reported beside the ResNet of the same run
    (pipeline.py), which must then have been trained on these same folds.
    Refuses when models/<run>/best.pt exists with another fold manifest
    (unless --trust-folds); returns the current manifest."""
    best = utils.run_dirs(run, args.root)['models'] / 'best.pt'
    if not best.is_file():
        return current_manifest(args.data_dir)
    # runs imports torch: loaded only when a ResNet of this run exists, so the
    # baselines alone never pay for it.
    import runs
    ckpt = runs.read_checkpoint(best)
    trained = ckpt.get('fold_manifest') if isinstance(ckpt, dict) else None
    if trained is None and not args.trust_folds:
        return current_manifest(args.data_dir)  # nothing to compare: the report says so
    return check_manifest(trained, args.data_dir, best, args.trust_folds,
                          ckpt.get('folds'), 'baselines.py')


def main():
    args = get_args_parser().parse_args()
    if parse_leads(args.leads) != records.LEADS:
        raise SystemExit('error: the baselines use the features of all 12 leads; '
                         'drop --leads (only --leads all is supported)')
    names = (CLASSIFIERS if args.classifier.lower() == 'all'
             else [c.strip().upper() for c in args.classifier.split(',') if c.strip()])
    unknown = [c for c in names if c not in CLASSIFIERS]
    if unknown or not names:
        raise SystemExit(f'error: unknown --classifier {args.classifier!r}; use '
                         f"{', '.join(CLASSIFIERS)}, a comma-separated list or 'all'")
    jobs = args.jobs or os.cpu_count() or 1
    run = utils.run_name(args.data_dir, 'all', args.seed, args.test_fold)
    print(f'baselines {run}: seed {args.seed}, commit {utils.git_commit()}')
    manifest = check_resnet_folds(args, run)
    data = load_xy(args.data_dir, args.seed, args.test_fold, jobs, args.force_features)
    print(f"folds train {data['folds']['train']} ({len(data['train'][0])} records), "
          f"val {data['folds']['val']} ({len(data['val'][0])}), "
          f"test {data['folds']['test']} ({len(data['test'][0])}); "
          f"{data['train'][1].shape[1]} features")
    summary = []
    for name in names:
        t0 = time.perf_counter()
        _, test_s, thresholds = fit_and_score(name, data, args.seed, jobs, args.quick)
        metrics = utils.compute_metrics(data['test'][2], test_s, thresholds,
                                        n_boot=args.n_boot, seed=args.seed)
        out = utils.run_dirs(run, args.root)['results'].parent / 'baselines' / name / run
        write_results(out, name, run, data, test_s, thresholds, metrics, args.seed)
        write_results_manifest(out, manifest, manifest, None, data['folds'])
        print(f'\n{name} ({time.perf_counter() - t0:.1f} s) -> {out}')
        print(utils.format_metrics_table(metrics), flush=True)
        summary.append((name, metrics.loc['macro', 'f1'], metrics.loc['macro', 'auc']))
    print()
    for name, f1, auc in summary:
        print(f'{name:4s} {run}: macro F1 {f1:.3f}  macro AUC {auc:.3f}')


if __name__ == '__main__':
    main()
