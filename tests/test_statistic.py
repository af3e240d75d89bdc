"""statistic.py: the dataset table on hand-made reference.csv/labels.csv whose
numbers are worked out here by hand."""
import math

import numpy as np
import pandas as pd
import pytest

import statistic
from utils import CLASSES

# Six records. A0003 is AF and PAC (counts in both); A0004 has no age and
# unknown sex; A0005 is a 250 Hz record (length 10 s); A0006 has sex missing.
REFERENCE = """patient_id,sample_rate,signal_len,age,sex,dx
A0001,500,5000,60,Male,426783006
A0002,500,10000,70,Female,164889003
A0003,500,7500,50,Male,"164889003,284470004"
A0004,500,5000,,Unknown,164889003
A0005,250,2500,-1,Female,426783006
A0006,500,30000,80,,284470004
"""


def write_tables(folder, reference=REFERENCE):
    (folder / 'reference.csv').write_text(reference)
    labels = pd.DataFrame(0, index=[f'A000{i}' for i in range(1, 7)], columns=CLASSES)
    labels.loc['A0001', 'SNR'] = 1
    labels.loc['A0002', 'AF'] = 1
    labels.loc['A0003', ['AF', 'PAC']] = 1
    labels.loc['A0004', 'AF'] = 1
    labels.loc['A0005', 'SNR'] = 1
    labels.loc['A0006', 'PAC'] = 1
    labels['fold'] = [1, 2, 3, 4, 5, 6]
    labels.index.name = 'patient_id'
    labels.to_csv(folder / 'labels.csv')


def sd(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def test_table_counts_ages_sexes_and_lengths_per_class_and_overall(tmp_path):
    write_tables(tmp_path)
    out = tmp_path / 'res' / 'stats.csv'
    md = tmp_path / 'res' / 'stats.md'
    statistic.main(['--data-dir', str(tmp_path), '--out', str(out), '--markdown', str(md)])
    t = pd.read_csv(out, index_col='class')
    assert list(t.index) == CLASSES + ['All']

    # AF: A0002 (70 F, 20 s), A0003 (50 M, 15 s), A0004 (no age, unknown sex, 10 s)
    af = t.loc['AF']
    assert af.n == 3 and af.pct == pytest.approx(100 * 3 / 6)
    assert af.n_male == 1 and af.n_sex_known == 2 and af.male_pct == pytest.approx(50.0)
    assert af.n_age_known == 2
    assert af.age_mean == pytest.approx(60.0) and af.age_sd == pytest.approx(sd([70, 50]))
    assert af.length_mean_s == pytest.approx(15.0)
    assert af.length_sd_s == pytest.approx(sd([20, 15, 10]))

    # PAC: A0003 (50 M, 15 s) and A0006 (80, sex missing, 60 s)
    pac = t.loc['PAC']
    assert pac.n == 2 and pac.n_male == 1 and pac.n_sex_known == 1
    assert pac.male_pct == pytest.approx(100.0)
    assert pac.age_mean == pytest.approx(65.0) and pac.age_sd == pytest.approx(sd([50, 80]))
    assert pac.length_mean_s == pytest.approx(37.5) and pac.length_max_s == 60.0

    # SNR: A0001 (60 M, 10 s) and A0005 (age -1 = unknown, F, 2500 samples at 250 Hz)
    snr = t.loc['SNR']
    assert snr.n == 2 and snr.n_male == 1 and snr.male_pct == pytest.approx(50.0)
    assert snr.n_age_known == 1 and snr.age_mean == 60.0 and np.isnan(snr.age_sd)
    assert snr.length_mean_s == 10.0 and snr.length_sd_s == 0.0

    # A class without records: zero counts, NaN statistics.
    assert t.loc['LBBB'].n == 0 and t.loc['LBBB'].pct == 0.0
    assert np.isnan(t.loc['LBBB'].age_mean) and np.isnan(t.loc['LBBB'].male_pct)

    # All: a multi-label record counts once here.
    a = t.loc['All']
    ages = [60, 70, 50, 80]
    lengths = [10, 20, 15, 10, 10, 60]
    assert a.n == 6 and a.pct == 100.0
    assert a.n_male == 2 and a.n_sex_known == 4 and a.male_pct == pytest.approx(50.0)
    assert a.age_mean == pytest.approx(65.0) and a.age_sd == pytest.approx(sd(ages))
    assert a.length_mean_s == pytest.approx(sum(lengths) / 6)
    assert a.length_sd_s == pytest.approx(sd(lengths))
    assert a.length_min_s == 10.0

    text = md.read_text()
    assert ('| AF | 3 (50.00) | 1 (50.00), 1 unknown | 60.00 (14.14), 1 unknown '
            '| 15.00 (5.00) |') in text
    assert '| LBBB | 0 (0.00) | 0 (n/a) | n/a (n/a) | n/a (n/a) |' in text


def test_prints_the_markdown_table_and_writes_the_csv_atomically(tmp_path, capsys):
    write_tables(tmp_path)
    statistic.main(['--data-dir', str(tmp_path), '--out', str(tmp_path / 's.csv')])
    printed = capsys.readouterr().out
    assert printed.startswith('| class | N (%) |')
    assert '| All | 6 (100.00) |' in printed
    assert not list(tmp_path.glob('.*.tmp'))  # atomic write left no temporary


def test_missing_files_name_the_fix(tmp_path):
    with pytest.raises(SystemExit, match=r'reference\.csv not found.*preprocess\.py --data-dir'):
        statistic.main(['--data-dir', str(tmp_path), '--out', str(tmp_path / 's.csv')])
    (tmp_path / 'reference.csv').write_text(REFERENCE)
    with pytest.raises(SystemExit, match=r'labels\.csv not found'):
        statistic.main(['--data-dir', str(tmp_path), '--out', str(tmp_path / 's.csv')])


def test_records_missing_from_reference(tmp_path):
    write_tables(tmp_path, reference=REFERENCE.replace(
        'A0006,500,30000,80,,284470004\n', ''))
    with pytest.raises(SystemExit, match='not in reference.csv.*A0006'):
        statistic.main(['--data-dir', str(tmp_path), '--out', str(tmp_path / 's.csv')])
