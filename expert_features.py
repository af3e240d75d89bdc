"""Expert features of every record for the classical baselines (baselines.py).

    python expert_features.py --data-dir data/CPSC              # both cores
    python expert_features.py --data-dir data/CPSC --workers 1 --force

Reads the signal cache of preprocess.py (cache/signals.npy: int16 µV, 500 Hz,
12 leads; no .mat is parsed again) and writes DATA_DIR/features/features.csv
(index patient_id, one column per feature) with a sidecar features.json that
records the feature configuration, its hash and a fingerprint of the cache.
A later run reuses the CSV when both match and recomputes it when either
changed (or with --force).

Features, each with an explicit column name:
  per lead (12 x 53): signal statistics  <lead>_{p5,p25,p50,p75,p95,mean,sd,var}
      (mV; sd/var with ddof=0), and for each band of a db10 level-4 wavelet
      decomposition (pywt.wavedec: cA4, cD4, cD3, cD2, cD1) its Shannon
      entropy <lead>_<band>_entropy and the same eight statistics
      <lead>_<band>_<stat>, following the study (Zhang et al., iScience 2021).
  rhythm (13), from the R peaks of QRSDetectorOffline (Pan & Tompkins 1985):
      n_beats, hr (bpm, from the mean RR), rr_mean, rr_sd, rr_min, rr_max (s),
      rr_rmssd (s), rr_pnn50 (share of successive differences > 50 ms),
      rr_cv (sd/mean), rr_nrmssd (rmssd/mean), rr_sampen (sample entropy of
      the RR series, m=1, r=max(0.2 sd, 20 ms): irregularity, high in AF), rr_ectopy
      (share of RR intervals more than 20 % off the median: premature beats)
      and rr_quality (the detector's quality score of the lead used).
  measurements (8), from measure.py's median beat: pr_ms, qrs_ms, qt_ms,
      qtc_bazett_ms, qtc_fridericia_ms, p_axis, qrs_axis, t_axis (NaN where
      the record cannot support them, e.g. PR in AF; baselines.py imputes).

Wavelet entropy: the study computes scipy.stats.entropy of the value counts
of each band; on continuous values that is log(n) for almost every record, so
we use the Shannon entropy of the band's normalised energy, -sum p log p with
p = c^2 / sum c^2 (nats), the usual wavelet entropy.

Which beats the rhythm comes from: the fused beats of all 12 leads
(QRSDetectorOffline.detect_multilead): every lead is detected on its own and
the detections vote within 100 ms, each lead weighted by its detection
quality, with an RR search-back for beats that only a few leads see (a PVC
along an axis most leads see faintly). A lead with NaN samples or a flat
line gets no vote. On 40 synthetic 10-s records at noise x1, x2 and x4 this
gave Se 100 / 99.8 / 99.8 % and +P 100 % against the annotations (F1 100 /
99.9 / 99.9 %), where the best single lead, chosen after the fact, gave F1
99.7 / 99.7 / 99.3 % and lead II alone Se 99.3 / 96.4 / 92.0 %
(`python bench.py --only qrs`). rr_quality is the weighted mean quality of
the voting leads. With fewer than 4 beats the rhythm features are NaN (the
study's code raised and stopped the run); baselines.py imputes them.
"""
import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pywt
from tqdm import tqdm

import measure
from QRSDetectorOffline import detect_multilead
from records import FS, LEADS, to_mV
from records.cache import load_cache
from utils import atomic_to_csv, atomic_write_json

# Everything that changes the numbers; its hash keys the cached CSV. Bump
# 'version' when the code computing a feature changes.
CONFIG = {
    'version': 5,
    'fs': FS,
    'leads': LEADS,
    'percentiles': [5, 25, 50, 75, 95],
    'wavelet': 'db10',
    'level': 4,
    'entropy': 'shannon-energy',
    'rhythm_leads': LEADS,
    'rhythm_fusion': 'quality-weighted vote',
    'fusion_tolerance_s': 0.1,
    'min_beats': 4,
    'pnn_ms': 50,
    'ectopy_fraction': 0.2,
    'sampen_m': 1,
    'sampen_r': 0.2,
    'sampen_min_tol_s': 0.02,
    'measurements': 'measure.py median beat',
}
STATS = [f"p{q}" for q in CONFIG['percentiles']] + ['mean', 'sd', 'var']
BANDS = ['cA4', 'cD4', 'cD3', 'cD2', 'cD1']
RHYTHM = ['n_beats', 'hr', 'rr_mean', 'rr_sd', 'rr_min', 'rr_max', 'rr_rmssd',
          'rr_pnn50', 'rr_cv', 'rr_nrmssd', 'rr_sampen', 'rr_ectopy', 'rr_quality']
