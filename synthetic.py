"""Synthetic 12-lead ECGs with CPSC2018's classes, format and statistics.

    python synthetic.py --out data/SYNTH --n 1000 --seed 0            # all cores
    python synthetic.py --out data/SYNTH --n 1000 --seed 0 --workers 1
    python synthetic.py --out data/HARD --n 1000 --noise-scale 2 --borderline 0.5

The first line prints (2.3 s with 16 workers, 15 s with one on the CPU of
an H100 host: ~75 records/s per idle core, `python bench.py --only synthetic`):
    wrote 1000 records (0 already there) in 2.3 s
    class counts: SNR 136, AF 172, IAVB 99, LBBB 39, RBBB 285, PAC 91, PVC 113, STD 108, STE 35

writes A0001.hea/.mat/.atr ... and truth.csv (each record's true HR, PR, QRS,
QT, QTc and P/QRS/T axes: truth_row) into --out, in the PhysioNet/CinC 2020 format
of CPSC2018: 12 leads at 500 Hz, int16 at 1000/mV in a MATLAB v4 `val` matrix,
`# Age/# Sex/# Dx` header comments with SNOMED-CT codes (utils.CLASS_TO_SNOMED),
and a WFDB annotation file with every R peak labelled N, A (PAC) or V (PVC).
`synthetic.json` in --out records the arguments, so that a rerun with the same
arguments skips finished records, and the data's provenance ("provenance":
"synthetic"): preprocess.py carries it into folds.json and main.py into the
checkpoint, so a model trained on these records is served as a demo whatever
the folder is called (runs.Run.synthetic). Record i depends only on (seed, i).

Model. One cardiac source: a time-varying heart dipole (vectorcardiogram) built
per beat from Gaussian waves with a direction each -- P (right then left
atrium), Q, R, S (plus the delayed right-ventricular wave of RBBB, the notched
left-ventricular waves of LBBB, the broad waves of a PVC), an ST plateau and an
asymmetric T -- in the spirit of the Gaussian-wave VCG models of McSharry et
al., IEEE TBME 50(3):289-294, 2003, and Sayadi, Shamsollahi & Clifford,
Physiol Meas 31(9):1309-1329, 2010. The dipole is projected onto the nine
electrode potentials (RA, LA, LL, V1-V6) with Dower's inverse transform
(Dower et al., J Electrocardiol 13(2):189-191, 1980; electrodes relative to
Wilson's terminal), noise is added at the electrodes (respiratory baseline
wander and slow drift, band-limited muscle noise in bursts, 50 Hz mains), and
the 12 leads are derived from the electrodes exactly as an electrocardiograph
does, so III = II - I, aVR = -(I + II)/2, ... hold up to quantisation.
QT follows the RR interval (Fridericia), heart rate varies with respiration.

Per-record ranges (heart rate, PR, QRS, ST, prematurity, noise) are in EFFECTS
below; `--noise-scale` multiplies every noise source and `--borderline` is the
probability of drawing effect sizes from the part of a range next to the
diagnostic threshold (PR 200-230 ms, ST 0.10-0.13 mV, a single premature beat,
...) and, in records without the label, sub-threshold look-alikes (PR 185-200,
ST depression 0.05-0.09 mV, sinus arrhythmia, slurred QRS 100-110 ms).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from records import FS, LEADS
from utils import CLASS_TO_SNOMED, CLASSES, atomic_path, atomic_write_json

# --------------------------------------------------------------------------
# Lead system. Frank axes: x to the patient's left, y to the feet, z to the
# back. Dower's coefficients give I, II, V1..V6 from (x, y, z) in mV.
DOWER = np.array([
    [0.632, -0.235, 0.059],    # I
    [0.235, 1.066, -0.132],    # II
    [-0.515, 0.157, -0.917],   # V1
    [0.044, 0.164, -1.387],    # V2
    [0.882, 0.098, -1.277],    # V3
    [1.213, 0.127, -0.601],    # V4
    [1.125, 0.127, -0.086],    # V5
    [0.831, 0.076, 0.230],     # V6
])
ELECTRODES = ['RA', 'LA', 'LL', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6']
# Electrode potentials relative to Wilson's terminal (RA + LA + LL = 0).
_I, _II = DOWER[0], DOWER[1]
ELECTRODE_VECTORS = np.vstack([-(_I + _II) / 3, (2 * _I - _II) / 3,
                               (2 * _II - _I) / 3, DOWER[2:]])          # (9, 3)
# What the electrocardiograph computes from the electrodes, in LEADS order.
_W = np.full(3, -1 / 3)
LEADS_FROM_ELECTRODES = np.array(
    [[-1, 1, 0], [-1, 0, 1], [0, -1, 1], [1, -.5, -.5], [-.5, 1, -.5], [-.5, -.5, 1]]
    + [list(_W)] * 6, dtype=float)
LEADS_FROM_ELECTRODES = np.hstack([LEADS_FROM_ELECTRODES,
                                   np.vstack([np.zeros((6, 6)), np.eye(6)])])  # (12, 9)
LEAD_VECTORS = LEADS_FROM_ELECTRODES @ ELECTRODE_VECTORS                  # (12, 3)
L = {name: k for k, name in enumerate(LEADS)}

# Contiguous leads: the limb leads in Cabrera order and the precordial chain.
CONTIGUOUS = [('aVL', 'I'), ('I', 'II'), ('II', 'aVF'), ('aVF', 'III'),
              ('V1', 'V2'), ('V2', 'V3'), ('V3', 'V4'), ('V4', 'V5'), ('V5', 'V6')]
TERRITORIES = {  # STE territory -> its leads and the direction of its ST vector
    'anterior': (['V1', 'V2', 'V3', 'V4'], [0.3, -0.55, -1.0]),
    'inferior': (['II', 'III', 'aVF'], [-0.25, 1.0, 0.05]),
    'lateral': (['I', 'aVL', 'V5', 'V6'], [1.0, -0.6, 0.25]),
}
STD_GROUPS = {   # STD distribution -> leads; the ST vector points away from them
    'lateral': ['V4', 'V5', 'V6'],
    'inferior': ['II', 'III', 'aVF'],
    'anterolateral': ['V3', 'V4', 'V5', 'V6', 'I'],
}

# --------------------------------------------------------------------------
# CPSC2018 statistics (6877 records; counts include multi-label records).
CPSC_COUNTS = {'SNR': 918, 'AF': 1221, 'IAVB': 722, 'LBBB': 236, 'RBBB': 1857,
               'PAC': 616, 'PVC': 700, 'STD': 869, 'STE': 220}
# Clinically compatible label sets and their share of the 6877 records (about
# one record in 14 has 2-3 labels). Never SNR with anything, never LBBB with
# RBBB, never AF with PAC or IAVB (no conducted P waves), never STD with STE
# (reciprocal depression belongs to STE), no ST label on top of LBBB.
COMBOS = {
    ('AF', 'RBBB'): 95, ('AF', 'STD'): 45, ('AF', 'PVC'): 35, ('AF', 'LBBB'): 10,
    ('IAVB', 'RBBB'): 50, ('IAVB', 'PAC'): 12, ('IAVB', 'PVC'): 12, ('IAVB', 'STD'): 12,
    ('RBBB', 'PAC'): 45, ('RBBB', 'PVC'): 35, ('RBBB', 'STD'): 35, ('RBBB', 'STE'): 6,
    ('PVC', 'STD'): 35, ('PAC', 'STD'): 18, ('PAC', 'PVC'): 10, ('LBBB', 'PVC'): 10,
    ('LBBB', 'PAC'): 6, ('PAC', 'STE'): 4, ('PVC', 'STE'): 4,
    ('AF', 'RBBB', 'PVC'): 7, ('AF', 'RBBB', 'STD'): 5, ('IAVB', 'RBBB', 'PAC'): 3,
    ('RBBB', 'PVC', 'STD'): 3,
}


def _label_sets():
    sets = {c: n for c, n in CPSC_COUNTS.items()}
    for combo, n in COMBOS.items():
        for c in combo:
            sets[c] -= n
    table = [((c,), n) for c, n in sets.items()] + list(COMBOS.items())
    weights = np.array([n for _, n in table], dtype=float)
    return [tuple(c for c in CLASSES if c in s) for s, _ in table], weights / weights.sum()


LABEL_SETS, LABEL_WEIGHTS = _label_sets()


def check_classes(classes):
    """A forced label set -> sorted list, or ValueError naming the conflict."""
    classes = [c for c in CLASSES if c in set(classes)]
    bad = set(classes) - set(CLASSES)
    if bad or not classes:
        raise ValueError(f'classes must be a non-empty subset of {CLASSES}, got {classes}')
    s = set(classes)
    for a, b in [('AF', 'PAC'), ('AF', 'IAVB'), ('LBBB', 'RBBB'), ('STD', 'STE'),
                 ('LBBB', 'STD'), ('LBBB', 'STE')]:
        if {a, b} <= s:
            raise ValueError(f'incompatible classes {a} and {b}')
    if 'SNR' in s and len(s) > 1:
        raise ValueError(f'SNR (normal ECG) cannot go with {sorted(s - {"SNR"})}')
    return classes


# Effect sizes: (low, high) drawn uniformly unless noted. `borderline` ranges
# sit next to the diagnostic threshold.
EFFECTS = {
    'hr_snr': (62, 97), 'hr_sinus': (48, 115), 'hr_af': (60, 150),
    'rr_cv_sinus': (0.01, 0.05), 'rr_cv_sinus_borderline': (0.06, 0.10),
    'rr_cv_af': (0.12, 0.30), 'rr_cv_af_borderline': (0.08, 0.12),
    'pr_ms': (120, 198), 'pr_ms_borderline': (185, 198),
    'pr_iavb_ms': (215, 350), 'pr_iavb_ms_borderline': (205, 230),
    'qrs_ms': (72, 104), 'qrs_ms_borderline': (100, 108),
    'qrs_lbbb_ms': (125, 180), 'qrs_rbbb_ms': (122, 160), 'qrs_bbb_ms_borderline': (120, 128),
    'qrs_pvc_ms': (125, 185),
    'st_mv': (0.12, 0.35), 'st_mv_borderline': (0.10, 0.13),
    'st_nonspecific_mv': (0.0, 0.05), 'st_nonspecific_mv_borderline': (0.05, 0.085),
    'pac_prematurity': (0.15, 0.35), 'pac_prematurity_borderline': (0.10, 0.15),
    'pvc_coupling': (0.55, 0.78),
    'f_wave_hz': (4.0, 9.0), 'f_wave_mv': (0.02, 0.12),
    'ectopic_per_10s': (0.3, 3.0),
}

# Durations: CPSC2018 has 6-60 s, median ~13 s, mean ~15.8 s, mostly 10-20 s.
MIN_S, MAX_S = 6.0, 60.0


def _duration(rng):
    if rng.random() < 0.82:
        d = 12.5 * np.exp(0.28 * rng.standard_normal())
    else:
        d = 25.0 * np.exp(0.45 * rng.standard_normal())
    return float(np.clip(d, MIN_S, MAX_S))


def _u(rng, key, borderline=False):
    if borderline and key + '_borderline' in EFFECTS:
        key = key + '_borderline'
    lo, hi = EFFECTS[key]
    return float(rng.uniform(lo, hi))


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _rotation(rng, frontal_deg):
    """Rotation of the heart: frontal-plane axis (about z), transverse (about
    y: clockwise/counter-clockwise precordial transition), small tilt (x)."""
    def rz(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    def ry(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def rx(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return (rz(np.radians(frontal_deg)) @ ry(np.radians(rng.normal(0, 12)))
            @ rx(np.radians(rng.normal(0, 8))))


# --------------------------------------------------------------------------
# Wave templates. A QRS template is (centre s, sigma s, vector mV (3,)) per
# wave relative to QRS onset; the QRS lasts `dur` seconds by construction:
# small waves keep +-2.5 sigma inside [0, dur], the large broad waves of
# LBBB and PVCs +-3.2 sigma (where their slope is still visible).

K_QRS = 5  # waves per QRS template (padded with zero vectors)


def _pad(waves):
    c = np.zeros(K_QRS)
    s = np.full(K_QRS, 0.01)
    v = np.zeros((K_QRS, 3))
    for k, (ck, sk, vk) in enumerate(waves):
        c[k], s[k], v[k] = ck, sk, vk
    return c, s, v


def _normal_qrs(rng, dur, rot, gain, slur=False):
    aq, ar, as_ = rng.uniform(0.1, 0.25), rng.uniform(1.1, 2.0), rng.uniform(0.25, 0.5)
    waves = [(0.12 * dur, 0.045 * dur, aq * _unit([-0.4, 0.05, -0.9])),
             (0.42 * dur, 0.11 * dur, ar * _unit([0.75, 0.55, 0.15])),
             (0.72 * dur, 0.09 * dur, as_ * _unit([-0.25, -0.2, 0.95]))]
    if slur:  # sub-threshold look-alike: terminal rightward-anterior slur (incomplete RBBB)
        waves.append((0.84 * dur, 0.06 * dur, rng.uniform(0.2, 0.35) * _unit([-0.6, 0.1, -0.8])))
    return [(c, s, gain * (rot @ v)) for c, s, v in waves]


def _rbbb_qrs(rng, dur, rot, gain):
    """Normal septal and left-ventricular waves in the first ~85 ms, then the
    slow right-ventricular wave, rightward and anterior: rSR' in V1-V2, broad
    slurred S in I and V6."""
    d0 = rng.uniform(0.080, 0.090)
    waves = _normal_qrs(rng, d0, rot, gain)
    st = 0.10 * dur
    term = (dur - 2.6 * st, st, gain * rng.uniform(0.7, 1.1)
            * (rot @ _unit([-0.55, 0.1, -0.85])))
    waves[2] = (waves[2][0], waves[2][1], 0.6 * waves[2][2])
    return waves + [term]


def _lbbb_qrs(rng, dur, rot, gain):
    """No septal q; the left ventricle is activated late and slowly from the
    right: broad notched R left and posterior (I, aVL, V5-V6), QS in V1."""
    main = _unit([0.72, rng.uniform(-0.25, 0.15), 0.7])
    a = gain * rng.uniform(1.3, 2.2)
    return [(0.08 * dur, 0.032 * dur, gain * 0.12 * (rot @ _unit([0.3, 0.0, -1.0]))),
            (0.36 * dur, 0.11 * dur, a * rng.uniform(0.7, 0.95) * (rot @ main)),
            (0.64 * dur, 0.11 * dur, a * (rot @ _unit(main + [0.0, 0.0, 0.15])))]


def _pvc_qrs(rng, dur, direction, gain):
    """Ectopic ventricular focus: broad slurred waves along one direction."""
    a = gain * rng.uniform(1.4, 2.6)
    d2 = _unit(direction + 0.3 * rng.standard_normal(3))
    return [(0.38 * dur, 0.115 * dur, a * 0.8 * direction),
            (0.62 * dur, 0.115 * dur, a * 0.7 * d2)]


def _sinus_p(rng, rot, gain):
    dur = rng.uniform(0.080, 0.112)
    a1, a2 = gain * rng.uniform(0.08, 0.17), gain * rng.uniform(0.08, 0.17)
    return [(0.32 * dur, 0.125 * dur, a1 * (rot @ _unit([0.45, 0.85, -0.35]))),
            (0.64 * dur, 0.14 * dur, a2 * (rot @ _unit([0.85, 0.35, 0.45])))]


def _ectopic_p(rng, gain, sinus_dir):
    """Atrial focus outside the sinus node: a P wave of another axis (at
    least 70 degrees from the sinus P)."""
    focus = rng.integers(3)
    d = [_unit([0.4, -0.85, -0.1]),       # low atrial: negative P in II, III, aVF
         _unit([-0.75, 0.55, 0.4]),       # left atrial: negative P in I, V6
         _unit(rng.standard_normal(3))][focus]
    while d @ sinus_dir > np.cos(np.radians(70)):
        d = _unit(rng.standard_normal(3))
    dur = rng.uniform(0.065, 0.11)
    a = gain * rng.uniform(0.12, 0.25)
    return [(0.35 * dur, 0.14 * dur, a * d),
            (0.65 * dur, 0.14 * dur, 0.6 * a * _unit(d + 0.5 * rng.standard_normal(3)))]


# --------------------------------------------------------------------------
# Rendering: every beat's waves are evaluated on a local window around its
# QRS onset, all beats at once, then added into the record.

PRE_S, POST_S = 0.50, 0.85   # window around QRS onset: longest PR ... longest QT
# Wave groups and the part of the window each needs (s from QRS onset):
# waves [K_QRS:K_QRS+2] are the P wave, [:K_QRS] the QRS, the last the T.
GROUPS = ((slice(K_QRS, K_QRS + 2), -PRE_S, 0.06), (slice(0, K_QRS), -0.06, 0.32),
          (slice(K_QRS + 2, K_QRS + 3), 0.0, POST_S))


def _lin(x, m):
    """x (..., k) @ m.T for a small (r, k) matrix, without BLAS (whose thread
    pool is slower than plain numpy at this size, and worse on busy cores)."""
    out = x[..., :1] * m[:, 0]
    for k in range(1, m.shape[1]):
        out = out + x[..., k:k + 1] * m[:, k]
    return out


def _render(n, onset, wc, wsa, wsd, wv, j, e, stv):
    """onset (B,) s; wc, wsa, wsd (B,K) wave centres and rising/falling sigmas
    (absolute s); wv (B,K,3) vectors; j, e (B,) ST plateau start/end; stv
    (B,3) ST vector. -> heart dipole (n, 3). Each group of waves is evaluated
    only on its part of the window, all beats at once."""
    pad = int((PRE_S + POST_S) * FS)
    out = np.zeros((n + 2 * pad, 3))
    on = np.round(onset * FS).astype(np.int64)
    for sl, t0, t1 in GROUPS:
        s0 = on + round(t0 * FS)
        w = round((t1 - t0) * FS)
        t = (s0[:, None] + np.arange(w)[None, :]) / FS                   # (B, W)
        d = t[:, None, :] - wc[:, sl, None]                              # (B, k, W)
        sig = np.where(d < 0, wsa[:, sl, None], wsd[:, sl, None])
        g = np.exp(-0.5 * (d / sig) ** 2)
        dip = g[:, 0, :, None] * wv[:, sl][:, 0, None, :]
        for k in range(1, g.shape[1]):
            dip += g[:, k, :, None] * wv[:, sl][:, k, None, :]
        if t0 == 0.0:
            # ST plateau: on at the J point (ramping inside the end of the
            # QRS), off into the T wave.
            plateau = (1 / (1 + np.exp(-(t - j[:, None] + 0.012) / 0.004))
                       / (1 + np.exp(-(e[:, None] - t) / 0.035)))
            dip += plateau[:, :, None] * stv[:, None, :]
        for b in range(len(on)):
            if -pad < s0[b] < n:
                out[s0[b] + pad:s0[b] + pad + w] += dip[b]
    return out[pad:pad + n]


def leads_from_electrodes(e):
    """Electrode potentials (n, 9: RA, LA, LL, V1..V6) -> the 12 leads (n, 12),
    as an electrocardiograph derives them."""
    ra, la, ll = e[:, 0], e[:, 1], e[:, 2]
    wct = (ra + la + ll) / 3   # Wilson's central terminal
    limb = [la - ra, ll - ra, ll - la, ra - (la + ll) / 2, la - (ra + ll) / 2,
            ll - (ra + la) / 2]
    return np.column_stack(limb + [e[:, k] - wct for k in range(3, 9)])


def _beat_arrays(beats, tmpl, p_sinus, p_ect, qt_c, t_vec, st_vec, resp_gain):
    """Beat list -> the arrays _render needs, plus per-beat timing."""
    B = len(beats)
    kinds = np.array([b[0] for b in beats])
    onset = np.array([b[2] for b in beats])
    ponset = np.array([b[1] for b in beats])
    rr = np.array([b[3] for b in beats])
    K = K_QRS + 3
    wc, wsa, wv = np.zeros((B, K)), np.full((B, K), 0.01), np.zeros((B, K, 3))
    for code, (c, s, v, _dur) in tmpl.items():
        m = kinds == code
        wc[m, :K_QRS] = onset[m, None] + c
        wsa[m, :K_QRS] = s
        wv[m, :K_QRS] = v * resp_gain[m, None, None]
    for code, p in ((0, p_sinus), (1, p_ect)):
        m = (kinds == code) & np.isfinite(ponset)
        for k, (c, s, v) in enumerate(p):
            wc[m, K_QRS + k] = ponset[m] + c
            wsa[m, K_QRS + k] = s
            wv[m, K_QRS + k] = v
    wsd = wsa.copy()
    # T wave: ends QT after QRS onset (Fridericia: QT = QTc RR^(1/3)); its
    # rise is slower than its fall. A broad QRS delays repolarisation by as
    # much (the JT interval stays).
    dur = np.array([tmpl[k][3] for k in kinds])
    qt = qt_c * np.clip(rr, 0.3, 2.0) ** (1 / 3) + np.maximum(dur - 0.095, 0)
    sd = 0.105 * qt
    tpk = onset + qt - 2.6 * sd
    # At fast rates the T wave steepens instead of running into the ST
    # segment: its rise keeps 2.4 sigma between J + 60 ms and its peak.
    sa = np.clip((tpk - onset - dur - 0.06) / 2.4, 0.02, 0.16 * qt)
    wc[:, -1], wsa[:, -1], wsd[:, -1] = tpk, sa, sd
    wv[:, -1] = np.array([t_vec[k] for k in kinds])
    stv = np.array([st_vec[k] for k in kinds])
    return (onset, wc, wsa, wsd, wv, onset + dur, tpk + 0.5 * sd, stv), qt


# --------------------------------------------------------------------------
# Rhythm.

def _sinus_beats(rng, dur_s, hr, rr_cv, pr, plan, resp, pac_pr, prem, coupling):
    """Sinus rhythm with planned ectopic cycles. Beats are tuples (kind,
    P onset s or nan, QRS onset s, RR s that sets the QT); kind 0 sinus,
    1 PAC, 2 PVC.
    PACs reset the sinus node (non-compensatory pause), PVCs do not
    (compensatory pause: the sinus P behind the PVC is blocked)."""
    rr0 = 60.0 / hr
    f_r, ph = resp
    rsa = rr_cv * np.sqrt(2) * 0.8
    p = -PRE_S - rng.uniform(0, rr0) - 0.6
    beats, last_p, last_on, k = [], None, None, 0
    while p + pr < dur_s + 0.3:
        rr = rr0 * (1 + rsa * np.sin(2 * np.pi * f_r * p + ph)
                    + 0.45 * rr_cv * rng.standard_normal())
        kind = plan.get(k, 0)
        if kind == 1 and last_p is not None:
            pe = last_p + rr * (1 - prem)
            on = pe + pac_pr
            beats.append((1, pe, on, on - last_on))
            last_p, p = pe, pe + rr * rng.uniform(1.0, 1.05)
        elif kind == 2 and last_on is not None:
            on = last_on + rr * coupling * rng.uniform(0.97, 1.03)
            # a PVC's repolarisation follows the sinus cycle, not its coupling
            beats.append((2, np.nan, on, rr))
            last_p, p = p, p + rr
        else:
            on = p + pr
            beats.append((0, p, on, rr if last_on is None else on - last_on))
            last_p, p = p, p + rr
        last_on = on
        k += 1
    return beats


def _af_beats(rng, dur_s, hr, rr_cv, plan, coupling):
    """Irregularly irregular ventricular response: independent log-normal RR."""
    rr0 = 60.0 / hr
    on = -PRE_S - rng.uniform(0, rr0) - 0.6
    beats, k = [], 0
    while on < dur_s + 0.3:
        if plan.get(k) == 2:
            rr = rr0 * coupling
            beats.append((2, np.nan, on + rr, rr0))
            on += rr0 * rng.uniform(1.1, 1.5)
            beats.append((3, np.nan, on, on - beats[-1][2]))
        else:
            rr = np.clip(rr0 * np.exp(rr_cv * rng.standard_normal() - rr_cv ** 2 / 2),
                         0.28, 2.2)
            on += rr
            beats.append((3, np.nan, on, rr))
        k += 1
    return beats


def _plan_ectopics(rng, dur_s, hr, kinds, borderline):
    """Which cycles are premature: {cycle index: 1 (PAC) or 2 (PVC)}. Isolated
    beats (a single one when borderline), or runs of bigeminy/trigeminy."""
    rr0 = 60.0 / hr
    first = int((PRE_S + 0.6 + 0.8 * rr0) / rr0) + 1
    last = first + max(1, int((dur_s - 1.6 * rr0 - 0.6) / rr0))
    cycles = list(range(first, last))
    plan = {}
    for kind in kinds:
        free = [c for c in cycles if c not in plan and c - 1 not in plan and c + 1 not in plan]
        if not free:
            break
        pattern = rng.random()
        if borderline:
            chosen = [free[rng.integers(len(free))]]
        elif pattern < 0.15:     # bigeminy over a stretch
            start = free[rng.integers(max(1, len(free) // 2))]
            chosen = [c for c in free if c >= start and (c - start) % 2 == 0][:rng.integers(3, 9)]
        elif pattern < 0.27:     # trigeminy
            start = free[rng.integers(max(1, len(free) // 2))]
            chosen = [c for c in free if c >= start and (c - start) % 3 == 0][:rng.integers(2, 7)]
        else:   # isolated beats, never two in a row
            lam = _u(rng, 'ectopic_per_10s') * dur_s / 10
            m = 1 + rng.poisson(lam)
            chosen = []
            for c in rng.permutation(free):
                if len(chosen) < m and c - 1 not in chosen and c + 1 not in chosen:
                    chosen.append(int(c))
        for c in chosen:
            plan[int(c)] = kind
    return plan


# --------------------------------------------------------------------------
# Noise at the electrodes.

def _band_noise(rng, shape, lo, hi, order=2, fs=FS):
    """Gaussian noise with a smooth band-pass spectrum, unit std per row.
    The FFT runs on a fast length (2^a 3^b 5^c) and is cut to n samples."""
    from scipy import fft
    n = shape[-1]
    m = fft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(m, 1 / fs)
    h = np.ones_like(f)
    if lo > 0:
        h *= 1 / np.sqrt(1 + (lo / np.maximum(f, 1e-6)) ** (2 * order))
    if hi:
        h *= 1 / np.sqrt(1 + (f / hi) ** (2 * order))
    x = fft.irfft(fft.rfft(rng.standard_normal((*shape[:-1], m)), axis=-1) * h,
                  n=m, axis=-1)[..., :n]
    return x / (x.std(axis=-1, keepdims=True) + 1e-12)


def _slow_noise(rng, rows, n, fc, rate=20.0):
    """Low-pass (< fc Hz) unit-std noise (rows, n), made at `rate` Hz and
    interpolated: drifts and envelopes need no 500 Hz FFT."""
    m = int(n / FS * rate) + 4
    x = _band_noise(rng, (rows, m), 0, fc, order=1, fs=rate)
    t = np.arange(n) / FS
    tl = np.arange(m) / rate
    return np.stack([np.interp(t, tl, r) for r in x])


def _noise(rng, n, scale, resp_wave):
    """(n, 9) electrode noise (mV), its part above baseline-wander
    frequencies (muscle + mains), and its amplitudes."""
    ne = len(ELECTRODES)
    level = scale * np.exp(rng.uniform(np.log(0.25), np.log(1.6)))
    t = np.arange(n) / FS
    # Respiration moves the heart and changes electrode contact: a shared
    # waveform with an electrode-specific amplitude.
    bw_resp = level * rng.uniform(0.02, 0.08) * rng.uniform(0.3, 1.0, ne)
    bw_drift = level * rng.uniform(0.03, 0.15)
    drift = _slow_noise(rng, ne, n, 0.12) * bw_drift
    # Muscle noise: 20-150 Hz, stronger on the limb electrodes, in bursts.
    emg_rms = level * rng.uniform(0.003, 0.012)
    emg = _band_noise(rng, (ne, n), 20, 150)
    emg *= emg_rms * np.r_[rng.uniform(1.0, 2.0, 3), rng.uniform(0.4, 1.0, 6)][:, None]
    env = 1 + 1.5 * np.clip(_slow_noise(rng, 1, n, 0.4), 0, None)
    emg *= env
    # Mains: unequal electrode impedances turn the common-mode 50 Hz into
    # differential interference, so each electrode gets its own amplitude/phase.
    mains = 0.0
    if rng.random() < 0.35:
        mains = level * rng.uniform(0.004, 0.03)
        amp = mains * rng.uniform(0.2, 1.0, ne)
        ph = rng.uniform(0, 2 * np.pi, ne)
        emg += amp[:, None] * np.sin(2 * np.pi * 50 * t[None, :] + ph[:, None])
    noise = drift + emg + bw_resp[:, None] * resp_wave[None, :]
    return noise.T, emg.T, {'level': float(level), 'baseline_resp_mv': float(bw_resp.max()),
                     'baseline_drift_mv': float(bw_drift), 'emg_mv': float(emg_rms),
                     'mains_mv': float(mains)}


def _af_waves(rng, n, f0, amp):
    """Fibrillatory waves: an atrial dipole at 4-9 Hz with wandering frequency,
    amplitude and direction (largest in V1 and the inferior leads)."""
    t = np.arange(n) / FS
    f = f0 + 0.35 * _slow_noise(rng, 1, n, 0.3)[0]
    phase = 2 * np.pi * np.cumsum(f) / FS + rng.uniform(0, 2 * np.pi)
    w = np.sin(phase) + 0.35 * np.sin(2 * phase + 0.6) + 0.12 * np.sin(3 * phase + 1.1)
    env = amp * np.exp(0.3 * _slow_noise(rng, 1, n, 0.2)[0])
    d1, d2 = _unit([-0.2, 0.35, -0.9]), _unit([-0.1, 0.75, -0.65])
    mix = 0.5 + 0.35 * np.sin(2 * np.pi * 0.07 * t + rng.uniform(0, 6.3))
    return (env * w)[:, None] * ((1 - mix)[:, None] * d1 + mix[:, None] * d2)


# --------------------------------------------------------------------------
# Measurements the generator uses for its own ground truth.

def st_criteria(st):
    """ST level per lead (12,) mV -> (STD, STE): >= 0.1 mV depression /
    elevation in two contiguous leads."""
    dep = any(st[L[a]] <= -0.1 and st[L[b]] <= -0.1 for a, b in CONTIGUOUS)
    ele = any(st[L[a]] >= 0.1 and st[L[b]] >= 0.1 for a, b in CONTIGUOUS)
    return dep, ele


def _template_leads(arrs, idx):
    """Clean 12-lead waveform (W, 12) of one beat, window from QRS onset - PRE_S."""
    onset, wc, wsa, wsd, wv, j, e, stv = arrs
    sl = slice(idx, idx + 1)
    shift = onset[idx] - PRE_S
    win = int((PRE_S + POST_S) * FS)
    dip = _render(win, onset[sl] - shift, wc[sl] - shift, wsa[sl], wsd[sl], wv[sl],
                  j[sl] - shift, e[sl] - shift, stv[sl])
    return _lin(dip, LEAD_VECTORS)


def _st_and_axis(lead_tmpl, qrs_dur):
    """ST level at J + 60 ms against the PR baseline (16-4 ms before QRS
    onset) and the frontal QRS axis from net areas in I and aVF."""
    on = int(PRE_S * FS)
    base = lead_tmpl[on - 8:on - 2].mean(axis=0)
    jp = on + round((qrs_dur + 0.060) * FS)
    st = lead_tmpl[jp] - base
    qrs = lead_tmpl[on:on + round(qrs_dur * FS)] - base
    area = qrs.sum(axis=0)
    axis = np.degrees(np.arctan2(2 * area[L['aVF']] / np.sqrt(3), area[L['I']]))
    peak = int(np.argmax(np.linalg.norm(qrs, axis=1)))
    return st, float(axis), peak


# --------------------------------------------------------------------------
# One record. make_record draws the record's parameters into a namespace `h`
# step by step, in a fixed order of random draws (record i must not change
# when the code is reorganised): patient and rhythm, conducted beat, ectopic
# and atrial templates, beat sequence, ST-T, render, annotate.

def _draw_patient(rng, cl, duration, borderline):
    """Duration, demographics, rate, PR, heart orientation and gain."""
    h = SimpleNamespace(cl=cl, af='AF' in cl)
    h.dur_s = float(duration) if duration is not None else _duration(rng)
    h.n = round(h.dur_s * FS)
    h.age = int(np.clip(round(rng.normal(60, 19)), 4, 90))
    h.sex = 'Male' if rng.random() < 0.54 else 'Female'
    h.bl = rng.random() < borderline      # effect sizes next to the threshold
    h.mimic = rng.random() < borderline   # sub-threshold look-alikes when unlabelled
    if 'SNR' in cl:
        hr = _u(rng, 'hr_snr')
    elif h.af:
        hr = _u(rng, 'hr_af')
    else:
        hr = _u(rng, 'hr_sinus')
    h.rr_cv = _u(rng, 'rr_cv_af', h.bl) if h.af else _u(rng, 'rr_cv_sinus', h.mimic)
    pr = _u(rng, 'pr_iavb_ms', h.bl) if 'IAVB' in cl else _u(rng, 'pr_ms', h.mimic)
    h.pr = pr / 1000
    if not h.af:   # keep the P wave out of the previous T wave (long PR, fast rate)
        hr = min(hr, 60 / (h.pr + 0.45))
    h.hr = hr
    frontal = np.clip(rng.normal(0, 25), -45, 45) + (-15 if 'LBBB' in cl else 0)
    h.rot = _rotation(rng, frontal)
    h.gain = np.exp(rng.normal(0, 0.22)) * (0.9 if h.age > 65 else 1.0)
    return h


def _conducted_beat(rng, h):
    """The conducted QRS (normal, LBBB or RBBB), the PVC, their T waves and
    ST plateaus, the sinus and ectopic P waves and the timing constants."""
    cl, rot, gain = h.cl, h.rot, h.gain
    h.slur = False
    if 'LBBB' in cl:
        h.qrs_type = 'lbbb'
        qd = _u(rng, 'qrs_bbb_ms_borderline') if h.bl else _u(rng, 'qrs_lbbb_ms')
        waves = _lbbb_qrs(rng, qd / 1000, rot, gain)
    elif 'RBBB' in cl:
        h.qrs_type = 'rbbb'
        qd = _u(rng, 'qrs_bbb_ms_borderline') if h.bl else _u(rng, 'qrs_rbbb_ms')
        waves = _rbbb_qrs(rng, qd / 1000, rot, gain)
    else:
        h.qrs_type = 'normal'
        qd = _u(rng, 'qrs_ms', h.mimic)
        h.slur = h.mimic and 'SNR' not in cl and rng.random() < 0.5
        waves = _normal_qrs(rng, qd / 1000, rot, gain, slur=h.slur)
    h.qd = qd / 1000
    # PVC focus: right-ventricular outflow (LBBB-like, inferior axis) or
    # left ventricle (RBBB-like).
    pvc_dir = [_unit([0.25, 0.85, 0.55]), _unit([-0.35, 0.3, -0.85]),
               _unit([0.6, -0.6, -0.5])][rng.integers(3)]
    pvc_dir = _unit(pvc_dir + 0.25 * rng.standard_normal(3))
    h.pvc_d = _u(rng, 'qrs_pvc_ms') / 1000
    pvc_waves = _pvc_qrs(rng, h.pvc_d, pvc_dir, gain)
    h.tmpl = {0: (*_pad(waves), h.qd), 1: (*_pad(waves), h.qd),
              2: (*_pad(pvc_waves), h.pvc_d), 3: (*_pad(waves), h.qd)}

    # Repolarisation: T vector and ST plateau per beat kind.
    qrs_mean = sum(v for _, _, v in waves)
    t_amp = gain * rng.uniform(0.35, 0.7)
    h.t_norm = t_amp * (rot @ _unit([0.65, 0.45, -0.35] + 0.15 * rng.standard_normal(3)))
    h.st_norm = np.zeros(3)
    if h.qrs_type == 'lbbb':      # secondary, discordant ST-T
        h.t_norm = -rng.uniform(0.14, 0.22) * qrs_mean
        h.st_norm = -rng.uniform(0.02, 0.04) * qrs_mean
    elif h.qrs_type == 'rbbb':    # T opposite to the terminal right-ventricular wave
        h.t_norm = h.t_norm - 0.25 * waves[-1][2]
    h.t_pvc = -rng.uniform(0.3, 0.45) * sum(v for _, _, v in pvc_waves)
    h.st_pvc = -0.06 * sum(v for _, _, v in pvc_waves)

    h.p_sinus = [] if h.af else _sinus_p(rng, _rotation(rng, rng.normal(0, 10)), 1.0)
    h.p_ect = _ectopic_p(rng, 1.0, _unit(sum(v for _, _, v in h.p_sinus)) if h.p_sinus
                         else _unit([0.6, 0.7, 0.1]))
    h.pac_pr = max(0.10, h.pr * rng.uniform(0.8, 1.1))
    h.prem = _u(rng, 'pac_prematurity', h.bl)
    h.coupling = _u(rng, 'pvc_coupling')
    h.qtc = rng.uniform(0.38, 0.44)
    h.f_r = rng.uniform(0.15, 0.3)
    h.resp_ph = rng.uniform(0, 2 * np.pi)


def _ectopic_beats(rng, h, i):
    """The beat sequence with its planned PACs/PVCs (at least one of each
    labelled kind inside the record)."""
    ect_kinds = [k for c, k in (('PAC', 1), ('PVC', 2)) if c in h.cl]
    for _attempt in range(20):
        plan = _plan_ectopics(rng, h.dur_s, h.hr, ect_kinds, h.bl) if ect_kinds else {}
        if h.af:
            beats = _af_beats(rng, h.dur_s, h.hr, h.rr_cv, plan, h.coupling)
        else:
            beats = _sinus_beats(rng, h.dur_s, h.hr, h.rr_cv, h.pr, plan, (h.f_r, h.resp_ph),
                                 h.pac_pr, h.prem, h.coupling)
        inside = [b for b in beats if 0.15 < b[2] < h.dur_s - 0.3]
        if all(any(b[0] == k for b in inside) for k in ect_kinds):
            h.beats = beats
            return
    raise RuntimeError(f'record {i}: could not place ectopic beats in {h.dur_s:.1f} s')


def _probe(h, t_vec, st_vec, kind=None):
    """Clean 12-lead template (W, 12) of one beat of `kind` at the mean RR
    (sinus or AF by default), QRS onset at PRE_S."""
    mean_rr = 60.0 / h.hr
    if kind == 2:
        beat = [(2, np.nan, PRE_S + 0.05, mean_rr)]
    else:
        beat = [(3, np.nan, 1.0, mean_rr)] if h.af else [(0, 1.0 - h.pr, 1.0, mean_rr)]
    arrs, _ = _beat_arrays(beat, h.tmpl, h.p_sinus, h.p_ect, h.qtc, t_vec, st_vec,
                           np.ones(1))
    return _template_leads(arrs, 0)


def _st_t(rng, h, i):
    """ST: nonspecific small deviations, or the labelled ones solved exactly
    on the clean template so that the criterion holds at J + 60 ms. Sets
    h.t_vec, h.st_vec (per beat kind), h.st, h.axis, h.r_off, h.territory."""
    cl = h.cl
    st_label = 'STD' if 'STD' in cl else 'STE' if 'STE' in cl else None
    t_vec = {0: h.t_norm, 1: h.t_norm, 2: h.t_pvc, 3: h.t_norm}
    st_norm = h.st_norm

    def probe_st(stv):
        sv = {0: stv, 1: stv, 2: h.st_pvc, 3: stv}
        return _st_and_axis(_probe(h, t_vec, sv), h.qd)

    base_st, axis, _ = probe_st(st_norm)
    territory = ''
    if st_label:
        target = _u(rng, 'st_mv', h.bl)
        for _attempt in range(30):
            if st_label == 'STE':
                territory = list(TERRITORIES)[rng.integers(3)]
                leads, direction = TERRITORIES[territory]
                u = _unit(np.array(direction) + 0.15 * rng.standard_normal(3))
                sign = 1.0
            else:
                territory = list(STD_GROUPS)[rng.integers(3)]
                leads = STD_GROUPS[territory]
                u = -_unit(sum(LEAD_VECTORS[L[x]] for x in leads)
                           + 0.3 * rng.standard_normal(3))
                sign = -1.0
            p = LEAD_VECTORS @ u
            # Smallest amplitude that puts two contiguous leads of the group
            # at the target (the T wave's tail is already in base_st).
            need = {x: (sign * target - base_st[L[x]]) / p[L[x]] for x in leads
                    if sign * p[L[x]] > 0.05}
            pairs = [max(need[x], need[y]) for x, y in CONTIGUOUS if x in need and y in need]
            if not pairs:
                continue
            a = max(min(pairs), 0.0) * 1.001
            st = base_st + a * p
            dep, ele = st_criteria(st)
            if st_label == 'STE' and ele and not dep and st.min() < -0.05:
                break
            if st_label == 'STD' and dep and not ele:
                break
        else:
            raise RuntimeError(f'record {i}: could not place {st_label}')
        st_norm = st_norm + a * u
        # The ST segment runs into the T wave: tall T with elevation, flat or
        # inverted T with depression (unless that breaks the criterion).
        t_vec = {0: h.t_norm + a * u * (0.8 if st_label == 'STE' else 0.5), 1: None, 2: h.t_pvc}
        t_vec[1] = t_vec[3] = t_vec[0]
        dep, ele = st_criteria(probe_st(st_norm)[0])
        if (dep, ele) != (st_label == 'STD', st_label == 'STE'):
            t_vec = {0: h.t_norm, 1: h.t_norm, 2: h.t_pvc, 3: h.t_norm}
    else:
        # Nonspecific ST-T changes, sub-threshold (a look-alike when mimic).
        u = _unit(rng.standard_normal(3))
        p = LEAD_VECTORS @ u
        size = _u(rng, 'st_nonspecific_mv', h.mimic and h.qrs_type != 'lbbb')
        if h.qrs_type != 'lbbb':
            st_norm = st_norm + size / np.abs(p).max() * u
    st, axis, r_off = probe_st(st_norm)
    if h.qrs_type != 'lbbb' and not st_label:
        dep, ele = st_criteria(st)
        if dep or ele:   # T overlap at a fast rate: pull the ST back to the baseline
            st_norm = st_norm - np.linalg.lstsq(LEAD_VECTORS, st, rcond=None)[0] * 0.8
            st, axis, r_off = probe_st(st_norm)
    h.t_vec, h.st, h.axis, h.r_off, h.territory = t_vec, st, axis, r_off, territory
    h.st_vec = {0: st_norm, 1: st_norm, 2: h.st_pvc, 3: st_norm}


def _render_record(rng, h, noise_scale):
    """The beats rendered, AF waves and electrode noise added, the 12 leads
    derived and quantised. Sets h.sig, h.qt (per beat), SNRs, f waves."""
    n = h.n
    h.onsets = np.array([b[2] for b in h.beats])
    resp_gain = 1 + 0.06 * np.sin(2 * np.pi * h.f_r * h.onsets + h.resp_ph)
    arrs, h.qt = _beat_arrays(h.beats, h.tmpl, h.p_sinus, h.p_ect, h.qtc, h.t_vec,
                              h.st_vec, resp_gain)
    dip = _render(n, *arrs)
    h.f0 = h.f_amp = np.nan
    if h.af:
        h.f0 = _u(rng, 'f_wave_hz')
        h.f_amp = _u(rng, 'f_wave_mv')
        dip += _af_waves(rng, n, h.f0, h.f_amp)
    clean_e = _lin(dip, ELECTRODE_VECTORS)
    t = np.arange(n) / FS
    resp_wave = np.sin(2 * np.pi * h.f_r * t + h.resp_ph)
    noise_e, hf_e, h.noise_info = _noise(rng, n, noise_scale, resp_wave)
    clean = leads_from_electrodes(clean_e)
    noise = leads_from_electrodes(noise_e)
    leads = clean + noise if noise_scale > 0 else clean   # derivation is linear
    q = np.clip(np.round(leads * 1000), -32767, 32767).astype(np.int16)
    h.sig = q.astype(np.float32) / np.float32(1000)
    ps = float((clean ** 2).sum())
    pn = float((noise ** 2).sum()) * (noise_scale > 0)
    h.snr_db = 10 * np.log10(ps / pn) if pn > 0 else np.inf
    # The same without baseline wander (what a 0.5 Hz high-pass leaves).
    pn = float((leads_from_electrodes(hf_e) ** 2).sum()) * (noise_scale > 0)
    h.snr_hf_db = 10 * np.log10(ps / pn) if pn > 0 else np.inf


def _frontal_axis(area):
    """Frontal-plane axis (degrees) from net areas (12,) in I and aVF."""
    return float(np.degrees(np.arctan2(2 * area[L['aVF']] / np.sqrt(3), area[L['I']])))


def _wave_axes(h):
    """True P and T frontal axes (degrees) of the clean conducted template,
    from net areas in I and aVF against the PR baseline, as _st_and_axis
    gives the QRS axis: P over its wave, T from QRS offset to its end."""
    lt = _probe(h, h.t_vec, h.st_vec)
    on = int(PRE_S * FS)
    base = lt[on - 8:on - 2].mean(axis=0)
    p_axis = np.nan
    if not h.af:
        p0 = on - round(h.pr * FS)
        p_axis = _frontal_axis((lt[p0:on - 8] - base).sum(axis=0))
    qt = h.qtc * (60.0 / h.hr) ** (1 / 3) + max(h.qd - 0.095, 0)
    t_area = (lt[on + round(h.qd * FS):on + round(qt * FS)] - base).sum(axis=0)
    return p_axis, _frontal_axis(t_area)


def _annotate(h):
    """R peaks (maximum of the spatial magnitude of each beat kind's clean
    template), symbols and the ground truth."""
    n, onsets = h.n, h.onsets
    kinds = np.array([b[0] for b in h.beats])
    r_offsets = {0: h.r_off, 1: h.r_off, 3: h.r_off}
    if 2 in kinds:
        lt = _probe(h, h.t_vec, h.st_vec, kind=2)
        on = int(PRE_S * FS)
        r_offsets[2] = int(np.argmax(np.linalg.norm(
            lt[on:on + int(h.pvc_d * FS)] - lt[on - 8:on - 2].mean(0), axis=1)))
    r = np.array([round(o * FS) + r_offsets[k] for o, k in zip(onsets, kinds)])
    keep = (r >= 0) & (r < n)
    sym_of = {0: 'N', 1: 'A', 2: 'V', 3: 'N'}
    rr_in = np.diff(r[keep]) / FS
    p_on = np.array([b[1] for b in h.beats])
    cl = h.cl
    p_axis, t_axis = _wave_axes(h)
    dominant = kinds[keep] == (3 if h.af else 0)
    truth = {
        'rhythm': 'af' if h.af else 'sinus',
        'hr_bpm': float(60 / rr_in.mean()) if len(rr_in) else float(h.hr),
        'rr_cv': float(rr_in[kinds[keep][1:] != 2].std() / rr_in.mean()) if len(rr_in) > 2 else 0.0,
        'sinus_rr_cv': np.nan if h.af else h.rr_cv,   # of the sinus rhythm, ectopics aside
        'pr_ms': np.nan if h.af else h.pr * 1000,
        'pac_pr_ms': h.pac_pr * 1000 if 'PAC' in cl else np.nan,
        'qrs_ms': h.qd * 1000, 'qrs_type': h.qrs_type, 'slurred_qrs': bool(h.slur),
        'pvc_qrs_ms': h.pvc_d * 1000 if 'PVC' in cl else np.nan,
        'qtc_ms': h.qtc * 1000,
        # QT of the conducted beats (QRS onset to T end; it follows each
        # beat's RR), median over the record: what a median beat shows.
        'qt_ms': float(np.median(h.qt[keep][dominant]) * 1000) if dominant.any() else np.nan,
        'axis_deg': h.axis, 'p_axis_deg': p_axis, 't_axis_deg': t_axis,
        'st_mv': h.st.astype(np.float64), 'st_territory': h.territory,
        'pac_prematurity': h.prem if 'PAC' in cl else np.nan,
        'pvc_coupling': h.coupling if 'PVC' in cl else np.nan,
        'f_wave_hz': h.f0, 'f_wave_mv': h.f_amp,
        'snr_db': float(h.snr_db), 'snr_hf_db': float(h.snr_hf_db), 'noise': h.noise_info,
        'borderline': bool(h.bl),
        'mimic': bool(h.mimic), 'duration_s': n / FS,
        # Per beat (inside the record), aligned with `beats`/`symbols`:
        'beat_kind': kinds[keep],
        'beat_qrs_onset': np.round(onsets[keep] * FS).astype(np.int64),
        'beat_p_onset': p_on[keep] * FS,   # float samples, nan without a P wave
        'beat_qrs_ms': np.where(kinds[keep] == 2, h.pvc_d, h.qd) * 1000,
        'beat_qt_ms': h.qt[keep] * 1000,
    }
    return r[keep].astype(np.int64), [sym_of[k] for k in kinds[keep]], truth


def make_record(seed, i, duration=None, classes=None, noise_scale=1.0, borderline=0.15):
    """Record i of the dataset `seed` (depends on nothing else).

    Returns dict(signal float32 (n, 12) mV quantised to 1 uV, fs, age, sex,
    classes, dx, beats (int64 R-peak samples), symbols ('N'/'A'/'V'), truth).
    `classes` forces a label set, `duration` the length in seconds,
    `noise_scale=0` gives the noise-free signal (same heart, same beats).
    """
    rng = np.random.default_rng([int(seed), int(i)])
    if classes is None:
        classes = list(LABEL_SETS[rng.choice(len(LABEL_SETS), p=LABEL_WEIGHTS)])
    classes = check_classes(classes)
    h = _draw_patient(rng, set(classes), duration, borderline)
    _conducted_beat(rng, h)
    _ectopic_beats(rng, h, i)
    _st_t(rng, h, i)
    _render_record(rng, h, noise_scale)
    beats, symbols, truth = _annotate(h)
    return {'signal': h.sig, 'fs': FS, 'age': h.age, 'sex': h.sex, 'classes': classes,
            'dx': [CLASS_TO_SNOMED[c] for c in classes],
            'beats': beats, 'symbols': symbols, 'truth': truth}


# --------------------------------------------------------------------------
# Files.

def checksum(column):
    """WFDB 16-bit checksum of one signal: sum of samples, wrapped to int16."""
    s = int(np.asarray(column, dtype=np.int64).sum())
    return (s + 32768) % 65536 - 32768


def header_text(name, digital, age, sex, dx):
    """The .hea of a CPSC2018 record in the PhysioNet/CinC 2020 format."""
    n = len(digital)
    lines = [f'{name} 12 {FS} {n}']
    for k, lead in enumerate(LEADS):
        lines.append(f'{name}.mat 16+24 1000/mV 16 0 {int(digital[0, k])} '
                     f'{checksum(digital[:, k])} 0 {lead}')
    lines += [f'# Age: {age}', f'# Sex: {sex}', f'# Dx: {",".join(dx)}',
              '# Rx: Unknown', '# Hx: Unknown', '# Sx: Unknown']
    return '\n'.join(lines) + '\n'


def mat_bytes(digital):
    """MATLAB v4 file with the int16 matrix `val` (12, n): a 20-byte header
    (type 30 = little-endian int16 full matrix, rows, cols, imag, name length)
    and the name 'val\\0' -> the samples start at byte 24, interleaved by
    sample (MATLAB is column-major), which is WFDB format 16 at offset 24."""
    n = len(digital)
    head = np.array([30, 12, n, 0, 4], dtype='<i4').tobytes() + b'val\x00'
    return head + np.ascontiguousarray(digital, dtype='<i2').tobytes()


# MIT annotation format (WFDB): 16-bit words, anntyp << 10 | time step.
ANNTYP = {'N': 1, 'V': 5, 'A': 8}
# What wfdb.wrann(..., fs=500) writes first: a NOTE carrying the aux string
# '## time resolution: 500', then a SKIP back to sample 0.
ATR_PREFIX = (bytes([0, 22 << 2, 23, 63 << 2]) + b'## time resolution: 500\x00'
              + bytes([0, 59 << 2, 255, 255, 255, 255, 1, 0]))


def atr_bytes(samples, symbols):
    """The bytes wfdb.wrann(name, 'atr', samples, symbols, fs=500) writes,
    without its pandas lookups (which take most of a record's write time).
    Steps over 1023 samples go in a SKIP word followed by a 32-bit interval
    (high 16 bits first)."""
    out = bytearray(ATR_PREFIX)
    prev = 0
    for s, sym in zip(samples, symbols):
        d = int(s) - prev
        prev = int(s)
        if d > 1023:
            out += bytes([0, 59 << 2, (d >> 16) & 255, (d >> 24) & 255, d & 255, (d >> 8) & 255])
            d = 0
        word = (ANNTYP[sym] << 10) | d
        out += bytes([word & 255, word >> 8])
    return bytes(out + b'\x00\x00')


def write_record(rec, out_dir, name):
    """rec from make_record -> out_dir/name.{mat,atr,hea}. Each file is
    written under a temporary name and renamed; the header, which makes the
    record visible to readers, comes last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digital = np.round(rec['signal'].astype(np.float64) * 1000).astype(np.int16)
    with atomic_path(out_dir / f'{name}.mat') as tmp:
        Path(tmp).write_bytes(mat_bytes(digital))
    with atomic_path(out_dir / f'{name}.atr') as tmp:
        Path(tmp).write_bytes(atr_bytes(rec['beats'], rec['symbols']))
    with atomic_path(out_dir / f'{name}.hea') as tmp:
        Path(tmp).write_text(header_text(name, digital, rec['age'], rec['sex'], rec['dx']))


def record_name(i):
    return f'A{i + 1:04d}'


def _complete(out, name):
    return all((out / f'{name}.{ext}').exists() for ext in ('mat', 'atr', 'hea'))


# truth.csv: one row per record, the global measurements the generator
# built in (what a cart should print for the record), so that a measurement
# module can be checked without re-deriving them. Empty cell = not defined.
TRUTH_COLUMNS = ['record', 'classes', 'rhythm', 'hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_ms',
                 'p_axis', 'qrs_axis', 't_axis', 'pvc_qrs_ms', 'snr_db']


def truth_row(name, rec):
    """rec from make_record -> its truth.csv row (dict of str). PR is P onset
    to QRS onset, QRS its onset to offset (the waves are built inside that
    span), QT QRS onset to T end (2.6 sigma after the T peak), median over
    the conducted beats; qtc_ms is the generator's Fridericia QTc (before the
    broad-QRS delay); axes are frontal, from net areas in I and aVF."""
    tr = rec['truth']
    vals = {'hr': tr['hr_bpm'], 'pr_ms': tr['pr_ms'], 'qrs_ms': tr['qrs_ms'],
            'qt_ms': tr['qt_ms'], 'qtc_ms': tr['qtc_ms'], 'p_axis': tr['p_axis_deg'],
            'qrs_axis': tr['axis_deg'], 't_axis': tr['t_axis_deg'],
            'pvc_qrs_ms': tr['pvc_qrs_ms'], 'snr_db': tr['snr_db']}
    row = {'record': name, 'classes': ' '.join(rec['classes']), 'rhythm': tr['rhythm']}
    row.update({k: '' if not np.isfinite(v) else f'{v:.2f}' for k, v in vals.items()})
    return row


def read_truth(folder):
    """folder/truth.csv -> {record name: row dict}; {} when absent."""
    import csv
    path = Path(folder) / 'truth.csv'
    if not path.exists():
        return {}
    with open(path, newline='') as f:
        return {r['record']: r for r in csv.DictReader(f)}


def _write_truth(out, rows):
    import csv
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, TRUTH_COLUMNS, lineterminator='\n')
    w.writeheader()
    w.writerows(rows[k] for k in sorted(rows))
    with atomic_path(Path(out) / 'truth.csv') as tmp:
        Path(tmp).write_text(buf.getvalue())


