"""expert_features.py: names and shapes, NaN handling, values against an
independent computation, and the features.csv cache (reuse, invalidation)."""
import json

import numpy as np
import pandas as pd
import pytest
import pywt
from helpers import beat_train, regular_beats, write_cache
from scipy.stats import entropy

import expert_features as ef
import synthetic
from records import FS, LEADS
from utils import CLASSES

RHYTHM_NAN = [k for k in ef.RHYTHM if k != 'n_beats']


@pytest.fixture
def small_cache(tmp_path):
    """Six 10-s records of known heart rate, plus a flat one and a 1.5-s one."""
    rng = np.random.default_rng(1)
    hrs = [50, 60, 75, 90, 110, 140]
    sigs = [beat_train(regular_beats(hr, 10), 10 * FS, rng=rng) for hr in hrs]
    sigs.append(np.zeros((10 * FS, 12)))
    sigs.append(beat_train(regular_beats(70, 1.5), int(1.5 * FS), rng=rng))
    labels = np.zeros((len(sigs), len(CLASSES)), int)
    labels[:, 0] = 1
    write_cache(tmp_path, sigs, labels, folds=np.arange(len(sigs)) % 10 + 1)
    return tmp_path, hrs


def test_names_unique_and_complete():
    names = ef.feature_names()
    assert len(names) == len(set(names))
    per_lead = len(ef.STATS) + len(ef.BANDS) * (1 + len(ef.STATS))
    assert per_lead == 53
    assert len(names) == 12 * per_lead + len(ef.RHYTHM) + len(ef.MEASURES)
    for expected in ('II_p25', 'V5_cA4_entropy', 'aVR_cD1_var', 'rr_rmssd', 'hr'):
        assert expected in names


def test_record_shape_and_percentiles_of_a_sine():
    # A sine of amplitude A over whole periods: its q-quantile is
    # A sin(pi (q - 1/2)) (inverse of the arcsine CDF); sampling 500 points
    # per period moves an empirical percentile by at most ~pi A / 500.
    n = 10 * FS
    t = np.arange(n) / FS
    amp = np.linspace(0.5, 2.0, 12)
    x = np.sin(2 * np.pi * t)[:, None] * amp[None, :]
    f = dict(zip(ef.feature_names(), ef.record_features(x), strict=True))
    for i, lead in enumerate(LEADS):
        for q in (5, 25, 50, 75, 95):
            expected = amp[i] * np.sin(np.pi * (q / 100 - 0.5))  # inverse CDF of a sine
            assert f[f'{lead}_p{q}'] == pytest.approx(expected, abs=5e-3 * amp[i])
        assert f[f'{lead}_mean'] == pytest.approx(0, abs=1e-9)
        assert f[f'{lead}_sd'] == pytest.approx(amp[i] / np.sqrt(2), rel=1e-3)
        assert f[f'{lead}_var'] == pytest.approx(amp[i] ** 2 / 2, rel=1e-3)


def test_wavelet_features_match_pywt_per_lead():
    rng = np.random.default_rng(3)
    x = beat_train(regular_beats(72, 10), 10 * FS, rng=rng)
    f = dict(zip(ef.feature_names(), ef.record_features(x), strict=True))
    for i in (0, 6, 11):
        bands = pywt.wavedec(x[:, i], 'db10', level=4)
        for name, c in zip(ef.BANDS, bands, strict=True):
            lead = LEADS[i]
            assert f[f'{lead}_{name}_p75'] == pytest.approx(np.percentile(c, 75))
            assert f[f'{lead}_{name}_sd'] == pytest.approx(np.std(c))
            # scipy's entropy normalises its input: the energy distribution
            assert f[f'{lead}_{name}_entropy'] == pytest.approx(entropy(c ** 2))


@pytest.mark.parametrize('hr', [45, 72, 130])
def test_heart_rate_from_known_beats(hr):
    x = beat_train(regular_beats(hr, 10), 10 * FS)
    f = dict(zip(ef.feature_names(), ef.record_features(x), strict=True))
    assert abs(f['hr'] - hr) < 2
    assert f['rr_pnn50'] == 0 and f['rr_ectopy'] == 0


