"""shap_values.py: explanations that mean something, on synthetic ECGs whose truth is known.

A small ResNet-18 is trained on 4-s synthetic records of four classes (SNR,
PVC, LBBB, RBBB): the session fixture four_class_model, trained to a
criterion (shap_helpers.py says why, and how to run the checks over training
seeds with ECG_TEST_SEED). shap_values.py then explains unseen records
written to disk (WFDB + .atr beat annotations), and the tests check the values
against the annotations: the PVC class's positive SHAP mass sits on the
ectopic beats, the bundle-branch blocks' on the QRS complexes rather than the
T waves, and the values add up to f(x) - E[f(background)]. Then the
script's contracts: bad input, the cache, the figures.
"""
import shutil

import numpy as np
import pytest
import torch
from shap_helpers import TRAIN_CLASSES, WINDOW, run_shap, save_checkpoint

import records
import runs
import shap_values
import synthetic
import utils
from utils import CLASSES

N_DISK = 40              # records written to disk: 4 per fold after stratification
DISK_SEED = 2
NSAMPLES = shap_values.get_args_parser().get_default('nsamples')
BACKGROUND = 20


def run(args, root, monkeypatch, capsys):
    """shap_values.main in `root` -> (return value, printed text)."""
    monkeypatch.chdir(root)
    out = shap_values.main(args)
    return out, capsys.readouterr().out


@pytest.fixture(scope='module')
def world(tmp_path_factory, four_class_model):
    """root/data/SYN (records on disk + preprocess), root/models/<run>/best.pt
    (four_class_model), and one explanation run over chosen records."""
    import preprocess
    root = tmp_path_factory.mktemp('shap')
    data = root / 'data' / 'SYN'
    for i in range(N_DISK):
        rec = synthetic.make_record(DISK_SEED, i, duration=WINDOW / records.FS,
                                    classes=[TRAIN_CLASSES[i % len(TRAIN_CLASSES)]])
        synthetic.write_record(rec, data, synthetic.record_name(i))
    preprocess.main(['--data-dir', str(data), '--workers', '1'])
    name = utils.run_name(data, 'all', 42)
    model, epochs = four_class_model
    save_checkpoint(model, root / 'models' / name / 'best.pt', data, epochs)

    # 5 PVC, 2 LBBB, 2 RBBB, 1 SNR record (record i has class i % 4): five
    # PVCs so that two are predicted whichever model the CPU trained (A0010
    # scored 0.12 with one that passed the criterion)
    pids = [synthetic.record_name(i) for i in (1, 5, 9, 2, 6, 3, 7, 0, 13, 17)]
    args = ['--data-dir', 'data/SYN', '--patient-ids', ','.join(pids), '--nsamples',
            str(NSAMPLES), '--background', str(BACKGROUND), '--batch-size', '32']
    shap_dir, cache = run_shap(root, name, args)
    return {'root': root, 'data': data, 'name': name, 'args': args, 'pids': pids,
            'shap_dir': shap_dir, 'cache': cache, 'records': shap_values.cache_records(cache)}


def beats(data, pid):
    """R peaks (window samples) and symbols from the record's .atr."""
    import wfdb
    ann = wfdb.rdann(str(data / pid), 'atr')
    n = wfdb.rdheader(str(data / pid)).sig_len
    r = ann.sample + (WINDOW - min(n, WINDOW)) - max(0, n - WINDOW)
    return r[r >= 0], np.array(ann.symbol)[r >= 0]


def mass_in(values, mask):
    """Share of the positive SHAP mass (all leads) inside a time mask."""
    pos = np.clip(values, 0, None).sum(0)
    return pos[mask].sum() / pos.sum()


def explained(world, cls):
    """(pid, values (leads, window)) for records of true class `cls` that
    the model predicts with it."""
    out = []
    for pid, r in world['records'].items():
        c = CLASSES.index(cls)
        if r['label'][c] and r['prob'][c] >= 0.5 and c in r['classes']:
            out.append((pid, r['values'][list(r['classes']).index(c)]))
    return out


def beat_mask(r_peaks, before_ms, after_ms):
    mask = np.zeros(WINDOW, bool)
    for r in r_peaks:
        lo, hi = r - int(before_ms * records.FS / 1000), r + int(after_ms * records.FS / 1000)
        mask[max(0, lo):max(0, min(WINDOW, hi))] = True
    return mask


def random_window_shares(values, n_windows, width, draws=1000, seed=0):
    """Positive-mass shares of `n_windows` windows of `width` samples placed
    uniformly at random in the record: the null for a window test."""
    pos = np.clip(values, 0, None).sum(0)
    cum = np.concatenate([[0.0], np.cumsum(pos)])
    starts = np.random.default_rng(seed).integers(0, WINDOW - width + 1, (draws, n_windows))
    return (cum[starts + width] - cum[starts]).sum(1) / pos.sum()


