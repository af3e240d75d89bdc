"""Speed and memory, `python bench.py --only records`: preprocess.py and
predict.py --records on a long Holter record against reading it whole, and
the hand-written readers against wfdb.rdrecord(sampfrom, sampto)."""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import wfdb
from scipy.signal import resample_poly

import records
import synthetic
from benches.common import run_measured, timeit
from records import LEADS
from records import read as reading
from records.wfdb import _wfdb_read
from resnet import build_model
from utils import CLASSES


def _write_holter(folder, name, hours, fs=1000, nleads=12, chunk_s=600):
    """A long 12-lead record in WFDB format 16, written chunk by chunk (one
    ECG-like 10-min block, repeated), so the bench itself stays bounded."""
    n = int(hours * 3600 * fs)
    rng = np.random.default_rng(0)
    t = np.arange(chunk_s * fs) / fs
    beats = np.exp(-((t % 0.8 - 0.3) / 0.012) ** 2)
    block = (beats[:, None] * rng.uniform(0.5, 1.5, nleads) + 0.1 * np.sin(t[:, None])
             + 0.01 * rng.standard_normal((len(t), nleads)))
    block = np.rint(block * 1000).astype('<i2')  # 1000 units per mV
    with open(folder / f'{name}.dat', 'wb') as f:
        for start in range(0, n, len(block)):
            f.write(block[:n - start].tobytes())
    lines = [f'{name} {nleads} {fs} {n}']
    lines += [f'{name}.dat 16 1000/mV 16 0 {int(block[0, j])} 0 0 {LEADS[j]}'
              for j in range(nleads)]
    (folder / f'{name}.hea').write_text('\n'.join(lines + ['# Age: 60', '# Sex: Male',
                                                          '# Dx: 426783006']) + '\n')
    return folder / f'{name}.hea'


def _records_holter(tmp, hours):
    """preprocess.py and predict.py --records on a long record, each in a fresh
    interpreter, and predict.py on a 10-s record (its own floor) -> dict."""
    (tmp / 'HOLTER').mkdir()
    t0 = time.perf_counter()
    hea = _write_holter(tmp / 'HOLTER', 'H24', hours)
    size = hea.with_suffix('.dat').stat().st_size / 2**30
    print(f'wrote a {hours:g}-h 12-lead 1 kHz record ({size:.2f} GiB) in '
          f'{time.perf_counter() - t0:.1f} s')
    pre_s, pre_mb, _ = run_measured(['preprocess.py', '--data-dir', str(tmp / 'HOLTER'),
                                     '--workers', '1'])
    torch.save({'model': build_model('resnet34', 12).state_dict(), 'leads': LEADS,
                'classes': CLASSES, 'arch': 'resnet34', 'window': 15000}, tmp / 'best.pt')
    pred_s, pred_mb, _ = run_measured(['predict.py', '--model-path', str(tmp / 'best.pt'),
                                       '--device', 'cpu', '--records', str(hea),
                                       '--out', str(tmp / 'p.csv')])
    # predict.py's own floor: the same command on a 10-s record.
    (tmp / 'SHORT').mkdir()
    short = _write_holter(tmp / 'SHORT', 'S10', 10 / 3600, chunk_s=10)
    floor_s, floor_mb, _ = run_measured(['predict.py', '--model-path', str(tmp / 'best.pt'),
                                         '--device', 'cpu', '--records', str(short),
                                         '--out', str(tmp / 'q.csv')])
    return dict(hours=hours, file_gib=size, preprocess_s=pre_s, preprocess_rss_mib=pre_mb,
                predict_s=pred_s, predict_rss_mib=pred_mb, predict_10s_record_s=floor_s,
                predict_10s_record_rss_mib=floor_mb)


def _records_whole_read(half, hours):
    """The straightforward way: the whole record read in float64, resampled,
    then cut; measured on the 30-min record `half` and scaled to `hours`
    -> (seconds, MiB)."""
    code = ('import wfdb, numpy as np\n'
            'from scipy.signal import resample_poly\n'
            f'sig = wfdb.rdrecord({str(half.with_suffix(""))!r}).p_signal\n'
            'x = resample_poly(sig, 1, 2, axis=0)[-15000:]')
    seconds, mib, _ = run_measured(['-c', code], threads=None)
    return seconds * hours / 0.5, mib * hours / 0.5


