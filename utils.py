"""Shared pieces of every script: classes and leads, the SNOMED-CT label map,
fold splits, the shared flags, seeding, run naming, atomic writes,
device/precision selection, the decision rule (decide) and the metrics
(vectorised F1-optimal thresholds, bootstrap CIs).

Nothing here is a script; `python -c "import utils"` must stay cheap (the
torch-free scripts import it too), so heavy imports (torch, pandas,
matplotlib) happen inside the functions that need them.
"""
import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from records import LEADS, parse_leads

# --------------------------------------------------------------------------
# Classes, leads, label mapping: the one place they are defined.

CLASSES = ['SNR', 'AF', 'IAVB', 'LBBB', 'RBBB', 'PAC', 'PVC', 'STD', 'STE']
CLASS_NAMES = {
    'SNR': 'sinus rhythm', 'AF': 'atrial fibrillation',
    'IAVB': 'first-degree AV block', 'LBBB': 'left bundle branch block',
    'RBBB': 'right bundle branch block', 'PAC': 'premature atrial contraction',
    'PVC': 'premature ventricular contraction', 'STD': 'ST-segment depression',
    'STE': 'ST-segment elevation',
}

# SNOMED-CT code -> class. The study's codes first, then the equivalent codes
# that other PhysioNet/CinC 2020/2021 sources use for the same diagnosis
# (scored as equivalent by the challenge).
SNOMED_TO_CLASS = {
    '426783006': 'SNR',
    '164889003': 'AF',
    '270492004': 'IAVB',
    '164909002': 'LBBB', '733534002': 'LBBB',
    '713427006': 'RBBB', '59118001': 'RBBB',
    '284470004': 'PAC', '63593006': 'PAC',
    '164884008': 'PVC', '427172004': 'PVC', '17338001': 'PVC',
    '429622005': 'STD',
    '164931005': 'STE',
}
# What 426783006 means (--snr-rule of preprocess.py). The study's SNR is
# CPSC2018's "Normal", and there 426783006 never comes with another code. The
# other PhysioNet/CinC 2020/2021 sources use the same code for "sinus rhythm",
# which co-occurs with abnormalities outside the nine classes (PTB-XL's HR06000:
# sinus rhythm + T-wave abnormality). Default 'only': a record is SNR only when
# 426783006 is its only diagnosis code, the study's meaning on every source
# (CPSC2018's labels do not change); such records with none of the other eight
# classes are then dropped as unlabelled. 'sinus': 426783006 is SNR wherever it
# appears (the challenge's meaning, and this code's before the rule).
SNR_CODE = '426783006'
SNR_RULES = ('only', 'sinus')
# The code we write for each class (synthetic data, reports): the study's own.
CLASS_TO_SNOMED = {
    'SNR': '426783006', 'AF': '164889003', 'IAVB': '270492004',
    'LBBB': '164909002', 'RBBB': '59118001', 'PAC': '284470004',
    'PVC': '164884008', 'STD': '429622005', 'STE': '164931005',
}
# The original CPSC2018 challenge download: REFERENCE.csv labels 1..9.
CPSC_NUMBER_TO_CLASS = {i + 1: c for i, c in enumerate(CLASSES)}


def dx_to_classes(codes, snr_rule='only'):
    """SNOMED-CT codes (iterable of str/int) -> sorted list of class names.
    snr_rule (see SNR_RULES above): 'only' maps 426783006 to SNR only when it
    is the record's only code; 'sinus' wherever it appears."""
    if snr_rule not in SNR_RULES:
        raise ValueError(f'unknown snr_rule {snr_rule!r}; use one of {SNR_RULES}')
    codes = [str(c).strip() for c in codes if str(c).strip()]
    found = {SNOMED_TO_CLASS[c] for c in codes if c in SNOMED_TO_CLASS and c != SNR_CODE}
    if SNR_CODE in codes and (snr_rule == 'sinus' or set(codes) == {SNR_CODE}):
        found.add('SNR')
    return [c for c in CLASSES if c in found]


