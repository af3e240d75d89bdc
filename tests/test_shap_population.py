"""shap_population.py: waterfalls, summaries and beat-aligned profiles, checked
against the synthetic truth.

The session fixture crossed_pr_model (shap_helpers.py) is the small
ResNet-18 of test_shap.py (same data generator, same training loop, trained
to the same criterion; ECG_TEST_SEED sets its seed), trained on four classes
whose criterion lives in a known place of the beat (synthetic.py): IAVB (the
PR interval), LBBB (the QRS), PVC (the ectopic beat) and STD (the ST
segment), with SNR. shap_values.py then explains unseen records written to
disk with their .atr, and the tests check that each
class's beat-aligned profile peaks in its criterion's region, that the
waterfall's twelve contributions add up to f(x) - E[f], and that every figure
is written.

The training set crosses the criteria: every other record of each class also
has a long PR (IAVB with LBBB, PVC or STD, or alone), so a long PR is the only
thing that tells IAVB apart. With single-label records (one class each, as
test_shap.py trains) the model also learns IAVB as "a normal, narrow QRS":
its input gradient for IAVB was as high on the QRS as on the PR interval
(QRS 6.0 vs P 5.4 at held-out AUC 0.93); crossed, it is 1.5-4.5x higher on
the PR interval (eight trained models). The records have half the generator's noise and no
borderline cases: a long PR moves a 0.1-0.2 mV P wave, and at full noise with
PR 205-230 ms cases 160 4-s records teach it too slowly for a test (held-out
IAVB AUC 0.66-0.89 after 10-15 epochs; see shap_helpers.POP_AUC_BAR). These are the
model's conditions, not the explainer's: the check is that SHAP puts a
learned criterion where it lives. For IAVB, whose criterion is an interval,
the test is the model's input gradient (test_iavb_model_is_sensitive_on_the_pr_interval):
whether SHAP's IAVB profile peaks on the PR interval or on the QRS that ends
it depends on the trained model, a property training does not guarantee
(docs/shap.md gives the measured models).
"""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from scipy.signal import resample_poly
from shap_helpers import (
    POP_RECORD,
    WINDOW,
    pop_classes,
    run_shap,
    save_checkpoint,
    synthetic_batch,
)
from sklearn.metrics import roc_auc_score

import measure
import preprocess
import shap_population as sp
import shap_values
import synthetic
import utils
from QRSDetectorOffline import match_beats
from records import FS, LEADS
from utils import CLASSES

PROFILE_CLASSES = ['SNR', 'IAVB', 'LBBB', 'PVC', 'STD']
N_DISK = 64              # 8 single-label IAVB records among them
DISK_SEED = 3
# A class's profile is tested only when the model has learned it (test AUC on
# fresh records); below this its SHAP values explain noise, not the criterion.
MIN_AUC = 0.9


def held_out_auc(model):
    """AUC per trained class on 80 fresh records (another generator seed)."""
    x, y = synthetic_batch(seed=4, n=80, classes=pop_classes, **POP_RECORD)
    with torch.no_grad():
        p = model(x).numpy()
    return {c: float(roc_auc_score(y[:, CLASSES.index(c)], p[:, CLASSES.index(c)]))
            for c in PROFILE_CLASSES}


