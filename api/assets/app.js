// The dashboard: paste a key, upload a file, submit a job, watch the job list, read the
// result as charts and download it. Everything goes through the public `/v1` API with
// the key from session storage (api.js); the charts are drawn by charts.js.

import { ApiError, call, clause, describeProblem, download, forgetKey, storeKey, storedKey, upload } from './api.js';
import { barChart, groupedBarChart, heatMap, legend, lineChart } from './charts.js';

const MODELS = [
  'first_touch', 'last_touch', 'last_non_direct', 'linear', 'position_based', 'j_shaped', 'inverse_j',
  'time_decay', 'participation', 'markov', 'shapley', 'shao_li',
];
const ACTIVE = new Set(['queued', 'running']);
// Every poll counts against the key's hourly quota (default 1000): 4 s keeps a watched
// job below it (900 an hour).
const POLL_MS = 4000;
// Rows shown of each top-paths list, and states in the transition heat map.
const PATH_ROWS = 20;
const HEAT_STATES = 24;
const POSITIONS = ['only', 'first', 'middle', 'last'];

const $ = (id) => document.getElementById(id);

const state = {
  uploading: false,
  uploadId: null,
  jobs: new Map(),
  pollTimer: 0,
  refreshing: null,
  viewing: null,
  /** The shown figures (`partView`): the whole result, or the part the pickers chose. */
  result: null,
  full: null,
  /** The pickers: an index into `segments`, a period's name, an index into `windows` ('' = the whole). */
  segment: '',
  period: '',
  window: '',
  model: null,
  /** The breakdown table's order (`{key, ascending}`) and its folded channels. */
  breakdownSort: null,
  breakdownFolded: null,
  spendUploadId: null,
  spendUploading: false,
};

// ---------------------------------------------------------------- formatting

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const moneyFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percentFormat = new Intl.NumberFormat(undefined, {
  style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1,
});
const roundPercentFormat = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 });
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

const count = (n) => numberFormat.format(n);
const money = (n) => moneyFormat.format(n);
const percent = (n) => percentFormat.format(n);
const roundPercent = (n) => roundPercentFormat.format(n);
const short = (id) => String(id).slice(0, 8);

function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function time(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : timeFormat.format(date);
}

