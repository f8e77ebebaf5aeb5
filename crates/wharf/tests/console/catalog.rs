//! The console's catalog screens in Chromium: a blueprint made through its JSON form (after
//! the errors a user sees first), an entity made, edited and followed through its relations and
//! history, the entities table filtered by text and by a rule, and paged through.

use crate::common;

use common::TestServer;
use common::browser::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The rows the entities table shows now.
const ROWS: &str = "document.querySelectorAll('.cat-results tbody tr').length";

/// The JS that is true when a table row's first cells show `cells` (each cell's text, trimmed).
fn row(cells: &[&str]) -> String {
    let cells = serde_json::to_string(cells).expect("a list serializes");
    format!(
        "[...document.querySelectorAll('#main tbody tr')].some((tr) => {{ const want = {cells}; \
         return want.every((text, i) => tr.cells[i] && tr.cells[i].innerText.replace(/\\s+/g, '') === text.replace(/\\s+/g, '')); }})"
    )
}

/// Reloads the page (what the user does after data changed elsewhere) and waits for `text`.
async fn reload_for(browser: &Browser, text: &str) {
    browser.eval("setTimeout(() => location.reload(), 0)").await;
    browser.wait_for_text(text).await;
}

/// Writes `entities` of `blueprint` through the bulk API, 20 at a time.
async fn seed(server: &TestServer, blueprint: &str, entities: Vec<Value>) {
    server.bulk(&format!("/v1/blueprints/{blueprint}/entities/bulk"), &entities).await;
}

/// Filters the entities table with one rule, `stars > value`, and waits for the URL to hold it
/// (and no page cursor).
async fn stars_above(browser: &Browser, value: u32) {
    browser.click_button("Add rule").await;
    browser.select("Rule 1 Property", "stars").await;
    browser.select("Rule 1 Operator", ">").await;
    browser.fill("Rule 1 Value", &value.to_string()).await;
    browser.click_button("Apply filters").await;
    browser.wait_until("location.hash.includes('rules=') && !location.hash.includes('from=')").await;
}

/// The identifiers in the entities table's first column, in order.
async fn identifiers_shown(browser: &Browser) -> Vec<String> {
    let shown = browser
        .eval("return [...document.querySelectorAll('.cat-results tbody tr td:first-child')].map((td) => td.innerText.trim())")
        .await;
    shown.as_array().into_iter().flatten().filter_map(|v| v.as_str()).map(str::to_owned).collect()
}