@pytest.fixture(scope='module')
def pop(tmp_path_factory, crossed_pr_model):
    """root/data/SYN (records on disk + preprocess), root/models/<run>/best.pt
    (crossed_pr_model), and one explanation run over single-label records."""
    root = tmp_path_factory.mktemp('shap_pop')
    data = root / 'data' / 'SYN'
    for i in range(N_DISK):
        rec = synthetic.make_record(DISK_SEED, i, duration=WINDOW / FS, classes=pop_classes(i),
                                    **POP_RECORD)
        synthetic.write_record(rec, data, synthetic.record_name(i))
    preprocess.main(['--data-dir', str(data), '--workers', '1'])
    name = utils.run_name(data, 'all', 42)
    model, epochs = crossed_pr_model
    save_checkpoint(model, root / 'models' / name / 'best.pt', data, epochs=epochs)
    auc = held_out_auc(model)
    # single-label records (a record with two criteria would mix two QRS
    # shapes into the class's median beat): eight with a long PR, whose
    # profile is the closest call, four of each other diagnosis, one normal
    single = [i for i in range(N_DISK) if len(pop_classes(i)) == 1]
    pids = [synthetic.record_name(i) for c in PROFILE_CLASSES[1:]
            for i in [j for j in single if pop_classes(j) == [c]][:8 if c == 'IAVB' else 4]]
    pids.append(synthetic.record_name(0))
    # fp32: the same values on CPUs with and without native bf16
    args = ['--data-dir', 'data/SYN', '--patient-ids', ','.join(pids), '--background', '20',
            '--batch-size', '32', '--precision', 'fp32']
    shap_dir, cache = run_shap(root, name, args)
    records = shap_values.cache_records(cache)
    for r in records.values():
        r['threshold'] = cache['thresholds']
    with np.load(shap_dir / 'profiles.npz', allow_pickle=False) as z:
        profiles = {k: z[k] for k in z.files}
    return {'root': root, 'data': data, 'name': name, 'pids': pids, 'auc': auc, 'model': model,
            'epochs': epochs,
            'shap_dir': shap_dir, 'cache': cache, 'records': records, 'profiles': profiles}


def learned(pop, cls):
    """Fail, naming the class and its AUC, when the model has not learned it."""
    auc = pop['auc'][cls]
    assert auc >= MIN_AUC, (f'the test model did not learn {cls} (held-out AUC {auc:.3f} < '
                            f'{MIN_AUC} after {pop["epochs"]} epochs): its profile would '
                            f'explain noise; see shap_helpers.train_tiny_model')


@pytest.mark.slow
@pytest.mark.parametrize('cls', ['LBBB', 'STD', 'PVC'])
def test_profile_peaks_in_the_criterion_region(pop, cls):
    """The profile of the class's four most important leads is highest (mean
    density) in the region where the generator puts the class's criterion,
    above each other region."""
    learned(pop, cls)
    z = pop['profiles']
    assert cls in z['classes'].tolist(), f'no profile for {cls}: the model predicted no record'
    assert int(z[f'n_records_{cls}']) >= 2
    regions = dict(zip(sp.REGIONS, map(tuple, z[f'region_bounds_{cls}'])))
    means, at, where = sp.region_peaks(z[f'profile_{cls}'], regions)
    own = sp.CRITERION_REGION[cls]
    assert where == own, (cls, at, means)
    if cls != 'STD':
        assert all(means[own] > v for k, v in means.items() if k != own), means
        return
    # STD's ST segment follows the QRS, whose R wave carries the largest
    # x - x' and so the largest expected gradients (as for IAVB, docs/shap.md):
    # mean ST / QRS was 1.75, 1.56, 2.08, 2.15 and 1.05 for ECG_TEST_SEED 0-4,
    # too close to 1 to hold on every CPU; ST / max(P, T) was 1.7-5.1.
    assert means['ST'] > 1.5 * max(means['P'], means['T']), means
    assert means['ST'] > 0.75 * means['QRS'], means


def gradient_profile(model, cls, n=12, seed=6):
    """The profile of sp.class_profile (regions, region means, peak) made of
    |d logit_cls / dx| instead of SHAP values, over n fresh records of `cls`:
    where the model is sensitive, before expected gradients multiplies by
    x - x'."""
    recs = [synthetic.make_record(seed, i, duration=WINDOW / FS, classes=[cls], **POP_RECORD)
            for i in range(n)]
    x = torch.from_numpy(np.stack([r['signal'][-WINDOW:].T for r in recs])).float()
    x.requires_grad_(True)
    model(x)[:, CLASSES.index(cls)].sum().backward()
    grad = x.grad.abs().numpy()
    return sp.class_profile([(xi, g, WINDOW, r['beats'], r['symbols'])
                             for xi, g, r in zip(x.detach().numpy(), grad, recs)], cls)