def leads_arg(text):
    """The argparse type of every --leads: 'all' stays 'all'; names and their
    aliases (MLII, D1, avr: records.parse_leads, the one lead vocabulary)
    become the standard names, comma-separated. A bad name is an argparse
    error naming the valid ones, so every script says it the same way."""
    if text.strip().lower() == 'all':
        return 'all'
    try:
        return ','.join(parse_leads(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def leads_tag(leads):
    """Lead list -> the short tag used in run names ('all', 'I', 'I-aVR')."""
    leads = parse_leads(leads)
    return 'all' if leads == LEADS else '-'.join(leads)


# --------------------------------------------------------------------------
# Folds and runs.

NFOLDS = 10


def split_data(seed=42, test_fold=None):
    """Folds 1..10 -> (train_folds, val_folds, test_folds), lists of ints.

    Without test_fold this is the study's split: a permutation of the folds
    seeded by `seed`, 8 train / 1 val / 1 test. With test_fold=K (10-fold
    cross-validation) the test fold is K, validation the next fold (K % 10 + 1),
    and training the other eight.
    """
    if test_fold is None:
        folds = np.random.RandomState(seed).permutation(range(1, NFOLDS + 1))
        return ([int(f) for f in folds[:8]], [int(folds[8])], [int(folds[9])])
    if not 1 <= int(test_fold) <= NFOLDS:
        raise SystemExit(f'error: --test-fold must be 1..{NFOLDS}, got {test_fold}')
    k = int(test_fold)
    val = k % NFOLDS + 1
    train = [f for f in range(1, NFOLDS + 1) if f not in (k, val)]
    return train, [val], [k]


def database_name(data_dir):
    """data/CPSC -> 'CPSC' (the folder name identifies the database)."""
    return Path(data_dir).resolve().name


def run_name(data_dir, leads, seed, test_fold=None):
    """The one name of a run, shared by every script:
    '<database>-<leads>-s<seed>-f<test fold>', e.g. 'CPSC-all-s42-f7'.

    Checkpoints live in models/<run>/, results in results/<run>/, SHAP in
    shap/<run>/, so runs of different leads, seeds or folds never collide.
    The test fold is resolved from the seed when not given (the study's split).
    """
    test = split_data(seed, test_fold)[2][0]
    return f'{database_name(data_dir)}-{leads_tag(leads)}-s{seed}-f{test}'


def run_dirs(name, root='.'):
    """Paths derived from a run name."""
    root = Path(root)
    return {'models': root / 'models' / name, 'results': root / 'results' / name,
            'shap': root / 'shap' / name}


def add_root_arg(parser):
    """--root, the folder of every run's outputs, as every script that reads
    or writes a run declares it (add_common_args, export.py, app.py, serve.py)."""
    parser.add_argument('--root', default='.', metavar='DIR',
                        help='folder holding models/, results/ and shap/ (default: .)')
    return parser


def add_common_args(parser):
    """Flags shared by main.py, predict.py, shap_values.py and baselines.py."""
    parser.add_argument('--data-dir', default='data/CPSC', metavar='DIR',
                        help='folder of WFDB records with labels.csv and cache '
                             'from preprocess.py (default: data/CPSC)')
    parser.add_argument('--leads', default='all', metavar='LEADS', type=leads_arg,
                        help="'all' or comma-separated names, e.g. I,aVR,V5 (aliases "
                             'such as MLII or D1 work too) (default: all)')
    parser.add_argument('--seed', default=42, type=int,
                        help='seed of the fold split, init and shuffling '
                             '(default: 42, as in the study)')
    parser.add_argument('--test-fold', default=None, type=int, metavar='K',
                        help='test fold 1..10 for cross-validation; validation '
                             "is fold K%%10+1 (default: the study's seeded split)")
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'],
                        help='auto = cuda when available (default: auto)')
    parser.add_argument('--use-gpu', action='store_true',
                        help='same as --device cuda (kept from the study)')
    parser.add_argument('--lead-map', default=None, metavar='NAME=LEAD[,...]',
                        help="which lead a generically named channel is, e.g. 'ECG=II' or "
                             "'ECG 1=I,ECG 2=II' (default: channels are named by their labels)")
    parser.add_argument('--fs', default=None, type=float, metavar='HZ',
                        help='sampling rate of CSV records without a time column '
                             '(default: from the time column)')
    return add_root_arg(parser)


def sha256_file(path, chunk=2 ** 20):
    """sha256 of a file's bytes, read in chunks (a checkpoint is ~60 MB)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_commit():
    """Short hash of the code that made a result, or 'unknown'."""
    try:
        out = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


# --------------------------------------------------------------------------
# Seeding, device, precision.

def seed_everything(seed):
    """Seed python, numpy and torch (CPU and CUDA)."""
    # PYTHONHASHSEED is not set here: Python reads it only at start-up, so
    # setting it now changes nothing in this process (nor in forked loader
    # workers). Nothing in this code depends on str hash order (sets are
    # sorted before use); tests/test_determinism.py checks that under two
    # hash seeds.
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def select_device(device='auto', use_gpu=False):
    """'auto' | 'cpu' | 'cuda' (+ the study's --use-gpu) -> torch.device.
    Asking for CUDA on a machine without it fails loudly instead of silently
    training on the CPU for days."""
    import torch
    if use_gpu:
        device = 'cuda'
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda / --use-gpu asked for a GPU, but '
                         'torch.cuda.is_available() is False; install a CUDA build '
                         'of torch or run with --device cpu')
    return torch.device(device)


def cpu_supports_bf16():
    """True when this CPU has native bf16 matmul (AVX512-BF16 or AMX)."""
    try:
        flags = Path('/proc/cpuinfo').read_text()
    except OSError:
        return False
    return bool(re.search(r'\b(avx512_bf16|amx_bf16)\b', flags))


def select_precision(device, precision='auto'):
    """-> 'bf16' or 'fp32'. auto: bf16 on CUDA with bf16 support and on CPUs
    with native bf16; fp32 elsewhere (emulated bf16 is slower than fp32)."""
    import torch
    if precision != 'auto':
        return precision
    if device.type == 'cuda':
        # including_emulation=False: V100/T4 run bf16 only emulated, slower
        # than fp32 (torch's default answer True there).
        return 'bf16' if torch.cuda.is_bf16_supported(including_emulation=False) else 'fp32'
    return 'bf16' if cpu_supports_bf16() else 'fp32'


def set_deterministic(on=True):
    """--deterministic: torch.use_deterministic_algorithms and deterministic
    cuDNN (no autotuning), so a run and its --resume give the same weights on
    CUDA as they already do on the CPU. cuBLAS needs CUBLAS_WORKSPACE_CONFIG
    before its first use; it is set here unless the user set it."""
    import torch
    if on:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False


def autocast(device, precision):
    """The autocast context for a precision; a no-op for fp32."""
    import torch
    if precision == 'bf16':
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


# --------------------------------------------------------------------------
# Atomic writes: write to a temporary file beside the target, then rename, so
# a Ctrl-C or a crash never leaves a half-written file under the real name.

@contextmanager
def atomic_path(path):
    """Yields a temporary path in the target's folder; renames it to `path`
    on success and removes it on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files; give outputs the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_torch_save(obj, path):
    import torch
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(text, path):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def atomic_write_json(obj, path):
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=True) + '\n', path)


