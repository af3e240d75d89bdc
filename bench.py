"""Benchmarks: `make bench` (or `python bench.py [--only NAME[,NAME]] [--quick]`).

    python bench.py                        # every section, full sizes
    python bench.py --only serve           # one section
    python bench.py --only records,loader  # several
    python bench.py --quick                # tiny sizes: checks that each section runs

Speed sections time ours against the straightforward way, side by side in this
same run, because the machines are shared and noisy: every figure is a ratio
of two things measured together, and absolute seconds are printed for context
only. Accuracy sections score ours against a reference (the synthetic truth,
annotated beats, the carts' own values, the study's choices), with the time
beside it. Each section is a module of benches/ (speed_NAME.py or
accuracy_NAME.py, entry point run(args)) and returns its headline numbers;
the run ends with one line, `SUMMARY {json}`, holding them all. The figures
measured so far, one table per machine with its date and commit:
docs/performance.md.
"""
import argparse
import importlib
import json

# Each tuple in the order `make bench` runs it, speed first; length_aware and
# deviations share small training runs (benches/small_runs.py), made once.
SPEED = ('synthetic', 'preprocess', 'loader', 'records', 'train', 'features', 'shap',
         'metrics', 'length_aware', 'shap_population', 'app', 'formats', 'serve', 'archive',
         'audit')
ACCURACY = ('qrs', 'deviations', 'measurements', 'realism', 'sim2real')
SECTIONS = {**{name: f'benches.speed_{name}' for name in SPEED},
            **{name: f'benches.accuracy_{name}' for name in ACCURACY}}


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', default=None, metavar='NAMES',
                        help=f"sections, comma-separated (e.g. records,loader). Speed: "
                             f"{', '.join(SPEED)}. Accuracy: {', '.join(ACCURACY)}. "
                             "(default: all)")
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes: checks the benchmarks run, numbers are not meaningful')
    return parser


def main(argv=None):
    parser = get_args_parser()
    args = parser.parse_args(argv)
    names = args.only.split(',') if args.only else list(SECTIONS)
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        parser.error(f"no section {','.join(unknown)}; the sections: {','.join(SECTIONS)}")
    summary = {}
    for name in names:
        print(f'\n=== {name} ===', flush=True)
        # imported only when chosen: a section's dependencies cost nothing
        # (and cannot fail) in a run that leaves it out
        summary[name] = importlib.import_module(SECTIONS[name]).run(args)
    print('\nSUMMARY ' + json.dumps(summary, default=float))


if __name__ == '__main__':
    main()
