"""runs.py: a checkpoint loaded into one Run, the one window rule, the one
decision rule, and thresholds.json written in one layout and read in it and
in the first one (which runs trained before the layout still hold)."""
import json

import numpy as np
import pytest
import torch
from helpers import tiny_checkpoint

import records
import runs
import utils
from resnet import build_model
from utils import CLASSES

RUN = 'TINY-all-s42-f7'


def test_decide_is_at_or_above_the_threshold_for_one_record_or_many():
    th = np.array([0.5, 0.2, 0.9])
    assert utils.decide([0.5, 0.1, np.nan], th).tolist() == [True, False, False]
    probs = np.array([[0.49, 0.2, 0.95], [0.7, 0.3, 0.1]], dtype=np.float32)
    got = utils.decide(probs, th)
    assert got.shape == (2, 3) and got.tolist() == [[False, True, True], [True, True, False]]
    assert (got == (probs >= th[None, :])).all()


def test_thresholds_round_trip_with_structured_tuned_on(tmp_path):
    path = tmp_path / 'thresholds.json'
    classes = ['AF', 'SNR', 'PVC']   # not alphabetical: the file's own order is kept
    tuned_on = {'split': 'validation', 'folds': [4], 'metric': 'F1', 'model': RUN}
    utils.write_thresholds(path, [0.3, 0.6, 0.25], classes, tuned_on, run=RUN)
    obj = json.loads(path.read_text())
    assert obj['format'] == utils.THRESHOLDS_FORMAT and obj['classes'] == classes
    assert obj['tuned_on'] == tuned_on and obj['run'] == RUN
    values, got = utils.read_thresholds(path)
    assert values.tolist() == [0.3, 0.6, 0.25] and got == tuned_on
    values, _ = utils.read_thresholds(path, ['PVC', 'AF'])
    assert values.tolist() == [0.25, 0.3]
    with pytest.raises(ValueError):
        utils.write_thresholds(path, [0.5], classes, tuned_on)


def test_first_layout_thresholds_still_read(tmp_path):
    """The files predict.py and baselines.py wrote before the 'format' key:
    {class: t} under 'thresholds' with 'tuned_on' a sentence; a bare
    {class: t} or a list (a --thresholds file)."""
    first = tmp_path / 'first.json'
    first.write_text(json.dumps({'thresholds': {c: 0.1 * (i + 1) for i, c in enumerate(CLASSES)},
                                 'tuned_on': 'validation fold [4, 5]', 'run': RUN}))
    values, tuned_on = utils.read_thresholds(first, CLASSES)
    np.testing.assert_allclose(values, 0.1 * np.arange(1, 10))
    assert tuned_on == {'split': 'validation', 'folds': [4, 5], 'metric': 'F1'}
    plain = tmp_path / 'plain.json'
    plain.write_text(json.dumps({'AF': 0.4, 'SNR': 0.7}))
    assert utils.read_thresholds(plain, ['SNR', 'AF'])[0].tolist() == [0.7, 0.4]
    assert utils.read_thresholds(plain)[1] == {}
    listed = tmp_path / 'list.json'
    listed.write_text('[0.2, 0.8]')
    assert utils.read_thresholds(listed, ['AF', 'SNR'])[0].tolist() == [0.2, 0.8]
    with pytest.raises(SystemExit, match=r"no threshold for \['PVC'\]"):
        utils.read_thresholds(plain, ['AF', 'PVC'])
    with pytest.raises(SystemExit, match='holds 2 thresholds, expected 3'):
        utils.read_thresholds(listed, ['AF', 'SNR', 'PVC'])
    assert utils.tuned_on_fields('tuned by hand') == {'text': 'tuned by hand'}


def test_a_run_loads_with_its_thresholds_card_and_provenance(tmp_path):
    _, path = tiny_checkpoint(tmp_path, RUN, 1000)
    run = runs.load_run(path, tmp_path)
    assert run.name == RUN and run.classes == CLASSES and run.leads == records.LEADS
    assert run.window == 1000 and not run.bare and not run.synthetic
    assert run.source['kind'] == 'default' and np.all(run.thresholds == 0.5)
    assert run.folds['test'] == [7] and run.database == 'TINY'
    assert run.card['thresholds'] is run.source and run.card['run'] == RUN
    assert 'model' not in run.ckpt and run.ckpt['arch'] == 'resnet18'
    assert run.sha256 == utils.sha256_file(path) and str(path.resolve()) in run.key
    utils.write_thresholds(tmp_path / 'results' / RUN / 'thresholds.json',
                          np.linspace(0.1, 0.9, 9), CLASSES,
                          {'split': 'validation', 'folds': [3], 'metric': 'F1', 'model': RUN})
    run = runs.load_run(path, tmp_path)
    assert run.source['kind'] == 'tuned' and run.source['tuned_on']['folds'] == [3]
    np.testing.assert_allclose(run.thresholds, np.linspace(0.1, 0.9, 9))
    assert np.all(runs.load_run(path, tmp_path, thresholds=False).thresholds == 0.5)
    with pytest.raises(SystemExit, match='no thresholds file'):
        runs.load_run(path, tmp_path, thresholds=tmp_path / 'missing.json')
    with pytest.raises(SystemExit, match='trained on leads'):
        runs.load_run(path, tmp_path, leads='II')


def test_one_window_rule_and_bare_weights_as_the_study_s(tmp_path):
    assert runs.window_of({'window': 2000, 'args': {'window': 3000}}) == 2000
    assert runs.window_of({'args': {'window': 3000}}) == 3000
    assert runs.window_of({}) == records.WINDOW
    torch.manual_seed(0)
    torch.save(build_model('resnet18', 12).state_dict(), tmp_path / 'study.pt')
    run = runs.load_run(tmp_path / 'study.pt', tmp_path)
    assert run.bare and run.leads == records.LEADS and run.window == records.WINDOW
    assert run.source['kind'] == 'default' and run.database == '?' and run.folds == {}
