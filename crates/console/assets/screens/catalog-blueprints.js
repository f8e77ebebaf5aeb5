// Catalog → Blueprints: the list of blueprints with a form to create one, and a blueprint's
// page (its schema, its relations both ways, its JSON to edit, delete, its history).

import {
  html, useState, useEffect, Page, Section, Table, Pager, Empty, ErrorNote, Loading, Time, Badge, useLoad, useAction,
  useEarly, href, navigate, setParams, num, parseJson, ConfirmDelete,
} from '../ui.js';
import { api, seg } from '../api.js';
import { JsonForm } from '../editor.js';
import { Named, Checkbox, History, historyPath, pretty, withoutAudit, blueprintHref, text } from './catalog-common.js';
import { relationsInto } from './catalog-search.js';

const PAGE = 50;

// An example blueprint for the create form, under an identifier not taken yet.
export function blueprintExample(taken) {
  const identifier = ['service', 'microservice', 'component', 'application'].find((id) => !taken.includes(id)) || `blueprint-${taken.length + 1}`;
  return pretty({
    identifier,
    title: identifier === 'service' ? 'Service' : identifier.charAt(0).toUpperCase() + identifier.slice(1),
    icon: 'Service',
    description: 'A deployable service',
    schema: {
      properties: {
        language: { type: 'string', title: 'Language', enum: ['rust', 'go', 'python'] },
        url: { type: 'string', format: 'url', title: 'Repository' },
        stars: { type: 'number', title: 'Stars' },
      },
      required: ['language'],
    },
    relations: {},
  });
}

// A blueprint's title with its identifier, as lists show it.
function BlueprintName({ bp }) {
  return html`<a href=${blueprintHref(bp.identifier)}>${bp.title || bp.identifier}</a>`;
}

function RelationList({ relations }) {
  const entries = Object.entries(relations || {});
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return html`<ul class="cat-list">${entries.map(([name, r]) => html`<li>
    <code>${name}</code> → <a href=${blueprintHref(r.target)}>${r.target}</a>${r.many ? html` <span class="muted">(many)</span>` : ''}
  </li>`)}</ul>`;
}

function CreateBlueprint({ taken }) {
  const [source, setSource] = useState(() => blueprintExample(taken));
  const create = useAction(async () => {
    const doc = parseJson(source, 'The blueprint');
    const answer = await api.post('/v1/blueprints', doc);
    navigate(['catalog', 'blueprints', answer.blueprint.identifier]);
    return answer;
  });
  return html`<${Section} title="Create blueprint" id="cat-create-blueprint">
    <p class="muted cat-lead">A blueprint is a type of entity: its <code>schema.properties</code> say what its entities hold
      (type <code>string</code>, <code>number</code>, <code>boolean</code>, <code>array</code> or <code>object</code>, with <code>format</code>, <code>enum</code>, …) and its <code>relations</code> name other blueprints.</p>
    <${JsonForm} id="cat-blueprint-new" label="New blueprint JSON" value=${source} onInput=${setSource} rows=${18}
      hint="Port's blueprint document: identifier (letters, digits, @ _ = -), title, icon, description, schema {properties, required}, relations {name: {title, target, many, required}}."
      submitLabel="Create blueprint" busy=${create.busy} error=${create.error} what="Not created" onSubmit=${() => create.run()} />
  <//>`;
}