@pytest.mark.slow
def test_iavb_model_is_sensitive_on_the_pr_interval(pop):
    """The test for IAVB, whose SHAP profile is not tested (see the module
    docstring): the model has learned a long PR where it lives. Its input
    gradient, aligned on the beats of fresh IAVB records, is highest in the P
    region (the PR interval and the P wave) for its four most sensitive
    leads, at least 1.25x its QRS mean (measured after 20 epochs: 2.5x,
    1.8x, 3.9x, 4.1x and 4.5x with training seeds 0-4; with nn.Dropout's
    masks 3.6x, 2.5x and 1.5x for seeds 0-2; trained to the criterion:
    2.2x, 2.6x, 2.0x, 2.4x and 2.1x with ECG_TEST_SEED 0-4)."""
    learned(pop, 'IAVB')
    p = gradient_profile(pop['model'], 'IAVB')
    means = p['region_means']
    assert p['peak_region'] == 'P' and means['P'] >= 1.25 * means['QRS'], (p['peak_ms'], means)


@pytest.mark.slow
def test_profiles_table_and_figures_written(pop):
    d, recs = pop['shap_dir'], pop['records']
    want = {f'{pid}_{CLASSES[c]}_waterfall.png' for pid, r in recs.items() for c in r['classes']}
    assert {p.name for p in (d / 'records').glob('*_waterfall.png')} == want
    explained = {CLASSES[c] for r in recs.values() for c in r['classes']}
    assert {p.name for p in d.glob('summary_*.png')} == {f'summary_{c}.png' for c in explained}
    predicted = {CLASSES[c] for r in recs.values() for c in r['classes']
                 if r['prob'][c] >= r['threshold'][c]}
    assert {p.name for p in d.glob('profile_*.png')} == {f'profile_{c}.png' for c in predicted}
    assert set(pop['profiles']['classes'].tolist()) == predicted
    for p in list(d.glob('*.png')) + list((d / 'records').glob('*_waterfall.png')):
        assert p.stat().st_size > 5000, p
    peaks = pd.read_csv(d / 'profile_peaks.csv', index_col='class')
    assert set(peaks.index) == predicted
    t = pop['profiles']['t_ms']
    assert t[0] == -sp.BEFORE_MS and len(t) == (sp.BEFORE_MS + sp.AFTER_MS) * FS // 1000


@pytest.mark.slow
def test_waterfall_contributions_add_up_to_output_minus_expected(pop):
    """The twelve contributions are the SHAP values summed over time, so they
    add up exactly to the explanation's total; that total matches
    f(x) - E[f] up to the Monte Carlo error of expected gradients: median
    relative error under 40%, no bias. (test_shap.py's 30% at the same
    nsamples failed here once: the median was 0.14-0.22 for ECG_TEST_SEED
    0-3 and 0.33 for seed 4 on two threads; it depends on how many of the
    model's f(x) lie next to E[f].)"""
    expected = pop['cache']['expected_value']
    table = pd.read_csv(pop['shap_dir'] / 'lead_contributions.csv')
    leads = list(LEADS)
    err, target = [], []
    for pid, r in pop['records'].items():
        contrib = sp.lead_contributions(r['values'], r['length'])
        for c, fx, total, row in zip(r['classes'], r['fx'], r['shap_sum'], contrib):
            e = sp.lead_explanation(row, expected[c], leads, sp.lead_rms(r['x'], r['length']))
            assert e.base_values == pytest.approx(expected[c])
            assert e.values.sum() == pytest.approx(total, rel=1e-4, abs=1e-6)
            line = table[(table['patient_id'] == pid) & (table['class'] == CLASSES[c])]
            assert len(line) == 1
            assert np.allclose(line[leads].to_numpy()[0], row, rtol=1e-4, atol=1e-6)
            assert line['residual'].iloc[0] == pytest.approx(fx - expected[c] - row.sum(),
                                                             rel=1e-4, abs=1e-5)
            target.append(fx - expected[c])
            err.append(row.sum() - target[-1])
    # as test_shap.py: a mean of per-explanation ratios would be ruled by one
    # explanation whose f(x) lies next to E[f]
    err, target = np.array(err), np.array(target)
    assert np.median(np.abs(err) / np.abs(target)) < 0.4, (err, target)
    assert abs(err.mean()) < 0.2 * np.abs(target).mean(), (err, target)


