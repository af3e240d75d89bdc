"""Leak-free folds (folds.py, preprocess.py): duplicates and patients grouped
before stratifying, existing folds kept, and the fold manifest that every
checkpoint and result carries, refused by predict.py, shap_values.py and
baselines.py when it differs."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, make_signal, make_tiny_cache, random_labels, write_record

import baselines
from archive import read_rows
import folds
import main as main_py
import predict
import preprocess
import runs
import shap_values
from dataset import load_labels
from utils import CLASSES


def run_pre(data_dir, *extra, capsys=None):
    preprocess.main(['--data-dir', str(data_dir), '--workers', '1', *extra])
    return capsys.readouterr().out if capsys else None


# --------------------------------------------------------------------------
# Groups.

def test_real_duplicate_pair_shares_one_fold(shared_data, tmp_path, capsys):
    """Georgia E07509 and E07510 of PhysioNet/CinC 2021 are byte-identical
    recordings under two names: one group, one fold."""
    src = shared_data / 'physionet2021'
    assert (src / 'E07509.mat').read_bytes() == (src / 'E07510.mat').read_bytes()
    data = tmp_path / 'PN'
    shutil.copytree(src, data)
    out = run_pre(data, capsys=capsys)
    labels = load_labels(data).set_index('patient_id')
    assert labels.loc['E07509', 'group'] == labels.loc['E07510', 'group'] == 'E07509'
    assert labels.loc['E07509', 'fold'] == labels.loc['E07510', 'fold']
    assert (labels['group'] == labels.index).sum() == len(labels) - 1  # the only shared group
    assert '1 duplicate recordings (identical signal files: E07509=E07510)' in out
    assert '1 groups hold more than one record (2 records)' in out
    meta = json.loads((data / 'folds.json').read_text())
    assert meta['duplicate_sets'] == [['E07509', 'E07510']] and meta['duplicates'] == 1
    assert meta['hash'] == folds.fold_manifest(load_labels(data))['hash']


def test_same_content_not_same_name_makes_a_duplicate(tmp_path, capsys):
    sig = make_signal(2000, seed=1)
    for name in ('A1', 'B7', 'C3'):
        write_record(tmp_path, name, sig, dx='164889003')
    write_record(tmp_path, 'D4', make_signal(2000, seed=2), dx='164889003')
    for i in range(8):
        write_record(tmp_path, f'Z{i}', make_signal(2000, seed=10 + i), dx='59118001')
    out = run_pre(tmp_path, capsys=capsys)
    labels = load_labels(tmp_path).set_index('patient_id')
    assert labels.loc[['A1', 'B7', 'C3'], 'group'].tolist() == ['A1'] * 3
    assert labels.loc[['A1', 'B7', 'C3'], 'fold'].nunique() == 1
    assert labels.loc['D4', 'group'] == 'D4'
    assert '2 duplicate recordings (identical signal files: A1=B7=C3)' in out


def ptbxl_like(folder, patients):
    """HR<ecg_id> records and a ptbxl_database.csv mapping them to patients."""
    rows = []
    for ecg, patient in patients.items():
        write_record(folder, f'HR{ecg:05d}', make_signal(1500, seed=ecg), dx='164889003')
        rows.append({'ecg_id': ecg, 'patient_id': float(patient), 'age': 60})
    pd.DataFrame(rows).to_csv(folder / 'ptbxl_database.csv', index=False)


def test_ptbxl_database_groups_records_of_one_patient(tmp_path, capsys):
    patients = {i: (7 if i <= 3 else 100 + i) for i in range(1, 21)}  # HR00001-3: one patient
    ptbxl_like(tmp_path, patients)
    out = run_pre(tmp_path, capsys=capsys)
    labels = load_labels(tmp_path).set_index('patient_id')
    trio = ['HR00001', 'HR00002', 'HR00003']
    assert labels.loc[trio, 'fold'].nunique() == 1
    assert labels.loc[trio, 'group'].nunique() == 1
    assert labels['group'].nunique() == 18
    assert '20 records with a patient id; 1 groups hold more than one record (3 records)' in out


def test_groups_file_takes_any_record_to_patient_csv(tmp_path, capsys):
    for i in range(20):
        write_record(tmp_path, f'R{i:02d}', make_signal(1500, seed=i), dx='164889003')
    csv = tmp_path.parent / 'patients.csv'
    pd.DataFrame({'record': [f'R{i:02d}' for i in range(20)],
                  'patient': [i // 4 for i in range(20)]}).to_csv(csv, index=False)
    run_pre(tmp_path, '--groups', str(csv), capsys=capsys)
    labels = load_labels(tmp_path)
    labels['patient'] = [int(p[1:]) // 4 for p in labels['patient_id']]
    assert (labels.groupby('patient')['fold'].nunique() == 1).all()
    assert labels['group'].nunique() == 5
    bad = tmp_path.parent / 'bad.csv'
    bad.write_text('record\nR00\n')
    with pytest.raises(SystemExit, match='--groups .*bad.csv needs two columns'):
        run_pre(tmp_path, '--groups', str(bad))


def test_group_folds_never_split_a_group_and_stay_stratified():
    y = random_labels(3000, seed=5)
    rng = np.random.default_rng(0)
    sizes = rng.choice([1, 1, 1, 2, 3, 5], size=1500)  # patients with 1-5 records
    groups = np.repeat(np.arange(len(sizes)), sizes)[:3000]
    fold = folds.assign_group_folds(y, groups, seed=42)
    assert (pd.Series(fold).groupby(groups).nunique() == 1).all()
    assert sorted(set(fold)) == list(range(1, 11))
    per_fold = np.stack([y[fold == f].sum(0) for f in range(1, 11)])
    expected = y.sum(0) / 10
    assert np.abs(per_fold - expected).max() <= 0.15 * expected.max()
    assert np.abs(np.bincount(fold)[1:] - 300).max() <= 30
    # singletons only: exactly the per-record stratification
    assert np.array_equal(folds.assign_group_folds(y, np.arange(3000), seed=42),
                          preprocess.assign_folds(y, seed=42))


# --------------------------------------------------------------------------
# Existing folds are kept.

def small_db(folder, n=30):
    for i in range(n):
        write_record(folder, f'A{i:03d}', make_signal(1500, seed=i),
                     dx=['164889003', '59118001', '426783006'][i % 3])


def test_existing_folds_are_kept_unless_reassigned(tmp_path, capsys):
    small_db(tmp_path)
    run_pre(tmp_path, capsys=capsys)
    first = load_labels(tmp_path)
    out = run_pre(tmp_path, '--fold-seed', '1', capsys=capsys)
    assert 'kept the existing folds of 30 records' in out
    assert load_labels(tmp_path)['fold'].tolist() == first['fold'].tolist()
    assert json.loads((tmp_path / 'folds.json').read_text())['fold_seed'] == 42
    # a new record gets a fold, the others keep theirs
    write_record(tmp_path, 'A999', make_signal(1500, seed=99), dx='164889003')
    out = run_pre(tmp_path, '--fold-seed', '1', capsys=capsys)
    now = load_labels(tmp_path).set_index('patient_id')
    assert '1 new records assigned' in out
    assert now.loc[first['patient_id'], 'fold'].tolist() == first['fold'].tolist()
    run_pre(tmp_path, '--reassign-folds', '--fold-seed', '1', capsys=capsys)
    again = load_labels(tmp_path).set_index('patient_id')
    assert again.loc[first['patient_id'], 'fold'].tolist() != first['fold'].tolist()
    assert json.loads((tmp_path / 'folds.json').read_text())['fold_seed'] == 1


def test_old_folds_that_split_a_duplicate_are_refused(tmp_path, capsys):
    small_db(tmp_path, 20)
    write_record(tmp_path, 'COPY', make_signal(1500, seed=0), dx='164889003')  # = A000
    run_pre(tmp_path, capsys=capsys)
    labels = load_labels(tmp_path)
    # labels.csv as the old per-record code could have left it: the pair split
    labels.loc[labels['patient_id'] == 'COPY', 'fold'] = \
        labels.loc[labels['patient_id'] == 'A000', 'fold'].iloc[0] % 10 + 1
    labels.drop(columns='group').to_csv(tmp_path / 'labels.csv', index=False)
    with pytest.raises(SystemExit, match='different folds .*A000, COPY.*--reassign-folds'):
        run_pre(tmp_path)
    run_pre(tmp_path, '--reassign-folds', capsys=capsys)
    fixed = load_labels(tmp_path).set_index('patient_id')
    assert fixed.loc['A000', 'fold'] == fixed.loc['COPY', 'fold']


# --------------------------------------------------------------------------
# Manifests.

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny database and a 1-epoch resnet18: (data_dir, root)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp('manifest')
    data = make_tiny_cache(base / 'TINY')
    main_py.main(['--data-dir', str(data), '--epochs', '1', '--root', str(base), *FAST])
    yield data, base
    torch.set_num_threads(threads)


def moved_folds(data, tmp_path):
    """A copy of the database with five test-fold records swapped with training records."""
    other = tmp_path / 'TINY'
    shutil.copytree(data, other)
    labels = load_labels(other)
    test = labels.index[labels['fold'] == 10][:2]
    train = labels.index[labels['fold'] == 5][:2]
    labels.loc[test, 'fold'], labels.loc[train, 'fold'] = 5, 10
    labels.to_csv(other / 'labels.csv', index=False)
    return other


def test_checkpoint_and_results_carry_the_manifest(trained):
    data, root = trained
    ckpt = runs.read_checkpoint(root / 'models' / 'TINY-all-s42-f10' / 'best.pt')
    now = folds.fold_manifest(load_labels(data))
    assert ckpt['fold_manifest']['hash'] == now['hash']
    assert ckpt['fold_manifest']['assignment'] == now['assignment']
    predict.main(['--data-dir', str(data), '--root', str(root), '--test-fold', '10',
                  '--device', 'cpu', '--precision', 'fp32', '--n-boot', '0'])
    meta = json.loads((root / 'results' / 'TINY-all-s42-f10' / 'folds.json').read_text())
    assert meta['scored_on']['hash'] == meta['trained_on']['hash'] == now['hash']
    assert meta['trusted'] is False


def test_predict_refuses_a_test_fold_of_other_folds(trained, tmp_path):
    data, root = trained
    other = moved_folds(data, tmp_path)
    model = root / 'models' / 'TINY-all-s42-f10' / 'best.pt'
    argv = ['--data-dir', str(other), '--model-path', str(model), '--test-fold', '10',
            '--device', 'cpu', '--precision', 'fp32', '--n-boot', '0', '--root', str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        predict.main(argv)
    msg = str(e.value)
    assert 'trained on other folds' in msg
    assert '4 records changed fold, 0 added, 0 removed' in msg
    assert '2 records of test fold [10] were training records of the model' in msg
    # the tiny labels.csv was not written by preprocess.py: no fold seed to restore
    assert 'Restore the labels.csv it was trained with' in msg and '--trust-folds' in msg
    predict.main(argv + ['--trust-folds'])  # the user's word
    meta = json.loads((tmp_path / 'results' / 'TINY-all-s42-f10' / 'folds.json').read_text())
    assert meta['trusted'] is True


def test_checkpoint_without_manifest_scores_records_only(trained, tmp_path, shared_data):
    data, root = trained
    ckpt = runs.read_checkpoint(root / 'models' / 'TINY-all-s42-f10' / 'best.pt')
    bare = tmp_path / 'study.pt'
    torch.save(ckpt['model'], bare)  # the study's kind of file: weights only
    argv = ['--data-dir', str(data), '--model-path', str(bare), '--leads', 'all',
            '--test-fold', '10', '--device', 'cpu', '--precision', 'fp32', '--n-boot', '0',
            '--root', str(tmp_path)]
    with pytest.raises(SystemExit, match='no fold manifest.*--records.*--trust-folds'):
        predict.main(argv)
    predict.main(argv + ['--trust-folds'])
    df = read_rows(predict.main(['--model-path', str(bare), '--leads', 'all', '--device', 'cpu',
                                 '--records', str(shared_data / 'cpsc2018_wfdb' / 'A0001.hea'),
                                 '--out', str(tmp_path / 'p.csv'), '--root', str(tmp_path)]))
    assert df['record'].tolist() == ['A0001']


def test_shap_and_baselines_refuse_other_folds(trained, tmp_path, monkeypatch):
    data, root = trained
    other = moved_folds(data, tmp_path)
    # the scripts derive models/<run>/ from --data-dir's name: the copy is TINY too
    shutil.copytree(root / 'models', tmp_path / 'models')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match='trained on other folds.*shap_values|trained on other'):
        shap_values.main(['--data-dir', str(other), '--test-fold', '10', '--device', 'cpu',
                          '--max-records', '1'])
    monkeypatch.setattr('sys.argv', ['baselines.py', '--data-dir', str(other), '--test-fold',
                                     '10', '--classifier', 'LR', '--quick'])
    with pytest.raises(SystemExit, match='trained on other folds'):
        baselines.main()


def test_resume_refuses_changed_folds(trained, tmp_path):
    data, root = trained
    other = moved_folds(data, tmp_path)
    shutil.copytree(root / 'models', tmp_path / 'models')
    with pytest.raises(SystemExit, match='resuming would train on records of its test fold'):
        main_py.main(['--data-dir', str(other), '--epochs', '2', '--root', str(tmp_path),
                      '--resume', *FAST])


def test_manifest_is_the_sorted_pairs_and_ignores_row_order():
    a = pd.DataFrame({'patient_id': ['B', 'A', 'C'], 'fold': [2, 1, 3], **{c: 0 for c in CLASSES}})
    b = a.iloc[::-1]
    assert folds.fold_manifest(a)['hash'] == folds.fold_manifest(b)['hash']
    c = a.assign(fold=[2, 1, 4])
    assert folds.fold_manifest(a)['hash'] != folds.fold_manifest(c)['hash']
    change = folds.describe_change(folds.fold_manifest(a, 42), folds.fold_manifest(c, 1))
    assert change == 'fold seed 42 -> 1; 1 records changed fold, 0 added, 0 removed'


def test_refusal_names_the_fold_seed_to_restore(tmp_path, capsys):
    small_db(tmp_path)
    run_pre(tmp_path, capsys=capsys)
    trained_on = folds.current_manifest(tmp_path)
    assert trained_on['fold_seed'] == 42
    assert folds.check_manifest(trained_on, tmp_path, 'best.pt')['hash'] == trained_on['hash']
    run_pre(tmp_path, '--reassign-folds', '--fold-seed', '7', capsys=capsys)
    with pytest.raises(SystemExit) as e:
        folds.check_manifest(trained_on, tmp_path, 'best.pt')
    assert 'fold seed 42 -> 7' in str(e.value)
    assert f'preprocess.py --data-dir {tmp_path} --reassign-folds --fold-seed 42' in str(e.value)
    # and doing so restores exactly the folds the model was trained on
    run_pre(tmp_path, '--reassign-folds', '--fold-seed', '42', capsys=capsys)
    assert folds.check_manifest(trained_on, tmp_path, 'best.pt')['hash'] == trained_on['hash']