export function Blueprints({ query: params }) {
  const { data, error, loading } = useLoad(() => api.get('/v1/blueprints'), []);
  const filter = params.q || '';
  const page = Math.max(1, Number(params.page) || 1);
  const [draft, setDraft] = useState(filter);
  useEffect(() => setDraft(filter), [filter]);
  const all = data?.blueprints || [];
  const needle = filter.trim().toLowerCase();
  const matching = needle
    ? all.filter((bp) => bp.identifier.toLowerCase().includes(needle) || (bp.title || '').toLowerCase().includes(needle))
    : all;
  const rows = matching.slice((page - 1) * PAGE, page * PAGE);
  const columns = [
    { label: 'Blueprint', render: (bp) => html`<${BlueprintName} bp=${bp} />` },
    { label: 'Identifier', render: (bp) => html`<code>${bp.identifier}</code>` },
    { label: 'Icon', render: (bp) => (bp.icon ? bp.icon : html`<span class="muted">—</span>`) },
    { label: 'Properties', className: 'num cat-num', render: (bp) => num(Object.keys(bp.schema?.properties || {}).length) },
    { label: 'Relations', render: (bp) => html`<${RelationList} relations=${bp.relations} />` },
    { label: 'Entities', render: (bp) => html`<a href=${href(['catalog', 'entities'], { blueprint: bp.identifier })}
      aria-label=${`Entities of ${bp.identifier}`}>Entities</a>` },
    { label: 'Updated', render: (bp) => html`<${Time} at=${bp.updatedAt} />` },
  ];
  const submit = (e) => {
    e.preventDefault();
    setParams({ q: draft.trim(), page: '' });
  };
  return html`<${Page} title="Blueprints" crumbs=${[['Catalog'], ['Blueprints']]}
      subtitle="The types of entities in your catalog, with the properties and relations each entity holds."
      actions=${html`<a href=${href(['catalog', 'entities'])}>All entities</a>`}>
    <${Section} title="Blueprints" id="cat-blueprints">
      ${all.length > 0 && html`<form class="filters" role="search" aria-label="Filter blueprints" onSubmit=${submit}>
        <div class="field"><label for="cat-bp-filter">Filter blueprints</label>
          <input id="cat-bp-filter" type="search" value=${draft} placeholder="identifier or title"
            onInput=${(e) => setDraft(e.currentTarget.value)} /></div>
        <button type="submit">Filter</button>
        ${filter && html`<button type="button" class="secondary" onClick=${() => setParams({ q: '', page: '' })}>Clear filter</button>`}
      </form>`}
      <${ErrorNote} error=${error} what="Cannot list blueprints" />
      ${loading && !data && html`<${Loading} what="blueprints" />`}
      ${data && html`<${Table} columns=${columns} rows=${rows} rowKey=${(bp) => bp.identifier} caption="Blueprints"
        empty=${all.length === 0
          ? html`<${Empty} title="No blueprints yet.">A blueprint is the type of an entity (a service, a team, a
              deployment). Create the first one with the <strong>Create blueprint</strong> form below: edit the example
              JSON and press <strong>Create blueprint</strong>, or POST it to <code>/v1/blueprints</code>.<//>`
          : html`<${Empty} title=${`No blueprint matches “${filter}”.`}>Change the filter, or clear it to see all ${num(all.length)} blueprints.<//>`} />
        ${matching.length > PAGE && html`<${Pager} hasNext=${page * PAGE < matching.length} count=${rows.length}
          noun=${`of ${num(matching.length)} blueprints`} onNext=${() => setParams({ page: page + 1 })}
          onFirst=${page > 1 ? () => setParams({ page: '' }) : null} />`}`}
    <//>
    ${data && html`<${CreateBlueprint} taken=${all.map((bp) => bp.identifier)} />`}
  <//>`;
}

// ------------------------------------------------------------------------- one blueprint

// How far a blueprint's history opens its document: each property and each relation is one field.
const blueprintDepth = (path) => (path.startsWith('schema.') ? 3 : 2);

function typeText(p) {
  if (p.type === 'array' && p.items?.type) return `array of ${p.items.type}`;
  return p.type || '—';
}

function PropertyTable({ blueprint }) {
  const properties = blueprint.schema?.properties || {};
  const required = new Set(blueprint.schema?.required || []);
  const rows = Object.entries(properties).map(([name, p]) => ({ name, ...p }));
  const columns = [
    { label: 'Property', render: (p) => html`<code>${p.name}</code>` },
    { label: 'Title', render: (p) => p.title || html`<span class="muted">—</span>` },
    { label: 'Type', render: (p) => typeText(p) },
    { label: 'Format', render: (p) => p.format || p.items?.format || html`<span class="muted">—</span>` },
    { label: 'Enum', render: (p) => (Array.isArray(p.enum) ? html`<span class="cat-chips">${p.enum.map((v) => html`<span class="badge">${text(v)}</span>`)}</span>` : html`<span class="muted">—</span>`) },
    { label: 'Required', render: (p) => html`<${Badge} value=${required.has(p.name)} />` },
    { label: 'Description', render: (p) => p.description || (p.default !== undefined ? html`default <code>${text(p.default)}</code>` : html`<span class="muted">—</span>`) },
  ];
  return html`<${Table} columns=${columns} rows=${rows} rowKey=${(p) => p.name} caption="Properties"
    empty=${html`<${Empty} title="This blueprint has no properties.">Add some under <code>schema.properties</code> in the JSON below and save.<//>`} />`;
}