/** Appends `content` to `parent`, with `code` spans set in code type. */
function richText(parent, content) {
  String(content).split(/`([^`]*)`/).forEach((part, i) => {
    if (i % 2 === 1) {
      const code = document.createElement('code');
      code.textContent = part;
      parent.append(code);
    } else if (part) {
      parent.append(document.createTextNode(part));
    }
  });
}

function element(name, attributes = {}, content) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (content !== undefined) richText(node, content);
  return node;
}

// ---------------------------------------------------------------- errors and status

/** Shows `problem` (an ApiError, an Error, or `{message, details, requestId}`) in `box`. */
function showError(box, problem) {
  box.replaceChildren(element('p', { class: 'error-text' }, problem.message));
  if (problem.details?.length) {
    const list = element('ul', { class: 'error-details' });
    for (const detail of problem.details) list.append(element('li', {}, detail));
    box.append(list);
  }
  if (problem.requestId) box.append(element('p', { class: 'error-id' }, `Request id: ${problem.requestId}`));
  box.hidden = false;
  if (problem instanceof ApiError && problem.status === 401 && box !== $('key-error')) {
    showError($('key-error'), problem);
  }
}

function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
}

function status(box, message, attributes = {}) {
  box.replaceChildren();
  for (const name of box.getAttributeNames()) if (name.startsWith('data-')) box.removeAttribute(name);
  for (const [key, value] of Object.entries(attributes)) box.setAttribute(key, String(value));
  if (message) richText(box, message);
}

// ---------------------------------------------------------------- the key

function keyInUse(inUse) {
  $('key-forget').hidden = !inUse;
  $('key-use').textContent = inUse ? 'Replace key' : 'Use key';
  status($('key-status'), inUse ? 'Key in use for this tab.' : 'No key yet.');
  $('jobs-empty').textContent = inUse ? 'No jobs yet: upload a file to start one.' : 'Paste a key to see its jobs.';
}

async function useKey(event) {
  event.preventDefault();
  const input = $('key-input');
  const key = input.value.trim();
  clearError($('key-error'));
  if (!key) {
    showError($('key-error'), new Error('Paste an API key first.'));
    input.focus();
    return;
  }
  storeKey(key);
  input.value = '';
  status($('key-status'), 'Checking the key…');
  try {
    await call('GET', '/v1/jobs?limit=1');
  } catch (error) {
    forgetKey();
    keyInUse(false);
    showError($('key-error'), error);
    input.focus();
    return;
  }
  keyInUse(true);
  resetJobs();
  await refreshJobs();
}

function dropKey() {
  forgetKey();
  clearTimeout(state.pollTimer);
  resetJobs();
  closeResult();
  clearError($('key-error'));
  keyInUse(false);
  status($('key-status'), 'Key forgotten.');
  $('key-input').focus();
}

// ---------------------------------------------------------------- upload

async function startUpload(file) {
  const box = $('upload-error');
  clearError(box);
  if (!file) return;
  if (!storedKey()) {
    showError(box, new Error('Paste an API key first: the upload is sent with it.'));
    return;
  }
  if (state.uploading) {
    showError(box, new Error('An upload is still running; wait for it to finish.'));
    return;
  }
  state.uploading = true;
  state.uploadId = null;
  $('job-fieldset').disabled = true;
  status($('submit-status'), '');
  $('upload').hidden = false;
  $('upload-name').textContent = file.name;
  const bar = $('upload-progress');
  bar.value = 0;
  const onProgress = (loaded, total) => {
    const share = total > 0 ? Math.min(100, Math.round((loaded / total) * 100)) : 100;
    bar.value = share;
    $('upload-text').textContent = `${bytes(loaded)} of ${bytes(total)} (${share}%)`;
  };
  onProgress(0, file.size);
  try {
    const made = await upload(file, onProgress);
    state.uploadId = made.upload_id;
    status($('upload-text'), `Uploaded ${bytes(made.size_bytes)} · SHA-256 ${made.sha256.slice(0, 12)}…`, {
      'data-upload-id': made.upload_id,
    });
    $('job-fieldset').disabled = false;
  } catch (error) {
    $('upload-text').textContent = 'Upload failed.';
    showError(box, error);
  } finally {
    state.uploading = false;
  }
}

function wireDropZone() {
  const zone = $('drop-zone');
  const input = $('file-input');
  input.addEventListener('change', () => {
    const [file] = input.files;
    input.value = '';
    startUpload(file);
  });
  // A file dropped elsewhere on the page must not replace the page with the file.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
  zone.addEventListener('dragenter', (event) => {
    event.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    startUpload(event.dataTransfer.files[0]);
  });
}

/** Uploads a cost table for the next job (`spend_upload_id`); a new one replaces it. */
async function startSpendUpload(file) {
  const box = $('submit-error');
  clearError(box);
  if (!file) return;
  state.spendUploadId = null;
  state.spendUploading = true;
  $('spend-clear').hidden = true;
  status($('spend-status'), `Uploading the cost table ${file.name}…`);
  try {
    const made = await upload(file, () => {});
    state.spendUploadId = made.upload_id;
    status($('spend-status'), `Cost table ${file.name} uploaded (${bytes(made.size_bytes)}).`, {
      'data-upload-id': made.upload_id,
    });
    $('spend-clear').hidden = false;
  } catch (error) {
    status($('spend-status'), 'The cost table was not uploaded.');
    showError(box, error);
  } finally {
    state.spendUploading = false;
  }
}

function wireSpend() {
  const input = $('spend-input');
  input.addEventListener('change', () => {
    const [file] = input.files;
    startSpendUpload(file);
  });
  $('spend-clear').addEventListener('click', () => {
    state.spendUploadId = null;
    input.value = '';
    $('spend-clear').hidden = true;
    status($('spend-status'), '');
  });
}

// ---------------------------------------------------------------- job form

class FormProblem extends Error {}

function numberField(id, label) {
  const input = $(id);
  if (input.validity.badInput) throw new FormProblem(`${label} must be a number.`);
  return input.value.trim() === '' ? undefined : Number(input.value);
}

/** The lookback: one number of days, or a comma-separated list of windows to compare. */
function lookbackField() {
  const text = $('lookback_days').value.trim();
  if (text === '') return undefined;
  const parts = text.split(',').map((p) => p.trim());
  if (text.includes('=')) {
    // A window per conversion type: `purchase=30, sign_up=7`.
    const windows = {};
    for (const part of parts) {
      const [name, days] = part.split('=').map((p) => p.trim());
      if (!name || days === undefined || days === '' || !Number.isFinite(Number(days))) {
        throw new FormProblem('A lookback per conversion type is written type=days, separated by commas (purchase=30, sign_up=7).');
      }
      windows[name] = Number(days);
    }
    return windows;
  }
  const days = parts.map(Number);
  if (parts.some((p) => p === '') || days.some((d) => !Number.isFinite(d))) {
    throw new FormProblem('Lookback must be a number of days, or several separated by commas (7, 30, 90).');
  }
  return parts.length === 1 ? days[0] : days;
}

/** The job spec from the form, leaving out every empty field (the service fills in defaults). */
function jobSpec() {
  const spec = { upload_id: state.uploadId };
  if ($('kind').value) spec.kind = $('kind').value;
  const options = {};
  const models = MODELS.filter((m) => $(`model-${m}`).checked);
  if (models.length === 0) throw new FormProblem('Pick at least one model.');
  if (models.length < MODELS.length) options.models = models;
  const lookback = lookbackField();
  if (lookback !== undefined) options.lookback_days = lookback;
  const order = $('markov_order').value;
  if (order) options.markov_order = order === 'auto' ? 'auto' : Number(order);
  if ($('markov_pair_effects').checked) options.markov_pair_effects = true;
  const replicates = numberField('intervals_replicates', 'Intervals');
  const level = numberField('intervals_level', 'The interval level');
  if (replicates !== undefined) options.intervals = level === undefined ? { replicates } : { replicates, level };
  else if (level !== undefined) throw new FormProblem('An interval level applies only with intervals (replicates).');
  const halfLife = numberField('half_life_days', 'Half-life');
  if (halfLife !== undefined) options.half_life_days = halfLife;
  const weights = {
    first: numberField('weight_first', 'The first position weight'),
    middle: numberField('weight_middle', 'The middle position weight'),
    last: numberField('weight_last', 'The last position weight'),
  };
  const given = Object.values(weights).filter((w) => w !== undefined).length;
  if (given === 3) options.position_weights = weights;
  else if (given > 0) throw new FormProblem('Give all three position weights (first, middle, last), or none.');
  const direct = $('direct_channels').value.split(',').map((c) => c.trim()).filter(Boolean);
  if (direct.length) options.direct_channels = direct;
  const rules = $('channel_rules').value;
  if (rules === 'ga4') options.channel_rules = 'ga4';
  if (rules === 'custom') {
    try {
      options.channel_rules = JSON.parse($('channel_rules_json').value);
    } catch (error) {
      throw new FormProblem(`The custom channel rules are not JSON: ${error.message}.`);
    }
  }
  if ($('period').value) options.period = $('period').value;
  const timezone = $('timezone').value.trim();
  if (timezone && !options.period) throw new FormProblem('A time zone applies only with credit over time.');
  if (timezone) options.timezone = timezone;
  const breakdown = $('breakdown').value.split(',').map((c) => c.trim()).filter(Boolean);
  if (breakdown.length > 2) throw new FormProblem('Break down by at most two columns.');
  if (breakdown.length) options.breakdown = breakdown;
  const segmentBy = $('segment_by').value.trim();
  if (segmentBy) options.segment_by = segmentBy;
  const types = $('conversion_types').value.split(',').map((t) => t.trim()).filter(Boolean);
  if (types.length) options.conversion_types = types;
  if (Object.keys(options).length) spec.options = options;
  if ($('export_credits').checked) spec.export_credits = true;
  if (state.spendUploading) throw new FormProblem('The cost table is still uploading; wait for it to finish.');
  if (state.spendUploadId) spec.spend_upload_id = state.spendUploadId;
  return spec;
}

async function submitJob(event) {
  event.preventDefault();
  const box = $('submit-error');
  clearError(box);
  status($('submit-status'), '');
  if (!state.uploadId) {
    showError(box, new Error('Upload a file first.'));
    return;
  }
  let spec;
  try {
    spec = jobSpec();
  } catch (problem) {
    showError(box, problem);
    return;
  }
  const button = $('submit-job');
  button.disabled = true;
  try {
    const job = await call('POST', '/v1/jobs', spec);
    const how = job.state === 'succeeded' ? 'answered at once from the result cache' : job.state;
    status($('submit-status'), `Job ${short(job.id)} submitted: ${how}.`, { 'data-job-id': job.id });
    await refreshJobs();
  } catch (error) {
    showError(box, error);
  } finally {
    button.disabled = false;
  }
}

function buildModelChecks() {
  const grid = $('models');
  for (const model of MODELS) {
    const wrap = element('div', { class: 'check' });
    const input = element('input', { type: 'checkbox', id: `model-${model}`, name: 'models', value: model });
    input.checked = true;
    wrap.append(input, element('label', { for: `model-${model}` }, model));
    grid.append(wrap);
  }
}

// ---------------------------------------------------------------- job list

function resetJobs() {
  state.jobs.clear();
  $('jobs-body').replaceChildren();
  $('jobs-count').textContent = '';
  $('jobs-empty').hidden = false;
  clearError($('jobs-error'));
}

/** Loads the list; polls again while any job is queued or running. One load at a time. */
async function refreshJobs() {
  if (state.refreshing) return state.refreshing;
  clearTimeout(state.pollTimer);
  if (!storedKey()) return undefined;
  state.refreshing = (async () => {
    let delay = 0;
    try {
      const body = await call('GET', '/v1/jobs?limit=50');
      clearError($('jobs-error'));
      renderJobs(body.jobs || []);
      if (body.jobs?.some((job) => ACTIVE.has(job.state))) delay = POLL_MS;
    } catch (error) {
      showError($('jobs-error'), error);
      if (error.status === 429) delay = Math.max(POLL_MS, (Number.parseInt(error.retryAfter, 10) || 10) * 1000);
      else if (error.status !== 401 && [...state.jobs.values()].some((job) => ACTIVE.has(job.state))) delay = 5000;
    } finally {
      state.refreshing = null;
    }
    if (delay && storedKey()) state.pollTimer = setTimeout(refreshJobs, delay);
  })();
  return state.refreshing;
}

function progressText(job) {
  const p = job.progress || {};
  if (job.state === 'queued' && !p.chunks_total) return 'waiting';
  const parts = [];
  if (p.chunks_total) parts.push(`${p.chunks_done}/${p.chunks_total} chunks`);
  parts.push(`${count(p.rows || 0)} rows`);
  return parts.join(' · ');
}

function renderJobs(jobs) {
  const body = $('jobs-body');
  const seen = new Set();
  jobs.forEach((job, index) => {
    seen.add(job.id);
    const before = state.jobs.get(job.id);
    state.jobs.set(job.id, job);
    let row = body.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
    if (!row) row = newJobRow(job);
    updateJobRow(row, job, before);
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
    if (state.viewing === job.id && before && before.state !== job.state) openJob(job.id, false);
    const submitted = $('submit-status');
    if (submitted.dataset.jobId === job.id && before && before.state !== job.state) {
      status(submitted, `Job ${short(job.id)} submitted: now ${job.state}.`, { 'data-job-id': job.id });
    }
  });
  for (const row of [...body.children]) {
    if (!seen.has(row.dataset.jobId)) {
      state.jobs.delete(row.dataset.jobId);
      row.remove();
    }
  }
  $('jobs-empty').hidden = jobs.length > 0;
  const active = jobs.filter((job) => ACTIVE.has(job.state)).length;
  $('jobs-count').textContent = `${jobs.length} ${jobs.length === 1 ? 'job' : 'jobs'}`
    + (active ? `, ${active} running` : '');
}

function newJobRow(job) {
  const row = element('tr', { 'data-job-id': job.id });
  const id = element('td', { class: 'job-id' });
  id.append(element('code', { title: job.id }, short(job.id)));
  const created = element('td', { class: 'created' });
  created.append(element('time', { datetime: job.created_at }, time(job.created_at)));
  const progress = element('td', { class: 'progress' });
  progress.append(element('progress', { max: 1, value: 0, 'aria-label': `Progress of job ${short(job.id)}` }));
  progress.append(element('span', { class: 'progress-text' }));
  row.append(id, created, element('td', { class: 'state' }), element('td', { class: 'stage' }), progress,
    element('td', { class: 'actions' }));
  return row;
}

function updateJobRow(row, job, before) {
  row.dataset.state = job.state;
  const stateCell = row.querySelector('.state');
  stateCell.replaceChildren(element('span', { class: `badge state-${job.state}` }, job.state));
  const stage = ACTIVE.has(job.state) ? job.stage : '';
  row.querySelector('.stage').textContent = job.cached_from ? 'from cache' : (stage || '—');
  const p = job.progress || {};
  const bar = row.querySelector('progress');
  bar.max = Math.max(1, p.chunks_total || 0);
  bar.value = job.state === 'succeeded' ? bar.max : (p.chunks_done || 0);
  row.querySelector('.progress-text').textContent = progressText(job);
  if (before && before.state === job.state && row.querySelector('.actions').childElementCount) return;
  const actions = row.querySelector('.actions');
  actions.replaceChildren();
  const view = element('button', { type: 'button', class: 'secondary small', 'aria-label': `View job ${short(job.id)}` },
    'View');
  view.dataset.action = 'view';
  view.addEventListener('click', () => openJob(job.id, true));
  actions.append(view);
  if (ACTIVE.has(job.state)) {
    const cancel = element('button', {
      type: 'button', class: 'secondary small danger', 'aria-label': `Cancel job ${short(job.id)}`,
    }, 'Cancel');
    cancel.addEventListener('click', () => cancelJob(job.id));
    actions.append(cancel);
  }
}

async function cancelJob(id) {
  try {
    await call('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
    clearError($('jobs-error'));
  } catch (error) {
    showError($('jobs-error'), error);
  }
  await refreshJobs();
}

// ---------------------------------------------------------------- result view

function closeResult() {
  state.viewing = null;
  state.full = null;
  state.result = null;
  $('result').hidden = true;
}

/** Shows a job: its result when it succeeded, its error when it failed, else where it is. */
async function openJob(id, focus) {
  const section = $('result');
  const job = state.jobs.get(id);
  state.viewing = id;
  state.result = null;
  state.full = null;
  state.segment = '';
  state.period = '';
  state.window = '';
  state.breakdownSort = null;
  state.breakdownFolded = null;
  status($('part-note'), '');
  section.hidden = false;
  delete section.dataset.jobId;
  delete section.dataset.ready;
  $('result-title').textContent = `Result of job ${short(id)}`;
  $('result-body').hidden = true;
  $('downloads').hidden = true;
  clearError($('result-error'));
  if (focus) {
    section.focus();
    section.scrollIntoView({ block: 'start' });
  }
  const note = $('result-note');
  if (!job || job.state !== 'succeeded') {
    section.dataset.jobId = id;
    if (job?.state === 'failed') {
      note.textContent = '';
      const error = job.error || {};
      showError($('result-error'), {
        message: `The job failed: ${clause(error.message || 'no reason was recorded')}`,
        details: (error.details || []).map(describeProblem),
      });
    } else if (job?.state === 'cancelled') {
      note.textContent = 'The job was cancelled; it has no result.';
    } else {
      note.textContent = 'The job is still running; its result appears here when it ends.';
    }
    return;
  }
  note.textContent = 'Loading the result…';
  try {
    const result = await call('GET', `/v1/jobs/${encodeURIComponent(id)}/result`);
    if (state.viewing !== id) return;
    state.result = result;
    state.full = result;
    fillPickers(result);
    note.textContent = job.cached_from ? `Answered from the cache of job ${short(job.cached_from)}.` : '';
    $('download-credits').hidden = !job.spec?.export_credits;
    $('downloads').hidden = false;
    renderResult(result);
    section.dataset.jobId = id;
    section.dataset.ready = 'true';
  } catch (error) {
    note.textContent = '';
    showError($('result-error'), error);
  }
}

/** Fills `select` with `options` (`[value, text]`, the whole first) and shows it with its label
 * when there is more than the whole to choose. */
function fillPicker(name, options, chosen) {
  const select = $(`${name}-select`);
  select.replaceChildren(...options.map(([value, text]) => element('option', { value }, text)));
  select.value = options.some(([value]) => value === chosen) ? chosen : '';
  for (const id of [`${name}-select`, `${name}-label`]) $(id).hidden = options.length < 2;
  return select.value;
}

/** The segment and window pickers (`segment_by` or conversion types; several lookback windows),
 * then the period picker of the chosen segment. */
function fillPickers(result) {
  const column = result.options?.segment_by
    || (result.options?.conversion_types?.length ? 'conversion_type' : 'segment');
  const segments = result.segments || [];
  state.segment = fillPicker('segment', [['', 'All journeys'],
    ...segments.map((s, i) => [String(i), `${column} = ${s.segment?.[column] ?? '(none)'}`])], state.segment);
  $('download-segments').hidden = segments.length === 0;
  // The first window gives the whole's figures.
  const windows = result.windows || [];
  state.window = fillPicker('window', windows.map((w, i) => [i === 0 ? '' : String(i),
    i === 0 ? `${windowLabel(w.lookback_days)} (top figures)` : windowLabel(w.lookback_days)]), state.window);
  fillPeriods(result);
}

/** The period picker: the periods of the chosen segment, or of the whole (the chosen period kept when it has one). */
function fillPeriods(result) {
  const scope = (state.segment !== '' && result.segments?.[Number(state.segment)]) || result;
  state.period = fillPicker('period', [['', 'All periods'], ...(scope.periods || []).map((p) => [p.period, p.period])],
    state.period);
}

/** What the pickers chose: '' (the whole), `period`, `segment`, `segment_period` or `window`,
 * as the CSV tables of such parts are named (`period_paths`, `segment_period_paths`, ...). */
function partKind() {
  if (state.window !== '') return 'window';
  if (state.segment !== '') return state.period !== '' ? 'segment_period' : 'segment';
  return state.period !== '' ? 'period' : '';
}

/**
 * The whole result, or the chosen part's summary, models (with their cost and intervals when
 * the part has them) and journey reports in its place. A period has no periods; windows,
 * segments and periods do not combine in one result, so a window has neither.
 */
function partView(full) {
  const segment = state.segment === '' ? null : full.segments?.[Number(state.segment)];
  const period = state.period === '' ? null : ((segment || full).periods || []).find((p) => p.period === state.period);
  const window = state.window === '' ? null : full.windows?.[Number(state.window)];
  const part = window || period || segment;
  if (!part) return full;
  // Rows are split neither by segment nor by period (journeys are): the tile is left out.
  const rows = window ? part.summary.rows : undefined;
  return {
    ...full, summary: { ...part.summary, rows }, models: part.models, reports: part.reports,
    periods: period ? [] : (part.periods || []),
  };
}

/** The chosen part in words, e.g. `country = DE, week 2026-03-02`. */
function partName() {
  const chosen = (name) => {
    const select = $(`${name}-select`);
    return select.value === '' ? null : select.selectedOptions[0]?.textContent;
  };
  const period = chosen('period');
  return [chosen('segment'), period && `${state.full?.options?.period || 'period'} ${period}`,
    chosen('window') && `lookback ${chosen('window')}`].filter(Boolean).join(', ');
}

/** The tables each kind of part has, named `{kind}_{table}` (`segment_paths`, `window_intervals`, ...). */
const PART_REPORTS = [
  'path_length', 'time_lag', 'positions', 'paths', 'transitions', 'intervals', 'breakdown_positions', 'breakdown_paths',
];
const PART_TABLES = {
  period: [...PART_REPORTS, 'breakdown'],
  segment: [...PART_REPORTS, 'breakdown', 'periods'],
  segment_period: PART_REPORTS,
  window: PART_REPORTS,
};

/** The CSV table of `name` (`paths`, ...) for the shown part, or null when such parts have none. */
function partTable(name) {
  const kind = partKind();
  if (kind === '') return name;
  return PART_TABLES[kind].includes(name) ? `${kind}_${name}` : null;
}

/** Shows the part the pickers now name. */
function showPart() {
  if (!state.full) return;
  state.result = partView(state.full);
  state.breakdownSort = null;
  state.breakdownFolded = null;
  const name = partName();
  status($('part-note'), name ? `Showing ${name}: its summary, credits and reports.` : '', { 'data-part': partKind() });
  renderResult(state.result);
}

function renderResult(result) {
  const summary = result.summary || {};
  const list = $('summary');
  list.replaceChildren();
  const tiles = [
    ['rows', 'Rows', count], ['journeys', 'Journeys', count], ['converting_journeys', 'Converting journeys', count],
    ['conversions', 'Conversions', count], ['conversion_value', 'Conversion value', money],
    ['unattributed_conversions', 'Unattributed conversions', count],
    ['unattributed_value', 'Unattributed value', money], ['channels', 'Channels', count],
  ];
  if (summary.truncated_journeys) tiles.push(['truncated_journeys', 'Truncated journeys', count]);
  for (const [key, label, format] of tiles) {
    if (typeof summary[key] !== 'number') continue;
    const tile = element('div', { class: 'stat', 'data-summary': key, 'data-value': summary[key] });
    tile.append(element('dt', {}, label), element('dd', {}, format(summary[key])));
    list.append(tile);
  }
  const models = Object.keys(result.models || {});
  const select = $('model-select');
  select.replaceChildren(...models.map((m) => element('option', { value: m }, m)));
  if (!models.includes(state.model)) state.model = models.includes('markov') ? 'markov' : models[0];
  select.value = state.model || '';
  $('result-body').hidden = false;
  drawCharts();
}

/** (Re)draws every chart of the shown result at the current width. */
function drawCharts() {
  const result = state.result;
  if (!result) return;
  drawModel();
  const models = Object.keys(result.models || {});
  const totals = new Map();
  for (const model of models) {
    for (const c of result.models[model].channels || []) {
      totals.set(c.channel, (totals.get(c.channel) || 0) + c.conversions);
    }
  }
  const channels = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
  const lookup = (model, channel) =>
    result.models[model].channels.find((c) => c.channel === channel)?.conversions ?? 0;
  legend($('compare-legend'), models);
  groupedBarChart($('chart-compare'), {
    title: 'Credited conversions per channel, by model', groups: channels, series: models, value: lookup,
    format: count, id: 'compare',
  });
  const markov = result.models?.markov;
  $('markov-panel').hidden = !markov;
  if (markov) {
    const probability = $('markov-probability');
    probability.textContent = `Conversion probability ${percent(markov.conversion_probability)}`
      + (markov.order ? ` · order ${markov.order}` : '');
    probability.dataset.value = markov.conversion_probability;
    const rows = markov.channels.map((c) => ({ label: c.channel, value: c.removal_effect }))
      .sort((a, b) => b.value - a.value);
    barChart($('chart-removal'), {
      title: 'Removal effect: share of conversions lost without the channel', rows, format: percent,
      tickFormat: roundPercent,
      unit: 'Removal effect', id: 'removal',
    });
  }
  drawOrderSelection(markov?.order_selection);
  drawPairs(markov?.pairs);
  drawReports(result.reports);
}

/** `markov_order: auto`: every candidate order's score, the chosen one marked. */
function drawOrderSelection(selection) {
  $('order-selection').hidden = !selection;
  if (!selection) return;
  const body = $('order-selection-table').tBodies[0];
  body.replaceChildren(...selection.scores.map((score) => {
    const chosen = score.order === selection.chosen;
    const row = element('tr', {
      'data-order': score.order, 'data-states': score.states, 'data-log-likelihood': score.log_likelihood ?? '',
      'data-chosen': String(chosen), class: chosen ? 'chosen' : '',
    });
    row.append(element('th', { scope: 'row' }, String(score.order)), element('td', { class: 'number' }, count(score.states)),
      element('td', { class: 'number' }, typeof score.log_likelihood === 'number' ? score.log_likelihood.toFixed(4) : 'not scored'),
      element('td', {}, chosen ? 'chosen' : ''));
    return row;
  }));
  const note = $('order-selection-note');
  note.textContent = `order ${selection.chosen}, by the held-out journeys' outcomes (${count(selection.training_journeys)} `
    + `training, ${count(selection.held_out_journeys)} held-out journeys)`;
  note.dataset.chosen = selection.chosen;
}