def _records_tail_error(half):
    """prepare() (tail only) vs the straightforward whole read on the 30-min
    record: the largest difference in mV (they should be equal)."""
    x = records.prepare(records.read_record(half), LEADS).x
    full = resample_poly(wfdb.rdrecord(str(half.with_suffix(''))).p_signal, 1, 2, axis=0)
    return float(np.abs(x - records.to_mV(records.quantise(full[-15000:].T))).max())


def _records_readers(tmp, half):
    """Hand-written readers vs wfdb.rdrecord(sampfrom, sampto), same rows:
    read_record + prepare on 8 CPSC-like .mat records and on the last 30 s of
    the 30-min format-16 record `half` -> dict (ms)."""
    synthetic.write_dataset(tmp / 'MAT', 8, seed=0, workers=1, progress=False)
    mats = sorted((tmp / 'MAT').glob('*.hea'))
    hold = reading._signal_reader  # read_record's reader factory, swapped for wfdb's below

    def through_wfdb(hdr):
        return (lambda a, b: _wfdb_read(hdr, a, b)), None

    def read_all(paths, reader):
        reading._signal_reader = reader
        try:
            for p in paths:
                r = records.read_record(p)
                records.prepare(r, LEADS)
        finally:
            reading._signal_reader = hold
    n = len(mats)
    t_ours = timeit(lambda: read_all(mats, hold), 3) / n
    t_wfdb = timeit(lambda: read_all(mats, through_wfdb), 3) / n
    t_hol = timeit(lambda: read_all([half], hold), 3)
    t_hol_wfdb = timeit(lambda: read_all([half], through_wfdb), 3)
    print(f'read_record + prepare, 12 leads: PhysioNet .mat (CPSC-like, ~16 s) '
          f'{t_ours * 1e3:.2f} ms with the memory-mapped reader vs {t_wfdb * 1e3:.2f} ms '
          f'through wfdb.rdrecord (x{t_wfdb / t_ours:.1f}); last 30 s of a 30-min '
          f'format-16 record {t_hol * 1e3:.1f} ms vs {t_hol_wfdb * 1e3:.1f} ms '
          f'(x{t_hol_wfdb / t_hol:.1f})')
    return dict(mat_reader_ms=t_ours * 1e3, mat_wfdb_ms=t_wfdb * 1e3,
                mat_reader_speedup=t_wfdb / t_ours, fmt16_reader_ms=t_hol * 1e3,
                fmt16_wfdb_ms=t_hol_wfdb * 1e3, fmt16_reader_speedup=t_hol_wfdb / t_hol)


def run(args):
    """records/ on a 24-h, 12-lead, 1 kHz Holter (format 16, 2 GB): peak
    resident memory and time of preprocess.py and predict.py --records
    (targets: <= 1 GB, a few seconds), against reading it whole and resampling
    (measured on 30 min, scaled by 48); and the hand-written readers (memory-
    mapped MATLAB v4 .mat and format 16) against wfdb.rdrecord(sampfrom, sampto)."""
    hours = 0.5 if args.quick else 24.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = _records_holter(tmp, hours)
        (tmp / 'HALF').mkdir()
        half = _write_holter(tmp / 'HALF', 'H05', 0.5)
        whole_s, whole_mb = _records_whole_read(half, hours)
        print(f"{hours:g} h record, preprocess.py: {out['preprocess_s']:.1f} s, peak RSS "
              f"{out['preprocess_rss_mib']:.0f} MiB; predict.py --records (ResNet-34, CPU): "
              f"{out['predict_s']:.1f} s, {out['predict_rss_mib']:.0f} MiB (on a 10-s record: "
              f"{out['predict_10s_record_s']:.1f} s, {out['predict_10s_record_rss_mib']:.0f} "
              f'MiB: the difference is what the length costs); reading it whole and '
              f'resampling (the straightforward way): ~{whole_s:.0f} s, '
              f'~{whole_mb / 1024:.1f} GiB (30 min '
              f'measured, x{hours / 0.5:g})')
        out.update(whole_read_s=whole_s, whole_read_rss_mib=whole_mb)
        err = _records_tail_error(half)
        out['tail_vs_whole_max_abs_mv'] = err
        print(f'prepare (tail only) vs whole-record resampling on 30 min: max |diff| '
              f'{err * 1000:.3f} µV')
        out.update(_records_readers(tmp, half))
    return out
