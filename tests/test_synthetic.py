"""synthetic.py: file format round trips, lead identities, determinism,
CPSC2018-like statistics, and each class's diagnostic criterion measured on
the generated signals by measurement code written here, independently of the
generator, and checked against the generator's ground truth.

Measurements run on noise-free records (noise_scale=0: same heart and beats,
no noise) unless the test is about noise.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

import synthetic
from records import LEADS
from utils import CLASS_TO_SNOMED, CLASSES

FS = 500
LI = {name: k for k, name in enumerate(LEADS)}
ROOT = Path(__file__).resolve().parents[1]


def ms(x):
    return int(round(x * FS / 1000))


# --------------------------------------------------------------------------
# Independent measurements.

def spatial_velocity(sig):
    """|d/dt| of the 12-lead vector, mV per sample."""
    return np.linalg.norm(np.diff(sig, axis=0), axis=1)


def qrs_bounds(sig, r, frac=0.06):
    """QRS onset/offset around an R peak: walking outwards from the peak of
    the spatial velocity (smoothed over 14 ms, which bridges the zero slope
    at each wave's summit) until it falls below `frac` of that peak."""
    lo = max(r - ms(150), 0)
    v = np.convolve(spatial_velocity(sig[lo:r + ms(150)]), np.ones(7) / 7, mode='same')
    peak = int(np.argmax(v))
    above = v > frac * v[peak]
    on = peak
    while on > 0 and above[on - 1]:
        on -= 1
    off = peak
    while off < len(v) - 1 and above[off + 1]:
        off += 1
    return lo + on, lo + off + 1


def p_onset(sig, qrs_on, frac=0.05):
    """P onset before a QRS onset (noise-free signal). Walking back from
    20 ms before the QRS on the 12-lead magnitude: over the flat PR segment
    to the end of the P wave (> 30 uV), up to its summit, then down to `frac`
    of the summit or to a trough below 30% of it (where a preceding T wave
    runs into the P wave). None when nothing rises above 30 uV in 400 ms."""
    lo = max(qrs_on - ms(400), 0)
    seg = np.linalg.norm(sig[lo:qrs_on - ms(20)], axis=1)
    k = len(seg) - 1
    while k > 0 and seg[k] < 0.03:
        k -= 1
    if k == 0:
        return None
    while k > 0 and seg[k - 1] >= seg[k]:
        k -= 1
    top = seg[k]
    while k > 0 and seg[k - 1] > frac * top and not (seg[k - 1] > seg[k] and seg[k] < 0.3 * top):
        k -= 1
    return lo + k


def median_beat(sig, centres, before, after):
    segs = [sig[c - before:c + after] for c in centres
            if c - before >= 0 and c + after <= len(sig)]
    return np.median(np.stack(segs), axis=0)


def contiguous(st, thr):
    pairs = [('aVL', 'I'), ('I', 'II'), ('II', 'aVF'), ('aVF', 'III')] + \
        [(f'V{k}', f'V{k + 1}') for k in range(1, 6)]
    dep = any(st[LI[a]] <= -thr and st[LI[b]] <= -thr for a, b in pairs)
    ele = any(st[LI[a]] >= thr and st[LI[b]] >= thr for a, b in pairs)
    return dep, ele


def clean(classes, i=0, duration=10, seed=7):
    """Noise-free record with typical (not near-threshold) effect sizes."""
    return synthetic.make_record(seed, i, duration=duration, classes=classes,
                                 noise_scale=0, borderline=0)


def n_beats(rec, sym='N'):
    return [b for b, s in zip(rec['beats'], rec['symbols']) if s == sym]


# --------------------------------------------------------------------------
# Files.

@pytest.fixture(scope='module')
def written(tmp_path_factory):
    """Three short noisy records written to disk."""
    out = tmp_path_factory.mktemp('synth')
    recs = {}
    for k, cl in enumerate([['RBBB', 'PVC'], ['AF'], ['PAC', 'STD']]):
        rec = synthetic.make_record(3, k, duration=6 + k, classes=cl)
        name = f'A{k + 1:04d}'
        synthetic.write_record(rec, out, name)
        recs[name] = rec
    return out, recs


def test_lead_identities_after_round_trip(written):
    out, recs = written
    for name, rec in recs.items():
        sig, fields = wfdb.rdsamp(str(out / name))
        assert fields['fs'] == FS and fields['sig_name'] == LEADS
        assert fields['units'] == ['mV'] * 12
        np.testing.assert_allclose(sig, rec['signal'], atol=1e-6)
        i, ii, iii, avr, avl, avf = (sig[:, LI[x]] for x in ('I', 'II', 'III', 'aVR', 'aVL', 'aVF'))
        tol = 0.005  # mV: quantisation of each lead to 1 uV, noise included
        assert np.abs(iii - (ii - i)).max() <= tol
        assert np.abs(avr + (i + ii) / 2).max() <= tol
        assert np.abs(avl - (i - ii / 2)).max() <= tol
        assert np.abs(avf - (ii - i / 2)).max() <= tol
        assert np.abs(sig).max() > 0.3  # an ECG, not zeros


def test_header_layout_and_comments(written, shared_data):
    out, recs = written
    real = (shared_data / 'cpsc2018_wfdb' / 'A0001.hea').read_text().splitlines()
    real_sig = real[1].split()
    for name, rec in recs.items():
        lines = (out / f'{name}.hea').read_text().splitlines()
        n = len(rec['signal'])
        assert lines[0] == f'{name} 12 500 {n}'
        digital = np.round(rec['signal'].astype(np.float64) * 1000).astype(np.int64)
        for k, lead in enumerate(LEADS):
            f = lines[1 + k].split()
            assert f[0] == f'{name}.mat' and f[-1] == lead
            # same layout as the real CPSC2018 header: format, gain, bits, zero, block
            assert f[1:5] == real_sig[1:5] and f[7] == real_sig[7] and len(f) == len(real_sig)
            assert int(f[5]) == digital[0, k]
            assert int(f[6]) == (digital[:, k].sum() + 32768) % 65536 - 32768
        assert lines[13:] == [f'# Age: {rec["age"]}', f'# Sex: {rec["sex"]}',
                              f'# Dx: {",".join(rec["dx"])}', '# Rx: Unknown',
                              '# Hx: Unknown', '# Sx: Unknown']
        assert rec['dx'] == [CLASS_TO_SNOMED[c] for c in rec['classes']]
        hdr = wfdb.rdheader(str(out / name))
        assert hdr.fs == FS and hdr.sig_len == n and hdr.adc_gain == [1000.0] * 12
        assert hdr.byte_offset == [24] * 12 and hdr.fmt == ['16'] * 12
        assert hdr.comments[0] == f'Age: {rec["age"]}'


def test_checksum_convention_matches_real_record(shared_data):
    """Our checksum/init-value convention reproduces a real CPSC2018 header."""
    import scipy.io
    real = shared_data / 'cpsc2018_wfdb' / 'A0001'
    val = scipy.io.loadmat(str(real) + '.mat')['val'].astype(np.int64)
    lines = Path(str(real) + '.hea').read_text().splitlines()[1:13]
    for k, line in enumerate(lines):
        f = line.split()
        assert int(f[5]) == val[k, 0]
        assert int(f[6]) == synthetic.checksum(val[k])


def test_mat_files_are_matlab_v4_int16_microvolts(written):
    import scipy.io
    out, recs = written
    for name, rec in recs.items():
        path = out / f'{name}.mat'
        n = len(rec['signal'])
        assert path.stat().st_size == 24 + 2 * 12 * n   # samples start at byte 24
        val = scipy.io.loadmat(str(path))['val']
        assert val.dtype == np.int16 and val.shape == (12, n)
        np.testing.assert_array_equal(val.T, np.round(rec['signal'] * 1000).astype(np.int16))


def test_annotations_round_trip(written):
    out, recs = written
    for name, rec in recs.items():
        ann = wfdb.rdann(str(out / name), 'atr')
        np.testing.assert_array_equal(ann.sample, rec['beats'])
        assert ann.symbol == rec['symbols']
        assert set(ann.symbol) <= {'N', 'A', 'V'}
    assert 'V' in recs['A0001']['symbols'] and 'A' in recs['A0003']['symbols']


def test_r_peaks_at_signal_extremum():
    """Each annotated R peak is the maximum of the 12-lead magnitude of its
    QRS (noise-free), and within a few ms of it with noise after a high-pass."""
    from scipy.signal import butter, sosfiltfilt
    for k, cl in enumerate([['SNR'], ['LBBB', 'PVC'], ['RBBB', 'PAC'], ['AF'], ['PVC']]):
        rec = clean(cl, i=k)
        mag = np.linalg.norm(rec['signal'], axis=1)
        for b in rec['beats']:
            if ms(40) <= b < len(mag) - ms(40):
                win = mag[b - ms(40):b + ms(40)]
                # the maximum or, with two summits of nearly equal height
                # (notched LBBB, two-lobed PVC), a summit within 4 ms
                peaks = [j for j in range(b - 2, b + 3)
                         if mag[j] >= max(mag[j - 1], mag[j + 1]) and mag[j] >= 0.95 * win.max()]
                assert abs(int(np.argmax(win)) - ms(40)) <= 2 or peaks, cl
        noisy = synthetic.make_record(7, k, duration=10, classes=cl)
        sos = butter(2, [1, 40], btype='band', fs=FS, output='sos')
        mag = np.linalg.norm(sosfiltfilt(sos, noisy['signal'], axis=0), axis=1)
        err = [int(np.argmax(mag[b - ms(40):b + ms(40)])) - ms(40) for b in noisy['beats']
               if ms(40) <= b < len(mag) - ms(40)]
        assert np.median(np.abs(err)) <= ms(6), (cl, err)


# --------------------------------------------------------------------------
# Class criteria, measured.

def test_snr_sinus_rhythm_normal_intervals():
    for i in range(4):
        rec = clean(['SNR'], i)
        tr = rec['truth']
        rr = np.diff(rec['beats']) / FS
        assert 60 <= 60 / rr.mean() <= 100
        assert rr.std() / rr.mean() < 0.11
        assert 120 <= tr['pr_ms'] <= 200 and tr['qrs_ms'] < 110
        for b in rec['beats'][1:-1]:
            on, off = qrs_bounds(rec['signal'], b)
            qrs = (off - on) * 1000 / FS
            assert abs(qrs - tr['qrs_ms']) <= 12, (qrs, tr['qrs_ms'])
            assert qrs < 115
            p = p_onset(rec['signal'], on)
            assert p is not None
            pr = (on - p) * 1000 / FS
            assert abs(pr - tr['pr_ms']) <= 20, (pr, tr['pr_ms'])
            assert 110 <= pr <= 210


def test_iavb_pr_measured_on_the_signal_is_over_200_ms_as_in_the_truth():
    for i in range(4):
        rec = clean(['IAVB'], i)
        tr = rec['truth']
        assert tr['pr_ms'] > 200
        prs = []
        for b in rec['beats'][1:-1]:
            on, _ = qrs_bounds(rec['signal'], b)
            prs.append((on - p_onset(rec['signal'], on)) * 1000 / FS)
        assert abs(np.median(prs) - tr['pr_ms']) <= 20, (np.median(prs), tr['pr_ms'])
        assert np.median(prs) > 195


def p_coherence(rec):
    """Energy of the beat-averaged pre-QRS window over the mean energy of the
    single windows (leads II and V1): ~1 for P waves locked to the QRS,
    small for fibrillatory waves."""
    sig = rec['signal'][:, [LI['II'], LI['V1']]]
    beats = rec['beats']
    # beats after a long enough cycle, so the previous T wave is over
    segs = np.stack([sig[b - ms(270):b - ms(70)] for a, b in zip(beats[:-1], beats[1:])
                     if b - a > ms(600)])
    assert len(segs) >= 4
    segs = segs - segs.mean(axis=1, keepdims=True)
    return (segs.mean(0) ** 2).sum() / (segs ** 2).sum(axis=(1, 2)).mean()


def test_af_irregular_rr_no_p_fibrillatory_waves():
    from scipy.signal import butter, sosfiltfilt, welch
    # AF records slow enough that some cycles leave the pre-QRS window free
    # of the previous T wave (p_coherence uses those)
    afs = [r for r in (clean(['AF'], i, duration=20) for i in range(30))
           if r['truth']['hr_bpm'] < 90][:4]
    assert len(afs) >= 3
    for i, af in enumerate(afs):
        sr = clean(['SNR'], i, duration=20)
        cv = lambda r: np.std(np.diff(r['beats'])) / np.mean(np.diff(r['beats']))  # noqa: E731
        assert cv(af) > 0.08 > cv(sr) - 0.03, (cv(af), cv(sr))
        # successive RR differences: irregularly irregular, not a slow sinus swing
        d = np.abs(np.diff(np.diff(af['beats']))) / np.mean(np.diff(af['beats']))
        assert np.median(d) > 0.05
        assert p_coherence(sr) > 0.7 and p_coherence(af) < 0.35, (p_coherence(sr), p_coherence(af))
        assert np.isnan(af['truth']['beat_p_onset']).all()
        # f waves: cancel the QRST by subtracting the median beat, then the
        # residual's spectrum in V1 peaks at the atrial rate
        v1 = af['signal'][:, LI['V1']].astype(np.float64)
        tmpl = median_beat(v1[:, None], af['beats'], ms(100), ms(500))[:, 0]
        res = v1.copy()
        for b in af['beats']:
            if b >= ms(100) and b + ms(500) <= len(v1):
                res[b - ms(100):b + ms(500)] -= tmpl
        res = sosfiltfilt(butter(2, 3, btype='high', fs=FS, output='sos'), res)
        f, pxx = welch(res, fs=FS, nperseg=4 * FS)
        band = (f >= 3.5) & (f <= 12)
        peak = f[band][np.argmax(pxx[band])]
        assert abs(peak - af['truth']['f_wave_hz']) <= 1.0, (peak, af['truth']['f_wave_hz'])


def wide_qrs(cls, i):
    """A bundle-branch block record -> (signal, QRS onset, offset, the QRS's
    samples), after checking the QRS is wide and as long as the truth says."""
    rec = clean([cls], i)
    tr, sig = rec['truth'], rec['signal']
    assert tr['qrs_ms'] >= 120
    on, off = qrs_bounds(sig, rec['beats'][len(rec['beats']) // 2])
    assert (off - on) * 1000 / FS >= 115 and abs((off - on) * 1000 / FS - tr['qrs_ms']) <= 12
    return sig, on, off, sig[on:off]


def test_lbbb_has_qs_in_v1_broad_notched_r_in_v6_and_discordant_t():
    for i in range(4):
        sig, on, off, q = wide_qrs('LBBB', i)
        v1, v6, i1 = q[:, LI['V1']], q[:, LI['V6']], q[:, LI['I']]
        assert v1.min() < -0.5 and v1.max() < 0.25 * -v1.min()            # QS / rS in V1
        for x in (v6, i1):
            assert x.max() > 3 * max(-x.min(), 1e-3)                          # no q, no s
            assert (x > 0.5 * x.max()).sum() * 1000 / FS >= 45                # broad R
        # notched or slurred R: a second peak or a shoulder in V6 or I
        notch = any(((np.diff(np.sign(np.diff(x[x > 0.3 * x.max()]))) != 0).sum() >= 2)
                    for x in (v6, i1, q[:, LI['aVL']], q[:, LI['V5']]))
        assert notch
        # discordant ST-T: T in V6 against the QRS, in V1 upright
        t = sig[off + ms(60):off + ms(300)]
        assert np.sign(t[:, LI['V6']].mean()) == -1 and t[:, LI['V1']].mean() > 0


def test_rbbb_has_rsr_prime_in_v1_and_a_broad_terminal_s_in_i_and_v6():
    for i in range(4):
        sig, on, off, q = wide_qrs('RBBB', i)
        v1 = q[:, LI['V1']]
        # rSR': r, then S below it, then a taller terminal R'
        k_s = int(np.argmin(v1))
        assert v1[:k_s].max() > 0 and v1[k_s] < 0
        assert v1[k_s:].max() > v1[:k_s].max() and v1[k_s:].max() > 0.2
        # broad terminal S in I and V6: negative for >= 30 ms in the last half
        for lead in ('I', 'V6'):
            tail = q[len(q) // 2:, LI[lead]]
            assert (tail < -0.02).sum() * 1000 / FS >= 30, lead


def steady_records(cls, n):
    """Noise-free 15 s records of one ectopic class whose sinus rate swings
    little with respiration, so that pauses can be compared with the sinus cycle."""
    recs = (clean([cls], i, duration=15) for i in range(12))
    return [r for r in recs if r['truth']['sinus_rr_cv'] < 0.03][:n]


def rr_and_sinus_cycle(beats, sym):
    """RR intervals and the median interval between two normal beats."""
    rr = np.diff(beats)
    return rr, np.median([rr[k] for k in range(len(rr)) if sym[k] == sym[k + 1] == 'N'])


def test_pac_premature_abnormal_p_narrow_qrs_non_compensatory():
    seen = 0
    for rec in steady_records('PAC', 4):
        tr, sig, beats, sym = rec['truth'], rec['signal'], rec['beats'], rec['symbols']
        rr, normal_rr = rr_and_sinus_cycle(beats, sym)
        p_n = median_beat(sig, [int(p) for p, s in zip(tr['beat_p_onset'], sym) if s == 'N'],
                          0, ms(60))
        for k in range(1, len(beats) - 1):
            if sym[k] != 'A' or sym[k - 1] != 'N':
                continue
            seen += 1
            assert rr[k - 1] < 0.92 * normal_rr
            assert rr[k - 1] + rr[k] < 2 * normal_rr   # non-compensatory
            # the premature P comes (1 - prematurity) sinus cycles after the
            # previous P; the R-R interval adds the PR difference
            expect = ((1 - tr['pac_prematurity']) * normal_rr
                      + ms(tr['pac_pr_ms']) - ms(tr['pr_ms']))
            assert abs(rr[k - 1] - expect) < 0.07 * normal_rr, (rr[k - 1], expect)
            on, off = qrs_bounds(sig, beats[k])
            assert (off - on) * 1000 / FS < 115
            # an abnormal P wave where the generator put it (often on the T wave)
            p = int(tr['beat_p_onset'][k])
            assert 0.08 <= (on - p) / FS <= 0.4
            pa = sig[p:p + ms(60)]
            cos = (pa * p_n).sum() / np.linalg.norm(pa) / np.linalg.norm(p_n)
            assert cos < 0.9, cos   # another P axis or shape
    assert seen >= 3


def test_pvc_wide_no_p_discordant_t_compensatory():
    seen = 0
    for rec in steady_records('PVC', 5):
        tr, sig, beats, sym = rec['truth'], rec['signal'], rec['beats'], rec['symbols']
        rr, normal_rr = rr_and_sinus_cycle(beats, sym)
        for k in range(1, len(beats) - 1):
            if sym[k] != 'V' or sym[k - 1] != 'N' or sym[k + 1] != 'N' or beats[k - 1] < ms(400):
                continue
            assert rr[k - 1] < 0.9 * normal_rr
            prev_t_end = tr['beat_qrs_onset'][k - 1] + ms(tr['beat_qt_ms'][k - 1])
            if prev_t_end > tr['beat_qrs_onset'][k]:
                continue   # R-on-T: the QRS onset is not measurable on the T wave
            seen += 1
            # compensatory: the sinus rhythm goes on, the PVC's R-R pair spans
            # two sinus cycles (compared with the neighbouring sinus cycles)
            local = [rr[j] for j in (k - 2, k + 1)
                     if 0 <= j < len(rr) and sym[j] == sym[j + 1] == 'N']
            if local:
                ratio = (rr[k - 1] + rr[k]) / (2 * np.mean(local))
                assert abs(ratio - 1) < 0.08, ratio
            on, off = qrs_bounds(sig, beats[k])
            w = (off - on) * 1000 / FS
            assert w >= 115 and abs(w - tr['pvc_qrs_ms']) <= 15, (w, tr['pvc_qrs_ms'])
            assert np.isnan(tr['beat_p_onset'][k])
            # no P: what precedes the PVC is what precedes nothing, i.e. the
            # pre-QRS window of a normal beat shows a P wave, this one does not
            on_n, _ = qrs_bounds(sig, beats[k - 1])
            p_n = np.linalg.norm(sig[on_n - ms(250):on_n - ms(30)], axis=1).max()
            lo = max(on - ms(250), prev_t_end + ms(30))
            if lo < on - ms(40):
                assert np.linalg.norm(sig[lo:on - ms(30)], axis=1).max() < 0.5 * p_n
            # discordant T in the lead of the largest QRS area
            qa = sig[on:off].sum(0)
            lead = int(np.argmax(np.abs(qa)))
            t = sig[off + ms(40):off + ms(350), lead].sum()
            assert np.sign(t) == -np.sign(qa[lead])
    assert seen >= 3


def st_levels(rec):
    """ST at J + 60 ms against the PR baseline, on the median beat."""
    sig = rec['signal']
    beats = n_beats(rec)[1:-1]
    on, off = zip(*(qrs_bounds(sig, b) for b in beats))
    on0, off0 = int(np.median(np.array(on) - beats)), int(np.median(np.array(off) - beats))
    m = median_beat(sig, beats, ms(400), ms(400))
    c = ms(400)
    base = m[c + on0 - ms(16):c + on0 - ms(4)].mean(0)
    return m[c + off0 + ms(60)] - base


def test_st_depression_and_elevation():
    for i in range(5):
        for label in ('STD', 'STE'):
            rec = clean([label], i)
            st = st_levels(rec)
            truth = rec['truth']['st_mv']
            assert np.abs(st - truth).max() <= 0.035, (label, st.round(2), truth.round(2))
            dep, ele = contiguous(truth, 0.1)
            assert (dep, ele) == ((True, False) if label == 'STD' else (False, True))
            mdep, mele = contiguous(st, 0.085)
            assert mdep if label == 'STD' else mele
            if label == 'STE':
                assert st.min() < -0.04   # reciprocal depression
                terr = rec['truth']['st_territory']
                leads = {'anterior': ['V1', 'V2', 'V3', 'V4'], 'inferior': ['II', 'III', 'aVF'],
                         'lateral': ['I', 'aVL', 'V5', 'V6']}[terr]
                assert sum(truth[LI[x]] >= 0.1 for x in leads) >= 2
        for label in ('SNR', 'RBBB', 'PAC'):
            rec = clean([label], i)
            assert contiguous(st_levels(rec), 0.115) == (False, False)


# --------------------------------------------------------------------------
# Dataset-level behaviour.

def test_determinism_independent_of_n_and_workers(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    synthetic.write_dataset(a, 3, seed=5, workers=1, duration=6, progress=False)
    synthetic.write_dataset(b, 5, seed=5, workers=2, duration=6, progress=False)
    for k in range(1, 4):
        for ext in ('hea', 'mat', 'atr'):
            assert (a / f'A{k:04d}.{ext}').read_bytes() == (b / f'A{k:04d}.{ext}').read_bytes()
    r1, r2 = synthetic.make_record(5, 1, duration=6), synthetic.make_record(5, 1, duration=6)
    assert np.array_equal(r1['signal'], r2['signal']) and r1['classes'] == r2['classes']
    r3 = synthetic.make_record(5, 2, duration=6)
    assert not np.array_equal(r1['signal'][:1000], r3['signal'][:1000])
    # a rerun with the same arguments skips; other arguments overwrite
    again = synthetic.write_dataset(a, 3, seed=5, workers=1, duration=6, progress=False)
    assert again['skipped'] == 3
    before = (a / 'A0001.mat').read_bytes()
    assert synthetic.write_dataset(a, 2, seed=5, workers=1, duration=6, noise_scale=0.5,
                                   progress=False)['skipped'] == 0
    assert (a / 'A0001.mat').read_bytes() != before and not (a / 'A0003.hea').exists()
    assert json.loads((a / 'synthetic.json').read_text())['complete'] is True
    assert sorted(p.name for p in a.iterdir() if p.name.startswith('.')) == []


def test_atr_bytes_equal_wfdb_wrann(tmp_path):
    """Our annotation writer against the reference implementation, with a
    step over 1023 samples (a SKIP)."""
    samples = np.array([50, 400, 1600, 1900, 4000, 4100])
    symbols = ['N', 'A', 'N', 'V', 'N', 'N']
    wfdb.wrann('ref', 'atr', samples, symbol=symbols, fs=FS, write_dir=str(tmp_path))
    assert synthetic.atr_bytes(samples, symbols) == (tmp_path / 'ref.atr').read_bytes()
    rec = synthetic.make_record(2, 3, duration=8)
    wfdb.wrann('ref2', 'atr', rec['beats'], symbol=rec['symbols'], fs=FS, write_dir=str(tmp_path))
    assert synthetic.atr_bytes(rec['beats'], rec['symbols']) == (tmp_path / 'ref2.atr').read_bytes()


def test_interrupted_write_leaves_no_record(tmp_path, monkeypatch):
    rec = synthetic.make_record(0, 0, duration=6)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(synthetic, 'header_text', boom)
    with pytest.raises(KeyboardInterrupt):
        synthetic.write_record(rec, tmp_path, 'A0001')
    names = [p.name for p in tmp_path.iterdir()]
    assert 'A0001.hea' not in names   # readers see no record
    assert not [x for x in names if x.startswith('.')]   # no temporary files left


def test_cpsc_like_distributions():
    n = 300
    recs = [synthetic.make_record(11, i, noise_scale=0) for i in range(n)]
    total = 6877
    for c in CLASSES:
        k = sum(c in r['classes'] for r in recs)
        p = synthetic.CPSC_COUNTS[c] / total
        assert abs(k - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1, (c, k, n * p)
    multi = sum(len(r['classes']) > 1 for r in recs) / n
    assert 0.03 <= multi <= 0.13
    for r in recs:
        s = set(r['classes'])
        assert not ('SNR' in s and len(s) > 1) and not {'LBBB', 'RBBB'} <= s
        assert not {'AF', 'PAC'} <= s
        assert len(r['signal']) == round(r['truth']['duration_s'] * FS)
        assert ('A' in r['symbols']) == ('PAC' in s) and ('V' in r['symbols']) == ('PVC' in s)
        if 'AF' not in s:
            assert (r['truth']['pr_ms'] > 200) == ('IAVB' in s)
        wide = r['truth']['qrs_ms'] >= 120
        assert wide == bool(s & {'LBBB', 'RBBB'})
    d = np.array([r['truth']['duration_s'] for r in recs])
    assert d.min() >= 6 and d.max() <= 60
    assert 11 <= np.median(d) <= 15.5 and 13.5 <= d.mean() <= 18.5
    assert ((d >= 10) & (d <= 20)).mean() > 0.5
    age = np.array([r['age'] for r in recs])
    assert 54 <= age.mean() <= 66 and 13 <= age.std() <= 23 and age.min() >= 4 and age.max() <= 90
    assert 0.45 <= np.mean([r['sex'] == 'Male' for r in recs]) <= 0.63
    hr = np.array([r['truth']['hr_bpm'] for r in recs if r['classes'] == ['SNR']])
    assert ((hr >= 58) & (hr <= 102)).all()


def test_noise_scale_lowers_the_snr_and_keeps_the_beats_and_lead_identities():
    quiet = synthetic.make_record(1, 4, duration=8, classes=['SNR'], noise_scale=0.3)
    loud = synthetic.make_record(1, 4, duration=8, classes=['SNR'], noise_scale=3)
    assert loud['truth']['snr_db'] < quiet['truth']['snr_db'] - 15
    base = synthetic.make_record(1, 4, duration=8, classes=['SNR'], noise_scale=0)
    assert np.array_equal(base['beats'], loud['beats'])   # same heart, more noise
    resid = quiet['signal'] - base['signal']
    # noise lives at the electrodes: lead identities hold for it too
    assert np.abs(resid[:, LI['III']] - resid[:, LI['II']] + resid[:, LI['I']]).max() <= 0.005
    # muscle noise (20-150 Hz) grows with the noise scale, power as its square
    f = np.fft.rfftfreq(len(resid), 1 / FS)
    band = (f > 20) & (f < 150)

    def power(x):
        return (np.abs(np.fft.rfft(x, axis=0)) ** 2)[band].sum()
    assert power(loud['signal'] - base['signal']) > 30 * power(resid)
    # without the baseline wander the SNR is higher
    assert quiet['truth']['snr_hf_db'] > quiet['truth']['snr_db']


def test_forced_classes_are_checked():
    for bad in (['SNR', 'AF'], ['LBBB', 'RBBB'], ['AF', 'PAC'], ['XYZ']):
        with pytest.raises(ValueError):
            synthetic.make_record(0, 0, duration=6, classes=bad)
    for good in synthetic.LABEL_SETS:
        assert synthetic.check_classes(list(good)) == [c for c in CLASSES if c in good]


def test_command_line_writes_the_records_with_their_annotations(tmp_path):
    out = tmp_path / 'S'
    res = subprocess.run([sys.executable, str(ROOT / 'synthetic.py'), '--out', str(out),
                          '--n', '2', '--seed', '1', '--duration', '6', '--workers', '1'],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert re.search(r'wrote 2 records', res.stdout)
    assert sorted(p.name for p in out.glob('A*')) == [
        'A0001.atr', 'A0001.hea', 'A0001.mat', 'A0002.atr', 'A0002.hea', 'A0002.mat']


def test_truth_csv_matches_the_records(tmp_path):
    """truth.csv holds one row per record with the generator's intervals and
    axes, and survives a rerun that skips every record."""
    synthetic.write_dataset(tmp_path, 3, seed=5, workers=1, duration=6, progress=False)
    rows = synthetic.read_truth(tmp_path)
    assert sorted(rows) == ['A0001', 'A0002', 'A0003']
    for k, name in enumerate(sorted(rows)):
        tr = synthetic.make_record(5, k, duration=6)['truth']
        r = rows[name]
        assert float(r['qrs_ms']) == pytest.approx(tr['qrs_ms'], abs=0.01)
        assert float(r['qrs_axis']) == pytest.approx(tr['axis_deg'], abs=0.01)
        assert (r['pr_ms'] == '') == (tr['rhythm'] == 'af')
        assert 250 < float(r['qt_ms']) < 600 and -180 <= float(r['t_axis']) <= 180
    before = (tmp_path / 'truth.csv').read_bytes()
    assert synthetic.write_dataset(tmp_path, 3, seed=5, workers=1, duration=6,
                                   progress=False)['skipped'] == 3
    assert (tmp_path / 'truth.csv').read_bytes() == before


def test_records_of_another_generator_version_are_rewritten(tmp_path):
    """An old data/SYNTH is not reused after the generator changed."""
    synthetic.write_dataset(tmp_path, 2, seed=0, workers=1, progress=False)
    want = (tmp_path / 'A0001.mat').read_bytes()
    manifest = json.loads((tmp_path / 'synthetic.json').read_text())
    (tmp_path / 'synthetic.json').write_text(json.dumps({**manifest,
                                                         'generator': 'synthetic.py v0'}))
    (tmp_path / 'A0001.mat').write_bytes(b'old')
    synthetic.write_dataset(tmp_path, 2, seed=0, workers=1, progress=False)
    assert (tmp_path / 'A0001.mat').read_bytes() == want
    assert json.loads((tmp_path / 'synthetic.json').read_text())['generator'] == \
        synthetic.GENERATOR
