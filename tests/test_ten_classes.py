"""A tenth class takes one entry in utils.py's class table (and its SNOMED-CT
code) and its strings in app_text.py, nothing else: training, prediction,
SHAP and the app all follow the checkpoint's classes.

The class table is extended in a child process, exactly as an edit of
utils.py would extend it (before the scripts are imported), so the rest of
the suite keeps the nine classes. The child trains a tiny ResNet-18 for one
epoch on 4-s records, scores its test fold and a record, explains two
records (shap_values.py's computation) and opens the app on the checkpoint
(streamlit AppTest): an upload, its ten-row decision table, an explanation.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys
from pathlib import Path
import utils
# The edit a tenth class needs in utils.py ...
utils.CLASSES.append('AFL')
utils.CLASS_NAMES['AFL'] = 'atrial flutter'
utils.SNOMED_TO_CLASS['164890007'] = 'AFL'
utils.CLASS_TO_SNOMED['AFL'] = '164890007'
# ... and in app_text.py.
from web import app_text
app_text.TEXT['class_AFL'] = {'en': 'atrial flutter', 'fr': 'flutter auriculaire',
                              'ar': 'رفرفة أذينية'}
app_text.TEXT['public_AFL'] = {'en': 'A fast regular circuit in the atria.',
                               'fr': 'Un circuit rapide et régulier dans les oreillettes.',
                               'ar': 'دائرة سريعة ومنتظمة في الأذينين.'}
app_text.TEXT['clinical_AFL'] = {'en': 'Sawtooth flutter waves, often 2:1 conduction.',
                                 'fr': 'Ondes F en dents de scie, souvent conduction 2:1.',
                                 'ar': 'موجات رفرفة منشارية، غالبا توصيل 2:1.'}

import main, predict, preprocess, shap_values, synthetic
from streamlit.testing.v1 import AppTest

tmp = Path(sys.argv[1])
data, root = tmp / 'data' / 'TEN', tmp / 'run'
for i in range(40):
    cls = utils.CLASSES[i % 10]
    rec = synthetic.make_record(3, i, duration=4.0, classes=['AF' if cls == 'AFL' else cls])
    rec['dx'] = [utils.CLASS_TO_SNOMED[cls]]  # AFL: an AF-like tracing, labelled flutter
    synthetic.write_record(rec, data, synthetic.record_name(i))
preprocess.main(['--data-dir', str(data), '--workers', '1'])
flags = ['--data-dir', str(data), '--root', str(root), '--device', 'cpu', '--precision', 'fp32']
main.main(flags + ['--arch', 'resnet18', '--epochs', '1', '--window', '2000',
                   '--batch-size', '16', '--sched', 'none'])
metrics = predict.main(flags + ['--n-boot', '0'])
run = utils.run_name(data, 'all', 42)
best = root / 'models' / run / 'best.pt'
scored = predict.main(['--model-path', str(best), '--records', str(data / 'A0010.hea'),
                       '--out', str(tmp / 'scores.csv'), '--device', 'cpu'])
# shap_values.py's computation and cache (its figures are class-blind and cost
# a minute here: left to test_shap.py)
explained, _ = shap_values.explain_run(shap_values.get_args_parser().parse_args(
    flags + ['--max-records', '2', '--nsamples', '2', '--background', '4', '--batch-size', '4']),
    utils.run_dirs(run, root))
shap = shap_values.load_cache(root / 'shap' / run / shap_values.CACHE_NAME)

sys.argv = ['app.py', '--model-path', str(best), '--root', str(root)]
app = AppTest.from_file(str(Path('app.py').resolve()), default_timeout=120).run()
app.file_uploader[0].set_value([(f'A0010.{s}', (data / f'A0010.{s}').read_bytes(),
                                 'application/octet-stream') for s in ('hea', 'mat')])
app.run()
app.button(key='explain').click().run()
decisions = next(d.value for d in app.dataframe if 'code' in d.value.columns or
                 app_text.t('en', 'col_decision') in d.value.columns)
print(json.dumps({
    'ckpt_classes': predict.load_model(best, root)['classes'],
    'metrics_rows': list(metrics.index),
    'thresholds': sorted(json.loads((root / 'results' / run / 'thresholds.json')
                                    .read_text())['thresholds']),
    'confusion': (root / 'results' / run / 'confusion.png').stat().st_size,
    'score_columns': [c for c in scored.columns if c.startswith('score_')],
    'shap_probs': list(shap['probs'].shape), 'shap_classes': shap['classes'].tolist(),
    'shap_explained': sorted(int(c) for r in explained.values() for c in r['classes']),
    'app_exception': [str(e.value) for e in app.exception],
    'app_explained': any('Explained in' in m.value for m in app.success),
    'app_classes': decisions[app_text.t('en', 'col_class')].tolist(),
    'class_names': [app_text.t('en', f'class_{c}') for c in utils.CLASSES],
}))
'''


def test_a_tenth_class_goes_through_training_prediction_shap_and_the_app(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, '-c', CHILD, str(tmp_path)], cwd=ROOT, env=env,
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