async fn a_blueprint_and_its_entities_are_made_and_browsed(server: TestServer) {
    let Some(browser) = Browser::signed_in(&server).await else { return };

    // An empty catalog says what to do next.
    browser.goto("#/catalog/blueprints").await;
    browser.wait_for_text("No blueprints yet.").await;
    browser.wait_for_text("Create the first one with the Create blueprint form below").await;

    // The area's modules were asked for together, from the module graph the page carries, not
    // one level of imports at a time: those the area's screens import two levels down too.
    let preloaded =
        browser.eval("return [...document.querySelectorAll('link[rel=modulepreload]')].map((l) => l.getAttribute('href'))").await;
    for module in ["screens/catalog.js", "screens/catalog-entity.js", "screens/catalog-search.js", "editor.js"] {
        assert!(
            preloaded.as_array().unwrap().iter().any(|href| href == &format!("/console/{module}")),
            "{module} not in {preloaded}"
        );
    }

    // The blueprint the new one relates to, and an entity of it, come through the API.
    server
        .blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {"slack": {"type": "string"}}}}))
        .await;
    server.upsert("team", json!({"identifier": "platform", "title": "Platform team"})).await;
    reload_for(&browser, "Filter blueprints").await;
    browser.wait_until("document.querySelector('a[href=\"#/catalog/blueprints/team\"]')").await;

    // JSON that does not parse, then a blueprint the API refuses (422), then one it takes.
    browser.fill("New blueprint JSON", r#"{"identifier": "service", "title": "#).await;
    browser.click_button("Create blueprint").await;
    browser.wait_for_text("Not created: The blueprint does not parse").await;
    browser
        .fill(
            "New blueprint JSON",
            r#"{"identifier": "service", "title": "Service", "schema": {"properties": {"language": {"type": "strin"}}}}"#,
        )
        .await;
    browser.click_button("Create blueprint").await;
    browser.wait_for_text("Not created: invalid blueprint at `schema.properties.language.type`: unknown variant `strin`").await;
    browser.wait_for_text("422 invalid_blueprint").await;
    let blueprint = json!({
        "identifier": "service", "title": "Service", "icon": "Service", "description": "A deployable service",
        "schema": {"properties": {
            "language": {"type": "string", "title": "Language", "enum": ["rust", "go", "python"]},
            "stars": {"type": "number", "title": "Stars"}
        }, "required": ["language"]},
        "relations": {"owner": {"title": "Owner", "target": "team", "many": false, "required": false}},
        "calculationProperties": {"repository": {"title": "Repository", "type": "string", "format": "url",
            "calculation": "'https://github.com/acme/' + .identifier"}}
    });
    browser.fill("New blueprint JSON", &blueprint.to_string()).await;
    browser.click_button("Create blueprint").await;
    browser.wait_until("location.hash === '#/catalog/blueprints/service'").await;
    browser.wait_for_text("A deployable service").await;
    let (status, created) = server.get("/v1/blueprints/service").await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["blueprint"]["relations"]["owner"]["target"], "team");
    assert_eq!(created["blueprint"]["schema"]["properties"]["language"]["enum"], json!(["rust", "go", "python"]));

    // The blueprint's page: its properties (the enum's values), its relation to team.
    browser.wait_until(&row(&["language", "Language", "string", "—", "rustgopython", "yes"])).await;
    let chips = browser
        .eval("return [...document.querySelectorAll('#main tbody tr')][0].cells[4].querySelectorAll('.badge').length")
        .await;
    assert_eq!(chips, 3, "each value of the enum is a chip");
    browser.wait_until(&row(&["stars", "Stars", "number", "—", "—", "no"])).await;
    browser.wait_until(&row(&["Owner owner", "team", "no", "no"])).await;
    browser.wait_until("document.querySelector('#main td a[href=\"#/catalog/blueprints/team\"]')").await;
    browser.assert_accessible("blueprint").await;
    browser.screenshot("catalog-blueprint").await;

    // No entity yet: the table says how to make one; the Create entity form makes it.
    browser.goto("#/catalog/entities?blueprint=service").await;
    browser.wait_for_text("No Service entities yet.").await;
    let entity = json!({
        "identifier": "billing", "title": "Billing",
        "properties": {"language": "go", "stars": 12}, "relations": {"owner": "platform"}
    });
    browser.fill("New entity JSON", &entity.to_string()).await;
    browser.click_button("Create entity").await;
    browser.wait_until("location.hash === '#/catalog/entities/service/billing'").await;

    // Its page: properties, the relation linked (with the target's title), a CREATE in History.
    browser.wait_for_text("Service entity billing").await;
    browser.wait_for_text("Stars stars\n12").await;
    browser.wait_for_text("Language language\ngo").await;
    browser.wait_for_text("Repository repository\nhttps://github.com/acme/billing").await;
    // The editor holds what the entity stores: no calculated value, relations as identifiers.
    let editing: Value =
        serde_json::from_str(browser.eval("return document.getElementById('cat-entity-json').value").await.as_str().unwrap())
            .unwrap();
    assert_eq!(
        (editing["properties"].clone(), editing["relations"].clone()),
        (json!({"language": "go", "stars": 12}), json!({"owner": "platform"}))
    );
    browser
        .wait_until(
            "[...document.querySelectorAll('a[href=\"#/catalog/entities/team/platform\"]')].some((a) => a.innerText.includes('Platform team'))",
        )
        .await;
    browser.wait_until("[...document.querySelectorAll('.cat-change .badge')].some((b) => b.innerText === 'CREATE')").await;

    // A PATCH through the page: only the field sent changes, and History shows the diff.
    browser.fill("Entity JSON", r#"{"properties": {"stars": 13}}"#).await;
    browser.select("Save with", "patch").await;
    browser.click_button("Save entity").await;
    browser.wait_for_text("Entity saved.").await;
    browser.wait_until("[...document.querySelectorAll('.cat-change .badge')].some((b) => b.innerText === 'UPDATE')").await;
    browser
        .wait_until(
            "[...document.querySelectorAll('.cat-diff tbody tr')].some((tr) => tr.innerText.replace(/\\s+/g, ' ').trim() === 'properties.stars 12 13')",
        )
        .await;
    let (status, patched) = server.get("/v1/blueprints/service/entities/billing").await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["entity"]["properties"],
        json!({"language": "go", "stars": 13, "repository": "https://github.com/acme/billing"}),
        "PATCH kept what it did not name"
    );
    assert_eq!(patched["entity"]["relations"]["owner"], "platform");
    browser.assert_accessible("entity").await;

    // The target entity lists it among the entities related to it.
    browser.click_link("Platform team").await;
    browser.wait_until("location.hash === '#/catalog/entities/team/platform'").await;
    browser.wait_for_text("Entities that relate to this one").await;
    browser
        .wait_until("[...document.querySelectorAll('#main a[href=\"#/catalog/entities/service/billing\"]')].some((a) => a.innerText === 'Billing')")
        .await;

    // Nine more services through the API; the table shows all ten, then filters them.
    let more = [
        ("payments", "Payments", "rust", 340, "platform"),
        ("payouts", "Payouts", "rust", 120, "platform"),
        ("search", "Search", "go", 88, "data"),
        ("ledger", "Ledger", "rust", 510, "data"),
        ("notifications", "Notifications", "python", 45, "platform"),
        ("auth", "Auth", "go", 230, "platform"),
        ("reports", "Reports", "python", 9, "data"),
        ("gateway", "Gateway", "go", 150, "platform"),
        ("inventory", "Inventory", "python", 61, "data"),
    ];
    server.upsert("team", json!({"identifier": "data", "title": "Data team"})).await;
    let entities = more
        .iter()
        .map(|(id, title, language, stars, owner)| {
            json!({"identifier": id, "title": title, "properties": {"language": language, "stars": stars}, "relations": {"owner": owner}})
        })
        .collect();
    seed(&server, "service", entities).await;
    browser.goto("#/catalog/entities?blueprint=service").await;
    browser.wait_until(&format!("{ROWS} === 10")).await;
    browser.wait_for_text("10 entities shown").await;
    // The calculation property is a column after the schema's, with the value the API computed.
    browser.wait_until("[...document.querySelectorAll('#main th')].some((th) => th.textContent.trim() === 'Repository')").await;
    browser.wait_for_text("https://github.com/acme/auth").await;
    assert_eq!(identifiers_shown(&browser).await.first().map(String::as_str), Some("auth"), "identifier order");
    browser.assert_accessible("entities").await;
    browser.screenshot("catalog-entities").await;

    // The text filter: identifier or title contains the text.
    browser.fill("Search", "pay").await;
    browser.click_button("Apply filters").await;
    browser.wait_until("location.hash.includes('q=pay')").await;
    browser.wait_until(&format!("{ROWS} === 2")).await;
    assert_eq!(identifiers_shown(&browser).await, ["payments", "payouts"]);

    // A rule on a property: stars > 200 (the text filter cleared first).
    browser.click_button("Clear filters").await;
    browser.wait_until(&format!("{ROWS} === 10")).await;
    stars_above(&browser, 200).await;
    browser.wait_until(&format!("{ROWS} === 3")).await;
    assert_eq!(identifiers_shown(&browser).await, ["auth", "ledger", "payments"]);
    browser.close().await;
}

