"""utils: metrics against scikit-learn, folds, run names, atomic writes."""
import argparse
import os

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

import utils


@pytest.fixture
def scored():
    rng = np.random.default_rng(1)
    y = rng.random((300, 9)) < np.linspace(0.05, 0.4, 9)
    s = rng.random((300, 9)) + 0.6 * y
    s[:, 3] = np.round(s[:, 3], 1)  # ties
    return y, s


def test_f1_optimal_thresholds_match_brute_force(scored):
    y, s = scored
    th = utils.f1_optimal_thresholds(y, s)
    for c in range(9):
        cuts = np.unique(s[:, c])
        pred = s[:, c][None, :] >= cuts[:, None]          # every candidate cut
        tp = (pred & y[:, c]).sum(1)
        best = (2 * tp / (pred.sum(1) + y[:, c].sum())).max()
        assert f1_score(y[:, c], s[:, c] >= th[c]) == pytest.approx(best)


def test_compute_metrics_point_values_match_sklearn(scored):
    y, s = scored
    th = utils.f1_optimal_thresholds(y, s)
    df = utils.compute_metrics(y, s, th, n_boot=200)
    for c, name in enumerate(utils.CLASSES):
        pred = s[:, c] >= th[c]
        assert df.loc[name, 'auc'] == pytest.approx(roc_auc_score(y[:, c], s[:, c]))
        assert df.loc[name, 'f1'] == pytest.approx(f1_score(y[:, c], pred))
        assert df.loc[name, 'precision'] == pytest.approx(precision_score(y[:, c], pred))
        assert df.loc[name, 'recall'] == pytest.approx(recall_score(y[:, c], pred))
        assert df.loc[name, 'auc_lo'] <= df.loc[name, 'auc'] <= df.loc[name, 'auc_hi']
    assert df.loc['macro', 'auc'] == pytest.approx(df.loc[utils.CLASSES, 'auc'].mean())
    assert df.loc['macro', 'f1_lo'] < df.loc['macro', 'f1'] < df.loc['macro', 'f1_hi']


def test_weighted_auc_equals_auc_of_resampled_records(scored):
    y, s = scored
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(y), len(y))
    counts = np.bincount(idx, minlength=len(y))[None, :].astype(float)
    got = utils.weighted_auc(y[:, 3], s[:, 3], counts)[0]
    assert got == pytest.approx(roc_auc_score(y[idx, 3], s[idx, 3]))


def test_class_without_positives_is_left_out_of_macro():
    y = np.zeros((50, 9), bool)
    y[:25, 0] = True
    s = np.random.default_rng(0).random((50, 9))
    df = utils.compute_metrics(y, s, np.full(9, 0.5), n_boot=0)
    assert np.isnan(df.loc['AF', 'auc']) and np.isnan(df.loc['AF', 'f1'])
    assert df.loc['macro', 'auc'] == pytest.approx(df.loc['SNR', 'auc'])


def test_split_data_is_the_studys_and_cv_folds_are_disjoint():
    train, val, test = utils.split_data(42)
    assert (train, val, test) == ([9, 2, 6, 1, 8, 3, 10, 5], [4], [7])
    for k in range(1, 11):
        tr, va, te = utils.split_data(42, k)
        assert te == [k] and va == [k % 10 + 1]
        assert sorted(tr + va + te) == list(range(1, 11))
    with pytest.raises(SystemExit, match='test-fold'):
        utils.split_data(42, 11)


def test_run_name_encodes_database_leads_seed_fold():
    assert utils.run_name('data/CPSC', 'all', 42) == 'CPSC-all-s42-f7'
    assert utils.run_name('data/CPSC/', 'v5,avr', 1, 3) == 'CPSC-V5-aVR-s1-f3'


def test_bad_leads_are_one_argparse_error_and_aliases_work(capsys):
    parser = utils.add_common_args(argparse.ArgumentParser(prog='x'))
    with pytest.raises(SystemExit):
        parser.parse_args(['--leads', 'I,XYZ'])
    assert "argument --leads: unknown lead 'XYZ'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(['--leads', 'II,MLII'])
    assert 'twice' in capsys.readouterr().err
    assert parser.parse_args(['--leads', 'MLII,d1,avr']).leads == 'II,I,aVR'
    assert parser.parse_args([]).leads == parser.parse_args(['--leads', 'ALL']).leads == 'all'
    assert utils.run_name('data/CPSC', 'MLII', 42) == 'CPSC-II-s42-f7'


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / 'out.csv'
    target.write_text('old')
    with pytest.raises(KeyboardInterrupt), utils.atomic_path(target) as tmp:
        tmp.write_text('half')
        raise KeyboardInterrupt
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['out.csv']
    utils.atomic_write_text('new', target)
    assert target.read_text() == 'new'
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_dx_mapping_covers_equivalent_codes():
    assert utils.dx_to_classes(['733534002', '17338001', '10370003']) == ['LBBB', 'PVC']
    assert utils.dx_to_classes([59118001, '713427006']) == ['RBBB']