@pytest.mark.slow
def test_pvc_mass_sits_on_the_ectopic_beats(world):
    """Most of the PVC class's positive SHAP mass lies on the ectopic beats,
    QRS to the end of its T wave (-150..+450 ms around the annotated V beats),
    far more than in random windows of the same total width, and per beat
    several times the mass of a normal beat of the same record.

    Not tested: that most of it lies within +-150 ms of the V beat's R peak.
    Which part of the ectopic beat gets the mass, its QRS or its discordant T
    wave 300-450 ms after the R peak, depends on the record and on the trained
    model. Over the ten PVC records on disk and five models (ECG_TEST_SEED
    0-4; 0, 3, 4 on two threads, 1, 2 on one), the +-150 ms share was
    0.04-0.84 (0.3-12.3x random windows); it was at least half in 6, 2, 1, 5
    and 3 of the 9-10 records each model predicted, pooled 0.62, 0.28, 0.37,
    0.52 and 0.41. A0006 put 0.10-0.28 there with every model. The whole
    ectopic beat held 0.61-0.89 of the mass (2.2-9.8x random windows) in
    every record, and its beats 6-30x a normal beat's (seeds 0 and 1)."""
    found = explained(world, 'PVC')
    assert len(found) >= 2, 'the tiny model did not learn PVC; see shap_helpers.train_tiny_model'
    for pid, values in found:
        r, sym = beats(world['data'], pid)
        v = r[sym == 'V']
        assert len(v), f'{pid} has no V beat in its window'
        # Windows this wide catch some mass wherever they fall in a 4-s
        # record, so compare with the random windows' mean share.
        whole = mass_in(values, beat_mask(v, 150, 450))
        null = random_window_shares(values, len(v), int(0.6 * records.FS))
        assert whole > 0.5 and whole > 2 * null.mean(), (pid, whole, null.mean())
        # Per beat, an ectopic beat carries several times the mass of a normal one.
        per_n = [mass_in(values, beat_mask([b], 150, 450)) for b in r[sym == 'N']]
        if per_n:
            per_v = [mass_in(values, beat_mask([b], 150, 450)) for b in v]
            assert np.mean(per_v) > 3 * np.mean(per_n), (pid, per_v, per_n)


def waves(pid):
    """(QRS mask, T-wave mask) of a record on disk, from the generator's truth:
    the QRS from its onset over its duration, the T wave as the last 200 ms
    of the QT interval. A bundle-branch block's QRS is wide (120-180 ms) and
    its diagnostic part is terminal (RBBB's R' in V1, wide S in V6), so a
    window centred on the annotated R peak would miss it."""
    rec = synthetic.make_record(DISK_SEED, int(pid[1:]) - 1, duration=WINDOW / records.FS,
                                classes=[TRAIN_CLASSES[(int(pid[1:]) - 1) % 4]])
    truth, ms = rec['truth'], records.FS / 1000
    qrs, t = np.zeros(WINDOW, bool), np.zeros(WINDOW, bool)
    for on, dur, qt in zip(truth['beat_qrs_onset'], truth['beat_qrs_ms'], truth['beat_qt_ms']):
        qrs[max(0, on):max(0, on + int(dur * ms))] = True
        t[max(0, on + int((qt - 200) * ms)):max(0, on + int(qt * ms))] = True
    return qrs, t & ~qrs


@pytest.mark.slow
@pytest.mark.parametrize('cls', ['LBBB', 'RBBB'])
def test_bundle_branch_block_mass_on_qrs_not_t(world, cls):
    """A bundle-branch block's positive SHAP mass prefers its QRS to its T
    wave, by 1.25x. Measured over the ten records of each class on disk and
    five models (ECG_TEST_SEED 0-4, as for PVC): QRS/T 1.5-11.9 for LBBB,
    1.4-12.4 for RBBB; a bar of 2x would fail LBBB's A0007 (1.9x) with seed
    2 on one thread."""
    found = explained(world, cls)
    assert found, f'the tiny model did not learn {cls}'
    for pid, values in found:
        qrs, t = waves(pid)
        # both cover a similar share of the record, so more mass on the QRS is a preference
        assert 0.5 < t.mean() / qrs.mean() < 2
        assert mass_in(values, qrs) > 1.25 * mass_in(values, t), (pid, mass_in(values, qrs),
                                                                  mass_in(values, t))


