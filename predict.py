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
    # hospital exports (DICOM, GE MUSE/CardioSoft XML, Philips XML, HL7 aECG,
    # SCP-ECG, ISHNE, EDF, CSV; any mix, recognised by content: records/formats/)
    python predict.py --model-path models/CPSC-all-s42-f10/best.pt \\
        --records 'exports/*' --lead-map 'ECG=II' --out preds.csv
    # a Holter: every 30-s window of it, one row each with its start time
    python predict.py --model-path models/CPSC-II-s42-f10/best.pt \\
        --records ../shared/data/mitdb/100 --segments --out holter.csv
    # results back in HL7 FHIR R4: one Bundle a record, one a line (docs/fhir.md)
    python predict.py --model-path models/CPSC-all-s42-f10/best.pt \\
        --records 'exports/*' --fhir results.ndjson [--fhir-subject Patient/123]

Writes results/<run>/: metrics.csv (9 classes + macro, 95% bootstrap CIs),
thresholds.json, folds.json (the fold manifest the model was trained and
scored on; a test fold is refused when it differs from labels.csv, see
folds.py and --trust-folds), predictions.csv (patient_id, score_<class>, true_<class>,
pred_<class>), confusion.png (normalised 2x2 matrix per class), roc.png; with
--cv also results/<database>-<leads>-s<seed>-cv/summary.csv. Prints the
paper's per-class table.

With --records, records are read by the records package (only the window scored is
read, so a 24-h Holter costs what 30 s cost): the model's leads are taken as
recorded, or derived from two other limb leads; a record that cannot give
them gets one line naming the missing leads and is skipped, as does any
damaged file, a record under 2.5 s (records.limits.MIN_SECONDS), or any other
failure of a per-record step, reading, preparing and measuring alike (the
rest of the run goes on). A file outside its own folder (a header naming an
absolute path, ../ or a symlink out; a .xml/.dcm/.csv/... that is a symlink
out) is refused unless --allow-outside-folder. The CSV has
record, path (empty where the file's name is an identifier and the record is
named by a pseudonym, docs/formats.md), fs, duration_s, [start_s, end_s with --segments], quality
('ok' or the records package's quality flags, each also one warning line), derived (leads
computed, not recorded), score_<class>, diagnoses, (without --segments) the
global measurements of the last 30 s (measure.py: hr, pr_ms, qrs_ms, qt_ms,
qtc_bazett_ms, qtc_fridericia_ms, p_axis, qrs_axis, t_axis; empty where the
record cannot support the figure), and beside them the cart's own reading
where the file carries one (device_hr, device_pr_ms, device_qrs_ms,
device_qt_ms, device_qtc_ms, device_p_axis, device_qrs_axis, device_t_axis,
device_statements: the manufacturer's algorithm, shown beside ours, never
as ours).
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import fhir_bundle
import measure
import runs
import utils
from folds import add_trust_folds_arg, check_manifest, write_results_manifest
from records import (
    FS,
    RecordError,
    find_records,
    length_at_fs,
    parse_lead_map,
    parse_leads,
    prepare,
    read_record,
)
from records.measurements import DEVICE_KEYS, device_column
from resnet import probabilities
from runs import SegmentScorer, segment_ends
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
                        help='diagnose these records (paths, globs or folders of any format '
                             'the records package reads: WFDB, .mat, DICOM, XML, SCP, ISHNE, EDF, '
                             'CSV) instead of evaluating a fold')
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
    parser.add_argument('--allow-outside-folder', action='store_true',
                        help="with --records: read files outside the record's folder "
                             '(signal files a header names by absolute paths or ../, and '
                             'symlinks out, of any format); refused by default, as a record '
                             'from elsewhere could name any file')
    parser.add_argument('-b', '--batch-size', default=32, type=int, metavar='N',
                        help='records per forward pass (default: 32)')
    parser.add_argument('-j', '--workers', default=0, type=int, metavar='N',
                        help='data loader processes (default: 0)')
    parser.add_argument('--precision', default='auto', choices=['auto', 'bf16', 'fp32'],
                        help='autocast precision, as in main.py (default: auto)')
    parser.add_argument('--n-boot', default=1000, type=int, metavar='N',
                        help='bootstrap resamples for the 95%% CIs (default: 1000)')
    parser.add_argument('--fhir', default=None, metavar='NDJSON',
                        help='with --records: also write one HL7 FHIR R4 Bundle a scored '
                             'record, one a line (docs/fhir.md; default: none)')
    parser.add_argument('--fhir-subject', default=None, metavar='REF',
                        help="with --fhir: the Bundles' subject, a reference such as "
                             'Patient/123 (default: none: no patient in the output)')
    add_trust_folds_arg(parser)
    return parser


# --------------------------------------------------------------------------
# Figures.