@pytest.mark.slow
def test_waterfall_figure_ends_at_the_sum(pop):
    """shap's own waterfall draws E[f] and E[f] + the contributions."""
    r = next(iter(pop['records'].values()))
    c = int(r['classes'][0])
    contrib = sp.lead_contributions(r['values'], r['length'])[0]
    e = float(pop['cache']['expected_value'][c])
    fig = sp.plot_waterfall(contrib, e, float(r['fx'][0]), list(LEADS),
                            sp.lead_rms(r['x'], r['length']))
    labels = ' '.join(t.get_text() for ax in fig.axes
                      for t in ax.get_xticklabels() + ax.texts)
    assert f'{e + contrib.sum():.3f}'[:-1] in labels, labels
    import matplotlib.pyplot as plt  # here: after utils.pyplot() chose the Agg backend
    plt.close(fig)


@pytest.mark.slow
def test_beats_from_atr_agree_with_the_detector(pop):
    """Both sources of R peaks agree on the records explained, and the
    detector's shape rule finds the annotated PVCs."""
    for pid, r in pop['records'].items():
        path = pop['data'] / pid
        r_atr, sym_atr = sp.annotated_beats(path, r['length'], r['x'].shape[-1])
        r_det, sym_det = sp.detected_beats(r['x'], r['length'], r['x'].shape[-1])
        assert match_beats(r_atr, r_det, FS)['f1'] >= 0.9, pid
        if 'V' in sym_atr:
            v = match_beats(r_atr[sym_atr == 'V'], r_det[sym_det == 'V'], FS)
            assert v['se'] == 1.0, (pid, v)


# --------------------------------------------------------------------------
# Pieces, without a model.

def clean_record(cls, i=0, duration=4.0):
    rec = synthetic.make_record(5, i, duration=duration, classes=[cls], noise_scale=0)
    return rec, rec['signal'].T.astype(np.float32)


@pytest.mark.parametrize('cls', ['SNR', 'IAVB', 'LBBB', 'RBBB', 'STD', 'PVC'])
def test_qrs_delineation_matches_the_generator(cls):
    """The median beat's QRS (of the V beats for PVC), from its spatial
    velocity (measure.qrs_bounds), starts and ends within 20 ms of the
    generator's (onset and duration of every beat), with the generator's
    noise. (Over 48 such records, 8 classes, the error is 2 ms on average
    and at most 6 ms, 10 ms for the PVCs' broad waves.)"""
    rec = synthetic.make_record(5, 0, duration=10.0, classes=[cls])
    x = rec['signal'].T.astype(np.float64)
    before, after, _ = sp.window_samples()
    r, sym = rec['beats'], np.array(rec['symbols'])
    ok = (r - before >= 0) & (r + after <= x.shape[-1]) & (sym == ('V' if cls == 'PVC' else 'N'))
    assert ok.any()
    on, end = sp.delineate_qrs(np.median(sp.beat_windows(x, r[ok], before, after), axis=0))
    truth = rec['truth']
    t_on = np.mean(truth['beat_qrs_onset'][ok] - r[ok]) * 1000 / FS
    t_end = t_on + np.mean(truth['beat_qrs_ms'][ok])
    assert abs(on - t_on) <= 20 and abs(end - t_end) <= 20, (on, t_on, end, t_end)


@pytest.mark.parametrize('cls', ['SNR', 'LBBB', 'RBBB'])
def test_profile_qrs_region_is_the_measured_qrs(cls):
    """One beat rule set: a record's SHAP-profile QRS region (its detected,
    labelled beats, their median beat, delineated) spans the QRS that
    measure.py measures on the same record, within one sample or two."""
    rec = synthetic.make_record(5, 0, duration=10.0, classes=[cls], noise_scale=0.5)
    x = rec['signal'].T.astype(np.float64)
    r, sym = sp.detected_beats(x, x.shape[-1], x.shape[-1])
    before, after, _ = sp.window_samples()
    beat = np.median(sp.beat_windows(x, sp.aligned_beats(r, sym, cls), before, after), axis=0)
    on, end = sp.delineate_qrs(beat)
    assert abs((end - on) - measure.measure(x, FS, LEADS)['qrs_ms']) <= 4


