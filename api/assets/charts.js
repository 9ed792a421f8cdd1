// Small SVG charts drawn from data, with no library: horizontal bars (one series),
// grouped vertical bars (several series), lines over periods and a heat map (a matrix). Every chart is an `<svg role="img">` with an
// `aria-label`, followed by a visually hidden table holding the same numbers. Bars carry
// `data-channel`, `data-value` (the exact number) and, when grouped, `data-model`; the
// points of a line also `data-period`; the cells of a heat map `data-from` and `data-to`.

// The SVG namespace name (an identifier, never fetched).
const SVG = 'http://www.w3.org/2000/svg';
const FONT_PX = 12;
const CHAR_PX = 6.8;

function svg(name, attributes = {}, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.append(element);
  return element;
}

function text(parent, x, y, content, attributes = {}) {
  const element = svg('text', { x, y, ...attributes }, parent);
  element.textContent = content;
  return element;
}

function html(name, attributes = {}, content) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (content !== undefined) element.textContent = content;
  return element;
}

function shorten(label, chars) {
  return label.length <= chars ? label : `${label.slice(0, Math.max(1, chars - 1))}…`;
}

/** About `count` round tick values covering [min, max]. */
export function ticks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const values = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) {
    values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return values;
}

/** The domain of a chart: always includes zero, never empty, rounded out to a tick. */
function domain(values) {
  let low = Math.min(0, ...values);
  let high = Math.max(0, ...values);
  if (low === high) high = 1;
  const marks = ticks(low, high);
  const step = marks.length > 1 ? marks[1] - marks[0] : high - low;
  if (marks[0] > low) low = marks[0] - step;
  if (marks[marks.length - 1] < high) high = marks[marks.length - 1] + step;
  return [low, high];
}

function figureFrame(figure, title) {
  figure.replaceChildren();
  figure.append(html('figcaption', {}, title));
  return Math.max(320, Math.floor(figure.clientWidth || 600));
}

function hiddenTable(caption, headers, rows) {
  // A table box cannot be clipped to a pixel itself (it grows with its cells): its wrapper is.
  const wrapper = html('div', { class: 'visually-hidden' });
  const table = html('table');
  wrapper.append(table);
  table.append(html('caption', {}, caption));
  const head = html('tr');
  for (const header of headers) head.append(html('th', { scope: 'col' }, header));
  const thead = html('thead');
  thead.append(head);
  table.append(thead);
  const body = html('tbody');
  for (const row of rows) {
    const tr = html('tr');
    row.forEach((cell, i) => tr.append(html(i === 0 ? 'th' : 'td', i === 0 ? { scope: 'row' } : {}, cell)));
    body.append(tr);
  }
  table.append(body);
  return wrapper;
}

/**
 * Horizontal bars, one per row: `rows` is `[{label, value}]` in display order (with `low`
 * and `high`, an interval drawn as an error bar, `line.error-bar` with `data-low` and
 * `data-high`), `format(value)` writes a number for people (`tickFormat` on the axis),
 * `unit` names the value in the table.
 */
