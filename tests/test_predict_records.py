"""predict.py --records with records.py: any lead set (a lead-II model on
MIT-BIH 100), missing leads in one line, quality flags, --segments."""
import numpy as np
import pandas as pd
import pytest
from helpers import ecg_like, one_epoch_model, wrsamp
from helpers import predict_records as run

from utils import CLASSES


@pytest.fixture(scope='module')
def lead_ii_model(tmp_path_factory):
    """A 1-epoch resnet18 on lead II of the tiny database (window 256)."""
    return one_epoch_model(tmp_path_factory.mktemp('leadII'), 'II')


def test_lead_ii_model_scores_holter_and_derived_records(lead_ii_model, shared_data, tmp_path,
                                                         capsys):
    # lead II from MIT-BIH's MLII; from III and aVR of a 2-lead export; none in a lead-I one
    wrsamp(tmp_path, 'LIMB2', ecg_like(500 * 12, 500, 2), 500, ['III', 'avr'])
    wrsamp(tmp_path, 'WATCH', ecg_like(300 * 30, 300, 1), 300, ['I'])
    flat = ecg_like(500 * 12, 500, 2, seed=1)
    flat[:, 1] = 0.05
    wrsamp(tmp_path, 'FLATV5', flat, 500, ['II', 'V5'])
    df = run(lead_ii_model, shared_data / 'mitdb' / '100', tmp_path / 'LIMB2',
             tmp_path / 'WATCH', tmp_path / 'FLATV5', extra=['--out', str(tmp_path / 'p.csv')])
    out, err = capsys.readouterr()
    assert df['record'].tolist() == ['100', 'LIMB2', 'FLATV5']
    assert df['fs'].tolist() == [360, 500, 500]
    assert df['derived'].fillna('').tolist() == ['', 'II', '']
    assert df['quality'].tolist() == ['ok', 'ok', 'ok']  # V5 is not used by a lead-II model
    scores = df[[f'score_{c}' for c in CLASSES]].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert '100: ' in out and '(fs 360 Hz, 1805.6 s)' in out and 'derived II' in out
    lines = [line for line in err.splitlines() if 'WATCH' in line]
    assert lines == ['skipped WATCH: lacks lead(s) II (it has I; limb leads are derived only '
                     'from two others)']
    assert pd.read_csv(tmp_path / 'p.csv')['record'].tolist() == ['100', 'LIMB2', 'FLATV5']


def test_quality_warning_and_strict(lead_ii_model, tmp_path, capsys):
    sig = ecg_like(500 * 12, 500, 2, seed=2)
    limit = 32767 / 10000  # the ADC's limit at 10,000 units per mV
    # II saturates the ADC all along (the model's window is only 0.5 s here)
    sig[:, 0] = np.clip(4 * np.sin(2 * np.pi * 5 * np.arange(len(sig)) / 500), -limit, limit)
    wrsamp(tmp_path, 'SAT', sig, 500, ['II', 'V1'], gain=10000.0)
    df = run(lead_ii_model, tmp_path / 'SAT', extra=['--out', str(tmp_path / 'q.csv')])
    err = capsys.readouterr().err
    assert df['quality'].iloc[0].startswith('clipped II ')
    assert [line for line in err.splitlines() if 'SAT' in line] == \
        [f"warning: SAT: quality {df['quality'].iloc[0]}"]
    with pytest.raises(SystemExit, match=r'^error: WATCH: lacks lead\(s\) II'):
        wrsamp(tmp_path, 'WATCH', ecg_like(300 * 30, 300, 1), 300, ['I'])
        run(lead_ii_model, tmp_path / 'SAT', tmp_path / 'WATCH', extra=['--strict'])


def test_segments_of_a_long_record(lead_ii_model, tmp_path, capsys):
    fs, seconds = 360, 8 * 60
    sig = ecg_like(fs * seconds, fs, 2, seed=3)
    sig[fs * 100:fs * 100 + 5, 0] = np.nan  # inside one window only
    wrsamp(tmp_path, 'HOLTER', sig, fs, ['MLII', 'V5'])
    out_csv = tmp_path / 'seg.csv'
    df = run(lead_ii_model, tmp_path / 'HOLTER', extra=['--segments', '--out', str(out_csv)])
    out = capsys.readouterr().out
    window_s = 256 / 500
    n = int(np.ceil(seconds / window_s))
    assert len(df) == n and (df['record'] == 'HOLTER').all()
    # consecutive windows; the last one ends at the record's end (overlapping
    # the one before rather than padded)
    np.testing.assert_allclose(df['start_s'][:-1], np.arange(n - 1) * window_s)
    assert df['end_s'].iloc[-1] == pytest.approx(seconds)
    assert df['start_s'].iloc[-1] == pytest.approx(seconds - window_s)
    bad = df['quality'] != 'ok'
    assert bad.sum() == 1
    assert 'NaN/missing samples in lead(s) MLII' in df.loc[bad, 'quality'].iloc[0]
    assert df.loc[bad, 'start_s'].iloc[0] <= 100 < df.loc[bad, 'end_s'].iloc[0]
    assert df.loc[bad, 'score_SNR'].isna().all() and df.loc[~bad, 'score_SNR'].notna().all()
    assert f'HOLTER: {n} windows of 480 s at 360 Hz' in out and '1 unusable' in out
    assert len(pd.read_csv(out_csv)) == n
    # --strict stops at the unusable window, naming the record and the reason,
    # and leaves the CSV written before untouched
    with pytest.raises(SystemExit, match=r'^error: HOLTER: .*NaN/missing samples'):
        run(lead_ii_model, tmp_path / 'HOLTER', extra=['--segments', '--strict',
                                                       '--out', str(out_csv)])
    assert len(pd.read_csv(out_csv)) == n