def test_annotations_map_into_the_window(tmp_path):
    """A record longer than the window: its last WINDOW samples are kept, and
    the .atr peaks land on the window's R peaks."""
    rec = synthetic.make_record(5, 1, duration=7.0, classes=['PVC'], noise_scale=0)
    synthetic.write_record(rec, tmp_path, 'A0001')
    window = 2000
    x = rec['signal'][-window:].T
    r, sym = sp.annotated_beats(tmp_path / 'A0001', window, window)
    n = len(rec['signal'])
    inside = rec['beats'] >= n - window
    assert np.array_equal(r, rec['beats'][inside] - (n - window))
    assert list(sym) == list(np.array(rec['symbols'])[inside])
    # shorter than the window: front padding shifts them the other way
    short = synthetic.make_record(5, 2, duration=3.0, classes=['SNR'], noise_scale=0)
    synthetic.write_record(short, tmp_path, 'A0002')
    r, _ = sp.annotated_beats(tmp_path / 'A0002', 1500, window)
    assert np.array_equal(r, short['beats'] + 500)
    # a cache length that does not fit the header: not trusted
    assert sp.annotated_beats(tmp_path / 'A0002', 1400, window) is None
    assert sp.annotated_beats(tmp_path / 'A0009', 1500, window) is None
    peaks, sym, src = sp.record_beats(np.pad(x, ((0, 0), (0, 0))), window, tmp_path / 'A0009')
    assert src == 'detector' and len(peaks) >= 5