/** `markov_pair_effects`: the pairs of the top channels, by what removing both loses. */
function drawPairs(pairs) {
  $('pairs').hidden = !pairs;
  if (!pairs) return;
  const body = $('pairs-table').tBodies[0];
  body.replaceChildren(...pairs.map((p) => {
    const row = element('tr', {
      'data-channel-a': p.channel_a, 'data-channel-b': p.channel_b, 'data-removal-effect': p.removal_effect,
      'data-removal-effect-value': p.removal_effect_value, 'data-overlap': p.overlap,
    });
    const names = element('th', { scope: 'row' });
    names.textContent = `${p.channel_a} + ${p.channel_b}`;
    row.append(names, element('td', { class: 'number' }, percent(p.removal_effect)),
      element('td', { class: 'number' }, percent(p.removal_effect_value)),
      element('td', { class: 'number' }, percent(p.overlap)));
    return row;
  }));
  $('pairs-note').textContent = `${pairs.length} ${pairs.length === 1 ? 'pair' : 'pairs'} of the top channels`;
}

/** The journey reports: the two histograms, the positions, the top paths, the transitions. */
function drawReports(reports) {
  $('journeys-panel').hidden = !reports;
  $('positions-panel').hidden = !reports?.positions?.length;
  $('paths-panel').hidden = !reports?.paths;
  $('transitions-panel').hidden = !reports?.transitions;
  $('download-paths').hidden = !partTable('paths');
  $('download-transitions').hidden = !partTable('transitions');
  if (!reports) return;
  const buckets = (rows) => (rows || []).map((b) => ({ label: b.bucket, value: b.conversions }));
  barChart($('chart-path-length'), {
    title: 'Converting journeys by number of touches', rows: buckets(reports.path_length), format: count,
    unit: 'Conversions', id: 'path-length', noun: 'buckets', label: 'Touches',
  });
  const lag = reports.time_lag || [];
  $('chart-time-lag').hidden = lag.length === 0;
  if (lag.length) {
    barChart($('chart-time-lag'), {
      title: 'Converting journeys by days from first touch to conversion', rows: buckets(lag), format: count,
      unit: 'Conversions', id: 'time-lag', noun: 'buckets', label: 'Days',
    });
  }
  const positions = reports.positions || [];
  if (positions.length) {
    const byChannel = new Map(positions.map((p) => [p.channel, p]));
    const total = (p) => POSITIONS.reduce((sum, k) => sum + p[k], 0);
    const channels = positions.map((p) => p.channel).sort((a, b) => total(byChannel.get(b)) - total(byChannel.get(a)));
    legend($('positions-legend'), POSITIONS, 'Positions');
    groupedBarChart($('chart-positions'), {
      title: 'Conversions whose journey had the channel as its only, first, middle or last touch', groups: channels,
      series: POSITIONS, value: (position, channel) => byChannel.get(channel)[position], format: count,
      id: 'positions', seriesNoun: 'positions',
    });
  }
  if (reports.paths) drawPaths(reports.paths);
  if (reports.transitions) drawTransitions(reports.transitions);
}