async fn entities_page_through_the_list(server: TestServer) {
    server.blueprint(json!({"identifier": "team", "title": "Team", "schema": {"properties": {}}})).await;
    server.upsert("team", json!({"identifier": "core", "title": "Core"})).await;
    server
        .blueprint(json!({"identifier": "svc", "title": "Service", "schema": {"properties": {"stars": {"type": "number"}}},
                          "relations": {"owner": {"target": "team", "many": false}}}))
        .await;
    let entities = (0..120)
        .map(|i| {
            json!({"identifier": format!("svc-{i:03}"), "title": format!("Service {i}"), "properties": {"stars": i},
                   "relations": {"owner": "core"}})
        })
        .collect();
    seed(&server, "svc", entities).await;
    let Some(browser) = Browser::signed_in(&server).await else { return };
    let next_disabled =
        "[...document.querySelectorAll('.pager button')].find((b) => b.innerText.trim() === 'Next page').disabled";

    // 50 a page by default, in identifier order.
    browser.goto("#/catalog/entities?blueprint=svc").await;
    browser.wait_for_text("50 entities shown").await;
    let first = identifiers_shown(&browser).await;
    assert_eq!((first.len(), first[0].as_str(), first[49].as_str()), (50, "svc-000", "svc-049"));
    assert_eq!(browser.eval(&format!("return {next_disabled}")).await, false);

    browser.click_button("Next page").await;
    browser.wait_until("location.hash.includes('from=')").await;
    browser
        .wait_until(&format!("{ROWS} === 50 && document.querySelector('.cat-results tbody td').innerText.trim() === 'svc-050'"))
        .await;
    browser.click_button("Next page").await;
    browser.wait_for_text("20 entities shown").await;
    let last = identifiers_shown(&browser).await;
    assert_eq!((last.len(), last[0].as_str(), last[19].as_str()), (20, "svc-100", "svc-119"));
    browser.wait_until(next_disabled).await;

    browser.click_button("First page").await;
    browser.wait_until("!location.hash.includes('from=')").await;
    browser.wait_for_text("50 entities shown").await;
    assert_eq!(identifiers_shown(&browser).await[0], "svc-000");

    // 100 a page: two pages.
    browser.select("Per page", "100").await;
    browser.wait_until("location.hash.includes('size=100')").await;
    browser.wait_for_text("100 entities shown").await;
    let hundred = identifiers_shown(&browser).await;
    assert_eq!((hundred.len(), hundred[99].as_str()), (100, "svc-099"));
    browser.click_button("Next page").await;
    browser.wait_for_text("20 entities shown").await;
    assert_eq!(identifiers_shown(&browser).await[0], "svc-100");
    browser.wait_until(next_disabled).await;

    // A filtered table pages with its search's own `next`: stars > 9, 110 matches.
    browser.click_button("First page").await;
    stars_above(&browser, 9).await;
    // The unfiltered first page showed 100 rows too: wait for the filtered one.
    browser
        .wait_until(&format!("{ROWS} === 100 && document.querySelector('.cat-results tbody td').innerText.trim() === 'svc-010'"))
        .await;
    let filtered = identifiers_shown(&browser).await;
    assert_eq!((filtered[0].as_str(), filtered[99].as_str()), ("svc-010", "svc-109"));
    browser.click_button("Next page").await;
    browser.wait_until(&format!("{ROWS} === 10")).await;
    assert_eq!(identifiers_shown(&browser).await, (110..120).map(|i| format!("svc-{i:03}")).collect::<Vec<_>>());
    browser.wait_until(next_disabled).await;

    // The team's page lists the first ten services that relate to it, and links to them all.
    browser.goto("#/catalog/entities/team/core").await;
    browser.wait_for_text("All the svc entities whose owner is core").await;
    let listed = browser
        .eval("return [...document.querySelectorAll('#main .cat-list a')].map((a) => a.getAttribute('href')).filter((h) => h.startsWith('#/catalog/entities/svc/'))")
        .await;
    assert_eq!(listed, json!((0..10).map(|i| format!("#/catalog/entities/svc/svc-{i:03}")).collect::<Vec<_>>()));
    browser.click_link("All the svc entities whose owner is core").await;
    browser.wait_until("location.hash.includes('rules=')").await;
    browser.wait_for_text("50 entities shown").await;
    assert_eq!(identifiers_shown(&browser).await[49], "svc-049");
    browser.close().await;
}

both_stores!(a_blueprint_and_its_entities_are_made_and_browsed, entities_page_through_the_list);