# Global measurements (measure.py): the intervals that define IAVB (PR) and
# the bundle branch blocks (QRS), which the study's features lacked. Not its
# heart rate: RHYTHM has one, from every beat.
MEASURES = [k for k in measure.KEYS if k != 'hr']


def feature_names(config=CONFIG):
    """Column names in the order record_features returns the values."""
    per_lead = STATS + [f'{b}_{s}' for b in BANDS for s in ['entropy'] + STATS]
    return [f'{lead}_{f}' for lead in config['leads'] for f in per_lead] + RHYTHM + MEASURES


def measurement_features(x, fs=FS, config=CONFIG):
    """(n, 12) mV -> [MEASURES values], NaN where measure.py gives none.
    The cache front-pads short records with zeros: those rows are left out."""
    nonzero = np.flatnonzero(np.any(x != 0, axis=1))
    x = x[nonzero[0]:] if len(nonzero) else x[:0]
    if len(x) < 2 * fs:
        return [np.nan] * len(MEASURES)
    m = measure.measure(x.T, fs, config['leads'])
    return [np.nan if m[k] is None else m[k] for k in MEASURES]


def _stats(x, config=CONFIG):
    """(n, leads) -> (8, leads): the five percentiles, mean, sd, var."""
    p = np.percentile(x, config['percentiles'], axis=0)
    return np.vstack([p, x.mean(axis=0), x.std(axis=0), x.var(axis=0)])


def _energy_entropy(c):
    """Shannon entropy (nats) of each column's normalised energy; NaN if 0."""
    e = c.astype(np.float64) ** 2
    total = e.sum(axis=0)
    with np.errstate(divide='ignore', invalid='ignore'):
        p = e / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=0)
    return np.where(total > 0, h, np.nan)


def lead_features(x, config=CONFIG):
    """(n, leads) mV -> (leads, 53) statistics and wavelet features."""
    if len(x) == 0:
        return np.full((x.shape[1], len(STATS) * (1 + len(BANDS)) + len(BANDS)), np.nan)
    with warnings.catch_warnings():
        # Records shorter than ~2 s are too short for level 4; pywt still
        # decomposes them (with boundary effects) and says so once per call.
        warnings.simplefilter('ignore', UserWarning)
        # Leads as contiguous rows: dwt along the last axis is ~2x faster.
        coeffs = pywt.wavedec(np.ascontiguousarray(x.T), config['wavelet'],
                              level=config['level'], axis=-1)
    blocks = [_stats(x, config)]
    for c in coeffs:  # cA4, cD4, cD3, cD2, cD1
        blocks.append(_energy_entropy(c.T)[None, :])
        blocks.append(_stats(c.T, config))
    return np.vstack(blocks).T