@pytest.mark.slow
def test_values_add_up_to_output_minus_expected(world):
    """Expected gradients is additive in expectation only. At the default
    nsamples (32) the Monte Carlo error of one sum is typically 5-30% of
    f(x) - E[f(background)], more when that difference is small (it falls as
    1/sqrt(nsamples)); over several explanations the errors must centre on 0
    (a wrong expected value or baseline would show as a bias)."""
    c, recs = world['cache'], world['records']
    err, target = [], []
    for r in recs.values():
        sums = r['values'].reshape(len(r['classes']), -1).sum(-1)
        for cls, fx, total in zip(r['classes'], r['fx'], sums):
            target.append(fx - c['expected_value'][cls])
            err.append(total - target[-1])
            assert np.isclose(total, r['shap_sum'][list(r['classes']).index(cls)], rtol=1e-4)
    err, target = np.array(err), np.array(target)
    assert np.median(np.abs(err) / np.abs(target)) < 0.3, (err, target)
    assert abs(err.mean()) < 0.2 * np.abs(target).mean(), (err, target)
    table = (world['shap_dir'] / 'additivity.csv').read_text().splitlines()
    assert len(table) == 1 + len(err)


@pytest.mark.slow
def test_explains_exactly_the_predicted_classes(world):
    for pid, r in world['records'].items():
        predicted = set(np.flatnonzero(r['prob'] >= 0.5))
        want = predicted or {int(np.argmax(r['prob']))}
        assert set(r['classes'].tolist()) == want, pid


@pytest.mark.slow
def test_figures_lead_importance_and_ranking_are_written(world):
    d = world['shap_dir']
    figs = sorted(p.name for p in (d / 'records').glob('*.png')
                  if not p.name.endswith('_waterfall.png'))  # test_shap_population.py
    want = {f'{pid}_{CLASSES[c]}.png' for pid, r in world['records'].items() for c in r['classes']}
    assert set(figs) == want
    import pandas as pd
    table = pd.read_csv(d / 'lead_importance.csv', index_col='class')
    leads = list(records.LEADS)
    assert np.allclose(table[leads].sum(axis=1), 1, atol=1e-3)
    assert table.index[-1] == 'average'
    ranking = (d / 'lead_ranking.txt').read_text()
    assert all(lead in ranking for lead in leads)
    assert (d / 'lead_importance.png').stat().st_size > 0


@pytest.mark.slow
def test_cache_reused_then_recomputed_after_model_change(world, tmp_path, monkeypatch, capsys):
    root = tmp_path
    shutil.copytree(world['root'] / 'data', root / 'data')
    shutil.copytree(world['root'] / 'models', root / 'models')
    args = ['--data-dir', 'data/SYN', '--patient-ids', world['pids'][0], '--nsamples', '4',
            '--background', '4']
    _, out = run(args, root, monkeypatch, capsys)
    assert '1 to compute' in out
    cache = root / 'shap' / world['name'] / shap_values.CACHE_NAME
    stamp = cache.stat().st_mtime_ns
    fig = next((root / 'shap' / world['name'] / 'records').glob('*.png'))
    fig.unlink()

    _, out = run(args, root, monkeypatch, capsys)
    assert '1 reused' in out and 'nothing recomputed' in out
    assert cache.stat().st_mtime_ns == stamp
    assert fig.exists()  # figures are redrawn from the cache

    _, out = run(args + ['--plots-only'], root, monkeypatch, capsys)
    assert 'redrawing 1 records' in out and cache.stat().st_mtime_ns == stamp

    ckpt_path = root / 'models' / world['name'] / 'best.pt'
    ckpt = runs.read_checkpoint(ckpt_path)
    ckpt['model']['fc.bias'] += 0.01
    torch.save(ckpt, ckpt_path)
    _, out = run(args, root, monkeypatch, capsys)
    assert 'other settings (model)' in out and '1 to compute' in out
    assert cache.stat().st_mtime_ns != stamp

    # a changed setting (nsamples) also recomputes
    _, out = run(args[:-3] + ['8', '--background', '4'], root, monkeypatch, capsys)
    assert 'nsamples' in out and '1 to compute' in out


@pytest.mark.slow
def test_bad_input_clear_messages(world, monkeypatch, capsys):
    root, pid = world['root'], world['pids'][0]
    monkeypatch.chdir(root)
    with pytest.raises(SystemExit, match='no checkpoint'):
        shap_values.main(['--data-dir', 'data/SYN', '--seed', '7'])
    # a checkpoint of all 12 leads where the run of leads I,II should be
    other = root / 'models' / utils.run_name(world['data'], 'I,II', 42)
    other.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / 'models' / world['name'] / 'best.pt', other / 'best.pt')
    with pytest.raises(SystemExit, match='trained on leads'):
        shap_values.main(['--data-dir', 'data/SYN', '--leads', 'I,II', '--patient-ids', pid])
    with pytest.raises(SystemExit, match=r'unknown patient id\(s\) B0001, A9999'):
        shap_values.main(['--data-dir', 'data/SYN', '--patient-ids', f'{pid},B0001,A9999'])
    with pytest.raises(SystemExit, match='no SHAP cache'):
        shap_values.main(['--data-dir', 'data/SYN', '--seed', '7', '--plots-only'])


