"""The tiny models that test_shap.py and test_shap_population.py explain: a
ResNet-18 trained on 4-s synthetic records (synthetic.py) whose truth is
known, in two configurations, each a session fixture in conftest.py.

The tiny model trains to a criterion, not for a fixed number of epochs: the
same seed trains different weights on CPUs whose oneDNN takes other code
paths (AMX, AVX-512, AVX2) or with another thread count, so a fixed epoch
count learned PVC on one machine and not on the next. train_tiny_model stops
once every checked class passes the bars on held-out records (AUC_BAR,
HIT_BAR) and fails, naming the class, after its epoch limit. ECG_TEST_SEED
(default 0) sets the training seed (initial weights, dropout, batch order),
so the checks can be run over seeds, as a new CPU would:

    ECG_TEST_SEED=3 python -m pytest -q tests/test_shap.py tests/test_shap_population.py
    ECG_TEST_SEED=3 OMP_NUM_THREADS=1 python -m pytest -q tests/test_shap.py
"""
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import folds
import records
import shap_values
import synthetic
import utils
from resnet import build_model
from utils import CLASSES

WINDOW = 2000            # 4 s: a few beats, cheap to train and explain
SEED = int(os.environ.get('ECG_TEST_SEED', '0'))   # training seed; see the docstring
# The stopping criterion, on N_CHECK records of a generator seed that neither
# the training batch (1) nor the records on disk use: every trained class
# ranks its records above the others (AUC) and scores most of them >= 0.5,
# because the tests explain records the model predicts.
CHECK_SEED, N_CHECK = 7, 64
AUC_BAR, HIT_BAR = 0.97, 0.8

# test_shap.py's model: single-label records of four classes at the
# generator's noise, every class to AUC_BAR and HIT_BAR.
TRAIN_CLASSES = ['SNR', 'PVC', 'LBBB', 'RBBB']
N_TRAIN, MAX_EPOCHS = 128, 12

# test_shap_population.py's model (its docstring says why): every other
# record of each base class also has a long PR (IAVB), at half the
# generator's noise and without borderline cases. Trained to the criterion
# for the classes the tests read (SNR is not one), for at least
# POP_MIN_EPOCHS: the profile and gradient checks were measured on models
# trained 13-20 epochs. The AUC bar is below AUC_BAR: a long PR at half noise
# is learned slowly, and on the 64 check records IAVB's AUC wandered
# 0.93-0.97 over epochs 13-20 (ECG_TEST_SEED 1 and 2), SNR's (the same PR,
# the other way) 0.91-0.97. test_shap_population.MIN_AUC is the independent
# check on other records.
POP_BASES = ['SNR', 'LBBB', 'PVC', 'STD']    # each crossed with a long PR (IAVB)
POP_RECORD = {'noise_scale': 0.5, 'borderline': 0.0}
POP_N_TRAIN = 160
POP_CHECKED, POP_AUC_BAR = ['IAVB', 'LBBB', 'PVC', 'STD'], 0.93
POP_MIN_EPOCHS, POP_MAX_EPOCHS = 10, 20