function drawPaths(paths) {
  const fill = (table, rows, cells) => {
    const body = $(table).tBodies[0];
    body.replaceChildren(...rows.slice(0, PATH_ROWS).map((p, i) => {
      const tr = element('tr', {
        'data-path': p.path, 'data-journeys': p.journeys, 'data-conversions': p.conversions, 'data-value': p.value,
        'data-null-journeys': p.null_journeys,
      });
      tr.append(element('td', { class: 'number' }, String(i + 1)));
      const path = element('td', { class: 'path' });
      path.textContent = p.path;
      tr.append(path, ...cells(p).map((c) => element('td', { class: 'number' }, c)));
      return tr;
    }));
  };
  fill('paths-converting', paths.converting, (p) => [count(p.journeys), count(p.conversions), money(p.value)]);
  fill('paths-non-converting', paths.non_converting, (p) => [count(p.null_journeys)]);
  const notes = [];
  if (paths.distinct_paths !== null && paths.distinct_paths !== undefined) {
    notes.push(`${count(paths.distinct_paths)} distinct paths`);
  }
  if (!paths.exact) {
    notes.push(`more distinct paths than the limit: estimates, at most ${count(paths.error_bound.conversions)} `
      + 'conversions below the truth');
  }
  notes.push(`the first ${PATH_ROWS} of each list; all in the CSV`);
  const note = $('paths-note');
  note.textContent = notes.join(' · ');
  note.dataset.exact = String(paths.exact);
}