# --------------------------------------------------------------------------
# Pieces, on tiny inputs.

def test_wrapper_shift_keeps_gradients_and_bf16_gradients_are_sane():
    from resnet import build_model
    torch.manual_seed(0)
    model = build_model('resnet18', 3).eval()
    x = torch.randn(2, 3, 256)
    thr = np.linspace(0.2, 0.8, 9)
    cpu = torch.device('cpu')
    grads = {}
    for prec in ('fp32', 'bf16'):
        w = shap_values.explained_model(model, thr, cpu, prec)
        xx = x.clone().requires_grad_()
        out = w(xx)
        assert out.dtype == torch.float32
        grads[prec] = torch.autograd.grad(out[:, 2].sum(), xx)[0]
    xx = x.clone().requires_grad_()
    ref = torch.autograd.grad(model(xx)[:, 2].sum(), xx)[0]
    assert torch.allclose(grads['fp32'], ref, atol=1e-6)
    with torch.no_grad():
        margin = shap_values.explained_model(model, thr, cpu, 'fp32')(x)
        assert torch.allclose(margin, model(x) - torch.logit(torch.tensor(thr)).float(),
                              atol=1e-5)
    cos = torch.nn.functional.cosine_similarity(grads['bf16'].flatten(), ref.flatten(), dim=0)
    assert cos > 0.9, float(cos)


def test_explain_record_picks_predicted_classes_and_is_seeded():
    from resnet import build_model
    torch.manual_seed(0)
    model = build_model('resnet18', 2).eval()
    bg, x = torch.randn(6, 2, 96), torch.randn(1, 2, 96)
    with torch.no_grad():
        p = torch.sigmoid(model(x))[0].numpy()
    order = np.argsort(-p)
    thr = np.full(9, 0.999)
    thr[order[[1, 4]]] = p[order[[1, 4]]] - 1e-4   # exactly these two are "predicted"
    w = shap_values.explained_model(model, thr, torch.device('cpu'), 'fp32')
    v1, idx, margins = shap_values.explain_record(w, x, bg, 4, rseed=3, batch=4)
    assert set(idx.tolist()) == set(order[[1, 4]].tolist())
    assert v1.shape == (2, 2, 96)
    assert (margins >= 0).sum() == 2
    v2, _, _ = shap_values.explain_record(w, x, bg, 4, rseed=3, batch=4)
    assert np.array_equal(v1, v2)
    # nothing predicted: the class closest to its threshold is explained
    w.offset.fill_(1e3)
    _, idx, _ = shap_values.explain_record(w, x, bg, 2, rseed=3, batch=4)
    assert idx.tolist() == [int(np.argmax(w(x)[0].detach().numpy()))]


def test_lead_importance_ignores_padding_and_weighs_classes_equally():
    leads = ['I', 'II']
    v = np.zeros((1, 2, 10), np.float32)
    v[0, 0, :4] = 100.0            # padding: the record is the last 6 samples
    v[0, 0, 4:] = 1.0
    v[0, 1, 4:] = 3.0
    v[0, 1, 9] = -50.0             # negative values do not count
    rec = {'length': 6, 'values': v, 'classes': np.array([CLASSES.index('AF')]),
           'prob': np.full(9, 0.9), 'threshold': np.full(9, 0.5)}
    rec2 = dict(rec, classes=np.array([CLASSES.index('PVC')]), values=v[:, ::-1])
    table = shap_values.lead_importance({'a': rec, 'b': rec2, 'c': rec2}, leads)
    assert table.loc['AF', 'I'] == pytest.approx(6 / (6 + 15))
    assert table.loc['PVC', 'I'] == pytest.approx(15 / 21)
    assert table.loc['average', 'I'] == pytest.approx((6 / 21 + 15 / 21) / 2)
    assert list(table['n']) == [1, 2, 3]


def test_highlight_marks_the_high_segment():
    v = np.random.default_rng(0).normal(0, 0.01, (3, 2000)).astype(np.float32)
    v[1, 1500:1540] += 1.0
    mask = shap_values.highlight_mask(v, length=1000, percentile=99)
    assert mask.shape == (3, 1000)
    assert mask[1, 512:528].all() and not mask[0].any()


def test_weights_hash_and_record_seed_tell_models_and_records_apart():
    from resnet import build_model
    torch.manual_seed(0)
    a = build_model('resnet18', 2).state_dict()
    h = shap_values.weights_hash(a)
    assert h == shap_values.weights_hash({k: v.clone() for k, v in a.items()})
    a['fc.bias'][0] += 1e-6
    assert h != shap_values.weights_hash(a)
    assert shap_values.record_seed(42, 'A0001') == shap_values.record_seed(42, 'A0001')
    assert shap_values.record_seed(42, 'A0001') != shap_values.record_seed(43, 'A0001')
