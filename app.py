"""The clinical web app: upload ECG records (or try a synthetic example), read the
calibrated printout, the diagnosis with the run's validation-tuned thresholds,
what drove each diagnosis (SHAP), and download a one-page report. English,
French and Arabic (right to left).

    make app                                        # = streamlit run app.py
    streamlit run app.py -- --model-path models/SYNTH-all-s42-f7/best.pt
    streamlit run app.py --server.port 8502 -- --root /path/to/checkout

Opens http://localhost:8501. The sidebar picks a checkpoint among
models/*/best.pt (newest first; --model-path fixes one). Nothing leaves the
machine: .streamlit/config.toml turns usage statistics off and listens on
localhost only, and no script or font comes from a CDN. Uploads are read from a
temporary folder that is removed at once; the records stay in this session's
memory only. The computing is in web/clinic.py, the strings in web/app_text.py.
"""
import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import runs
import shap_values
import utils
from records import FS, uploads
from web import clinic
from web.app_text import LANGUAGES, RTL, problem_text, t

RTL_CSS = """<style>
[data-testid="stAppViewContainer"], [data-testid="stSidebar"] {direction: rtl; text-align: right;}
[data-testid="stImage"], [data-testid="stPlotlyChart"], [data-testid="stDataFrame"],
.js-plotly-plot {direction: ltr;}
</style>"""


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-path', default=None, metavar='PT',
                        help='use this checkpoint only (default: pick among models/*/best.pt)')
    utils.add_root_arg(parser)
    return parser


@st.cache_resource(show_spinner=False, max_entries=4)
def get_model(path, key, root):
    """Loaded once per process and checkpoint file (key has its size and mtime)."""
    return runs.load_run(path, root)


@st.cache_resource(show_spinner=False, max_entries=4)
def get_background(key, _run, root):
    return shap_values.background(_run, root)


def cache(name):
    """A per-session dict (patient data are never shared across sessions)."""
    return st.session_state.setdefault(name, {})


# --------------------------------------------------------------------------
# Sidebar: language, model, settings.

PROBLEMS_SHOWN = 20  # error boxes; the rest is one line (the count)


def sidebar(args):
    lang = st.sidebar.radio('Language / Langue / اللغة', list(LANGUAGES), key='lang',
                            format_func=LANGUAGES.get, horizontal=True)
    if lang in RTL:
        st.markdown(RTL_CSS, unsafe_allow_html=True)
    root = Path(args.root)
    paths = [Path(args.model_path)] if args.model_path else runs.find_models(root)
    if not paths:
        st.title(t(lang, 'title'))
        st.info(t(lang, 'disclaimer'))
        st.error(t(lang, 'no_model', folder=root.resolve() / 'models'))
        st.stop()
    path = st.sidebar.selectbox(t(lang, 'model'), paths, key='model',
                                format_func=lambda p: p.parent.name)
    try:
        run = get_model(str(path), runs.model_key(path), str(root))
    except (SystemExit, OSError) as e:
        st.error(t(lang, 'model_error', path=path, reason=e))
        st.stop()
    with st.sidebar.expander(t(lang, 'model_card'), expanded=True):
        st.markdown('\n'.join(f'- **{k}**: {clinic.ltr(v, lang)}'
                               for k, v in clinic.card_lines(run.card, lang)))
        if run.bare:
            st.caption(t(lang, 'bare_model'))
    nsamples = st.sidebar.select_slider(t(lang, 'nsamples_label'), [8, 16, 32, 64],
                                        value=shap_values.APP_NSAMPLES, key='nsamples')
    st.sidebar.caption(t(lang, 'disclaimer'))
    return lang, run, nsamples


# --------------------------------------------------------------------------
# Input.

def translated_select(lang, label, options, name, format_func, default=None):
    """A selectbox whose option labels are translated. The browser keeps a
    selectbox's old labels when only format_func changes, so the widget is
    keyed per language and the choice is kept across languages in
    session_state[name]."""
    value = st.session_state.get(name, default if default in options else options[0])
    index = options.index(value) if value in options else 0
    value = st.selectbox(label, options, index=index, key=f'{name}_{lang}',
                         format_func=format_func)
    st.session_state[name] = value
    return value


