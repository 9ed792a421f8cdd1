// End-to-end test of the web dashboard in a real headless Chromium (Debian's, driven by
// playwright-core; nothing is downloaded). It plays a user: refused key, real key, file
// upload through the file input, a refused option, a job with default options and a cost
// table, the job list until `succeeded`, the result view. It then checks every chart's numbers against
// the result JSON fetched from the API, the downloads, the dark theme and the console.
//
//   MTA_BASE_URL=http://127.0.0.1:8080 MTA_API_KEY=mta_… node dashboard.test.mjs
//
// Environment: MTA_BASE_URL and MTA_API_KEY (required); CHROMIUM (default
// /usr/bin/chromium); ARTIFACTS_DIR for the screenshots (default target/browser-artifacts
// under the repository); MTA_SAMPLE, the file to upload (default samples/events.csv).
// Exits non-zero on the first failed check.

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const base = (process.env.MTA_BASE_URL || '').replace(/\/$/, '');
const key = process.env.MTA_API_KEY || '';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const artifacts = path.resolve(root, process.env.ARTIFACTS_DIR || 'target/browser-artifacts');
const sample = path.resolve(root, process.env.MTA_SAMPLE || 'samples/events.csv');
const VIEWPORT = { width: 1280, height: 800 };
const EPSILON = 1e-6;

if (!base || !key) {
  console.error('set MTA_BASE_URL and MTA_API_KEY');
  process.exit(2);
}

const started = Date.now();
let step = 0;
function log(message) {
  step += 1;
  console.log(`ok ${step} - ${message} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

function close(actual, expected, what) {
  assert.ok(Number.isFinite(actual), `${what}: ${actual} is not a number`);
  assert.ok(Math.abs(actual - expected) <= EPSILON, `${what}: the page shows ${actual}, the API says ${expected}`);
}

async function api(pathname) {
  const response = await fetch(`${base}${pathname}`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200, `GET ${pathname}: ${response.status}`);
  return response.json();
}

/** Console errors, page errors and CSP violations: a clean page has none. */
function watch(page, problems) {
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error' && !/Content.Security.Policy/i.test(message.text())) return;
    // The refusals this test provokes on purpose show up as failed resource loads.
    if (/Failed to load resource: the server responded with a status of (401|422)/.test(message.text())) return;
    problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('requestfailed', (request) => {
    // Downloads end their request on purpose once the file is saved.
    if (!request.url().startsWith('blob:')) problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
}

/** Bars of one chart: `[{channel, model, value}]` in drawing order. */
function bars(page, selector) {
  return page.$$eval(`${selector} rect.bar`, (rects) => rects.map((r) => ({
    channel: r.dataset.channel, model: r.dataset.model, value: Number(r.dataset.value),
  })));
}

/**
 * The part the pickers show (a period, a window, a segment's period) against its JSON: its
 * conversions, linear's bars, its touches-per-journey histogram and top converting paths, and
 * each channel's interval (error bars, rank stability) when the part has intervals, none when
 * it has not (never the whole's). Returns how many of linear's channels have an interval.
 */
async function checkPart(page, part, kind, label) {
  await page.waitForFunction(([want, k]) => document.querySelector('#part-note')?.dataset.part === k
    && Number(document.querySelector('#summary [data-summary="conversions"]')?.dataset.value) === want,
  [part.summary.conversions, kind]);
  await page.selectOption('#model-select', 'linear');
  await page.waitForFunction(() => document.querySelector('#chart-conversions figcaption')?.textContent
    .includes('by linear'));
  const expected = part.models.linear.channels;
  for (const [chart, field] of [['#chart-conversions', 'conversions'], ['#chart-value', 'value']]) {
    const shown = await bars(page, chart);
    assert.deepEqual(shown.map((b) => b.channel), expected.map((c) => c.channel), `${label}: linear ${field} channels`);
    shown.forEach((bar, i) => close(bar.value, expected[i][field], `${label}: linear ${field} of ${bar.channel}`));
  }
  const lengths = await bars(page, '#chart-path-length');
  assert.deepEqual(lengths.map((b) => b.channel), part.reports.path_length.map((b) => b.bucket), `${label}: buckets`);
  lengths.forEach((bar, i) => close(bar.value, part.reports.path_length[i].conversions, `${label}: ${bar.channel} touches`));
  const paths = await page.$$eval('#paths-converting tbody tr', (trs) => trs.map((tr) => tr.dataset.path));
  assert.deepEqual(paths, part.reports.paths.converting.slice(0, 20).map((p) => p.path), `${label}: top converting paths`);
  const ranged = expected.filter((c) => c.interval);
  const whiskers = await page.$$eval('#chart-conversions g.error-bar', (gs) => gs.map((g) => ({
    channel: g.dataset.channel, low: Number(g.dataset.low), high: Number(g.dataset.high),
  })));
  assert.equal(whiskers.length, ranged.length, `${label}: an error bar per channel with an interval`);
  for (const w of whiskers) {
    const c = ranged.find((x) => x.channel === w.channel);
    close(w.low, c.interval.conversions_low, `${label}: ${w.channel} conversions low`);
    close(w.high, c.interval.conversions_high, `${label}: ${w.channel} conversions high`);
  }
  assert.equal(await page.isHidden('#intervals-panel'), ranged.length === 0, `${label}: rank stability iff intervals`);
  const stability = await page.$$eval('#rank-stability-body tr', (trs) => trs.map((tr) => ({
    channel: tr.dataset.channel, rank1: Number(tr.dataset.rankFirst), low: Number(tr.dataset.shareLow),
  })));
  if (ranged.length) {
    assert.deepEqual(stability.map((r) => r.channel), ranged.map((c) => c.channel), `${label}: rank stability rows`);
    stability.forEach((row, i) => {
      close(row.rank1, ranged[i].interval.rank_1_probability, `${label}: ${row.channel} P(1st)`);
      close(row.low, ranged[i].interval.share_low, `${label}: ${row.channel} share low`);
    });
  }
  return ranged.length;
}

/**
 * The breakdown table's intervals against one model of the shown part (`model`, its JSON): a
 * breakdown row with an `interval` shows its bounds, as `figure [low, high]` in its conversions
 * and value cells and in its data attributes; a row without shows its figures alone (never the
 * whole's). Rows are matched by channel and values, so bounds shown on another row fail. Each
 * channel's row shows the channel's own interval likewise. Returns how many breakdown rows
 * showed an interval.
 */
async function checkBreakdownIntervals(page, model, columns, label) {
  const expected = model.breakdown;
  const cells = (selector) => page.$$eval(selector, (trs) => trs.map((tr) => {
    const [conversions, value] = tr.querySelectorAll('td.number');
    return {
      channel: tr.dataset.channel, values: tr.dataset.values, conversions: conversions.textContent,
      value: value.textContent, brackets: tr.querySelectorAll('.interval').length,
      bounds: ['conversionsLow', 'conversionsHigh', 'valueLow', 'valueHigh'].map((k) => tr.dataset[k]),
    };
  }));
  const shown = await cells('#breakdown-body tr.breakdown-row');
  assert.equal(shown.length, expected.length, `${label}: a table row per breakdown row`);
  // The cells' texts as the page formats figures in its locale: value to two decimals, and
  // conversions too when the table shows any interval (else up to two).
  const bracketed = [...expected, ...model.channels].some((r) => r.interval);
  const texts = (rows) => page.evaluate(([figures, fixed]) => {
    const count = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format;
    const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format;
    const cell = (format, figure, low, high) => (low === undefined ? format(figure)
      : `${format(figure)} [${format(low)}, ${format(high)}]`);
    return figures.map((r) => [
      cell(fixed ? money : count, r.conversions, r.interval?.conversions_low, r.interval?.conversions_high),
      cell(money, r.value, r.interval?.value_low, r.interval?.value_high)]);
  }, [rows, bracketed]);
  const rowTexts = await texts(expected);
  const keyOf = (channel, values) => `${channel}\u0000${values}`;
  const byKey = new Map(expected.map((r, i) => [keyOf(r.channel, JSON.stringify(columns.map((c) => r[c]))), i]));
  let ranged = 0;
  for (const row of shown) {
    const i = byKey.get(keyOf(row.channel, row.values));
    assert.ok(i !== undefined, `${label}: ${row.channel} ${row.values} is a row of the API's`);
    const { interval } = expected[i];
    const what = `${label}: ${row.channel} ${row.values}`;
    assert.deepEqual([row.conversions, row.value], rowTexts[i], `${what}: conversions and value cells`);
    if (interval) {
      ranged += 1;
      assert.equal(row.brackets, 2, `${what}: bounds of conversions and value`);
      [interval.conversions_low, interval.conversions_high, interval.value_low, interval.value_high]
        .forEach((bound, j) => close(Number(row.bounds[j]), bound, `${what}: bound ${j}`));
    } else {
      assert.equal(row.brackets, 0, `${what}: no interval`);
      assert.deepEqual(row.bounds, [undefined, undefined, undefined, undefined], `${what}: no bounds`);
    }
  }
  const groups = await cells('#breakdown-body tr.channel-row');
  const channels = groups.map((g) => model.channels.find((c) => c.channel === g.channel));
  const channelTexts = await texts(channels);
  groups.forEach((group, i) => assert.deepEqual([group.conversions, group.value], channelTexts[i],
    `${label}: ${group.channel}'s own figures and interval`));
  // The headers say what the brackets are.
  if (ranged > 0) {
    const heads = await page.$$eval('#breakdown-head th.number', (ths) => ths.map((th) => th.textContent));
    assert.ok(heads.slice(0, 2).every((h) => /\[\d+% interval\]/.test(h)), `${label}: headers name the interval: ${heads}`);
  }
  return ranged;
}

