"""Shared pytest fixtures: the real records of ../shared/data, the app on a
tiny random model, and the two trained SHAP test models (each trained once
per session).

Builders that tests call with arguments live beside this file: helpers.py
(records, caches, checkpoints), web_helpers.py (uploads, the API server, the
browser) and shap_helpers.py (the SHAP test models). The fixtures import the
app, the web layer and the SHAP models inside their bodies, so a run of one
test file loads only what it uses.
"""
import sys
from pathlib import Path

import numpy as np
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


# --------------------------------------------------------------------------
# The app.

@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """models/TINY.../best.pt (random ResNet-18, 2-s window) and its thresholds:
    each class's threshold is the model's score on a reference record (REF,
    web_helpers.record_files), so that classes scoring higher there are
    'present'."""
    from helpers import tiny_checkpoint
    from web_helpers import RUN, WINDOW, record_files

    import runs
    import utils
    from records import uploads
    from web import clinic
    root = tmp_path_factory.mktemp('approot')
    _, path = tiny_checkpoint(root, RUN, WINDOW)
    run = runs.load_run(path, root)
    recs, _ = uploads.load_uploads(list(record_files('REF').values()), run.leads, WINDOW)
    prob = clinic.score(run, [recs[0].x])[0]
    # Half the classes present on REF: thresholds just below / above its scores.
    order = np.argsort(-prob)
    th = prob.astype(float).copy()
    th[order[:4]] -= 1e-4
    th[order[4:]] += 1e-4
    utils.atomic_write_json({'thresholds': dict(zip(utils.CLASSES, th.tolist())),
                             'tuned_on': 'validation fold [3]'},
                            root / 'results' / RUN / 'thresholds.json')
    return root


@pytest.fixture(scope='module')
def api_root(tmp_path_factory):
    """The API tests' models/ and results/ (web_helpers.make_root): a random
    ResNet-18 whose thresholds make some classes present on the test records."""
    from web_helpers import make_root
    root = tmp_path_factory.mktemp('apiroot')
    make_root(root)
    return root


@pytest.fixture
def at(tiny_root, monkeypatch):
    """app.py on tiny_root's model under streamlit's AppTest, after its first run."""
    from streamlit.testing.v1 import AppTest
    monkeypatch.setattr(sys, 'argv', ['app.py', '--root', str(tiny_root)])
    app = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


# --------------------------------------------------------------------------
# The SHAP test models: minutes of training each, so one per session. Tests
# read them and must not change their weights.

@pytest.fixture(scope='session')
def four_class_model():
    """shap_helpers' model of single-label SNR, PVC, LBBB and RBBB records
    (test_shap.py) -> (model, epochs trained)."""
    from shap_helpers import train_four_class_model
    return train_four_class_model()


@pytest.fixture(scope='session')
def crossed_pr_model():
    """shap_helpers' model of SNR, LBBB, PVC and STD records crossed with a
    long PR (IAVB), at half noise (test_shap_population.py) -> (model, epochs
    trained)."""
    from shap_helpers import train_crossed_pr_model
    return train_crossed_pr_model()