def test_profile_of_mass_on_the_pr_interval():
    """Positive values put on the PR interval of every beat give a profile
    that peaks in the P region; the record's length and padding are honoured."""
    rec, x = clean_record('IAVB', duration=6.0)
    n = x.shape[-1]
    window = n + 300
    xw = np.pad(x, ((0, 0), (300, 0)))
    v = np.zeros_like(xw)
    onset = rec['truth']['beat_qrs_onset'] + 300
    for on in onset:
        v[1, max(0, on - 60):on] = 1.0
    peaks = rec['beats'] + 300
    prof, beat, nb = sp.record_profile(xw, v, n, peaks)
    assert nb >= 3 and prof.shape == (12, (sp.BEFORE_MS + sp.AFTER_MS) * FS // 1000)
    on, end = sp.delineate_qrs(beat)
    means, at, where = sp.region_peaks(prof, sp.regions_for(on, end))
    assert where == 'P' and means['QRS'] < means['P'] and at < on, (at, means)
    # density: 1 = even spread over leads and real samples
    assert np.isclose(np.clip(v[:, window - n:], 0, None).sum() /
                      np.clip(v[:, window - n:], 0, None).mean(), 12 * n)


def test_between_qrs_share_counts_mass_and_time_outside_the_qrs():
    length = 1000
    v = np.zeros((12, length))
    peaks = np.array([200, 500, 800])
    v[3, 300:400] = 1.0                              # between QRS complexes
    mass, time = sp.between_qrs_share(v, length, peaks, -40, 60)
    assert mass == 1.0 and time == pytest.approx(1 - 3 * 51 / length)  # 100 ms + 1 sample at 500 Hz
    v[3, 190:230] = 1.0                              # inside the first QRS
    mass, _ = sp.between_qrs_share(v, length, peaks, -40, 60)
    assert mass == pytest.approx(100 / 140)


def test_detector_labels_ectopic_beats_without_annotations():
    rec, x = clean_record('PVC', i=3, duration=8.0)
    r, sym = sp.detected_beats(x, x.shape[-1], x.shape[-1])
    truth = rec['beats'][np.array(rec['symbols']) == 'V']
    assert len(truth) and match_beats(truth, r[sym == 'V'], FS)['f1'] == 1.0
    assert sp.aligned_beats(r, sym, 'PVC').tolist() == r[sym == 'V'].tolist()
    assert sp.aligned_beats(r, sym, 'LBBB').tolist() == r[sym == 'N'].tolist()
    assert sp.aligned_beats(r, sym, 'AF').tolist() == r.tolist()


def test_summary_and_waterfall_are_shap_plots_of_arrays():
    rng = np.random.default_rng(0)
    leads = list(LEADS)
    contribs, rms = rng.normal(size=(5, 12)), rng.uniform(0.1, 1, (5, 12))
    fig = sp.plot_summary(contribs, rms, leads, 'X')
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert set(names) == set(leads)
    import matplotlib.pyplot as plt  # here: after utils.pyplot() chose the Agg backend
    plt.close(fig)
    fig = sp.plot_waterfall(contribs[0], 0.5, 0.5 + contribs[0].sum(), leads, rms[0])
    assert 'residual +0.000' in fig._suptitle.get_text()
    plt.close(fig)


def test_per_class_records_picks_single_label_records_of_each_class():
    labels = np.zeros((6, len(CLASSES)), np.float32)
    for row, cls in enumerate(['AF', 'AF', 'IAVB', 'AF', 'STD', 'STD']):
        labels[row, CLASSES.index(cls)] = 1
    labels[4, CLASSES.index('PVC')] = 1          # STD + PVC: two labels, left out
    ds = SimpleNamespace(patient_ids=['A6', 'A2', 'A3', 'A1', 'A5', 'A4'], labels=labels)
    # first 2 of each class in id order: AF A1, A2; IAVB A3; STD A4
    assert [ds.patient_ids[i] for i in shap_values.per_class_records(ds, 2)] == \
        ['A1', 'A2', 'A3', 'A4']


def test_record_path_finder_searches_subfolders(tmp_path):
    rec = synthetic.make_record(5, 1, duration=3.0, classes=['SNR'], noise_scale=0)
    synthetic.write_record(rec, tmp_path / 'g1', 'A0007')
    synthetic.write_record(rec, tmp_path, 'A0008')
    find = sp.record_path_finder(tmp_path)
    assert find('A0008') == tmp_path / 'A0008'
    assert find('A0007') == tmp_path / 'g1' / 'A0007'
    assert find('A0009') is None
    assert sp.record_path_finder(None)('A0008') is None


def test_profiles_skip_records_without_beats(tmp_path, capsys):
    """A flat record (no R peaks) gets a line and is left out; a NaN sample
    silences only its lead (the fused detector gives it no vote), so that
    record still counts; the others still make their profile and figures."""
    leads = list(LEADS)
    rec, x = clean_record('STD', duration=4.0)
    v = np.random.default_rng(0).normal(0, 1e-3, x.shape).astype(np.float32)
    v[:, 100:] += 0.01
    base = {'length': x.shape[-1], 'prob': np.full(9, 0.9), 'threshold': np.full(9, 0.5),
            'classes': np.array([CLASSES.index('STD')]), 'values': v[None], 'fx': np.array([2.0])}
    nan = x.copy()
    nan[3, 50] = np.nan
    records = {'A0001': dict(base, x=x), 'A0002': dict(base, x=np.zeros_like(x)),
               'A0003': dict(base, x=nan)}
    profiles, peaks = sp.write_population_outputs(tmp_path, records, leads, np.zeros(9))
    out = capsys.readouterr().out
    assert 'A0002: no R peaks' in out and 'A0003' not in out
    assert profiles['STD']['n_records'] == 2 and peaks.loc['STD', 'records'] == 2
    assert (tmp_path / 'profile_STD.png').exists() and (tmp_path / 'summary_STD.png').exists()
    assert len(list((tmp_path / 'records').glob('*_waterfall.png'))) == 3


def test_real_atr_at_another_rate_maps_onto_the_resampled_window(shared_data):
    """MIT-BIH 100 (360 Hz, 30 min): its cardiologists' beats, mapped into a
    window of the last 30 s at 500 Hz, are where the detector finds the R
    peaks in that window of the resampled signal."""
    path = shared_data / 'mitdb' / '100'
    sig = wfdb.rdrecord(str(path)).p_signal
    x = resample_poly(sig, 25, 18, axis=0)[-15000:].T      # 360 -> 500 Hz
    r_atr, sym = sp.annotated_beats(path, 15000, 15000)
    assert 30 < len(r_atr) < 45 and set(sym) <= {'N', 'A', 'V'}
    r_det, _ = sp.detected_beats(x, 15000, 15000)
    assert match_beats(r_atr, r_det, FS, window=0.05)['f1'] >= 0.97
