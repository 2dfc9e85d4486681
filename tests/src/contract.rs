//! The contract as its two documents state it: `API.md`, for people (it wins where they
//! disagree), and `openapi.yaml`, for tools. Tests read both through here, so each is parsed
//! one way only, and generically: whatever routes and error codes the documents hold.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

/// `API.md`, the repository's own contract.
pub const API_MD: &str = include_str!("../../API.md");

/// `openapi.yaml`, the same contract for tools.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

/// A route as both documents name it: `("PATCH", "/posts/{postId}")`.
pub type Route = (String, String);

/// The HTTP methods an OpenAPI path item may hold operations for.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One row of an `API.md` route table: `` | `METHOD /path?query` | body | `201` ... | ``.
#[derive(Debug, Clone)]
pub struct DocumentedRoute {
    pub route: Route,
    /// The status the success cell starts with, when it names one.
    pub success: Option<u16>,
}

/// The cells of a Markdown table row, trimmed; `None` for any other line.
fn table_cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

/// The text between the first pair of backticks.
fn first_code_span(cell: &str) -> Option<&str> {
    cell.split('`').nth(1)
}

/// Every row of every route table in a Markdown contract: a first cell `` `METHOD /path` ``.
/// Methods may be joined by `|` inside the span (`GET|PATCH /x`); a query string is not part
/// of the route.
pub fn documented_routes(markdown: &str) -> Vec<DocumentedRoute> {
    let mut rows = Vec::new();
    for line in markdown.lines() {
        // A `|` inside a code span would split the cell: take the span from the raw line.
        let Some(span) = line
            .trim()
            .strip_prefix("| `")
            .and_then(|rest| rest.split('`').next())
        else {
            continue;
        };
        let Some((methods, path)) = span.split_once(' ') else {
            continue;
        };
        if !path.starts_with('/') || !methods.chars().all(|c| c.is_ascii_uppercase() || c == '|') {
            continue;
        }
        let path = path.split('?').next().unwrap_or(path);
        let success = table_cells(line)
            .and_then(|cells| cells.last().copied())
            .and_then(first_code_span)
            .and_then(|span| span.get(..3))
            .and_then(|status| status.parse().ok());
        for method in methods.split('|') {
            rows.push(DocumentedRoute {
                route: (method.to_owned(), path.to_owned()),
                success,
            });
        }
    }
    rows
}

/// Every route of `API.md`.
pub fn api_md_routes() -> BTreeSet<Route> {
    documented_routes(API_MD)
        .into_iter()
        .map(|r| r.route)
        .collect()
}

/// Every row of every error table in a Markdown contract (`` | 409 | `email_taken` | when | ``):
/// code -> the statuses it is listed with.
pub fn documented_errors(markdown: &str) -> BTreeMap<String, BTreeSet<u16>> {
    let mut errors: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for cells in markdown.lines().filter_map(table_cells) {
        let [status, code, ..] = cells.as_slice() else {
            continue;
        };
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        let Some(code) = code.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        if (100..600).contains(&status) && code.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            errors.entry(code.to_owned()).or_default().insert(status);
        }
    }
    errors
}

/// `openapi.yaml`, parsed.
pub fn openapi() -> Value {
    serde_yaml::from_str(OPENAPI).expect("openapi.yaml parses")
}

/// Every operation of `openapi.yaml`: route -> the operation object.
pub fn openapi_operations(doc: &Value) -> BTreeMap<Route, &Value> {
    let mut operations = BTreeMap::new();
    let paths = doc["paths"].as_mapping().expect("openapi.yaml has paths");
    for (path, item) in paths {
        let path = path.as_str().expect("a path is a string");
        for method in OPENAPI_METHODS {
            if let Some(op) = item.get(method) {
                operations.insert((method.to_uppercase(), path.to_owned()), op);
            }
        }
    }
    operations
}

/// Every route of `openapi.yaml`.
pub fn openapi_routes(doc: &Value) -> BTreeSet<Route> {
    openapi_operations(doc).into_keys().collect()
}

/// Whether an operation asks for a token: its own `security`, else the document's; an empty
/// list (`security: []`) means none.
pub fn needs_token(doc: &Value, operation: &Value) -> bool {
    let security = operation.get("security").unwrap_or(&doc["security"]);
    security.as_sequence().is_some_and(|s| !s.is_empty())
}