function OtherProperties({ blueprint }) {
  const kinds = [['mirrorProperties', 'mirror'], ['calculationProperties', 'calculation'], ['aggregationProperties', 'aggregation']];
  const rows = kinds.flatMap(([key, kind]) => Object.entries(blueprint[key] || {}).map(([name, def]) => ({ kind, name, def })));
  if (rows.length === 0) return null;
  return html`<${Section} title="Mirror, calculation and aggregation properties" id="cat-bp-other">
    <${Table} caption="Other properties" rowKey=${(r) => `${r.kind}.${r.name}`} rows=${rows} columns=${[
      { label: 'Property', render: (r) => html`<code>${r.name}</code>` },
      { label: 'Kind', render: (r) => r.kind },
      { label: 'Definition', render: (r) => html`<code class="cat-inline-json">${JSON.stringify(r.def)}</code>` },
    ]} />
  <//>`;
}

function RelationsOut({ blueprint }) {
  const rows = Object.entries(blueprint.relations || {}).map(([name, r]) => ({ name, ...r }));
  return html`<${Table} caption="Relations" rows=${rows} rowKey=${(r) => r.name} columns=${[
    { label: 'Relation', render: (r) => html`<${Named} name=${r.name} title=${r.title} />` },
    { label: 'Target', render: (r) => html`<a href=${blueprintHref(r.target)}>${r.target}</a>` },
    { label: 'Many', render: (r) => html`<${Badge} value=${!!r.many} />` },
    { label: 'Required', render: (r) => html`<${Badge} value=${!!r.required} />` },
  ]} empty=${html`<${Empty} title="No relations from this blueprint.">Add one under <code>relations</code> in the JSON below,
    e.g. <code>{"owner": {"title": "Owner", "target": "team", "many": false, "required": false}}</code>.<//>`} />`;
}

function RelationsIn({ identifier, blueprints }) {
  const rows = relationsInto(identifier, blueprints);
  return html`<${Table} caption="Relations to this blueprint" rows=${rows} rowKey=${(r) => `${r.blueprint}.${r.relation}`} columns=${[
    { label: 'From blueprint', render: (r) => html`<a href=${blueprintHref(r.blueprint)}>${r.blueprintTitle || r.blueprint}</a>` },
    { label: 'Relation', render: (r) => html`<${Named} name=${r.relation} title=${r.title} />` },
    { label: 'Many', render: (r) => html`<${Badge} value=${r.many} />` },
    { label: 'Required', render: (r) => html`<${Badge} value=${r.required} />` },
  ]} empty=${html`<${Empty} title="No blueprint relates to this one.">Other blueprints point here with a relation whose <code>target</code> is <code>${identifier}</code>.<//>`} />`;
}

function EditBlueprint({ blueprint, onSaved }) {
  const original = pretty(withoutAudit(blueprint));
  const [source, setSource] = useState(original);
  useEffect(() => setSource(original), [original]);
  const save = useAction(async () => {
    const doc = parseJson(source, 'The blueprint');
    const answer = await api.put(`/v1/blueprints/${seg(blueprint.identifier)}`, doc);
    onSaved(answer.blueprint);
    return 'Saved.';
  });
  return html`<${JsonForm} id="cat-blueprint-json" label="Blueprint JSON" value=${source} onInput=${setSource} rows=${16}
    hint="Saved with PUT: the whole blueprint. A property's type cannot change; properties and relations removed here are removed from its entities."
    submitLabel="Save blueprint" busy=${save.busy} error=${save.error} what="Not saved" onSubmit=${() => save.run()}>
    ${save.done && source === original && html`<p class="notice" role="status">Blueprint saved.</p>`}
    ${source !== original && html`<div class="page-actions"><button type="button" class="secondary" onClick=${() => setSource(original)}>Discard changes</button></div>`}
  <//>`;
}

