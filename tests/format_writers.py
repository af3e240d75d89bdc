"""Files in the vendors' layouts that the tests write, each carrying made-up
identifiers (patient name, ID, birth date, a physician) that must never
appear in any output: a DICOM 12-lead waveform (pydicom) and a GE MUSE XML;
and SCP-ECG records built section by section from EN 1064."""
import base64
import binascii
import struct

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


# --------------------------------------------------------------------------
# SCP-ECG (EN 1064), written from the standard's sections: a record from
# its section bodies, Huffman coding with any table of section 2's layout,
# and the two lossy steps a cart may take before coding (reference-beat
# subtraction, bimodal decimation).

def _scp_default_table():
    """EN 1064's default table as section 2 code structures (prefix bits,
    entire bits, mode, base value, code as a bit string): 0 -> '0'; +-k
    (k = 1..8) -> k ones, a '0', a sign bit; then the 8- and 16-bit escapes."""
    table = [(1, 1, 1, 0, '0')]
    for k in range(1, 9):
        table += [(k + 2, k + 2, 1, s * k, '1' * k + '0' + ('1' if s < 0 else '0'))
                  for s in (1, -1)]
    return table + [(10, 18, 1, 0, '1' * 9 + '0'), (10, 26, 1, 0, '1' * 10)]


SCP_DEFAULT_TABLE = _scp_default_table()


def scp_huffman(values, tables=(SCP_DEFAULT_TABLE,), switches=None):
    """Values -> bytes (MSB first) with section 2 tables, starting with table
    1; switches: {index: table number} writes that table's switch code
    before the value at index. A value is a table's own code where one has
    that base value, else an escape code wide enough for it."""
    out, table = [], tables[0]
    for i, v in enumerate(int(v) for v in values):
        if switches and i in switches:
            out.append(next(c for p, t, m, b, c in table if m == 0 and b == switches[i]))
            table = tables[switches[i] - 1]
        direct = [c for p, t, m, b, c in table if m == 1 and p == t and b == v]
        if direct:
            out.append(direct[0])
            continue
        p, t, _, _, c = min((e for e in table if e[2] == 1 and e[1] > e[0] and
                             -(1 << (e[1] - e[0] - 1)) <= v < 1 << (e[1] - e[0] - 1)),
                            key=lambda e: e[1])
        out.append(c + format(v & ((1 << (t - p)) - 1), f'0{t - p}b'))
    bits = ''.join(out)
    bits += '0' * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, 'big') if bits else b''


def scp_section2(tables):
    """Section 2's body for tables of (prefix, entire, mode, base, code
    string): each base code stored with its first bit least significant."""
    body = struct.pack('<H', len(tables))
    for table in tables:
        body += struct.pack('<H', len(table)) + b''.join(
            struct.pack('<BBBhI', p, t, m, b, int(c[::-1], 2)) for p, t, m, b, c in table)
    return body


def scp_section3(counts, flags=0, first=1):
    """Section 3: one lead per count (codes 1, 2, ... as SCP-ECG's table 6
    numbers I, II, V1...), the ranges first..count; flags bit 0 = reference
    beat subtracted, bit 2 = leads recorded simultaneously."""
    return bytes([len(counts), flags]) + b''.join(
        struct.pack('<IIB', first, c, 1 + k % 8) for k, c in enumerate(counts))


def scp_leads_section(chunks, avm=1000, interval=2000, diff=0, byte6=0):
    """Section 5 or 6: AVM (nV), sample interval (us), difference order,
    byte 6 (section 6: bimodal compression used), each lead's byte count,
    then the leads' bytes."""
    return struct.pack('<HHBB', avm, interval, diff, byte6) + \
        struct.pack(f'<{len(chunks)}H', *[len(c) for c in chunks]) + b''.join(chunks)


def scp_section4(ms, fcm, zones, protected=None):
    """Section 4: reference beat 0's length (ms) and fiducial sample (from
    1), then per QRS its beat type, SB, fc, SE, then per QRS QB, QE."""
    body = struct.pack('<HHH', ms, fcm, len(zones)) + b''.join(
        struct.pack('<HIII', *z) for z in zones)
    return body + b''.join(struct.pack('<II', *q) for q in (protected or []))


def scp_record(path, sections):
    """An SCP-ECG record of {section id: body}: section 0's pointers to ids
    0-11, each section's 16-byte header, the record's length and CRC."""
    def section(sid, body):
        return struct.pack('<HHIBB6s', 0, sid, 16 + len(body), 20, 20, b'SCPECG') + body
    ids = list(range(12))
    s0_len = 16 + 10 * len(ids)
    offset, pointers, rest = 6 + s0_len, b'', b''
    for i in ids[1:]:
        sec = section(i, sections[i]) if i in sections else b''
        pointers += struct.pack('<HII', i, len(sec), offset + 1 if sec else 0)
        offset += len(sec)
        rest += sec
    body = section(0, struct.pack('<HII', 0, s0_len, 7) + pointers) + rest
    rec = struct.pack('<I', 6 + len(body)) + body
    path.write_bytes(struct.pack('<H', binascii.crc_hqx(rec, 0xFFFF)) + rec)
    return path


def scp_differences(x, order):
    """EN 1064's first or second differences (the first values as they are)."""
    x = np.asarray(x, np.int64)
    if order == 1:
        return np.r_[x[:1], np.diff(x)]
    if order == 2:
        return np.r_[x[:2], x[2:] - 2 * x[1:-1] + x[:-2]]
    return x


def scp_subtract(signal, beat, fcm, zones, ratio=1):
    """The residual a cart stores: the reference beat (in units of `ratio`
    rhythm LSB: beat AVM / rhythm AVM) taken away in each type-0 zone
    (type, SB, fc, SE; samples from 1), its sample fcm on fc."""
    res = np.array(signal, np.int64)
    for kind, sb, fc, se in zones:
        if kind == 0:
            at = fcm - 1 - (fc - sb)
            res[sb - 1:se] -= (beat[at:at + se - sb + 1] * ratio).astype(np.int64)
    return res


def scp_decimate(residual, protected, k):
    """Bimodal compression of one lead (samples from 1): the protected zones
    (QB, QE) kept, each run between them stored as the rounded means of its
    blocks of k samples, then its last samples % k as they are."""
    out, at, n = [], 1, len(residual)
    for qb, qe in list(protected) + [(n + 1, n)]:
        run = np.asarray(residual[at - 1:qb - 1], np.float64)
        m = len(run) // k
        out += [np.rint(run[:m * k].reshape(m, k).mean(1)), run[m * k:],
                residual[qb - 1:qe]]
        at = qe + 1
    return np.concatenate(out).astype(np.int64)
