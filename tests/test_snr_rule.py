"""One meaning of SNR (utils.dx_to_classes, preprocess.py --snr-rule): the
study's CPSC2018 "Normal", not the challenge's "sinus rhythm" that PTB-XL,
Georgia and Chapman-Ningbo records carry beside abnormalities."""
import shutil

import pytest

import preprocess
from dataset import load_labels
from utils import dx_to_classes

PTBXL_SINUS = {'HR06000': 'T-wave abnormality', 'HR06001': 'ST changes',
               'HR06002': 'sinus bradycardia, incomplete RBBB'}


def test_snr_only_when_it_is_the_only_code():
    assert dx_to_classes(['426783006']) == ['SNR']
    assert dx_to_classes(['426783006', '164934002']) == []          # + T-wave abnormality
    assert dx_to_classes(['426783006', '59118001']) == ['RBBB']
    assert dx_to_classes(['426783006', '59118001'], snr_rule='sinus') == ['SNR', 'RBBB']
    assert dx_to_classes([426783006, ' 426783006 ']) == ['SNR']      # repeated, as int/str
    with pytest.raises(ValueError, match='snr_rule'):
        dx_to_classes(['426783006'], snr_rule='normal')


@pytest.fixture
def physionet2021(shared_data, tmp_path):
    data = tmp_path / 'PN'
    shutil.copytree(shared_data / 'physionet2021', data)
    return data


def test_ptbxl_sinus_records_are_not_snr(physionet2021, capsys):
    for name in PTBXL_SINUS:
        dx = (physionet2021 / f'{name}.hea').read_text().split('# Dx:')[1].split()[0]
        assert '426783006' in dx.split(',') and len(dx.split(',')) > 1, name
    preprocess.main(['--data-dir', str(physionet2021), '--workers', '1'])
    out = capsys.readouterr().out
    labels = load_labels(physionet2021)
    # none of the nine classes once sinus rhythm is not SNR: dropped as unlabelled
    assert not labels['patient_id'].isin(list(PTBXL_SINUS)).any()
    assert ('SNR rule only: 4 records have 426783006 (sinus rhythm) among other codes and '
            'are not SNR; 4 of them have none of the other eight classes and are dropped') in out
    # records whose only code is 426783006 stay SNR
    hea = {p.stem: p.read_text() for p in physionet2021.glob('*.hea')}
    only = [n for n, t in hea.items() if '# Dx: 426783006\n' in t]
    assert only and labels.set_index('patient_id').loc[only, 'SNR'].eq(1).all()


def test_sinus_rule_keeps_the_challenge_meaning(physionet2021, capsys):
    preprocess.main(['--data-dir', str(physionet2021), '--workers', '1', '--snr-rule', 'sinus'])
    out = capsys.readouterr().out
    labels = load_labels(physionet2021).set_index('patient_id')
    assert labels.loc[list(PTBXL_SINUS), 'SNR'].eq(1).all()
    assert 'SNR rule sinus: 4 records with 426783006 among other codes are labelled SNR' in out


def test_cpsc2018_labels_do_not_change(shared_data, tmp_path, capsys):
    for rule in ('only', 'sinus'):
        data = tmp_path / rule / 'CPSC'
        shutil.copytree(shared_data / 'cpsc2018_wfdb', data)
        preprocess.main(['--data-dir', str(data), '--workers', '1', '--snr-rule', rule])
        assert 'SNR rule' not in capsys.readouterr().out
        assert load_labels(data).set_index('patient_id').loc['A0001', 'RBBB'] == 1