/** Whether the service has the CSV table `table` of the job's result (part tables are newer). */
async function hasTable(jobId, table) {
  const response = await fetch(`${base}/v1/jobs/${jobId}/result?format=csv&table=${table}`,
    { headers: { Authorization: `Bearer ${key}` } });
  await response.arrayBuffer();
  return response.status === 200;
}

/**
 * The intervals CSV of the shown part, when the service has it: `columns` (the part's labels)
 * first, one row per part × model × channel with an interval.
 */
async function checkPartIntervals(page, jobId, table, columns, parts) {
  if (!(await hasTable(jobId, table))) return `no ${table} table in this service`;
  const lines = await downloadLines(page, '#download-intervals');
  assert.ok(lines[0].startsWith(`${columns},model,channel,conversions,conversions_low`), lines[0]);
  const rows = parts.reduce((n, p) => n + Object.values(p.models)
    .reduce((m, model) => m + model.channels.filter((c) => c.interval).length, 0), 0);
  assert.equal(lines.length - 1, rows, `one ${table} row per part × model × channel with an interval`);
  return `${table} CSV ${rows} rows`;
}

/** Downloads with `button` and returns the CSV's lines. */
async function downloadLines(page, button) {
  const [file] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return (await readFile(await file.path(), 'utf8')).trim().split('\n');
}

/** The number of rows of a paths CSV of the given parts (converting and non-converting). */
const pathCount = (parts) => parts.reduce((n, p) => n + p.reports.paths.converting.length
  + p.reports.paths.non_converting.length, 0);

async function pasteKey(page, value) {
  await page.fill('#key-input', value);
  await page.click('#key-use');
}

async function openResult(page, jobId) {
  const row = `#jobs-body tr[data-job-id="${jobId}"]`;
  await page.waitForSelector(`${row}[data-state="succeeded"]`, { timeout: 120_000 });
  await page.click(`${row} button[data-action="view"]`);
  await page.waitForSelector(`#result[data-ready="true"][data-job-id="${jobId}"]`, { timeout: 30_000 });
}