function DeleteBlueprint({ identifier }) {
  const [withEntities, setWithEntities] = useState(false);
  const remove = async () => {
    await api.delete(`/v1/blueprints/${seg(identifier)}${withEntities ? '?delete_entities=true' : ''}`);
    navigate(['catalog', 'blueprints']);
  };
  return html`<${ConfirmDelete} what="blueprint" onDelete=${remove}
      question=${`Delete the blueprint ${identifier}${withEntities ? ' and every one of its entities' : ''}?`}>
    <p class="muted cat-lead">A blueprint that has entities is deleted only with them; one that another blueprint's relation
      targets is not deleted until that relation is removed.</p>
    <${Checkbox} id="cat-bp-delete-entities" label="Also delete its entities" checked=${withEntities} onChange=${setWithEntities} />
  <//>`;
}

export function BlueprintPage({ blueprint: identifier }) {
  const [saved, setSaved] = useState(0);
  // The history below is drawn once the blueprint is in, but its filter is the URL's name: its
  // first page goes out with the blueprint's request, not after it.
  const changes = { blueprint: identifier, resources: 'blueprint' };
  const firstChanges = historyPath(changes);
  useEarly(firstChanges, () => api.get(firstChanges));
  const { data, error, loading, reload } = useLoad(
    () => Promise.all([api.get(`/v1/blueprints/${seg(identifier)}`), api.get('/v1/blueprints')]),
    [identifier, saved],
  );
  const bp = data?.[0]?.blueprint;
  const all = data?.[1]?.blueprints || [];
  const crumbs = [['Catalog'], ['Blueprints', href(['catalog', 'blueprints'])], [identifier]];
  if (!bp) {
    return html`<${Page} title=${identifier} crumbs=${crumbs}>
      ${loading && html`<${Loading} what="the blueprint" />`}
      <${ErrorNote} error=${error} what="Cannot read the blueprint" />
      ${error && html`<p><a href=${href(['catalog', 'blueprints'])}>Back to the blueprints</a></p>`}
    <//>`;
  }
  const entitiesLink = href(['catalog', 'entities'], { blueprint: identifier });
  return html`<${Page} title=${bp.title || identifier} crumbs=${crumbs}
      subtitle=${bp.description || `Blueprint ${identifier}`}
      actions=${html`<a class="cat-button" href=${entitiesLink}>Entities of ${identifier}</a>`}>
    <${ErrorNote} error=${error} what="Cannot reload the blueprint" />
    <${Section} title="Properties" id="cat-bp-properties">
      <${PropertyTable} blueprint=${bp} />
    <//>
    <div class="grid2">
      <${Section} title="Details" id="cat-bp-details">
        <dl class="props">
          <dt>Identifier</dt><dd><code>${bp.identifier}</code></dd>
          <dt>Title</dt><dd>${bp.title || '—'}</dd>
          <dt>Icon</dt><dd>${bp.icon || '—'}</dd>
          <dt>Description</dt><dd>${bp.description || '—'}</dd>
          <dt>Created</dt><dd><${Time} at=${bp.createdAt} /> by ${bp.createdBy || '—'}</dd>
          <dt>Updated</dt><dd><${Time} at=${bp.updatedAt} /> by ${bp.updatedBy || '—'}</dd>
          <dt>Entities</dt><dd><a href=${entitiesLink}>Search the ${identifier} entities</a></dd>
        </dl>
      <//>
      <${Section} title="Relations" id="cat-bp-relations">
        <${RelationsOut} blueprint=${bp} />
        <h3 class="cat-h3">Relations to this blueprint</h3>
        <${RelationsIn} identifier=${identifier} blueprints=${all} />
      <//>
    </div>
    <${OtherProperties} blueprint=${bp} />
    <${Section} title="Edit blueprint" id="cat-bp-edit">
      <${EditBlueprint} blueprint=${bp} onSaved=${() => { setSaved(saved + 1); }} />
    <//>
    <${Section} title="History" id="cat-bp-history">
      <${History} filter=${changes} depth=${blueprintDepth} what="blueprint" reloadKey=${saved} />
    <//>
    <${Section} title="Delete blueprint" id="cat-bp-delete">
      <${DeleteBlueprint} identifier=${identifier} />
    <//>
  <//>`;
}
