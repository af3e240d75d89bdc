"""Leak-free folds: records -> groups -> stratified folds -> a manifest.

    from folds import find_groups, assign_group_folds, fold_manifest, check_manifest
    groups, report = find_groups(records, data_dir, groups_file=None)
    fold = assign_group_folds(y, groups, seed=42)          # no group spans two folds
    manifest = fold_manifest(labels)                        # stored in every checkpoint
    check_manifest(ckpt.get('fold_manifest'), data_dir, model_path)   # refuses a leak

A group is what must never be split between training and test:
  - identical recordings (the same signal bytes under two names, e.g. the
    Georgia records E07509 and E07510 of PhysioNet/CinC 2021), found by a
    hash of the signal files' content, never of their names;
  - the records of one patient, where the source says who the patient is:
    PTB-XL's ptbxl_database.csv (ecg_id -> patient_id; record HR00001 is
    ecg_id 1) is read automatically when it lies in the data folder, and
    --groups FILE takes any CSV of record -> patient.
Groups are the connected components of both relations (union-find), named
after their first record. The ten folds are then stratified over groups, so
the folds stay balanced over the nine classes and no group spans two folds.

The fold manifest is a sha256 of the sorted (record, fold) pairs plus the
fold seed. main.py stores it in every checkpoint, predict.py, shap_values.py
and baselines.py in every results folder; scoring a test fold with a model
whose manifest differs from labels.csv is refused (check_manifest), because
the "test fold" may then hold the model's own training records.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from records.cache import load_labels
from utils import CLASSES, NFOLDS, atomic_write_json

PTBXL_DATABASE = 'ptbxl_database.csv'
FOLDS_JSON = 'folds.json'   # beside labels.csv: fold seed, manifest, group counts


# --------------------------------------------------------------------------
# Groups.

def content_hash(paths):
    """sha256 of the bytes of a record's signal file(s), in order. Identical
    recordings stored under different names hash alike; the header is left
    out since it holds the record's name."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, 'rb') as f:
            h.update(hashlib.file_digest(f, 'sha256').digest())
    return h.hexdigest()


def signal_files(rec):
    """The files holding a record's samples (not its .hea)."""
    return [f for f in rec['files'] if Path(f).suffix != '.hea'] or list(rec['files'])


def read_ptbxl_patients(data_dir):
    """{record name: 'ptbxl-<patient_id>'} from a ptbxl_database.csv under
    data_dir (PTB-XL's own metadata), or {} when there is none. Records are
    matched both as HR00001 (PhysioNet/CinC 2021 naming) and as 00001_hr /
    00001_lr (PTB-XL's own file names)."""
    path = next(iter(sorted(Path(data_dir).rglob(PTBXL_DATABASE))), None)
    if path is None:
        return {}
    df = pd.read_csv(path, usecols=lambda c: c in ('ecg_id', 'patient_id'))
    if not {'ecg_id', 'patient_id'} <= set(df.columns):
        raise SystemExit(f'error: {path} lacks the columns ecg_id, patient_id (PTB-XL\'s '
                         'ptbxl_database.csv); remove or fix it')
    out = {}
    for ecg, patient in zip(df['ecg_id'].astype(int), df['patient_id']):
        group = f'ptbxl-{int(patient)}'
        for name in (f'HR{ecg:05d}', f'{ecg:05d}_hr', f'{ecg:05d}_lr'):
            out[name] = group
    return out


