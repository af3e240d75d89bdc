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
    # an archive (docs/scale.md): 2 reader processes while the model scores,
    # Parquet out, a list of paths; after a kill, the same command with --resume
    python predict.py --model-path models/CPSC-all-s42-f10/best.pt \\
        --records-from archive.txt --workers 2 --out scores.parquet [--resume]
    # the same on a Ray cluster (one model per actor; `ray start` on each node)
    python predict.py --model-path models/CPSC-all-s42-f10/best.pt \\
        --records /shared/archive --engine ray --address auto --workers 8 --out scores.parquet

Writes results/<run>/: metrics.csv (9 classes + macro, 95% bootstrap CIs),
thresholds.json, folds.json (the fold manifest the model was trained and
scored on; a test fold is refused when it differs from labels.csv, see
folds.py and --trust-folds), predictions.csv (patient_id, score_<class>, true_<class>,
pred_<class>), confusion.png (normalised 2x2 matrix per class), roc.png; with
--cv also results/<database>-<leads>-s<seed>-cv/summary.csv. Prints the
paper's per-class table.

With --records, rows are appended to OUT.partial as they are scored and OUT
(CSV, or Parquet for a .parquet name) appears whole at the end: a kill loses
at most the batch being scored, and --resume goes on from there (archive.py).
Records are read by the records package (only the window scored is
read, so a 24-h Holter costs what 30 s cost): the model's leads are taken as
recorded, or derived from two other limb leads; a record that cannot give
them gets one line naming the missing leads and is skipped, as does any
damaged file, a record under 2.5 s (records.limits.MIN_SECONDS), or any other
failure of a per-record step, reading, preparing and measuring alike (the
rest of the run goes on). A file outside its own folder (a header naming an
absolute path, ../ or a symlink out; a .xml/.dcm/.csv/... that is a symlink
out) is refused unless --allow-outside-folder. The CSV has
record, path (empty where the file's name is an identifier and the record is
named by a pseudonym, docs/formats.md), sha256 (of the record's files: what
--resume knows a record by), fs, duration_s, [start_s, end_s with --segments], quality
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
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import archive
import fhir_bundle
import runs
import utils
from folds import add_trust_folds_arg, check_manifest, write_results_manifest
from records import (
    parse_lead_map,
    parse_leads,
)
from records.measurements import DEVICE_KEYS, device_column
from resnet import probabilities
from runs import SegmentScorer
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
    parser.add_argument('--records-from', default=None, metavar='LIST',
                        help="also score the records a text file names, one path, glob or "
                             "folder a line ('-': standard input), read as the run goes")
    parser.add_argument('--out', default=None, metavar='CSV',
                        help='with --records: scores and diagnoses, CSV, or Parquet when '
                             'the name ends in .parquet; rows are appended to OUT.partial as '
                             'they are scored and OUT appears at the end '
                             '(default: predictions_<run>.csv)')
    parser.add_argument('--resume', action='store_true',
                        help="with --records: go on with an interrupted run's OUT.partial "
                             '(or add new records to a finished CSV): records it holds, by '
                             'name and content hash, are not scored again')
    parser.add_argument('--engine', default='local', choices=['local', 'ray'],
                        help='with --records: read and score here (--workers processes read '
                             'while the model scores), or on Ray Data (docs/scale.md)')
    parser.add_argument('--address', default=None, metavar='ADDR',
                        help="with --engine ray: the cluster's address ('auto' on one of its "
                             'nodes; default: a local Ray instance on this machine)')
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
                        help='processes that read records (a fold: the data loader; '
                             '--records: read, prepare and measure while the model scores; '
                             'with --engine ray: the scoring actors) (default: 0, none)')
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
# New records: the per-record work is archive.py's, the same on every engine.

