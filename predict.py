"""Evaluate a trained run on its test fold, or diagnose new records.

Thresholds are tuned per class on the validation fold (F1-optimal) and then
applied unchanged to the test fold; the test fold never tunes anything.

    # the run of main.py with the same flags (models/<run>/best.pt)
    python predict.py --data-dir data/CPSC --leads all --seed 42
    python predict.py --data-dir data/CPSC --leads all --test-fold 3
    # all ten cross-validation folds, then mean ± SD across folds
    python predict.py --data-dir data/CPSC --cv
    # new records (any sampling rate, length and lead set; .hea/.mat/.dat or CPSC .mat)
    python predict.py --model-path models/CPSC-all-s42-f10/best.pt \\
        --records 'new/*.hea' --out preds.csv
    # a Holter: every 30-s window of it, one row each with its start time
    python predict.py --model-path models/CPSC-II-s42-f10/best.pt \\
        --records ../shared/data/mitdb/100 --segments --out holter.csv

Writes results/<run>/: metrics.csv (9 classes + macro, 95% bootstrap CIs),
thresholds.json, folds.json (the fold manifest the model was trained and
scored on; a test fold is refused when it differs from labels.csv, see
folds.py and --trust-folds), predictions.csv (patient_id, score_<class>, true_<class>,
pred_<class>), confusion.png (normalised 2x2 matrix per class), roc.png; with
--cv also results/<database>-<leads>-s<seed>-cv/summary.csv. Prints the
paper's per-class table.

With --records, records are read by records.py (only the window scored is
read, so a 24-h Holter costs what 30 s cost): the model's leads are taken as
recorded, or derived from two other limb leads; a record that cannot give
them gets one line naming the missing leads and is skipped. The CSV has
record, path, fs, duration_s, [start_s, end_s with --segments], quality
('ok' or records.py's flags, each also one warning line), derived (leads
computed, not recorded), score_<class>, diagnoses, and (without --segments)
the global measurements of the last 30 s (measure.py: hr, pr_ms, qrs_ms,
qt_ms, qtc_bazett_ms, qtc_fridericia_ms, p_axis, qrs_axis, t_axis; empty
where the record cannot support the figure) with the cart's own values
beside them (device_hr, device_pr_ms, ...) when the file carries them.
"""
import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import utils
from folds import add_trust_folds_arg, check_manifest, write_results_manifest
from utils import CLASSES

METRICS = ['precision', 'recall', 'f1', 'auc', 'accuracy']


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    utils.add_common_args(parser)
    # None = 'all' for a fold evaluation, the checkpoint's own leads for --records
    parser.set_defaults(leads=None)
    parser.add_argument('--model-path', default=None, metavar='PT',
                        help='checkpoint (default: models/<run>/best.pt of these flags)')
    parser.add_argument('--cv', action='store_true',
                        help='evaluate test folds 1..10 and summarise mean ± SD')
    parser.add_argument('--records', nargs='+', default=None, metavar='GLOB',
                        help='diagnose these records (.hea/.mat paths, globs or folders) '
                             'instead of evaluating a fold')
    parser.add_argument('--out', default=None, metavar='CSV',
                        help='with --records: CSV of scores and diagnoses '
                             '(default: predictions_<run>.csv)')
    parser.add_argument('--thresholds', default=None, metavar='JSON',
                        help="with --records: per-class thresholds (default: the "
                             "checkpoint run's results/<run>/thresholds.json, else 0.5)")
    parser.add_argument('--segments', action='store_true',
                        help='with --records: score every consecutive window (30 s) of '
                             'each record, one row each with start_s/end_s (Holter; the last '
                             'window ends at the end); only one batch of windows is in '
                             'memory (default: the last window only)')
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first unreadable record (default: skip it)')
    parser.add_argument('-b', '--batch-size', default=32, type=int, metavar='N',
                        help='records per forward pass (default: 32)')
    parser.add_argument('-j', '--workers', default=0, type=int, metavar='N',
                        help='data loader processes (default: 0)')
    parser.add_argument('--precision', default='auto', choices=['auto', 'bf16', 'fp32'],
                        help='autocast precision, as in main.py (default: auto)')
    parser.add_argument('--n-boot', default=1000, type=int, metavar='N',
                        help='bootstrap resamples for the 95%% CIs (default: 1000)')
    parser.add_argument('--root', default='.', metavar='DIR',
                        help='folder holding models/ and results/ (default: .)')
    add_trust_folds_arg(parser)
    return parser