def test_irregular_rhythm_scores_higher():
    rng = np.random.default_rng(5)
    rr = rng.uniform(0.45, 1.1, 30)
    irregular = beat_train(np.cumsum(rr)[np.cumsum(rr) < 9.6] * FS, 10 * FS, rng=rng)
    regular = beat_train(regular_beats(75, 10), 10 * FS, rng=rng)
    fi = dict(zip(ef.feature_names(), ef.record_features(irregular), strict=True))
    fr = dict(zip(ef.feature_names(), ef.record_features(regular), strict=True))
    for k in ('rr_cv', 'rr_nrmssd', 'rr_sampen', 'rr_pnn50'):
        assert fi[k] > fr[k] + 0.05, k


def test_sample_entropy_against_definition():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, 25)
    tol = 0.2 * x.std()
    # Direct count over all template pairs (Richman & Moorman), m = 1.
    n = len(x)
    b = sum(abs(x[i] - x[j]) <= tol for i in range(n - 1) for j in range(i + 1, n - 1))
    a = sum(abs(x[i] - x[j]) <= tol and abs(x[i + 1] - x[j + 1]) <= tol
            for i in range(n - 1) for j in range(i + 1, n - 1))
    assert ef.sample_entropy(x, m=1, r=0.2, min_tol=0) == pytest.approx(-np.log(a / b))


@pytest.mark.parametrize('make', [
    lambda: np.zeros((10 * FS, 12)),                                       # flat
    lambda: beat_train(regular_beats(70, 1.5), int(1.5 * FS)),             # 1.5 s
    lambda: np.random.default_rng(0).standard_normal((10 * FS, 12)),       # noise
    lambda: np.zeros((0, 12)),                                             # empty
])
def test_too_few_beats_gives_nan_rhythm(make):
    f = dict(zip(ef.feature_names(), ef.record_features(make()), strict=True))
    assert all(np.isnan(f[k]) for k in RHYTHM_NAN)
    assert f['n_beats'] < ef.CONFIG['min_beats']


def test_nan_samples_in_a_rhythm_lead_fall_back_to_another():
    x = beat_train(regular_beats(80, 10), 10 * FS)
    x[100:200, LEADS.index('II')] = np.nan
    f = dict(zip(ef.feature_names(), ef.record_features(x), strict=True))
    assert abs(f['hr'] - 80) < 2


def test_dataset_cache_reuse_and_invalidation(small_cache, capsys):
    root, hrs = small_cache
    df = ef.extract_dataset(root, workers=1, quiet=True)
    path = ef.features_path(root)
    assert path.exists() and path.with_suffix('.json').exists()
    assert list(df.columns) == ef.feature_names() and len(df) == 8
    assert np.allclose(df['hr'].iloc[:6], hrs, atol=2)
    assert df.iloc[6:][RHYTHM_NAN].isna().all().all()     # flat and 1.5-s records

    # Reused: same numbers, file untouched.
    mtime = path.stat().st_mtime_ns
    again = ef.extract_dataset(root, workers=1)
    assert 'reusing' in capsys.readouterr().out
    assert path.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(df, again)

    # Another configuration -> recomputed.
    meta = json.loads(path.with_suffix('.json').read_text())
    meta['config_hash'] = 'stale'
    path.with_suffix('.json').write_text(json.dumps(meta))
    ef.extract_dataset(root, workers=1, quiet=True)
    assert json.loads(path.with_suffix('.json').read_text())['config_hash'] == ef.config_hash()

    # Another cache content -> recomputed, and the pool gives the same numbers.
    sig = np.load(root / 'cache' / 'signals.npy')
    sig[:5000] //= 2
    np.save(root / 'cache' / 'signals.npy', sig)
    pooled = ef.extract_dataset(root, workers=2, quiet=True)
    assert path.stat().st_mtime_ns != mtime
    assert not np.allclose(pooled['II_sd'].iloc[0], df['II_sd'].iloc[0])
    serial = ef.extract_dataset(root, workers=1, force=True, quiet=True)
    pd.testing.assert_frame_equal(pooled, serial)


def test_heart_rate_of_synthetic_sinus_records_matches_truth():
    for i in range(6):
        rec = synthetic.make_record(5, i, duration=15, classes=['SNR'])
        f = dict(zip(ef.feature_names(), ef.record_features(rec['signal'], rec['fs']),
                     strict=True))
        assert abs(f['hr'] - rec['truth']['hr_bpm']) < 2, (i, f['hr'], rec['truth']['hr_bpm'])
        assert f['n_beats'] == pytest.approx(len(rec['beats']), abs=1)
