"""export.py: ONNX parity with torch fp32 (<= 1e-4 max |logit|) on synthetic
records and real ones from ../shared, the sidecar, int8 quantisation, and the
server's onnx backend giving the torch backend's answers.

A tiny random ResNet-18 on 2-s windows (test_serve.make_root): export costs
a few seconds; the parity it checks does not depend on the weights.
"""
import json

import numpy as np
import pytest

import export
import records
import utils
from test_serve import RUN, WINDOW, make_root


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('exportroot')
    path = make_root(root)
    written, info = export.export(path, root, quantize='int8', calibration=4)
    return root, path, written, info


def test_files_and_sidecar(exported):
    root, path, written, info = exported
    names = sorted(p.name for p in written)
    assert names == ['model.int8.onnx', 'model.int8.onnx.json', 'model.onnx', 'model.onnx.json']
    side = json.loads((path.parent / 'model.onnx.json').read_text())
    assert side['classes'] == utils.CLASSES and side['leads'] == utils.LEADS
    assert side['window'] == WINDOW and side['sampling_rate_hz'] == 500
    assert side['checkpoint_sha256'] == export.sha256_file(path)
    assert side['onnx_sha256'] == export.sha256_file(path.parent / 'model.onnx')
    assert side['thresholds_tuned_on'] == 'validation fold [3]'
    assert set(side['thresholds']) == set(utils.CLASSES) and side['folds']['test'] == [7]
    q = json.loads((path.parent / 'model.int8.onnx.json').read_text())
    assert q['precision'] == 'int8' and 'synthetic' in q['calibration']


def test_parity_on_synthetic_records_any_batch(exported):
    _, path, _, info = exported
    x = export.synthetic_inputs(5, info['leads'], WINDOW, seed=77)
    sess = export.session(path.parent / 'model.onnx')
    ref = export.torch_logits(info['model'], x)
    for batch in (1, 2, 5):  # the batch axis is dynamic
        assert np.abs(export.onnx_logits(sess, x, batch) - ref).max() <= export.PARITY_TOL


def test_parity_on_real_records(exported, shared_data):
    _, path, _, info = exported
    paths = [shared_data / 'cpsc2018_wfdb' / 'A0001.hea'] + \
        sorted((shared_data / 'physionet2021').glob('*.hea'))[:7]
    x = np.stack([records.prepare(records.read_record(p), info['leads'], WINDOW).x
                  for p in paths])
    sess = export.session(path.parent / 'model.onnx')
    diff = np.abs(export.onnx_logits(sess, x) - export.torch_logits(info['model'], x)).max()
    assert diff <= export.PARITY_TOL, diff


def test_int8_is_smaller_and_close(exported):
    _, path, _, info = exported
    fp32, int8 = path.parent / 'model.onnx', path.parent / 'model.int8.onnx'
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size
    x = export.synthetic_inputs(3, info['leads'], WINDOW, seed=5)
    p32 = export.onnx_probabilities(export.session(fp32), x)
    p8 = export.onnx_probabilities(export.session(int8), x)
    assert np.abs(p8 - p32).max() < 0.1   # a random net: only a gross error fails this


def test_server_onnx_backend_answers_as_torch(exported):
    import serve
    root, path, _, info = exported
    cfg = serve.config(serve.get_args_parser().parse_args(
        ['--model-path', str(path), '--root', str(root), '--backend', 'onnx',
         '--audit-db', str(root / 'audit.sqlite3')]))
    svc = serve.Service(cfg)
    svc.load()
    svc.close()
    assert svc.error is None and svc.info['session'] is not None
    x = export.synthetic_inputs(2, info['leads'], WINDOW, seed=3)
    from resnet import probabilities
    assert np.abs(svc.score(list(x)) - probabilities(info['model'], x)).max() < 1e-5
    assert RUN in cfg['model_path']
