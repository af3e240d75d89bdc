"""Timing, measuring and table helpers shared by bench.py's sections.

Every section imports this module, and each needs only some of the helpers:
the project modules and torch are imported inside the helpers that use them,
so a section never fails on (or pays for) a module it does not use.
"""
import contextlib
import io
import os
import platform
import runpy
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: bench.py and its scripts
SHARED = ROOT.parent / 'shared' / 'data'  # the real records, if any


def timeit(fn, repeat=3):
    """Best-of-`repeat` wall time of fn() in seconds (best-of filters noise)."""
    best = float('inf')
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def best_cpu(fn, repeat=1):
    """Best-of-`repeat` CPU seconds of this process in fn() -> (seconds, last
    result): other jobs on a shared machine do not count against it."""
    best = float('inf')
    for _ in range(repeat):
        t0 = time.process_time()
        result = fn()
        best = min(best, time.process_time() - t0)
    return best, result


def run_measured(argv, threads=1):
    """Run a script in a fresh interpreter -> (seconds, peak resident MiB, output).
    argv[0] is a script next to bench.py, or '-c' and the code to run;
    OMP_NUM_THREADS=threads (None: inherited)."""
    # VmHWM, not getrusage: ru_maxrss would include the bench's own memory,
    # which the child inherits at fork (it is kept across exec). The script
    # and its sibling imports come from bench.py's folder, whatever the cwd.
    peak = ('print("MAXRSS_KB", [l.split()[1] for l in open("/proc/self/status")'
            ' if l.startswith("VmHWM")][0])')
    if argv[0] == '-c':
        code = argv[1] + '\n' + peak
    else:
        here = str(ROOT)
        argv = [os.path.join(here, argv[0]), *argv[1:]]
        code = ('import runpy, sys\n'
                f'sys.path.insert(0, {here!r})\n'
                f'sys.argv = {argv!r}\n'
                'try:\n    runpy.run_path(sys.argv[0], run_name="__main__")\n'
                'finally:\n    ' + peak)
    t0 = time.perf_counter()
    env = None if threads is None else {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f'error: {argv} failed:\n{out.stdout}\n{out.stderr}')
    kb = int(out.stdout.rsplit('MAXRSS_KB', 1)[1].split()[0])
    return seconds, kb / 1024, out.stdout


def run_script(name, argv):
    """Run a script of the repository in this process as `python NAME ARGV`
    runs it (runpy, sys.argv set): the bench uses the scripts as a user
    does, and imports no script as a library. A failure is its SystemExit."""
    saved = sys.argv
    sys.argv = [str(ROOT / name), *map(str, argv)]
    try:
        runpy.run_path(str(ROOT / name), run_name='__main__')
    finally:
        sys.argv = saved


def md_row(*cells):
    """One row of a Markdown table."""
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def md_head(*columns, right=0):
    """A Markdown table's header and rule; the last `right` columns right-aligned."""
    return md_row(*columns) + '\n' + md_row(*['---'] * (len(columns) - right),
                                             *['---:'] * right)


def synthetic_cache(data, n, workers, *preprocess_args):
    """n synthetic records (seed 0) written to data, then preprocess.py's cache, quietly."""
    import preprocess
    import synthetic
    synthetic.write_dataset(data, n, seed=0, workers=workers)
    with contextlib.redirect_stdout(io.StringIO()):
        preprocess.main(['--data-dir', str(data), *preprocess_args])


def random_checkpoint(root, arch, window):
    """A seeded random model (the costs timed do not depend on the weights)
    saved as a run under root, loaded as every script loads one -> (path, runs.Run)."""
    import torch

    import runs
    import utils
    from records import LEADS
    from resnet import build_model
    torch.manual_seed(0)
    path = Path(root) / 'models' / 'BENCH-all-s42-f10' / 'best.pt'
    utils.atomic_torch_save({'model': build_model(arch, 12).state_dict(), 'arch': arch,
                             'leads': list(LEADS), 'window': window}, path)
    return path, runs.load_run(path, root)


def cpu_name():
    """The CPU's model name (lscpu), for the figures."""
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or 'unknown CPU'
    return next((line.split(':', 1)[1].strip() for line in out.splitlines()
                 if line.startswith('Model name')), 'unknown CPU')


def bench_records(n, base=None):
    """n synthetic records (seed 0) in base/synthetic-N (default data/bench/,
    git-ignored), written once: a rerun skips the records already there
    (synthetic.json). The archive and preprocess sections share them."""
    import synthetic
    folder = Path(base or ROOT / 'data' / 'bench') / f'synthetic-{n}'
    t0 = time.perf_counter()
    synthetic.write_dataset(folder, n, seed=0, workers=2, progress=False)
    print(f'{n} synthetic records in {folder} ({time.perf_counter() - t0:.0f} s to write or '
          'check)')
    return folder