def get_records(lang, run):
    """-> (records, problems) of the current upload or example; read once per
    upload (keyed by the uploader's file ids) and model."""
    source = st.radio(t(lang, 'source'), ['upload', 'example'], key='source', horizontal=True,
                      format_func=lambda s: t(lang, f'source_{s}'))
    if source == 'example':
        cls = translated_select(lang, t(lang, 'example_label'), clinic.example_classes(run),
                                'example',
                                lambda c: t(lang, f'class_{c}'))
        examples = cache('examples')
        k = (run.key, cls)
        if k not in examples:
            examples[k] = clinic.example_record(cls, run.leads, run.window)
        return [examples[k]], []
    files = st.file_uploader(t(lang, 'upload_label'), accept_multiple_files=True,
                             key='upload') or []
    lead_map = st.text_input(t(lang, 'lead_map_label'), key='lead_map').strip() or None
    batch = (run.key, lead_map) + tuple(sorted((f.file_id, f.name, f.size) for f in files))
    if st.session_state.get('batch') != batch:
        # The UploadedFiles themselves (no copy of their bytes); the session
        # state changes only once the upload is read, so a failure never
        # leaves the previous upload's records shown under the new batch.
        try:
            loaded = uploads.load_uploads([(f.name, f) for f in files], run.leads,
                                          run.window, lead_map)
        except ValueError as e:  # a lead map that names no lead: the line says which
            return [], [(t(lang, 'lead_map_label'), str(e))]
        except Exception as e:  # noqa: BLE001 (a user sees one line, never a stack trace)
            return [], [(t(lang, 'upload_label'), f'unreadable upload ({type(e).__name__})')]
        st.session_state['loaded'] = loaded
        st.session_state['batch'] = batch
    return st.session_state['loaded']


def scores_of(run, records):
    """Probabilities per record, computed once per (record, model)."""
    done = cache('scores')
    todo = [r for r in records if (run.key, r.id) not in done]
    if todo:
        st.session_state['inferences'] = st.session_state.get('inferences', 0) + len(todo)
        for r, p in zip(todo, clinic.score(run, [r.x for r in todo])):
            done[(run.key, r.id)] = p
    return [done[(run.key, r.id)] for r in records]


def pick_record(lang, run, records, probs):
    """Several records: the results table, and which one to open."""
    if len(records) == 1:
        return 0
    st.subheader(t(lang, 'results_table'))
    th, classes = run.thresholds, run.classes
    table = pd.DataFrame({
        t(lang, 'col_record'): [r.name for r in records],
        t(lang, 'col_diagnoses'): [clinic.diagnoses_text(p, th, classes, lang) for p in probs],
        **{c: [float(p[k]) for p in probs] for k, c in enumerate(classes)},
        t(lang, 'col_duration'): [round(r.seconds, 1) for r in records],
        t(lang, 'col_fs'): [r.record.fs for r in records]})
    st.dataframe(table, hide_index=True, key='results',
                 column_config={c: st.column_config.NumberColumn(format='%.3f') for c in classes})
    return st.selectbox(t(lang, 'open_record'), range(len(records)), key='open',
                        format_func=lambda i: records[i].name)


# --------------------------------------------------------------------------
# One record.