# --------------------------------------------------------------------------
# Figures.

def plot_confusion(y_true, y_pred, path):
    """3x3 grid of 2x2 confusion matrices, each row normalised by the true count."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 3, figsize=(9, 9))
    for c, ax in enumerate(axes.flat):
        t, p = y_true[:, c].astype(bool), y_pred[:, c].astype(bool)
        cm = np.array([[(~t & ~p).sum(), (~t & p).sum()], [(t & ~p).sum(), (t & p).sum()]],
                      dtype=float)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(cm, cmap='Blues', vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f'{cm[i, j]:.2f}', ha='center', va='center',
                        color='white' if cm[i, j] > 0.5 else 'black')
        ax.set_title(CLASSES[c])
        ax.set_xticks([0, 1], ['pred 0', 'pred 1'])
        ax.set_yticks([0, 1], ['true 0', 'true 1'])
    fig.tight_layout()
    with utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


def plot_roc(y_true, y_score, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve
    fig, ax = plt.subplots(figsize=(6, 6))
    for c, name in enumerate(CLASSES):
        if 0 < y_true[:, c].sum() < len(y_true):
            fpr, tpr, _ = roc_curve(y_true[:, c], y_score[:, c])
            auc = roc_auc_score(y_true[:, c], y_score[:, c])
            ax.plot(fpr, tpr, label=f'{name} (AUC {auc:.3f})')
    ax.plot([0, 1], [0, 1], 'k--', lw=0.8)
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate')
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    with utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------
# Fold evaluation.

def score_folds(model, ckpt, args, folds, device, precision):
    """-> (patient_ids, labels (n, 9), scores (n, 9)) on these folds, full window."""
    import torch
    from torch.utils.data import DataLoader

    from dataset import ECGDataset, collate
    from main import evaluate
    ds = ECGDataset(args.data_dir, folds, leads=ckpt['leads'],
                    window=int(ckpt.get('window', utils.WINDOW)), augment=False, trim=False)
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=collate)
    if ds.left_out:
        print(f"folds {list(folds)}: left out {ds.left_out} records that neither hold nor can "
              f"derive leads {','.join(ckpt['leads'])} (labels.csv leads)")
    out = evaluate(model, loader, torch.nn.BCEWithLogitsLoss(), device, precision)
    return list(ds.patient_ids), out['labels'], out['scores']


def evaluate_run(args, test_fold):
    """Evaluate one run's best.pt on its test fold; write results/<run>/."""
    from resnet import load_checkpoint
    leads = utils.parse_leads(args.leads or 'all')
    name = utils.run_name(args.data_dir, leads, args.seed, test_fold)
    dirs = utils.run_dirs(name, args.root)
    model_path = Path(args.model_path) if args.model_path else dirs['models'] / 'best.pt'
    device = utils.select_device(args.device, args.use_gpu)
    precision = utils.select_precision(device, args.precision)
    model, ckpt = load_checkpoint(model_path, leads=leads, map_location=device)
    _, val_f, test_f = utils.split_data(args.seed, test_fold)
    trained = ckpt.get('folds')
    if trained and (list(trained['val']) != val_f or list(trained['test']) != test_f):
        raise SystemExit(f"error: {model_path} was trained with val fold {trained['val']} "
                         f"and test fold {trained['test']}, not {val_f}/{test_f}; pass "
                         f'the same --seed/--test-fold as to main.py')
    manifest = check_manifest(ckpt.get('fold_manifest'), args.data_dir, model_path,
                              args.trust_folds, trained, 'predict.py')

    _, val_y, val_s = score_folds(model, ckpt, args, val_f, device, precision)
    thresholds = utils.f1_optimal_thresholds(val_y, val_s)
    ids, test_y, test_s = score_folds(model, ckpt, args, test_f, device, precision)
    metrics = utils.compute_metrics(test_y, test_s, thresholds, n_boot=args.n_boot,
                                    seed=args.seed)
    test_pred = test_s >= thresholds[None, :]

    out = dirs['results']
    utils.atomic_to_csv(metrics, out / 'metrics.csv', index_label='class')
    utils.atomic_write_json({'thresholds': dict(zip(CLASSES, map(float, thresholds))),
                             'tuned_on': f'validation fold {val_f}', 'model': str(model_path),
                             'run': name, 'leads': leads}, out / 'thresholds.json')
    write_results_manifest(out, manifest, ckpt.get('fold_manifest'), model_path,
                           {'val': val_f, 'test': test_f})
    preds = pd.DataFrame({'patient_id': ids})
    for c, cls in enumerate(CLASSES):
        preds[f'score_{cls}'] = test_s[:, c]
    for c, cls in enumerate(CLASSES):
        preds[f'true_{cls}'] = test_y[:, c].astype(int)
    for c, cls in enumerate(CLASSES):
        preds[f'pred_{cls}'] = test_pred[:, c].astype(int)
    utils.atomic_to_csv(preds, out / 'predictions.csv', index=False, float_format='%.6f')
    plot_confusion(test_y, test_pred, out / 'confusion.png')
    plot_roc(test_y, test_s, out / 'roc.png')
    print(f'{name}: test fold {test_f}, {len(ids)} records, thresholds tuned on '
          f'validation fold {val_f} ({len(val_y)} records)')
    print(utils.format_metrics_table(metrics), flush=True)
    print(f'wrote {out}/metrics.csv, thresholds.json, folds.json, predictions.csv, '
          'confusion.png, roc.png')
    return metrics