def atomic_to_csv(df, path, **kwargs):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)


def atomic_savez(path, **arrays):
    """np.savez_compressed, atomically; never pickles (allow_pickle=False on load)."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.savez_compressed(f, **arrays)


def stop_process(proc, wait_s=10):
    """End a child process (a server a test or the bench started): SIGTERM,
    then SIGKILL if it is still there after wait_s, so no run leaves one
    behind."""
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------
# Figures: every script writes PNG files, none needs a display.

def pyplot():
    """matplotlib.pyplot on the Agg backend, the one place that selects it: the
    scripts only write files, and a server or CI machine has no display."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=100, close=True, **savefig):
    """Write a figure as PNG atomically (a crash never leaves a half-written
    image), then close it (pyplot keeps a figure in memory until it is closed;
    close=False for a Figure built without pyplot). savefig: more keywords of
    Figure.savefig (bbox_inches, facecolor)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=dpi, **savefig)
    if close:
        pyplot().close(fig)


# --------------------------------------------------------------------------
# Metrics.

def decide(prob, thresholds):
    """The decision rule of the whole project: a class is present when its
    probability is at or above its threshold. prob (classes,) or (n, classes),
    thresholds (classes,) -> bool array of prob's shape; a NaN score (a
    window that could not be scored) is never present. predict.py,
    baselines.py, the metrics, the app and the API all decide through here."""
    return np.asarray(prob, dtype=np.float64) >= np.asarray(thresholds, dtype=np.float64)


def f1_optimal_thresholds(y_true, y_score):
    """Per-class threshold maximising F1, vectorised over all cut points.

    y_true (n, c) in {0,1}, y_score (n, c). For each class the scores are
    sorted once and F1 is evaluated at every distinct score with cumulative
    sums: O(n log n) per class instead of calling f1_score at 100 fixed
    thresholds as the study's code does. The threshold returned is the midpoint
    between the chosen score and the next lower one, so it is robust to tiny
    numerical differences between validation and test scoring.
    Returns an array of c thresholds.
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score[:, None]
    thresholds = np.full(y_true.shape[1], 0.5)
    for c in range(y_true.shape[1]):
        t, s = y_true[:, c], y_score[:, c]
        npos = t.sum()
        if npos == 0 or npos == len(t):
            continue  # F1 is undefined/constant: keep 0.5
        order = np.argsort(-s, kind='stable')
        s_sorted, t_sorted = s[order], t[order]
        tp = np.cumsum(t_sorted)
        k = np.arange(1, len(s) + 1)
        # Only the last index of each run of equal scores is a valid cut.
        last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
        f1 = np.where(last, 2 * tp / (k + npos), -1.0)
        i = int(np.argmax(f1))
        lower = s_sorted[i + 1] if i + 1 < len(s_sorted) else s_sorted[i] - 1e-6
        thresholds[c] = (s_sorted[i] + lower) / 2
    return thresholds