def _job(job):
    out, seed, i, duration, noise_scale, borderline, skip = job
    name = record_name(i)
    if skip and _complete(Path(out), name):
        classes, row = None, None
    else:
        rec = make_record(seed, i, duration, noise_scale=noise_scale, borderline=borderline)
        write_record(rec, out, name)
        classes, row = rec['classes'], truth_row(name, rec)
    return i, classes, row


# What synthetic.json says of the folder's records, read by preprocess.py
# (data_provenance): they are made up, and a model trained on them is a demo.
PROVENANCE = {'provenance': 'synthetic'}


# The generator's version: records written by another are rewritten, not reused.
GENERATOR = 'synthetic.py v1'


def write_dataset(out, n, seed, workers=None, duration=None, noise_scale=1.0,
                  borderline=0.15, progress=True):
    """Write records A0001 .. A{n} into `out`; returns {class: count} of the
    records written in this call. Records already complete under the same
    arguments (synthetic.json) are skipped; other arguments overwrite them."""
    from tqdm import tqdm
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    args = {'seed': int(seed), 'duration': duration, 'noise_scale': float(noise_scale),
            'borderline': float(borderline), 'generator': GENERATOR}
    manifest = out / 'synthetic.json'
    skip = False
    if manifest.exists():
        old = json.loads(manifest.read_text())
        skip = {k: old.get(k) for k in args} == args
        for j in range(n, int(old.get('n', 0))):   # a smaller rerun: drop our extras
            for ext in ('hea', 'mat', 'atr'):
                (out / f'{record_name(j)}.{ext}').unlink(missing_ok=True)
    atomic_write_json({**args, 'n': int(n), 'complete': False, **PROVENANCE}, manifest)
    workers = workers or os.cpu_count() or 1
    # A record is skipped only when truth.csv has its row (datasets written
    # before truth.csv existed get their records rewritten, identically).
    old_truth = read_truth(out) if skip else {}
    jobs = [(str(out), seed, i, duration, noise_scale, borderline,
             skip and record_name(i) in old_truth) for i in range(n)]
    rows = {}
    counts = dict.fromkeys(CLASSES, 0)
    skipped = 0
    bar = tqdm(total=n, unit='rec', disable=not progress, file=sys.stderr)
    if workers == 1:
        results = map(_job, jobs)
        pool = None
    else:
        import multiprocessing as mp
        pool = mp.get_context('fork' if sys.platform == 'linux' else 'spawn').Pool(workers)
        results = pool.imap_unordered(_job, jobs, chunksize=8)
    try:
        for i, classes, row in results:
            if classes is None:
                skipped += 1
                rows[record_name(i)] = old_truth[record_name(i)]
            else:
                rows[record_name(i)] = row
                for c in classes:
                    counts[c] += 1
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    _write_truth(out, rows)
    atomic_write_json({**args, 'n': int(n), 'complete': True, **PROVENANCE}, manifest)
    counts['skipped'] = skipped
    return counts


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/SYNTH', metavar='DIR',
                        help='output folder (default: data/SYNTH)')
    parser.add_argument('--n', default=1000, type=int, metavar='N',
                        help='number of records (default: 1000)')
    parser.add_argument('--seed', default=0, type=int,
                        help='dataset seed; record i depends only on (seed, i) (default: 0)')
    parser.add_argument('--workers', default=None, type=int, metavar='N',
                        help='processes (default: os.cpu_count())')
    parser.add_argument('--duration', default=None, type=float, metavar='S',
                        help='force every record to S seconds (default: CPSC2018-like 6-60 s)')
    parser.add_argument('--noise-scale', default=1.0, type=float, metavar='X',
                        help='multiplies every noise source; 0 = clean (default: 1.0)')
    parser.add_argument('--borderline', default=0.15, type=float, metavar='P',
                        help='probability of near-threshold effects and sub-threshold '
                             'look-alikes per record (default: 0.15)')
    return parser


def main():
    args = get_args_parser().parse_args()
    if args.n < 1 or args.n > 9999:
        raise SystemExit(f'error: --n must be 1..9999 (names A0001..A9999), got {args.n}')
    print(f'synthetic: {args.n} records -> {args.out} (seed {args.seed}, '
          f'noise scale {args.noise_scale}, borderline {args.borderline})', flush=True)
    t0 = time.perf_counter()
    counts = write_dataset(args.out, args.n, args.seed, args.workers, args.duration,
                           args.noise_scale, args.borderline)
    dt = time.perf_counter() - t0
    skipped = counts.pop('skipped')
    print(f'wrote {args.n - skipped} records ({skipped} already there) in {dt:.1f} s')
    if skipped < args.n:
        print('class counts: ' + ', '.join(f'{c} {k}' for c, k in counts.items()))


if __name__ == '__main__':
    main()
