"""A tenth class takes one entry in utils.py's class table (and its SNOMED-CT
code) and its strings in app_text.py, nothing else: training, prediction,
SHAP and the app all follow the checkpoint's classes.

The class table is extended in a child process (tests/child_ten_classes.py),
exactly as an edit of utils.py would extend it (before the scripts are
imported), so the rest of the suite keeps the nine classes. The child
trains a tiny ResNet-18 for one epoch on 4-s records, scores its test fold
and a record, explains two records (shap_values.py's computation) and opens
the app on the checkpoint (streamlit AppTest): an upload, its ten-row
decision table, an explanation.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_tenth_class_goes_through_training_prediction_shap_and_the_app(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    child = Path(__file__).with_name('child_ten_classes.py')
    out = subprocess.run([sys.executable, str(child), str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ten = ['SNR', 'AF', 'IAVB', 'LBBB', 'RBBB', 'PAC', 'PVC', 'STD', 'STE', 'AFL']
    assert got['ckpt_classes'] == ten
    assert got['metrics_rows'] == ten + ['macro']
    assert got['thresholds'] == sorted(ten)
    assert got['confusion'] > 5000
    assert got['score_columns'] == [f'score_{c}' for c in ten]
    assert got['shap_probs'] == [2, 10] and got['shap_classes'] == ten
    assert got['shap_explained'] and max(got['shap_explained']) < 10
    assert got['app_exception'] == [] and got['app_explained']
    assert len(got['class_names']) == 10 and 'atrial flutter' in got['class_names']
    assert sorted(got['app_classes']) == sorted(got['class_names'])