def check_record_args(args):
    if not args.model_path:
        raise SystemExit('error: --records needs --model-path (a best.pt of main.py)')
    if args.fhir and args.segments:
        raise SystemExit('error: --fhir reports a record, not its windows; drop --segments')
    if args.fhir_subject and not args.fhir:
        raise SystemExit('error: --fhir-subject needs --fhir OUT.ndjson')
    if args.engine == 'ray' and args.segments:
        raise SystemExit('error: --engine ray scores records; --segments runs with --workers')
    if args.address and args.engine != 'ray':
        raise SystemExit('error: --address names a Ray cluster: add --engine ray')
    if args.records_from not in (None, '-') and not Path(args.records_from).is_file():
        raise SystemExit(f'error: --records-from {args.records_from}: no such file (one path, '
                         "glob or folder a line; '-' reads them from standard input)")
    try:
        fhir_bundle.check_subject(args.fhir_subject)
    except ValueError as e:
        raise SystemExit(f'error: --fhir-subject: {e}') from None
    try:
        parse_lead_map(args.lead_map)
    except ValueError as e:
        raise SystemExit(f'error: --lead-map: {e}') from None


def output_path(args):
    stem = Path(args.model_path).parent.name or 'model'
    return Path(args.out) if args.out else Path(f'predictions_{stem}.csv')


def output_columns(args, classes):
    first = ['record', 'path', 'sha256', 'fs', 'duration_s'] + (
        ['start_s', 'end_s'] if args.segments else [])
    measured = [] if args.segments else archive.MEASURE_COLUMNS
    return (first + ['quality', 'derived'] + [f'score_{c}' for c in classes] + ['diagnoses']
            + measured + archive.DEVICE_COLUMNS)


def first_path(args, skip):
    """The walk, its problems reported; an error when it finds no record at all."""
    found = archive.walk(args.records or (), args.records_from)
    problems = []
    for path, problem in found:
        if path is not None:
            return path, found
        problems.append(problem)
        skip(problem)
    what = ' '.join(args.records or ()) or f'--records-from {args.records_from}'
    raise SystemExit(f'error: no records match {what}: ' + '; '.join(problems))


def only_paths(first, found, skip):
    yield first
    for path, problem in found:
        if path is None:
            skip(problem)
        else:
            yield path


class Tally:
    """What a run did: rows written, records scored, skipped, resumed."""

    def __init__(self):
        self.rows = self.scored = self.failed = self.resumed = 0


def predict_records(args):
    """Score new records (or, with --segments, every 30-s window of them),
    streaming the rows to --out as they are scored. A record that cannot
    give the model's leads, or has no usable signal, gets one line and is
    skipped (--strict stops there). -> the output's path."""
    check_record_args(args)
    device = utils.select_device(args.device, args.use_gpu)
    precision = utils.select_precision(device, args.precision)
    if args.workers > 0 and args.engine == 'local' and 'OMP_NUM_THREADS' not in os.environ:
        # the readers and the model share the cores: each its own
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - args.workers))
    run = runs.load_run(args.model_path, args.root, leads=args.leads, device=device,
                        thresholds=args.thresholds)
    print(f'model {args.model_path} (leads {",".join(run.leads)}); '
          f'thresholds: {runs.thresholds_text(run.source)}')
    tally = Tally()

    def skip_line(line):
        tally.failed += skip(args, line)

    first, found = first_path(args, skip_line)
    settings = archive.Settings(tuple(run.leads), run.window, args.segments, args.lead_map,
                                args.fs, args.allow_outside_folder)
    out = output_path(args)
    journal = archive.Journal(out, output_columns(args, run.classes), args.resume)
    fhir = archive.Lines(args.fhir, journal.rows if args.resume else None) if args.fhir else None
    if journal.rows:
        print(f'resuming {out}: {journal.rows} rows of an earlier run kept')
    paths = only_paths(first, found, skip_line)
    clock, progress = archive.Clock(args.engine == 'ray'), archive.Progress(
        args.records or (), args.records_from, sys.stderr.isatty())
    try:
        if args.engine == 'ray':
            results = archive.ray_results(paths, settings, journal.done, run_spec(args),
                                          args.batch_size, args.workers, args.address)
        else:
            results = archive.ordered(archive.run_task, archive.tasks(
                paths, settings, journal.done, skip_line, lambda: setattr(
                    tally, 'resumed', tally.resumed + 1)), args.workers, journal.done)
        consume(results, args, run, Output(journal, fhir, run, args), tally, clock,
                progress, device, precision)
    except BaseException:
        progress.close()
        journal.abandon()
        if fhir:
            fhir.abandon()
        raise
    progress.close()
    return finish(args, out, journal, fhir, tally, clock)


