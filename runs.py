"""A trained run as predict.py, shap_values.py, export.py, the app and the API
use it: a checkpoint of main.py (or the study's bare weights) loaded into one
`Run` (the model, its classes, leads and window, the thresholds it decides
with and where they were tuned, its card and provenance; thresholds.json is
read through utils.read_thresholds), and scoring with a run (folds of a
database, consecutive windows of a record, training records drawn for SHAP
and int8 calibration). Nothing here is a script.

    import runs, utils
    from resnet import probabilities
    run = runs.load_run('models/SYNTH-all-s42-f7/best.pt')
    prob = probabilities(run.model, x)              # x (n, leads, window)
    present = utils.decide(prob, run.thresholds)    # (n, classes) bool

read_checkpoint is the one place that unpickles a checkpoint, and only with
weights_only=True: a checkpoint can hold tensors, numbers, strings, lists and
dicts, never code.
"""
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

import utils
from dataset import ECGDataset, collate
from engine import evaluate
from records import LEADS, WINDOW, parse_leads
from resnet import ARCHS, build_model, infer_arch
from utils import CLASSES

# --------------------------------------------------------------------------
# Checkpoints.

# What a Run keeps of its checkpoint: its description, not the weights (the
# model holds them) nor the training state.
TRAINING_STATE = ('model', 'optimizer', 'scheduler', 'rng')


