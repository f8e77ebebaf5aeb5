// Catalog → an entity: its properties, team, relations (the entities it names, and the
// entities of other blueprints that name it), its change history from the audit log, and
// forms to edit (PUT or PATCH) and delete it.

import {
  html, useState, useEffect, Page, Section, Table, Empty, ErrorNote, Loading, Time, Badge, useLoad, useAction,
  useEarly, href, navigate, parseJson, ConfirmDelete,
} from '../ui.js';
import { api, seg } from '../api.js';
import { JsonForm } from '../editor.js';
import { Value, Named, Checkbox, History, historyPath, pretty, entityHref, blueprintHref } from './catalog-common.js';
import { relationTargets, relationsInto, encodeRules, blueprintProperties, RELATION_PREFIX } from './catalog-search.js';

// How many entities a "relations in" list shows before linking to the full search.
const IN_SHOWN = 10;

// The entity's properties in the blueprint's order, then its mirrored and calculated values
// (Port's mirror and calculation properties, which the API answers in `properties` too).
function Properties({ entity, blueprint }) {
  const schema = Object.fromEntries(blueprintProperties(blueprint).map(([name, property]) => [name, property]));
  const names = [...Object.keys(schema), ...Object.keys(entity.properties || {}).filter((k) => !(k in schema))];
  if (names.length === 0) {
    return html`<${Empty} title="This entity's blueprint has no properties.">Add properties to the <a href=${blueprintHref(entity.blueprint)}>blueprint ${entity.blueprint}</a> to record more about its entities.<//>`;
  }
  return html`<dl class="props">${names.map((name) => html`
    <dt><${Named} name=${name} title=${schema[name]?.title} /></dt>
    <dd><${Value} value=${entity.properties?.[name]} property=${schema[name]} /></dd>`)}</dl>`;
}

// The entities this one's relations name, with their titles (`titles`, from the entity read
// with `attach_title_to_relation`).
function RelationsOut({ entity, blueprint, titles }) {
  const relations = Object.entries(blueprint?.relations || {});
  const rows = relations.map(([name, r]) => ({ name, ...r, ids: relationTargets(entity.relations?.[name]) }));
  return html`<${Table} caption="Relations of this entity" rows=${rows} rowKey=${(r) => r.name} columns=${[
    { label: 'Relation', render: (r) => html`<${Named} name=${r.name} title=${r.title} />` },
    { label: 'Target blueprint', render: (r) => html`<a href=${blueprintHref(r.target)}>${r.target}</a>` },
    { label: 'Related entities', render: (r) => (r.ids.length === 0
      ? html`<span class="muted">none${r.required ? ' (required)' : ''}</span>`
      : html`<ul class="cat-list">${r.ids.map((id) => html`<li><a href=${entityHref(r.target, id)}>${titles?.[`${r.target}/${id}`] || id}</a>
          ${titles?.[`${r.target}/${id}`] && html` <code class="muted">${id}</code>`}</li>`)}</ul>`) },
  ]} empty=${html`<${Empty} title="The blueprint of this entity has no relations.">Relations are declared on the <a href=${blueprintHref(entity.blueprint)}>blueprint</a>.<//>`} />`;
}

// The first entities (by identifier) whose relation `link.relation` of blueprint
// `link.blueprint` names this entity, and whether more do: one page of a search per relation;
// a failed one, e.g. over its budget, keeps its error for its row.
async function relatedFrom(link, identifier) {
  try {
    const answer = await api.post(`/v1/blueprints/${seg(link.blueprint)}/entities/search`, {
      query: { combinator: 'and', rules: [{ relation: link.relation, operator: '=', value: identifier }] },
      limit: IN_SHOWN,
      include: ['identifier', 'title'],
    });
    return { ...link, shown: answer.entities || [], more: !!answer.next };
  } catch (error) {
    return { ...link, error, shown: [], more: false };
  }
}