def sample_entropy(x, m=1, r=0.2, min_tol=0.02):
    """Sample entropy (Richman & Moorman 2000) of a short RR series (s):
    tolerance max(r * sd, min_tol), Chebyshev distance. The 20 ms floor keeps
    a regular rhythm (sd of a few ms, RR quantised to 2 ms) at ~0 instead of
    undefined; with no match, the bound ln(pairs) (maximally irregular)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < m + 2:
        return np.nan
    tol = max(r * x.std(), min_tol)
    # Templates of length m and m+1 starting at the same n-m points.
    emb = np.lib.stride_tricks.sliding_window_view(x, m + 1)[: n - m]
    d_m = np.abs(emb[:, None, :m] - emb[None, :, :m]).max(axis=2)
    d_m1 = np.maximum(d_m, np.abs(emb[:, None, m] - emb[None, :, m]))
    iu = np.triu_indices(len(emb), k=1)
    b = np.count_nonzero(d_m[iu] <= tol) or len(iu[0])
    a = np.count_nonzero(d_m1[iu] <= tol) or 1
    return float(-np.log(a / b))


def rhythm_features(peaks, fs, quality, config=CONFIG):
    """RR statistics of one lead's R peaks (dict keyed by RHYTHM)."""
    out = dict.fromkeys(RHYTHM, np.nan)
    out['n_beats'] = float(len(peaks))
    if len(peaks) < config['min_beats']:
        return out
    rr = np.diff(peaks) / fs
    d = np.diff(rr)
    mean = rr.mean()
    rmssd = float(np.sqrt(np.mean(d ** 2)))
    out.update(
        hr=60.0 / mean, rr_mean=mean, rr_sd=rr.std(), rr_min=rr.min(), rr_max=rr.max(),
        rr_rmssd=rmssd, rr_pnn50=float(np.mean(np.abs(d) > config['pnn_ms'] / 1000)),
        rr_cv=rr.std() / mean, rr_nrmssd=rmssd / mean,
        rr_sampen=sample_entropy(rr, config['sampen_m'], config['sampen_r'],
                                 config['sampen_min_tol_s']),
        rr_ectopy=float(np.mean(np.abs(rr / np.median(rr) - 1) > config['ectopy_fraction'])),
        rr_quality=quality)
    return out


def rhythm_peaks(x, fs=FS, config=CONFIG):
    """R peaks the rhythm features use (see the module docstring) ->
    (peaks, quality, source): source names the fused leads ('12 leads') or
    is None when the fusion found fewer than min_beats beats (peaks are then
    what it found, for the count)."""
    cols = [config['leads'].index(lead) for lead in config['rhythm_leads']]
    try:
        peaks, quality = detect_multilead(x[:, cols], fs,
                                          tolerance=config['fusion_tolerance_s'])
    except ValueError:  # too low a sampling rate or the like: no rhythm
        peaks, quality = np.zeros(0, np.int64), 0.0
    if len(peaks) < config['min_beats']:
        return peaks, 0.0, None
    return peaks, quality, f'{len(cols)} leads'


