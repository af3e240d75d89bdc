"""Explain a trained ResNet's diagnoses with SHAP (expected gradients), as the study did.

Expected gradients (Erion et al., Improving performance of deep learning models
with axiomatic attribution priors and expected gradients, Nature Machine
Intelligence 3:620-631, 2021; the estimate of shap.GradientExplainer, which the
study ran) explains records of the run's test fold against 100 background
records drawn (seeded) from its training folds. Each record is explained for
the classes the model predicts (probability at or above the run's threshold),
not for all nine outputs: that is what the figures show, and it is 5-9x
cheaper. The engine (expected_gradients, explain_record, explain) is the one
the app and the API use; tests/test_app.py checks it against
shap.GradientExplainer (equal within 1e-4, one forward per batch for all
classes instead of one per class).

    # after main.py (models/<run>/best.pt) and, for its thresholds, predict.py
    python shap_values.py --data-dir data/CPSC --leads all
    python shap_values.py --data-dir data/CPSC --leads all --use-gpu --max-records 200
    python shap_values.py --data-dir data/CPSC --patient-ids A0001,A0002
    python shap_values.py --data-dir data/CPSC --per-class 3   # 3 records of each class
    python shap_values.py --data-dir data/CPSC --plots-only      # redraw from the cache
    python shap_values.py --data-dir data/CPSC --root /scratch/runs   # models/ shap/ there

Writes shap/<run>/ (run = utils.run_name, e.g. CPSC-all-s42-f10):
  shap_values.npz        SHAP values, inputs, outputs and the settings fingerprint
                         (numpy arrays, no pickles); reused while model, records and
                         settings are unchanged, so plots are redrawn for free
  records/<pid>_<class>.png
                         the study's patient-level figure: the 4 leads with the most
                         positive SHAP for the class, in s and mV, the real part of the
                         record only, segments of high positive SHAP shaded
  lead_importance.png/.csv, lead_ranking.txt
                         population level: each lead's share of the positive SHAP
                         mass, per predicted class and on average, and the ranking
  additivity.csv         sum of SHAP values vs f(x) - E[f(background)] per explanation
  records/<pid>_<class>_waterfall.png, summary_<class>.png, profile_<class>.png,
  profiles.npz, profile_peaks.csv, lead_contributions.csv
                         population level, by shap_population.py: per-lead contributions
                         (shap's waterfall and beeswarm) and beat-aligned profiles of where
                         each diagnosis lives

What is explained is the logit of each class (the study explained the raw model
outputs, which are logits): SHAP values add up in logit space, and they do not
vanish for confident predictions as they do through the sigmoid
(--output prob explains probabilities instead).

Cost (ResNet-34, 12 leads, 15,000 samples, 2-core CPU, fp32): one gradient of one
output costs ~0.32 s, and expected gradients takes `nsamples` of them per
explained class, so a record predicted with one class takes ~0.32 * nsamples s
(~10 s at the default 32; the study's setting, all 9 outputs at 200 samples,
~10 min). See --nsamples for the accuracy this buys and `python bench.py --only
shap` for the measurement.
"""
import argparse
import hashlib
import json
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import uniform_filter1d
from torch import nn
from tqdm import tqdm

import runs
import shap_population
import utils
from dataset import ECGDataset
from folds import add_trust_folds_arg, check_manifest, write_results_manifest
from records import FS
from utils import CLASSES

CACHE_NAME = 'shap_values.npz'
SHAP_BATCH = 8          # interpolated inputs per forward/backward (memory ~0.1 GB each)
# Version of what the cache holds; bump it when the computation changes.
CACHE_FORMAT = 1


