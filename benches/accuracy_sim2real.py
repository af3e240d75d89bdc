"""Accuracy, `python bench.py --only sim2real`: the demo model, trained on
synthetic.py's records only, scored on the real labelled 12-lead records of
../shared/data (AUC per class with at least 2 positives, and their macro).

    python bench.py --only sim2real           # `make demo`'s model here, else trains the demo
    python bench.py --only sim2real --quick   # a miniature demo (60 records, 1 epoch): runs?

The model: models/SYNTH-all-s42-f7/best.pt under the current folder (where
`make demo` writes it) when it is there and was trained on synthetic data;
otherwise `pipeline.py demo` (the demo's exact recipe, ~15 min on 2 idle
cores) runs in a temporary folder and its model is scored. The real records
only evaluate: nothing is trained or tuned on them. Labels come from their `# Dx:` SNOMED CT codes
through utils.dx_to_classes (the default SNR rule, 'only'; the 'sinus' rule's
macro is printed beside it), and records with none of the nine classes are
left out, as preprocess.py leaves them out.
"""
import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import preprocess
import runs
import synthetic
import utils
from benches.common import ROOT, SHARED, md_head, md_row, run_script
from records import RecordError, prepare, read_record

DEMO_RUN = Path('models') / utils.run_name('data/SYNTH', 'all', 42) / 'best.pt'
# --quick: the recipe in miniature (60 records, 2-s windows, 1 epoch, fp32).
QUICK_MAIN = ['--arch', 'resnet18', '--epochs', '1', '--window', '1000', '--batch-size', '8',
              '--lr', '1e-3', '--device', 'cpu', '--precision', 'fp32', '--workers', '0']
MIN_POSITIVES = 2


def real_records(snr_rule='only'):
    """[(Record, classes)] of every real record in ../shared/data with a Dx
    line naming at least one of the nine classes; [] when ../shared is absent."""
    paths = sorted(SHARED.glob('physionet2021/*.hea')) + sorted(SHARED.glob('cpsc2018_wfdb/*.hea'))
    out = []
    for path in paths:
        try:
            rec = read_record(path)
        except RecordError as e:
            print(f'{path.name}: skipped ({e})')
            continue
        classes = utils.dx_to_classes(rec.dx or [], snr_rule)
        if classes:
            out.append((rec, classes))
    return out


def _demo_model(quick, work):
    """(path of the demo model, where it came from)."""
    if not quick and DEMO_RUN.exists():
        run = runs.load_run(DEMO_RUN, '.', thresholds=False)
        if run.synthetic:
            return DEMO_RUN, f'the model of `make demo` in this folder ({DEMO_RUN})'
    if quick:
        data = Path(work) / 'data' / 'SYNTH'
        synthetic.write_dataset(data, 60, seed=0, workers=1, progress=False)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            preprocess.main(['--data-dir', str(data), '--workers', '1'])
            run_script('main.py', ['--data-dir', data, '--root', work, *QUICK_MAIN])
        return next(Path(work).glob('models/*/best.pt')), 'a miniature demo (--quick)'
    cmd = [sys.executable, str(ROOT / 'pipeline.py'), 'demo']
    print('training the demo: pipeline.py demo (in a temporary folder)', flush=True)
    out = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f'error: the demo failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}')
    return Path(work) / DEMO_RUN, 'the demo trained by this section (pipeline.py demo)'


def score_records(model_path, root, recs):
    """-> (classes, labels (n, classes), scores (n, classes)) of the model on recs."""
    from resnet import probabilities
    run = runs.load_run(model_path, root, thresholds=False)
    xs = np.stack([prepare(rec, run.leads, run.window).x for rec, _ in recs])
    scores = probabilities(run.model, xs, 'cpu', 'fp32')
    labels = np.array([[c in cl for c in run.classes] for _, cl in recs], dtype=int)
    return run.classes, labels, scores


def auc_table(classes, labels, scores):
    """{class: AUC} for the classes with >= MIN_POSITIVES positives and a negative."""
    out = {}
    for k, c in enumerate(classes):
        pos = int(labels[:, k].sum())
        if pos >= MIN_POSITIVES and pos < len(labels):
            out[c] = float(roc_auc_score(labels[:, k], scores[:, k]))
    return out


def run(args):
    recs = real_records()
    if not recs:
        print(f'no real labelled records under {SHARED}: section skipped')
        return {}
    with tempfile.TemporaryDirectory(prefix='bench-sim2real-') as work:
        path, source = _demo_model(args.quick, work)
        root = Path(path).parents[2]
        classes, labels, scores = score_records(path, root, recs)
        sinus = real_records('sinus')
        s_classes, s_labels, s_scores = score_records(path, root, sinus)
    auc = auc_table(classes, labels, scores)
    auc_sinus = auc_table(s_classes, s_labels, s_scores)
    print(f'model: {source}; {len(recs)} real records with a class of the nine '
          f"({len(sinus)} under the 'sinus' SNR rule)")
    print(md_head('class', 'real positives', 'AUC', "AUC ('sinus' rule)", right=3))
    for c in classes:
        if c in auc or c in auc_sinus:
            k = classes.index(c)
            print(md_row(c, int(labels[:, k].sum()), f"{auc.get(c, np.nan):.3f}",
                         f"{auc_sinus.get(c, np.nan):.3f}"))
    macro = float(np.mean(list(auc.values()))) if auc else float('nan')
    macro_sinus = float(np.mean(list(auc_sinus.values()))) if auc_sinus else float('nan')
    print(md_row('macro', '', f'{macro:.3f}', f'{macro_sinus:.3f}'))
    return {'records': len(recs), 'auc': auc, 'macro_auc': macro,
            'macro_auc_sinus_rule': macro_sinus, 'auc_sinus_rule': auc_sinus}