def read_checkpoint(path, map_location='cpu'):
    """The repository's one checkpoint reader -> the object saved at `path`
    (a main.py checkpoint dict or a bare state dict). SystemExit names the
    file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f'error: no checkpoint {path}; train it first with '
                         f'`python main.py --data-dir DIR --leads LEADS --seed S` '
                         f'(it writes models/<run>/best.pt) or pass --model-path')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any unpickling failure is one message
        raise SystemExit(f'error: cannot read checkpoint {path}: {e}') from e


def describe(obj, path, leads=None):
    """A checkpoint object -> the checkpoint dict with its leads and 'bare'.
    A main.py checkpoint describes itself, and `leads` (when given) must be
    its own; a bare state dict (the study's weights) is taken as `leads`,
    default the 12 leads the study's published weights read."""
    wanted = parse_leads(leads) if leads is not None else None
    if isinstance(obj, dict) and 'model' in obj and isinstance(obj['model'], dict):
        ckpt = dict(obj, bare=False)
        own = list(ckpt.get('leads') or [])
        if wanted is not None and own and wanted != own:
            raise SystemExit(f"error: {path} was trained on leads {','.join(own)}, "
                             f"not {','.join(wanted)}; pass --leads "
                             f"{','.join(own)} or the checkpoint of that lead set")
        ckpt['leads'] = own or wanted
        if ckpt['leads'] is None:
            raise SystemExit(f'error: {path} records no lead list; pass --leads')
        return ckpt
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {'model': obj, 'leads': wanted or list(LEADS), 'classes': list(CLASSES),
                'bare': True}
    raise SystemExit(f'error: {path} is neither a main.py checkpoint nor a state_dict')


def load_checkpoint(path, leads=None, map_location='cpu'):
    """-> (model in eval mode, checkpoint dict with arch, leads, classes and
    'bare' filled in). See describe() for `leads`; a checkpoint whose weights
    do not fit its description (lead count, architecture) is refused."""
    ckpt = describe(read_checkpoint(path, map_location), path, leads)
    # DDP / torch.compile prefixes, so their checkpoints load like plain ones.
    state = {k.removeprefix('module.').removeprefix('_orig_mod.'): v
             for k, v in ckpt['model'].items()}
    arch = ckpt.get('arch') or infer_arch(state)
    if arch not in ARCHS:
        raise SystemExit(f'error: {path} has unknown architecture {arch!r}; '
                         f"known: {', '.join(ARCHS)}")
    leads = ckpt['leads']
    in_ch = state['conv1.weight'].shape[1] if 'conv1.weight' in state else None
    if in_ch is not None and in_ch != len(leads):
        raise SystemExit(f'error: {path} expects {in_ch} input leads, but {len(leads)} were '
                         f'given ({",".join(leads)})'
                         + ('; pass --leads with the leads it was trained on'
                            if ckpt['bare'] else ''))
    num_classes = state['fc.weight'].shape[0] if 'fc.weight' in state else len(CLASSES)
    model = build_model(arch, len(leads), num_classes,
                        mask_padding=bool(ckpt.get('mask_padding', False)))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else repr(e)
        raise SystemExit(f'error: {path} does not match {arch}: {first}') from e
    ckpt.setdefault('arch', arch)
    ckpt.setdefault('classes', list(CLASSES))
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval(), ckpt


def window_of(ckpt):
    """The model's input length (samples at 500 Hz): the checkpoint's window,
    else its training arguments', else records.WINDOW (the study's 30 s,
    what its bare weights were trained on)."""
    return int(ckpt.get('window') or (ckpt.get('args') or {}).get('window') or WINDOW)


def run_thresholds(model_path, classes, root='.', path=None, bare=False):
    """The thresholds a run decides with -> (array in `classes` order, source
    dict(kind 'tuned'|'default', path, tuned_on)): `path` (--thresholds; it
    must exist), else results/<run>/thresholds.json (run = the checkpoint's
    folder name), else 0.5 for every class, as for a bare state dict (the
    study's weights came without thresholds)."""
    run_file = utils.run_dirs(Path(model_path).parent.name, root)['results'] / 'thresholds.json'
    file = Path(path) if path else run_file
    if path and not file.is_file():
        raise SystemExit(f'error: no thresholds file {file}')
    if not path and (bare or not file.is_file()):
        return np.full(len(classes), 0.5), {'kind': 'default', 'path': str(file),
                                            'tuned_on': {}}
    values, tuned_on = utils.read_thresholds(file, classes)
    return values, {'kind': 'tuned', 'path': str(file), 'tuned_on': tuned_on}


def thresholds_text(source):
    """Where a run's thresholds come from, in one line for a terminal."""
    if source['kind'] == 'tuned':
        return str(source['path'])
    return f"0.5 (no {source['path']}; run predict.py on the run)"


# --------------------------------------------------------------------------
# A trained run.

@dataclass
class Run:
    """A trained model with what using it needs: load_run's answer."""
    model: torch.nn.Module   # eval mode, on the device it was loaded to
    name: str                # the run (models/<name>/best.pt): says which, shows no path
    path: Path               # the checkpoint file on this machine
    classes: list            # the model's outputs, in order
    leads: list              # the model's inputs, in order
    window: int              # input samples at 500 Hz (window_of)
    thresholds: np.ndarray   # one per class, in `classes` order (utils.decide)
    source: dict             # where the thresholds come from (run_thresholds)
    card: dict               # what a page says about the model (model_card)
    database: str            # what it was trained on ('?' for bare weights)
    synthetic: bool          # trained on synthetic.py's records: a demo, not a diagnosis
                             # (the checkpoint's data provenance: is_synthetic)
    commit: str | None       # the code that trained it
    folds: dict              # its train/val/test folds ({} for bare weights)
    bare: bool               # a state dict without description (the study's weights)
    key: str                 # path, size and mtime: the file's identity for caches
    ckpt: dict               # the checkpoint's description (args, arch, fold_manifest...)

    @functools.cached_property
    def sha256(self):
        """The checkpoint file's sha256 (computed once: ~0.1 s a 60-MB file)."""
        return utils.sha256_file(self.path)


def load_run(path, root='.', leads=None, device='cpu', thresholds=None):
    """The one loader of a trained run: a checkpoint -> Run. root: the folder
    of models/ and results/ (the thresholds and the card's figures). leads:
    refuse a checkpoint of another lead set (describe()). thresholds: a
    thresholds.json instead of the run's own (run_thresholds); False reads
    none (predict.py is about to tune them): 0.5 each. SystemExit says why a
    checkpoint cannot be used."""
    path = Path(path)
    model, ckpt = load_checkpoint(path, leads, device)
    classes, bare = list(ckpt['classes']), ckpt['bare']
    if thresholds is False:
        values, source = np.full(len(classes), 0.5), {'kind': 'default', 'path': None,
                                                      'tuned_on': {}}
    else:
        values, source = run_thresholds(path, classes, root, thresholds, bare)
    card = model_card(path, ckpt, root, bare) | {'thresholds': source}
    return Run(model=model, name=path.parent.name, path=path, classes=classes,
               leads=list(ckpt['leads']), window=window_of(ckpt), thresholds=values,
               source=source, card=card, database=card['database'],
               synthetic=is_synthetic(ckpt, card['database']),
               commit=ckpt.get('commit'), folds=dict(ckpt.get('folds') or {}), bare=bare,
               key=model_key(path),
               ckpt={k: v for k, v in ckpt.items() if k not in TRAINING_STATE})


def is_synthetic(ckpt, database):
    """Was the model trained on synthetic.py's records? The data's provenance
    decides (main.py writes it into the checkpoint from preprocess.py's
    folds.json, which knows synthetic.py's synthetic.json), whatever the
    folder was called; only a checkpoint from before provenance was recorded
    falls back to the database's name (SYNTH...)."""
    prov = ckpt.get('provenance')
    if isinstance(prov, dict) and 'synthetic' in prov:
        return bool(prov['synthetic'])
    return str(database).upper().startswith('SYNTH')


def model_card(path, ckpt, root='.', bare=False):
    """What a page says about a model: from the checkpoint and, when
    predict.py has scored the run, results/<run>/metrics.csv."""
    args = ckpt.get('args') or {}
    run = Path(path).parent.name
    database = utils.database_name(args['data_dir']) if args.get('data_dir') else (
        run.split('-')[0] if not bare else '?')
    folds = ckpt.get('folds') or {}
    card = {'run': run, 'database': database, 'leads': list(ckpt['leads']),
            'arch': ckpt.get('arch', '?'), 'epoch': ckpt.get('epoch'),
            'best_epoch': ckpt.get('best_epoch'), 'window': ckpt.get('window'),
            'test_fold': folds.get('test'), 'commit': ckpt.get('commit'), 'bare': bare,
            'data_dir': args.get('data_dir'), 'train_folds': folds.get('train'),
            'seed': args.get('seed', 42), 'macro': None}
    metrics = utils.run_dirs(run, root)['results'] / 'metrics.csv'
    if not bare and metrics.is_file():
        m = pd.read_csv(metrics, index_col='class')
        if 'macro' in m.index:
            row = m.loc['macro']
            card['macro'] = {k: (float(row[k]), float(row[f'{k}_lo']), float(row[f'{k}_hi']))
                             for k in ('auc', 'f1')}
    return card


def find_models(root='.'):
    """models/*/best.pt under root, newest first."""
    paths = [p for p in Path(root, 'models').glob('*/best.pt') if p.is_file()]
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)