def get_args_parser(add_help=True):
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    utils.add_common_args(parser)
    parser.add_argument('--background', default=100, type=int, metavar='N',
                        help="background records drawn (seeded) from the training folds "
                             "(default: 100, the study's)")
    # 32 keeps a record predicted with one class at ~10 s and with two at ~20 s
    # on a 2-core CPU. On the synthetic test model, maps smoothed over 40 ms at
    # 16-64 samples correlate 0.97-0.99 with those of a 512-sample run and the
    # lead shares differ by <= 0.05 in total; the sum of the values matches
    # f(x) - E[f] to ~5-25% (Monte Carlo error, ~1/sqrt(nsamples)). On a GPU
    # use the study's 200, which costs seconds.
    parser.add_argument('--nsamples', default=32, type=int, metavar='N',
                        help='gradient samples per explained class; cost is linear in N, '
                             'error ~1/sqrt(N) (default: 32: ~10 s per class and record '
                             'on a 2-core CPU, maps within ~0.98 correlation of N=512; '
                             'the study used 200)')
    parser.add_argument('--max-records', default=20, type=int, metavar='M',
                        help='explain the first M records of the test fold in patient-id '
                             'order; 0 = all (default: 20, the whole fold takes hours on '
                             'a CPU)')
    parser.add_argument('--patient-ids', default=None, metavar='IDS',
                        help='comma-separated records to explain instead (any fold; '
                             'default: the test fold)')
    parser.add_argument('-b', '--batch-size', default=16, type=int, metavar='N',
                        help='gradient samples per forward/backward pass; memory grows '
                             'with it (~0.1 GB per sample at 15,000 samples) (default: 16)')
    parser.add_argument('--precision', default='auto', choices=['auto', 'bf16', 'fp32'],
                        help='auto = fp32 on GPUs (bf16 gradients of the input are too '
                             'coarse for attributions, and a GPU affords fp32); bf16 on CPUs '
                             'with native bf16, else fp32 (default: auto)')
    parser.add_argument('--output', default='logit', choices=['logit', 'prob'],
                        help="model output to explain (default: logit, as the study)")
    parser.add_argument('--top-leads', default=4, type=int, metavar='K',
                        help='leads shown per patient-level figure (default: 4)')
    parser.add_argument('--highlight-percentile', default=95.0, type=float, metavar='Q',
                        help='shade where the smoothed positive SHAP value exceeds its Q-th '
                             'percentile over all leads of the record (default: 95)')
    parser.add_argument('--force', action='store_true',
                        help='recompute every record even if the cache is valid')
    parser.add_argument('--plots-only', action='store_true',
                        help='redraw the figures from the cache without the model or data')
    add_trust_folds_arg(parser)
    parser.add_argument('--per-class', default=0, type=int, metavar='K',
                        help='explain the first K test-fold records (patient-id order) of '
                             'each class among those with a single label, so that every '
                             "class has a beat-aligned profile; instead of --max-records "
                             '(default: 0, off)')
    return parser


def shap_precision(device, requested='auto'):
    """SHAP's precision: 'auto' is fp32 on CUDA (see --precision), else as
    utils.select_precision."""
    if requested == 'auto' and device.type == 'cuda':
        return 'fp32'
    return utils.select_precision(device, requested)


# --------------------------------------------------------------------------
# The model as the explanation sees it.

def explained_model(model, thresholds, device, precision, output='logit', chunk=16):
    """Wrap `model` for expected_gradients; see ExplainedOutputs."""
    class ExplainedOutputs(nn.Module):
        """x -> (batch, classes) float32: the explained output (logit or
        probability) minus the class's decision threshold in the same space.

        The shift is a constant, so gradients and SHAP values are those of the
        logits (or probabilities); it makes the predicted classes exactly the
        positive outputs (explained_classes). The forward runs under autocast
        (bf16 where supported) and returns float32. Without gradients it runs
        in chunks (the background is forwarded at once for E[f])."""

        def __init__(self):
            super().__init__()
            self.model = model
            thr = torch.as_tensor(np.asarray(thresholds, dtype=np.float64))
            thr = thr.clamp(1e-6, 1 - 1e-6)
            self.register_buffer('offset', (torch.logit(thr) if output == 'logit' else thr)
                                 .float().to(device))

        def forward(self, x):
            if not torch.is_grad_enabled() and len(x) > chunk:
                return torch.cat([self(x[i:i + chunk]) for i in range(0, len(x), chunk)])
            with utils.autocast(device, precision):
                z = self.model(x)
            z = z.float()
            if output == 'prob':
                z = torch.sigmoid(z)
            return z - self.offset

    for p in model.parameters():
        p.requires_grad_(False)  # gradients are needed for the input only
    return ExplainedOutputs().to(device).eval()