def _stats(tp, fp, fn, tn):
    """Precision, recall, F1, accuracy from (weighted) confusion counts of any
    shape. Precision, recall and F1 are NaN when the class has no positives in
    the set (undefined there, so left out of macro means); precision is 0 when
    a class with positives is never predicted."""
    with np.errstate(invalid='ignore', divide='ignore'):
        precision = np.where(tp + fn > 0, tp / np.maximum(tp + fp, 1e-12), np.nan)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1e-12), np.nan)
        f1 = np.where(tp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12), np.nan)
        accuracy = (tp + tn) / (tp + fp + fn + tn)
    return precision, recall, f1, accuracy


def weighted_auc(y_true, y_score, weights):
    """ROC AUC of one class under many record weightings at once.

    y_true (n,) bool, y_score (n,), weights (b, n) (bootstrap counts: a
    bootstrap sample is a weighting of the original records). Mann-Whitney U
    with ties counted half, from one sort: O(b*n) instead of b calls to
    roc_auc_score. Returns (b,) with NaN where a weighting has no positive or
    no negative record.
    """
    order = np.argsort(y_score, kind='stable')
    s, y, w = y_score[order], y_true[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    pos = np.add.reduceat(w * y, starts, axis=1)
    neg = np.add.reduceat(w * ~y, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(1)
    den = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def bootstrap_weights(y_true, n_boot, rng, max_rounds=100):
    """(n_boot, n) record counts of bootstrap resamples in which every class
    that has positives and negatives in the set has at least one of each.

    Plain resampling sometimes draws no positive of a rare class (4 of 100
    test records: p ~ 2% per resample); that resample's macro mean is then
    over eight classes, and its per-class value is undefined. Such resamples
    are redrawn (the bootstrap conditional on every class being scorable),
    up to max_rounds times; the few left (only when several classes have one
    or two positives each) get one drawn record swapped for a record of the
    missing kind, so every resample scores every class.
    """
    y = np.asarray(y_true, dtype=bool)
    n = len(y)
    p = np.full(n, 1.0 / n)
    w = rng.multinomial(n, p, size=n_boot)
    need = y.any(0) & (~y).any(0)
    ys = y[:, need].astype(np.int64)

    def bad_rows(w):
        pos = w @ ys
        return ((pos == 0) | (pos == w.sum(1, keepdims=True))).any(1)

    for _ in range(max_rounds):
        bad = bad_rows(w)
        if not bad.any():
            return w
        w[bad] = rng.multinomial(n, p, size=int(bad.sum()))
    for r in np.flatnonzero(bad_rows(w)):
        _repair(w[r], ys, rng)
    return w


def _repair(counts, ys, rng):
    """Swap drawn records, one at a time, for records of a missing kind
    (positive or negative of a class), taking a record whose removal leaves
    every class scorable; in place."""
    for _ in range(2 * ys.shape[1] + len(counts)):
        pos = counts @ ys
        neg = counts.sum() - pos
        missing = [(k, 1) for k in np.flatnonzero(pos == 0)] + \
            [(k, 0) for k in np.flatnonzero(neg == 0)]
        if not missing:
            return
        k, kind = missing[0]
        # a donor must keep >= 1 positive and >= 1 negative of every class
        # that has them now
        left_pos = pos[None, :] - ys
        left_neg = neg[None, :] - (1 - ys)
        safe = (counts > 0) & (((left_pos > 0) | (pos == 0)) & ((left_neg > 0) | (neg == 0))).all(1)
        donors = np.flatnonzero(safe & (ys[:, k] != kind))
        if not len(donors):
            donors = np.flatnonzero((counts > 0) & (ys[:, k] != kind))
        counts[rng.choice(donors)] -= 1
        counts[rng.choice(np.flatnonzero(ys[:, k] == kind))] += 1


def compute_metrics(y_true, y_score, thresholds, classes=CLASSES,
                    n_boot=1000, seed=0):
    """Per-class and macro precision, recall, F1, AUC, accuracy with 95%
    bootstrap CIs (percentile method, records resampled with replacement).

    The bootstrap is vectorised: each resample is a vector of record counts
    (multinomial), confusion counts are one matrix product and AUCs one sort
    per class, so 1000 resamples cost about as much as a few roc_auc_score
    calls. Every resample holds a positive and a negative of every class that
    has both in the set (bootstrap_weights redraws the others), so each macro
    value of the interval averages the same classes as the point estimate.

    Returns a pandas DataFrame indexed by class + 'macro' with columns
    precision, recall, f1, auc, accuracy, n_pos, and <metric>_lo/<metric>_hi.
    Macro values ignore classes that are undefined on this set (no positives).
    """
    import pandas as pd
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    n, c = y_true.shape
    y_pred = decide(y_score, thresholds)
    # Weights (b, n): row 0 is the original set, rows 1.. are bootstrap resamples.
    rng = np.random.default_rng(seed)
    w = np.ones((1, n))
    if n_boot:
        w = np.vstack([w, bootstrap_weights(y_true, n_boot, rng)])
    yt, yp = y_true.astype(float), y_pred.astype(float)
    tp, fp = w @ (yt * yp), w @ ((1 - yt) * yp)
    fn, tn = w @ (yt * (1 - yp)), w @ ((1 - yt) * (1 - yp))
    precision, recall, f1, accuracy = _stats(tp, fp, fn, tn)
    auc = np.stack([weighted_auc(y_true[:, k], y_score[:, k], w) for k in range(c)], axis=1)
    table = {'precision': precision, 'recall': recall, 'f1': f1, 'auc': auc,
             'accuracy': accuracy}  # each (1 + n_boot, c)

    def ci(values):
        values = values[np.isfinite(values)]
        return tuple(np.percentile(values, [2.5, 97.5])) if len(values) else (np.nan, np.nan)

    rows = {}
    for i, name in enumerate(classes):
        row = {k: float(v[0, i]) for k, v in table.items()}
        row['n_pos'] = int(y_true[:, i].sum())
        for k, v in table.items():
            row[f'{k}_lo'], row[f'{k}_hi'] = ci(v[1:, i]) if n_boot else (np.nan, np.nan)
        rows[name] = row
    macro = {'n_pos': int(y_true.sum())}
    for k, v in table.items():
        with warnings.catch_warnings():  # all-NaN rows: mean of nothing is NaN
            warnings.simplefilter('ignore', RuntimeWarning)
            means = np.nanmean(v, axis=1)  # macro over defined classes, per resample
        macro[k] = float(means[0])
        macro[f'{k}_lo'], macro[f'{k}_hi'] = ci(means[1:]) if n_boot else (np.nan, np.nan)
    rows['macro'] = macro
    cols = ['precision', 'recall', 'f1', 'auc', 'accuracy', 'n_pos']
    cols += [f'{k}_{e}' for k in table for e in ('lo', 'hi')]
    return pd.DataFrame.from_dict(rows, orient='index')[cols]


def format_metrics_table(df):
    """The paper's per-class table as Markdown: value (95% CI)."""
    lines = ['| class | precision | recall | F1 | AUC | accuracy | n+ |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for name, row in df.iterrows():
        cells = []
        for k in ('precision', 'recall', 'f1', 'auc', 'accuracy'):
            v, lo, hi = row[k], row[f'{k}_lo'], row[f'{k}_hi']
            if not np.isfinite(v):
                cells.append('n/a')
            elif np.isfinite(lo):
                cells.append(f'{v:.3f} ({lo:.3f}–{hi:.3f})')
            else:
                cells.append(f'{v:.3f}')
        lines.append(f"| {name} | {' | '.join(cells)} | {int(row['n_pos'])} |")
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# thresholds.json: one layout, written by predict.py and baselines.py and read
# by every model user (runs.py); here so that baselines.py stays torch-free.

THRESHOLDS_FORMAT = 2
# Files without 'format' (the first layout) said where their thresholds were
# tuned in a sentence, 'validation fold [4]'; read_thresholds turns it into
# the fields that write_thresholds writes, so runs trained then keep working.
FIRST_LAYOUT_TUNED_ON = re.compile(r'validation fold \[?([\d, ]+)\]?')


def tuned_on_fields(value):
    """'tuned_on' of a thresholds.json -> dict(split, folds, metric, model):
    as written, from the first layout's sentence, {'text': ...} for any other
    sentence, {} when the file does not say."""
    if isinstance(value, dict):
        return dict(value)
    m = FIRST_LAYOUT_TUNED_ON.fullmatch(str(value or '').strip())
    if m:
        return {'split': 'validation', 'folds': [int(f) for f in re.findall(r'\d+', m[1])],
                'metric': 'F1'}
    return {'text': str(value)} if value else {}


def write_thresholds(path, thresholds, classes, tuned_on, **extra):
    """thresholds.json, atomically: {'format': 2, 'classes': [...],
    'thresholds': {class: t}, 'tuned_on': {'split': 'validation', 'folds': [4],
    'metric': 'F1', 'model': <the run or the classifier>}} and `extra` (run,
    leads, seed, commit...) beside them."""
    if len(thresholds) != len(classes):
        raise ValueError(f'{len(thresholds)} thresholds for {len(classes)} classes')
    atomic_write_json({**extra, 'format': THRESHOLDS_FORMAT, 'classes': list(classes),
                             'thresholds': dict(zip(classes, map(float, thresholds))),
                             'tuned_on': tuned_on_fields(tuned_on)}, path)


def read_thresholds(path, classes=None):
    """A thresholds.json -> (thresholds in `classes` order (default: the
    file's), tuned_on fields). Reads write_thresholds' layout and the first
    one: {class: t} or a list in `classes` order, alone or under
    'thresholds', with 'tuned_on' a sentence. SystemExit names the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f'error: cannot read thresholds file {path}: {e}') from e
    described = isinstance(obj, dict) and 'thresholds' in obj
    table = obj['thresholds'] if described else obj
    if classes is None:
        classes = (obj.get('classes') if described else None) or (
            list(table) if isinstance(table, dict) else None)
        if classes is None:
            raise SystemExit(f'error: {path} lists thresholds without their classes')
    if isinstance(table, dict):
        missing = [c for c in classes if c not in table]
        if missing:
            raise SystemExit(f'error: {path} has no threshold for {missing}; rerun predict.py')
        table = [table[c] for c in classes]
    if len(table) != len(classes):
        raise SystemExit(f'error: {path} holds {len(table)} thresholds, expected {len(classes)}')
    tuned_on = tuned_on_fields(obj.get('tuned_on')) if isinstance(obj, dict) else {}
    return np.asarray(table, dtype=np.float64), tuned_on