def model_key(path):
    """Identity of a checkpoint file for caches: path, size and mtime."""
    st = Path(path).stat()
    return f'{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}'


def check_fold_classes(run):
    """A fold's labels (labels.csv: the columns of utils.CLASSES) can score
    only a run of the same classes -> its classes; SystemExit otherwise."""
    if run.classes != CLASSES:
        raise SystemExit(f"error: {run.path} predicts {','.join(run.classes)}, but labels.csv "
                         f"holds {','.join(CLASSES)} (utils.CLASSES); score it with "
                         'predict.py --records, or retrain it on these classes')
    return run.classes


# --------------------------------------------------------------------------
# Scoring with a run.

def score_folds(run, data_dir, folds, device, precision, batch_size=32, workers=0):
    """-> (patient_ids, labels (n, classes), scores (n, classes)) of the
    run's model on these folds of a preprocessed database, full window."""
    ds = ECGDataset(data_dir, folds, leads=run.leads, window=run.window, augment=False,
                    trim=False)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    if ds.left_out:
        print(f"folds {list(folds)}: left out {ds.left_out} records that neither hold nor can "
              f"derive leads {','.join(run.leads)} (labels.csv leads)")
    out = evaluate(run.model, loader, torch.nn.BCEWithLogitsLoss(), device, precision)
    return list(ds.patient_ids), out['labels'], out['scores']


def scored_row(row, scores, classes, thresholds):
    """A row with its scores (NaN: no usable window) and the diagnoses they decide."""
    present = utils.decide(scores, thresholds)
    return dict(row, **{f'score_{c}': float(v) for c, v in zip(classes, scores)},
                diagnoses=';'.join(c for c, p in zip(classes, present) if p))


class SegmentScorer:
    """Batches windows through the model; rows come back with their scores
    and diagnoses (a row without a window keeps NaN scores). Memory holds one
    batch of windows, whatever the record's length. predict.py --segments
    and the API's segments=true."""

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
            out.append(scored_row(row, s, self.classes, self.thresholds))
        if self.bar is not None:
            self.bar.update(len(self.pending))
        self.pending, self.xs = [], []
        return out

    def summary(self, mine):
        """One line per record scored by --segments (its rows): windows per diagnosis."""
        first = mine[0]
        bad = sum(1 for r in mine if np.isnan(r[f'score_{self.classes[0]}']))
        flagged = sum(1 for r in mine if r['quality'] != 'ok') - bad
        counts = {c: sum(c in r['diagnoses'].split(';') for r in mine) for c in self.classes}
        shown = ', '.join(f'{c} {n}' for c, n in counts.items() if n) or 'none above threshold'
        return (f"{first['record']}: {len(mine)} windows of {first['duration_s']:.0f} s at "
                f"{first['fs']:g} Hz; windows per diagnosis: {shown}"
                + (f'; {bad} unusable' if bad else '')
                + (f'; {flagged} with quality flags (quality column)' if flagged else ''))


# --------------------------------------------------------------------------
# Training records: the SHAP background and the int8 calibration set.

def draw_records(data_dir, leads, window, folds, n, seed):
    """n records of these folds drawn (seeded, without replacement, in
    dataset order) -> (tensor (n, leads, window), patient ids)."""
    ds = ECGDataset(data_dir, folds, leads, window=window)
    n = min(n, len(ds))
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
    x = torch.stack([ds[int(i)][0] for i in idx])
    return x, [ds.patient_ids[int(i)] for i in idx]


def training_records(run, n, root='.'):
    """n of the run's own training records, drawn as draw_records does with
    the run's seed -> (tensor, patient ids), or None when its database
    (preprocess.py's cache of its data_dir, relative to root) is not here."""
    card = run.card
    if not (card['data_dir'] and card['train_folds']):
        return None
    data_dir = Path(card['data_dir'])
    data_dir = data_dir if data_dir.is_absolute() else Path(root) / data_dir
    try:
        return draw_records(data_dir, run.leads, run.window, card['train_folds'], n,
                            card['seed'])
    except (SystemExit, OSError, KeyError, ValueError):
        return None  # the training data is not on this machine