def explain_record(wrapper, x, bg, nsamples, rseed, batch=SHAP_BATCH, progress=None,
                   classes=None):
    """One record x (1, leads, window) -> (values (k, leads, window) float32,
    class indexes (k,), the wrapper's outputs for all classes): expected
    gradients of the classes explained_classes picks (the predicted ones, at
    least the one closest to its threshold), or of `classes` (indexes) when
    the caller names them, against the background bg."""
    with torch.no_grad():
        margins = wrapper(x)[0].double().cpu().numpy()
    classes = explained_classes(margins) if classes is None else [int(c) for c in classes]
    values = expected_gradients(wrapper, x, bg, classes, nsamples, rseed, batch, progress)
    return values, np.asarray(classes, dtype=np.int64), margins


# --------------------------------------------------------------------------
# Fingerprints: what the cached values depend on.

def weights_hash(state_dict):
    """sha256 over the weights' names and bytes: the same model gives the same
    hash wherever and whenever its checkpoint was written."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous().view(-1)
        h.update(f'{name}:{t.dtype}:'.encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def array_hash(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def record_seed(seed, patient_id):
    """The explainer's random seed for one record: independent of which other
    records are explained, so a record's cached values stay valid."""
    return zlib.crc32(f'{seed}:{patient_id}'.encode()) & 0x7fffffff


# --------------------------------------------------------------------------
# The explanations' cache (shap/<run>/shap_values.npz).

