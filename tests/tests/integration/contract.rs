//! `API.md` and `openapi.yaml` say the same contract: the same routes, the same error codes,
//! each error under the status `API.md` lists it with, each route's success status; and the
//! repository points to itself for them, never to a folder beside it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use integration_tests::contract::{
    api_md_routes, documented_errors, documented_routes, openapi, openapi_error_codes,
    openapi_error_uses, openapi_operations, openapi_routes, operation_statuses, API_MD,
};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn list<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| format!("\n  {i:?}")).collect()
}

#[test]
fn every_route_is_in_both_documents() {
    let documented = api_md_routes();
    let described = openapi_routes(&openapi());
    assert!(!documented.is_empty(), "no route table found in API.md");
    let missing_in_openapi: Vec<_> = documented.difference(&described).collect();
    let missing_in_api_md: Vec<_> = described.difference(&documented).collect();
    assert!(
        missing_in_openapi.is_empty() && missing_in_api_md.is_empty(),
        "routes in API.md but not in openapi.yaml:{}\nroutes in openapi.yaml but not in API.md:{}",
        list(missing_in_openapi),
        list(missing_in_api_md)
    );
}

#[test]
fn every_route_answers_its_success_status_in_both_documents() {
    let doc = openapi();
    let operations = openapi_operations(&doc);
    let mut wrong = Vec::new();
    for row in documented_routes(API_MD) {
        let (Some(success), Some(op)) = (row.success, operations.get(&row.route)) else {
            continue;
        };
        let statuses = operation_statuses(op);
        if !statuses.contains(&success.to_string()) {
            wrong.push(format!(
                "{} {}: API.md says {success}, openapi.yaml has {statuses:?}",
                row.route.0, row.route.1
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "success statuses that disagree:{}",
        list(wrong)
    );
}

#[test]
fn every_error_code_is_in_both_documents() {
    let documented: BTreeSet<String> = documented_errors(API_MD).into_keys().collect();
    let described = openapi_error_codes(&openapi());
    assert!(!documented.is_empty(), "no error table found in API.md");
    let missing_in_openapi: Vec<_> = documented.difference(&described).collect();
    let missing_in_api_md: Vec<_> = described.difference(&documented).collect();
    assert!(
        missing_in_openapi.is_empty() && missing_in_api_md.is_empty(),
        "error codes in API.md's tables but not in openapi.yaml's ErrorCode:{}\n\
         error codes in openapi.yaml's ErrorCode but in no error table of API.md:{}",
        list(missing_in_openapi),
        list(missing_in_api_md)
    );
}

/// Where an operation of openapi.yaml answers with a code, it does so under a status API.md
/// lists that code with. (A code no operation names, such as `405`, which every path may
/// answer, is not checkable per route.)
#[test]
fn every_error_code_comes_with_the_status_api_md_lists() {
    let errors = documented_errors(API_MD);
    let mut wrong = Vec::new();
    for (code, uses) in openapi_error_uses(&openapi()) {
        let Some(listed) = errors.get(&code) else {
            continue;
        }; // the test above names it
        for (status, (method, path)) in uses {
            if !listed.contains(&status) {
                wrong.push(format!("{method} {path} answers `{code}` under {status}; API.md lists it with {listed:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "error codes under another status than API.md's:{}",
        list(wrong)
    );
}

/// The checks above can fail: the same comparisons on a contract with a route, a code and a
/// status changed.
#[test]
fn a_disagreement_is_found() {
    let doc = openapi();
    let broken = API_MD
        .replacen("| `POST /users` |", "| `POST /people` |", 1)
        .replacen("| `email_taken` |", "| `email_gone` |", 1)
        .replacen(
            "| 412 | `precondition_failed`",
            "| 428 | `precondition_failed`",
            1,
        );
    assert_ne!(broken, API_MD, "the breakage must change API.md");
    let routes: BTreeSet<_> = documented_routes(&broken)
        .into_iter()
        .map(|r| r.route)
        .collect();
    let missing: Vec<_> = routes
        .symmetric_difference(&openapi_routes(&doc))
        .cloned()
        .collect();
    let users = ("POST".to_owned(), "/users".to_owned());
    let people = ("POST".to_owned(), "/people".to_owned());
    assert_eq!(
        missing,
        [people, users],
        "a renamed route is missing on both sides"
    );
    let errors = documented_errors(&broken);
    let codes: BTreeSet<String> = errors.keys().cloned().collect();
    let missing: Vec<_> = codes
        .symmetric_difference(&openapi_error_codes(&doc))
        .cloned()
        .collect();
    assert_eq!(missing, ["email_gone", "email_taken"]);
    let uses = openapi_error_uses(&doc);
    let precondition = uses
        .get("precondition_failed")
        .expect("some operation answers precondition_failed");
    assert!(precondition
        .iter()
        .any(|(status, _)| !errors["precondition_failed"].contains(status)));
}

/// A relative path naming `shared/` must lead to something inside this repository (the
/// `shared` crate), never to a folder beside it.
#[test]
fn the_repository_points_nowhere_outside_itself() {
    let root = std::fs::canonicalize(REPO).expect("the repository root");
    let mut files = Vec::new();
    text_files(&root, &mut files);
    assert!(
        files.len() > 50,
        "only {} files found under {}",
        files.len(),
        root.display()
    );
    let mut outside = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (line_no, line) in text.lines().enumerate() {
            for target in shared_paths(line) {
                let dir = file.parent().expect("a file has a folder");
                let resolved = normalize(&dir.join(&target));
                if !resolved.starts_with(&root) || !resolved.exists() {
                    let shown = file
                        .strip_prefix(&root)
                        .unwrap_or(file)
                        .display()
                        .to_string();
                    outside.push(format!("{shown}:{}: {target}", line_no + 1));
                }
            }
        }
    }
    assert!(
        outside.is_empty(),
        "paths that lead out of the repository (point into it instead):{}",
        list(outside)
    );
    // The scan finds such a path.
    let sample = format!("see {}API.md", ["..", "/shared/"].concat());
    assert_eq!(shared_paths(&sample), [["..", "/shared/API.md"].concat()]);
}

/// Relative paths that climb (`../`) to a `shared` folder, as written in `line`.
fn shared_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("../") {
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || "\"'`)]>,;".contains(c))
            .unwrap_or(candidate.len());
        let path = &candidate[..end];
        if path.trim_start_matches("../").starts_with("shared") {
            found.push(path.to_owned());
        }
        rest = &candidate[end.max(3)..];
    }
    found
}

/// `a/b/../c` -> `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The repository's files, without build output, dependencies or dot-folders.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a folder entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            let skipped = name.starts_with('.') || ["target", "node_modules"].contains(&name);
            if !skipped {
                text_files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}
