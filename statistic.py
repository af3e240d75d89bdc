"""The dataset table of the study (Table 1 of Zhang et al., "Interpretable deep
learning for automatic diagnosis of 12-lead electrocardiogram", iScience 2021):
per class the number of records, the number of men, age and signal length.

    python preprocess.py --data-dir data/CPSC     # writes reference.csv, labels.csv
    python statistic.py --data-dir data/CPSC      # prints the table as Markdown
    python statistic.py --data-dir data/CPSC --out results/CPSC-statistics.csv \
        --markdown results/CPSC-statistics.md

Writes --out (default results/statistics.csv): one row per class plus 'All',
numeric columns n, pct, n_male, male_pct, n_sex_known, age_mean, age_sd,
n_age_known, length_mean_s, length_sd_s, length_min_s, length_max_s.

The records are those of labels.csv (preprocess.py keeps there only records
with at least one of the nine classes). A record with several labels counts
in each of its classes (so the class counts add up to more than 'All'). The
percentage of a class is its share of all records. The male percentage is
the share of men among the class's records whose sex is known; ages are
averaged over the records with a known age, so a missing age or sex
('Unknown', empty, NaN, -1) never counts as a zero; the Markdown table says
how many are unknown.

The study's own script divided signal_len by 500; here each record's length is
signal_len / sample_rate, which is the same for CPSC2018 and right for the
other databases. SDs are sample SDs (ddof=1), as pandas computes them.
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from utils import CLASSES, atomic_to_csv, atomic_write_text

NUMERIC_COLUMNS = ['n', 'pct', 'n_male', 'male_pct', 'n_sex_known',
                   'age_mean', 'age_sd', 'n_age_known',
                   'length_mean_s', 'length_sd_s', 'length_min_s', 'length_max_s']


def get_args_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-dir', default='data/CPSC', metavar='DIR',
                        help='folder with reference.csv and labels.csv from '
                             'preprocess.py (default: data/CPSC)')
    parser.add_argument('--out', default='results/statistics.csv', metavar='CSV',
                        help='where the numeric table goes (default: '
                             'results/statistics.csv)')
    parser.add_argument('--markdown', default=None, metavar='MD',
                        help='also write the printed Markdown table here '
                             '(default: print only)')
    return parser


def load_records(data_dir):
    """reference.csv joined with labels.csv -> one row per record with the
    class columns, age (float, NaN = unknown), male (1.0/0.0/NaN = unknown)
    and length_s (seconds)."""
    data_dir = Path(data_dir)
    tables = {}
    for name in ('reference.csv', 'labels.csv'):
        path = data_dir / name
        if not path.is_file():
            raise SystemExit(f'error: {path} not found; run '
                             f'`python preprocess.py --data-dir {data_dir}` first')
        # patient_id as str: 'A0001' and '00001' must both survive unchanged.
        tables[name] = pd.read_csv(path, dtype={'patient_id': str})
    reference, labels = tables['reference.csv'], tables['labels.csv']
    for name, table, needed in (
            ('reference.csv', reference,
             ['patient_id', 'sample_rate', 'signal_len', 'age', 'sex']),
            ('labels.csv', labels, ['patient_id'] + CLASSES)):
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise SystemExit(f'error: {data_dir / name} lacks columns {missing}; '
                             f'rerun `python preprocess.py --data-dir {data_dir}`')

    df = labels[['patient_id'] + CLASSES].merge(
        reference[['patient_id', 'sample_rate', 'signal_len', 'age', 'sex']],
        on='patient_id', how='left', validate='one_to_one')
    orphans = df['sample_rate'].isna()
    if orphans.any():
        raise SystemExit(f'error: {int(orphans.sum())} records of labels.csv are '
                         f'not in reference.csv (e.g. {df.patient_id[orphans].iloc[0]}); '
                         f'rerun `python preprocess.py --data-dir {data_dir}`')

    age = pd.to_numeric(df['age'], errors='coerce')
    # CPSC2018 and some Challenge headers write unknown ages as -1 or 'NaN'.
    df['age'] = age.where(age >= 0)
    sex = df['sex'].astype('string').str.strip().str.lower()
    df['male'] = np.where(sex.isin(['male', 'm']), 1.0,
                          np.where(sex.isin(['female', 'f']), 0.0, np.nan))
    df['length_s'] = df['signal_len'].astype(float) / df['sample_rate'].astype(float)
    df[CLASSES] = df[CLASSES].astype(int)
    return df


def summarize(df):
    """The numeric table: one row per class in utils.CLASSES, then 'All'."""
    total = len(df)
    rows = {}
    groups = [(c, df[df[c] == 1]) for c in CLASSES] + [('All', df)]
    for name, g in groups:
        known_sex = g['male'].dropna()
        rows[name] = {
            'n': len(g),
            'pct': 100.0 * len(g) / total if total else np.nan,
            'n_male': int(known_sex.sum()),
            'male_pct': 100.0 * known_sex.mean() if len(known_sex) else np.nan,
            'n_sex_known': len(known_sex),
            'age_mean': g['age'].mean(),
            'age_sd': g['age'].std(),
            'n_age_known': int(g['age'].notna().sum()),
            'length_mean_s': g['length_s'].mean(),
            'length_sd_s': g['length_s'].std(),
            'length_min_s': g['length_s'].min(),
            'length_max_s': g['length_s'].max(),
        }
    table = pd.DataFrame.from_dict(rows, orient='index')[NUMERIC_COLUMNS]
    table.index.name = 'class'
    return table


def _num(v, fmt):
    return 'n/a' if not np.isfinite(v) else format(v, fmt)


def format_table(table):
    """The paper's layout as Markdown: N (%), male N (%), age and length
    mean (SD). Counts of unknown age/sex are given when there are any."""
    lines = ['| class | N (%) | male N (%) | age, mean (SD) | length (s), mean (SD) |',
             '| --- | --- | --- | --- | --- |']
    for name, r in table.iterrows():
        male = f"{int(r.n_male)} ({_num(r.male_pct, '.2f')})"
        if r.n_sex_known < r.n:
            male += f', {int(r.n - r.n_sex_known)} unknown'
        age = f"{_num(r.age_mean, '.2f')} ({_num(r.age_sd, '.2f')})"
        if r.n_age_known < r.n:
            age += f', {int(r.n - r.n_age_known)} unknown'
        length = f"{_num(r.length_mean_s, '.2f')} ({_num(r.length_sd_s, '.2f')})"
        lines.append(f"| {name} | {int(r.n)} ({_num(r.pct, '.2f')}) | {male} | "
                     f'{age} | {length} |')
    return '\n'.join(lines)


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    table = summarize(load_records(args.data_dir))
    text = format_table(table)
    print(text)
    atomic_to_csv(table, args.out)
    print(f'wrote {args.out}')
    if args.markdown:
        atomic_write_text(text + '\n', args.markdown)
        print(f'wrote {args.markdown}')
    return table


if __name__ == '__main__':
    main()