/** The heat map of the busiest states: rows from, columns to, shaded by probability. */
function drawTransitions(transitions) {
  const out = new Map();
  const cell = new Map();
  for (const t of transitions.rows) {
    out.set(t.from, (out.get(t.from) || 0) + t.count);
    cell.set(`${t.from}\u0000${t.to}`, t.probability);
  }
  const states = [...out.keys()].filter((s) => s !== '(start)').sort((a, b) => out.get(b) - out.get(a) || (a < b ? -1 : 1));
  const shown = states.slice(0, HEAT_STATES);
  const rows = out.has('(start)') ? ['(start)', ...shown] : shown;
  const columns = [...shown, '(conversion)', '(null)'];
  heatMap($('chart-transitions'), {
    title: 'Transition probabilities, from the state of each row to the state of each column', rows, columns,
    value: (from, to) => cell.get(`${from}\u0000${to}`) ?? null, format: percent, id: 'transitions',
  });
  const parts = [`order ${transitions.order}`, `${count(transitions.total)} transitions`];
  if (states.length > shown.length) parts.push(`the ${shown.length} busiest of ${states.length} states`);
  if (transitions.truncated) parts.push(`the ${count(transitions.rows.length)} largest counts`);
  $('transitions-note').textContent = parts.join(' · ');
}

