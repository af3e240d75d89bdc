"""baselines.py end to end on a small synthetic set: all four classifiers,
outputs in predict.py's format, determinism, thresholds from validation only,
a class without positives."""
import json
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import write_cache

import baselines
import synthetic
import utils
from utils import CLASSES


@pytest.fixture(scope='module')
def synth_dir(tmp_path_factory):
    """120 synthetic 10-s records in a cache laid out as preprocess.py's,
    folds 1..10 in turn; STE is erased so one class has no positives."""
    root = tmp_path_factory.mktemp('SYN')
    recs = [synthetic.make_record(3, i, duration=10) for i in range(120)]
    labels = np.array([[int(c in r['classes']) for c in CLASSES] for r in recs])
    labels[:, CLASSES.index('STE')] = 0
    write_cache(root, [r['signal'] for r in recs], labels,
                folds=np.arange(len(recs)) % 10 + 1)
    return root


def run(monkeypatch, data_dir, root, *extra):
    monkeypatch.setattr(sys, 'argv', [
        'baselines.py', '--data-dir', str(data_dir), '--seed', '42', '--n-boot', '20',
        '--jobs', '1', '--quick', '--root', str(root), *extra])
    baselines.main()


@pytest.mark.slow
def test_all_classifiers_end_to_end_and_deterministic(synth_dir, tmp_path, monkeypatch,
                                                      capsys):
    run(monkeypatch, synth_dir, tmp_path / 'a', '--classifier', 'all')
    out = capsys.readouterr().out
    name = utils.run_name(synth_dir, 'all', 42)
    for clf in baselines.CLASSIFIERS:
        assert f'{clf:4s} {name}: macro F1' in out
        d = tmp_path / 'a' / 'results' / 'baselines' / clf / name
        metrics = pd.read_csv(d / 'metrics.csv', index_col='class')
        assert list(metrics.index) == CLASSES + ['macro']
        ste = metrics.loc['STE']
        assert ste['n_pos'] == 0 and np.isnan(ste['auc'])
        assert metrics.loc['macro', 'auc'] > 0.5, (clf, metrics.loc['macro'])
        preds = pd.read_csv(d / 'predictions.csv')
        assert list(preds.columns) == ['patient_id'] + [
            f'{p}_{c}' for p in ('score', 'true', 'pred') for c in CLASSES]
        assert preds['score_STE'].nunique() == 1      # constant predictor
        thr = json.loads((d / 'thresholds.json').read_text())
        assert set(thr['thresholds']) == set(CLASSES) and thr['folds']['test'] == [
            utils.split_data(42)[2][0]]
        # The test fold holds exactly the records of that fold.
        labels = pd.read_csv(synth_dir / 'labels.csv', dtype={'patient_id': str})
        expected = labels.loc[labels['fold'] == thr['folds']['test'][0], 'patient_id']
        assert preds['patient_id'].astype(str).tolist() == expected.tolist()
    # Rhythm features make AF separable even for the quick models.
    lgb = pd.read_csv(tmp_path / 'a' / 'results' / 'baselines' / 'LGB' / name / 'metrics.csv',
                      index_col='class')
    assert lgb.loc['AF', 'auc'] > 0.8 or lgb.loc['AF', 'n_pos'] == 0

    # Same command, same numbers (features now come from the cached CSV) for
    # the classifiers with random state (LR is deterministic anyway).
    run(monkeypatch, synth_dir, tmp_path / 'b', '--classifier', 'rf,LGB,MLP')
    for clf in ('RF', 'LGB', 'MLP'):
        a = (tmp_path / 'a' / 'results' / 'baselines' / clf / name / 'metrics.csv').read_bytes()
        b = (tmp_path / 'b' / 'results' / 'baselines' / clf / name / 'metrics.csv').read_bytes()
        assert a == b, clf


def test_thresholds_depend_on_validation_only(synth_dir):
    data = baselines.load_xy(synth_dir, seed=42, test_fold=3, jobs=1)
    assert data['folds'] == dict(zip(('train', 'val', 'test'), utils.split_data(42, 3),
                                     strict=True))
    val_s, test_s, thr = baselines.fit_and_score('LR', data, 42, quick=True)

    # Other test features and labels, flipped validation labels: the scores
    # of the validation fold do not move, the thresholds are exactly the
    # F1-optimal ones for the new validation labels.
    ids, X, Y = data['test']
    vids, vX, vY = data['val']
    rng = np.random.default_rng(0)
    changed = dict(data, test=(ids, rng.normal(size=X.shape), 1 - Y), val=(vids, vX, 1 - vY))
    val_s2, test_s2, thr2 = baselines.fit_and_score('LR', changed, 42, quick=True)
    np.testing.assert_array_equal(val_s, val_s2)
    np.testing.assert_array_equal(thr, utils.f1_optimal_thresholds(vY, val_s))
    np.testing.assert_array_equal(thr2, utils.f1_optimal_thresholds(1 - vY, val_s))
    assert not np.array_equal(thr, thr2)
    assert not np.allclose(test_s, test_s2)   # the test features did reach the model


def test_leads_other_than_all_are_refused(synth_dir, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match='all 12 leads'):
        run(monkeypatch, synth_dir, tmp_path, '--leads', 'I')
