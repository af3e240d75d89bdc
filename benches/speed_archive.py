"""Speed and memory, `python bench.py --only archive`: predict.py --records
over an archive of synthetic records (generated once into data/bench/), with
--workers 0 (one process reads, measures and scores, one record after
another: the straightforward way), 1 and 2, then Ray Data on the same cores;
peak memory at N and 10 N records.

Each run is predict.py in a fresh interpreter, as a user runs it, with the
demo's model shape (a seeded random ResNet-18, 12 leads, 10-s window) and
measurements on. Its last stderr line gives the rate, the cost of each step
of a record and the model's share of the run, which this section reads.
"""
import os
import re
import tempfile
from pathlib import Path

from benches.common import (
    ROOT,
    bench_records,
    cpu_name,
    md_head,
    md_row,
    random_checkpoint,
    run_measured,
)

WINDOW = 5000   # the demo's 10 s at 500 Hz
LINE = re.compile(r'(\d+) in ([\d.]+) s: ([\d.]+)/s \(([\d.na]+)/s after the first, start-up left '
                  r'out\); per record (.*?)(?:, model ([\d.]+) ms; '
                  r'the model busy (\d+)% of the run| \(the model in Ray actors\))?$')


def score(model, folder, out, *flags):
    """predict.py --records in a fresh interpreter -> its figures (dict)."""
    seconds, rss, text = run_measured(['-c', (
        'import runpy, sys, io, contextlib\n'
        f'sys.path.insert(0, {str(ROOT)!r})\n'
        f'sys.argv = ["predict.py", "--model-path", {str(model)!r}, "--records", '
        f'{str(folder)!r}, "--out", {str(out)!r}, "--batch-size", "32", *{list(flags)!r}]\n'
        'err = io.StringIO()\n'
        'with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n'
        f'    runpy.run_path({str(ROOT / "predict.py")!r}, run_name="__main__")\n'
        'print("CLOCK", err.getvalue().strip().splitlines()[-1])')], threads=None)
    out_line = [s for s in text.splitlines() if s.startswith('CLOCK ')][-1][6:]
    m = LINE.match(out_line)
    if not m:
        raise SystemExit(f'error: predict.py printed no timing line: {out_line}')
    steps = dict((k, float(v.split()[0])) for k, v in
                 (part.split(' ', 1) for part in m.group(5).split(', ')))
    return {'records': int(m.group(1)), 'rate': float(m.group(3)),
            'steady_rate': float(m.group(4)), 'wall_s': seconds, 'rss_mb': rss,
            'steps_ms': steps, 'model_ms': float(m.group(6)) if m.group(6) else None,
            'model_busy': float(m.group(7)) / 100 if m.group(7) else None}


def run(args):
    n = 20 if args.quick else 1000
    big = 60 if args.quick else 10_000
    folder = bench_records(n)
    out = {'cpu': cpu_name()}
    with tempfile.TemporaryDirectory() as tmp:
        model = random_checkpoint(tmp, 'resnet18', WINDOW)[0]
        for w in (0, 1, 2):
            out[f'workers{w}'] = score(model, folder, Path(tmp) / f'w{w}.csv', '--workers', str(w))
        out['ray'] = score(model, folder, Path(tmp) / 'ray.csv', '--engine', 'ray',
                           '--workers', '1')
        out[f'rss_{big}'] = score(model, bench_records(big), Path(tmp) / 'big.csv',
                                  '--workers', '2')['rss_mb']
    out['workers2_speedup'] = out['workers2']['rate'] / out['workers0']['rate']
    # Ray's start-up (seconds) is paid once a cluster job, not once a record
    out['ray_vs_workers2'] = out['ray']['steady_rate'] / out['workers2']['steady_rate']
    out['rss_ratio'] = out[f'rss_{big}'] / out['workers2']['rss_mb']
    report(out, n, big)
    return out


def report(out, n, big):
    print(f'predict.py --records over {n} synthetic 12-lead records (ResNet-18, 10-s window, '
          f'measurements on; {cpu_name()}, {os.cpu_count()} CPUs)')
    print(md_head('engine', 'records/s', 'after the first', 'read ms', 'prepare ms',
                  'measure ms', 'model ms', 'model busy', 'peak RSS MB (main)', right=8))
    for name in ('workers0', 'workers1', 'workers2', 'ray'):
        r = out[name]
        print(md_row(name.replace('workers', '--workers '), f"{r['rate']:.1f}",
                     f"{r['steady_rate']:.1f}",
                     *(f"{r['steps_ms'].get(k, float('nan')):.1f}"
                       for k in ('read', 'prepare', 'measure')),
                     '-' if r['model_ms'] is None else f"{r['model_ms']:.1f}",
                     '-' if r['model_busy'] is None else f"{100 * r['model_busy']:.0f}%",
                     f"{r['rss_mb']:.0f}"))
    print(f"--workers 2 against 0: {out['workers2_speedup']:.2f}x; Ray (one actor) against "
          f"--workers 2 (after the first record): {out['ray_vs_workers2']:.2f}x; peak RSS at "
          f"{big} records against {n}: {out['rss_ratio']:.2f}x")