/// The codes of the `ErrorCode` schema: every code an error body may carry.
pub fn openapi_error_codes(doc: &Value) -> BTreeSet<String> {
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_sequence()
        .expect("an ErrorCode enum");
    codes
        .iter()
        .map(|c| c.as_str().expect("a code is a string").to_owned())
        .collect()
}

/// What a `$ref` inside this document points to (`#/components/responses/X`), or the value.
pub fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
        return value;
    };
    let pointer = reference
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("only local $refs: {reference}"));
    pointer.split('/').fold(doc, |node, key| &node[key])
}

/// The error codes a response may carry: wherever its schema pins `error.code` with `const`
/// or `enum` (at any depth, `allOf` included). Empty for a response that pins none.
pub fn response_codes(doc: &Value, response: &Value) -> BTreeSet<String> {
    fn walk(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
        let schema = resolve(doc, schema);
        let code = &schema["properties"]["error"]["properties"]["code"];
        if let Some(c) = code.get("const").and_then(Value::as_str) {
            out.insert(c.to_owned());
        }
        if let Some(list) = code.get("enum").and_then(Value::as_sequence) {
            out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for sub in schema
                .get(key)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                walk(doc, sub, out);
            }
        }
    }
    let mut codes = BTreeSet::new();
    let response = resolve(doc, response);
    for media in response["content"]
        .as_mapping()
        .into_iter()
        .flat_map(|m| m.values())
    {
        walk(doc, &media["schema"], &mut codes);
    }
    codes
}

/// For every error code some operation answers with: code -> `(status, route)` of each answer.
pub fn openapi_error_uses(doc: &Value) -> BTreeMap<String, BTreeSet<(u16, Route)>> {
    let mut uses: BTreeMap<String, BTreeSet<(u16, Route)>> = BTreeMap::new();
    for (route, op) in openapi_operations(doc) {
        for (status, response) in op["responses"].as_mapping().into_iter().flatten() {
            let status = match status {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            let Some(status) = status else { continue }; // `default`, `4XX`: no one status to check
            for code in response_codes(doc, response) {
                uses.entry(code)
                    .or_default()
                    .insert((status, route.clone()));
            }
        }
    }
    uses
}

/// The statuses an operation documents.
pub fn operation_statuses(operation: &Value) -> BTreeSet<String> {
    let responses = operation["responses"].as_mapping().into_iter().flatten();
    responses
        .map(|(status, _)| match status {
            Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// The route template a concrete path matches (`/posts/01J…/comments` ->
/// `/posts/{postId}/comments`), among `templates`.
pub fn matching_template<'a>(
    templates: impl IntoIterator<Item = &'a str>,
    path: &str,
) -> Option<&'a str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    templates.into_iter().find(|template| {
        let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(part, segment)| part.starts_with('{') || part == segment)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
| method and path | body | success |
| --- | --- | --- |
| `GET|PATCH /posts/{postId}?limit=` | none | `200` post |
| `POST /auth/logout` | none | `204`; gone |
| `not a route` | x | y |

| status | code | when |
| --- | --- | --- |
| 409 | `email_taken` | taken |
| 304 | none | not modified |
| 429 | `too_many_attempts` | slow down |
";

    #[test]
    fn route_rows_give_methods_path_and_success_status() {
        let rows: Vec<(Route, Option<u16>)> = documented_routes(SAMPLE)
            .into_iter()
            .map(|r| (r.route, r.success))
            .collect();
        let route = |m: &str, p: &str| (m.to_owned(), p.to_owned());
        assert_eq!(
            rows,
            [
                (route("GET", "/posts/{postId}"), Some(200)),
                (route("PATCH", "/posts/{postId}"), Some(200)),
                (route("POST", "/auth/logout"), Some(204)),
            ]
        );
    }

    #[test]
    fn error_rows_give_code_and_status() {
        let errors = documented_errors(SAMPLE);
        let expected: BTreeMap<String, BTreeSet<u16>> = [
            ("email_taken".to_owned(), [409].into()),
            ("too_many_attempts".to_owned(), [429].into()),
        ]
        .into();
        assert_eq!(errors, expected);
    }

    #[test]
    fn a_concrete_path_matches_its_template() {
        let templates = ["/posts", "/posts/{postId}", "/posts/{postId}/comments"];
        assert_eq!(
            matching_template(templates, "/posts/01J/comments?limit=1"),
            Some("/posts/{postId}/comments")
        );
        assert_eq!(matching_template(templates, "/posts"), Some("/posts"));
        assert_eq!(matching_template(templates, "/nowhere"), None);
    }
}