export function barChart(figure, { title, rows, format, tickFormat = format, unit, id, noun = 'channels', label = 'Channel' }) {
  const width = figureFrame(figure, title);
  const longest = Math.max(4, ...rows.map((r) => r.label.length));
  const labelChars = Math.min(longest, 24);
  const left = Math.ceil(labelChars * CHAR_PX) + 12;
  const right = 64;
  const rowHeight = 24;
  const top = 6;
  const axis = 22;
  const height = top + rows.length * rowHeight + axis;
  const plot = width - left - right;
  const intervals = rows.some((r) => r.low !== undefined);
  const [low, high] = domain(rows.flatMap((r) => (intervals ? [r.value, r.low ?? r.value, r.high ?? r.value] : [r.value])));
  const x = (v) => left + ((v - low) / (high - low)) * plot;

  const chart = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'bars', 'data-chart': id,
    'aria-label': `${title}: a bar chart of ${rows.length} ${noun}; the numbers follow in a table.`,
  });
  const grid = svg('g', { class: 'grid', 'aria-hidden': 'true' }, chart);
  for (const tick of ticks(low, high)) {
    svg('line', { x1: x(tick), x2: x(tick), y1: top, y2: height - axis + 4 }, grid);
    text(grid, x(tick), height - 6, tickFormat(tick), { 'text-anchor': 'middle', class: 'tick' });
  }
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    const group = svg('g', { class: 'row' }, chart);
    text(group, left - 8, y + rowHeight / 2 + FONT_PX / 3, shorten(row.label, labelChars), {
      'text-anchor': 'end', class: 'label',
    });
    const start = x(Math.min(0, row.value));
    const end = x(Math.max(0, row.value));
    const bar = svg('rect', {
      x: start, y: y + 3, width: Math.max(end - start, row.value === 0 ? 0 : 1), height: rowHeight - 6, rx: 2,
      class: row.value < 0 ? 'bar negative' : 'bar', 'data-channel': row.label, 'data-value': row.value,
    }, group);
    const interval = row.low === undefined ? '' : ` [${format(row.low)}, ${format(row.high)}]`;
    svg('title', {}, bar).textContent = `${row.label}: ${format(row.value)}${interval}`;
    let after = row.value < 0 ? x(0) : end;
    if (row.low !== undefined) {
      const middle = y + rowHeight / 2;
      const whisker = svg('g', {
        class: 'error-bar', 'data-channel': row.label, 'data-low': row.low, 'data-high': row.high,
      }, group);
      svg('line', { x1: x(row.low), x2: x(row.high), y1: middle, y2: middle }, whisker);
      for (const end of [row.low, row.high]) svg('line', { x1: x(end), x2: x(end), y1: middle - 5, y2: middle + 5 }, whisker);
      after = Math.max(after, x(row.high));
    }
    text(group, after + 6, y + rowHeight / 2 + FONT_PX / 3, format(row.value), {
      class: 'value',
    });
  });
  svg('line', { x1: x(0), x2: x(0), y1: top, y2: height - axis + 4, class: 'zero', 'aria-hidden': 'true' }, chart);
  const headers = intervals ? [label, unit, 'Interval'] : [label, unit];
  const cells = (r) => (intervals ? [r.label, format(r.value), `${format(r.low)} to ${format(r.high)}`] : [r.label, format(r.value)]);
  figure.append(chart, hiddenTable(title, headers, rows.map(cells)));
}

/**
 * Vertical bars in groups: one group per entry of `groups` (channels), one bar per entry
 * of `series` (models), `value(series, group)` the height. Series `i` is coloured by
 * the CSS class `s{i}`, which `legend` uses too.
 */
