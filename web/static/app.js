// The page of serve.py (index.html): upload, diagnosis, printout, explanation.
// Plain JavaScript, no library; it talks only to the server that served it
// (relative URLs), and takes every word from /app_text.json (web/app_text.py).
'use strict';

const PX_MM = 4;              // 4 px per mm on screen: 100 px a second, 40 px a mV
const SECONDS = 10;           // a printout shows 10 s (visualize.CLINICAL_SECONDS)
const ROW_MM = 40;            // one row of the printout (visualize.ROW_MV = 4 mV)
const CAL_MM = 10;            // room for the 1-mV calibration pulse before each row
const ROWS = [['I', 'aVR', 'V1', 'V4'], ['II', 'aVL', 'V2', 'V5'], ['III', 'aVF', 'V3', 'V6']];
const RHYTHM = 'II';
const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2',
                '#17becf', '#bcbd22'];

const state = {lang: 'en', strings: null, files: null, result: null, explanation: null,
               highlight: null, model: null, token: null};
const $ = (id) => document.getElementById(id);

// -------------------------------------------------------------------------
// Strings: Python's str.format subset app_text uses ({name}, {x:.1f}, {fs:g}).

function t(key, params) {
  const entry = state.strings && state.strings.text[key];
  if (!entry) return key;
  const text = entry[state.lang] || entry.en;
  return text.replace(/\{(\w+)(?::([^}]*))?\}/g, (m, name, spec) => {
    const v = params ? params[name] : undefined;
    if (v === undefined || v === null) return m;
    const fixed = spec && spec.match(/^\.(\d+)f$/);
    if (fixed) return Number(v).toFixed(Number(fixed[1]));
    if (spec === 'g') return String(Number(v));
    return String(v);
  });
}

// A string the app does not have yet (e.g. another branch adds it): its key,
// else the English given here.
function tOr(key, english, params) {
  return state.strings && state.strings.text[key] ? t(key, params) : english;
}

function applyStrings() {
  const rtl = state.strings.rtl.includes(state.lang);
  document.documentElement.lang = state.lang;
  document.documentElement.dir = rtl ? 'rtl' : 'ltr';
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  for (const b of $('langs').children) {
    b.setAttribute('aria-checked', String(b.dataset.lang === state.lang));
  }
  if (state.result) showResult();
}

async function loadStrings() {
  state.strings = await (await fetch('app_text.json')).json();
  for (const [code, name] of Object.entries(state.strings.languages)) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = name;
    b.dataset.lang = code;
    b.setAttribute('role', 'radio');
    b.onclick = () => { state.lang = code; applyStrings(); };
    $('langs').appendChild(b);
  }
  applyStrings();
  await loadModel();
}

// Off localhost the server wants a bearer token: asked once, kept in this
// page's memory only (not in storage, not in the URL).
function headers() {
  return state.token ? {Authorization: `Bearer ${state.token}`} : {};
}

async function loadModel() {
  const r = await fetch('v1/model', {headers: headers()});
  $('token-row').hidden = r.status !== 401;
  if (r.ok) {
    state.model = await r.json();
    $('demo').hidden = !state.model.synthetic;
  }
}

// -------------------------------------------------------------------------
// Upload and answers.

function problemLines(body) {
  const items = (body.problems && body.problems.length) ? body.problems
    : [{file: body.file, reason: body.reason}];
  $('problems').replaceChildren(...items.map((p) => {
    const li = document.createElement('li');
    li.textContent = `${p.file || ''}: ${p.reason}`;
    return li;
  }));
}

async function post(path, extra) {
  const form = new FormData();
  for (const f of state.files) form.append('files', f, f.name);
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  const r = await fetch(path, {method: 'POST', body: form, headers: headers()});
  const body = await r.json();
  if (!r.ok) { problemLines(body); throw new Error(body.reason); }
  return body;
}

async function upload(files) {
  state.files = Array.from(files);
  state.result = state.explanation = state.highlight = null;
  $('result').hidden = true;
  $('problems').replaceChildren();
  $('status').textContent = '…';
  try {
    const body = await post('v1/predict', {signal: 'true', lang: state.lang});
    if (body.problems.length) problemLines(body);
    state.result = body.records[0];
    state.modelInfo = body.model;
    $('status').textContent = '';
    showResult();
  } catch (e) {
    $('status').textContent = '';
  }
}

async function explain() {
  $('explain').disabled = true;
  $('explain-status').textContent = t('explain_help');
  try {
    state.explanation = await post('v1/explain', {lang: state.lang});
    const ex = state.explanation.explanation;
    state.highlight = ex.explained.length ? ex.explained[0].code : null;
    showResult();
  } catch (e) {
    $('explain-status').textContent = '';
  } finally {
    $('explain').disabled = false;
  }
}

