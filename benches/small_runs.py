"""The small training runs that the length_aware (speed) and deviations
(accuracy) sections both read: made once per bench.py call, whichever of the
two runs first."""
import atexit
import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import preprocess
import runs
import synthetic
import utils
from benches.common import md_head, md_row, run_script

_SMALL = {}  # filled by the first small_runs() of the process, then read


def small_runs(args):
    """Three small seeded runs of main.py + predict.py on the same records
    (CPU-sized: ResNet-18, a 3,000-sample (6 s) window, 300 synthetic records
    of 2-6 s, 4 epochs, batch 16, lr 1e-3, fp32): 'cosine' (our schedule, full
    window), 'aware' (the same with --length-aware) and 'constant' (the
    study's constant rate). Returns {mode: dict(samples_per_s, val_auc,
    val_f1, test_auc, test_f1, val/test labels and scores)}; run once per
    bench.py call."""
    if _SMALL:
        return _SMALL
    n, epochs = (40, 1) if args.quick else (300, 4)
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix='bench-small-')
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # shared by two sections
    data = Path(tmp) / 'LA'
    for i in range(n):
        rec = synthetic.make_record(0, i, duration=float(rng.uniform(2, 6)))
        synthetic.write_record(rec, data, synthetic.record_name(i))
    with contextlib.redirect_stdout(io.StringIO()):
        preprocess.main(['--data-dir', str(data), '--workers', '1'])
    common = ['--data-dir', str(data), '--arch', 'resnet18', '--window', '3000',
              '--epochs', str(epochs), '--lr', '1e-3', '--batch-size', '16',
              '--device', 'cpu', '--precision', 'fp32', '--workers', '0']
    modes = {'cosine': [], 'aware': ['--length-aware'], 'constant': ['--sched', 'none']}
    _, val_f, test_f = utils.split_data(42)
    for mode, extra in modes.items():
        root = Path(tmp) / mode
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_script('main.py', [*common, '--root', root, *extra])
            run_script('predict.py', ['--data-dir', data, '--root', root, '--device', 'cpu',
                                      '--precision', 'fp32', '--n-boot', '0'])
        run = next((root / 'models').iterdir()).name
        log = [json.loads(line) for line in
               (root / 'models' / run / 'log.jsonl').read_text().splitlines()]
        best = max(log, key=lambda r: (np.nan_to_num(r['val_f1'], nan=-1), -r['epoch']))
        test = pd.read_csv(root / 'results' / run / 'metrics.csv', index_col=0).loc['macro']
        trained = runs.load_run(root / 'models' / run / 'best.pt', root, leads='all')
        with torch.inference_mode():
            _, vy, vs = runs.score_folds(trained, data, val_f, torch.device('cpu'), 'fp32')
            _, ty, ts = runs.score_folds(trained, data, test_f, torch.device('cpu'), 'fp32')
        _SMALL[mode] = {'samples_per_s': max(r['samples_per_s'] for r in log),
                        'val_auc': best['val_auc'], 'val_f1': best['val_f1'],
                        'test_auc': float(test['auc']), 'test_f1': float(test['f1']),
                        'scores': (vy, vs, ty, ts)}
    _SMALL['data_dir'] = data
    _SMALL['setting'] = (f'{n} synthetic records of 2-6 s, window 3000, resnet18, {epochs} '
                         'epochs, batch 16, lr 1e-3, fp32, seed 42')
    return _SMALL


def row(name, r):
    """One run of small_runs() as a row under HEAD."""
    return md_row(name, f"{r['samples_per_s']:.1f}", f"{r['val_auc']:.3f}",
                  f"{r['val_f1']:.3f}", f"{r['test_auc']:.3f}", f"{r['test_f1']:.3f}")


HEAD = md_head('run', 'train samples/s', 'val macro AUC', 'val macro F1', 'test macro AUC',
               'test macro F1')
