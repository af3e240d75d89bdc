"""The twelve standard leads: names, aliases, limb-lead algebra, lead maps."""
import re

# Other spellings of the twelve standard leads, lower case. MLII/ML2 is the
# modified lead II of Holter recordings (MIT-BIH), D1..D3 and DI..DIII the
# European names of the limb leads; the rest are exports' variants.
LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF',
         'V1', 'V2', 'V3', 'V4', 'V5', 'V6']

LEAD_ALIASES = {
    'mlii': 'II', 'ml2': 'II', 'mli': 'I', 'ml1': 'I', 'mliii': 'III', 'ml3': 'III',
    'd1': 'I', 'd2': 'II', 'd3': 'III', 'di': 'I', 'dii': 'II', 'diii': 'III',
    'lead i': 'I', 'lead ii': 'II', 'lead iii': 'III', 'avr': 'aVR', 'avl': 'aVL',
    'avf': 'aVF', 'mv1': 'V1', 'mv2': 'V2', 'mv3': 'V3', 'mv4': 'V4', 'mv5': 'V5',
    'mv6': 'V6',
}
_CANON = {name.lower(): name for name in LEADS} | LEAD_ALIASES

# Each limb lead as a combination of (I, II): Einthoven (III = II - I) and
# Goldberger (aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2). The six
# directions are 30 degrees apart, so any two of them give the other four.
LIMB = {'I': (1.0, 0.0), 'II': (0.0, 1.0), 'III': (-1.0, 1.0),
        'aVR': (-0.5, -0.5), 'aVL': (1.0, -0.5), 'aVF': (-0.5, 1.0)}

# Quality thresholds, in mV. An ECG lead's QRS is rarely under 0.1 mV in
# every beat, and the noise floor of real recordings is 10-30 µV peak to
# peak: 20 µV over 2 s means no signal. No real lead reaches 20 mV (QRS of


def canonical_lead(name):
    """'MLII' -> 'II', 'avr' -> 'aVR', 'D3' -> 'III'; None if no ECG lead."""
    return _CANON.get(' '.join(str(name).strip().lower().split()))


# Exports' ways of saying a channel is a lead or a lead turned upside down.
# An inverted lead ('-aVR' of the Cabrera display, 'MDC_ECG_LEAD_-aVR',
# 'aVR (neg)', 'II (inverted)', 'inv II') is the lead times -1: it is read
# as (lead, -1), and Record.read turns it the right way up; never as the lead.
_PREFIX = re.compile(r'^(?:MDC_ECG_LEAD_|(?:ECG|EKG|Lead)(?:[\s_:]+|-(?=[A-Za-z]))?)', re.I)
_NEG = r'(?:neg(?:ative|ated)?|inv(?:erted)?)'
_NEG_BEFORE = re.compile(rf'^(?:[-\u2212\u2013]\s*|{_NEG}[\s_:\-]+)', re.I)
_NEG_AFTER = re.compile(rf'(?:\s*[(\[]\s*{_NEG}\s*[)\]]|[\s_\-]+{_NEG})$', re.I)
_REF_AFTER = re.compile(r'[\s_\-]*ref$', re.I)


def channel_lead(label):
    """A channel label as files write it -> (standard lead or None, sign):
    'MLII', 'Lead I (Einthoven)', 'ECG II', 'EKG V1', 'MDC_ECG_LEAD_AVR',
    'V5-Ref' -> (lead, 1); '-aVR', '\u2212aVR', 'MDC_ECG_LEAD_-aVR', 'aVR (neg)',
    'II (inverted)', 'inv II' -> (lead, -1); (None, 1) for no ECG lead."""
    text = ' '.join(str(label).split())
    lead = canonical_lead(text)
    if lead:
        return lead, 1
    sign = 1
    m = _NEG_AFTER.search(text)
    if m and m.start() > 0:
        text, sign = text[:m.start()], -1
    text = _PREFIX.sub('', re.sub(r'\(.*?\)', ' ', text).strip(), count=1).strip()
    m = _NEG_BEFORE.match(text)
    if m and sign == 1:
        text, sign = text[m.end():], -1
    text = _REF_AFTER.sub('', text).strip()
    lead = canonical_lead(text) if text else None
    return (lead, sign) if lead else (None, 1)


def parse_leads(leads):
    """'all', 'I,aVR,V5' or a list (any alias/case) -> standard names, in the
    order asked: the one lead vocabulary of every script. Unknown or repeated
    names raise ValueError listing the valid ones (utils.leads_arg turns it
    into the command line's error)."""
    if isinstance(leads, str):
        if leads.strip().lower() == 'all':
            return list(LEADS)
        leads = [s for s in leads.split(',') if s.strip()]
    out = []
    for name in leads:
        canon = canonical_lead(name)
        if canon is None:
            raise ValueError(f"unknown lead {name!r}; use 'all' or names from "
                             f"{','.join(LEADS)} (aliases such as MLII, D1, avr work too)")
        out.append(canon)
    if len(set(out)) != len(out):
        raise ValueError(f"a lead is asked for twice in {','.join(map(str, leads))}")
    return out


def obtainable(leads):
    """The standard leads (records.LEADS order) that recorded `leads` give:
    themselves, and all six limb leads when at least two limb leads are there."""
    have = set(parse_leads(leads))
    if len(have & set(LIMB)) >= 2:
        have |= set(LIMB)
    return [lead for lead in LEADS if lead in have]


def recorded_leads(record):
    """The standard leads a record holds, in records.LEADS order."""
    return [lead for lead in LEADS if lead in record.leads]


def missing_leads(record, leads):
    """Of `leads`, those the record neither holds nor can derive."""
    can = set(obtainable(recorded_leads(record)))
    return [lead for lead in parse_leads(leads) if lead not in can]


def parse_lead_map(text):
    """'ECG=II,ECG 2=V5' (or a dict) -> {channel name (lower case): lead}.
    ValueError naming a bad pair or an unknown lead."""
    if not text:
        return {}
    pairs = text.items() if isinstance(text, dict) else \
        (p.split('=', 1) if '=' in p else (p, None) for p in str(text).split(',') if p.strip())
    out = {}
    for channel, lead in pairs:
        if lead is None or not str(channel).strip():
            raise ValueError(f'bad lead map entry {channel!r}: use NAME=LEAD, e.g. ECG=II')
        canon = canonical_lead(lead)
        if canon is None:
            raise ValueError(f'lead map {channel}={lead}: {lead!r} is no lead (use names '
                             f"from {','.join(LEADS)})")
        out[' '.join(str(channel).lower().split())] = canon
    return out


def apply_lead_map(record, lead_map):
    """Name a record's channels by a lead map (parse_lead_map's dict or text).
    A channel whose own name says it is the mapped lead inverted ('-aVR=aVR')
    stays inverted (Record.signs); any other mapped channel is read as it is."""
    mapping = parse_lead_map(lead_map)
    for i, name in enumerate(record.sig_names):
        lead = mapping.get(' '.join(str(name).lower().split()))
        if lead:
            record.leads[i] = lead
            named, sign = channel_lead(name)
            if getattr(record, 'signs', None) is not None:
                record.signs[i] = -1.0 if sign < 0 and named == lead else 1.0
    return record


def ignored_channels(record):
    """Channels that give the model nothing: those naming no lead, and those a
    reader dropped (other rates, pressure) -> list of names as written."""
    return [n for n, lead in zip(record.sig_names, record.leads) if lead is None] + \
        list(record.ignored)
