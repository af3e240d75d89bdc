"""measure.py against the synthetic truth: the IEC 60601-2-25 tolerances for
global measurements (PR and QRS: mean difference within +/-10 ms, SD <= 10
ms; QT: mean within +/-25 ms, SD <= 30 ms) on 204 records across noise levels
and the classes that move the intervals, and the figures a record cannot
support stay empty with a reason.

The truth is the generator's (synthetic.make_record's `truth`, also written
to truth.csv): PR is P onset to QRS onset, QRS onset to offset, QT QRS onset
to the T end 2.6 sigma after the T peak, median over the conducted beats.
"""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import archive
import expert_features as ef
import measure
import synthetic
from records import LEADS, read_record
from records.measurements import DEVICE_KEYS, MEASUREMENTS
from web import clinic
from web.app_text import LANGUAGES, TEXT

CLASSES = [['SNR'], ['IAVB'], ['LBBB'], ['RBBB'], ['AF'], ['PVC']]
NOISE = [0.0, 0.5, 1.0, 2.0]
N = 204   # 6 classes x 4 noise levels, 8-9 records each
SEED = 11


@pytest.fixture(scope='module')
def measured():
    out = []
    for i in range(N):
        cl = CLASSES[i % len(CLASSES)]
        ns = NOISE[(i // len(CLASSES)) % len(NOISE)]
        rec = synthetic.make_record(SEED, i, duration=10, classes=cl, noise_scale=ns,
                                    borderline=0.2)
        out.append((cl[0], ns, measure.measure(rec['signal'].T, 500, LEADS), rec['truth']))
    return out


def diffs(measured, key, tkey):
    d = [m[key] - tr[tkey] for _c, _ns, m, tr in measured
         if m[key] is not None and np.isfinite(tr[tkey])]
    return np.array(d)


@pytest.mark.parametrize('key, mean_tol, sd_tol', [('pr_ms', 10, 10), ('qrs_ms', 10, 10),
                                                    ('qt_ms', 25, 30)])
def test_iec_tolerances_against_the_synthetic_truth(measured, key, mean_tol, sd_tol):
    d = diffs(measured, key, key)
    # nearly every sinus record gets a figure (a noisy P may be refused)
    sinus = sum(np.isfinite(tr[key]) for *_, tr in measured)
    assert len(d) >= (0.8 if key == 'pr_ms' else 0.97) * sinus
    assert abs(d.mean()) <= mean_tol and d.std() <= sd_tol, \
        f'{key}: {d.mean():+.1f} +/- {d.std():.1f} ms on {len(d)} records'


def test_heart_rate_and_qrs_t_p_axes_match_the_generator(measured):
    hr = diffs(measured, 'hr', 'hr_bpm')
    assert np.median(np.abs(hr)) < 1 and np.mean(np.abs(hr) < 3) > 0.95
    for key, tkey, tol in [('qrs_axis', 'axis_deg', 5), ('t_axis', 't_axis_deg', 12),
                           ('p_axis', 'p_axis_deg', 20)]:
        d = (diffs(measured, key, tkey) + 180) % 360 - 180
        assert np.median(np.abs(d)) < tol, f'{key}: median error {np.median(np.abs(d)):.1f}'


def test_af_has_no_pr(measured):
    af = [m for c, _ns, m, _tr in measured if c == 'AF']
    assert af and all(m['pr_ms'] is None and m['p_axis'] is None for m in af)
    assert all(m['reasons']['pr_ms'] for m in af)
    assert sum(m['qrs_ms'] is not None for m in af) >= 0.9 * len(af)


def test_single_lead_gives_hr_pr_qrs_and_no_axes():
    rec = synthetic.make_record(3, 1, duration=10, classes=['IAVB'], noise_scale=0.5)
    m = measure.measure(rec['signal'][:, [LEADS.index('II')]].T, 500, ['II'])
    assert m['leads_used'] == ['II']
    assert m['hr'] is not None and m['qrs_ms'] is not None
    assert abs(m['pr_ms'] - rec['truth']['pr_ms']) < 20
    for k in ('p_axis', 'qrs_axis', 't_axis', 'qt_ms', 'qtc_bazett_ms'):
        assert m[k] is None and m['reasons'][k]


def test_too_few_beats_gives_empty_with_reason():
    rec = synthetic.make_record(3, 2, duration=2.5, classes=['SNR'], noise_scale=0)
    m = measure.measure(rec['signal'][:700].T, 500, LEADS)
    assert all(m[k] is None for k in measure.KEYS)
    assert 'beat' in m['reasons']['qrs_ms'] or 'under 2 s' in m['reasons']['qrs_ms']


def test_a_record_at_250_hz_and_a_records_record(tmp_path):
    """Other sampling rates are resampled; a records.Record is read as is;
    QTc after Bazett and Fridericia follow from QT and the mean RR."""
    rec = synthetic.make_record(4, 0, duration=10, classes=['SNR'], noise_scale=0.5)
    synthetic.write_record(rec, tmp_path, 'A0001')
    m = measure.measure(read_record(tmp_path / 'A0001'))
    m250 = measure.measure(rec['signal'][::2].T, 250, LEADS)
    for k in ('pr_ms', 'qrs_ms', 'qt_ms'):
        assert abs(m[k] - m250[k]) <= 12
    rr = 60 / m['hr']
    assert m['qtc_bazett_ms'] == pytest.approx(m['qt_ms'] / np.sqrt(rr))
    assert m['qtc_fridericia_ms'] == pytest.approx(m['qt_ms'] / rr ** (1 / 3))


def test_predict_measurement_columns_with_the_carts_beside(tmp_path):
    """predict.py --records' measurement columns; device_* only when the file
    carries the cart's values (records.Record.device_measurements)."""
    rec = synthetic.make_record(6, 0, duration=12, classes=['IAVB'], noise_scale=0.5)
    synthetic.write_record(rec, tmp_path, 'A0001')
    r = read_record(tmp_path / 'A0001')
    cols = archive.measurement_columns(r)
    assert list(cols) == archive.MEASURE_COLUMNS
    assert abs(cols['pr_ms'] - rec['truth']['pr_ms']) < 15
    r.device_measurements = {'pr_ms': 330.0, 'qrs_ms': 96.0}
    cols = archive.device_columns(r)
    assert cols['device_pr_ms'] == 330.0 and cols['device_qrs_ms'] == 96.0
    assert np.isnan(cols['device_qt_ms'])   # a figure the cart did not give stays empty


def test_expert_features_carry_the_measurements():
    for cl, has_pr in ((['IAVB'], True), (['AF'], False)):
        rec = synthetic.make_record(8, 0, duration=10, classes=cl, noise_scale=0.5)
        x = np.vstack([np.zeros((5000, 12)), rec['signal']])   # the cache's front padding
        f = dict(zip(ef.feature_names(), ef.record_features(x), strict=True))
        assert abs(f['qrs_ms'] - rec['truth']['qrs_ms']) < 10
        assert np.isfinite(f['pr_ms']) == has_pr
        if has_pr:
            assert abs(f['pr_ms'] - rec['truth']['pr_ms']) < 15


def test_paced_rhythm_gives_no_intervals():
    """A pacing spike (a 3 mV step of one sample, 1.5 mV/ms) 60 ms before
    every QRS: HR stays, the intervals say why they are empty."""
    rec = synthetic.make_record(9, 0, duration=10, classes=['LBBB'], noise_scale=0.5)
    sig = rec['signal'].astype(np.float64).copy()
    for on in rec['truth']['beat_qrs_onset']:
        if on >= 30:
            sig[on - 30, :] += 3.0
    m = measure.measure(sig.T, 500, LEADS)
    assert m['hr'] is not None and abs(m['hr'] - rec['truth']['hr_bpm']) < 3
    assert m['qrs_ms'] is None and m['pr_ms'] is None and 'paced' in m['reasons']['qrs_ms']
    clean = measure.measure(rec['signal'].T, 500, LEADS)
    assert clean['qrs_ms'] is not None


def test_the_heart_rate_and_the_measurements_share_their_beats():
    """clinic.record_measurements (the app's and the API's heart rate) takes
    measure.py's beats, one detector run a record: the same rate as
    measure.py's, peaks on the synthetic truth's R peaks, at 250 Hz in the
    signal's own samples; no rate under 2 s (nor from the detector alone)."""
    rec = synthetic.make_record(5, 0, duration=10, classes=['AF'], noise_scale=0.5)
    m = clinic.record_measurements(rec['signal'])
    assert m['hr_bpm'] == pytest.approx(m['global']['hr']) and 'peaks' not in m['global']
    truth = rec['beats']
    assert len(m['peaks']) >= len(truth)
    inner = truth[(truth > 50) & (truth < len(rec['signal']) - 50)]   # a cut beat's peak moves
    assert np.abs(inner[:, None] - m['peaks'][None, :]).min(1).max() <= 5   # 10 ms
    half = clinic.record_measurements(rec['signal'][::2], fs=250)
    assert len(half['peaks']) == len(m['peaks'])
    assert np.abs(half['peaks'] * 2 - m['peaks'])[:-1].max() <= 4   # the last beat is cut
    assert half['hr_bpm'] == pytest.approx(m['hr_bpm'], rel=0.01)
    assert clinic.record_measurements(rec['signal'][:950]) is None   # 1.9 s: no beat found, no rate
    assert clinic.record_measurements(rec['signal'][:1200])['beats'] == 3


def test_one_table_names_every_output():
    """The measurement table (records/measurements.py) is the one list: the
    keys measure() returns, predict.py's CSV columns, the cart's device_*
    columns, expert_features' columns and the app's rows all follow it, in
    these names and this order."""
    ours = ['hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_bazett_ms', 'qtc_fridericia_ms',
            'p_axis', 'qrs_axis', 't_axis']
    cart = ['hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_ms', 'p_axis', 'qrs_axis', 't_axis']
    assert list(measure.KEYS) == ours and list(DEVICE_KEYS) == cart
    assert {m.key for m in MEASUREMENTS} == set(ours) | set(cart)
    rec = synthetic.make_record(3, 0, duration=5, classes=['SNR'], noise_scale=0)
    assert set(ours) <= set(measure.measure(rec['signal'].T, 500, LEADS))
    assert archive.MEASURE_COLUMNS == ours
    assert archive.DEVICE_COLUMNS == [f'device_{k}' for k in cart] + ['device_statements']
    assert ef.MEASURES == ours[1:]   # the rate is a rhythm feature
    assert clinic.GLOBAL_ROWS == [
        ('pr_ms', 'meas_pr', 'pr_ms'), ('qrs_ms', 'meas_qrs', 'qrs_ms'),
        ('qt_ms', 'meas_qt', 'qt_ms'), ('qtc_bazett_ms', 'meas_qtc_bazett', 'qtc_ms'),
        ('qtc_fridericia_ms', 'meas_qtc_fridericia', None)]
    assert list(clinic.DEVICE_TEXT) == cart
    labels = [label for _, label, _ in clinic.GLOBAL_ROWS] + list(clinic.DEVICE_TEXT.values())
    assert all(set(TEXT[label]) == set(LANGUAGES) for label in labels)   # every row translated
    dev = dict(zip(cart, [41, 151, 135, 476, 393, 66, -21, 59]))
    reading = SimpleNamespace(record=SimpleNamespace(device_measurements=dev,
                                                     device_statements=[]))
    assert clinic.device_rows(reading, 'en')[1][1] == \
        'HR 41 · PR 151 · QRS 135 · QT 476 · QTc 393 · P/QRS/T 66/-21/59°'
    m = dict.fromkeys(ours, 100.0) | {'leads_used': LEADS}
    assert measure.line('A0001', m) == ('A0001  HR 100  PR 100  QRS 100  QT 100  QTcB 100  '
                                        'QTcF 100  axes P 100 QRS 100 T 100  (12 leads)')


def test_median_beat_is_numpys_nanmedian():
    """measure.nanmedian0 (one sort) against np.nanmedian: odd and even
    counts, NaN edges, a column of NaNs only."""
    rng = np.random.default_rng(0)
    for beats in (1, 2, 7, 8, 31):
        a = rng.normal(size=(beats, 50, 3))
        a[rng.random(a.shape) < 0.2] = np.nan
        a[:, 0, 0] = np.nan
        with np.errstate(all='ignore'), warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            want = np.nanmedian(a, axis=0)
        np.testing.assert_array_equal(measure.nanmedian0(a), want)
