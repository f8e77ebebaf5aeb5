// Delivery: projects, their webhook subscriptions, and each subscription's deliveries with
// the attempts of each (Wharf's projects and project-webhook API, seed 004).

import { ProjectsList, ProjectPage } from './delivery-projects.js';
import { SubscriptionPage } from './delivery-subscription.js';
import { DeliveryPage } from './delivery-delivery.js';

export const routes = [
  { path: '/delivery/projects', view: ProjectsList },
  { path: '/delivery/projects/:project', view: ProjectPage },
  { path: '/delivery/projects/:project/subscriptions/:subscription', view: SubscriptionPage },
  { path: '/delivery/projects/:project/subscriptions/:subscription/deliveries/:delivery', view: DeliveryPage },
];
