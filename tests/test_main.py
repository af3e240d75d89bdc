"""main.py: training, checkpoints, --resume, non-finite loss, DDP over gloo."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, make_tiny_cache

import main as main_py
import runs
import utils
from records import LEADS
from utils import CLASSES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    # On a shared 2-core machine, 2 OpenMP threads that compete with other
    # processes run these tiny convolutions 5-10x slower than 1 thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp('tiny') / 'TINY')


def read_log(run_dir):
    return [json.loads(line) for line in (run_dir / 'log.jsonl').read_text().splitlines()]


def test_training_writes_self_describing_checkpoints(tiny, tmp_path, capsys):
    main_py.main(['--data-dir', str(tiny), '--epochs', '2', '--root', str(tmp_path), *FAST])
    run = utils.run_name(tiny, 'all', 42, 10)
    assert run == 'TINY-all-s42-f10'
    out = tmp_path / 'models' / run
    log = read_log(out)
    assert [r['epoch'] for r in log] == [1, 2]
    for key in ('train_loss', 'val_loss', 'val_f1', 'val_auc', 'lr', 'seconds', 'samples_per_s'):
        assert all(np.isfinite(r[key]) for r in log), key
    # cosine schedule actually steps: epoch 2 runs at a lower rate than epoch 1
    assert log[1]['lr'] < log[0]['lr'] == pytest.approx(1e-4)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith('{"epoch"')]
    assert printed == log
    args = json.loads((out / 'args.json').read_text())
    assert args['epochs'] == 2 and args['run'] == run
    last = runs.read_checkpoint(out / 'last.pt')
    best = runs.read_checkpoint(out / 'best.pt')
    assert last['epoch'] == 2 and last['arch'] == 'resnet18' and last['window'] == 256
    assert last['leads'] == LEADS and last['classes'] == CLASSES
    assert last['folds'] == {'train': [2, 3, 4, 5, 6, 7, 8, 9], 'val': [1], 'test': [10]}
    assert {'optimizer', 'scheduler', 'best_metric', 'args', 'commit', 'rng'} <= set(last)
    best_row = max(log, key=lambda r: r['val_f1'])
    assert best['epoch'] == best_row['epoch']
    assert best['best_metric'] == pytest.approx(best_row['val_f1'])
    # an existing run is neither overwritten nor silently resumed
    with pytest.raises(SystemExit, match='--resume.*--force'):
        main_py.main(['--data-dir', str(tiny), '--epochs', '2', '--root', str(tmp_path), *FAST])
    # --cv skips a fold already trained to --epochs (and would train a longer one)
    args = main_py.get_args_parser().parse_args(['--data-dir', str(tiny), '--epochs', '2',
                                                 '--root', str(tmp_path), *FAST])
    args.cv = True
    assert main_py.train_run(args) is None
    assert 'already trained to 2 epochs, skipping' in capsys.readouterr().out
    assert main_py.is_complete(out / 'last.pt', 2) and not main_py.is_complete(out / 'last.pt', 3)


def test_resume_reproduces_an_uninterrupted_run(tiny, tmp_path, monkeypatch):
    torch.use_deterministic_algorithms(True)
    try:
        common = ['--data-dir', str(tiny), '--epochs', '4', *FAST]
        main_py.main([*common, '--root', str(tmp_path / 'a')])

        # Ctrl-C in the middle of epoch 3 of the same run, then --resume.
        real, calls = main_py.train_one_epoch, []

        def interrupted(*a, **k):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real(*a, **k)
        monkeypatch.setattr(main_py, 'train_one_epoch', interrupted)
        with pytest.raises(KeyboardInterrupt):
            main_py.main([*common, '--root', str(tmp_path / 'b')])
        monkeypatch.setattr(main_py, 'train_one_epoch', real)
        main_py.main([*common, '--root', str(tmp_path / 'b'), '--resume'])
    finally:
        torch.use_deterministic_algorithms(False)
    run = 'TINY-all-s42-f10'
    a = runs.read_checkpoint(tmp_path / 'a' / 'models' / run / 'last.pt')
    b = runs.read_checkpoint(tmp_path / 'b' / 'models' / run / 'last.pt')
    assert a['epoch'] == b['epoch'] == 4
    for k, v in a['model'].items():
        assert torch.equal(v, b['model'][k]), k
    log_a = read_log(tmp_path / 'a' / 'models' / run)
    log_b = read_log(tmp_path / 'b' / 'models' / run)
    assert [r['epoch'] for r in log_b] == [1, 2, 3, 4]
    for ra, rb in zip(log_a, log_b):
        assert ra['train_loss'] == rb['train_loss'] and ra['val_f1'] == rb['val_f1']


def test_non_finite_loss_stops_with_a_clear_message(tiny, tmp_path):
    with pytest.raises(SystemExit, match='non-finite training loss.*lower --lr'):
        main_py.main(['--data-dir', str(tiny), '--epochs', '1', '--lr', '1e30',
                      '--root', str(tmp_path), *FAST])


def test_length_aware_training_runs_and_learns(tiny, tmp_path):
    main_py.main(['--data-dir', str(tiny), '--epochs', '3', '--length-aware', '--lr', '1e-3',
                  '--root', str(tmp_path), *FAST])
    log = read_log(tmp_path / 'models' / 'TINY-all-s42-f10')
    # three sines at different frequencies: easy, even for 3 tiny epochs
    assert log[-1]['train_loss'] < log[0]['train_loss']
    assert max(r['val_auc'] for r in log) > 0.7


def test_ddp_over_gloo_matches_a_single_process(tiny, tmp_path):
    """Two CPU processes (torchrun, gloo): train one epoch, then the validation
    metrics they gathered (5 records: one padding duplicate to drop) must equal
    a single process's evaluation of the saved checkpoint."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node',
           '2', str(ROOT / 'main.py'), '--data-dir', str(tiny), '--epochs', '1',
           '--root', str(tmp_path), *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"epoch"')]
    assert len(rows) == 1, proc.stdout  # only rank 0 prints the epoch line
    ddp = rows[0]
    single = main_py.main(['--data-dir', str(tiny), '--evaluate', '--root', str(tmp_path),
                           *FAST])
    assert single['n_val'] == 5
    assert ddp['val_loss'] == pytest.approx(single['val_loss'], abs=1e-5)
    assert ddp['val_auc'] == pytest.approx(single['val_auc'], abs=1e-6)
    assert ddp['val_f1'] == pytest.approx(single['val_f1'], abs=1e-6)
