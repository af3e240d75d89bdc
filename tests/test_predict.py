"""predict.py: test-fold evaluation end to end, thresholds from validation only,
cross-validation summary, inference on real records of other rates."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, make_tiny_cache

import main as main_py
from archive import read_rows
import predict
import utils
from utils import CLASSES

RUN = 'TINY-all-s42-f10'
PREDICT_FAST = ['--test-fold', '10', '--device', 'cpu', '--precision', 'fp32', '--n-boot', '50']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny database and a 2-epoch resnet18 trained on it: (data_dir, root)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_main.py: faster on a shared machine
    base = tmp_path_factory.mktemp('predict')
    data = make_tiny_cache(base / 'TINY')
    main_py.main(['--data-dir', str(data), '--epochs', '2', '--lr', '1e-3',
                  '--root', str(base), *FAST])
    yield data, base
    torch.set_num_threads(threads)


def val_scores(model_path, data_dir, folds):
    """Scores of a checkpoint on some folds, computed here without predict.py."""
    from dataset import ECGDataset
    from runs import load_checkpoint
    model, ckpt = load_checkpoint(model_path, leads='all')
    ds = ECGDataset(data_dir, folds, window=ckpt['window'])
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        return ds.labels, torch.sigmoid(model(x)).double().numpy()


def test_evaluation_writes_all_results(trained, capsys):
    data, root = trained
    predict.main(['--data-dir', str(data), '--root', str(root), *PREDICT_FAST])
    out = root / 'results' / RUN
    for name in ('metrics.csv', 'thresholds.json', 'predictions.csv', 'confusion.png', 'roc.png'):
        assert (out / name).stat().st_size > 0, name
    metrics = pd.read_csv(out / 'metrics.csv', index_col='class')
    assert list(metrics.index) == CLASSES + ['macro']
    for m in ('precision', 'recall', 'f1', 'auc', 'accuracy'):
        assert {m, f'{m}_lo', f'{m}_hi'} <= set(metrics.columns)
    ok = metrics.dropna(subset=['auc'])
    assert len(ok) == 4  # SNR, AF, RBBB + macro
    assert ((ok['auc_lo'] <= ok['auc'] + 1e-9) & (ok['auc'] <= ok['auc_hi'] + 1e-9)).all()

    labels = pd.read_csv(data / 'labels.csv', dtype={'patient_id': str})
    test = labels[labels['fold'] == 10]
    preds = pd.read_csv(out / 'predictions.csv', dtype={'patient_id': str})
    assert preds['patient_id'].tolist() == test['patient_id'].tolist()
    assert (preds[[f'true_{c}' for c in CLASSES]].to_numpy() == test[CLASSES].to_numpy()).all()
    th = json.loads((out / 'thresholds.json').read_text())['thresholds']
    scores = preds[[f'score_{c}' for c in CLASSES]].to_numpy()
    expected_pred = scores >= np.array([th[c] for c in CLASSES])
    assert (preds[[f'pred_{c}' for c in CLASSES]].to_numpy() == expected_pred).all()

    # thresholds are the F1-optimal ones of the validation fold's predictions
    y, s = val_scores(root / 'models' / RUN / 'best.pt', data, [1])
    np.testing.assert_allclose([th[c] for c in CLASSES],
                               utils.f1_optimal_thresholds(y, s), atol=1e-6)
    printed = capsys.readouterr().out
    assert '| class | precision | recall | F1 | AUC |' in printed and '| macro |' in printed


def test_thresholds_ignore_test_labels(trained, tmp_path):
    data, root = trained
    predict.main(['--data-dir', str(data), '--root', str(root), *PREDICT_FAST])
    # the same database with the test fold's labels scrambled
    other = tmp_path / 'TINY'
    shutil.copytree(data, other)
    labels = pd.read_csv(other / 'labels.csv', dtype={'patient_id': str})
    test = labels['fold'] == 10
    labels.loc[test, CLASSES] = np.roll(labels.loc[test, CLASSES].to_numpy(), 1, axis=1)
    labels.to_csv(other / 'labels.csv', index=False)
    shutil.copytree(root / 'models', tmp_path / 'models')
    predict.main(['--data-dir', str(other), '--root', str(tmp_path), *PREDICT_FAST])
    a = json.loads((root / 'results' / RUN / 'thresholds.json').read_text())['thresholds']
    b = json.loads((tmp_path / 'results' / RUN / 'thresholds.json').read_text())['thresholds']
    assert a == b
    ma = pd.read_csv(root / 'results' / RUN / 'metrics.csv', index_col='class')
    mb = pd.read_csv(tmp_path / 'results' / RUN / 'metrics.csv', index_col='class')
    assert not ma['n_pos'].equals(mb['n_pos']) or not np.allclose(ma['f1'], mb['f1'],
                                                                    equal_nan=True)


def write_1000hz_copy(src, out_dir):
    """A0001 resampled to 1000 Hz and written as a new WFDB record."""
    import wfdb
    from scipy.signal import resample_poly
    signal, fields = wfdb.rdsamp(str(src))
    up = resample_poly(signal, 2, 1, axis=0)
    wfdb.wrsamp('A0001k', fs=1000, units=['mV'] * 12, sig_name=fields['sig_name'],
                p_signal=up, fmt=['16'] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                comments=['Dx: 59118001'], write_dir=str(out_dir))
    return out_dir / 'A0001k.hea'


def test_records_inference_on_real_records(trained, shared_data, tmp_path, capsys):
    data, root = trained
    model = root / 'models' / RUN / 'best.pt'
    predict.main(['--data-dir', str(data), '--root', str(root), *PREDICT_FAST])
    a0001 = shared_data / 'cpsc2018_wfdb' / 'A0001.hea'
    k1000 = write_1000hz_copy(a0001.with_suffix(''), tmp_path)
    (tmp_path / 'BAD.hea').write_text('BAD 12 500 0\n')
    out = tmp_path / 'preds.csv'
    predict.main(['--model-path', str(model), '--root', str(root), '--device', 'cpu',
                  '--records', str(a0001), str(shared_data / 'physionet2021' / 'HR06000.hea'),
                  str(k1000), str(tmp_path / 'BAD.hea'), '--out', str(out)])
    printed = capsys.readouterr()
    assert f'thresholds: {root / "results" / RUN / "thresholds.json"}' in printed.out
    assert 'A0001:' in printed.out and 'HR06000:' in printed.out and 'A0001k:' in printed.out
    assert 'BAD' in printed.err and 'zero-length' in printed.err
    df = pd.read_csv(out)
    assert df['record'].tolist() == ['A0001', 'HR06000', 'A0001k']
    assert df['fs'].tolist() == [500, 500, 1000]
    scores = df[[f'score_{c}' for c in CLASSES]].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    # the same ECG at 1000 Hz is resampled to 500 Hz and scored alike
    np.testing.assert_allclose(scores[2], scores[0], atol=0.05)
    with pytest.raises(SystemExit, match='BAD: .*zero-length'):
        predict.main(['--model-path', str(model), '--device', 'cpu', '--strict',
                      '--records', str(tmp_path / 'BAD.hea'), '--out', str(out)])


def test_lead_set_mismatch_is_refused(trained):
    data, root = trained
    with pytest.raises(SystemExit, match='trained on leads I,II.*not II'):
        predict.main(['--data-dir', str(data), '--root', str(root), '--leads', 'II',
                      '--model-path', str(root / 'models' / RUN / 'best.pt'), *PREDICT_FAST])
    with pytest.raises(SystemExit, match=r'no checkpoint .*TINY-II-s42-f10.*main\.py'):
        predict.main(['--data-dir', str(data), '--root', str(root), '--leads', 'II',
                      *PREDICT_FAST])


def test_cv_summary_is_mean_and_sd_over_folds(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 1.0, (10, len(CLASSES) + 1, 5))
    for k in range(10):
        df = pd.DataFrame(values[k], index=pd.Index(CLASSES + ['macro'], name='class'),
                          columns=predict.METRICS)
        out = tmp_path / 'results' / f'DB-all-s42-f{k + 1}'
        out.mkdir(parents=True)
        df.to_csv(out / 'metrics.csv')
    args = predict.get_args_parser().parse_args(['--data-dir', str(tmp_path / 'DB'),
                                                 '--root', str(tmp_path)])
    summary = predict.summarise_cv(args)
    saved = pd.read_csv(tmp_path / 'results' / 'DB-all-s42-cv' / 'summary.csv',
                        index_col='class')
    for j, m in enumerate(predict.METRICS):
        np.testing.assert_allclose(saved[f'{m}_mean'], values[:, :, j].mean(0))
        np.testing.assert_allclose(saved[f'{m}_sd'], values[:, :, j].std(0, ddof=1))
    assert list(summary.index) == CLASSES + ['macro']


def test_cv_without_all_folds_names_the_missing_ones(trained):
    data, root = trained
    with pytest.raises(SystemExit, match=r'no best\.pt for test folds \[1, 2, .*9\].*--cv'):
        predict.main(['--data-dir', str(data), '--root', str(root), '--cv', '--device', 'cpu'])


def test_leads_are_the_checkpoints_in_record_mode(trained, shared_data, tmp_path, capsys):
    """A single-lead model scores records with that lead only, without --leads."""
    data, root = trained
    main_py.main(['--data-dir', str(data), '--epochs', '1', '--leads', 'II',
                  '--root', str(tmp_path), *FAST])
    model = tmp_path / 'models' / 'TINY-II-s42-f10' / 'best.pt'
    df = read_rows(predict.main(['--model-path', str(model), '--device', 'cpu', '--root',
                                 str(tmp_path), '--records',
                                 str(shared_data / 'cpsc2018_wfdb' / 'A0001'),
                                 '--out', str(tmp_path / 'p.csv')]))
    assert len(df) == 1 and '(leads II)' in capsys.readouterr().out
