"""Shared pytest fixtures: paths of the real records in ../shared/data."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # flat scripts: import them as siblings
SHARED = ROOT.parent / 'shared' / 'data'


@pytest.fixture(scope='session')
def shared_data():
    """../shared/data, or skip: a user's clone has no ../shared."""
    if not SHARED.is_dir():
        pytest.skip('../shared/data is absent (only CI and developer machines have it)')
    return SHARED


def one_epoch_model(base, leads):
    """A 1-epoch resnet18 (window 256) on the tiny database of test_main,
    trained under `base` on `leads` ('all', 'II') -> its best.pt. Tests that
    need a trained model of some lead set to read records with share it."""
    import torch
    from test_main import FAST, make_tiny_cache

    import main as main_py
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = make_tiny_cache(Path(base) / 'TINY')
        main_py.main(['--data-dir', str(data), '--epochs', '1', '--leads', leads,
                      '--root', str(base), *FAST])
    finally:
        torch.set_num_threads(threads)
    return Path(base) / 'models' / f'TINY-{leads}-s42-f10' / 'best.pt'


def tiny_checkpoint(root, run, window):
    """models/<run>/best.pt under root: a random ResNet-18 (seed 0) with a
    main.py checkpoint's fields -> (model, path). For tests of the serving
    side (the app, the API), which need a model, not a trained one."""
    import torch

    import records
    import utils
    from resnet import build_model
    torch.manual_seed(0)
    model = build_model('resnet18', 12).eval()
    ckpt = {'model': model.state_dict(), 'leads': list(records.LEADS), 'classes': utils.CLASSES,
            'arch': 'resnet18', 'window': window, 'epoch': 2, 'best_epoch': 1,
            'folds': {'train': [1, 2], 'val': [3], 'test': [7]},
            'args': {'data_dir': 'data/TINY', 'seed': 42, 'window': window}}
    path = Path(root) / 'models' / run / 'best.pt'
    utils.atomic_torch_save(ckpt, path)
    return model, path


def predict_records(model, *records, extra=()):
    """predict.py --records on CPU in fp32 -> its exit code."""
    import predict
    return predict.main(['--model-path', str(model), '--device', 'cpu', '--precision', 'fp32',
                         '--records', *map(str, records), *extra])