def show_diagnosis(lang, run, prob):
    st.subheader(t(lang, 'diagnosis'))
    classes = run.classes
    st.markdown(f"**{clinic.diagnoses_text(prob, run.thresholds, classes, lang)}**")
    table = clinic.decision_table(prob, run.thresholds, classes, lang)
    left, right = st.columns([1, 1])
    left.dataframe(table.drop(columns='code'), hide_index=True, key='decisions',
                   column_config={t(lang, k): st.column_config.NumberColumn(format='%.3f')
                                  for k in ('col_probability', 'col_threshold')})
    names = [t(lang, f'class_{c}') for c in classes]
    present = utils.decide(prob, run.thresholds)
    fig = go.Figure(go.Bar(x=prob, y=names, orientation='h', name=t(lang, 'col_probability'),
                           marker_color=np.where(present, '#c0392b', '#95a5a6')))
    fig.add_trace(go.Scatter(x=run.thresholds, y=names, mode='markers',
                             name=t(lang, 'col_threshold'),
                             marker={'symbol': 'line-ns-open', 'size': 22, 'color': 'black',
                                     'line': {'width': 3, 'color': 'black'}}))
    fig.update_layout(title=t(lang, 'bar_title'), xaxis={'range': [0, 1]}, height=330,
                      margin={'l': 10, 'r': 10, 't': 40, 'b': 10}, showlegend=False,
                      yaxis={'autorange': 'reversed'})
    right.plotly_chart(fig, key='bars')
    for c in clinic.predicted(prob, run.thresholds, classes):
        st.markdown(f"**{t(lang, f'class_{c}')}**: {t(lang, f'public_{c}')}")
        with st.expander(f"{t(lang, 'for_clinicians')}: {t(lang, f'class_{c}')}"):
            st.write(t(lang, f'clinical_{c}'))


def show_measurements(lang, rec):
    st.subheader(t(lang, 'measurements'))
    meas = cache('measurements')
    if rec.id not in meas:
        meas[rec.id] = clinic.record_measurements(rec.signal, leads=rec.leads,
                                                  device=rec.record.device_measurements)
    m = meas[rec.id]
    if m is None:
        st.warning(t(lang, 'not_measurable'))
    else:
        cols = st.columns(5)
        cols[0].metric(t(lang, 'heart_rate'), f"{m['hr_bpm']:.0f}")
        cols[1].metric(t(lang, 'rr_mean'), f"{m['rr_mean_ms']:.0f}")
        cols[2].metric(t(lang, 'rr_sd'), f"{m['rr_sd_ms']:.0f}")
        rr_range = f"{m['rr_min_ms']:.0f}–{m['rr_max_ms']:.0f}"
        cols[3].metric(t(lang, 'rr_range'), clinic.ltr(rr_range, lang))
        cols[4].metric(t(lang, 'beats'), m['beats'])
        show_global_measurements(lang, m)
    st.caption(t(lang, 'measure_note'))
    return m


def show_cart_reading(lang, rec):
    """The measurements and statements the cart wrote into the file, apart
    from ours and labelled as the device's (nothing when it wrote none)."""
    lines = clinic.device_lines(rec, lang)
    if lines:
        st.subheader(t(lang, 'cart_reading'))
        # one line each (a list's bullets stray in RTL); the cart's text is
        # shown as written, not as markdown ('>>> Acute MI <<<', '*', '_')
        st.markdown('  \n'.join(re.sub(r'([\\`*_{}\[\]()#+\-.!<>|~])', r'\\\1', line)
                                 for line in lines))
        st.caption(t(lang, 'cart_note'))


def show_global_measurements(lang, m):
    """PR, QRS, QT, QTc and axes (measure.py), the cart's values beside them
    when the file has them, then the interval criteria they meet."""
    rows = clinic.global_rows(m, lang)
    cols = [t(lang, 'col_measure'), t(lang, 'col_ours')]
    if any(cart for _, _, cart in rows):
        cols.append(t(lang, 'col_cart'))
    st.dataframe(pd.DataFrame([r[:len(cols)] for r in rows], columns=cols),
                 hide_index=True)
    crit = clinic.criteria_lines(m, lang)
    if crit:
        st.info(t(lang, 'crit_note') + '\n\n' + '\n\n'.join(f'- {c}' for c in crit))


