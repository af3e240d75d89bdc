"""A tenth class end to end, for tests/test_ten_classes.py. It runs in a
child process because it extends the class table exactly as an edit of
utils.py and app_text.py would, before the scripts are imported, and the
rest of the suite must keep the nine classes:

    PYTHONPATH=. python tests/child_ten_classes.py /tmp/ten

Trains a tiny ResNet-18 for one epoch on 4-s records of ten classes, scores
its test fold and a record, explains two records (shap_values.py's
computation) and opens the app on the checkpoint (streamlit AppTest): an
upload, its decision table, an explanation. Prints one JSON line of what the
test checks.
"""
import json
import sys
from pathlib import Path

import utils

# The edit a tenth class needs in utils.py ...
utils.CLASSES.append('AFL')
utils.CLASS_NAMES['AFL'] = 'atrial flutter'
utils.SNOMED_TO_CLASS['164890007'] = 'AFL'
utils.CLASS_TO_SNOMED['AFL'] = '164890007'
# ... and in app_text.py.
from web import app_text  # noqa: E402 (after the edit of utils, as the scripts below)

app_text.TEXT['class_AFL'] = {'en': 'atrial flutter', 'fr': 'flutter auriculaire',
                              'ar': 'رفرفة أذينية'}
app_text.TEXT['public_AFL'] = {'en': 'A fast regular circuit in the atria.',
                               'fr': 'Un circuit rapide et régulier dans les oreillettes.',
                               'ar': 'دائرة سريعة ومنتظمة في الأذينين.'}
app_text.TEXT['clinical_AFL'] = {'en': 'Sawtooth flutter waves, often 2:1 conduction.',
                                 'fr': 'Ondes F en dents de scie, souvent conduction 2:1.',
                                 'ar': 'موجات رفرفة منشارية، غالبا توصيل 2:1.'}

# The scripts, imported after the edit as they would be after an edit of the files.
from streamlit.testing.v1 import AppTest  # noqa: E402

import main  # noqa: E402
from archive import read_rows  # noqa: E402
import predict  # noqa: E402
import preprocess  # noqa: E402
import runs  # noqa: E402
import shap_values  # noqa: E402
import synthetic  # noqa: E402


def write_records(data):
    """40 records of 4 s, four of each class; AFL's an AF-like tracing labelled flutter."""
    for i in range(40):
        cls = utils.CLASSES[i % 10]
        rec = synthetic.make_record(3, i, duration=4.0, classes=['AF' if cls == 'AFL' else cls])
        rec['dx'] = [utils.CLASS_TO_SNOMED[cls]]
        synthetic.write_record(rec, data, synthetic.record_name(i))


def open_the_app(best, root, record):
    """app.py on the checkpoint: upload `record` (.hea, .mat), explain it ->
    (the AppTest, its decision table)."""
    sys.argv = ['app.py', '--model-path', str(best), '--root', str(root)]
    app = AppTest.from_file(str(Path('app.py').resolve()), default_timeout=120).run()
    app.file_uploader[0].set_value([(f'{record.name}.{s}', record.with_suffix(f'.{s}').read_bytes(),
                                     'application/octet-stream') for s in ('hea', 'mat')])
    app.run()
    app.button(key='explain').click().run()
    decisions = next(d.value for d in app.dataframe if 'code' in d.value.columns or
                     app_text.t('en', 'col_decision') in d.value.columns)
    return app, decisions


def through_every_script(tmp):
    """Train, score, explain and open the app under tmp -> what the test checks."""
    data, root = tmp / 'data' / 'TEN', tmp / 'run'
    write_records(data)
    preprocess.main(['--data-dir', str(data), '--workers', '1'])
    flags = ['--data-dir', str(data), '--root', str(root), '--device', 'cpu',
             '--precision', 'fp32']
    main.main(flags + ['--arch', 'resnet18', '--epochs', '1', '--window', '2000',
                       '--batch-size', '16', '--sched', 'none'])
    metrics = predict.main(flags + ['--n-boot', '0'])
    run = utils.run_name(data, 'all', 42)
    best = root / 'models' / run / 'best.pt'
    scored = read_rows(predict.main(['--model-path', str(best), '--records',
                                     str(data / 'A0010.hea'), '--out', str(tmp / 'scores.csv'),
                                     '--device', 'cpu']))
    # shap_values.py's computation and cache (its figures are class-blind and
    # cost a minute here: left to test_shap.py)
    explained, _ = shap_values.explain_run(shap_values.get_args_parser().parse_args(
        flags + ['--max-records', '2', '--nsamples', '2', '--background', '4',
                 '--batch-size', '4']),
        utils.run_dirs(run, root))
    shap = shap_values.load_explanations(root / 'shap' / run / shap_values.CACHE_NAME)
    app, decisions = open_the_app(best, root, data / 'A0010')
    return {
        'ckpt_classes': runs.load_run(best, root).classes,
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
    }


if __name__ == '__main__':
    print(json.dumps(through_every_script(Path(sys.argv[1]))))
