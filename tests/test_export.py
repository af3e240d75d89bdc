"""export.py: ONNX parity with torch fp32 (<= 1e-4 max |logit|) on synthetic
records and real ones from ../shared, the sidecar, int8 quantisation, and the
server's onnx backend giving the torch backend's answers.

A tiny random ResNet-18 on 2-s windows (web_helpers.make_root): export costs
a few seconds; the parity it checks does not depend on the weights.
"""
import contextlib
import json

import numpy as np
import pytest
from web_helpers import RUN, WINDOW, make_root, record_upload

import export
import records
import utils


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('exportroot')
    path = make_root(root)
    written, info = export.export(path, root, quantize='int8', calibration=4)
    return root, path, written, info


def test_export_writes_both_models_with_sidecars_that_describe_them(exported):
    root, path, written, info = exported
    names = sorted(p.name for p in written)
    assert names == ['model.int8.onnx', 'model.int8.onnx.json', 'model.onnx', 'model.onnx.json']
    side = json.loads((path.parent / 'model.onnx.json').read_text())
    assert side['classes'] == utils.CLASSES and side['leads'] == records.LEADS
    assert side['window'] == WINDOW and side['sampling_rate_hz'] == 500
    assert side['checkpoint_sha256'] == utils.sha256_file(path)
    assert side['onnx_sha256'] == utils.sha256_file(path.parent / 'model.onnx')
    assert side['thresholds_tuned_on'] == {'split': 'validation', 'folds': [3], 'metric': 'F1'}
    assert set(side['thresholds']) == set(utils.CLASSES) and side['folds']['test'] == [7]
    assert side['layout'] == 'conv2d' and side['export_version'] == export.EXPORT_VERSION
    q = json.loads((path.parent / 'model.int8.onnx.json').read_text())
    assert q['precision'] == 'int8' and 'synthetic' in q['calibration']


def test_the_graph_is_the_2d_twin(exported):
    """model.onnx holds (1 x k) 2-D convolutions (resnet.Conv2dTwin), the
    twin gives the model's logits, and a --length-aware model, which has no
    twin, is exported 1-D and still holds parity."""
    import onnx
    import torch

    from resnet import Conv2dTwin, build_model
    _, path, _, info = exported
    graph = onnx.load(str(path.parent / 'model.onnx')).graph
    kernels = [a.ints for n in graph.node if n.op_type == 'Conv' for a in n.attribute
               if a.name == 'kernel_shape']
    assert kernels and all(len(k) == 2 and k[0] == 1 for k in kernels)
    x = export.synthetic_inputs(2, info.leads, WINDOW, seed=11)
    with torch.inference_mode():
        twin = Conv2dTwin(info.model)(torch.from_numpy(x)).numpy()
    assert np.abs(twin - export.torch_logits(info.model, x)).max() <= 1e-5
    torch.manual_seed(0)
    aware = build_model('resnet18', 12, mask_padding=True).eval()
    with pytest.raises(ValueError, match='mask_padding'):
        Conv2dTwin(aware)
    out = path.parent / 'aware.onnx'
    export.export_onnx(aware, info.leads, WINDOW, out)
    x[0, :, :WINDOW // 2] = 0   # padding that the masks must leave out
    diff = np.abs(export.onnx_logits(export.session(out), x) - export.torch_logits(aware, x))
    assert diff.max() <= export.PARITY_TOL


def test_parity_on_synthetic_records_any_batch(exported):
    _, path, _, info = exported
    x = export.synthetic_inputs(5, info.leads, WINDOW, seed=77)
    sess = export.session(path.parent / 'model.onnx')
    ref = export.torch_logits(info.model, x)
    for batch in (1, 2, 5):  # the batch axis is dynamic
        assert np.abs(export.onnx_logits(sess, x, batch) - ref).max() <= export.PARITY_TOL


def test_parity_on_real_records(exported, shared_data):
    _, path, _, info = exported
    paths = [shared_data / 'cpsc2018_wfdb' / 'A0001.hea'] + \
        sorted((shared_data / 'physionet2021').glob('*.hea'))[:7]
    x = np.stack([records.prepare(records.read_record(p), info.leads, WINDOW).x
                  for p in paths])
    sess = export.session(path.parent / 'model.onnx')
    diff = np.abs(export.onnx_logits(sess, x) - export.torch_logits(info.model, x)).max()
    assert diff <= export.PARITY_TOL, diff


def test_int8_is_smaller_and_close(exported):
    _, path, _, info = exported
    fp32, int8 = path.parent / 'model.onnx', path.parent / 'model.int8.onnx'
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size
    x = export.synthetic_inputs(3, info.leads, WINDOW, seed=5)
    p32 = export.onnx_probabilities(export.session(fp32), x)
    p8 = export.onnx_probabilities(export.session(int8), x)
    assert np.abs(p8 - p32).max() < 0.1   # a random net: only a gross error fails this


@contextlib.contextmanager
def loaded_service(root, path, audit):
    """serve.Service with --backend onnx, its model loaded (as at start-up)."""
    import serve
    cfg = serve.config(serve.get_args_parser().parse_args(
        ['--model-path', str(path), '--root', str(root), '--backend', 'onnx',
         '--audit-db', str(root / audit)]))
    svc = serve.Service(cfg)
    svc.load()
    try:
        yield svc, cfg
    finally:
        svc.close()


def test_server_onnx_backend_answers_as_torch(exported):
    root, path, _, info = exported
    with loaded_service(root, path, 'audit.sqlite3') as (svc, cfg):
        assert svc.error is None and svc.session is not None
        x = export.synthetic_inputs(2, info.leads, WINDOW, seed=3)
        from resnet import probabilities
        assert np.abs(svc.score(list(x)) - probabilities(info.model, x)).max() < 1e-5
    assert RUN in cfg['model_path']


def test_onnx_predict_job_measures_beside_the_model(exported):
    """With onnxruntime, /v1/predict's job measures each record on the
    measurement thread while the model runs: the same answer, record by
    record and in order, as measuring after the model."""
    import time

    import serve
    from records import uploads
    root, path, _, info = exported
    files = record_upload('A', 'RBBB', 10.0, seed=1) + record_upload('B', 'AF', 10.0, seed=2)
    opts = {'lang': 'fr', 'segments': False, 'signal': False}
    with loaded_service(root, path, 'audit3.sqlite3') as (svc, _):
        got, problems = serve.predict_job(svc, files, opts, time.monotonic() + 60)
    assert not problems and [g['record'] for g in got] == ['A', 'B']
    recs, _ = uploads.load_uploads(files, info.leads, info.window)
    for g, r in zip(got, recs):
        want = json.loads(json.dumps(serve.measurements(r, 'fr'), default=float))
        assert json.loads(json.dumps(g['measurements'], default=float)) == want
        assert want['heart_rate']['beats'] >= 8
    assert got[0]['measurements'] != got[1]['measurements']


def test_server_remakes_an_export_of_an_older_version(exported):
    """A model.onnx whose sidecar has another export_version (an older
    export.py's 1-D graph) is exported anew at start-up, not served."""
    root, path, _, info = exported
    side = path.parent / 'model.onnx.json'
    meta = json.loads(side.read_text())
    side.write_text(json.dumps({**meta, 'export_version': 1}))
    before = (path.parent / 'model.onnx').stat().st_mtime_ns
    with loaded_service(root, path, 'audit2.sqlite3') as (svc, _):
        assert svc.error is None
    assert json.loads(side.read_text())['export_version'] == export.EXPORT_VERSION
    assert (path.parent / 'model.onnx').stat().st_mtime_ns != before
