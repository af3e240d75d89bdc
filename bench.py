"""Benchmarks: `make bench` (or `python bench.py [--only NAME] [--quick]`).

Every figure is a ratio of two things measured side by side in this same run,
because the machines are shared and noisy: absolute seconds are printed for
context only. Each section returns its headline numbers; the summary at the
end prints them as one JSON object.
"""
import argparse
import json
import time


def timeit(fn, repeat=3):
    """Best-of-`repeat` wall time of fn() in seconds (best-of filters noise)."""
    best = float('inf')
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_synthetic(args):
    """synthetic.py: records/s per core."""
    raise NotImplementedError('synthetic helper fills this in')


def bench_preprocess(args):
    """preprocess.py: header scan speed, cache build vs rdsamp-per-record."""
    raise NotImplementedError('data helper fills this in')


def bench_loader(args):
    """dataset.py: loader samples/s vs parsing WFDB per access (target >= 20x)."""
    raise NotImplementedError('data helper fills this in')


def bench_train(args):
    """main.py: training step samples/s vs plain fp32 + WFDB parsing (>= 2x);
    GFLOP/s vs measured matmul peak; inference ms/record; length-aware mode."""
    raise NotImplementedError('model helper fills this in')


def bench_qrs(args):
    """QRSDetectorOffline vs biosppy hamilton and wfdb XQRS: accuracy, records/s."""
    raise NotImplementedError('features helper fills this in')


def bench_features(args):
    """expert_features.py vs straightforward per-lead pandas/biosppy (>= 3x)."""
    raise NotImplementedError('features helper fills this in')


def bench_shap(args):
    """shap_values.py: seconds per explained record (target <= 30 s)."""
    raise NotImplementedError('shap helper fills this in')


SECTIONS = {
    'synthetic': bench_synthetic, 'preprocess': bench_preprocess,
    'loader': bench_loader, 'train': bench_train, 'qrs': bench_qrs,
    'features': bench_features, 'shap': bench_shap,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', default=None, metavar='NAMES',
                        help=f"comma-separated sections of {','.join(SECTIONS)} (default: all)")
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes: checks the benchmarks run, numbers are not meaningful')
    args = parser.parse_args()
    names = args.only.split(',') if args.only else list(SECTIONS)
    summary = {}
    for name in names:
        print(f'\n=== {name} ===', flush=True)
        summary[name] = SECTIONS[name](args)
    print('\nSUMMARY ' + json.dumps(summary, default=float))


if __name__ == '__main__':
    main()
