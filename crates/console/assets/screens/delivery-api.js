// The delivery screens' way to the API: the organization's id (the projects routes are under
// `/organizations/{id}`), their paths, lists that page by the `x-next-cursor` header, and the
// small helpers the forms share.

import { api, request, session, seg, query } from '../api.js';

// The organization of the signed-in client: its id does not change during a session, so it
// is asked once per session token and kept with the session (`session.remember`), and only the
// first delivery screen of a session (not each page load) waits for `GET /v1/organization`.
// The promise in memory, keyed by the token, shares one question among the requests a screen
// starts together; a new session has a new token.
let org = { token: null, promise: null };
export function organizationId() {
  const token = session.get()?.token || null;
  if (org.token !== token || !org.promise) {
    const known = session.recall('organizationId');
    const promise = known ? Promise.resolve(known) : askOrganization(token);
    promise.catch(() => {
      if (org.promise === promise) org = { token: null, promise: null };
    });
    org = { token, promise };
  }
  return org.promise;
}

async function askOrganization(token) {
  const { id } = (await api.get('/v1/organization')).organization;
  session.remember('organizationId', id, token);
  return id;
}

// `/organizations/{org}/projects[/{project}]`.
export async function projectsPath(project) {
  const base = `/organizations/${seg(await organizationId())}/projects`;
  return project ? `${base}/${seg(project)}` : base;
}

// `/organizations/{org}/projects/{project}/settings/webhooks[/{subscription}]`.
export async function subscriptionsPath(project, subscription) {
  const base = `${await projectsPath(project)}/settings/webhooks`;
  return subscription ? `${base}/${seg(subscription)}` : base;
}

// A GET of a list that pages with the `x-next-cursor` header: `{items, next}` (`next` is ''
// on the last page).
export async function getPage(path) {
  const { body, headers } = await request('GET', path, undefined, { withHeaders: true });
  return { items: Array.isArray(body) ? body : [], next: headers.get('x-next-cursor') || '' };
}

// A delivery (with `payload`, the body its attempts send) and every delivery of its event in
// this subscription, newest first (the first and its resends).
export async function findDelivery(project, subscription, id) {
  const base = `${await subscriptionsPath(project, subscription)}/deliveries`;
  const delivery = await api.get(`${base}/${seg(id)}`);
  const { items: sameEvent } = await getPage(`${base}${query({ eventId: delivery.eventId, limit: 1000 })}`);
  if (!sameEvent.some((d) => d.id === delivery.id)) sameEvent.push(delivery);
  return { delivery, sameEvent };
}

// A project's slug from its name: lowercase letters, digits and dashes.
export function slugOf(name) {
  return name.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100);
}

// Event types from a text field: split on commas, spaces and new lines.
export function parseEvents(text) {
  return [...new Set(String(text || '').split(/[\s,]+/).map((t) => t.trim()).filter(Boolean))];
}

// A concrete event type a subscription's patterns match (for the publish form's default).
export function sampleType(patterns) {
  const pattern = (patterns || []).find((p) => p !== '*') || '';
  if (!pattern) return 'test.message';
  return pattern.split('.').map((part) => (part === '*' ? 'test' : part)).join('.');
}

// `<input type="datetime-local">`'s value for a date, in the user's zone.
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// A body excerpt: pretty JSON when it parses, else the text; `null` when there is none.
export function prettyBody(text) {
  if (text === null || text === undefined || text === '') return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text);
  }
}

// Milliseconds as people read them.
export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

// What an attempt's `outcome` class means, in words.
export const OUTCOMES = {
  success: 'success',
  redirect: 'redirect (not followed)',
  rate_limited: 'rate limited (429)',
  client_error: 'client error (4xx)',
  server_error: 'server error (5xx)',
  timeout: 'timeout',
  connection_error: 'connection error',
  blocked: 'blocked address',
};
