// The admin API client of the console: same origin, the session cookie (sent by the browser, never
// read by script), and the session's CSRF token on every change. The token lives in the `session`
// object in memory only.

/** ApiError is a failed admin API call: the HTTP status and the OpenAI-style error body's fields. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && typeof body === 'object' && body.error) || {};
    super(e.message || (typeof body === 'string' && body.trim()) || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = e.code || '';
    this.param = e.param || '';
    this.type = e.type || '';
  }
}

/** path turns 'keys' or '/admin/keys' into '/admin/keys'. */
function adminPath(path) {
  if (path.startsWith('/')) return path;
  return '/admin/' + path;
}

/** url builds a same-origin URL with a query; empty values (undefined, null, '') are left out. */
export function buildURL(path, query) {
  let url = adminPath(path);
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  return url;
}

/**
 * makeApi returns ctx.api. session is {csrf} (kept up to date by the shell); onUnauthorized is
 * called with the error when the session has ended (HTTP 401).
 */
export function makeApi(session, onUnauthorized) {
  async function call(method, path, { query, body, signal } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = session.csrf || '';
    let res;
    try {
      res = await fetch(buildURL(path, query), {
        method, headers, signal,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin', cache: 'no-store', redirect: 'error',
      });
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError(0, { error: { message: 'The gateway did not answer: ' + (err && err.message ? err.message : 'network error') + '.' } });
    }
    const ct = res.headers.get('Content-Type') || '';
    let data = null;
    if (ct.includes('json')) data = await res.json().catch(() => null);
    else data = await res.text();
    if (!res.ok) {
      const err = new ApiError(res.status, data);
      if (res.status === 401 && onUnauthorized) onUnauthorized(err);
      throw err;
    }
    return data;
  }
  return {
    /** get(path, query) answers the parsed JSON (or text) of a GET. */
    get: (path, query, opts = {}) => call('GET', path, { query, signal: opts.signal }),
    /** send(method, path, body) makes a change; body undefined sends none. */
    send: (method, path, body, opts = {}) => call(method, path, { body, signal: opts.signal }),
    /** url(path, query) is a same-origin URL, e.g. for a CSV download link (the cookie goes with it). */
    url: (path, query) => buildURL(path, query),
  };
}
