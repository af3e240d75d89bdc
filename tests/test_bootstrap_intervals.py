"""Bootstrap intervals that score all nine classes in every resample
(utils.bootstrap_weights, compute_metrics), and checkpoint selection that a
NaN validation F1 cannot stall (main.is_improvement)."""
import math

import numpy as np

import main as main_py
import utils
from utils import CLASSES


def rare_class_set(n=100, rare=2, seed=0):
    """n records; STE has `rare` positives that the model always misses
    (F1 0); the eight other classes are predicted perfectly (F1 1)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 9)) < 0.3).astype(int)
    y[:, 8] = 0
    y[:rare, 8] = 1
    for c in range(8):
        y[:2, c], y[-2:, c] = 1, 0  # every class has positives and negatives
    score = y.astype(float)
    score[:, 8] = 1 - y[:, 8]  # STE: the positives get the lowest score
    return y, score


def test_every_resample_has_positives_and_negatives_of_every_class():
    y, _ = rare_class_set(rare=1)
    w = utils.bootstrap_weights(y, 2000, np.random.default_rng(1))
    assert w.shape == (2000, len(y)) and (w.sum(1) == len(y)).all()
    pos = w @ y
    assert (pos > 0).all() and (pos < len(y)).all()
    # plain multinomial resampling misses the single STE positive ~37% of the time
    plain = np.random.default_rng(1).multinomial(len(y), np.full(len(y), 1 / len(y)), 2000)
    assert ((plain @ y)[:, 8] == 0).mean() > 0.3


def test_macro_interval_averages_nine_classes():
    y, score = rare_class_set(rare=2)
    m = utils.compute_metrics(y, score, np.full(9, 0.5), n_boot=500, seed=0)
    assert m.loc['macro', 'f1'] == np.float64(8 / 9)
    # every resample holds both STE positives' class: its macro F1 is 8/9 too
    # (a resample without them would average eight classes and give 1.0)
    assert m.loc['macro', 'f1_lo'] == m.loc['macro', 'f1_hi'] == np.float64(8 / 9)
    assert m.loc['STE', 'f1_lo'] == m.loc['STE', 'f1_hi'] == 0
    assert np.isfinite(m.loc[CLASSES, ['f1_lo', 'f1_hi', 'auc_lo', 'auc_hi']].to_numpy()).all()


def test_several_single_positive_classes_still_resolve():
    rng = np.random.default_rng(3)
    y = np.zeros((12, 9), dtype=int)
    y[np.arange(9), np.arange(9)] = 1  # one positive per class, 12 records
    w = utils.bootstrap_weights(y, 300, rng, max_rounds=3)
    pos = w @ y
    assert (pos > 0).all() and (w.sum(1) == 12).all()


def test_nan_first_epoch_does_not_stall_selection():
    best_f1, best_epoch, chosen = -math.inf, 0, []
    for epoch, f1 in enumerate([float('nan'), 0.3, 0.5, float('nan'), 0.4], start=1):
        if main_py.is_improvement(f1, best_f1, best_epoch):
            best_f1, best_epoch = f1, epoch
            chosen.append(epoch)
    assert chosen == [1, 2, 3] and best_epoch == 3 and best_f1 == 0.5
    # resuming a run whose stored best metric is NaN also recovers
    assert main_py.is_improvement(0.1, float('nan'), 1)
