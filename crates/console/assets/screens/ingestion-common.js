// Pieces the ingestion screens share: event statuses, links, times in forms, the example
// webhook, and reading the paths (`mappings[0].entity.properties.x`) the API's messages name.

import { html, href } from '../ui.js';

export const STATUSES = ['PENDING', 'SUCCESS', 'PARTIAL', 'FAILURE', 'FILTERED', 'REJECTED'];

// What each status means, for hints and titles.
export const STATUS_MEANING = {
  PENDING: 'received, waiting to be mapped',
  SUCCESS: 'mapped; every entity was written',
  PARTIAL: 'mapped; some entities were written and some failed',
  FAILURE: 'mapped; nothing was written (see the errors)',
  FILTERED: 'no mapping’s filter matched; nothing to write',
  REJECTED: 'the signature did not verify; the request was not kept',
};

const TONES = { SUCCESS: 'good', FAILURE: 'bad', REJECTED: 'bad', PARTIAL: 'ing-warn' };

// An event's status as a badge (SUCCESS green, FAILURE and REJECTED red, PARTIAL amber).
export function EventStatus({ status }) {
  const text = status || '—';
  return html`<span class=${`badge ${TONES[status] || 'neutral'}`} title=${STATUS_MEANING[status] || ''}>${text}</span>`;
}

export const webhooksHref = () => href(['ingestion', 'webhooks']);
export const webhookHref = (webhook, params) => href(['ingestion', 'webhooks', webhook], params);
export const eventsHref = (webhook, params) => href(['ingestion', 'webhooks', webhook, 'events'], params);
export const eventHref = (webhook, event) => href(['ingestion', 'webhooks', webhook, 'events', event]);
export const entityHref = (blueprint, entity) => href(['catalog', 'entities', blueprint, entity]);
export const blueprintHref = (blueprint) => href(['catalog', 'blueprints', blueprint]);

// An ISO time as the value of an `<input type="datetime-local" step="1">` (the user's zone).
export function isoToLocalInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}

// The API's messages name where the problem is in backticks: `mappings[1].entity.title`.
// Returns [{path, message}] for each part that names a mapping path (a message may join
// several with "; ").
export function pathsInMessage(message) {
  const found = [];
  for (const part of String(message || '').split(/;\s+(?=`)/)) {
    const m = /`(mappings\[\d+\][^`]*)`/.exec(part);
    if (m) found.push({ path: m[1], message: part });
  }
  return found;
}

// A small GitHub pull-request webhook in Port's shape: what "Create webhook" starts from.
export const EXAMPLE_WEBHOOK = {
  identifier: 'github-pull-requests',
  title: 'GitHub pull requests',
  description: 'Pull requests from GitHub pull_request events',
  enabled: true,
  mappings: [
    {
      blueprint: 'pullRequest',
      filter: '.headers["x-github-event"] == "pull_request"',
      entity: {
        identifier: '.body.pull_request.id | tostring',
        title: '.body.pull_request.title',
        properties: {
          author: '.body.pull_request.user.login',
          state: '.body.pull_request.state',
          url: '.body.pull_request.html_url',
        },
      },
    },
  ],
  security: {
    requestIdentifierPath: '.headers["x-github-delivery"]',
  },
};

// A request like the one GitHub sends for a pull request: the live test's starting point
// when the webhook has no stored events yet.
export const EXAMPLE_REQUEST = {
  body: {
    action: 'opened',
    number: 7,
    pull_request: {
      id: 1001,
      number: 7,
      state: 'open',
      title: 'Add retries',
      html_url: 'https://github.com/acme/api/pull/7',
      user: { login: 'octocat' },
    },
    repository: { full_name: 'acme/api' },
  },
  headers: { 'content-type': 'application/json', 'x-github-event': 'pull_request', 'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958' },
  queryParams: {},
};