function drawModel() {
  const name = state.model;
  const model = state.result?.models?.[name];
  if (!model) return;
  const channels = model.channels || [];
  // With intervals, each bar carries its bootstrap interval as an error bar.
  const level = state.result.options?.intervals?.level;
  const within = level ? ` (error bars: ${Math.round(level * 100)}% intervals)` : '';
  const bar = (c, field) => (c.interval
    ? { label: c.channel, value: c[field], low: c.interval[`${field}_low`], high: c.interval[`${field}_high`] }
    : { label: c.channel, value: c[field] });
  barChart($('chart-conversions'), {
    title: `Conversions credited by ${name}${within}`, unit: 'Conversions', format: count, id: 'conversions',
    rows: channels.map((c) => bar(c, 'conversions')),
  });
  barChart($('chart-value'), {
    title: `Conversion value credited by ${name}${within}`, unit: 'Value', format: money, tickFormat: count, id: 'value',
    rows: channels.map((c) => bar(c, 'value')),
  });
  drawIntervals();
  drawPeriods();
  drawBreakdown();
  drawSpend();
  drawWindows();
  const notes = [];
  if (model.note) notes.push(model.note);
  if (model.conserves_totals === false) notes.push('This model\'s credits do not add up to the total conversions.');
  $('model-note').textContent = notes.join(' ');
}

/** The chosen model's conversions per channel over the result's periods, one line per channel. */
function drawPeriods() {
  const result = state.result;
  const periods = result?.periods || [];
  $('periods-panel').hidden = periods.length === 0;
  $('download-periods').hidden = periods.length === 0 || !partTable('periods');
  if (!periods.length) return;
  const name = state.model;
  const credit = new Map();
  for (const period of periods) {
    for (const c of period.models?.[name]?.channels || []) {
      credit.set(`${period.period}\u0000${c.channel}`, c.conversions);
      credit.set(c.channel, (credit.get(c.channel) || 0) + c.conversions);
    }
  }
  // Channels as the whole-file figures rank them, so colours match the other charts' order.
  const channels = (result.models?.[name]?.channels || []).map((c) => c.channel).filter((c) => credit.has(c));
  const labels = periods.map((p) => p.period);
  legend($('periods-legend'), channels, 'Channels');
  lineChart($('chart-periods'), {
    title: `Conversions credited by ${name}, per ${result.options?.period || 'period'}`, periods: labels,
    series: channels, value: (channel, period) => credit.get(`${period}\u0000${channel}`) ?? 0, format: count,
    id: 'periods',
  });
  $('periods-note').textContent = `${labels.length} periods by the conversion's date (${result.options?.timezone || 'UTC'})`;
}

/** The figures a cost table adds to a channel or a breakdown row. */
const SPEND_FIGURES = ['cost', 'cpa', 'roas'];

/** Cost, CPA and ROAS cells (`—` where undefined). */
function spendCells(row) {
  const shown = (value, format) => (typeof value === 'number' ? format(value) : '—');
  return [shown(row.cost, money), shown(row.cpa, money), shown(row.roas, count)]
    .map((text) => element('td', { class: 'number' }, text));
}

/**
 * A figure's cell: with an interval, `12.4 [11.1, 13.9]` as the CLI's `--table` prints it
 * (its bounds in the figure's own format), else the figure alone.
 */
function figureCell(value, format, interval, field) {
  const cell = element('td', { class: 'number' }, format(value));
  if (interval) {
    cell.append(element('span', { class: 'interval' },
      ` [${format(interval[`${field}_low`])}, ${format(interval[`${field}_high`])}]`));
  }
  return cell;
}

/** Rows of the breakdown table drawn at most: the CSV has them all. */
const MAX_BREAKDOWN_ROWS = 2000;

/**
 * The chosen model's credit per channel × breakdown values: a row per channel (its figures,
 * a button to fold its rows) followed by its rows. Headers sort: channels by name or by their
 * figures, rows within each channel by the column clicked.
 */
