"""Speed, `python bench.py --only preprocess`: preprocess.py's header scan,
its read of a record for the cache and the cache build with 2 workers,
against wfdb.rdheader, wfdb.rdsamp and 1 worker; then the whole of
`python preprocess.py` at dataset scale (1,000 and 10,000 synthetic
records, generated once into data/bench/synthetic-N): time per record and
peak resident memory, --workers 0 against --workers 2."""
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import wfdb

import preprocess
import synthetic
from benches.common import bench_records, cpu_name, run_measured, timeit
from records import LEADS, prepare, quantise, read_record


def run(args):
    """preprocess.py: header scan speed, cache build vs rdsamp-per-record."""
    n_headers, n_cache, n_wfdb = (700, 100, 50) if args.quick else (7000, 1000, 300)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 16 synthetic CPSC-like records (6-60 s), copied under new names up to
        # n records: the header text is rewritten, the .mat hard-linked.
        synthetic.write_dataset(tmp / 'templates', 16, seed=0, workers=1)
        templates = sorted((tmp / 'templates').glob('*.hea'))

        def copies(folder, n):
            folder.mkdir()
            for i in range(n):
                src, name = templates[i % len(templates)], f'B{i:05d}'
                text = src.read_text().replace(src.stem, name)
                (folder / f'{name}.hea').write_text(text)
                os.link(src.with_suffix('.mat'), folder / f'{name}.mat')
            return sorted(folder.glob('*.hea'))

        headers = copies(tmp / 'headers', n_headers)
        t_ours = timeit(lambda: preprocess.scan_wfdb(tmp / 'headers', preprocess.Skips(False)), 3)
        t0 = time.perf_counter()
        for h in headers[:n_wfdb]:
            wfdb.rdheader(str(h.with_suffix('')))
        t_rdheader = (time.perf_counter() - t0) / n_wfdb * n_headers
        print(f'header scan, {n_headers} records: {t_ours:.2f} s; wfdb.rdheader per record '
              f'{t_rdheader:.1f} s (x{t_rdheader / t_ours:.0f})')
        out['header_scan_s'] = t_ours
        out['header_scan_speedup_vs_rdheader'] = t_rdheader / t_ours

        # The cache-building read of one record vs the study's wfdb.rdsamp.
        sample = headers[:n_wfdb]
        t_read = timeit(lambda: [quantise(prepare(read_record(h), LEADS).x) for h in sample], 2)
        t_rdsamp = timeit(lambda: [wfdb.rdsamp(str(h.with_suffix(''))) for h in sample], 2)
        print(f'read one record: read_record+prepare {t_read / n_wfdb * 1e3:.2f} ms, '
              f'wfdb.rdsamp {t_rdsamp / n_wfdb * 1e3:.2f} ms (x{t_rdsamp / t_read:.1f})')
        out['record_read_speedup_vs_rdsamp'] = t_rdsamp / t_read
        out['study_reference_pass_s'] = t_rdsamp / n_wfdb * n_headers
        print(f'the study\'s reference.csv pass (rdsamp per record) would take '
              f'{t_rdsamp / n_wfdb * n_headers:.1f} s for {n_headers} records')

        copies(tmp / 'cache_in', n_cache)
        records = preprocess.scan_wfdb(tmp / 'cache_in', preprocess.Skips(False))
        times, cpu = {1: float('inf'), 2: float('inf')}, {}
        for _ in range(2):  # alternate, best of 2: the machine's load drifts
            for workers in (1, 2):
                t0, c0 = time.perf_counter(), sum(os.times()[:4])  # self + reaped workers
                preprocess.build_cache(records, tmp / f'cache{workers}', 'wfdb', 'bench',
                                       workers, preprocess.Skips(False))
                times[workers] = min(times[workers], time.perf_counter() - t0)
                cpu[workers] = sum(os.times()[:4]) - c0
        size = (tmp / 'cache2' / 'signals.npy').stat().st_size / 2**20
        print(f'cache build, {n_cache} records ({size:.0f} MiB): 1 worker {times[1]:.2f} s '
              f'({cpu[1]:.2f} CPU s), 2 workers {times[2]:.2f} s ({cpu[2]:.2f} CPU s): '
              f'x{times[1] / times[2]:.2f}; {n_cache / times[2]:.0f} records/s; load average '
              f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
        out['cache_build_records_per_s'] = n_cache / times[2]
        out['cache_build_2_workers_speedup'] = times[1] / times[2]
    out.update(run_scale(args.quick))
    return out


def preprocess_run(folder, n, workers):
    """`python preprocess.py` from scratch (no labels.csv, no cache) in a
    fresh interpreter -> {s, ms_per_record, cache_ms_per_record, peak_mb}.
    The peak is the main process's: with --workers 2 each worker holds one
    record at a time on top of the imports."""
    shutil.rmtree(folder / 'cache', ignore_errors=True)
    (folder / 'labels.csv').unlink(missing_ok=True)  # folds assigned anew, as a first run does
    seconds, peak, out = run_measured(['preprocess.py', '--data-dir', str(folder),
                                       '--workers', str(workers)])
    cache_s = float(re.search(r'cache: \d+ records, [\d.]+ MiB in ([\d.]+) s', out).group(1))
    return {'s': seconds, 'ms_per_record': 1e3 * seconds / n,
            'cache_ms_per_record': 1e3 * cache_s / n, 'peak_mb': peak}


def run_scale(quick):
    """preprocess.py per record and peak memory at two dataset sizes, 0 and 2 workers."""
    sizes = (10, 40) if quick else (1000, 10000)
    print(f'preprocess.py at dataset scale on {cpu_name()}, {os.cpu_count()} cores '
          f'(load average {os.getloadavg()[0]:.1f}):')
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = bench_records(n, tmp if quick else None)
            for workers in (0, 2):
                r = preprocess_run(folder, n, workers)
                print(f'  {n:6d} records, --workers {workers}: {r["s"]:6.1f} s, '
                      f'{r["ms_per_record"]:5.2f} ms/record ({r["cache_ms_per_record"]:5.2f} '
                      f'in the cache build), peak RSS {r["peak_mb"]:.0f} MiB')
                for key, value in r.items():
                    out[f'{key}_{n}_w{workers}'] = value
            shutil.rmtree(folder / 'cache')  # GBs at 10k; the records stay for the next run
    small, large = sizes
    for workers in (0, 2):
        out[f'per_record_ratio_w{workers}'] = (out[f'ms_per_record_{large}_w{workers}']
                                               / out[f'ms_per_record_{small}_w{workers}'])
        out[f'peak_rss_ratio_w{workers}'] = (out[f'peak_mb_{large}_w{workers}']
                                             / out[f'peak_mb_{small}_w{workers}'])
        print(f'  --workers {workers}: {large} against {small} records: time per record '
              f'x{out[f"per_record_ratio_w{workers}"]:.2f}, peak RSS '
              f'x{out[f"peak_rss_ratio_w{workers}"]:.2f}')
    return out
