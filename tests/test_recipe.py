"""`make paper` runs the study's recipe exactly; RECIPE=ours is a second,
explicit recipe with its own runs and its own report column."""
import pandas as pd

import main as main_py
import pipeline
import utils
from utils import CLASSES

STUDY = {'arch': 'resnet34', 'epochs': 40, 'batch_size': 32, 'lr': 1e-4, 'sched': 'none',
         'window': 15000, 'augment': True, 'head_dropout': 0.0, 'weight_decay': 0.0,
         'precision': 'fp32', 'length_aware': False}


def parsed(flags):
    return vars(main_py.get_args_parser().parse_args(flags))


def test_study_recipe_is_the_studys_code():
    args = parsed(pipeline.RECIPES['study'])
    assert {k: args[k] for k in STUDY} == STUDY
    # main.py's own defaults are not the study's: the recipe must say so
    assert parsed([])['sched'] == 'cosine'


def test_ours_differs_only_in_the_documented_flags():
    study, ours = parsed(pipeline.RECIPES['study']), parsed(pipeline.RECIPES['ours'])
    assert {k for k in study if study[k] != ours[k]} == {'sched', 'precision', 'length_aware'}
    assert pipeline.RECIPE_ROOT['ours'] != pipeline.RECIPE_ROOT['study']


def fake_metrics(path, auc, f1):
    rows = {c: {'f1': f1, 'auc': auc} for c in CLASSES + ['macro']}
    df = pd.DataFrame.from_dict(rows, orient='index')
    for k in ('precision', 'recall', 'accuracy'):
        df[k] = 0.5
    for k in ('precision', 'recall', 'f1', 'auc', 'accuracy'):
        df[f'{k}_lo'] = df[f'{k}_hi'] = float('nan')
    df['n_pos'] = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index_label='class')


def test_report_has_a_column_per_recipe(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, 'WORK', tmp_path)
    data = tmp_path / 'data' / 'CPSC'
    data.mkdir(parents=True)
    run = utils.run_name(data, 'all', 42)
    fake_metrics(tmp_path / 'results' / run / 'metrics.csv', 0.95, 0.80)
    out = tmp_path / 'REPORT.md'
    pipeline.write_paper_report(data, 42, [None], out)
    assert '| macro AUC | 0.950 | 0.970 | -0.020 |' in out.read_text()
    fake_metrics(tmp_path / 'runs' / 'ours' / 'results' / run / 'metrics.csv', 0.96, 0.82)
    pipeline.write_paper_report(data, 42, [None], out)
    text = out.read_text()
    assert '| metric | study recipe | ours | published | study recipe - published |' in text
    assert '| macro AUC | 0.950 | 0.960 | 0.970 | -0.020 |' in text
    assert '| macro F1 | 0.800 | 0.820 | 0.813 | -0.013 |' in text
    assert 'Folds: no folds.json' in text