function drawBreakdown() {
  const result = state.result;
  const columns = result?.options?.breakdown || [];
  const model = result?.models?.[state.model];
  const rows = model?.breakdown;
  $('breakdown-panel').hidden = !rows;
  $('download-breakdown').hidden = !rows || !partTable('breakdown');
  // The touch-level reports of a breakdown: positions and top paths per channel × values.
  for (const report of ['breakdown_positions', 'breakdown_paths']) {
    $(`download-${report.replace('_', '-')}`).hidden = !result?.reports?.[report] || !partTable(report);
  }
  if (!rows) return;
  const sort = state.breakdownSort || { key: 'conversions', ascending: false };
  // Cost per campaign (a breakdown by campaign alone with a cost table): cost, CPA, ROAS too.
  const costs = rows.some((r) => 'cost' in r);
  const figures = ['conversions', 'value', ...(costs ? SPEND_FIGURES : [])];
  // Channels keep the model's order unless sorted by name or by a figure.
  const channels = (model.channels || []).filter((c) => rows.some((r) => r.channel === c.channel));
  // With intervals, each row (channel or breakdown values) shows its own in brackets, a part's
  // rows theirs; a row without one (a part's past the cap on the parts' replicate rows:
  // docs/user-guide.md, "Intervals") shows plain figures, never the whole's.
  const level = result.options?.intervals?.level;
  const ranged = level !== undefined && [...rows, ...channels].some((r) => r.interval);
  const within = ranged ? ` [${Math.round(level * 100)}% interval]` : '';
  // With brackets, conversions take two decimals throughout (as the CLI's `--table` prints
  // credits), so figures and bounds line up.
  const conversions = ranged ? money : count;
  const fields = [['channel', 'Channel', false], ...columns.map((c) => [`value:${c}`, c, false]),
    ['conversions', `Conversions${within}`, true], ['value', `Value${within}`, true],
    ...(costs ? [['cost', 'Cost', true], ['cpa', 'CPA', true], ['roas', 'ROAS', true]] : [])];
  $('breakdown-title').textContent = `Credit by channel and ${columns.join(' and ')}`;
  $('breakdown-caption').textContent = `Credit by channel and ${columns.join(' and ')} under ${state.model}`;
  $('breakdown-head').replaceChildren(...fields.map(([key, label, number]) => {
    const th = element('th', { scope: 'col', 'data-sort': key, class: number ? 'number' : '' });
    if (sort.key === key) th.setAttribute('aria-sort', sort.ascending ? 'ascending' : 'descending');
    const button = element('button', { type: 'button', 'data-sort': key }, label);
    button.addEventListener('click', () => {
      const same = sort.key === key;
      state.breakdownSort = { key, ascending: same ? !sort.ascending : !number };
      drawBreakdown();
    });
    th.append(button);
    return th;
  }));
  // Values from the data are shown as they are (no `code` markup).
  const plain = (name, attributes, value) => {
    const node = element(name, attributes);
    node.textContent = value;
    return node;
  };
  const text = (row, key) => (key === 'channel' ? row.channel : row[key.slice('value:'.length)] ?? '');
  // Undefined figures (`null`) sort below every number.
  const figure = (row, key) => (typeof row[key] === 'number' ? row[key] : -Infinity);
  const compare = (a, b, key) => {
    const difference = figure(a, key) - figure(b, key);
    const order = figures.includes(key) ? (Number.isNaN(difference) ? 0 : difference)
      : text(a, key).localeCompare(text(b, key));
    return sort.ascending ? order : -order;
  };
  if (sort.key === 'channel' || figures.includes(sort.key)) {
    channels.sort((a, b) => compare(a, b, sort.key));
  }
  const byChannel = new Map(channels.map((c) => [c.channel, []]));
  for (const row of rows) byChannel.get(row.channel)?.push(row);
  const folded = state.breakdownFolded || new Set();
  const body = [];
  let drawn = 0;
  for (const channel of channels) {
    const own = byChannel.get(channel.channel);
    if (sort.key !== 'channel') own.sort((a, b) => compare(a, b, sort.key));
    const open = !folded.has(channel.channel);
    const toggle = plain('button', { type: 'button', 'aria-expanded': String(open), 'data-channel': channel.channel },
      channel.channel);
    toggle.addEventListener('click', () => {
      const now = state.breakdownFolded || new Set();
      if (now.has(channel.channel)) now.delete(channel.channel); else now.add(channel.channel);
      state.breakdownFolded = now;
      drawBreakdown();
    });
    const head = element('tr', {
      class: 'channel-row', 'data-channel': channel.channel, 'data-conversions': channel.conversions,
      'data-value': channel.value, 'data-rows': own.length,
    });
    const name = element('td', { colspan: 1 + columns.length });
    name.append(toggle, element('span', { class: 'muted' }, ` · ${own.length} ${own.length === 1 ? 'row' : 'rows'}`));
    head.append(name, figureCell(channel.conversions, conversions, channel.interval, 'conversions'),
      figureCell(channel.value, money, channel.interval, 'value'));
    if (costs) head.append(...spendCells(channel));
    body.push(head);
    for (const row of own) {
      if (drawn >= MAX_BREAKDOWN_ROWS) break;
      drawn += 1;
      const line = element('tr', {
        class: 'breakdown-row', 'data-channel': row.channel, 'data-values': JSON.stringify(columns.map((c) => row[c])),
        'data-conversions': row.conversions, 'data-value': row.value,
      });
      if (costs) for (const key of SPEND_FIGURES) line.dataset[key] = row[key] ?? '';
      const bounds = row.interval;
      if (bounds) {
        Object.assign(line.dataset, {
          conversionsLow: bounds.conversions_low, conversionsHigh: bounds.conversions_high,
          valueLow: bounds.value_low, valueHigh: bounds.value_high,
        });
      }
      if (!open) line.hidden = true;
      line.append(plain('td', {}, row.channel), ...columns.map((c) => plain('td', {}, row[c])),
        figureCell(row.conversions, conversions, bounds, 'conversions'),
        figureCell(row.value, money, bounds, 'value'));
      if (costs) line.append(...spendCells(row));
      body.push(line);
    }
  }
  $('breakdown-body').replaceChildren(...body);
  const shown = drawn < rows.length
    ? `${drawn} of ${rows.length} rows shown; the CSV has them all`
    : `${rows.length} rows under ${state.model}; a channel's rows add up to its credit`;
  // Say so when the shown rows have none.
  const whose = rows.some((r) => r.interval) ? '' : ' of the channels (these rows have none)';
  const brackets = ranged ? `; in brackets, ${Math.round(level * 100)}% bootstrap intervals${whose}`
    : level !== undefined ? '; these rows have no intervals' : '';
  $('breakdown-note').textContent = `${shown}${brackets}`;
}

/** The chosen model's cost, CPA and ROAS per channel (a table and a ROAS chart), with a cost table. */
function drawSpend() {
  const result = state.result;
  const spend = result?.spend;
  const name = state.model;
  const channels = result?.models?.[name]?.channels || [];
  $('download-unmatched').hidden = !spend;
  // A part whose channels carry no cost (a segment) shows none.
  const costed = Boolean(spend) && channels.some((c) => 'cost' in c);
  $('spend-panel').hidden = !costed;
  if (!costed) return;
  const shown = (value, format) => (typeof value === 'number' ? format(value) : '—');
  $('spend-body').replaceChildren(...channels.map((c) => {
    const row = element('tr', {
      'data-channel': c.channel, 'data-cost': c.cost ?? '', 'data-cpa': c.cpa ?? '', 'data-roas': c.roas ?? '',
    });
    row.append(element('th', { scope: 'row' }, c.channel), element('td', {}, count(c.conversions)),
      element('td', {}, money(c.value)), element('td', {}, shown(c.cost, money)), element('td', {}, shown(c.cpa, money)),
      element('td', {}, shown(c.roas, count)));
    return row;
  }));
  const rows = channels.filter((c) => typeof c.roas === 'number').map((c) => ({ label: c.channel, value: c.roas }))
    .sort((a, b) => b.value - a.value);
  barChart($('chart-roas'), {
    title: `ROAS under ${name}: credited value per unit of cost`, rows, format: count, unit: 'ROAS', id: 'roas',
  });
  const whole = partKind() === '' ? '' : 'The whole cost table: ';
  $('spend-note').textContent = `${whole}Cost ${money(spend.cost)} in ${count(spend.rows)} rows, ${spend.first_date} to `
    + `${spend.last_date}; ${money(spend.matched_cost)} on channels of the events`;
  const unmatched = spend.unmatched_cost || [];
  $('spend-unmatched').textContent = unmatched.length
    ? `Cost of channels no journey mentions, or of campaigns no breakdown row has (check their names): ${unmatched
      .map((u) => `${u.channel}${u.campaign === undefined ? '' : ` / ${u.campaign}`} ${money(u.cost)}`).join(', ')}.`
    : 'Every channel of the cost table is a channel of the events.';
  $('spend-unmatched').dataset.channels = unmatched.map((u) => u.channel).join('\n');
}

/** A lookback window's name: `7d`, or `unlimited` for 0. */
const windowLabel = (days) => (days === 0 ? 'unlimited' : `${days}d`);

/**
 * The lookback windows compared (a job whose `lookback_days` was a list): for the chosen model,
 * each channel's share under every window as lines, and its rank per window in a table.
 */