def plot_confusion(y_true, y_pred, path, classes=CLASSES):
    """A grid of 2x2 confusion matrices, one per class (3x3 for the nine, 4
    columns for ten to sixteen: every class gets its cell), each row
    normalised by the true count."""
    plt = utils.pyplot()
    cols = math.ceil(math.sqrt(len(classes)))
    rows = math.ceil(len(classes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat[len(classes):]:
        ax.set_axis_off()
    for c, ax in zip(range(len(classes)), axes.flat):
        t, p = y_true[:, c].astype(bool), y_pred[:, c].astype(bool)
        cm = np.array([[(~t & ~p).sum(), (~t & p).sum()], [(t & ~p).sum(), (t & p).sum()]],
                      dtype=float)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(cm, cmap='Blues', vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f'{cm[i, j]:.2f}', ha='center', va='center',
                        color='white' if cm[i, j] > 0.5 else 'black')
        ax.set_title(classes[c])
        ax.set_xticks([0, 1], ['pred 0', 'pred 1'])
        ax.set_yticks([0, 1], ['true 0', 'true 1'])
    fig.tight_layout()
    utils.save_figure(fig, path, dpi=120)


def plot_roc(y_true, y_score, path, classes=CLASSES):
    plt = utils.pyplot()
    # sklearn only here: --records, which has no labels, does not load it
    from sklearn.metrics import roc_auc_score, roc_curve
    fig, ax = plt.subplots(figsize=(6, 6))
    for c, name in enumerate(classes):
        if 0 < y_true[:, c].sum() < len(y_true):
            fpr, tpr, _ = roc_curve(y_true[:, c], y_score[:, c])
            auc = roc_auc_score(y_true[:, c], y_score[:, c])
            ax.plot(fpr, tpr, label=f'{name} (AUC {auc:.3f})')
    ax.plot([0, 1], [0, 1], 'k--', lw=0.8)
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate')
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    utils.save_figure(fig, path, dpi=120)


# --------------------------------------------------------------------------
# Fold evaluation.

def evaluate_run(args, test_fold):
    """Evaluate one run's best.pt on its test fold; write results/<run>/."""
    leads = parse_leads(args.leads or 'all')
    name = utils.run_name(args.data_dir, leads, args.seed, test_fold)
    dirs = utils.run_dirs(name, args.root)
    model_path = Path(args.model_path) if args.model_path else dirs['models'] / 'best.pt'
    device = utils.select_device(args.device, args.use_gpu)
    precision = utils.select_precision(device, args.precision)
    run = runs.load_run(model_path, args.root, leads=leads, device=device, thresholds=False)
    _, val_f, test_f = utils.split_data(args.seed, test_fold)
    trained = run.ckpt.get('folds')
    if trained and (list(trained['val']) != val_f or list(trained['test']) != test_f):
        raise SystemExit(f"error: {model_path} was trained with val fold {trained['val']} "
                         f"and test fold {trained['test']}, not {val_f}/{test_f}; pass "
                         f'the same --seed/--test-fold as to main.py')
    manifest = check_manifest(run.ckpt.get('fold_manifest'), args.data_dir, model_path,
                              args.trust_folds, trained, 'predict.py')
    classes = runs.check_fold_classes(run)

    def score(folds):
        return runs.score_folds(run, args.data_dir, folds, device, precision,
                                args.batch_size, args.workers)
    _, val_y, val_s = score(val_f)
    thresholds = utils.f1_optimal_thresholds(val_y, val_s)
    ids, test_y, test_s = score(test_f)
    metrics = utils.compute_metrics(test_y, test_s, thresholds, classes, n_boot=args.n_boot,
                                    seed=args.seed)
    test_pred = utils.decide(test_s, thresholds)

    out = dirs['results']
    utils.atomic_to_csv(metrics, out / 'metrics.csv', index_label='class')
    utils.write_thresholds(out / 'thresholds.json', thresholds, classes,
                          {'split': 'validation', 'folds': val_f, 'metric': 'F1', 'model': name},
                          run=name, leads=leads, checkpoint=str(model_path))
    write_results_manifest(out, manifest, run.ckpt.get('fold_manifest'), model_path,
                           {'val': val_f, 'test': test_f})
    preds = pd.DataFrame({'patient_id': ids})
    for c, cls in enumerate(classes):
        preds[f'score_{cls}'] = test_s[:, c]
    for c, cls in enumerate(classes):
        preds[f'true_{cls}'] = test_y[:, c].astype(int)
    for c, cls in enumerate(classes):
        preds[f'pred_{cls}'] = test_pred[:, c].astype(int)
    utils.atomic_to_csv(preds, out / 'predictions.csv', index=False, float_format='%.6f')
    plot_confusion(test_y, test_pred, out / 'confusion.png', classes)
    plot_roc(test_y, test_s, out / 'roc.png', classes)
    print(f'{name}: test fold {test_f}, {len(ids)} records, thresholds tuned on '
          f'validation fold {val_f} ({len(val_y)} records)')
    print(utils.format_metrics_table(metrics), flush=True)
    print(f'wrote {out}/metrics.csv, thresholds.json, folds.json, predictions.csv, '
          'confusion.png, roc.png')
    return metrics


def summarise_cv(args):
    """Mean ± SD across the 10 folds' metrics.csv -> results/<db>-<leads>-s<seed>-cv/."""
    leads = parse_leads(args.leads or 'all')
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
    out = utils.run_dirs(name, args.root)['results'] / 'summary.csv'
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

DEVICE_COLUMNS = [device_column(k) for k in DEVICE_KEYS] + [device_column('statements')]


def device_columns(rec):
    """The cart's own measurements and statements (records.formats), as
    columns; empty where the file carries none. They are the device's, not ours."""
    meas = getattr(rec, 'device_measurements', {}) or {}
    row = {device_column(k): meas.get(k, np.nan) for k in DEVICE_KEYS}
    row[device_column('statements')] = ' | '.join(getattr(rec, 'device_statements', []) or [])
    return row


def public_path(rec, path):
    """The path to show: the file's, unless its stem is an identifier (the
    reader then named the record '<format>-<content hash>',
    records.formats.common.record_name): then none (''). No file has the
    pseudonym's name, and the real one must not be printed; the record
    column holds the pseudonym."""
    path = Path(path)
    if path.is_file() and rec.name != path.stem:
        return ''
    return str(path)


def predict_records(args):
    """Score new records (or, with --segments, every 30-s window of them);
    write the CSV. A record that cannot give the model's leads, or has no
    usable signal, gets one line and is skipped (--strict stops there)."""
    if not args.model_path:
        raise SystemExit('error: --records needs --model-path (a best.pt of main.py)')
    if args.fhir and args.segments:
        raise SystemExit('error: --fhir reports a record, not its windows; drop --segments')
    if args.fhir_subject and not args.fhir:
        raise SystemExit('error: --fhir-subject needs --fhir OUT.ndjson')
    try:
        fhir_bundle.check_subject(args.fhir_subject)
    except ValueError as e:
        raise SystemExit(f'error: --fhir-subject: {e}') from None
    try:
        parse_lead_map(args.lead_map)
    except ValueError as e:
        raise SystemExit(f'error: --lead-map: {e}') from None
    device = utils.select_device(args.device, args.use_gpu)
    precision = utils.select_precision(device, args.precision)
    run = runs.load_run(args.model_path, args.root, leads=args.leads, device=device,
                        thresholds=args.thresholds)
    print(f'model {args.model_path} (leads {",".join(run.leads)}); '
          f'thresholds: {runs.thresholds_text(run.source)}')
    paths, problems = find_records(args.records)
    if not paths:
        raise SystemExit(f'error: no records match {args.records}: ' + '; '.join(problems))

    def score(xs):
        return probabilities(run.model, np.stack(xs), device, precision, batch_size=len(xs))

    rows, failed = [], 0
    for line in problems:
        failed += skip(args, RecordError(line.split(': ')[0], line.split(': ', 1)[1]))
    scorer = SegmentScorer(score, run.classes, run.thresholds, args.batch_size)
    model = fhir_bundle.model_info(run) if args.fhir else None

    with fhir_bundle.ndjson_writer(args.fhir) as write_bundle:
        def emit(done):
            rows.extend(done)
            for row in done if not args.segments else []:
                print_record(row, run.classes, run.thresholds)
                if model:   # streamed as scored: one line a record
                    write_bundle(fhir_bundle.row_bundle(row, model, args.fhir_subject))

        for path in paths:
            try:
                rec, info, prepared = per_record(read_one, args, run, path)
            except RecordError as e:
                failed += skip(args, e)
                continue
            try:
                failed += per_record(score_windows, args, run, rec, info, scorer, emit,
                                     prepared)
                if args.segments:
                    scorer.summary(rec, rows)
            except RecordError as e:
                failed += skip(args, e)
        emit(scorer.flush())
    if args.fhir:
        print(f'wrote {len(rows)} FHIR Bundles to {args.fhir}')
    return write_predictions(args, rows, run.classes, failed)


def per_record(step, args, run, path_or_rec, *rest):
    """One per-record step; whatever a bad file makes it raise becomes the
    record's RecordError (one line, the run goes on), never a traceback that
    ends the run: a reader, measure.py or the resampler alike."""
    try:
        return step(args, run, path_or_rec, *rest)
    except (RecordError, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 (one bad record must not end a run)
        name = getattr(path_or_rec, 'name', None) if not isinstance(path_or_rec, (str, Path)) \
            else Path(path_or_rec).stem
        raise RecordError(name or 'record', f'unusable ({type(e).__name__}: {e})') from None


def read_one(args, run, path):
    """Every step before scoring -> (record, its columns, its prepared window
    or None with --segments). The window is prepared first, so a record the
    model cannot read (a lead missing, too short, no signal) is one line
    before anything else is computed from it."""
    rec = read_record(path, lead_map=args.lead_map, fs=args.fs,
                      allow_outside=args.allow_outside_folder)
    prepared = prepare(rec, run.leads, run.window)  # the leads are there (else one line)
    info = {'record': rec.name, 'path': public_path(rec, path), 'fs': rec.fs,
            'duration_s': rec.duration}
    if not args.segments:
        info.update(measurement_columns(rec))
    info.update(device_columns(rec))
    return rec, info, None if args.segments else prepared


def skip(args, e):
    """One line for what cannot be scored (--strict: stop there) -> 1."""
    if args.strict:
        raise SystemExit(f'error: {e}') from e
    print(f'skipped {e}', file=sys.stderr)
    return 1


def score_windows(args, run, rec, info, scorer, emit, prepared=None):
    """Queue a record's window (with --segments: each of its windows, a row
    each) on the scorer; rows go to emit as their batches are scored ->
    how many windows were skipped. prepared: the last window, already made."""
    leads, window, failed = run.leads, run.window, 0
    ends = segment_ends(length_at_fs(rec), window) if args.segments else [None]
    if args.segments:
        scorer.bar = tqdm(total=len(ends), desc=rec.name, unit='window', leave=False)
    for end in ends:
        try:
            x, real, quality = prepared if prepared is not None and end is None else \
                prepare(rec, leads, window, end=end)
        except RecordError as e:
            if not args.segments or args.strict:   # --strict: a bad window stops too
                failed += skip(args, e)
                continue
            x, real, quality = None, None, e.reason  # an unusable window: a row, no scores
        row = dict(info, quality=str(quality), derived='' if real is None else
                   ','.join(lead for lead, r in zip(leads, real) if not r))
        if args.segments:
            stop = (length_at_fs(rec) if end is None else end) / FS
            row.update(start_s=max(0.0, stop - window / FS), end_s=stop)
        elif str(quality) != 'ok':
            print(f'warning: {rec.name}: quality {quality}', file=sys.stderr)
        emit(scorer.add(row, x))
    if args.segments:
        emit(scorer.flush())
        scorer.bar.close()
        scorer.bar = None
    return failed


MEASURE_COLUMNS = list(measure.KEYS)


def measurement_columns(rec, seconds=30.0):
    """measure.py's figures for the last `seconds` of a record (what the
    model scores; a Holter is not measured whole), rounded, NaN when the
    record cannot support them. The cart's own are device_columns'."""
    stop = rec.sig_len
    start = max(0, stop - int(round(seconds * rec.fs)))
    keep = [k for k, lead in enumerate(rec.leads) if lead is not None]
    out = dict.fromkeys(MEASURE_COLUMNS, np.nan)
    if keep:
        m = measure.measure(rec.read(start, stop)[:, keep].T, rec.fs,
                            [rec.leads[k] for k in keep])
        out.update({k: round(m[k], 1) for k in MEASURE_COLUMNS if m[k] is not None})
    return out


def print_record(row, classes, thresholds):
    present = utils.decide([row[f'score_{c}'] for c in classes], thresholds)
    shown = ', '.join(f'{c} {row[f"score_{c}"]:.3f}' for c, p in zip(classes, present)
                      if p) or 'none above threshold'
    extra = f", derived {row['derived']}" if row['derived'] else ''
    print(f"{row['record']}: {shown}  (fs {row['fs']:g} Hz, {row['duration_s']:.1f} s{extra})")
    cart = ', '.join(f"{k} {row[device_column(k)]:g}" for k in DEVICE_KEYS
                     if pd.notna(row.get(device_column(k), np.nan)))
    if cart or row.get('device_statements'):
        print(f"  cart's reading (the device's, not this model's): {cart or '-'}"
              + (f"; {row['device_statements']}" if row.get('device_statements') else ''))


def write_predictions(args, rows, classes, failed):
    stem = Path(args.model_path).parent.name or 'model'
    out = Path(args.out) if args.out else Path(f'predictions_{stem}.csv')
    first = ['record', 'path', 'fs', 'duration_s'] + (['start_s', 'end_s'] if args.segments
                                                      else [])
    measured = [] if args.segments else MEASURE_COLUMNS
    df = pd.DataFrame(rows, columns=first + ['quality', 'derived']
                      + [f'score_{c}' for c in classes] + ['diagnoses'] + measured
                      + DEVICE_COLUMNS)
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
        leads = parse_leads(args.leads or 'all')
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
