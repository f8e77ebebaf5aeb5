// Catalog: blueprints (the types of entities, their schemas and relations) and entities (a
// blueprint's entities searched with Port's rules, each with its relations and history).
// The screens live in catalog-*.js; this module gives app.js their routes and menu entries.

import { Blueprints, BlueprintPage } from './catalog-blueprints.js';
import { Entities } from './catalog-entities.js';
import { EntityPage } from './catalog-entity.js';

export const routes = [
  { path: '/catalog/blueprints', view: Blueprints },
  { path: '/catalog/blueprints/:blueprint', view: BlueprintPage },
  { path: '/catalog/entities', view: Entities },
  { path: '/catalog/entities/:blueprint/:entity', view: EntityPage },
];