def summarise_cv(args):
    """Mean ± SD across the 10 folds' metrics.csv -> results/<db>-<leads>-s<seed>-cv/."""
    leads = utils.parse_leads(args.leads or 'all')
    frames = []
    for k in range(1, utils.NFOLDS + 1):
        path = utils.run_dirs(utils.run_name(args.data_dir, leads, args.seed, k),
                              args.root)['results'] / 'metrics.csv'
        if not path.is_file():
            raise SystemExit(f'error: no {path}; run predict.py --cv after main.py --cv')
        frames.append(pd.read_csv(path, index_col='class')[METRICS])
    stack = np.stack([f.loc[CLASSES + ['macro']].to_numpy(float) for f in frames])
    with np.errstate(all='ignore'):
        mean, sd = np.nanmean(stack, axis=0), np.nanstd(stack, axis=0, ddof=1)
    summary = pd.DataFrame(index=pd.Index(CLASSES + ['macro'], name='class'))
    for j, m in enumerate(METRICS):
        summary[f'{m}_mean'], summary[f'{m}_sd'] = mean[:, j], sd[:, j]
    name = f'{utils.database_name(args.data_dir)}-{utils.leads_tag(leads)}-s{args.seed}-cv'
    out = Path(args.root) / 'results' / name / 'summary.csv'
    utils.atomic_to_csv(summary, out)
    lines = ['| class | ' + ' | '.join(METRICS) + ' |', '| --- ' * (len(METRICS) + 1) + '|']
    for cls, row in summary.iterrows():
        cells = [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_sd']:.3f}" for m in METRICS]
        lines.append(f"| {cls} | {' | '.join(cells)} |")
    print(f'{name}: mean ± SD over {utils.NFOLDS} test folds')
    print('\n'.join(lines))
    print(f'wrote {out}')
    return summary


# --------------------------------------------------------------------------
# New records.

def expand_records(patterns):
    """Globs, files and folders -> record paths, one per record (no duplicates
    from A0001.hea + A0001.mat), in the order given."""
    seen, out = set(), []
    for pattern in patterns:
        p = Path(pattern)
        paths = sorted(p.rglob('*.hea')) if p.is_dir() else \
            [Path(s) for s in sorted(glob.glob(pattern, recursive=True))] or [p]
        for path in paths:
            key = path.with_suffix('') if path.suffix in ('.hea', '.mat') else path
            if path.suffix == '.mat' and path.with_suffix('.hea').exists():
                path = path.with_suffix('.hea')
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def load_thresholds(args, model_path, ckpt):
    """-> (thresholds array, where they came from)."""
    path = Path(args.thresholds) if args.thresholds else \
        Path(args.root) / 'results' / Path(model_path).parent.name / 'thresholds.json'
    if path.is_file():
        th = json.loads(path.read_text())
        th = th.get('thresholds', th)
        missing = [c for c in ckpt['classes'] if c not in th]
        if missing:
            raise SystemExit(f'error: {path} has no threshold for {missing}')
        return np.array([float(th[c]) for c in ckpt['classes']]), str(path)
    if args.thresholds:
        raise SystemExit(f'error: no thresholds file {path}')
    return np.full(len(ckpt['classes']), 0.5), f'0.5 (no {path}; run predict.py on the run)'


def predict_records(args):
    """Score new records (or, with --segments, every 30-s window of them);
    write the CSV. A record that cannot give the model's leads, or has no
    usable signal, gets one line and is skipped (--strict stops there)."""
    import torch

    from records import RecordError, length_at_fs, prepare, read_record
    from resnet import load_checkpoint
    if not args.model_path:
        raise SystemExit('error: --records needs --model-path (a best.pt of main.py)')
    device = utils.select_device(args.device, args.use_gpu)
    precision = utils.select_precision(device, args.precision)
    model, ckpt = load_checkpoint(args.model_path, leads=args.leads, map_location=device)
    leads, classes = list(ckpt['leads']), list(ckpt['classes'])
    window = int(ckpt.get('window', utils.WINDOW))
    thresholds, source = load_thresholds(args, args.model_path, ckpt)
    print(f'model {args.model_path} (leads {",".join(leads)}); thresholds: {source}')
    paths = expand_records(args.records)
    if not paths:
        raise SystemExit(f'error: no records match {args.records}')

    def score(xs):
        x = torch.from_numpy(np.stack(xs)).to(device)
        with torch.inference_mode(), utils.autocast(device, precision):
            return torch.sigmoid(model(x).float()).cpu().numpy()

    def fail(e):
        if args.strict:
            raise SystemExit(f'error: {e}') from e
        print(f'skipped {e}', file=sys.stderr)

    rows, failed = [], 0
    scorer = SegmentScorer(score, classes, thresholds, args.batch_size)

    def emit(done):
        rows.extend(done)
        for row in done if not args.segments else []:
            print_record(row, classes, thresholds)

    for path in paths:
        try:
            rec = read_record(path)
            if args.segments:
                prepare(rec, leads, window)  # the leads are there (else one line, below)
        except RecordError as e:
            fail(e)
            failed += 1
            continue
        info = {'record': rec.name, 'path': str(path), 'fs': rec.fs,
                'duration_s': rec.duration}
        if not args.segments:
            info.update(measurement_columns(rec))
        ends = segment_ends(length_at_fs(rec), window) if args.segments else [None]
        if args.segments:
            from tqdm import tqdm
            scorer.bar = tqdm(total=len(ends), desc=rec.name, unit='window', leave=False)
        for end in ends:
            try:
                x, real, quality = prepare(rec, leads, window, end=end)
            except RecordError as e:
                if not args.segments or args.strict:   # --strict: a bad window stops too
                    fail(e)
                    failed += 1
                    continue
                x, real, quality = None, None, e.reason  # an unusable window: a row, no scores
            row = dict(info, quality=str(quality), derived='' if real is None else
                       ','.join(lead for lead, r in zip(leads, real) if not r))
            if args.segments:
                stop = (length_at_fs(rec) if end is None else end) / utils.FS
                row.update(start_s=max(0.0, stop - window / utils.FS), end_s=stop)
            elif str(quality) != 'ok':
                print(f'warning: {rec.name}: quality {quality}', file=sys.stderr)
            emit(scorer.add(row, x))
        if args.segments:
            emit(scorer.flush())
            scorer.bar.close()
            scorer.bar = None
            scorer.summary(rec, rows)
    emit(scorer.flush())
    return write_predictions(args, rows, classes, failed)


MEASURE_COLUMNS = ['hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_bazett_ms', 'qtc_fridericia_ms',
                   'p_axis', 'qrs_axis', 't_axis']
DEVICE_KEYS = ['hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_ms', 'p_axis', 'qrs_axis', 't_axis']


def measurement_columns(rec, seconds=30.0):
    """measure.py's figures for the last `seconds` of a record (what the
    model scores; a Holter is not measured whole), rounded, NaN when the
    record cannot support them, plus device_<key> where the file carries the
    cart's values (rec.device_measurements, from the format readers)."""
    import measure
    stop = rec.sig_len
    start = max(0, stop - int(round(seconds * rec.fs)))
    keep = [k for k, lead in enumerate(rec.leads) if lead is not None]
    out = dict.fromkeys(MEASURE_COLUMNS, np.nan)
    if keep:
        m = measure.measure(rec.read(start, stop)[:, keep].T, rec.fs,
                            [rec.leads[k] for k in keep])
        out.update({k: round(m[k], 1) for k in MEASURE_COLUMNS if m[k] is not None})
    device = getattr(rec, 'device_measurements', None) or {}
    out.update({f'device_{k}': float(device[k]) for k in DEVICE_KEYS if k in device})
    return out


def segment_ends(total, window):
    """Ends (samples at 500 Hz) of consecutive windows from the start; the
    last one ends at the record's end, overlapping the one before rather than
    padded (a record shorter than one window is front-padded, as always)."""
    return [min(start + window, total) for start in range(0, total, window)] or [total]


class SegmentScorer:
    """Batches windows through the model; rows come back with their scores
    and diagnoses (a row without a window keeps NaN scores). Memory holds one
    batch of windows, whatever the record's length."""

    def __init__(self, score, classes, thresholds, batch_size):
        self.score, self.classes, self.thresholds = score, classes, thresholds
        self.batch_size, self.pending, self.xs = batch_size, [], []
        self.bar = None

    def add(self, row, x):
        self.pending.append((row, x is not None))
        if x is not None:
            self.xs.append(x)
        return self.flush() if len(self.xs) >= self.batch_size else []

    def flush(self):
        scores = iter(self.score(self.xs)) if self.xs else iter(())
        out = []
        for row, has_x in self.pending:
            s = next(scores) if has_x else np.full(len(self.classes), np.nan)
            out.append(dict(row, **{f'score_{c}': float(v) for c, v in zip(self.classes, s)},
                            diagnoses=';'.join(c for c, v, t in zip(self.classes, s,
                                                                     self.thresholds)
                                               if v >= t)))
        if self.bar is not None:
            self.bar.update(len(self.pending))
        self.pending, self.xs = [], []
        return out

    def summary(self, rec, rows):
        """One line per record scored by --segments: windows per diagnosis."""
        mine = [r for r in rows if r['record'] == rec.name]
        bad = sum(1 for r in mine if np.isnan(r[f'score_{self.classes[0]}']))
        flagged = sum(1 for r in mine if r['quality'] != 'ok') - bad
        counts = {c: sum(c in r['diagnoses'].split(';') for r in mine) for c in self.classes}
        shown = ', '.join(f'{c} {n}' for c, n in counts.items() if n) or 'none above threshold'
        print(f'{rec.name}: {len(mine)} windows of {rec.duration:.0f} s at {rec.fs:g} Hz; '
              f'windows per diagnosis: {shown}' + (f'; {bad} unusable' if bad else '')
              + (f'; {flagged} with quality flags (quality column)' if flagged else ''))


def print_record(row, classes, thresholds):
    shown = ', '.join(f'{c} {row[f"score_{c}"]:.3f}' for c, t in zip(classes, thresholds)
                      if row[f'score_{c}'] >= t) or 'none above threshold'
    extra = f", derived {row['derived']}" if row['derived'] else ''
    print(f"{row['record']}: {shown}  (fs {row['fs']:g} Hz, {row['duration_s']:.1f} s{extra})")


def write_predictions(args, rows, classes, failed):
    stem = Path(args.model_path).parent.name or 'model'
    out = Path(args.out) if args.out else Path(f'predictions_{stem}.csv')
    first = ['record', 'path', 'fs', 'duration_s'] + (['start_s', 'end_s'] if args.segments
                                                      else [])
    measured = [] if args.segments else MEASURE_COLUMNS + [
        f'device_{k}' for k in DEVICE_KEYS if any(f'device_{k}' in r for r in rows)]
    df = pd.DataFrame(rows, columns=first + ['quality', 'derived']
                      + [f'score_{c}' for c in classes] + ['diagnoses'] + measured)
    utils.atomic_to_csv(df, out, index=False, float_format='%.6f')
    what = 'windows' if args.segments else 'records'
    print(f'{len(rows)} {what} scored, {failed} skipped; wrote {out}')
    return df


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.records:
        return predict_records(args)
    if args.cv:
        if args.test_fold is not None or args.model_path:
            raise SystemExit('error: --cv evaluates every fold; drop --test-fold/--model-path')
        leads = utils.parse_leads(args.leads or 'all')
        missing = [k for k in range(1, utils.NFOLDS + 1)
                   if not (utils.run_dirs(utils.run_name(args.data_dir, leads, args.seed, k),
                                          args.root)['models'] / 'best.pt').is_file()]
        if missing:
            raise SystemExit(f'error: no best.pt for test folds {missing}; run '
                             f'`python main.py --data-dir {args.data_dir} --leads '
                             f'{args.leads or "all"} --seed {args.seed} --cv` first')
        for k in range(1, utils.NFOLDS + 1):
            evaluate_run(args, k)
        return summarise_cv(args)
    return evaluate_run(args, args.test_fold)


if __name__ == '__main__':
    main()