def read_groups_file(path):
    """--groups FILE: a CSV of record -> patient. Columns `record` and
    `patient` (or `group`), else the first two columns."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as e:
        raise SystemExit(f'error: cannot read --groups {path}: {e}') from None
    cols = [c.strip().lower() for c in df.columns]
    df.columns = cols
    rec = 'record' if 'record' in cols else cols[0] if cols else None
    grp = next((c for c in ('patient', 'group', 'patient_id') if c in cols and c != rec),
               cols[1] if len(cols) > 1 else None)
    if rec is None or grp is None:
        raise SystemExit(f'error: --groups {path} needs two columns, record and patient '
                         '(a header line, then one row per record)')
    df = df.dropna(subset=[rec, grp])
    return {r.strip(): f'patient-{g.strip()}' for r, g in zip(df[rec], df[grp])}


def _union_find(n, pairs):
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def find_groups(records, data_dir, groups_file=None):
    """records: dicts with 'patient_id' (the record name) and 'files', sorted
    by name -> (group name per record, report dict).

    Two records share a group when their signal files hash alike or when
    ptbxl_database.csv / groups_file names the same patient for both. The
    report counts duplicates (records identical to an earlier one), the
    duplicate sets, the records with a patient identity, and the groups
    holding more than one record."""
    names = [r['patient_id'] for r in records]
    hashes = [content_hash(signal_files(r)) for r in records]
    patients = read_ptbxl_patients(data_dir)
    if groups_file:
        patients.update(read_groups_file(groups_file))
    pairs, first_of = [], {}
    dup_sets = {}
    for i, h in enumerate(hashes):
        j = first_of.setdefault(('hash', h), i)
        if j != i:
            pairs.append((j, i))
            dup_sets.setdefault(j, [names[j]]).append(names[i])
    n_patient = 0
    for i, name in enumerate(names):
        if name in patients:
            n_patient += 1
            pairs.append((first_of.setdefault(('patient', patients[name]), i), i))
    root = _union_find(len(names), pairs)
    group = [names[r] for r in root]
    sizes = pd.Series(group).value_counts() if group else pd.Series(dtype=int)
    report = {'records': len(names), 'groups': int(len(sizes)),
              'duplicates': sum(len(v) - 1 for v in dup_sets.values()),
              'duplicate_sets': [v for _, v in sorted(dup_sets.items())],
              'with_patient_id': n_patient,
              'multi_record_groups': int((sizes > 1).sum()),
              'records_in_multi_record_groups': int(sizes[sizes > 1].sum())}
    return group, report


def describe_groups(report):
    """The one line preprocess.py prints about groups."""
    dups = report['duplicate_sets']
    shown = '; '.join('='.join(s) for s in dups[:3]) + (' ...' if len(dups) > 3 else '')
    return (f"groups: {report['groups']} groups for {report['records']} records; "
            f"{report['duplicates']} duplicate recordings (identical signal files"
            f"{': ' + shown if dups else ''}), {report['with_patient_id']} records with a "
            f"patient id; {report['multi_record_groups']} groups hold more than one record "
            f"({report['records_in_multi_record_groups']} records), each kept in one fold")


# --------------------------------------------------------------------------
# Folds.

def assign_folds(labels, seed=42, k=NFOLDS, sizes=None):
    """Multi-label stratified folds 1..k for the rows of `labels` (n, c),
    which the caller orders by patient_id. A row is one record (0/1 labels)
    or, with `sizes`, one group of sizes[i] records whose label counts are
    labels[i].

    Iterative stratification (Sechidis, Tsoumakas & Vlahavas, On the
    stratification of multi-label data, ECML PKDD 2011, Algorithm 1): take the
    label with the fewest examples left; give each of its examples to the fold
    that most lacks that label, then the fold that most lacks examples, then
    a seeded random choice. Desired counts are kept multiplied by k so that
    all comparisons are on integers: identical on every machine. With all
    sizes 1 the result is exactly that of per-record stratification.
    """
    y = np.asarray(labels, dtype=np.int64)
    n = len(y)
    sizes = np.ones(n, dtype=np.int64) if sizes is None else np.asarray(sizes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    want_label = np.tile(y.sum(0), (k, 1))      # k * (examples of label l each fold wants)
    want = np.full(k, int(sizes.sum()), dtype=np.int64)   # k * (examples each fold wants)
    fold = np.zeros(n, dtype=np.int64)
    left = np.ones(n, dtype=bool)

    def choose(candidates):
        return candidates[rng.integers(len(candidates))] if len(candidates) > 1 else candidates[0]

    while left.any():
        counts = (y[left] > 0).sum(0)
        if counts.max() == 0:  # rows without any label: balance the fold sizes
            for i in order[left[order]]:
                f = choose(np.flatnonzero(want == want.max()))
                fold[i], left[i] = f, False
                want[f] -= k * sizes[i]
            break
        label = int(np.argmin(np.where(counts > 0, counts, n + 1)))
        for i in order[left[order] & (y[order, label] > 0)]:
            cand = np.flatnonzero(want_label[:, label] == want_label[:, label].max())
            if len(cand) > 1:
                cand = cand[want[cand] == want[cand].max()]
            f = choose(cand)
            fold[i], left[i] = f, False
            want_label[f] -= k * y[i]
            want[f] -= k * sizes[i]
    return fold + 1


def assign_group_folds(y, groups, seed=42, k=NFOLDS):
    """Per-record 0/1 labels y (n, c) and group names (n,) -> fold per
    record: the groups are stratified (their label counts and sizes), every
    record takes its group's fold. Without multi-record groups this is
    assign_folds(y, seed) exactly."""
    y = np.asarray(y, dtype=np.int64)
    codes, uniq = pd.factorize(pd.Series(list(groups)), sort=False)
    if len(uniq) == len(y):
        return assign_folds(y, seed=seed, k=k)
    counts = np.zeros((len(uniq), y.shape[1]), dtype=np.int64)
    np.add.at(counts, codes, y)
    sizes = np.bincount(codes, minlength=len(uniq))
    return assign_folds(counts, seed=seed, k=k, sizes=sizes)[codes]


def keep_existing_folds(labels, old, seed, k=NFOLDS):
    """labels (patient_id, classes, group) and the previous labels.csv ->
    fold per row: a record keeps its old fold; a new record joins the fold of
    its group when the group already has one; new groups are stratified
    among themselves. Raises SystemExit when the old folds split a group
    (e.g. labels.csv from before duplicates were grouped)."""
    old_fold = dict(zip(old['patient_id'], old['fold'].astype(int)))
    fold = labels['patient_id'].map(old_fold)
    per_group = pd.DataFrame({'group': labels['group'], 'fold': fold}).dropna()
    split = per_group.groupby('group')['fold'].nunique()
    if (split > 1).any():
        g = split[split > 1].index[0]
        members = labels.loc[labels['group'] == g, 'patient_id'].tolist()
        raise SystemExit(f'error: the existing folds of labels.csv put records of one group '
                         f'in different folds ({int((split > 1).sum())} groups, e.g. '
                         f'{", ".join(members[:4])}: duplicates or one patient), so a test '
                         'fold could hold a copy of a training record; rerun with '
                         '--reassign-folds (and retrain: every model trained on the old '
                         'folds will then be refused on a test fold)')
    group_fold = per_group.groupby('group')['fold'].first()
    fold = fold.fillna(labels['group'].map(group_fold))
    new = fold.isna().to_numpy()
    if new.any():
        sub = labels[new]
        fold[new] = assign_group_folds(sub[CLASSES].to_numpy(), sub['group'], seed=seed, k=k)
    return fold.astype(int).to_numpy()


# --------------------------------------------------------------------------
# Manifests.

def fold_manifest(labels, fold_seed=None):
    """labels.csv (a DataFrame with patient_id, fold) -> the manifest stored
    in checkpoints and results: the sha256 of the sorted 'record<TAB>fold'
    lines, the fold seed, the record count, and the assignment itself (so a
    refusal can say which records moved)."""
    pairs = sorted(zip(labels['patient_id'].astype(str), labels['fold'].astype(int)))
    text = ''.join(f'{p}\t{f}\n' for p, f in pairs)
    return {'hash': hashlib.sha256(text.encode()).hexdigest(),
            'fold_seed': None if fold_seed is None else int(fold_seed),
            'records': len(pairs), 'assignment': {p: f for p, f in pairs}}


def read_fold_seed(data_dir):
    """The fold seed preprocess.py recorded in DATA_DIR/folds.json (None when
    labels.csv was written some other way)."""
    path = Path(data_dir) / FOLDS_JSON
    try:
        return json.loads(path.read_text()).get('fold_seed')
    except (OSError, ValueError):
        return None


def current_manifest(data_dir):
    """The manifest of DATA_DIR/labels.csv as it is now."""
    return fold_manifest(load_labels(data_dir), read_fold_seed(data_dir))


def public(manifest):
    """A manifest without the per-record assignment (for JSON files)."""
    return None if manifest is None else {k: v for k, v in manifest.items() if k != 'assignment'}


def describe_change(old, new, folds=None):
    """What differs between two manifests, in words."""
    a, b = old.get('assignment') or {}, new.get('assignment') or {}
    parts = []
    if old.get('fold_seed') != new.get('fold_seed'):
        parts.append(f"fold seed {old.get('fold_seed')} -> {new.get('fold_seed')}")
    if a:
        moved = [p for p in a if p in b and a[p] != b[p]]
        added, removed = len(set(b) - set(a)), len(set(a) - set(b))
        parts.append(f'{len(moved)} records changed fold, {added} added, {removed} removed')
        if folds:
            trained = set(folds.get('train', []))
            test = set(folds.get('test', []))
            leak = sum(1 for p, f in b.items() if f in test and a.get(p) in trained)
            parts.append(f'{leak} records of test fold {sorted(test)} were training records '
                         'of the model')
    else:
        parts.append(f"{old.get('records')} -> {new.get('records')} records")
    return '; '.join(parts)


def add_trust_folds_arg(parser):
    """--trust-folds, shared by predict.py, shap_values.py and baselines.py."""
    parser.add_argument('--trust-folds', action='store_true',
                        help="score a test fold even when the model's fold manifest is "
                             'missing (the study\'s weights) or differs from labels.csv '
                             '(default: refuse, since its test fold may hold training records)')
    return parser


def check_manifest(manifest, data_dir, model_path, trust=False, folds=None, script='predict.py',
                   resume=False):
    """The one fold-manifest check. Refuse (SystemExit) to score a test fold
    of DATA_DIR with a model whose fold manifest differs from labels.csv now,
    or that has none (the study's own weights), unless trust. resume=True
    (main.py --resume) refuses only a differing manifest: continuing on other
    folds would train on records of the run's test fold; a checkpoint older
    than manifests may continue. Returns the current manifest."""
    now = current_manifest(data_dir)
    if trust:
        if manifest is None or manifest.get('hash') != now['hash']:
            print(f'warning: --trust-folds: scoring {model_path} on the folds of '
                  f'{data_dir}/labels.csv without a matching fold manifest; its test-fold '
                  'numbers are only as leak-free as your word', flush=True)
        return now
    if manifest is None and not resume:
        raise SystemExit(f'error: {model_path} has no fold manifest (e.g. the study\'s own '
                         f'weights or a checkpoint older than manifests), so nothing shows '
                         f'that its test fold was held out of its training; score new records '
                         f'with predict.py --records, or pass --trust-folds to {script} if '
                         'you know the folds are the ones it was trained on')
    if manifest is not None and manifest.get('hash') != now['hash']:
        seed = manifest.get('fold_seed')
        if resume:
            raise SystemExit(
                f'error: {model_path} was trained on other folds than {data_dir}/labels.csv '
                f'holds now ({describe_change(manifest, now)}); resuming would train on '
                'records of its test fold. Retrain with --force, or restore the folds '
                f'(preprocess.py --reassign-folds --fold-seed {seed})')
        restore = (f'Restore its folds with `python preprocess.py --data-dir {data_dir} '
                   f'--reassign-folds --fold-seed {seed}` (if the records are unchanged), or '
                   if seed is not None else 'Restore the labels.csv it was trained with, or ')
        raise SystemExit(
            f'error: {model_path} was trained on other folds than {data_dir}/labels.csv holds '
            f'now ({describe_change(manifest, now, folds)}), so its test fold may hold its '
            f'own training records. {restore}retrain it on the current folds '
            f'(`python main.py ... --force`); --trust-folds overrides this check')
    return now


def write_results_manifest(out_dir, manifest, trained=None, model=None, folds=None):
    """results/<run>/folds.json: the manifest a result was scored on, and the
    one its model was trained on (equal unless --trust-folds)."""
    atomic_write_json({'scored_on': public(manifest), 'trained_on': public(trained),
                       'model': None if model is None else str(model), 'folds': folds,
                       'trusted': trained is None or trained.get('hash') != manifest['hash']},
                      Path(out_dir) / FOLDS_JSON)