def load_explanations(path):
    """-> dict of arrays, or None when absent or unreadable."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            cache = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        print(f'warning: ignoring unreadable cache {path}: {e}')
        return None
    if int(cache.get('format', -1)) != CACHE_FORMAT:
        return None
    return cache


def cache_records(cache):
    """Cache arrays -> {patient_id: dict(x, length, label, prob, classes,
    values, fx, ...)} (one entry per record)."""
    out = {}
    if cache is None:
        return out
    for i, pid in enumerate(cache['patient_ids'].tolist()):
        sel = cache['pair_record'] == i
        out[pid] = {'x': cache['x'][i], 'length': int(cache['lengths'][i]),
                    'label': cache['labels'][i], 'prob': cache['probs'][i],
                    'classes': cache['pair_class'][sel], 'values': cache['values'][sel],
                    'fx': cache['fx'][sel], 'shap_sum': cache['shap_sum'][sel]}
    return out


def save_explanations(path, records, meta):
    """records: {pid: dict} as cache_records returns -> one npz."""
    pids = sorted(records)
    recs = [records[p] for p in pids]
    pair_record = np.concatenate([np.full(len(r['classes']), i) for i, r in enumerate(recs)])
    arrays = {
        'format': np.array(CACHE_FORMAT),
        'fingerprint': np.array(meta['fingerprint']),
        'settings': np.array(json.dumps(meta['settings'], sort_keys=True)),
        'leads': np.array(meta['leads']), 'classes': np.array(CLASSES),
        'thresholds': np.asarray(meta['thresholds'], dtype=np.float64),
        'threshold_source': np.array(meta['threshold_source']),
        'expected_value': np.asarray(meta['expected_value'], dtype=np.float64),
        'patient_ids': np.array(pids),
        'x': np.stack([r['x'] for r in recs]).astype(np.float32),
        'lengths': np.array([r['length'] for r in recs], dtype=np.int64),
        'labels': np.stack([r['label'] for r in recs]).astype(np.float32),
        'probs': np.stack([r['prob'] for r in recs]).astype(np.float32),
        'pair_record': pair_record.astype(np.int64),
        'pair_class': np.concatenate([r['classes'] for r in recs]).astype(np.int64),
        'values': np.concatenate([r['values'] for r in recs]).astype(np.float32),
        'fx': np.concatenate([r['fx'] for r in recs]).astype(np.float64),
        'shap_sum': np.concatenate([r['shap_sum'] for r in recs]).astype(np.float64),
    }
    utils.atomic_savez(path, **arrays)


# --------------------------------------------------------------------------
# Inputs: the records to explain.

def select_records(args, leads, window, test_folds):
    """-> (ECGDataset, indices into it) of the records to explain."""
    if args.patient_ids:
        wanted = [p.strip() for p in args.patient_ids.split(',') if p.strip()]
        ds = ECGDataset(args.data_dir, range(1, utils.NFOLDS + 1), leads, window=window)
        where = {p: i for i, p in enumerate(ds.patient_ids)}
        unknown = [p for p in wanted if p not in where]
        if unknown:
            raise SystemExit(f"error: unknown patient id(s) {', '.join(unknown)}: not in "
                             f'{args.data_dir}/labels.csv (ids look like {ds.patient_ids[0]})')
        return ds, [where[p] for p in dict.fromkeys(wanted)]
    ds = ECGDataset(args.data_dir, test_folds, leads, window=window)
    if getattr(args, 'per_class', 0) > 0:
        return ds, per_class_records(ds, args.per_class)
    order = np.argsort(ds.patient_ids, kind='stable')
    if args.max_records > 0:
        order = order[:args.max_records]
    return ds, [int(i) for i in order]


def per_class_records(ds, k):
    """Indices of the first k single-label records of each class in
    patient-id order (a multi-label record would mix two classes' profiles)."""
    order = np.argsort(ds.patient_ids, kind='stable')
    single = [int(i) for i in order if ds.labels[i].sum() == 1]
    chosen = [i for c in range(len(CLASSES)) for i in [j for j in single if ds.labels[j][c]][:k]]
    return sorted(chosen, key=lambda i: ds.patient_ids[i])


# --------------------------------------------------------------------------
# The explanation engine: one record's SHAP values, for the app and the API.

# The app's explanation: expected gradients as shap_values.py, but cheaper so that
# a record takes <= 15 s on a 2-core CPU with ResNet-34 (see explain()).
APP_NSAMPLES = 16
APP_BACKGROUND = 20


def background(run, root='.', n=APP_BACKGROUND):
    """(tensor (m, leads, window), dict(kind, n, db, expected)): n training
    records of the model's own run (runs.training_records: seeded, as
    shap_values.py draws its background), or a flat line when the training
    data is not on this machine; `expected` is the mean logit over them,
    E[f] of the additivity check (computed here once per model: m forward
    passes)."""
    drawn = runs.training_records(run, n, root)
    if drawn is None:
        x = torch.zeros(1, len(run.leads), run.window)
        meta = {'kind': 'flat', 'n': 1, 'db': run.card['data_dir'] or run.database}
    else:
        x, ids = drawn
        meta = {'kind': 'train', 'n': len(ids), 'db': run.database}
    meta['expected'] = mean_logits(run, x)
    return x, meta


def mean_logits(run, x, chunk=16):
    with torch.inference_mode():
        out = torch.cat([run.model(x[i:i + chunk]).float() for i in range(0, len(x), chunk)])
    return out.double().mean(0).numpy()


def expected_gradients(f, x, bg, classes, nsamples, rseed, batch=SHAP_BATCH, progress=None):
    """SHAP values of f's outputs `classes` at x (1, leads, window) -> (k, leads,
    window) float32: shap.GradientExplainer's estimate exactly (same seeded draws
    of a background record and a point on the path, np.random.seed(rseed) then
    choice/uniform per sample), but every class from one forward pass per batch
    of interpolated inputs (one backward per class) instead of one forward and
    backward per class and sample batch."""
    rs = np.random.RandomState(rseed)
    draws = [(rs.choice(bg.shape[0]), rs.uniform()) for _ in range(nsamples)]
    acc = np.zeros((len(classes),) + tuple(x.shape[1:]))
    done = 0
    for b in range(0, nsamples, batch):
        chunk = draws[b:b + batch]
        idx = torch.tensor([d[0] for d in chunk], device=bg.device)
        tt = torch.tensor([d[1] for d in chunk], dtype=torch.float32,
                          device=x.device)[:, None, None]
        inp = (tt * x + (1 - tt) * bg[idx]).detach().requires_grad_(True)
        delta = (x - bg[idx]).cpu().numpy().astype(np.float64)
        with torch.enable_grad():
            out = f(inp)
            for j, c in enumerate(classes):
                g, = torch.autograd.grad(out[:, c].sum(), inp,
                                         retain_graph=j < len(classes) - 1)
                acc[j] += (g.double().cpu().numpy() * delta).sum(0)
        done += len(chunk)
        if progress:
            progress(done, nsamples)
    return (acc / nsamples).astype(np.float32)


def explained_classes(margins):
    """Logit minus the threshold's logit, per class -> the classes explained:
    the predicted ones (margin >= 0), largest first, at least the top one."""
    order = np.argsort(-np.asarray(margins), kind='stable')
    return [int(c) for c in order[:max(1, int((np.asarray(margins) >= 0).sum()))]]


def logit_margins(prob, thresholds):
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-6, 1 - 1e-6)
    th = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)) - np.log(th / (1 - th))