def show_explanation(lang, run, rec, prob, nsamples, root):
    """The explain button, then lead importance per explained class; returns
    the explanation (or None) for the printout's shading."""
    st.subheader(t(lang, 'explanation'))
    classes = run.classes
    done = cache('explanations')
    k = (run.key, rec.id, nsamples)
    if k not in done and st.button(t(lang, 'explain'), help=t(lang, 'explain_help'),
                                   key='explain'):
        bar = st.progress(0.0)
        bg = get_background(run.key, run, root)

        names = ', '.join(t(lang, f'class_{classes[c]}') for c in shap_values.explained_classes(
            shap_values.logit_margins(prob, run.thresholds)))

        def progress(i, n):
            bar.progress(i / n, text=t(lang, 'explaining', cls=names, done=i, total=n))
        done[k] = shap_values.explain(run, rec, nsamples, root, bg=bg, progress=progress)
        st.rerun()  # redraw without the button, from the caches
    ex = done.get(k)
    if ex is None:
        st.caption(t(lang, 'explain_help'))
        return None
    bgtext = t(lang, 'background_train', n=ex['background']['n'], db=ex['background']['db']) \
        if ex['background']['kind'] == 'train' else t(lang, 'background_flat',
                                                      db=ex['background']['db'])
    add = ', '.join(f'{classes[c]} {s:+.2f} vs {f - e:+.2f}' for c, s, f, e in
                    zip(ex['classes'], ex['shap_sum'], ex['fx'], ex['expected']))
    st.success(t(lang, 'explained_in', seconds=ex['seconds']))
    st.caption(t(lang, 'shap_settings', nsamples=ex['nsamples'], background=bgtext,
                 additivity=add))
    cols = st.columns(len(ex['classes']))
    for col, c, v, color in zip(cols, ex['classes'], ex['values'], clinic.HIGHLIGHT_COLORS):
        share = clinic.lead_shares(v, rec.length)
        fig = go.Figure(go.Bar(x=run.leads, y=share, marker_color=color))
        fig.update_layout(title=t(lang, 'lead_importance', cls=t(lang, f'class_{classes[c]}')),
                          height=260, margin={'l': 10, 'r': 10, 't': 40, 'b': 10},
                          yaxis={'tickformat': '.0%'}, title_font_size=12)
        col.plotly_chart(fig, key=f'leads_{c}')
    return ex


def highlight_choice(lang, run, rec, ex):
    """-> (class index or None, mask (12, n) or None, colour)."""
    if ex is None:
        return None, None, None
    classes = run.classes
    options = [None] + list(ex['classes'])
    c = translated_select(lang, t(lang, 'highlight'), options, 'highlight',
                          lambda c: t(lang, 'highlight_none') if c is None
                          else t(lang, f'class_{classes[c]}'), default=options[1])
    if c is None:
        return None, None, None
    j = ex['classes'].index(c)
    st.caption(t(lang, 'highlight_note', cls=t(lang, f'class_{classes[c]}')))
    return c, clinic.record_mask(rec, ex['values'][j], run.leads), \
        clinic.HIGHLIGHT_COLORS[j]


def printout_png(lang, run, rec, prob, hl):
    """The printout as PNG, drawn once per (record, model, language, highlight)."""
    pngs = cache('printouts')
    k = (run.key, rec.id, lang, hl[0])
    if k not in pngs:
        heading = clinic.title(rec, prob, run.thresholds, run.classes, lang)
        fig = clinic.printout_figure(rec, heading, hl[1], hl[2] or clinic.HIGHLIGHT_COLORS[0],
                                     lang)
        pngs[k] = None if fig is None else clinic.png(fig)
    return pngs[k]


def show_interactive(lang, run, rec, hl):
    st.subheader(t(lang, 'interactive'))
    c1, c2 = st.columns([4, 1])
    have = rec.leads
    leads = c1.multiselect(t(lang, 'leads_shown'), have,
                           default=[x for x in ('II', 'V1', 'V5') if x in have] or have[:1],
                           key='leads_shown')
    overlay = c2.checkbox(t(lang, 'overlay'), key='overlay')
    if not leads:
        return
    sig, n = rec.signal, len(rec.signal)
    time_s = np.arange(n) / FS
    rows = 1 if overlay else len(leads)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.02)
    cols = [have.index(x) for x in leads]
    lo, hi = float(sig[:, cols].min()), float(sig[:, cols].max())
    for i, (lead, k) in enumerate(zip(leads, cols)):
        y = sig[:, k]
        row = 1 if overlay else i + 1
        fig.add_trace(go.Scatter(x=time_s, y=y, name=lead, line={'width': 1}),
                      row=row, col=1)
        if hl[1] is not None and hl[1][k].any():
            fig.add_trace(go.Scatter(x=time_s, y=np.where(hl[1][k], y, np.nan),
                                     name=f'{lead} SHAP', line={'width': 4, 'color': hl[2]},
                                     opacity=0.6, showlegend=False), row=row, col=1)
        fig.update_yaxes(title_text=f'{lead if not overlay else ""} mV', range=[lo - 0.2, hi + 0.2],
                         row=row, col=1)
    fig.update_xaxes(title_text=t(lang, 'time_s'), row=rows, col=1)
    fig.update_layout(height=max(260, 170 * rows), margin={'l': 10, 'r': 10, 't': 10, 'b': 10},
                      dragmode='zoom')
    st.plotly_chart(fig, key='interactive_view')


