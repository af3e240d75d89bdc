"""Files in the vendors' layouts that the tests write, each carrying made-up
identifiers (patient name, ID, birth date, a physician) that must never
appear in any output: a DICOM 12-lead waveform (pydicom) and a GE MUSE XML."""
import base64

import numpy as np
from helpers import ecg_like
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from records import formats

# Made-up identifiers: each must never appear in any output.
NAME, FAMILY, PID, BIRTH, DOCTOR = 'Zyxwvutsrq', 'Qwertyuiop', 'PID8675309', '19230405', \
    'Drmcfakerson'
SECRETS = [NAME, FAMILY, PID, BIRTH, DOCTOR]
SOP_UID = '1.2.826.0.1.3680043.8.498.99887766554433221100'


# --------------------------------------------------------------------------
# Writers.

def write_dicom(path, digital, fs, sensitivity=2.5, baseline=0.0, units='uV', median=True,
                sop='1.2.840.10008.5.1.4.1.1.9.1.1', codes=None):
    """A 12-lead ECG Waveform Storage file (or another SOP class) with
    identifiers in every field; codes: the channels' (code value, meaning)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = SOP_UID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, SOP_UID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = f'{FAMILY}^{NAME}', PID, BIRTH
    ds.PatientAge, ds.PatientSex = '061Y', 'M'
    ds.ReferringPhysicianName, ds.OperatorsName = DOCTOR, DOCTOR
    ds.StudyInstanceUID = '1.2.3.8675309.'  # invalid (trailing dot): pydicom would quote it

    def group(data, label):
        g = Dataset()
        g.MultiplexGroupLabel = label
        g.SamplingFrequency = fs
        g.NumberOfWaveformChannels, g.NumberOfWaveformSamples = data.shape[1], data.shape[0]
        g.WaveformBitsAllocated, g.WaveformSampleInterpretation = 16, 'SS'
        chans = []
        for code, meaning in (codes or [(f'5.6.3-9-{c}', f'Lead {formats.SCP_LEADS[c]}') for c in
                                        (1, 2, 61, 62, 63, 64, 3, 4, 5, 6, 7, 8)])[:data.shape[1]]:
            ch, src, unit = Dataset(), Dataset(), Dataset()
            src.CodeValue, src.CodingSchemeDesignator = code, 'SCPECG'
            src.CodeMeaning = meaning
            unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = units, 'UCUM', units
            ch.ChannelSourceSequence, ch.ChannelSensitivityUnitsSequence = [src], [unit]
            ch.ChannelSensitivity, ch.ChannelSensitivityCorrectionFactor = sensitivity, 1
            ch.ChannelBaseline, ch.ChannelSampleSkew, ch.WaveformBitsStored = baseline, 0, 16
            chans.append(ch)
        g.ChannelDefinitionSequence = chans
        g.WaveformData = np.asarray(data, '<i2').tobytes()
        return g
    groups = [group(digital, 'RHYTHM')]
    if median:
        groups.append(group(digital[:fs // 2] * 0 + 7, 'MEDIAN BEAT'))
    ds.WaveformSequence = groups
    notes = []
    for text in ('SINUS RHYTHM', f'referred by {DOCTOR}'[:0] or 'NORMAL ECG'):
        a = Dataset()
        a.UnformattedTextValue = text
        notes.append(a)
    a, cn = Dataset(), Dataset()
    cn.CodeValue, cn.CodingSchemeDesignator, cn.CodeMeaning = '5.13.5-9', 'SCPECG', 'QRS Duration'
    a.ConceptNameCodeSequence, a.NumericValue = [cn], 96
    ds.WaveformAnnotationSequence = notes + [a]
    ds.save_as(str(path), enforce_file_format=True)
    return path


def muse_xml(digital, leads=('I', 'II', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'), per_bit=4.88,
             extra=''):
    lead_data = ''.join(
        f'<LeadData><LeadAmplitudeUnitsPerBit>{per_bit}</LeadAmplitudeUnitsPerBit>'
        f'<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{lead}</LeadID>'
        f"<WaveFormData>{base64.b64encode(np.asarray(col, '<i2').tobytes()).decode()}"
        f'</WaveFormData></LeadData>' for lead, col in zip(leads, np.asarray(digital).T))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<RestingECG>{extra}'
            f'<PatientDemographics><PatientID>{PID}</PatientID><PatientAge>61</PatientAge>'
            f'<AgeUnits>YEARS</AgeUnits><DateofBirth>{BIRTH}</DateofBirth><Gender>FEMALE</Gender>'
            f'<PatientLastName>{FAMILY}</PatientLastName><PatientFirstName>{NAME}'
            f'</PatientFirstName></PatientDemographics><TestDemographics><OrderingMDLastName>'
            f'{DOCTOR}</OrderingMDLastName></TestDemographics>'
            f'<RestingECGMeasurements><VentricularRate>72</VentricularRate><QRSDuration>88'
            f'</QRSDuration></RestingECGMeasurements><Diagnosis><DiagnosisStatement><StmtText>'
            f'Sinus rhythm</StmtText><StmtFlag>ENDSLINE</StmtFlag></DiagnosisStatement>'
            f'</Diagnosis><Waveform><WaveformType>Rhythm</WaveformType><SampleBase>500'
            f'</SampleBase>{lead_data}</Waveform></RestingECG>')


def digital_12(n=5000, fs=500, seed=0):
    return np.rint(ecg_like(n, fs, 12, seed=seed) * 400).astype(np.int16)  # 2.5 uV/LSB
