"""The global ECG measurements: one table of their keys, names and units.

Every list of them is derived from MEASUREMENTS: the dict keys measure.py
returns (KEYS), predict.py's CSV columns, expert_features.py's columns, the
rows of the app, its PDF report and the API, and the cart's own figures that
the format readers keep (DEVICE_KEYS, written as `device_<key>` columns). The
table lives in the record layer, not in measure.py, because the format
readers need the cart's keys and this layer imports nothing from the scripts
above it; measure.py re-exports it.
"""
from typing import NamedTuple


class Measurement(NamedTuple):
    key: str       # measure()'s key and predict.py's column
    abbrev: str    # as one printed line shows it ('QTcB'; an axis by its wave)
    name: str      # in words
    unit: str      # 'beats/min', 'ms' or 'degrees'
    ours: bool     # measure.py computes it
    cart: bool     # a cart may report it (records.Record.device_measurements)


MEASUREMENTS = (
    Measurement('hr', 'HR', 'heart rate', 'beats/min', True, True),
    Measurement('pr_ms', 'PR', 'PR interval', 'ms', True, True),
    Measurement('qrs_ms', 'QRS', 'QRS duration', 'ms', True, True),
    Measurement('qt_ms', 'QT', 'QT interval', 'ms', True, True),
    # Carts print one QTc, by their own formula (mostly Bazett); ours gives two.
    Measurement('qtc_ms', 'QTc', "QTc by the cart's formula", 'ms', False, True),
    Measurement('qtc_bazett_ms', 'QTcB', 'QTc, Bazett', 'ms', True, False),
    Measurement('qtc_fridericia_ms', 'QTcF', 'QTc, Fridericia', 'ms', True, False),
    Measurement('p_axis', 'P', 'P axis (frontal plane)', 'degrees', True, True),
    Measurement('qrs_axis', 'QRS', 'QRS axis (frontal plane)', 'degrees', True, True),
    Measurement('t_axis', 'T', 'T axis (frontal plane)', 'degrees', True, True),
)
BY_KEY = {m.key: m for m in MEASUREMENTS}
KEYS = tuple(m.key for m in MEASUREMENTS if m.ours)            # measure.py's, in this order
DEVICE_KEYS = tuple(m.key for m in MEASUREMENTS if m.cart)     # the cart's, in this order
AXES = tuple(m.key for m in MEASUREMENTS if m.unit == 'degrees')
DEVICE_PREFIX = 'device_'   # the cart's figures beside ours: device_hr, device_pr_ms, ...
# The cart's QTc is shown beside our Bazett QTc, the formula most carts use.
CART_BESIDE = {m.key: m.key for m in MEASUREMENTS if m.ours and m.cart} | \
    {'qtc_bazett_ms': 'qtc_ms'}


def device_column(key):
    """The column of the cart's figure `key`: 'pr_ms' -> 'device_pr_ms'."""
    return DEVICE_PREFIX + key


# Carts write 0 for an interval or a rate they did not measure (12SL's PR of
# an atrial fibrillation, a failed analysis): 0 ms or 0 beats/min is "not
# measured", never a value. An axis of 0 degrees is a real axis.
ZERO_IS_ABSENT = tuple(m.key for m in MEASUREMENTS if m.cart and m.unit != 'degrees')