def show_downloads(lang, run, rec, prob, meas, records, probs, hl):
    st.subheader(t(lang, 'downloads'))
    c1, c2, c3 = st.columns(3)
    th, classes = run.thresholds, run.classes

    def pdf():  # only drawn when the button is pressed
        return clinic.report_pdf(rec, prob, th, classes, meas, run.card, lang,
                                 printout_png(lang, run, rec, prob, hl))
    c1.download_button(t(lang, 'download_pdf'), pdf, file_name=f'{rec.name}-report.pdf',
                       mime='application/pdf', key='pdf', on_click='ignore')
    c2.download_button(t(lang, 'download_csv'),
                       clinic.scores_frame(records, probs, th, classes).to_csv(index=False),
                       file_name='scores.csv', mime='text/csv', key='csv', on_click='ignore')
    c3.download_button(t(lang, 'download_json'),
                       clinic.scores_json(records, probs, th, classes, run.card),
                       file_name='scores.json', mime='application/json', key='json',
                       on_click='ignore')


def show_record(lang, run, rec, prob, records, probs, nsamples, root):
    age, sex = rec.record.age, rec.record.sex
    age = '?' if age is None or not np.isfinite(float(age)) else f'{float(age):.0f}'
    sex = t(lang, f'sex_{sex}') if sex in ('Male', 'Female') else \
        t(lang, 'sex_Unknown')
    st.header(t(lang, 'record_line', name=rec.name, age=age, sex=sex,
                seconds=rec.seconds, fs=rec.record.fs))
    if not rec.quality.ok:
        st.warning(t(lang, 'quality', flags=str(rec.quality)))
    show_diagnosis(lang, run, prob)
    meas = show_measurements(lang, rec)
    show_cart_reading(lang, rec)
    ex = show_explanation(lang, run, rec, prob, nsamples, root)
    hl = highlight_choice(lang, run, rec, ex)
    st.subheader(t(lang, 'printout'))
    image = printout_png(lang, run, rec, prob, hl)
    if image is None:
        st.warning(t(lang, 'no_printout', leads=', '.join(rec.leads)))
    else:
        st.caption(t(lang, 'shown_part', shown=len(rec.signal) / FS, total=rec.seconds))
        st.image(image, width='stretch')
    show_interactive(lang, run, rec, hl)
    show_downloads(lang, run, rec, prob, meas, records, probs, hl)


def main():
    st.set_page_config(page_title='ECG diagnosis', layout='wide')
    args, _ = get_args_parser().parse_known_args(sys.argv[1:])
    lang, run, nsamples = sidebar(args)
    st.title(t(lang, 'title'))
    st.info(t(lang, 'disclaimer'))
    if run.synthetic:
        st.warning(t(lang, 'demo_banner'))
    records, problems = get_records(lang, run)
    for name, reason in problems[:PROBLEMS_SHOWN]:
        st.error(problem_text(lang, name, reason))
    if len(problems) > PROBLEMS_SHOWN:   # a zip of 1000 bad members: not 1000 boxes
        st.caption(t(lang, 'more_problems', n=len(problems) - PROBLEMS_SHOWN))
    if not records:
        if not problems:
            st.caption(t(lang, 'waiting'))
        return
    if problems:
        st.caption(t(lang, 'n_read', ok=len(records), bad=len(problems)))
    probs = scores_of(run, records)
    i = pick_record(lang, run, records, probs)
    show_record(lang, run, records[i], probs[i], records, probs, nsamples, args.root)


main()