def record_features(signal_mV, fs=FS, config=CONFIG):
    """(n, 12) float mV at fs -> 1-D array in feature_names() order."""
    x = np.asarray(signal_mV, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(config['leads']):
        raise ValueError(f'expected (n, {len(config["leads"])}) samples x leads, got {x.shape}')
    per_lead = lead_features(x, config).ravel()
    peaks, quality, source = rhythm_peaks(x, fs, config)
    if source is None:  # too few beats in every lead: NaN rhythm, but say how many
        rhythm = dict.fromkeys(RHYTHM, np.nan)
        rhythm['n_beats'] = float(len(peaks))
    else:
        rhythm = rhythm_features(peaks, fs, quality, config)
    return np.concatenate([per_lead, [rhythm[k] for k in RHYTHM],
                           measurement_features(x, fs, config)])


# --------------------------------------------------------------------------
# A whole dataset, in a process pool, cached.

_WORKER = {}


def _init_worker(data_dir):
    _WORKER['signals'], _ = load_cache(data_dir)


def _features_of_chunk(rows):
    """rows: [(patient_id, offset, length)] -> (matrix, error lines)."""
    signals = _WORKER['signals']
    out = np.full((len(rows), len(feature_names())), np.nan)
    errors = []
    for i, (pid, offset, length) in enumerate(rows):
        try:
            x = to_mV(signals[offset:offset + length])  # the cache's int16 µV, as the model's
            out[i] = record_features(x, FS)
        except Exception as e:  # noqa: BLE001 (one bad record must not stop the run)
            errors.append(f'{pid}: {type(e).__name__}: {e}')
    return out, errors


def config_hash(config=CONFIG):
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def cache_fingerprint(data_dir):
    """Changes whenever preprocess.py rewrites the cache with other content:
    hash of index.csv, meta.json, the array's shape and a strided sample of
    its rows (hashing all of CPSC's 2.5 GB would take longer than the work)."""
    signals, _ = load_cache(data_dir)
    h = hashlib.sha256()
    for name in ('index.csv', 'meta.json'):
        path = Path(data_dir) / 'cache' / name
        if path.exists():
            h.update(path.read_bytes())
    h.update(str(signals.shape).encode())
    step = max(1, len(signals) // 4096)
    h.update(np.ascontiguousarray(signals[::step]).tobytes())
    return h.hexdigest()[:16]


def features_path(data_dir):
    return Path(data_dir) / 'features' / 'features.csv'


def extract_dataset(data_dir, workers=None, force=False, strict=False, quiet=False):
    """Features of every record in DATA_DIR's cache as a DataFrame indexed by
    patient_id; reads DATA_DIR/features/features.csv when its configuration
    and cache fingerprint match, else computes and writes it (atomically)."""
    path = features_path(data_dir)
    sidecar = path.with_suffix('.json')
    key = {'config_hash': config_hash(), 'cache_fingerprint': cache_fingerprint(data_dir)}
    if not force and path.exists() and sidecar.exists():
        meta = json.loads(sidecar.read_text())
        if all(meta.get(k) == v for k, v in key.items()):
            if not quiet:
                print(f'features: reusing {path} ({meta.get("n_records")} records)')
            return pd.read_csv(path, index_col='patient_id', dtype={'patient_id': str})

    _, index = load_cache(data_dir)
    rows = list(zip(index['patient_id'].astype(str), index['offset'].astype(int),
                    index['length'].astype(int), strict=True))
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(32, len(rows) // (4 * workers) or 1))
    chunks = [rows[i:i + chunk] for i in range(0, len(rows), chunk)]
    t0 = time.perf_counter()
    bar = tqdm(total=len(rows), desc='features', unit='rec', disable=quiet)
    results, errors = [], []
    if workers == 1:
        _init_worker(data_dir)
        mapped = map(_features_of_chunk, chunks)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(str(data_dir),))
        mapped = pool.map(_features_of_chunk, chunks)  # ordered, lazily consumed
    try:
        for (mat, errs), rows_ in zip(mapped, chunks, strict=True):
            results.append(mat)
            for line in errs:
                tqdm.write(f'warning: {line}; its features are NaN', file=sys.stderr)
            errors += errs
            bar.update(len(rows_))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if errors and strict:
        raise SystemExit(f'error: {len(errors)} records failed (first: {errors[0]}); '
                         'rerun without --strict to keep them as NaN rows')
    df = pd.DataFrame(np.vstack(results) if results else np.zeros((0, len(feature_names()))),
                      index=pd.Index([r[0] for r in rows], name='patient_id'),
                      columns=feature_names())
    # Written with 7 significant digits (CPSC: ~50 MB instead of ~90 MB) and
    # read back, so a fresh run and a cached run give the same numbers.
    atomic_to_csv(df, path, float_format='%.7g')
    atomic_write_json({**key, 'config': CONFIG, 'n_records': len(df),
                       'n_features': df.shape[1], 'errors': errors,
                       'seconds': round(time.perf_counter() - t0, 1)}, sidecar)
    if not quiet:
        print(f'features: {len(df)} records x {df.shape[1]} features in '
              f'{time.perf_counter() - t0:.1f} s -> {path}')
    return pd.read_csv(path, index_col='patient_id', dtype={'patient_id': str})


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-dir', default='data/CPSC', metavar='DIR',
                        help='folder with the cache of preprocess.py (default: data/CPSC)')
    parser.add_argument('--workers', default=None, type=int, metavar='N',
                        help='processes (default: all cores, os.cpu_count())')
    parser.add_argument('--force', action='store_true',
                        help='recompute even when the cached features.csv matches')
    parser.add_argument('--strict', action='store_true',
                        help='stop when a record fails instead of keeping a NaN row')
    args = parser.parse_args()
    df = extract_dataset(args.data_dir, workers=args.workers, force=args.force,
                         strict=args.strict)
    n_nan = int(df['hr'].isna().sum())
    print(f'{len(df)} records, {df.shape[1]} features; rhythm features NaN for {n_nan} '
          f'records (too few beats); median HR {df["hr"].median():.1f} bpm')


if __name__ == '__main__':
    main()