function RelationsIn({ entity, blueprints }) {
  const links = relationsInto(entity.blueprint, blueprints);
  const key = JSON.stringify(links);
  const { data, error, loading } = useLoad(
    () => Promise.all(links.map((link) => relatedFrom(link, entity.identifier))),
    [key, entity.identifier, entity.updatedAt],
  );
  if (links.length === 0) {
    return html`<${Empty} title="No blueprint has a relation to this one.">Entities of other blueprints point here when a
      relation of theirs targets <a href=${blueprintHref(entity.blueprint)}>${entity.blueprint}</a>.<//>`;
  }
  if (loading && !data) return html`<${Loading} what="related entities" />`;
  if (error) return html`<${ErrorNote} error=${error} what="Cannot search the related entities" />`;
  const rows = data.filter((g) => g.shown.length > 0 || g.error);
  if (rows.length === 0) {
    return html`<${Empty} title="No entity relates to this one.">Relations that could: ${links.map((l, i) => html`${i > 0 ? ', ' : ''}<code>${l.blueprint}.${l.relation}</code>`)}.<//>`;
  }
  return html`<${Table} caption="Entities that relate to this one" rows=${rows} rowKey=${(g) => `${g.blueprint}.${g.relation}`} columns=${[
    { label: 'From blueprint', render: (g) => html`<a href=${blueprintHref(g.blueprint)}>${g.blueprintTitle || g.blueprint}</a>` },
    { label: 'Relation', render: (g) => html`<${Named} name=${g.relation} title=${g.title} />` },
    { label: 'Entities', render: (g) => (g.error ? html`<${ErrorNote} error=${g.error} what="Cannot search" />` : html`<ul class="cat-list">${g.shown.map((e) => html`<li>
        <a href=${entityHref(g.blueprint, e.identifier)}>${e.title || e.identifier}</a>${e.title && html` <code class="muted">${e.identifier}</code>`}</li>`)}</ul>
      ${g.more && html`<a href=${href(['catalog', 'entities'], {
        blueprint: g.blueprint, rules: encodeRules([{ field: RELATION_PREFIX + g.relation, op: '=', value: entity.identifier }]),
      })}>All the ${g.blueprint} entities whose ${g.relation} is ${entity.identifier}</a>`}`) },
  ]} />`;
}

// An entity read with `attach_title_to_relation`, as stored (each relation's identifiers), and
// the titles of the entities its relations name, by `blueprint/identifier`.
function withoutTitles(entity, blueprint) {
  const titles = {};
  const identifier = (name, value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const target = blueprint?.relations?.[name]?.target;
    if (target && value.title) titles[`${target}/${value.identifier}`] = value.title;
    return value.identifier;
  };
  const relations = {};
  for (const [name, value] of Object.entries(entity.relations || {})) {
    relations[name] = Array.isArray(value) ? value.map((v) => identifier(name, v)) : identifier(name, value);
  }
  return { entity: { ...entity, relations }, titles };
}

// The editable part of an entity (the API keeps identifier, blueprint and the audit fields;
// mirrored and calculated values are the API's to compute).
function editable(entity, blueprint) {
  const doc = { title: entity.title ?? null };
  if (entity.icon) doc.icon = entity.icon;
  doc.team = entity.team || [];
  const computed = new Set(blueprintProperties(blueprint).filter(([, , kind]) => kind).map(([name]) => name));
  doc.properties = Object.fromEntries(Object.entries(entity.properties || {}).filter(([name]) => !computed.has(name)));
  doc.relations = entity.relations || {};
  return doc;
}

function EditEntity({ entity, blueprint, onSaved }) {
  const original = pretty(editable(entity, blueprint));
  const [source, setSource] = useState(original);
  const [mode, setMode] = useState('put');
  useEffect(() => setSource(original), [original]);
  const path = `/v1/blueprints/${seg(entity.blueprint)}/entities/${seg(entity.identifier)}`;
  const save = useAction(async () => {
    const doc = parseJson(source, 'The entity');
    const answer = mode === 'put' ? await api.put(path, doc) : await api.patch(path, doc);
    onSaved(answer.entity);
    return 'Saved.';
  });
  return html`<${JsonForm} id="cat-entity-json" label="Entity JSON" value=${source} onInput=${setSource} rows=${12}
      hint="Its identifier and blueprint cannot change. Properties must match the blueprint's schema; relations name entities of their target blueprint."
      submitLabel="Save entity" busy=${save.busy} error=${save.error} what="Not saved" onSubmit=${() => save.run()}>
    <div class="field"><label for="cat-entity-mode">Save with</label>
      <select id="cat-entity-mode" value=${mode} onChange=${(e) => setMode(e.currentTarget.value)}>
        <option value="put">PUT: replace the entity (fields left out are cleared)</option>
        <option value="patch">PATCH: change only the fields sent</option>
      </select></div>
    ${save.done && source === original && html`<p class="notice" role="status">Entity saved.</p>`}
    ${source !== original && html`<div class="page-actions"><button type="button" class="secondary" onClick=${() => setSource(original)}>Discard changes</button></div>`}
  <//>`;
}