# --------------------------------------------------------------------------
# The carts' own codes for the figures above: vendor -> {code: key}, the one
# table the format readers look their codes up in. Where two codes give one
# key in one block (Philips' heartrate and meanventrate), the first in this
# order that the block holds wins (vendor_values).
VENDOR_CODES = {
    # GE 12SL as MUSE names it (RestingECGMeasurements)
    'muse': {'VentricularRate': 'hr', 'PRInterval': 'pr_ms', 'QRSDuration': 'qrs_ms',
             'QTInterval': 'qt_ms', 'QTCorrected': 'qtc_ms', 'PAxis': 'p_axis',
             'RAxis': 'qrs_axis', 'TAxis': 't_axis'},
    # GE 12SL as CardioSoft names it (PQ for PR)
    'cardiosoft': {'VentricularRate': 'hr', 'PQInterval': 'pr_ms', 'QRSDuration': 'qrs_ms',
                   'QTInterval': 'qt_ms', 'QTCInterval': 'qtc_ms', 'PAxis': 'p_axis',
                   'RAxis': 'qrs_axis', 'TAxis': 't_axis'},
    # Philips: the interpretation's globalmeasurements (1.04: heartrate, print, ...; qtcb
    # is the printed QTc) or interpretationmeasurements (1.03: mean*), else the cross-lead
    # block; the same tags in leadmeasurements are one lead's (records/formats/philips.py)
    'philips': {'heartrate': 'hr', 'meanventrate': 'hr', 'print': 'pr_ms', 'meanprint': 'pr_ms',
                'qrsdur': 'qrs_ms', 'meanqrsdur': 'qrs_ms', 'qtint': 'qt_ms',
                'meanqtint': 'qt_ms', 'qtcb': 'qtc_ms', 'meanqtc': 'qtc_ms',
                'pfrontaxis': 'p_axis', 'qrsfrontaxis': 'qrs_axis', 'tfrontaxis': 't_axis'},
    # HL7 aECG annotation codes: MDC reference IDs (ISO/IEEE 11073-10101), upper case
    'aecg': {'MDC_ECG_HEART_RATE': 'hr', 'MDC_ECG_TIME_PD_PR': 'pr_ms',
             'MDC_ECG_TIME_PD_PR_GL': 'pr_ms', 'MDC_ECG_TIME_PD_QRS': 'qrs_ms',
             'MDC_ECG_TIME_PD_QRS_GL': 'qrs_ms', 'MDC_ECG_TIME_PD_QT': 'qt_ms',
             'MDC_ECG_TIME_PD_QT_GL': 'qt_ms', 'MDC_ECG_TIME_PD_QTC': 'qtc_ms',
             'MDC_ECG_TIME_PD_QTCB': 'qtc_ms', 'MDC_ECG_ANGLE_P_FRONT': 'p_axis',
             'MDC_ECG_ANGLE_QRS_FRONT': 'qrs_axis', 'MDC_ECG_ANGLE_T_FRONT': 't_axis'},
    # DICOM WaveformAnnotationSequence concept codes. SCPECG and LOINC (8867-4) as
    # carts write them; MDC numeric codes (partition 2, '2:N') as GE-to-DICOM converters
    # write them, from DICOM PS3.16's context groups over ISO/IEEE 11073-10101:
    # CID 3689 ECG Global Waveform Duration (2:15872 PR, 2:16144 PQ, 2:16156 QRS,
    # 2:16160 QT, global), CID 3227 QTc Measurement (2:15876 QTc global, 2:15880 Bazett),
    # CID 3229 ECG Axis Measurement (2:16128 P, 2:16132 QRS, 2:16136 T), and
    # MDC_ECG_HEART_RATE 2:16770. The RR interval (SCPECG 5.10.2.1-3, MDC 2:16000)
    # gives the rate where no rate is coded (records/formats/dicom.py).
    'dicom': {'5.10.2.5-1': 'hr', '8867-4': 'hr', '2:16770': 'hr',
              '5.13.5-7': 'pr_ms', '2:15872': 'pr_ms', '2:16144': 'pr_ms',
              '5.13.5-9': 'qrs_ms', '2:16156': 'qrs_ms', '5.13.5-11': 'qt_ms', '2:16160': 'qt_ms',
              '5.10.2.5-5': 'qtc_ms', '2:15876': 'qtc_ms', '2:15880': 'qtc_ms',
              '5.10.3-11': 'p_axis', '2:16128': 'p_axis', '5.10.3-13': 'qrs_axis',
              '2:16132': 'qrs_axis', '5.10.3-15': 't_axis', '2:16136': 't_axis'},
}
# Codes of the RR interval (ms), from which a rate is derived where none is coded.
RR_CODES = {'dicom': ('5.10.2.1-3', '2:16000')}


def vendor_values(vendor, value_of):
    """{key: number} of one block of the cart's figures: value_of(code) gives
    the number a code holds in that block, or None; per key, the first code
    in VENDOR_CODES[vendor]'s order that holds one wins."""
    out = {}
    for code, key in VENDOR_CODES[vendor].items():
        if key not in out:
            v = value_of(code)
            if v is not None:
                out[key] = v
    return out