def pop_classes(i):
    """Record i's label set in test_shap_population.py's configuration:
    POP_BASES cycled, a long PR on every other round."""
    base, long_pr = POP_BASES[i % len(POP_BASES)], (i // len(POP_BASES)) % 2 == 1
    if not long_pr:
        return [base]
    return ['IAVB'] if base == 'SNR' else [base, 'IAVB']


def synthetic_batch(seed, n, classes=TRAIN_CLASSES, **record_kw):
    """n records -> (x, y) tensors: single-label, cycling over `classes`, or
    classes(i) -> the label set of record i; record_kw go to make_record
    (noise_scale, borderline)."""
    label_set = classes if callable(classes) else (lambda i: [classes[i % len(classes)]])
    recs = [synthetic.make_record(seed, i, duration=WINDOW / records.FS, classes=label_set(i),
                                  **record_kw)
            for i in range(n)]
    x = np.stack([r['signal'][-WINDOW:].T for r in recs]).astype(np.float32)
    y = np.zeros((n, len(CLASSES)), np.float32)
    for k, r in enumerate(recs):
        y[k, [CLASSES.index(c) for c in r['classes']]] = 1
    return torch.from_numpy(x), torch.from_numpy(y)


def criterion(model, x, y, checked=None):
    """{class: (AUC, share of its records scored >= 0.5)} for the `checked`
    classes, by default every class that has records in y."""
    with torch.no_grad():
        p = torch.sigmoid(model.eval()(x)).numpy()
    y = y.numpy()
    return {CLASSES[c]: (float(roc_auc_score(y[:, c], p[:, c])),
                         float((p[y[:, c] == 1, c] >= 0.5).mean()))
            for c in np.flatnonzero(y.any(0)) if checked is None or CLASSES[c] in checked}


def train_tiny_model(classes=TRAIN_CLASSES, n=N_TRAIN, max_epochs=MAX_EPOCHS, min_epochs=1,
                     auc_bar=AUC_BAR, checked=None, **record_kw):
    """Train until every `checked` class (default: all trained) passes auc_bar
    and HIT_BAR on held-out records, after at least min_epochs -> (model in
    eval mode, epochs trained). Fails naming the classes below the bars
    after max_epochs."""
    torch.manual_seed(SEED)
    x, y = synthetic_batch(seed=1, n=n, classes=classes, **record_kw)
    x_check, y_check = synthetic_batch(seed=CHECK_SEED, n=N_CHECK, classes=classes, **record_kw)
    model = build_model('resnet18', len(records.LEADS))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history = []
    for epoch in range(1, max_epochs + 1):
        model.train()
        for idx in torch.randperm(n).split(16):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        if epoch < min_epochs:
            continue   # the check (64 forward passes) costs about a sixth of an epoch
        scores = criterion(model, x_check, y_check, checked)
        history.append(scores)
        below = {c: s for c, s in scores.items() if s[0] < auc_bar or s[1] < HIT_BAR}
        if not below:
            print(f'train_tiny_model: seed {SEED}, {epoch} epochs, held-out (AUC, hit) '
                  + ', '.join(f'{c} {a:.3f}/{h:.2f}' for c, (a, h) in scores.items()))
            return model.eval(), epoch
    raise AssertionError(
        f'the tiny model did not learn {", ".join(below)} in {max_epochs} epochs '
        f'(ECG_TEST_SEED={SEED}): held-out (AUC, share >= 0.5) '
        + ', '.join(f'{c} {a:.3f}/{h:.2f}' for c, (a, h) in below.items())
        + f', bars {auc_bar}/{HIT_BAR}; per epoch from {min_epochs}: {history}')


def train_four_class_model():
    """test_shap.py's configuration -> (model, epochs)."""
    return train_tiny_model()


def train_crossed_pr_model():
    """test_shap_population.py's configuration -> (model, epochs)."""
    return train_tiny_model(pop_classes, POP_N_TRAIN, POP_MAX_EPOCHS, POP_MIN_EPOCHS,
                            POP_AUC_BAR, POP_CHECKED, **POP_RECORD)


def run_shap(root, name, args):
    """shap_values.main(args) run from root -> (shap/<name>, its npz cache as a dict)."""
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        shap_values.main(args)
    finally:
        mp.undo()
    shap_dir = root / 'shap' / name
    with np.load(shap_dir / shap_values.CACHE_NAME, allow_pickle=False) as z:
        return shap_dir, {k: z[k] for k in z.files}


def save_checkpoint(model, path, data_dir=None, epochs=1):
    """model as main.py's best.pt, with the fold manifest main.py stores, so
    that shap_values.py accepts the test fold of data_dir."""
    manifest = None if data_dir is None else folds.current_manifest(data_dir)
    utils.atomic_torch_save({'model': model.state_dict(), 'leads': list(records.LEADS),
                             'classes': list(CLASSES), 'arch': 'resnet18', 'window': WINDOW,
                             'epoch': epochs - 1, 'fold_manifest': manifest}, path)
