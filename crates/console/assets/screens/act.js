// The Act screens: actions and automations, their runs, and workflows with their runs
// (Port's `/v1/actions`, `/v1/actions/runs`, `/v1/workflows`).

import { ActionsList, ActionPage } from './act-actions.js';
import { RunsList, RunPage } from './act-runs.js';
import { WorkflowsList, WorkflowPage, WorkflowRunPage } from './act-workflows.js';

export const routes = [
  { path: '/act/actions', view: ActionsList },
  { path: '/act/actions/:action', view: ActionPage },
  { path: '/act/runs', view: RunsList },
  { path: '/act/runs/:run', view: RunPage },
  { path: '/act/workflows', view: WorkflowsList },
  { path: '/act/workflows/:workflow', view: WorkflowPage },
  { path: '/act/workflows/:workflow/runs/:run', view: WorkflowRunPage },
];