def explain(run, record, nsamples=APP_NSAMPLES, root='.', bg=None, progress=None,
            classes=None):
    """SHAP of a record's predicted classes (at least the most likely one), or
    of `classes` (indexes) -> dict(classes, values (k, leads, window), fx,
    expected, shap_sum, rel_error, seconds, background, nsamples). run: a
    runs.Run on the CPU."""
    t0 = time.perf_counter()
    device = torch.device('cpu')
    wrapper = explained_model(run.model, run.thresholds, device, 'fp32', chunk=16)
    bg_x, bg_info = bg if bg is not None else background(run, root)
    x = torch.from_numpy(record.x)[None]
    offset = wrapper.offset.double().numpy()
    expected = bg_info['expected'] if 'expected' in bg_info else mean_logits(run, bg_x)
    values, classes, margins = explain_record(wrapper, x, bg_x, nsamples,
                                              record_seed(0, record.id), progress=progress,
                                              classes=classes)
    classes = classes.tolist()
    fx = margins[classes] + offset[classes]
    shap_sum = values.reshape(len(classes), -1).sum(-1).astype(np.float64)
    target = fx - expected[classes]
    rel = np.abs(shap_sum - target) / np.maximum(np.abs(target), 1e-8)
    return {'classes': classes, 'values': values, 'fx': fx, 'expected': expected[classes],
            'shap_sum': shap_sum, 'rel_error': rel, 'seconds': time.perf_counter() - t0,
            'background': bg_info, 'nsamples': nsamples}


# --------------------------------------------------------------------------
# Summaries of the values.

def positive_mass(values, length):
    """(..., leads, window) -> (..., leads): positive SHAP summed over the
    record's real samples (the padding in front is not part of the record)."""
    return np.clip(values[..., values.shape[-1] - length:], 0, None).sum(-1)


def lead_importance(records, leads):
    """Share of positive SHAP mass per lead, averaged over the records
    predicted with each class -> DataFrame (classes present + 'average', leads),
    with the number of records in column 'n'. The average row weighs each
    class equally, so frequent classes do not dominate it."""
    shares = {c: [] for c in CLASSES}
    for r in records.values():
        mass = positive_mass(r['values'], r['length'])
        for c, m in zip(r['classes'], mass):
            if utils.decide(r['prob'][c], r['threshold'][c]) and m.sum() > 0:
                shares[CLASSES[c]].append(m / m.sum())
    rows = {c: np.mean(s, axis=0) for c, s in shares.items() if s}
    if not rows:
        return pd.DataFrame(columns=list(leads) + ['n'])
    df = pd.DataFrame(rows, index=leads).T
    df.loc['average'] = df.mean(axis=0)
    df['n'] = [len(shares[c]) for c in df.index[:-1]] + [sum(len(s) for s in shares.values())]
    return df