function drawWindows() {
  const result = state.result;
  const windows = result?.windows || [];
  const ranks = (result?.window_ranks || []).find((r) => r.model === state.model);
  $('windows-panel').hidden = !ranks;
  $('download-windows').hidden = windows.length === 0;
  if (!ranks) return;
  const labels = windows.map((w) => windowLabel(w.lookback_days));
  const channels = ranks.channels.map((c) => c.channel);
  const share = new Map(ranks.channels.map((c) => [c.channel, c.share]));
  legend($('windows-legend'), channels, 'Channels');
  lineChart($('chart-windows'), {
    title: `Share of conversions credited by ${state.model}, per lookback window`, periods: labels,
    series: channels, value: (channel, label) => share.get(channel)[labels.indexOf(label)], format: percent,
    id: 'windows',
  });
  const table = $('window-ranks');
  table.replaceChildren(...(table.caption ? [table.caption] : []));
  const head = element('tr');
  head.append(element('th', { scope: 'col' }, 'Channel'));
  for (const label of labels) head.append(element('th', { scope: 'col' }, `Rank ${label}`));
  head.append(element('th', { scope: 'col' }, 'Spread'));
  const thead = element('thead');
  thead.append(head);
  const body = element('tbody');
  for (const c of ranks.channels) {
    const row = element('tr', { 'data-channel': c.channel });
    row.append(element('th', { scope: 'row' }, c.channel));
    c.rank.forEach((rank, i) => row.append(element('td', {
      'data-window': windows[i].lookback_days, 'data-rank': rank ?? '',
    }, rank === null ? '–' : String(rank))));
    row.append(element('td', { 'data-spread': c.rank_spread, class: c.rank_spread ? 'unstable' : '' },
      String(c.rank_spread)));
    body.append(row);
  }
  table.append(thead, body);
  const moved = ranks.channels.filter((c) => c.rank_spread > 0).length;
  $('windows-note').textContent = `${labels.length} windows; the top figures use ${labels[0]}; `
    + (moved ? `${moved} of ${channels.length} channels change rank` : 'every channel keeps its rank');
}

/** With intervals: how stable each channel's rank is over the bootstrap replicates. */
function drawIntervals() {
  const result = state.result;
  const intervals = result?.options?.intervals;
  const channels = (result?.models?.[state.model]?.channels || []).filter((c) => c.interval);
  $('intervals-panel').hidden = !intervals || channels.length === 0;
  $('download-intervals').hidden = !intervals || !partTable('intervals');
  if (!intervals || channels.length === 0) return;
  barChart($('chart-rank-1'), {
    title: `Probability of ranking first under ${state.model}, over ${intervals.replicates} replicates`,
    unit: 'P(1st)', format: percent, tickFormat: roundPercent, id: 'rank-1',
    rows: channels.map((c) => ({ label: c.channel, value: c.interval.rank_1_probability })),
  });
  const body = $('rank-stability-body');
  body.replaceChildren(...channels.map((c) => {
    const i = c.interval;
    const row = element('tr', {
      'data-channel': c.channel, 'data-rank-first': i.rank_1_probability, 'data-top-three': i.top_3_probability,
      'data-median-rank': i.median_rank, 'data-share-low': i.share_low, 'data-share-high': i.share_high,
    });
    row.append(element('th', { scope: 'row' }, c.channel), element('td', {}, percent(c.share)),
      element('td', {}, `${percent(i.share_low)} – ${percent(i.share_high)}`),
      element('td', {}, percent(i.rank_1_probability)), element('td', {}, percent(i.top_3_probability)),
      element('td', {}, String(i.median_rank)));
    return row;
  }));
  $('intervals-note').textContent = `${Math.round(intervals.level * 100)}% bootstrap intervals over `
    + `${intervals.replicates} replicates of the journeys: sampling variation, not model error`;
}

async function save(path, filename) {
  clearError($('result-error'));
  try {
    await download(path, filename);
  } catch (error) {
    showError($('result-error'), error);
  }
}

function wireResult() {
  $('model-select').addEventListener('change', (event) => {
    state.model = event.target.value;
    drawModel();
  });
  $('segment-select').addEventListener('change', (event) => {
    if (!state.full) return;
    state.segment = event.target.value;
    // A segment's own periods: the chosen one stays when the segment has it.
    fillPeriods(state.full);
    showPart();
  });
  $('period-select').addEventListener('change', (event) => {
    state.period = event.target.value;
    showPart();
  });
  $('window-select').addEventListener('change', (event) => {
    state.window = event.target.value;
    showPart();
  });
  const job = () => encodeURIComponent(state.viewing);
  $('download-csv').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/result?format=csv`, `result-${short(state.viewing)}.csv`));
  // The shown part's own table where such parts have one (`segment_paths`, `period_breakdown`, ...).
  const saveTable = (name) => {
    const table = partTable(name);
    return save(`/v1/jobs/${job()}/result?format=csv&table=${table}`, `${table}-${short(state.viewing)}.csv`);
  };
  $('download-periods').addEventListener('click', () => saveTable('periods'));
  $('download-pairs').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/result?format=csv&table=markov_pairs`, `markov-pairs-${short(state.viewing)}.csv`));
  $('download-segments').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/result?format=csv&table=segments`, `segments-${short(state.viewing)}.csv`));
  $('download-breakdown').addEventListener('click', () => saveTable('breakdown'));
  $('download-breakdown-positions').addEventListener('click', () => saveTable('breakdown_positions'));
  $('download-breakdown-paths').addEventListener('click', () => saveTable('breakdown_paths'));
  $('download-paths').addEventListener('click', () => saveTable('paths'));
  $('download-transitions').addEventListener('click', () => saveTable('transitions'));
  $('download-unmatched').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/result?format=csv&table=unmatched_cost`, `unmatched-cost-${short(state.viewing)}.csv`));
  $('download-windows').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/result?format=csv&table=windows`, `windows-${short(state.viewing)}.csv`));
  $('download-intervals').addEventListener('click', () => saveTable('intervals'));
  $('download-json').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/result`, `result-${short(state.viewing)}.json`));
  $('download-credits').addEventListener('click', () =>
    save(`/v1/jobs/${job()}/credits`, `credits-${short(state.viewing)}.parquet`));
  let width = window.innerWidth;
  let timer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (window.innerWidth !== width) {
        width = window.innerWidth;
        drawCharts();
      }
    }, 150);
  });
}

// ---------------------------------------------------------------- start

function start() {
  buildModelChecks();
  wireDropZone();
  wireSpend();
  wireResult();
  $('key-form').addEventListener('submit', useKey);
  $('key-forget').addEventListener('click', dropKey);
  $('job-form').addEventListener('submit', submitJob);
  $('channel_rules').addEventListener('change', (event) => {
    $('channel_rules_json').hidden = event.target.value !== 'custom';
  });
  $('jobs-refresh').addEventListener('click', () => refreshJobs());
  keyInUse(Boolean(storedKey()));
  refreshJobs();
}

start();
