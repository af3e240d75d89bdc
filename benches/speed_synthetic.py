"""Speed, `python bench.py --only synthetic`: synthetic.py's records/s per
core, generating and writing, against its 50 records/s target."""
import tempfile
import time

import synthetic


def run(args):
    """synthetic.py: records/s per core (workers=1), generating and writing
    CPSC2018-like records (mean ~16 s), against the 50 records/s target."""
    n = 10 if args.quick else 100
    synthetic.make_record(0, 0)  # imports and caches out of the timing
    t0 = time.perf_counter()
    for i in range(n):
        synthetic.make_record(0, i)
    gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        synthetic.write_dataset(out, n, seed=0, workers=1, progress=False)
        full = time.perf_counter() - t0
    res = {'records': n, 'make_record_per_s': n / gen, 'write_dataset_per_s_per_core': n / full,
           'target_per_s_per_core': 50.0, 'ratio_to_target': n / full / 50.0,
           'write_share': max(0.0, 1 - gen / full)}
    print(f'make_record: {n / gen:.1f} records/s; make + write (.mat/.hea/.atr): '
          f'{n / full:.1f} records/s/core = {n / full / 50:.2f}x the 50/s target '
          f'({100 * res["write_share"]:.0f}% of the time in writing) [{gen:.2f} s, {full:.2f} s]')
    return res