export function groupedBarChart(figure, { title, groups, series, value, format, id, seriesNoun = 'models' }) {
  const width = figureFrame(figure, title);
  const right = 8;
  const top = 10;
  const count = Math.max(1, groups.length);
  const labelChars = Math.max(6, Math.floor((width - 56 - right) / count / CHAR_PX) - 1);
  const rotate = groups.some((g) => g.length > labelChars);
  const longest = Math.min(18, Math.max(...groups.map((g) => g.length), 1));
  // Labels turned by 40° reach down (sin) and to the left (cos) of their group's centre.
  const left = rotate ? Math.max(56, Math.ceil(longest * CHAR_PX * 0.77 - (width - 56) / count / 2) + 8) : 56;
  const bottom = rotate ? Math.ceil(longest * CHAR_PX * 0.64) + 20 : 26;
  const plot = width - left - right;
  const band = plot / count;
  const plotHeight = 260;
  const height = top + plotHeight + bottom;
  const all = groups.flatMap((g) => series.map((s) => value(s, g)));
  const [low, high] = domain(all);
  const y = (v) => top + plotHeight - ((v - low) / (high - low)) * plotHeight;
  const inner = band * 0.84;
  const barWidth = inner / Math.max(1, series.length);

  const chart = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'grouped', 'data-chart': id,
    'aria-label': `${title}: grouped bars for ${groups.length} channels and ${series.length} ${seriesNoun}; `
      + 'the numbers follow in a table.',
  });
  const grid = svg('g', { class: 'grid', 'aria-hidden': 'true' }, chart);
  for (const tick of ticks(low, high)) {
    svg('line', { x1: left, x2: width - right, y1: y(tick), y2: y(tick) }, grid);
    text(grid, left - 6, y(tick) + FONT_PX / 3, format(tick), { 'text-anchor': 'end', class: 'tick' });
  }
  groups.forEach((group, gi) => {
    const g = svg('g', { class: 'group', 'data-channel': group }, chart);
    const x0 = left + gi * band + (band - inner) / 2;
    series.forEach((name, si) => {
      const v = value(name, group);
      const top0 = y(Math.max(0, v));
      const bar = svg('rect', {
        x: x0 + si * barWidth, y: top0, width: Math.max(1, barWidth - 1), height: Math.abs(y(0) - y(v)),
        class: `bar s${si % 12}`, 'data-channel': group, 'data-model': name, 'data-value': v,
      }, g);
      svg('title', {}, bar).textContent = `${group}, ${name}: ${format(v)}`;
    });
    const cx = left + gi * band + band / 2;
    const ly = top + plotHeight + 14;
    const attributes = rotate
      ? { 'text-anchor': 'end', class: 'label', transform: `rotate(-40 ${cx} ${ly})` }
      : { 'text-anchor': 'middle', class: 'label' };
    text(g, cx, ly, shorten(group, rotate ? 18 : labelChars), attributes);
  });
  svg('line', { x1: left, x2: width - right, y1: y(0), y2: y(0), class: 'zero', 'aria-hidden': 'true' }, chart);
  const rows = groups.map((g) => [g, ...series.map((s) => format(value(s, g)))]);
  figure.append(chart, hiddenTable(title, ['Channel', ...series], rows));
}

/** A legend for `groupedBarChart` and `lineChart`: one swatch per series, coloured by the same classes. */
export function legend(container, series, label = 'Models') {
  container.replaceChildren();
  const list = html('ul', { class: 'legend-list', 'aria-label': label });
  series.forEach((name, i) => {
    const item = html('li');
    const swatch = svg('svg', { width: 12, height: 12, viewBox: '0 0 12 12', 'aria-hidden': 'true' });
    svg('rect', { width: 12, height: 12, rx: 2, class: `s${i % 12}` }, swatch);
    item.append(swatch, document.createTextNode(` ${name}`));
    list.append(item);
  });
  container.append(list);
}

/**
 * Lines over periods: one line per entry of `series` (channels) across `periods` (labels,
 * oldest first), `value(series, period)` the height. Points carry `data-period`,
 * `data-channel` and `data-value`; series `i` is coloured by the CSS class `s{i}`.
 */