def run_spec(args):
    """What a Ray actor needs to load this run's model itself."""
    return {'model_path': str(args.model_path), 'root': str(args.root), 'leads': args.leads,
            'thresholds': args.thresholds, 'device': args.device, 'use_gpu': args.use_gpu,
            'precision': args.precision}


def finish(args, out, journal, fhir, tally, clock):
    if fhir:
        fhir.close()
        print(f'wrote {fhir.count} FHIR Bundles to {args.fhir}')
    journal.close()
    windows = f' ({tally.rows} windows)' if args.segments else ''
    resumed = f', {tally.resumed} already in {out}' if tally.resumed else ''
    print(f'{tally.scored} records scored{windows}, {tally.failed} skipped{resumed}; '
          f'wrote {out}')
    print(clock.line(tally.scored), file=sys.stderr)
    return out


class Output:
    """Scored rows -> the journal, the FHIR Bundles and the terminal."""

    def __init__(self, journal, fhir, run, args):
        self.journal, self.fhir, self.run, self.args = journal, fhir, run, args
        self.model = fhir_bundle.model_info(run) if fhir else None

    def __call__(self, rows, progress):
        if self.fhir:   # first: a kill between the two leaves no row without its Bundle
            for row in rows:
                self.fhir.write(fhir_bundle.ndjson_line(
                    fhir_bundle.row_bundle(row, self.model, self.args.fhir_subject)))
            self.fhir.flush()
        self.journal.write(rows)
        for row in rows if not self.args.segments else []:
            progress.write(record_line(row, self.run.classes, self.run.thresholds))


def consume(results, args, run, output, tally, clock, progress, device, precision):
    """Results in order -> batches for the model -> rows written as they are scored."""
    def score(xs):
        with clock.scoring():
            return probabilities(run.model, np.stack(xs), device, precision,
                                 batch_size=len(xs))

    scorer = SegmentScorer(score, run.classes, run.thresholds, args.batch_size)
    record = []   # --segments: the current record's rows, written when it is complete

    def emit(rows):
        if args.segments:
            record.extend(rows)
        else:
            tally.rows += len(rows)
            output(rows, progress)

    def end_record():
        emit(scorer.flush())
        if record:
            progress.write(scorer.summary(record))
            tally.rows += len(record)
            output(list(record), progress)
            record.clear()

    for res in results:
        if res['kind'] != 'rows':
            tally.failed += skip(args, res['line']) if res['kind'] == 'skip' else 0
            tally.resumed += res['kind'] == 'done'
            progress.update()
            continue
        if args.segments and res['first']:
            end_record()
        if res['first']:
            tally.scored += 1
            progress.update()
        clock.add(res['seconds'])
        add_items(res, args, run, scorer, emit)
    end_record()


def add_items(res, args, run, scorer, emit):
    if res.get('warn'):
        print(f"warning: {res['warn']}", file=sys.stderr)
    for row, x in res['items']:
        if x is None and args.strict:   # --strict: a bad window stops too
            raise SystemExit(f"error: {row['record']}: {row['quality']}")
        if 'scores' in res:   # scored already (Ray's actors)
            emit([runs.scored_row(row, res['scores'], run.classes, run.thresholds)])
        else:
            emit(scorer.add(row, x))


def skip(args, line):
    """One line for what cannot be scored (--strict: stop there) -> 1."""
    if args.strict:
        raise SystemExit(f'error: {line}')
    print(f'skipped {line}', file=sys.stderr)
    return 1


def record_line(row, classes, thresholds):
    """A scored record's line: its diagnoses, and the cart's reading where there is one."""
    present = utils.decide([row[f'score_{c}'] for c in classes], thresholds)
    shown = ', '.join(f'{c} {row[f"score_{c}"]:.3f}' for c, p in zip(classes, present)
                      if p) or 'none above threshold'
    extra = f", derived {row['derived']}" if row['derived'] else ''
    line = f"{row['record']}: {shown}  (fs {row['fs']:g} Hz, {row['duration_s']:.1f} s{extra})"
    cart = ', '.join(f"{k} {row[device_column(k)]:g}" for k in DEVICE_KEYS
                     if pd.notna(row.get(device_column(k), np.nan)))
    if cart or row.get('device_statements'):
        line += (f"\n  cart's reading (the device's, not this model's): {cart or '-'}"
                 + (f"; {row['device_statements']}" if row.get('device_statements') else ''))
    return line


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.records or args.records_from:
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
