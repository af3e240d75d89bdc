"""QRSDetectorOffline.py: accuracy on MIT-BIH record 100 and on synthetic
records against their annotations, any sampling rate, robustness, the CLI."""
import sys

import numpy as np
import pandas as pd
import pytest
import wfdb
from helpers import beat_train, regular_beats
from scipy.signal import resample_poly
from wfdb.processing import compare_annotations

import QRSDetectorOffline as qrs
import synthetic
from expert_features import rhythm_peaks
from records import read_beats


@pytest.fixture(scope='module')
def mitdb_100(shared_data):
    path = shared_data / 'mitdb' / '100'
    rec = wfdb.rdrecord(str(path))
    return path, rec.p_signal, float(rec.fs), read_beats(path).samples


def test_mitdb_100_sensitivity_and_predictivity(mitdb_100):
    _, sig, fs, ref = mitdb_100
    assert len(ref) == 2273  # the README's count of beat annotations
    m = qrs.match_beats(ref, qrs.detect(sig[:, 0], fs), fs)
    assert m['se'] >= 0.995 and m['ppv'] >= 0.995, m
    v5 = qrs.match_beats(ref, qrs.detect(sig[:, 1], fs), fs)
    assert v5['se'] >= 0.99 and v5['ppv'] >= 0.99, v5


def test_matcher_agrees_with_wfdb(mitdb_100):
    _, sig, fs, ref = mitdb_100
    peaks = qrs.detect(sig[:, 1], fs)
    rng = np.random.default_rng(0)
    drop = np.sort(rng.choice(len(peaks), 40, replace=False))
    test = np.sort(np.r_[np.delete(peaks, drop), rng.integers(0, len(sig), 30)])
    ours = qrs.match_beats(ref, test, fs)
    theirs = compare_annotations(ref, test, int(0.15 * fs))
    assert (ours['tp'], ours['fp'], ours['fn']) == (theirs.tp, theirs.fp, theirs.fn)


@pytest.mark.parametrize('fs_new', [250, 500, 1000])
def test_detector_keeps_its_accuracy_at_250_500_and_1000_hz(mitdb_100, fs_new):
    _, sig, fs, ref = mitdb_100
    n = int(300 * fs)  # the first 5 minutes
    x = resample_poly(sig[:n, 0], int(fs_new), int(fs))
    r = np.round(ref[ref < n] * fs_new / fs).astype(int)
    m = qrs.match_beats(r, qrs.detect(x, fs_new), fs_new)
    assert m['se'] >= 0.995 and m['ppv'] >= 0.995, m


def test_peaks_are_r_peaks_of_either_polarity():
    beats = regular_beats(70, 10)
    x = beat_train(beats, 5000)
    for lead in (1, 3):  # II (positive QRS) and aVR (negative QRS)
        p = qrs.detect(x[:, lead], 500)
        assert len(p) == len(beats)
        assert np.abs(p - beats).max() <= 1


def test_synthetic_records_against_truth():
    """40 synthetic records at each of three noise levels (x1, x2, x4),
    scored against their annotations with the beats the rhythm features use
    (the 12 leads fused, expert_features.rhythm_peaks). Beats within 100 ms
    of the record's ends, whose QRS is cut, are not scored. The bar: Se and
    +P >= 99.5 % at every noise level."""
    for noise in (1.0, 2.0, 4.0):
        tp = fn = fp = 0
        for i in range(40):
            rec = synthetic.make_record(7, i, duration=10, noise_scale=noise)
            fs, n = rec['fs'], len(rec['signal'])
            margin = int(0.1 * fs)
            ref = np.asarray(rec['beats'])
            peaks = rhythm_peaks(rec['signal'], fs)[0]
            m = qrs.match_beats(ref[(ref >= margin) & (ref < n - margin)],
                                peaks[(peaks >= margin) & (peaks < n - margin)], fs)
            tp, fn, fp = tp + m['tp'], fn + m['fn'], fp + m['fp']
        assert tp / (tp + fn) >= 0.995 and tp / (tp + fp) >= 0.995, (noise, tp, fn, fp)


def test_flat_short_and_noise_give_no_beats():
    rng = np.random.default_rng(0)
    assert len(qrs.detect(np.zeros(5000), 500)) == 0
    assert len(qrs.detect(np.full(5000, 3.2), 500)) == 0
    assert len(qrs.detect(beat_train(regular_beats(70, 1.5), 750)[:, 1], 500)) == 0
    for seed in range(5):
        white = rng.standard_normal(15000)
        assert len(qrs.detect(white, 500)) == 0, seed
        assert len(qrs.detect(np.cumsum(white), 500)) == 0, seed


@pytest.mark.parametrize(('sig', 'fs', 'message'), [
    (np.r_[np.zeros(100), np.nan, np.zeros(5000)], 500, 'NaN'),
    (np.zeros((5000, 2)), 500, '1-D'),
    (np.zeros(5000), 20, 'sampling rate'),
])
def test_bad_input_raises_a_clear_error(sig, fs, message):
    with pytest.raises(ValueError, match=message):
        qrs.detect(sig, fs)


def test_command_line_evaluates_plots_and_writes_the_peaks_of_a_record(mitdb_100, tmp_path,
                                                                        monkeypatch, capsys):
    path = mitdb_100[0]
    monkeypatch.setattr(sys, 'argv', [
        'QRSDetectorOffline.py', '--record', str(path), '--lead', 'mlii', '--eval',
        '--plot', '--out', str(tmp_path / 'r100')])
    qrs.main()
    out = capsys.readouterr().out
    assert '2273 reference beats' in out and 'Se 100.00%' in out, out
    assert (tmp_path / 'r100.png').stat().st_size > 1000
    peaks = pd.read_csv(tmp_path / 'r100_peaks.csv')
    assert list(peaks.columns) == ['sample', 'time_s'] and len(peaks) == 2273
    monkeypatch.setattr(sys, 'argv', ['QRSDetectorOffline.py', '--record', str(path),
                                      '--lead', 'V9'])
    with pytest.raises(SystemExit, match='MLII'):
        qrs.main()