def additivity_table(records, expected):
    """Per explanation: f(x), E[f(background)], sum of SHAP, error."""
    rows = []
    for pid, r in sorted(records.items()):
        for c, fx, s in zip(r['classes'], r['fx'], r['shap_sum']):
            target = fx - expected[c]
            rows.append({'patient_id': pid, 'class': CLASSES[c], 'fx': fx,
                         'expected': expected[c], 'shap_sum': s, 'error': s - target,
                         'rel_error': abs(s - target) / max(abs(target), 1e-8)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Figures.

def highlight_mask(values, length, percentile, smooth_ms=40):
    """(leads, window) -> bool (leads, length): where the positive SHAP value,
    smoothed over `smooth_ms`, exceeds its `percentile` over all leads of the
    record. Smoothing turns sample-level noise of the Monte Carlo estimate into
    segments a reader can see."""
    pos = np.clip(values[:, values.shape[-1] - length:], 0, None)
    smooth = uniform_filter1d(pos, size=max(1, int(smooth_ms * FS / 1000)), axis=-1)
    cut = np.percentile(smooth, percentile)
    return (smooth > cut) & (smooth > 0)


def plot_record(path, pid, x, length, values, cls, leads, label, prob, threshold,
                output, top_leads=4, percentile=95.0):
    """The study's patient-level figure ('shap1'): the top leads by positive
    SHAP mass for `cls`, with the segments of high positive SHAP shaded."""
    plt = utils.pyplot()
    mass = positive_mass(values, length)
    share = mass / mass.sum() if mass.sum() > 0 else mass
    top = np.argsort(-mass, kind='stable')[:top_leads]
    mask = highlight_mask(values, length, percentile)
    t = np.arange(length) / FS
    sig = x[:, x.shape[-1] - length:]
    true = ', '.join(CLASSES[i] for i in np.flatnonzero(label)) or 'none'
    pred = ', '.join(f'{CLASSES[i]} ({prob[i]:.2f})'
                     for i in np.flatnonzero(utils.decide(prob, threshold)))
    fig, axs = plt.subplots(len(top), 1, figsize=(14, 1.6 * len(top) + 1.1), sharex=True,
                            squeeze=False)
    for ax, lead in zip(axs[:, 0], top):
        ax.plot(t, sig[lead], color='k', lw=0.6)
        ax.fill_between(t, 0, 1, where=mask[lead], color='tab:red', alpha=0.3, lw=0,
                        transform=ax.get_xaxis_transform())
        ax.set_ylabel(f'{leads[lead]} (mV)\n{share[lead]:.0%} of +SHAP', fontsize=9)
        ax.grid(alpha=0.3)
        ax.margins(x=0)
    axs[-1, 0].set_xlabel('time (s)')
    fig.suptitle(f'{pid}   true: {true}   predicted: {pred or "none"}\n'
                 f'SHAP for {CLASSES[cls]} ({output}, p={prob[cls]:.2f}); shaded: smoothed '
                 f'positive SHAP above its {percentile:g}th percentile', fontsize=10)
    fig.tight_layout()
    utils.save_figure(fig, path, dpi=100)


def plot_lead_importance(path, table):
    """Heatmap class x lead of the share of positive SHAP mass."""
    plt = utils.pyplot()
    leads = [c for c in table.columns if c != 'n']
    data = table[leads].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(leads), 1.0 + 0.5 * len(table)))
    im = ax.imshow(data, cmap='Reds', vmin=0, aspect='auto')
    ax.set_xticks(range(len(leads)), leads)
    ax.set_yticks(range(len(table)), [f'{c} (n={int(n)})' for c, n in zip(table.index, table['n'])])
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, f'{100 * data[i, j]:.0f}', ha='center', va='center', fontsize=7,
                    color='white' if data[i, j] > 0.6 * np.nanmax(data) else 'black')
    ax.axhline(len(table) - 1.5, color='k', lw=1)
    fig.colorbar(im, ax=ax, label='share of positive SHAP mass')
    ax.set_title('Lead importance per predicted class (%)')
    fig.tight_layout()
    utils.save_figure(fig, path, dpi=100)