function DeleteEntity({ entity }) {
  const [dependents, setDependents] = useState(false);
  const remove = async () => {
    await api.delete(`/v1/blueprints/${seg(entity.blueprint)}/entities/${seg(entity.identifier)}${dependents ? '?delete_dependents=true' : ''}`);
    navigate(['catalog', 'entities'], { blueprint: entity.blueprint });
  };
  return html`<${ConfirmDelete} what="entity" onDelete=${remove}
      question=${`Delete the entity ${entity.identifier}${dependents ? ' and the entities that depend on it' : ''}?`}>
    <p class="muted cat-lead">Entities that name this one in a required relation keep it from being deleted, unless they are deleted too.
      Optional relations to it are cleared.</p>
    <${Checkbox} id="cat-entity-delete-dependents" label="Also delete the entities that depend on it" checked=${dependents} onChange=${setDependents} />
  <//>`;
}

export function EntityPage({ blueprint: bpId, entity: id }) {
  const [version, setVersion] = useState(0);
  // The history below is drawn once the entity is in, but its filter is the URL's names: its
  // first page goes out with the entity's request, not after it.
  const firstChanges = historyPath({ entity: id, blueprint: bpId, resources: 'entity' });
  useEarly(firstChanges, () => api.get(firstChanges));
  const { data, error, loading } = useLoad(
    () => Promise.all([
      api.get(`/v1/blueprints/${seg(bpId)}/entities/${seg(id)}?attach_title_to_relation=true`),
      api.get('/v1/blueprints').catch(() => ({ blueprints: [] })),
    ]),
    [bpId, id, version],
  );
  const blueprints = data?.[1]?.blueprints || [];
  const blueprint = blueprints.find((bp) => bp.identifier === bpId);
  const { entity, titles } = data?.[0]?.entity ? withoutTitles(data[0].entity, blueprint) : {};
  const listLink = href(['catalog', 'entities'], { blueprint: bpId });
  const crumbs = [['Catalog'], ['Entities', listLink], [blueprint?.title || bpId, blueprintHref(bpId)], [id]];
  if (!entity) {
    return html`<${Page} title=${id} crumbs=${crumbs}>
      ${loading && html`<${Loading} what="the entity" />`}
      <${ErrorNote} error=${error} what="Cannot read the entity" />
      ${error && html`<p><a href=${listLink}>Back to the ${bpId} entities</a></p>`}
    <//>`;
  }
  return html`<${Page} title=${entity.title || entity.identifier} crumbs=${crumbs}
      subtitle=${`${blueprint?.title || entity.blueprint} entity ${entity.identifier}`}
      actions=${html`<a href=${listLink}>All ${bpId} entities</a>`}>
    <${ErrorNote} error=${error} what="Cannot reload the entity" />
    <div class="grid2">
      <${Section} title="Properties" id="cat-entity-properties">
        <${Properties} entity=${entity} blueprint=${blueprint} />
      <//>
      <${Section} title="Details" id="cat-entity-details">
        <dl class="props">
          <dt>Identifier</dt><dd><code>${entity.identifier}</code></dd>
          <dt>Blueprint</dt><dd><a href=${blueprintHref(entity.blueprint)}>${blueprint?.title || entity.blueprint}</a></dd>
          <dt>Title</dt><dd>${entity.title || '—'}</dd>
          <dt>Icon</dt><dd>${entity.icon || '—'}</dd>
          <dt>Team</dt><dd>${entity.team?.length ? html`<span class="cat-chips">${entity.team.map((t) => html`<${Badge} value=${t} />`)}</span>` : html`<span class="muted">no team</span>`}</dd>
          <dt>Created</dt><dd><${Time} at=${entity.createdAt} /> by ${entity.createdBy || '—'}</dd>
          <dt>Updated</dt><dd><${Time} at=${entity.updatedAt} /> by ${entity.updatedBy || '—'}</dd>
        </dl>
      <//>
    </div>
    <${Section} title="Relations" id="cat-entity-relations">
      <${RelationsOut} entity=${entity} blueprint=${blueprint} titles=${titles} />
    <//>
    <${Section} title="Related entities" id="cat-entity-related">
      <p class="muted cat-lead">Entities (of this blueprint or others) whose relations name this one.</p>
      <${RelationsIn} entity=${entity} blueprints=${blueprints} />
    <//>
    <${Section} title="History" id="cat-entity-history">
      <${History} filter=${{ entity: entity.identifier, blueprint: entity.blueprint, resources: 'entity' }} depth=${2} what="entity" reloadKey=${entity.updatedAt} />
    <//>
    <${Section} title="Edit entity" id="cat-entity-edit">
      <${EditEntity} entity=${entity} blueprint=${blueprint} onSaved=${() => setVersion(version + 1)} />
    <//>
    <${Section} title="Delete entity" id="cat-entity-delete">
      <${DeleteEntity} entity=${entity} />
    <//>
  <//>`;
}
