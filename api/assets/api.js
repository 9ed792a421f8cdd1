// The dashboard's side of the HTTP API: the key (session storage only), JSON calls,
// uploads with progress, authorised downloads, and API errors put into plain words.

const KEY_SLOT = 'mta.apiKey';

export function storedKey() {
  return sessionStorage.getItem(KEY_SLOT) || '';
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_SLOT, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_SLOT);
}

/** An API refusal or a failure to reach the API, described for people. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const { text, details, requestId } = describe(status, body, retryAfter);
    super(text);
    this.status = status;
    this.code = body?.error?.code || '';
    this.details = details;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }
}

/** `fetch` with the key; JSON in, JSON out. Throws an ApiError unless the status is 2xx. */
export async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${storedKey()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, null);
  }
  const parsed = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, parsed, response.headers.get('Retry-After'));
  return parsed;
}

/**
 * Streams `file` to `POST /v1/uploads` with XMLHttpRequest, whose upload events report
 * progress (fetch cannot). `onProgress(loaded, total)` is called as bytes leave.
 */
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/uploads');
    xhr.setRequestHeader('Authorization', `Bearer ${storedKey()}`);
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (event) => {
      onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(file.size, file.size);
        resolve(xhr.response);
      } else {
        reject(new ApiError(xhr.status, xhr.response, xhr.getResponseHeader('Retry-After')));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, null)));
    xhr.addEventListener('abort', () => reject(new ApiError(-1, null)));
    xhr.send(file);
  });
}

/**
 * Downloads `path` with the key and saves it as `filename`. A plain link cannot send the
 * `Authorization` header, so the body is fetched into a blob and saved from a blob URL.
 */
export async function download(path, filename) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${storedKey()}` } });
  } catch (error) {
    throw new ApiError(0, null);
  }
  if (!response.ok) {
    const parsed = await response.json().catch(() => null);
    throw new ApiError(response.status, parsed, response.headers.get('Retry-After'));
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** What a status and an error body mean, in words; located problems as a list. */
function describe(status, body, retryAfter) {
  const error = body && typeof body === 'object' ? body.error : null;
  const message = error && typeof error.message === 'string' ? clause(error.message) : '';
  // Details that only repeat the message (a single invalid option) are left out.
  const details = (Array.isArray(error?.details) ? error.details : [])
    .filter((d) => d?.row != null || !error.message?.includes(d?.problem))
    .map(describeProblem);
  const requestId = typeof error?.request_id === 'string' ? error.request_id : '';
  let text;
  if (status === 0) {
    text = 'The service could not be reached. Check that it is running and try again.';
  } else if (status === -1) {
    text = 'The upload was stopped.';
  } else if (status === 401) {
    text = `The API key was refused: ${message || 'it is missing or not valid.'}`;
  } else if (status === 403) {
    text = `This key is not allowed to do that: ${message || 'its role is too weak.'}`;
  } else if (status === 404) {
    text = `Not found: ${message || 'it does not exist or belongs to another tenant.'}`;
  } else if (status === 413) {
    text = `Too large: ${message || 'the service refused the size.'}`;
  } else if (status === 429) {
    const wait = Number.parseInt(retryAfter, 10);
    const when = Number.isFinite(wait) ? ` Try again in ${waitWords(wait)}.` : '';
    text = `Too many requests: ${message || 'the rate limit was reached.'}${when}`;
  } else if (status === 503) {
    text = `The service is unavailable right now: ${message || 'try again shortly.'}`;
  } else if (status >= 500) {
    text = 'The service failed on its side. Try again; if it persists, give the request id to the operator.';
  } else if (message) {
    text = sentence(message);
  } else {
    text = `The service answered with status ${status}.`;
  }
  return { text, details, requestId };
}

/** `{row, column, problem}` → "Row 12, column `channel`: problem". */
export function describeProblem(problem) {
  const where = [];
  if (problem?.row != null) where.push(`Row ${problem.row}`);
  if (problem?.column) where.push(`${where.length ? 'column' : 'Column'} \`${problem.column}\``);
  const what = typeof problem?.problem === 'string' ? problem.problem : 'a problem';
  return where.length ? `${where.join(', ')}: ${what}` : sentence(what);
}

/** Text that ends a sentence: a final full stop unless it has one. */
export function clause(text) {
  const trimmed = String(text).trim();
  return !trimmed || /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** A sentence of its own: also an upper-case first letter. */
export function sentence(text) {
  const ended = clause(text);
  return ended ? ended[0].toUpperCase() + ended.slice(1) : ended;
}

function waitWords(seconds) {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}