def write_outputs(out_dir, records, meta, pids, args):
    """Patient-level figures, population-level table/heatmap/ranking,
    additivity table, for the records `pids`."""
    out_dir = Path(out_dir)
    leads, output = list(meta['leads']), meta['output']
    thr, expected = np.asarray(meta['thresholds']), np.asarray(meta['expected_value'])
    chosen = {p: dict(records[p], threshold=thr) for p in pids}
    n_fig = 0
    for pid, r in chosen.items():
        for c, v in zip(r['classes'], r['values']):
            plot_record(out_dir / 'records' / f'{pid}_{CLASSES[c]}.png', pid, r['x'],
                        r['length'], v, int(c), leads, r['label'], r['prob'], thr, output,
                        args.top_leads, args.highlight_percentile)
            n_fig += 1
    print(f'{n_fig} patient-level figures in {out_dir / "records"}')

    table = lead_importance(chosen, leads)
    if len(table):
        utils.atomic_to_csv(table, out_dir / 'lead_importance.csv', index_label='class',
                            float_format='%.4f')
        plot_lead_importance(out_dir / 'lead_importance.png', table)
        ranking = table.loc['average', leads].sort_values(ascending=False)
        lines = [f'{i + 1:2d}. {lead:4s} {share:6.1%}' for i, (lead, share)
                 in enumerate(ranking.items())]
        text = ('Lead ranking by mean share of positive SHAP mass (classes weighted '
                f'equally, {int(table.loc["average", "n"])} explanations of predicted '
                'classes):\n' + '\n'.join(lines) + '\n')
        utils.atomic_write_text(text, out_dir / 'lead_ranking.txt')
        print(table.to_string(float_format=lambda v: f'{v:.2f}'))
        print(text, end='')
    else:
        print('no record was predicted with any class: no lead importance table')

    add = additivity_table(chosen, expected)
    utils.atomic_to_csv(add, out_dir / 'additivity.csv', index=False, float_format='%.6g')
    if len(add):
        print(f'additivity (sum of SHAP vs f(x) - E[f], {output}): median |error| '
              f'{add["error"].abs().median():.3g}, median relative error '
              f'{add["rel_error"].median():.1%} over {len(add)} explanations '
              f'(expected gradients is additive in expectation; the Monte Carlo error '
              f'falls as 1/sqrt(nsamples))')
    # Waterfalls, summaries and beat-aligned profiles (shap_population.py).
    shap_population.write_population_outputs(out_dir, chosen, leads, expected, output,
                                             data_dir=getattr(args, 'data_dir', None))
    return table, add


# --------------------------------------------------------------------------

def redraw(args, dirs):
    """--plots-only: the figures again from the cache, without model or data."""
    cache_path = dirs['shap'] / CACHE_NAME
    cache = load_explanations(cache_path)
    if cache is None:
        raise SystemExit(f'error: no SHAP cache {cache_path}; run shap_values.py without '
                         f'--plots-only first')
    records = cache_records(cache)
    pids = sorted(records)
    if args.patient_ids:
        pids = [p.strip() for p in args.patient_ids.split(',') if p.strip()]
        unknown = [p for p in pids if p not in records]
        if unknown:
            raise SystemExit(f"error: patient id(s) {', '.join(unknown)} are not in "
                             f'{cache_path}; run without --plots-only to explain them')
    meta = {'leads': cache['leads'].tolist(), 'thresholds': cache['thresholds'],
            'expected_value': cache['expected_value'],
            'output': json.loads(str(cache['settings']))['output']}
    print(f'redrawing {len(pids)} records from {cache_path}')
    return write_outputs(dirs['shap'], records, meta, pids, args)


def open_run(args, dirs):
    """The run's model on its device, checked against the folds ->
    (runs.Run, device, precision, folds {'train', 'test'}); writes
    shap/<run>/folds.json."""
    utils.seed_everything(args.seed)
    device = utils.select_device(args.device, args.use_gpu)
    precision = shap_precision(device, args.precision)
    best = dirs['models'] / 'best.pt'
    run = runs.load_run(best, args.root, leads=args.leads, device=device)
    train_folds, _, test_folds = utils.split_data(args.seed, args.test_fold)
    manifest = check_manifest(run.ckpt.get('fold_manifest'), args.data_dir, best,
                              args.trust_folds, run.ckpt.get('folds'), 'shap_values.py')
    folds = {'train': train_folds, 'test': test_folds}
    write_results_manifest(dirs['shap'], manifest, run.ckpt.get('fold_manifest'), best, folds)
    runs.check_fold_classes(run)
    print(f'model {best} ({run.ckpt.get("arch")}, epoch {run.ckpt.get("epoch")}), '
          f'{len(run.leads)} leads, window {run.window}; device {device}, {precision}; '
          f'thresholds: {runs.thresholds_text(run.source)}')
    return run, device, precision, folds


def reusable(cache, fingerprint, settings, cache_path, force):
    """The cached records made with these settings ({} when none or --force)."""
    if cache is None or force:
        return {}
    if str(cache['fingerprint']) == fingerprint:
        return cache_records(cache)
    old = json.loads(str(cache['settings']))
    changed = [k for k in settings if old.get(k) != settings[k]]
    print(f"cache {cache_path} was made with other settings ({', '.join(changed)}): "
          f'recomputing')
    return {}