export function lineChart(figure, { title, periods, series, value, format, id }) {
  const width = figureFrame(figure, title);
  const left = 56;
  const right = 12;
  const top = 10;
  const plotHeight = 240;
  const labelChars = 10;
  const slot = (width - left - right) / Math.max(1, periods.length);
  // Every n-th period is labelled so that labels never overlap.
  const every = Math.max(1, Math.ceil((labelChars * CHAR_PX + 8) / slot));
  const bottom = 26;
  const height = top + plotHeight + bottom;
  const [low, high] = domain(periods.flatMap((p) => series.map((s) => value(s, p))));
  const x = (i) => left + slot * i + slot / 2;
  const y = (v) => top + plotHeight - ((v - low) / (high - low)) * plotHeight;

  const chart = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'lines', 'data-chart': id,
    'aria-label': `${title}: one line per channel (${series.length}) over ${periods.length} periods; `
      + 'the numbers follow in a table.',
  });
  const grid = svg('g', { class: 'grid', 'aria-hidden': 'true' }, chart);
  for (const tick of ticks(low, high)) {
    svg('line', { x1: left, x2: width - right, y1: y(tick), y2: y(tick) }, grid);
    text(grid, left - 6, y(tick) + FONT_PX / 3, format(tick), { 'text-anchor': 'end', class: 'tick' });
  }
  periods.forEach((period, i) => {
    if (i % every === 0) {
      text(chart, x(i), top + plotHeight + 16, shorten(period, labelChars), { 'text-anchor': 'middle', class: 'label' });
    }
  });
  series.forEach((name, si) => {
    const line = svg('g', { class: `line s${si % 12}`, 'data-channel': name }, chart);
    const points = periods.map((p, i) => `${x(i)},${y(value(name, p))}`).join(' ');
    svg('polyline', { points, class: `stroke s${si % 12}` }, line);
    periods.forEach((period, i) => {
      const v = value(name, period);
      const point = svg('circle', {
        cx: x(i), cy: y(v), r: 3, class: `point s${si % 12}`, 'data-period': period, 'data-channel': name,
        'data-value': v,
      }, line);
      svg('title', {}, point).textContent = `${period}, ${name}: ${format(v)}`;
    });
  });
  const rows = periods.map((p) => [p, ...series.map((s) => format(value(s, p)))]);
  figure.append(chart, hiddenTable(title, ['Period', ...series], rows));
}

/**
 * A heat map: one row per entry of `rows` (from), one column per entry of `columns` (to),
 * `value(row, column)` between 0 and 1 shading the cell (`null`: no cell, e.g. no such
 * step). Cells carry `data-from`, `data-to` and `data-value`; the numbers follow in a table.
 */
export function heatMap(figure, { title, rows, columns, value, format, id }) {
  const width = figureFrame(figure, title);
  const labelChars = Math.min(22, Math.max(4, ...rows.map((r) => r.length)));
  const left = Math.ceil(labelChars * CHAR_PX) + 10;
  const right = 8;
  const columnChars = Math.min(18, Math.max(4, ...columns.map((c) => c.length)));
  const top = Math.ceil(columnChars * CHAR_PX * 0.71) + 14;
  const cell = Math.max(14, Math.min(44, Math.floor((width - left - right) / Math.max(1, columns.length))));
  const height = top + rows.length * cell + 4;
  const chart = svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'heat', 'data-chart': id,
    'aria-label': `${title}: a heat map of ${rows.length} rows (from) by ${columns.length} columns (to); `
      + 'the numbers follow in a table.',
  });
  columns.forEach((column, ci) => {
    const cx = left + ci * cell + cell / 2;
    text(chart, cx, top - 6, shorten(column, 18), {
      'text-anchor': 'start', class: 'label', transform: `rotate(-45 ${cx} ${top - 6})`,
    });
  });
  rows.forEach((row, ri) => {
    const y = top + ri * cell;
    const group = svg('g', { class: 'heat-row', 'data-from': row }, chart);
    text(group, left - 6, y + cell / 2 + FONT_PX / 3, shorten(row, labelChars), { 'text-anchor': 'end', class: 'label' });
    columns.forEach((column, ci) => {
      const v = value(row, column);
      if (v === null || v === undefined) return;
      const rect = svg('rect', {
        x: left + ci * cell + 1, y: y + 1, width: cell - 2, height: cell - 2, rx: 2, class: 'cell',
        'fill-opacity': (0.08 + 0.92 * Math.min(1, Math.max(0, v))).toFixed(3),
        'data-from': row, 'data-to': column, 'data-value': v,
      }, group);
      svg('title', {}, rect).textContent = `${row} → ${column}: ${format(v)}`;
    });
  });
  const table = rows.map((r) => [r, ...columns.map((c) => {
    const v = value(r, c);
    return v === null || v === undefined ? '' : format(v);
  })]);
  figure.append(chart, hiddenTable(title, ['From', ...columns], table));
}
