// The console's only way to the server: the public API, with the signed-in client's token.
//
// The token lives in this tab's sessionStorage (never a cookie): another tab, another site or
// a later visit does not have it. A 401 ends the session and shows the sign-in form again.

const SESSION_KEY = 'wharf.session';
const listeners = new Set();

export const session = {
  get() {
    try {
      const value = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (value && value.expiresAt && Date.now() > value.expiresAt) {
        sessionStorage.removeItem(SESSION_KEY);
        return null;
      }
      return value;
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
    listeners.forEach((f) => f(null));
  },
  clear(reason) {
    sessionStorage.removeItem(SESSION_KEY);
    listeners.forEach((f) => f(reason || null));
  },
  // A value that holds for the whole session (the organization's id), learnt with `token`:
  // kept in the session's record, so it ends with the session (sign-out, a 401, its expiry) and
  // a new sign-in, which writes a new record, starts without it. Nothing is kept when the
  // session is no longer the one with `token` (the answer came after a sign-out).
  remember(name, value, token) {
    const current = session.get();
    if (!current || current.token !== token) return;
    current.kept = { ...current.kept, [name]: value };
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(current));
    } catch {
      // A full storage: the value is asked for again next time.
    }
  },
  // What `remember` kept under `name` in this session, or undefined.
  recall(name) {
    return session.get()?.kept?.[name];
  },
  // Called with the reason (or null) whenever the session starts or ends.
  subscribe(f) {
    listeners.add(f);
    return () => listeners.delete(f);
  },
};

// An answer that was not 2xx: the API's `error` code and `message`, and the HTTP status.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Exchanges an API client's id and secret for a token (Port's POST /v1/auth/access_token).
export async function signIn(clientId, clientSecret) {
  const answer = await request('POST', '/v1/auth/access_token', { clientId, clientSecret }, { anonymous: true });
  const expiresIn = Number(answer.expiresIn) || 3600;
  session.set({ token: answer.accessToken, clientId, expiresAt: Date.now() + expiresIn * 1000 });
}

export function signOut() {
  session.clear(null);
}

// One API call. `body` (if any) is sent as JSON; the answer is parsed JSON (or text with
// `{text: true}`; `{body, headers}` with `{withHeaders: true}`, for lists that page by a
// header). Throws ApiError with the API's message on any answer that is not 2xx.
export async function request(method, path, body, options = {}) {
  const headers = { accept: options.text ? 'text/plain' : 'application/json' };
  const current = session.get();
  if (current && !options.anonymous) headers.authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, 'unreachable', `Wharf did not answer (${err.message}): is the server running?`);
  }
  const text = await response.text();
  let json = null;
  if (!options.text && text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (response.status === 401 && current && !options.anonymous) {
    session.clear('Your session ended: sign in again.');
  }
  if (!response.ok) {
    const code = (json && json.error) || `http_${response.status}`;
    const message = (json && json.message) || text.slice(0, 500) || response.statusText;
    throw new ApiError(response.status, code, message);
  }
  const answer = options.text ? text : json ?? {};
  return options.withHeaders ? { body: answer, headers: response.headers } : answer;
}

export const api = {
  get: (path, options) => request('GET', path, undefined, options),
  post: (path, body) => request('POST', path, body === undefined ? {} : body),
  put: (path, body) => request('PUT', path, body),
  patch: (path, body) => request('PATCH', path, body),
  delete: (path) => request('DELETE', path),
};

// A query string from an object, leaving out empty values; arrays repeat the key.
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// A path segment, encoded.
export const seg = (value) => encodeURIComponent(value);