def compute(args, run, device, precision, background, todo, ds):
    """Expected gradients of the records `todo` [(index, pid, x)] with the
    run's model on `device` -> (records {pid: dict}, E[f(background)] per
    class)."""
    wrapper = explained_model(run.model, run.thresholds, device, precision, args.output,
                              chunk=args.batch_size)
    offset = wrapper.offset.double().cpu().numpy()
    bg = background.to(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        expected = wrapper(bg).mean(0).double().cpu().numpy() + offset
    print(f'background forward {time.perf_counter() - t0:.1f} s')
    t0 = time.perf_counter()
    records = {}
    bar = tqdm(todo, unit='record', desc='SHAP')
    for i, pid, x in bar:
        bar.set_postfix(record=pid)
        values, idx, margins = explain_record(wrapper, torch.from_numpy(x)[None].to(device), bg,
                                              args.nsamples, record_seed(args.seed, pid),
                                              batch=args.batch_size)
        out = margins + offset
        prob = 1 / (1 + np.exp(-out)) if args.output == 'logit' else out
        records[pid] = {'x': x, 'length': int(ds.lengths[i]), 'label': ds.labels[i],
                        'prob': prob, 'classes': idx, 'values': values, 'fx': out[idx],
                        'shap_sum': values.reshape(len(idx), -1).sum(-1)}
    per = (time.perf_counter() - t0) / len(todo)
    print(f'explained {len(todo)} records in {time.perf_counter() - t0:.0f} s '
          f'({per:.1f} s per record)')
    return records, expected


def explain_run(args, dirs):
    """Load the run, reuse the cached records still valid, explain the rest,
    save the cache -> (records {pid: dict}, meta for write_outputs)."""
    cache_path = dirs['shap'] / CACHE_NAME
    run, device, precision, folds = open_run(args, dirs)
    leads, window, thresholds = run.leads, run.window, run.thresholds
    ds, chosen = select_records(args, leads, window, folds['test'])
    background, bg_ids = runs.draw_records(args.data_dir, leads, window, folds['train'],
                                           args.background, args.seed)
    settings = {'format': CACHE_FORMAT, 'engine': 'expected_gradients',
                'model': weights_hash(run.model.state_dict()), 'leads': leads,
                'window': window, 'background': array_hash(background.numpy()),
                'n_background': len(bg_ids), 'nsamples': args.nsamples, 'seed': args.seed,
                'precision': precision, 'output': args.output,
                'thresholds': [round(float(t), 6) for t in thresholds]}
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    cache = load_explanations(cache_path)
    cached = reusable(cache, fingerprint, settings, cache_path, args.force)

    records, todo = {}, []
    for i in chosen:
        pid = ds.patient_ids[i]
        x = ds[i][0].numpy()
        if pid in cached and np.array_equal(cached[pid]['x'], x):
            records[pid] = cached[pid]
        else:
            todo.append((i, pid, x))
    print(f'{len(chosen)} records to explain: {len(records)} reused from {cache_path}, '
          f'{len(todo)} to compute (background: {len(bg_ids)} training records, '
          f'nsamples {args.nsamples}, {args.output})')
    if not todo:
        expected = cache['expected_value'] if cache is not None else np.zeros(len(CLASSES))
        print(f'all values reused from {cache_path}; nothing recomputed')
    else:
        new, expected = compute(args, run, device, precision, background, todo, ds)
        records.update(new)
        keep = {**cached, **records}  # earlier records stay cached for later runs
        save_explanations(cache_path, keep, {
            'fingerprint': fingerprint, 'settings': settings, 'leads': leads,
            'thresholds': thresholds, 'threshold_source': runs.thresholds_text(run.source),
            'expected_value': expected})
        print(f'saved {cache_path} ({len(keep)} records)')
    return records, {'leads': leads, 'thresholds': thresholds, 'expected_value': expected,
                     'output': args.output}


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    name = utils.run_name(args.data_dir, args.leads, args.seed, args.test_fold)
    dirs = utils.run_dirs(name, args.root)
    print(f'run {name}; commit {utils.git_commit()}; seed {args.seed}')
    if args.plots_only:
        return redraw(args, dirs)
    records, meta = explain_run(args, dirs)
    return write_outputs(dirs['shap'], records, meta, sorted(records), args)


if __name__ == '__main__':
    main()