// -------------------------------------------------------------------------
// The result.

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function showResult() {
  const r = state.result;
  $('result').hidden = false;
  $('record-line').textContent = `${r.record} · ${r.duration_s.toFixed(1)} s · ${r.fs} Hz`;
  $('quality').hidden = r.quality === 'ok';
  $('quality').textContent = t('quality', {flags: r.quality});
  // names in the page's language, whatever language the answer was asked in
  $('diagnoses').textContent = r.diagnoses.length
    ? r.diagnoses.map((c) => t(`class_${c}`)).join(state.lang === 'ar' ? '، ' : ', ')
    : t('none_above');
  const rows = [...r.classes].sort((a, b) => b.probability - a.probability).map((c) => {
    const tr = document.createElement('tr');
    tr.className = c.decision ? 'present' : '';
    const p = cell(c.probability.toFixed(3), 'num');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.round(c.probability * 80)}px`;
    p.appendChild(bar);
    tr.append(cell(t(`class_${c.code}`)), p, cell(c.threshold.toFixed(3), 'num'),
              cell(t(c.decision ? 'present' : 'absent')));
    return tr;
  });
  $('decisions').tBodies[0].replaceChildren(...rows);
  $('public').replaceChildren(...r.diagnoses.map((c) => {
    const p = document.createElement('p');
    const b = document.createElement('b');
    b.textContent = `${t(`class_${c}`)}: `;
    p.append(b, t(`public_${c}`));
    return p;
  }));
  showMeasurements(r);
  showCart(r);
  showHighlight();
  const sig = r.signal;
  // The tracing is the last part of the record (the model reads its end):
  // its place in the record and the model's window, in numbers.
  const start = r.duration_s - sig.display_s;
  const shown = Math.min(SECONDS, sig.data[0].length / sig.fs);
  const ltr = (x) => (state.lang === 'ar' ? `\u2066${x}\u2069` : x);  // numbers stay LTR
  const span = (a, b) => ltr(`${a.toFixed(1)}–${b.toFixed(1)}`);
  $('printout-settings').textContent = `${t('time_s')}: ${span(start, start + shown)} / ` +
    `${ltr(r.duration_s.toFixed(1))} · ${ltr(`${r.fs} Hz → 500 Hz`)} · ${t('card_window')}: ` +
    span(start + sig.model_start_s, start + sig.model_start_s + sig.model_s);
  const m = state.modelInfo;
  $('model-line').textContent = `${t('model')}: ${m.run} · sha256 ${m.sha256.slice(0, 12)} · ${m.backend}`;
  draw();
}

function defs(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    // a line without a value (a note, a criterion) spans the row: in the label
    // column its length would push the values out of the page
    if (v === '') { dt.className = 'line'; return [dt]; }
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
}

function showMeasurements(r) {
  const m = r.measurements.heart_rate;
  if (!m) { defs($('measurements'), [[t('not_measurable'), '']]); return; }
  const f = (x) => Math.round(x).toString();
  // measure.py's figures (empty with its reason where the record cannot
  // support one) after heart rate and RR, as the app's measurements panel.
  const g = r.measurements.global || {};
  const why = (g.reasons || {});
  const v = (k) => (g[k] === null || g[k] === undefined)
    ? `${t('meas_empty')}${why[k] ? ` (${why[k]})` : ''}` : f(g[k]);
  // The rows and their order come from the server's one measurement table.
  const rows = state.strings.measurements;
  const axes = rows.axes.map((k) => (g[k] == null ? '–' : f(g[k])));
  defs($('measurements'), [[t('heart_rate'), f(m.hr_bpm)], [t('rr_mean'), f(m.rr_mean_ms)],
    [t('rr_sd'), f(m.rr_sd_ms)], [t('rr_range'), `${f(m.rr_min_ms)}–${f(m.rr_max_ms)}`],
    [t('beats'), String(m.beats)], ...rows.intervals.map(([k, label]) => [t(label), v(k)]),
    [t('meas_axes'), axes.join(' / ')],
    ...((r.measurements.criteria || []).length
      ? [[t('crit_note'), ''], ...r.measurements.criteria.map((c) => [c, ''])] : [])]);
}

function showCart(r) {
  const dm = r.device_measurements || {};
  const ds = r.device_statements || [];
  $('cart').hidden = !Object.keys(dm).length && !ds.length;
  $('cart-title').textContent = tOr('cart_reading', "The cart's reading");
  defs($('cart-measurements'), Object.entries(dm).map(([k, v]) => [k, String(v)]));
  $('cart-statements').replaceChildren(...ds.map((s) => {
    const li = document.createElement('li');
    li.textContent = s;
    return li;
  }));
}

function showHighlight() {
  const ex = state.explanation && state.explanation.explanation;
  $('highlight-row').hidden = !ex;
  if (!ex) { $('highlight-note').textContent = ''; return; }
  $('explain-status').textContent = t('explained_in', {seconds: ex.seconds});
  const sel = $('highlight');
  const none = new Option(t('highlight_none'), '');
  sel.replaceChildren(none, ...ex.explained.map((e) => new Option(t(`class_${e.code}`), e.code)));
  sel.value = state.highlight || '';
  $('highlight-note').textContent = state.highlight
    ? t('highlight_note', {cls: t(`class_${state.highlight}`)}) : '';
}

// -------------------------------------------------------------------------
// The printout: 1 mm = 0.04 s x 0.1 mV, 5-mm lines darker, calibration pulse.

function panels(leads) {
  const twelve = ROWS.flat().every((l) => leads.includes(l));
  if (twelve) {
    const out = [];
    ROWS.forEach((row, i) => row.forEach((lead, j) => out.push(
      {lead, row: i, t0: j * SECONDS / 4, t1: (j + 1) * SECONDS / 4})));
    out.push({lead: RHYTHM, row: ROWS.length, t0: 0, t1: SECONDS});
    return {rows: ROWS.length + 1, list: out};
  }
  return {rows: leads.length, list: leads.map((lead, i) => ({lead, row: i, t0: 0, t1: SECONDS}))};
}

function grid(ctx, w, h) {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  for (let mm = 0; mm * PX_MM <= Math.max(w, h); mm++) {
    ctx.strokeStyle = mm % 5 ? '#f6caca' : '#e58f8f';
    ctx.lineWidth = mm % 5 ? 0.5 : 1;
    const p = mm * PX_MM + 0.5;
    ctx.beginPath(); ctx.moveTo(p, 0); ctx.lineTo(p, h); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, p); ctx.lineTo(w, p); ctx.stroke();
  }
}

function shadeSegments(ctx, p, x0, base, sig) {
  const ex = state.explanation && state.explanation.explanation;
  if (!ex || !state.highlight) return;
  const k = ex.explained.findIndex((e) => e.code === state.highlight);
  ctx.fillStyle = COLORS[k % COLORS.length] + '47';
  for (const s of ex.explained[k].segments) {
    if (s.lead !== p.lead) continue;
    const a = Math.max(s.start_ms / 1000, p.t0);
    const b = Math.min(s.end_ms / 1000, p.t1);
    if (b <= a) continue;
    ctx.fillRect(x0 + a * 25 * PX_MM, base - ROW_MM * PX_MM / 2, (b - a) * 25 * PX_MM,
                 ROW_MM * PX_MM);
  }
}

function draw() {
  const sig = state.result.signal;
  const lay = panels(sig.leads);
  const x0 = CAL_MM * PX_MM;
  const w = x0 + SECONDS * 25 * PX_MM + 2;
  const h = lay.rows * ROW_MM * PX_MM + 2;
  const canvas = $('ecg');
  const dpr = window.devicePixelRatio || 1;
  canvas.width = w * dpr; canvas.height = h * dpr;
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  grid(ctx, w, h);
  const mv = 10 * PX_MM;   // 10 mm/mV
  const sx = 25 * PX_MM / sig.fs;   // 25 mm/s
  ctx.font = '12px system-ui, sans-serif';
  for (let row = 0; row < lay.rows; row++) {   // the calibration pulse: 1 mV, 200 ms
    const base = (row + 0.5) * ROW_MM * PX_MM + mv / 2;
    ctx.strokeStyle = '#000'; ctx.lineWidth = 1.3;
    ctx.beginPath(); ctx.moveTo(PX_MM, base); ctx.lineTo(2 * PX_MM, base);
    ctx.lineTo(2 * PX_MM, base - mv); ctx.lineTo(7 * PX_MM, base - mv);
    ctx.lineTo(7 * PX_MM, base); ctx.lineTo(8 * PX_MM, base); ctx.stroke();
  }
  for (const p of lay.list) {
    const k = sig.leads.indexOf(p.lead);
    const data = sig.data[k];
    const base = (p.row + 0.5) * ROW_MM * PX_MM + mv / 2;
    shadeSegments(ctx, p, x0, base, sig);
    const a = Math.round(p.t0 * sig.fs);
    const b = Math.min(Math.round(p.t1 * sig.fs), data.length);
    if (b <= a) continue;
    let mean = 0;
    for (let i = a; i < b; i++) mean += data[i];
    mean /= (b - a);   // each panel on its own baseline, as a cart prints it
    ctx.strokeStyle = '#000'; ctx.lineWidth = 1.1;
    ctx.beginPath();
    for (let i = a; i < b; i++) {
      const x = x0 + i * sx;
      const y = base - (data[i] - mean) / 1000 * mv;
      if (i === a) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
    ctx.fillStyle = '#000';
    ctx.fillText(p.lead, x0 + p.t0 * 25 * PX_MM + 4, base - ROW_MM * PX_MM / 2 + 14);
  }
}

// -------------------------------------------------------------------------

function wire() {
  const drop = $('drop');
  $('files').addEventListener('change', (e) => upload(e.target.files));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload(e.dataTransfer.files);
  });
  $('explain').addEventListener('click', explain);
  $('token').addEventListener('change', (e) => { state.token = e.target.value.trim(); loadModel(); });
  $('highlight').addEventListener('change', (e) => {
    state.highlight = e.target.value || null;
    showHighlight();
    draw();
  });
}

wire();
loadStrings();