function luminance(rgb) {
  const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

async function main() {
  await mkdir(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const problems = [];
  let page;
  try {
    const light = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light', acceptDownloads: true });
    page = await light.newPage();
    watch(page, problems);
    await page.goto(`${base}/`, { waitUntil: 'load' });
    assert.equal(await page.title(), 'Attribution dashboard');
    await page.waitForSelector('#models input[type="checkbox"]');
    log('the dashboard loads with its scripts (model checkboxes drawn)');

    // A refused key: plain words, no JSON, nothing kept.
    for (const [refused, reason] of [['mta_' + '0'.repeat(64), 'not valid'], ['not-a-key', 'malformed']]) {
      await pasteKey(page, refused);
      await page.waitForFunction(() => {
        const box = document.getElementById('key-error');
        return !box.hidden && box.textContent.includes('refused');
      });
      const words = await page.textContent('#key-error');
      assert.match(words, /^The API key was refused: /, words);
      assert.ok(words.includes(reason), `"${words}" should say the key is ${reason}`);
      assert.ok(!/[{}]|"error"|"code"/.test(words), `raw JSON shown: ${words}`);
      assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key must not be kept');
    }
    log('refused keys show "The API key was refused: …" in plain words and are not kept');

    await pasteKey(page, key);
    await page.waitForSelector('#key-forget:not([hidden])');
    assert.equal(await page.isHidden('#key-error'), true, 'the old error is cleared');
    const storage = await page.evaluate(() => ({
      session: sessionStorage.getItem('mta.apiKey'), local: localStorage.length,
      cookies: document.cookie, input: document.getElementById('key-input').value,
    }));
    assert.deepEqual(storage, { session: key, local: 0, cookies: '', input: '' });
    log('the key is kept in sessionStorage only (not localStorage, not cookies, not the input)');

    // The drop zone's file input is reachable with the keyboard and shows focus.
    await page.evaluate(() => document.activeElement?.blur());
    let reached = false;
    for (let i = 0; i < 40 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.id === 'file-input');
    }
    assert.ok(reached, 'Tab never reached the file input');
    const outline = await page.$eval('#drop-zone', (zone) => getComputedStyle(zone).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused drop zone has no visible focus style');
    log('Tab reaches the file input of the drop zone, which shows a focus outline');

    // Drag and drop: a file dropped on the zone is uploaded (a synthetic drop event
    // carrying a real File; headless Chromium has no OS drag source).
    const dropped = await page.evaluate(async () => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['a,b\n1,2\n'], 'dropped.csv', { type: 'text/csv' }));
      const zone = document.getElementById('drop-zone');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      const highlighted = zone.classList.contains('dragging');
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      return highlighted;
    });
    assert.ok(dropped, 'the drop zone highlights while a file is dragged over it');
    await page.waitForSelector('#upload-text[data-upload-id]', { timeout: 30_000 });
    assert.equal(await page.textContent('#upload-name'), 'dropped.csv');
    const droppedId = await page.getAttribute('#upload-text', 'data-upload-id');
    log('a file dropped on the drop zone is uploaded');

    // That file lacks the needed columns: its job fails, and the view says why in words.
    await page.click('#submit-job');
    await page.waitForSelector('#submit-status[data-job-id]');
    const failedId = await page.getAttribute('#submit-status', 'data-job-id');
    const failedRow = `#jobs-body tr[data-job-id="${failedId}"]`;
    await page.waitForSelector(`${failedRow}[data-state="failed"]`, { timeout: 60_000 });
    await page.click(`${failedRow} button[data-action="view"]`);
    await page.waitForSelector('#result-error:not([hidden])');
    const failure = await page.innerText('#result-error');
    assert.match(failure, /^The job failed: missing column\(s\) user_id/, failure);
    assert.ok(/Column user_id: column not found/.test(failure), failure);
    assert.ok(!/[{}]|"error"/.test(failure), `raw JSON shown: ${failure}`);
    assert.equal(await page.isHidden('#result-body'), true, 'no charts for a failed job');
    log(`a failed job's view explains it: "${failure.replace(/\s+/g, ' ').trim()}"`);

    // Upload through the file input; the progress text counts bytes and percent, the bar ends full.
    const size = (await readFile(sample)).length;
    await page.evaluate(() => {
      window.progressSeen = [];
      const text = document.getElementById('upload-text');
      new MutationObserver(() => window.progressSeen.push(text.textContent))
        .observe(text, { childList: true, characterData: true, subtree: true });
    });
    await page.setInputFiles('#file-input', sample);
    await page.waitForFunction((old) => {
      const id = document.getElementById('upload-text').dataset.uploadId;
      return id && id !== old;
    }, droppedId, { timeout: 60_000 });
    assert.equal(await page.$eval('#upload-progress', (bar) => bar.value), 100);
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.some((t) => /^[\d.]+ (B|kB|MB) of [\d.]+ (kB|MB) \(\d+%\)$/.test(t)), `progress: ${seen}`);
    const uploaded = await page.textContent('#upload-text');
    assert.match(uploaded, /^Uploaded \d/, uploaded);
    assert.equal(await page.isDisabled('#submit-job'), false, 'the form is enabled after the upload');
    log(`uploaded ${path.basename(sample)} (${size} bytes) through the file input: ${seen.join(' → ')}`);

    // An option the service refuses: its message and the field, in words.
    await page.fill('#half_life_days', '0');
    await page.click('#submit-job');
    await page.waitForSelector('#submit-error:not([hidden])');
    const refusal = await page.innerText('#submit-error');
    assert.ok(refusal.includes('half_life_days') && refusal.includes('must be a number > 0'), refusal);
    assert.ok(!/[{}]|"error"/.test(refusal), `raw JSON shown: ${refusal}`);
    await page.fill('#half_life_days', '');
    // The Markov order is picked from 1 to 4 or `auto`, nothing else.
    const orders = await page.$$eval('#markov_order option', (options) => options.map((o) => o.value));
    assert.deepEqual(orders, ['', '1', '2', '3', '4', 'auto']);
    log(`a 422 is shown with its field: "${refusal.replace(/\s+/g, ' ').trim()}"`);

    // Custom channel rules: the text box appears with the choice; not JSON is refused by the
    // page, a bad regex by the service (naming the rule), both in words.
    assert.equal(await page.isHidden('#channel_rules_json'), true, 'no rules box unless custom rules are chosen');
    await page.selectOption('#channel_rules', 'custom');
    await page.fill('#channel_rules_json', '[{"channel": "Paid", ');
    await page.click('#submit-job');
    await page.waitForSelector('#submit-error:not([hidden])');
    const notJson = await page.innerText('#submit-error');
    assert.ok(/custom channel rules are not JSON/.test(notJson), notJson);
    await page.fill('#channel_rules_json', '[{"channel": "Paid", "when": {"medium": {"regex": "(cpc"}}}]');
    await page.click('#submit-job');
    await page.waitForFunction(() => /channel_rules\[0\]/.test(document.querySelector('#submit-error')?.innerText));
    const badRule = await page.innerText('#submit-error');
    assert.ok(!/[{}]|"error"/.test(badRule.replace(/\{"channel".*$/s, '')), `raw JSON shown: ${badRule}`);
    await page.selectOption('#channel_rules', '');
    assert.equal(await page.isHidden('#channel_rules_json'), true);
    log(`custom channel rules: not JSON refused by the page, a bad regex by the service: "${badRule.replace(/\s+/g, ' ').trim()}"`);

    // A cost table for the job: three channels of the sample and `tv`, which it never mentions.
    const costs = path.join(artifacts, 'costs.csv');
    let costRows = 'date,channel,campaign,cost\n';
    for (let day = 1; day <= 28; day += 1) {
      const date = `2026-02-${String(day).padStart(2, '0')}`;
      costRows += `${date},paid_search,brand,${100 + day}\n${date},display,,${40 + (day % 5)}\n`;
      costRows += `${date},social_paid,spring,${day % 3 === 0 ? 0 : 25}\n${date},tv,,500\n`;
    }
    await writeFile(costs, costRows);
    await page.setInputFiles('#spend-input', costs);
    await page.waitForSelector('#spend-status[data-upload-id]', { timeout: 30_000 });
    const spendUpload = await page.getAttribute('#spend-status', 'data-upload-id');
    assert.ok((await page.textContent('#spend-status')).startsWith('Cost table costs.csv uploaded'));
    log('a cost table is attached through its file input (uploaded on its own)');

    // Submit with default options but credit per week, and wait for the list to show success.
    await page.selectOption('#period', 'week');
    await page.click('#submit-job');
    await page.waitForSelector('#submit-status[data-job-id]');
    assert.equal(await page.isHidden('#submit-error'), true);
    const jobId = await page.getAttribute('#submit-status', 'data-job-id');
    const job = await api(`/v1/jobs/${jobId}`);
    assert.deepEqual(Object.keys(job.spec).sort(), ['export_credits', 'options', 'spend_upload_id', 'upload_id'],
      'empty fields omitted');
    assert.equal(job.spec.spend_upload_id, spendUpload, 'the job names the cost table');
    const { period, ...others } = job.spec.options;
    assert.equal(period, 'week');
    assert.ok(Object.values(others).every((v) => v === null), 'default options sent as none');
    const row = `#jobs-body tr[data-job-id="${jobId}"]`;
    await page.waitForSelector(`${row}[data-state="succeeded"]`, { timeout: 120_000 });
    const rowText = await page.textContent(row);
    assert.ok(rowText.includes(jobId.slice(0, 8)) && rowText.includes('succeeded'), rowText);
    assert.ok(/12,000 rows/.test(rowText) || !sample.endsWith('events.csv'), rowText);
    log(`job ${jobId.slice(0, 8)} submitted with default options (per week) and shown as succeeded: "${rowText.trim()}"`);

    await openResult(page, jobId);
    const result = await api(`/v1/jobs/${jobId}/result`);
    const models = Object.keys(result.models);
    log(`result view open; the API's result has ${models.length} models`);

    // Summary tiles.
    const tiles = await page.$$eval('[data-summary]', (items) =>
      Object.fromEntries(items.map((t) => [t.dataset.summary, Number(t.dataset.value)])));
    for (const field of ['rows', 'journeys', 'converting_journeys', 'conversions', 'conversion_value',
      'unattributed_conversions', 'unattributed_value', 'channels']) {
      close(tiles[field], result.summary[field], `summary ${field}`);
    }
    assert.equal(await page.isHidden('#segment-select'), true, 'no segment picker without segments');
    assert.equal(await page.isHidden('#download-segments'), true, 'no segments download without segments');
    for (const report of ['positions', 'paths']) {
      assert.equal(await page.isHidden(`#download-breakdown-${report}`), true, `no breakdown ${report} without a breakdown`);
    }
    log('summary tiles match the result summary');

    // Per model: conversions and value by channel, in the API's order.
    const explicit = models.includes('linear') ? ['linear', ...models.filter((m) => m !== 'linear')] : models;
    for (const model of explicit) {
      await page.selectOption('#model-select', model);
      await page.waitForFunction((m) => document.querySelector('#chart-conversions figcaption')?.textContent
        .endsWith(` ${m}`), model);
      const expected = result.models[model].channels;
      for (const [chart, field] of [['#chart-conversions', 'conversions'], ['#chart-value', 'value']]) {
        const shown = await bars(page, chart);
        assert.deepEqual(shown.map((b) => b.channel), expected.map((c) => c.channel), `${model} ${field} channels`);
        shown.forEach((bar, i) => close(bar.value, expected[i][field], `${model} ${field} of ${bar.channel}`));
      }
    }
    log(`per-model bar charts: every bar's data-value equals the API's conversions and value (${explicit.join(', ')})`);

    // Models compared: one group per channel, one bar per model.
    const channels = new Set(models.flatMap((m) => result.models[m].channels.map((c) => c.channel)));
    const groups = await page.$$eval('#chart-compare g.group', (gs) => gs.map((g) => g.dataset.channel));
    assert.equal(groups.length, channels.size, 'one group per channel');
    assert.deepEqual(new Set(groups), channels);
    for (const channel of groups) {
      const shown = await bars(page, `#chart-compare g.group[data-channel="${channel}"]`);
      assert.deepEqual(shown.map((b) => b.model), models, `one bar per model for ${channel}`);
      for (const bar of shown) {
        const credited = result.models[bar.model].channels.find((c) => c.channel === channel)?.conversions ?? 0;
        close(bar.value, credited, `comparison ${bar.model} × ${channel}`);
      }
    }
    log(`comparison chart: ${groups.length} channel groups × ${models.length} model bars, values match`);

    // Markov removal effects and the conversion probability.
    const markov = result.models.markov;
    assert.ok(markov, 'the default options include markov');
    const removal = await bars(page, '#chart-removal');
    assert.deepEqual(new Set(removal.map((b) => b.channel)), new Set(markov.channels.map((c) => c.channel)));
    assert.equal(removal.length, markov.channels.length);
    for (const bar of removal) {
      close(bar.value, markov.channels.find((c) => c.channel === bar.channel).removal_effect, `removal ${bar.channel}`);
    }
    close(Number(await page.getAttribute('#markov-probability', 'data-value')), markov.conversion_probability,
      'conversion probability');
    log(`removal-effects chart lists all ${removal.length} channels with their removal_effect`);

    // The journey reports: both histograms, the positions, the top paths and the transition heat map.
    const reports = result.reports;
    for (const [chart, table] of [['#chart-path-length', 'path_length'], ['#chart-time-lag', 'time_lag']]) {
      const shown = await bars(page, chart);
      assert.deepEqual(shown.map((b) => b.channel), reports[table].map((b) => b.bucket), `${table} buckets`);
      shown.forEach((bar, i) => close(bar.value, reports[table][i].conversions, `${table} bucket ${bar.channel}`));
    }
    assert.ok(reports.path_length.some((b) => b.conversions > 0) && reports.time_lag.some((b) => b.conversions > 0));
    const positionBars = await bars(page, '#chart-positions');
    assert.equal(positionBars.length, reports.positions.length * 4, 'four bars (only, first, middle, last) per channel');
    for (const bar of positionBars) {
      const position = reports.positions.find((p) => p.channel === bar.channel);
      assert.ok(position, `a positions bar for a channel the API does not have: ${bar.channel}`);
      close(bar.value, position[bar.model], `${bar.model} position of ${bar.channel}`);
    }
    log(`histograms (${reports.path_length.length} and ${reports.time_lag.length} buckets) and positions `
      + `(${reports.positions.length} channels × 4) match the API's reports`);

    const pathRows = (table) => page.$$eval(`${table} tbody tr`, (trs) => trs.map((tr) => ({
      path: tr.dataset.path, text: tr.cells[1].textContent, journeys: Number(tr.dataset.journeys),
      conversions: Number(tr.dataset.conversions), value: Number(tr.dataset.value),
      nulls: Number(tr.dataset.nullJourneys),
    })));
    for (const [table, list] of [['#paths-converting', 'converting'], ['#paths-non-converting', 'non_converting']]) {
      const shown = await pathRows(table);
      const expected = reports.paths[list];
      assert.ok(expected.length > 0, `the sample has ${list} paths`);
      assert.equal(shown.length, Math.min(20, expected.length), `${list}: the first 20 paths`);
      shown.forEach((row, i) => {
        assert.equal(row.path, expected[i].path, `${list} path ${i + 1}`);
        assert.equal(row.text, expected[i].path, `${list} path ${i + 1} as shown`);
        close(row.journeys, expected[i].journeys, `${list} ${row.path} journeys`);
        close(row.conversions, expected[i].conversions, `${list} ${row.path} conversions`);
        close(row.value, expected[i].value, `${list} ${row.path} value`);
        close(row.nulls, expected[i].null_journeys, `${list} ${row.path} null journeys`);
      });
    }
    assert.equal(await page.getAttribute('#paths-note', 'data-exact'), String(reports.paths.exact));
    log(`top paths tables list the API's converting and non-converting paths in order (exact: ${reports.paths.exact})`);

    const transitions = reports.transitions;
    assert.ok(transitions, 'markov ran, so the result has its transitions');
    const steps = new Map(transitions.rows.map((t) => [`${t.from}\u0000${t.to}`, t.probability]));
    const heatCells = await page.$$eval('#chart-transitions rect.cell', (rects) => rects.map((r) => ({
      from: r.dataset.from, to: r.dataset.to, value: Number(r.dataset.value),
    })));
    const heatRows = await page.$$eval('#chart-transitions g.heat-row', (gs) => gs.map((g) => g.dataset.from));
    const heatColumns = new Set([...heatRows.filter((s) => s !== '(start)'), '(conversion)', '(null)']);
    const drawn = transitions.rows.filter((t) => heatRows.includes(t.from) && heatColumns.has(t.to));
    assert.equal(heatCells.length, drawn.length, 'one cell per step between the states shown');
    for (const cell of heatCells) {
      const key = `${cell.from}\u0000${cell.to}`;
      assert.ok(steps.has(key), `a cell for a step the API does not have: ${cell.from} → ${cell.to}`);
      close(cell.value, steps.get(key), `probability ${cell.from} → ${cell.to}`);
    }
    assert.equal(heatRows[0], '(start)');
    log(`transition heat map: ${heatRows.length} rows, ${heatCells.length} cells, each the API's probability`);

    // Credit over time: for the chosen model, one line per channel and a point per week.
    await page.selectOption('#model-select', 'linear');
    await page.waitForFunction(() => document.querySelector('#chart-periods figcaption')?.textContent
      .includes('by linear'));
    assert.ok(result.periods.length > 1, `the sample spans several weeks: ${result.periods.length}`);
    const points = await page.$$eval('#chart-periods circle.point', (ps) => ps.map((p) => ({
      period: p.dataset.period, channel: p.dataset.channel, value: Number(p.dataset.value),
    })));
    const linearChannels = result.models.linear.channels.map((c) => c.channel);
    assert.equal(points.length, result.periods.length * linearChannels.length, 'a point per week and channel');
    assert.deepEqual(new Set(points.map((p) => p.channel)), new Set(linearChannels));
    for (const point of points) {
      const week = result.periods.find((p) => p.period === point.period);
      assert.ok(week, `a point for a week the API does not have: ${point.period}`);
      const credited = week.models.linear.channels.find((c) => c.channel === point.channel)?.conversions ?? 0;
      close(point.value, credited, `linear ${point.channel} in the week of ${point.period}`);
    }
    log(`credit over time: ${result.periods.length} weeks × ${linearChannels.length} channel lines, values match`);

    // Cost, CPA and ROAS of the chosen model: the table's cells and the ROAS bars equal the API's.
    assert.ok(result.spend, 'the job had a cost table');
    for (const model of ['markov', 'first_touch', 'linear']) {
      await page.selectOption('#model-select', model);
      await page.waitForFunction((m) => document.querySelector('#chart-roas figcaption')?.textContent
        .includes(`under ${m}:`), model);
      const expected = result.models[model].channels;
      const shown = await page.$$eval('#spend-body tr', (trs) => trs.map((tr) => ({
        channel: tr.dataset.channel, cost: tr.dataset.cost, cpa: tr.dataset.cpa, roas: tr.dataset.roas,
      })));
      assert.deepEqual(shown.map((r) => r.channel), expected.map((c) => c.channel), `${model} spend rows`);
      shown.forEach((row, i) => {
        for (const field of ['cost', 'cpa', 'roas']) {
          const want = expected[i][field];
          assert.ok(want !== undefined, `${model} ${row.channel} has ${field} in the API's result`);
          if (want === null) assert.equal(row[field], '', `${model} ${field} of ${row.channel} is null in the API`);
          else close(Number(row[field]), want, `${model} ${field} of ${row.channel}`);
        }
      });
      const roas = await bars(page, '#chart-roas');
      const defined = expected.filter((c) => c.roas !== null);
      assert.equal(roas.length, defined.length, `${model}: a ROAS bar per channel with a ROAS`);
      for (const bar of roas) close(bar.value, defined.find((c) => c.channel === bar.channel).roas, `ROAS ${bar.channel}`);
    }
    const costed = result.models.linear.channels.filter((c) => c.cost !== null).map((c) => c.channel).sort();
    assert.deepEqual(costed, ['display', 'paid_search', 'social_paid']);
    const unmatched = (await page.getAttribute('#spend-unmatched', 'data-channels')).split('\n');
    assert.deepEqual(unmatched, result.spend.unmatched_cost.map((u) => u.channel));
    assert.deepEqual(unmatched, ['tv']);
    close(result.spend.cost, result.spend.matched_cost + 28 * 500, 'the unmatched cost is the tv rows');
    log(`cost, CPA and ROAS: table cells and ROAS bars equal the API's under 3 models; unmatched cost: ${unmatched}`);

    // Every chart has a text alternative: an aria-label and a table with one row per channel
    // (per period for the chart over time, per channel with a ROAS for the ROAS chart).
    const alternatives = await page.$$eval('figure.chart', (figures) => figures.filter((f) => !f.closest('[hidden]')).map((f) => ({
      id: f.id, label: f.querySelector('svg[role="img"]')?.getAttribute('aria-label') || '',
      rows: f.querySelectorAll('.visually-hidden table tbody tr').length,
    })));
    assert.equal(alternatives.length, 10);
    const withRoas = result.models.linear.channels.filter((c) => c.roas !== null).length;
    const tableRows = {
      'chart-periods': result.periods.length, 'chart-roas': withRoas, 'chart-path-length': reports.path_length.length,
      'chart-time-lag': reports.time_lag.length, 'chart-positions': reports.positions.length,
      'chart-transitions': heatRows.length,
    };
    for (const alt of alternatives) {
      assert.ok(alt.label.length > 10, `${alt.id} has no aria-label`);
      const rows = tableRows[alt.id] ?? channels.size;
      assert.equal(alt.rows, rows, `${alt.id}: the hidden table has one row per channel (bucket, period, state)`);
    }
    log('each chart has an aria-label and a visually hidden table of its numbers');

    // Nothing is wider than a 1280 px laptop screen.
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= VIEWPORT.width, `the page scrolls sideways: ${scrollWidth} px`);

    // Downloads go through fetch with the key and a blob URL.
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
    const csvText = await readFile(await csv.path(), 'utf8');
    const lines = csvText.trim().split('\n');
    assert.equal(lines[0], 'model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas');
    const cells = models.reduce((n, m) => n + result.models[m].channels.length, 0);
    assert.equal(lines.length - 1, cells, 'one CSV row per model × channel');
    assert.equal(csv.suggestedFilename(), `result-${jobId.slice(0, 8)}.csv`);
    const [periodsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-periods')]);
    const periodLines = (await readFile(await periodsCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(periodLines[0],
      'period,model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas');
    const periodCells = result.periods.reduce((n, p) => n + Object.values(p.models)
      .reduce((m, model) => m + model.channels.length, 0), 0);
    assert.equal(periodLines.length - 1, periodCells, 'one periods CSV row per week × model × channel');
    const [pathsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-paths')]);
    const pathLines = (await readFile(await pathsCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(pathLines[0], 'list,rank,path,touches,journeys,conversions,value,null_journeys,exact');
    assert.equal(pathLines.length - 1, reports.paths.converting.length + reports.paths.non_converting.length);
    const [transitionsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-transitions')]);
    const transitionLines = (await readFile(await transitionsCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(transitionLines[0], 'from,to,count,probability');
    assert.equal(transitionLines.length - 1, transitions.rows.length);
    const [unmatchedCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-unmatched')]);
    assert.equal(await readFile(await unmatchedCsv.path(), 'utf8'), 'channel,cost,rows\ntv,14000,28\n');
    const [json] = await Promise.all([page.waitForEvent('download'), page.click('#download-json')]);
    assert.deepEqual(JSON.parse(await readFile(await json.path(), 'utf8')), result);
    assert.equal(await page.isHidden('#download-credits'), true, 'no credits button without export_credits');
    log(`downloads: CSV (${lines.length - 1} rows) and JSON equal the API's; no credits button for this job`);

    // The period picker: "All periods", then each week; reached with the keyboard; a week shows
    // its own figures, cost, CPA and ROAS, and its reports' CSV is every week's (`period_paths`).
    assert.equal(await page.isHidden('#window-select'), true, 'no window picker without several windows');
    assert.equal(await page.isHidden('#window-label'), true, 'no window label without several windows');
    assert.equal(await page.textContent('label[for="period-select"]'), 'Period');
    assert.deepEqual(await page.$$eval('#period-select option', (os) => os.map((o) => o.value)),
      ['', ...result.periods.map((p) => p.period)]);
    await page.focus('#period-select');
    await page.keyboard.press('ArrowDown');
    await checkPart(page, result.periods[0], 'period', `the first week (keyboard), ${result.periods[0].period}`);
    // The busiest of the weeks the cost table covers (February).
    const busiest = result.periods.filter((p) => p.models.linear.channels.some((c) => typeof c.cost === 'number'))
      .reduce((a, b) => (b.summary.conversions > a.summary.conversions ? b : a));
    await page.selectOption('#period-select', busiest.period);
    await checkPart(page, busiest, 'period', `the week of ${busiest.period}`);
    assert.equal(await page.$('#summary [data-summary="rows"]'), null, 'rows are not split by period');
    assert.equal(await page.isHidden('#periods-panel'), true, 'a week has no chart over time');
    const weekSpend = await page.$$eval('#spend-body tr', (trs) => trs.map((tr) => ({
      channel: tr.dataset.channel, cost: tr.dataset.cost, roas: tr.dataset.roas,
    })));
    const weekChannels = busiest.models.linear.channels;
    assert.deepEqual(weekSpend.map((r) => r.channel), weekChannels.map((c) => c.channel), 'the week\'s spend rows');
    weekSpend.forEach((row, i) => {
      for (const field of ['cost', 'roas']) {
        if (weekChannels[i][field] === null) assert.equal(row[field], '', `the week's ${field} of ${row.channel}`);
        else close(Number(row[field]), weekChannels[i][field], `the week's ${field} of ${row.channel}`);
      }
    });
    assert.ok(weekChannels.some((c) => c.cost !== null && c.cost !== result.models.linear.channels
      .find((w) => w.channel === c.channel).cost), 'a week\'s cost is not the whole\'s');
    const periodPaths = await downloadLines(page, '#download-paths');
    assert.equal(periodPaths[0], 'period,list,rank,path,touches,journeys,conversions,value,null_journeys,exact');
    assert.equal(periodPaths.length - 1, pathCount(result.periods), 'one period_paths row per week × path');
    await page.selectOption('#period-select', '');
    await page.waitForFunction((want) => Number(document.querySelector('#summary [data-summary="rows"]')
      ?.dataset.value) === want, result.summary.rows);
    log(`period picker: ${result.periods.length} weeks; the week of ${busiest.period}'s credits, cost, histogram `
      + `and top paths match periods[]; its paths CSV is period_paths (${periodPaths.length - 1} rows)`);

    await page.selectOption('#model-select', 'markov');
    await page.screenshot({ path: path.join(artifacts, 'result-light.png'), fullPage: true });
    await page.$eval('#result', (section) => section.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(artifacts, 'result-light-viewport.png') });
    const lightBackground = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);

    // The dark theme: another tab (its own session storage) with a dark system theme.
    const dark = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'dark' });
    const darkPage = await dark.newPage();
    watch(darkPage, problems);
    await darkPage.goto(`${base}/`, { waitUntil: 'load' });
    assert.equal(await darkPage.evaluate(() => sessionStorage.length), 0, 'a new tab starts without a key');
    await pasteKey(darkPage, key);
    await openResult(darkPage, jobId);
    await darkPage.selectOption('#model-select', 'markov');
    const darkColors = await darkPage.evaluate(() => ({
      background: getComputedStyle(document.body).backgroundColor,
      text: getComputedStyle(document.body).color,
      label: getComputedStyle(document.querySelector('#chart-conversions text.label')).fill,
    }));
    assert.notEqual(darkColors.background, lightBackground, 'the dark theme changes the background');
    assert.ok(luminance(darkColors.background) < 0.05, `dark background ${darkColors.background}`);
    assert.ok(luminance(lightBackground) > 0.8, `light background ${lightBackground}`);
    assert.ok(luminance(darkColors.text) > 0.6 && luminance(darkColors.label) > 0.6,
      `dark text ${darkColors.text}, chart labels ${darkColors.label}`);
    await darkPage.screenshot({ path: path.join(artifacts, 'result-dark.png'), fullPage: true });
    log(`dark theme: background ${darkColors.background} (light: ${lightBackground}), text ${darkColors.text}`);
    await dark.close();

    // Lookback windows compared in one job: for the chosen model, each channel's share per
    // window (a line per channel) and its rank per window, as the API's window_ranks say.
    assert.equal(await page.isHidden('#windows-panel'), true, 'no window comparison without a list of windows');
    await page.selectOption('#period', '');
    await page.fill('#lookback_days', '7,30,0');
    await page.click('#submit-job');
    await page.waitForFunction((first) => {
      const id = document.querySelector('#submit-status')?.dataset.jobId;
      return id && id !== first;
    }, jobId);
    const windowsJobId = await page.getAttribute('#submit-status', 'data-job-id');
    const windowsJob = await api(`/v1/jobs/${windowsJobId}`);
    assert.deepEqual(windowsJob.spec.options.lookback_days, [7, 30, 0]);
    await page.fill('#lookback_days', '');
    await openResult(page, windowsJobId);
    const compared = await api(`/v1/jobs/${windowsJobId}/result`);
    assert.deepEqual(compared.windows.map((w) => w.lookback_days), [7, 30, 0]);
    const labels = ['7d', '30d', 'unlimited'];
    for (const model of ['linear', 'first_touch']) {
      await page.selectOption('#model-select', model);
      await page.waitForFunction((m) => document.querySelector('#chart-windows figcaption')?.textContent
        .includes(`by ${m},`), model);
      const ranks = compared.window_ranks.find((r) => r.model === model);
      const shares = await page.$$eval('#chart-windows circle.point', (ps) => ps.map((p) => ({
        window: p.dataset.period, channel: p.dataset.channel, value: Number(p.dataset.value),
      })));
      assert.equal(shares.length, ranks.channels.length * labels.length, `${model}: a point per channel and window`);
      for (const point of shares) {
        const channel = ranks.channels.find((c) => c.channel === point.channel);
        assert.ok(channel, `${model}: a line for a channel the API does not rank: ${point.channel}`);
        close(point.value, channel.share[labels.indexOf(point.window)], `${model} share of ${point.channel} at ${point.window}`);
        // The share is the window's own channel list's share.
        const window = compared.windows[labels.indexOf(point.window)];
        close(point.value, window.models[model].channels.find((c) => c.channel === point.channel)?.share ?? 0,
          `${model} ${point.channel} in the ${point.window} window's result`);
      }
      const rows = await page.$$eval('#window-ranks tbody tr', (trs) => trs.map((tr) => ({
        channel: tr.dataset.channel,
        ranks: [...tr.querySelectorAll('td[data-window]')].map((td) => (td.dataset.rank === '' ? null : Number(td.dataset.rank))),
        spread: Number(tr.querySelector('td[data-spread]').dataset.spread),
      })));
      assert.deepEqual(rows, ranks.channels.map((c) => ({ channel: c.channel, ranks: c.rank, spread: c.rank_spread })),
        `${model}: the rank table is the API's window_ranks`);
    }
    const [windowsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-windows')]);
    const windowLines = (await readFile(await windowsCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(windowLines[0], 'model,channel,lookback_days,conversions,value,share,rank');
    const ranked = compared.window_ranks.reduce((n, r) => n + r.channels
      .reduce((m, c) => m + c.rank.filter((x) => x !== null).length, 0), 0);
    assert.equal(windowLines.length - 1, ranked, 'one windows CSV row per model × channel × window that ranks it');
    await page.screenshot({ path: path.join(artifacts, 'result-windows.png'), fullPage: true });
    log(`lookback windows: ${labels.join(', ')} shares and ranks of linear and first_touch match the API; windows CSV ${ranked} rows`);

    // The window picker: the first window is the whole's; a further one shows its own figures,
    // keeps the comparison, and its reports' CSV is every window's (`window_paths`).
    assert.equal(await page.isHidden('#period-select'), true, 'no period picker without periods');
    assert.equal(await page.isHidden('#segment-select'), true, 'no segment picker without segments');
    assert.equal(await page.textContent('label[for="window-select"]'), 'Lookback window');
    assert.deepEqual(await page.$$eval('#window-select option', (os) => os.map((o) => [o.value, o.textContent])),
      [['', '7d (top figures)'], ['1', '30d'], ['2', 'unlimited']]);
    for (const [i, label] of [[1, '30d'], [2, 'unlimited']]) {
      await page.selectOption('#window-select', String(i));
      await checkPart(page, compared.windows[i], 'window', `the ${label} window`);
      assert.equal(await page.isHidden('#windows-panel'), false, 'the windows compared stay shown');
    }
    const windowPaths = await downloadLines(page, '#download-paths');
    assert.equal(windowPaths[0], 'lookback_days,list,rank,path,touches,journeys,conversions,value,null_journeys,exact');
    assert.equal(windowPaths.length - 1, pathCount(compared.windows), 'one window_paths row per window × path');
    await page.selectOption('#window-select', '');
    await checkPart(page, compared, '', 'the top figures');
    log(`window picker: the 30d and unlimited windows' credits, histogram and top paths match windows[]; `
      + `its paths CSV is window_paths (${windowPaths.length - 1} rows)`);

    // Bootstrap intervals: error bars on the credit charts and the rank-stability table, as
    // the API's intervals say, for a rule model and for markov.
    assert.equal(await page.isHidden('#intervals-panel'), true, 'no rank stability without intervals');
    await page.fill('#lookback_days', '30,7');
    await page.fill('#intervals_replicates', '40');
    await page.fill('#intervals_level', '0.8');
    await page.click('#submit-job');
    await page.waitForFunction((first) => {
      const id = document.querySelector('#submit-status')?.dataset.jobId;
      return id && id !== first;
    }, windowsJobId);
    const intervalsJobId = await page.getAttribute('#submit-status', 'data-job-id');
    assert.deepEqual((await api(`/v1/jobs/${intervalsJobId}`)).spec.options.intervals, { replicates: 40, level: 0.8 });
    await page.fill('#intervals_replicates', '');
    await page.fill('#intervals_level', '');
    await page.fill('#lookback_days', '');
    await openResult(page, intervalsJobId);
    const withIntervals = await api(`/v1/jobs/${intervalsJobId}/result`);
    assert.deepEqual(withIntervals.options.intervals, { replicates: 40, level: 0.8, seed: 0 });
    for (const model of ['linear', 'markov']) {
      await page.selectOption('#model-select', model);
      await page.waitForFunction((m) => document.querySelector('#chart-rank-1 figcaption')?.textContent
        .includes(`under ${m},`), model);
      const apiChannels = withIntervals.models[model].channels;
      for (const [chart, field] of [['#chart-conversions', 'conversions'], ['#chart-value', 'value']]) {
        const whiskers = await page.$$eval(`${chart} g.error-bar`, (gs) => gs.map((g) => ({
          channel: g.dataset.channel, low: Number(g.dataset.low), high: Number(g.dataset.high),
        })));
        assert.equal(whiskers.length, apiChannels.length, `${model} ${field}: an error bar per channel`);
        for (const w of whiskers) {
          const c = apiChannels.find((x) => x.channel === w.channel);
          close(w.low, c.interval[`${field}_low`], `${model} ${w.channel} ${field} low`);
          close(w.high, c.interval[`${field}_high`], `${model} ${w.channel} ${field} high`);
          assert.ok(w.low <= c[field] + EPSILON && c[field] <= w.high + EPSILON, `${model} ${w.channel}: inside its interval`);
        }
      }
      const stability = await page.$$eval('#rank-stability-body tr', (trs) => trs.map((tr) => ({
        channel: tr.dataset.channel, rank1: Number(tr.dataset.rankFirst),
        top3: Number(tr.dataset.topThree), median: Number(tr.dataset.medianRank),
        low: Number(tr.dataset.shareLow), high: Number(tr.dataset.shareHigh),
      })));
      assert.deepEqual(stability.map((r) => r.channel), apiChannels.map((c) => c.channel), `${model}: a row per channel`);
      for (const row of stability) {
        const i = apiChannels.find((c) => c.channel === row.channel).interval;
        close(row.rank1, i.rank_1_probability, `${model} ${row.channel} P(1st)`);
        close(row.top3, i.top_3_probability, `${model} ${row.channel} P(top 3)`);
        close(row.median, i.median_rank, `${model} ${row.channel} median rank`);
        close(row.low, i.share_low, `${model} ${row.channel} share low`);
        close(row.high, i.share_high, `${model} ${row.channel} share high`);
      }
      const firsts = await bars(page, '#chart-rank-1');
      close(firsts.reduce((n, b) => n + b.value, 0), 1, `${model}: P(1st) adds up to 1 over the channels`);
    }
    const [intervalsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-intervals')]);
    const intervalLines = (await readFile(await intervalsCsv.path(), 'utf8')).trim().split('\n');
    assert.ok(intervalLines[0].startsWith('model,channel,conversions,conversions_low,conversions_high'), intervalLines[0]);
    const intervalRows = Object.values(withIntervals.models).reduce((n, m) => n + m.channels.length, 0);
    assert.equal(intervalLines.length - 1, intervalRows, 'one intervals CSV row per model × channel');
    await page.screenshot({ path: path.join(artifacts, 'result-intervals.png'), fullPage: true });
    log(`intervals: error bars and rank stability of linear and markov match the API; intervals CSV ${intervalRows} rows`);
    // A further window: its own intervals where the JSON has them, and never the whole's.
    await page.selectOption('#window-select', '1');
    const windowRanged = await checkPart(page, withIntervals.windows[1], 'window', 'the 7d window with intervals');
    const windowIntervals = windowRanged
      ? await checkPartIntervals(page, intervalsJobId, 'window_intervals', 'lookback_days', withIntervals.windows)
      : 'no window intervals in this service';
    await page.selectOption('#window-select', '');
    await checkPart(page, withIntervals, '', 'the top figures with intervals');
    log(`window picker with intervals: the 7d window's figures match windows[1], with ${windowRanged} error bars `
      + `as its JSON has; ${windowIntervals}`);

    // Credit by channel and campaign: a file with a campaign column, broken down from the form;
    // the table checked against the API's rows, then sorted and folded.
    // Segmented by country too: a journey counts in its conversion row's country (every fifth
    // user's conversion row has none).
    const campaigns = ['user_id,timestamp,channel,utm_campaign,conversion,conversion_value,country'];
    const COUNTRIES = ['DE', 'FR', 'IT'];
    const CHANNELS = ['email', 'search', 'display', 'social'];
    for (let user = 0; user < 120; user += 1) {
      const touches = (user % 3) + 1;
      for (let touch = 0; touch < touches; touch += 1) {
        const channel = CHANNELS[(user * 7 + touch * 3) % CHANNELS.length];
        const n = (Math.floor(user / 4) + touch * 2) % 4;
        const campaign = n === 3 ? '' : `${channel}-${n}`;
        const country = COUNTRIES[(user + touch) % 3];
        campaigns.push(`u${user},2026-03-${String(1 + touch).padStart(2, '0')}T10:00:00Z,${channel},${campaign},0,,${country}`);
      }
      const country = user % 5 === 0 ? '' : COUNTRIES[user % 3];
      // Conversions in two weeks, so that each segment has weeks of its own.
      const day = user % 2 ? '06' : '10';
      if (user % 3 !== 0) campaigns.push(`u${user},2026-03-${day}T10:00:00Z,,,1,${10 + (user % 7)},${country}`);
    }
    const before = await page.getAttribute('#upload-text', 'data-upload-id');
    await page.setInputFiles('#file-input',
      { name: 'campaigns.csv', mimeType: 'text/csv', buffer: Buffer.from(`${campaigns.join('\n')}\n`) });
    await page.waitForFunction((old) => {
      const id = document.getElementById('upload-text').dataset.uploadId;
      return id && id !== old;
    }, before, { timeout: 60_000 });
    await page.selectOption('#period', 'week');
    await page.fill('#breakdown', 'campaign, a, b');
    await page.click('#submit-job');
    await page.waitForSelector('#submit-error:not([hidden])');
    assert.ok(/at most two columns/.test(await page.innerText('#submit-error')), 'three columns are refused by the page');
    await page.fill('#breakdown', 'campaign');
    await page.fill('#segment_by', 'country');
    // Intervals, to see them follow a segment's week.
    await page.fill('#intervals_replicates', '20');
    // Markov's order chosen by the data, its pair effects, and a cost table naming campaigns.
    await page.selectOption('#markov_order', 'auto');
    await page.check('#markov_pair_effects');
    const campaignCosts = 'date,channel,campaign,cost\n2026-03-01,email,email-0,30\n2026-03-02,email,email-1,12\n'
      + '2026-03-02,search,,20\n2026-03-03,display,display-2,8\n2026-03-03,social,social-9,4\n';
    const spendBefore = await page.getAttribute('#spend-status', 'data-upload-id');
    await page.setInputFiles('#spend-input',
      { name: 'campaign-costs.csv', mimeType: 'text/csv', buffer: Buffer.from(campaignCosts) });
    await page.waitForFunction((old) => {
      const id = document.getElementById('spend-status').dataset.uploadId;
      return id && id !== old;
    }, spendBefore, { timeout: 30_000 });
    await page.click('#submit-job');
    await page.waitForFunction((old) => {
      const id = document.querySelector('#submit-status')?.dataset.jobId;
      return id && id !== old;
    }, windowsJobId);
    const byCampaignId = await page.getAttribute('#submit-status', 'data-job-id');
    await page.fill('#intervals_replicates', '');
    const byCampaignJob = await api(`/v1/jobs/${byCampaignId}`);
    assert.deepEqual(byCampaignJob.spec.options.breakdown, ['campaign']);
    assert.equal(byCampaignJob.spec.options.segment_by, 'country');
    assert.equal(byCampaignJob.spec.options.markov_order, 'auto');
    assert.equal(byCampaignJob.spec.options.markov_pair_effects, true);
    await openResult(page, byCampaignId);
    const byCampaign = await api(`/v1/jobs/${byCampaignId}/result`);

    // The order selection: a row per candidate order, its score and the chosen one, as the API has them.
    const selection = byCampaign.models.markov.order_selection;
    assert.ok(selection, 'markov_order auto reports its choice');
    assert.equal(await page.isHidden('#order-selection'), false, 'the order selection is shown');
    const orderRows = await page.$$eval('#order-selection-table tbody tr', (rows) => rows.map((r) => ({
      order: Number(r.dataset.order), states: Number(r.dataset.states), score: r.dataset.logLikelihood,
      chosen: r.dataset.chosen === 'true',
    })));
    assert.deepEqual(orderRows.map((r) => r.order), selection.scores.map((s) => s.order));
    orderRows.forEach((row, i) => {
      const score = selection.scores[i];
      assert.equal(row.states, score.states, `order ${row.order} states`);
      if (score.log_likelihood === null) assert.equal(row.score, '', `order ${row.order} not scored`);
      else close(Number(row.score), score.log_likelihood, `order ${row.order} log-likelihood`);
      assert.equal(row.chosen, score.order === selection.chosen, `order ${row.order} chosen`);
    });
    assert.equal(Number(await page.getAttribute('#order-selection-note', 'data-chosen')), selection.chosen);
    assert.equal(selection.chosen, byCampaign.models.markov.order, 'the chosen order is the one solved');
    // The pair removal effects: a row per pair, in the API's order, with its three figures.
    const pairs = byCampaign.models.markov.pairs;
    assert.ok(pairs?.length > 0, 'markov_pair_effects reports pairs');
    assert.equal(await page.isHidden('#pairs'), false, 'the pairs table is shown');
    const pairRows = await page.$$eval('#pairs-table tbody tr', (rows) => rows.map((r) => ({
      a: r.dataset.channelA, b: r.dataset.channelB, effect: Number(r.dataset.removalEffect),
      value: Number(r.dataset.removalEffectValue), overlap: Number(r.dataset.overlap),
    })));
    assert.equal(pairRows.length, pairs.length, 'a table row per pair');
    pairRows.forEach((row, i) => {
      assert.deepEqual([row.a, row.b], [pairs[i].channel_a, pairs[i].channel_b], `pair ${i}`);
      close(row.effect, pairs[i].removal_effect, `pair ${row.a}+${row.b} removal effect`);
      close(row.value, pairs[i].removal_effect_value, `pair ${row.a}+${row.b} value removal effect`);
      close(row.overlap, pairs[i].overlap, `pair ${row.a}+${row.b} overlap`);
    });
    const [pairsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-pairs')]);
    const pairLines = (await readFile(await pairsCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(pairLines[0], 'channel_a,channel_b,removal_effect,removal_effect_value,overlap');
    assert.equal(pairLines.length - 1, pairs.length);
    log(`markov order auto: ${selection.scores.length} scores, order ${selection.chosen} chosen; ${pairs.length} pairs match the API`);
    assert.equal(await page.isHidden('#breakdown-panel'), false, 'the breakdown table is shown');
    const breakdownRows = () => page.$$eval('#breakdown-body tr.breakdown-row', (rows) => rows.map((r) => ({
      channel: r.dataset.channel, values: JSON.parse(r.dataset.values), conversions: Number(r.dataset.conversions),
      value: Number(r.dataset.value), hidden: r.hidden, cost: r.dataset.cost, cpa: r.dataset.cpa, roas: r.dataset.roas,
    })));
    const channelRows = () => page.$$eval('#breakdown-body tr.channel-row', (rows) => rows.map((r) => ({
      channel: r.dataset.channel, conversions: Number(r.dataset.conversions), value: Number(r.dataset.value),
      rows: Number(r.dataset.rows),
    })));
    const breakdownHead = await page.$$eval('#breakdown-head th', (ths) => ths.map((th) => th.dataset.sort));
    assert.deepEqual(breakdownHead, ['channel', 'value:campaign', 'conversions', 'value', 'cost', 'cpa', 'roas']);
    let costedRows = 0;
    for (const model of ['linear', 'markov', 'shapley', 'shao_li']) {
      await page.selectOption('#model-select', model);
      await page.waitForFunction((m) => document.querySelector('#breakdown-caption')?.textContent.endsWith(` ${m}`), model);
      const expected = byCampaign.models[model].breakdown;
      const shown = await breakdownRows();
      assert.equal(shown.length, expected.length, `${model}: a table row per breakdown row`);
      // By default in the API's order: channels as ranked, then by conversions.
      shown.forEach((row, i) => {
        assert.equal(row.channel, expected[i].channel, `${model} row ${i} channel`);
        assert.deepEqual(row.values, [expected[i].campaign], `${model} row ${i} campaign`);
        close(row.conversions, expected[i].conversions, `${model} ${row.channel}/${row.values[0]} conversions`);
        close(row.value, expected[i].value, `${model} ${row.channel}/${row.values[0]} value`);
        // Cost per campaign: each figure as the API has it, empty where it is `null`.
        for (const figure of ['cost', 'cpa', 'roas']) {
          assert.ok(figure in expected[i], `${model} row ${i} has ${figure}`);
          if (expected[i][figure] === null) assert.equal(row[figure], '', `${model} ${row.channel}/${row.values[0]} ${figure}`);
          else close(Number(row[figure]), expected[i][figure], `${model} ${row.channel}/${row.values[0]} ${figure}`);
        }
        if (expected[i].cost !== null) costedRows += 1;
      });
      // With intervals, every row shows its own bounds (the whole's rows all have one).
      const ranged = await checkBreakdownIntervals(page, byCampaign.models[model], ['campaign'], model);
      assert.ok(ranged > 0, `${model}: the whole's breakdown rows show their intervals`);
      const groups = await channelRows();
      assert.deepEqual(groups.map((g) => g.channel), byCampaign.models[model].channels.map((c) => c.channel));
      for (const group of groups) {
        const credit = byCampaign.models[model].channels.find((c) => c.channel === group.channel);
        close(group.conversions, credit.conversions, `${model} ${group.channel} total`);
        const sum = shown.filter((r) => r.channel === group.channel).reduce((n, r) => n + r.conversions, 0);
        close(sum, credit.conversions, `${model} ${group.channel}: its rows add up to its credit`);
      }
    }
    // The reports still count channels: positions and transitions name channels, not channel × campaign.
    const named = new Set(CHANNELS);
    assert.ok(byCampaign.reports.positions.every((p) => named.has(p.channel)), 'positions are per channel');
    assert.equal(byCampaign.reports.transitions.order, selection.chosen, 'the transitions of the chosen order');
    assert.ok(costedRows > 0, 'some rows carry their campaign\'s cost');
    const emailZero = byCampaign.models.linear.breakdown.find((r) => r.channel === 'email' && r.campaign === 'email-0');
    assert.equal(emailZero.cost, 30, 'a campaign\'s cost is its cost rows\'');
    assert.deepEqual(byCampaign.spend.unmatched_cost.filter((u) => u.campaign !== undefined)
      .map((u) => [u.channel, u.campaign, u.cost]), [['social', 'social-9', 4]], 'a campaign no touch names');
    assert.ok((await page.textContent('#spend-unmatched')).includes('social / social-9'));
    assert.ok(byCampaign.reports.transitions.rows.flatMap((t) => [t.from, t.to]).filter((s) => !s.startsWith('('))
      .every((state) => state.split(' > ').every((c) => named.has(c))), 'transitions are between channels (of the chosen order)');
    log(`breakdown table: every row of linear, markov, shapley and shao_li equals the API's (cost, CPA, ROAS too, `
      + 'and its interval as figure [low, high]), channel rows add up');

    // Sorting by a header: campaigns by name within each channel, channels by their credit.
    await page.click('#breakdown-head button[data-sort="value:campaign"]');
    assert.equal(await page.getAttribute('#breakdown-head th[data-sort="value:campaign"]', 'aria-sort'), 'ascending');
    let sortedRows = await breakdownRows();
    for (const channel of new Set(sortedRows.map((r) => r.channel))) {
      const names = sortedRows.filter((r) => r.channel === channel).map((r) => r.values[0]);
      assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b)), `${channel}: campaigns by name`);
    }
    await page.click('#breakdown-head button[data-sort="conversions"]');
    await page.click('#breakdown-head button[data-sort="conversions"]');
    assert.equal(await page.getAttribute('#breakdown-head th[data-sort="conversions"]', 'aria-sort'), 'ascending');
    const ascending = await channelRows();
    assert.deepEqual(ascending.map((g) => g.conversions), [...ascending.map((g) => g.conversions)].sort((a, b) => a - b));
    sortedRows = await breakdownRows();
    for (const channel of new Set(sortedRows.map((r) => r.channel))) {
      const values = sortedRows.filter((r) => r.channel === channel).map((r) => r.conversions);
      assert.deepEqual(values, [...values].sort((a, b) => a - b), `${channel}: rows by conversions, ascending`);
    }
    // Folding a channel hides its rows; unfolding shows them again.
    const folded = ascending[0].channel;
    await page.click(`#breakdown-body tr.channel-row button[data-channel="${folded}"]`);
    assert.equal(await page.getAttribute(`#breakdown-body tr.channel-row button[data-channel="${folded}"]`, 'aria-expanded'), 'false');
    assert.ok((await breakdownRows()).filter((r) => r.channel === folded).every((r) => r.hidden), 'folded rows are hidden');
    assert.ok((await breakdownRows()).filter((r) => r.channel !== folded).every((r) => !r.hidden), 'others stay open');
    await page.click(`#breakdown-body tr.channel-row button[data-channel="${folded}"]`);
    assert.ok((await breakdownRows()).every((r) => !r.hidden), 'unfolded again');
    const [breakdownCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-breakdown')]);
    const breakdownLines = (await readFile(await breakdownCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(breakdownLines[0], 'model,channel,campaign,conversions,value,cost,cpa,roas');
    const breakdownCells = Object.values(byCampaign.models).reduce((n, m) => n + m.breakdown.length, 0);
    assert.equal(breakdownLines.length - 1, breakdownCells, 'one breakdown CSV row per model × channel × campaign');
    // The breakdown's touch-level reports download as the API's tables.
    const [positionsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-breakdown-positions')]);
    const positionLines = (await readFile(await positionsCsv.path(), 'utf8')).trim().split('\n');
    assert.equal(positionLines[0], 'channel,campaign,only,first,middle,last');
    assert.equal(positionLines.length - 1, byCampaign.reports.breakdown_positions.length,
      'one breakdown positions row per channel × campaign');
    const [breakdownPathsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-breakdown-paths')]);
    assert.equal((await readFile(await breakdownPathsCsv.path(), 'utf8')).split('\n')[0],
      'list,rank,path,touches,journeys,conversions,value,null_journeys,exact');
    assert.equal(await breakdownPathsCsv.suggestedFilename(), `breakdown_paths-${byCampaignJob.id.slice(0, 8)}.csv`);
    await page.$eval('#breakdown-panel', (panel) => panel.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(artifacts, 'breakdown-light-viewport.png') });
    const tableWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(tableWidth <= VIEWPORT.width, `the page scrolls sideways: ${tableWidth} px`);
    log('breakdown table sorts by campaign and by conversions (channels and rows), folds a channel, downloads its CSV');

    // Segments: the picker lists the API's segments; choosing one shows its own summary, its
    // channels under each model and its breakdown rows, as the API has them.
    const segments = byCampaign.segments || [];
    assert.ok(segments.length === 4, `DE, FR, IT and (none): ${segments.map((s) => s.segment.country)}`);
    assert.equal(await page.isHidden('#segment-select'), false, 'the segment picker is shown');
    const segmentLabels = await page.$$eval('#segment-select option', (os) => os.map((o) => o.textContent));
    assert.deepEqual(segmentLabels,
      ['All journeys', ...segments.map((s) => `country = ${s.segment.country ?? '(none)'}`)]);
    let partRowIntervals = 0;
    for (const [i, segment] of segments.entries()) {
      await page.selectOption('#segment-select', String(i));
      await page.waitForFunction((want) => Number(document.querySelector('#summary [data-summary="conversions"]')
        ?.dataset.value) === want, segment.summary.conversions);
      assert.equal(await page.$('#summary [data-summary="rows"]'), null, 'rows are not split by segment');
      for (const model of ['linear', 'markov']) {
        await page.selectOption('#model-select', model);
        await page.waitForFunction((m) => document.querySelector('#chart-conversions figcaption')?.textContent
          .includes(`by ${m} (error bars`), model);
        const expected = segment.models[model].channels;
        const shown = await bars(page, '#chart-conversions');
        const label = `segment ${segment.segment.country} ${model}`;
        assert.deepEqual(shown.map((b) => b.channel), expected.map((c) => c.channel), `${label} channels`);
        shown.forEach((bar, j) => close(bar.value, expected[j].conversions, `${label} ${bar.channel}`));
        // Its breakdown rows, each with its own interval (never the whole's).
        const segmentRows = await checkBreakdownIntervals(page, segment.models[model], ['campaign'], label);
        assert.equal(segmentRows, segment.models[model].breakdown.length, `${label}: every row shows its interval`);
        partRowIntervals += segmentRows;
        // The chart over time is the segment's own weeks.
        const points = await page.$$eval('#chart-periods circle.point', (ps) => ps.map((p) => ({
          period: p.dataset.period, channel: p.dataset.channel, value: Number(p.dataset.value),
        })));
        assert.deepEqual([...new Set(points.map((p) => p.period))], segment.periods.map((p) => p.period), `${label} weeks`);
        for (const point of points) {
          const week = segment.periods.find((p) => p.period === point.period);
          const credited = week.models[model].channels.find((c) => c.channel === point.channel)?.conversions ?? 0;
          close(point.value, credited, `${label} ${point.channel} in the week of ${point.period}`);
        }
      }
      // The journey reports are the segment's own: its histogram and its top paths.
      const own = segment.reports;
      assert.ok(own?.paths, `segment ${segment.segment.country} has reports`);
      const lengths = await bars(page, '#chart-path-length');
      lengths.forEach((bar, j) => close(bar.value, own.path_length[j].conversions, `segment path length ${bar.channel}`));
      const shownPaths = await page.$$eval('#paths-converting tbody tr', (trs) => trs.map((tr) => tr.dataset.path));
      assert.deepEqual(shownPaths, own.paths.converting.slice(0, 20).map((p) => p.path),
        `segment ${segment.segment.country}: its top converting paths`);
    }
    // A week within a segment: the picker lists the segment's own weeks; the week's figures,
    // intervals and breakdown rows are segments[i].periods[j]'s; its paths CSV segment_period_paths.
    const [segmentIndex, weekly] = [...segments.entries()].find(([, s]) => s.periods.length > 1);
    await page.selectOption('#segment-select', String(segmentIndex));
    assert.deepEqual(await page.$$eval('#period-select option', (os) => os.map((o) => o.value)),
      ['', ...weekly.periods.map((p) => p.period)], 'the segment\'s own weeks');
    const segmentWeek = weekly.periods.reduce((a, b) => (b.summary.conversions > a.summary.conversions ? b : a));
    await page.selectOption('#period-select', segmentWeek.period);
    const weekLabel = `country = ${weekly.segment.country}, week ${segmentWeek.period}`;
    assert.ok(await checkPart(page, segmentWeek, 'segment_period', weekLabel) > 0, `${weekLabel} has intervals`);
    assert.equal((await page.textContent('#part-note')).includes(weekLabel), true, 'the note names the part');
    await page.$eval('#result', (section) => section.scrollIntoView({ block: 'start' }));
    await page.screenshot({ path: path.join(artifacts, 'result-segment-period-viewport.png') });
    const segmentWeekRows = await checkBreakdownIntervals(page, segmentWeek.models.linear, ['campaign'], weekLabel);
    assert.equal(segmentWeekRows, segmentWeek.models.linear.breakdown.length, `${weekLabel}: every row shows its interval`);
    partRowIntervals += segmentWeekRows;
    const segmentWeekPaths = await downloadLines(page, '#download-paths');
    assert.equal(segmentWeekPaths[0],
      'country,period,list,rank,path,touches,journeys,conversions,value,null_journeys,exact');
    assert.equal(segmentWeekPaths.length - 1, pathCount(segments.flatMap((s) => s.periods)),
      'one segment_period_paths row per segment × week × path');
    const segmentWeekIntervals = await checkPartIntervals(page, byCampaignId, 'segment_period_intervals',
      'country,period', segments.flatMap((s) => s.periods));
    // Back to all journeys: the same week of the whole, with its intervals.
    await page.selectOption('#segment-select', '');
    const wholeWeek = byCampaign.periods.find((p) => p.period === segmentWeek.period);
    assert.ok(await checkPart(page, wholeWeek, 'period', `the week ${wholeWeek.period}`) > 0, 'the week has intervals');
    const weekRows = await checkBreakdownIntervals(page, wholeWeek.models.linear, ['campaign'], `the week ${wholeWeek.period}`);
    assert.ok(weekRows > 0 && weekRows === wholeWeek.models.linear.breakdown.length,
      `the week ${wholeWeek.period}: every row shows its interval`);
    partRowIntervals += weekRows;
    await page.selectOption('#period-select', '');
    log(`period within a segment: ${weekLabel}'s credits, error bars, rank stability, histogram, paths and `
      + `breakdown rows match the API (${segmentWeekIntervals}); then the whole's week ${wholeWeek.period}; `
      + `the segments' and weeks' breakdown rows show ${partRowIntervals} intervals, as their JSON has`);
    // Each segment solved its own chain: DE's Markov credit is not the whole's.
    const wholeSearch = byCampaign.models.markov.channels.find((c) => c.channel === 'search')?.conversions;
    assert.ok(segments.some((s) => s.models.markov.channels.find((c) => c.channel === 'search')?.conversions !== wholeSearch));
    await page.selectOption('#segment-select', '');
    await page.waitForFunction((want) => Number(document.querySelector('#summary [data-summary="rows"]')
      ?.dataset.value) === want, byCampaign.summary.rows);
    const [segmentsCsv] = await Promise.all([page.waitForEvent('download'), page.click('#download-segments')]);
    const segmentLines = (await readFile(await segmentsCsv.path(), 'utf8')).trim().split('\n');
    // The job has a cost table: each segment's cost, CPA and ROAS end its rows.
    assert.equal(segmentLines[0],
      'country,model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas');
    const segmentCells = segments.reduce((n, s) => n + Object.values(s.models)
      .reduce((m, model) => m + model.channels.length, 0), 0);
    assert.equal(segmentLines.length - 1, segmentCells, 'one segments CSV row per segment × model × channel');
    log(`segment picker: ${segments.length} segments' summaries, linear and markov bars, weeks, breakdown rows, path lengths and top paths match the API; segments CSV ${segmentCells} rows`);

    // Conversion types: a file with an event_name column, two types with a lookback each.
    const typed = ['user_id,timestamp,channel,event_name,conversion_value'];
    for (let user = 0; user < 40; user += 1) {
      for (let touch = 0; touch < (user % 3) + 1; touch += 1) {
        typed.push(`t${user},2026-04-${String(1 + 3 * touch).padStart(2, '0')}T10:00:00Z,${CHANNELS[(user + touch) % 4]},page_view,`);
      }
      typed.push(`t${user},2026-04-10T10:00:00Z,,${user % 2 ? 'purchase' : 'sign_up'},${5 + (user % 4)}`);
    }
    await page.selectOption('#period', '');
    const typedBefore = await page.getAttribute('#upload-text', 'data-upload-id');
    await page.setInputFiles('#file-input',
      { name: 'typed.csv', mimeType: 'text/csv', buffer: Buffer.from(`${typed.join('\n')}\n`) });
    await page.waitForFunction((old) => {
      const id = document.getElementById('upload-text').dataset.uploadId;
      return id && id !== old;
    }, typedBefore, { timeout: 60_000 });
    await page.fill('#breakdown', '');
    await page.fill('#segment_by', '');
    await page.click('#spend-clear');
    await page.fill('#conversion_types', 'purchase, sign_up');
    await page.fill('#lookback_days', 'purchase=30, sign_up=x');
    await page.click('#submit-job');
    await page.waitForSelector('#submit-error:not([hidden])');
    assert.ok(/type=days/.test(await page.innerText('#submit-error')), 'a bad window per type is refused by the page');
    await page.fill('#lookback_days', 'purchase=30, sign_up=4');
    await page.click('#submit-job');
    await page.waitForFunction((old) => {
      const id = document.querySelector('#submit-status')?.dataset.jobId;
      return id && id !== old;
    }, byCampaignId);
    const typedId = await page.getAttribute('#submit-status', 'data-job-id');
    const typedJob = await api(`/v1/jobs/${typedId}`);
    assert.deepEqual(typedJob.spec.options.conversion_types, ['purchase', 'sign_up']);
    assert.deepEqual(typedJob.spec.options.lookback_days, { purchase: 30, sign_up: 4 });
    await openResult(page, typedId);
    const typedResult = await api(`/v1/jobs/${typedId}/result`);
    assert.deepEqual(typedResult.segments.map((s) => s.segment), [{ conversion_type: 'purchase' }, { conversion_type: 'sign_up' }]);
    const typeLabels = await page.$$eval('#segment-select option', (os) => os.map((o) => o.textContent));
    assert.deepEqual(typeLabels, ['All journeys', 'conversion_type = purchase', 'conversion_type = sign_up']);
    for (const [i, segment] of typedResult.segments.entries()) {
      await page.selectOption('#segment-select', String(i));
      await page.selectOption('#model-select', 'linear');
      await page.waitForFunction((want) => Number(document.querySelector('#summary [data-summary="conversions"]')
        ?.dataset.value) === want, segment.summary.conversions);
      const expected = segment.models.linear.channels;
      const shown = await bars(page, '#chart-conversions');
      assert.deepEqual(shown.map((b) => b.channel), expected.map((c) => c.channel), `${segment.segment.conversion_type} channels`);
      shown.forEach((bar, j) => close(bar.value, expected[j].conversions, `${segment.segment.conversion_type} ${bar.channel}`));
    }
    log('conversion types: the spec sends the types and a window per type; a segment per type, its bars match the API');

    // Forgetting the key clears it and everything shown with it.
    await page.click('#key-forget');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.$$eval('#jobs-body tr', (rows) => rows.length), 0);
    assert.equal(await page.isHidden('#result'), true);
    log('"Forget key" removes the key, the job list and the result');

    assert.deepEqual(problems, [], 'console errors, page errors or CSP violations');
    log('no console errors, page errors, failed requests or CSP violations');
    console.log(`all ${step} checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${artifacts}`);
  } catch (error) {
    if (page) await page.screenshot({ path: path.join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
    if (problems.length) console.error(problems.join('\n'));
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`not ok - ${error.stack || error}`);
  process.exit(1);
});
