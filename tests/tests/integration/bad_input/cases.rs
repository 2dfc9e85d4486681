//! The table, by theme: every case with the status and error code `API.md` gives it.

use integration_tests::PASSWORD;
use serde_json::{json, Value};

use super::language::*;

// ---------------------------------------------------------------------------------------
// The table, by theme.
// ---------------------------------------------------------------------------------------

/// A route that reads a JSON body: a valid body, its string fields, what a success is.
pub(super) struct BodyRoute {
    label: &'static str,
    method: &'static str,
    path: &'static str,
    valid: fn() -> Value,
    /// (field, may be missing, may be null)
    fields: &'static [(&'static str, bool, bool)],
    success: u16,
    anonymous: bool,
}

pub(super) fn body_routes() -> Vec<BodyRoute> {
    vec![
        BodyRoute {
            label: "register",
            method: "POST",
            path: "/users",
            valid: || json!({"email": "{email}", "name": "Valid Name", "password": PASSWORD}),
            fields: &[
                ("email", false, false),
                ("name", false, false),
                ("password", false, false),
            ],
            success: 201,
            anonymous: true,
        },
        BodyRoute {
            label: "login",
            method: "POST",
            path: "/auth/login",
            valid: || json!({"email": "{known_email}", "password": PASSWORD}),
            fields: &[("email", false, false), ("password", false, false)],
            success: 200,
            anonymous: true,
        },
        BodyRoute {
            label: "rename",
            method: "PATCH",
            path: "/users/me",
            valid: || json!({"name": "Alice"}),
            fields: &[("name", false, false)],
            success: 200,
            anonymous: false,
        },
        BodyRoute {
            label: "create post",
            method: "POST",
            path: "/posts",
            valid: || json!({"caption": "a caption", "imageUrl": "https://img.example.com/a.png"}),
            fields: &[("caption", false, false), ("imageUrl", true, true)],
            success: 201,
            anonymous: false,
        },
        BodyRoute {
            label: "edit post",
            method: "PATCH",
            path: "/posts/{post}",
            valid: || json!({"caption": "edited", "imageUrl": "https://img.example.com/b.png"}),
            // Either may be left out while the other is there; only imageUrl may be null.
            fields: &[("caption", true, false), ("imageUrl", true, true)],
            success: 200,
            anonymous: false,
        },
        BodyRoute {
            label: "comment",
            method: "POST",
            path: "/posts/{post}/comments",
            valid: || json!({"text": "a comment"}),
            fields: &[("text", false, false)],
            success: 201,
            anonymous: false,
        },
        BodyRoute {
            label: "edit comment",
            method: "PATCH",
            path: "/posts/{post}/comments/{comment}",
            valid: || json!({"text": "edited comment"}),
            fields: &[("text", false, false)],
            success: 200,
            anonymous: false,
        },
    ]
}

/// Bodies that are not a JSON object, on every body route; and each string field of each
/// route given every wrong type, `null`, and left out.
pub(super) fn body_shape_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for route in body_routes() {
        let at = |name: String| {
            let c = case(format!("{}: {name}", route.label), route.method, route.path);
            if route.anonymous {
                c.anon()
            } else {
                c
            }
        };
        let valid = (route.valid)();
        cases.push(
            at("valid body".into())
                .json(valid.clone())
                .ok(route.success),
        );
        // Not JSON, or not an object.
        for (name, text) in [
            ("truncated object", "{".to_owned()),
            ("not json at all", "hello".to_owned()),
            ("empty array", "[]".to_owned()),
            ("array holding the valid object", format!("[{valid}]")),
            ("number", "42".to_owned()),
            ("string", "\"a string\"".to_owned()),
            ("null", "null".to_owned()),
            ("true", "true".to_owned()),
            ("empty body", String::new()),
            ("whitespace body", " \n\t\r ".to_owned()),
            ("object then garbage", format!("{valid} x")),
            ("two objects", format!("{valid}{valid}")),
            ("trailing comma", "{\"a\": 1,}".to_owned()),
            ("single quotes", "{'a': 1}".to_owned()),
        ] {
            cases.push(
                at(name.into())
                    .raw("application/json", text)
                    .err(400, "invalid_json"),
            );
        }
        // No body and no content type at all.
        cases.push(at("no body".into()).err(400, "invalid_json"));

        for &(field, may_be_missing, may_be_null) in route.fields {
            for (kind, wrong) in [
                ("number", json!(42)),
                ("bool", json!(true)),
                ("object", json!({"v": "x"})),
                ("array", json!(["x"])),
            ] {
                let mut body = valid.clone();
                body[field] = wrong;
                cases.push(at(format!("{field} as {kind}")).json(body).invalid(field));
            }
            let mut body = valid.clone();
            body[field] = Value::Null;
            let c = at(format!("{field} null")).json(body);
            cases.push(if may_be_null {
                c.ok(route.success)
            } else {
                c.invalid(field)
            });
            let mut body = valid.clone();
            body.as_object_mut().expect("object").remove(field);
            let c = at(format!("{field} missing")).json(body);
            cases.push(if may_be_missing {
                c.ok(route.success)
            } else {
                c.invalid(field)
            });
        }
    }
    cases
}

/// Every limit of API.md, at the limit (accepted) and one past it, counted in characters.
pub(super) fn boundary_cases() -> Vec<Case> {
    let email = |local: &str, domain_label: String| format!("{local}@{domain_label}.io");
    let long_email = email(&"a".repeat(64), "b".repeat(186));
    let too_long_email = email(&"c".repeat(64), "d".repeat(187));
    let unicode_email = email(&"e".repeat(64), "é".repeat(186));
    let unicode_too_long = email(&"f".repeat(64), "é".repeat(187));
    assert_eq!(
        (long_email.chars().count(), too_long_email.chars().count()),
        (254, 255)
    );
    assert_eq!(
        (
            unicode_email.chars().count(),
            unicode_too_long.chars().count()
        ),
        (254, 255)
    );
    let register = |name: &str, email: &str, user: &str, password: &str| {
        case(format!("register: {name}"), "POST", "/users")
            .anon()
            .json(json!({"email": email, "name": user, "password": password}))
    };
    let rename = |name: &str, value: &str| {
        case(format!("rename: {name}"), "PATCH", "/users/me").json(json!({"name": value}))
    };
    let post =
        |name: &str, body: Value| case(format!("create post: {name}"), "POST", "/posts").json(body);
    let comment = |name: &str, text: &str| {
        case(format!("comment: {name}"), "POST", "/posts/{post}/comments")
            .json(json!({"text": text}))
    };
    let url = |len: usize| {
        let base = "https://img.example.com/";
        format!("{base}{}", "u".repeat(len - base.len()))
    };
    let emoji = |n: usize| "😀".repeat(n);
    vec![
        // Emails: 254 characters, whatever their bytes.
        register("email of 254 ascii chars", &long_email, "A", PASSWORD)
            .ok(201)
            .check("/email", json!(long_email)),
        register("email of 255 chars", &too_long_email, "A", PASSWORD).invalid("email"),
        register(
            "email of 254 chars, 186 of them é",
            &unicode_email,
            "A",
            PASSWORD,
        )
        .ok(201),
        register(
            "email of 255 chars, 187 of them é",
            &unicode_too_long,
            "A",
            PASSWORD,
        )
        .invalid("email"),
        register(
            "email upper-case unicode is lower-cased",
            "  ÜBER.Case@Example.COM ",
            "A",
            PASSWORD,
        )
        .ok(201)
        .check("/email", json!("über.case@example.com")),
        register("email with NUL", "nul\u{0}x@example.com", "A", PASSWORD).invalid("email"),
        register(
            "email with a newline",
            "new\nline@example.com",
            "A",
            PASSWORD,
        )
        .invalid("email"),
        register(
            "email without a dot in the domain",
            "a@localhost",
            "A",
            PASSWORD,
        )
        .invalid("email"),
        register("email empty", "", "A", PASSWORD).invalid("email"),
        // Passwords: 8 to 128 characters, not bytes, never trimmed.
        register("password of 8 emoji", "{email}", "A", &emoji(8)).ok(201),
        register("password of 7 emoji (28 bytes)", "{email}", "A", &emoji(7)).invalid("password"),
        register("password of 128 emoji", "{email}", "A", &emoji(128)).ok(201),
        register("password of 129 ascii", "{email}", "A", &"p".repeat(129)).invalid("password"),
        register(
            "password of 7 chars and spaces around",
            "{email}",
            "A",
            " 12345 ",
        )
        .invalid("password"),
        register("password of 8 spaces", "{email}", "A", "        ").ok(201),
        // Names: 1 to 100 characters after trimming.
        rename("100 ascii", &"n".repeat(100)).check("/name", json!("n".repeat(100))),
        rename("101 ascii", &"n".repeat(101)).invalid("name"),
        rename("100 emoji", &emoji(100)).check("/name", json!(emoji(100))),
        rename("101 emoji", &emoji(101)).invalid("name"),
        // "é" as e + combining acute is two code points: 50 of them are 100 characters.
        rename(
            "50 combining pairs (100 code points)",
            &"e\u{301}".repeat(50),
        ),
        rename(
            "51 combining pairs (102 code points)",
            &"e\u{301}".repeat(51),
        )
        .invalid("name"),
        rename(
            "100 chars inside spaces",
            &format!("  {}\t\n", "m".repeat(100)),
        )
        .check("/name", json!("m".repeat(100))),
        rename("empty", "").invalid("name"),
        rename("unicode white space only", "\u{a0}\u{3000}\u{2003}").invalid("name"),
        rename("zero width space is not white space", "\u{200b}").check("/name", json!("\u{200b}")),
        // The contract bounds names by length only; JSON escapes any character on the way out.
        rename("with NUL", "a\u{0}b").check("/name", json!("a\u{0}b")),
        rename("right-to-left override", "\u{202e}gnp.exe")
            .check("/name", json!("\u{202e}gnp.exe")),
        rename("a ZWJ family emoji", "👨\u{200d}👩\u{200d}👧")
            .check("/name", json!("👨\u{200d}👩\u{200d}👧")),
        // Captions: 1 to 2200 characters, not trimmed.
        post(
            "caption of 2200 ascii",
            json!({"caption": "c".repeat(2200)}),
        )
        .ok(201),
        post(
            "caption of 2201 ascii",
            json!({"caption": "c".repeat(2201)}),
        )
        .invalid("caption"),
        post("caption of 2200 emoji", json!({"caption": emoji(2200)}))
            .ok(201)
            .check("/caption", json!(emoji(2200))),
        post("caption of 2201 emoji", json!({"caption": emoji(2201)})).invalid("caption"),
        post("caption empty", json!({"caption": ""})).invalid("caption"),
        post("caption of one space", json!({"caption": " "}))
            .ok(201)
            .check("/caption", json!(" ")),
        post(
            "caption with NUL and controls",
            json!({"caption": "a\u{0}\u{1}\u{7f}b"}),
        )
        .ok(201),
        // Escapes count as the character they decode to: 2200 `\u0041` are 2200 chars.
        case("create post: caption of 2200 \\u escapes", "POST", "/posts")
            .raw(
                "application/json",
                format!("{{\"caption\":\"{}\"}}", "\\u0041".repeat(2200)),
            )
            .ok(201),
        case("create post: caption of 2201 \\u escapes", "POST", "/posts")
            .raw(
                "application/json",
                format!("{{\"caption\":\"{}\"}}", "\\u0041".repeat(2201)),
            )
            .invalid("caption"),
        case(
            "create post: caption with a surrogate pair escape",
            "POST",
            "/posts",
        )
        .raw("application/json", r#"{"caption":"\ud83d\ude00"}"#)
        .ok(201)
        .check("/caption", json!("😀")),
        // A lone surrogate is not a Unicode scalar: not JSON a string can hold.
        bad_json(
            "create post: caption with a lone high surrogate",
            "POST",
            "/posts",
        )
        .raw("application/json", r#"{"caption":"\ud800"}"#),
        bad_json(
            "create post: caption with a lone low surrogate",
            "POST",
            "/posts",
        )
        .raw("application/json", r#"{"caption":"a\udc00b"}"#),
        bad_json("create post: raw newline inside a string", "POST", "/posts")
            .raw("application/json", "{\"caption\":\"a\nb\"}"),
        bad_json("create post: invalid escape", "POST", "/posts")
            .raw("application/json", r#"{"caption":"\x41"}"#),
        // Comment text: 1 to 1000 characters.
        comment("text of 1000 ascii", &"t".repeat(1000)).ok(201),
        comment("text of 1001 ascii", &"t".repeat(1001)).invalid("text"),
        comment("text of 1000 CJK", &"字".repeat(1000)).ok(201),
        comment("text of 1001 CJK", &"字".repeat(1001)).invalid("text"),
        comment("text empty", "").invalid("text"),
        case(
            "edit comment: text of 1001",
            "PATCH",
            "/posts/{post}/comments/{comment}",
        )
        .json(json!({"text": "t".repeat(1001)}))
        .invalid("text"),
        case(
            "edit comment: text empty",
            "PATCH",
            "/posts/{post}/comments/{comment}",
        )
        .json(json!({"text": ""}))
        .invalid("text"),
        // Image URLs: null or https://, at most 2048 characters.
        post(
            "imageUrl of 2048 chars",
            json!({"caption": "c", "imageUrl": url(2048)}),
        )
        .ok(201),
        post(
            "imageUrl of 2049 chars",
            json!({"caption": "c", "imageUrl": url(2049)}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl null is returned as null",
            json!({"caption": "c", "imageUrl": null}),
        )
        .ok(201)
        .check("/imageUrl", Value::Null),
        post(
            "imageUrl http",
            json!({"caption": "c", "imageUrl": "http://x.io/a.png"}),
        )
        .invalid("imageUrl"),
        post("imageUrl empty", json!({"caption": "c", "imageUrl": ""})).invalid("imageUrl"),
        post(
            "imageUrl scheme only",
            json!({"caption": "c", "imageUrl": "https://"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl javascript",
            json!({"caption": "c", "imageUrl": "javascript:alert(1)"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl data",
            json!({"caption": "c", "imageUrl": "data:image/png;base64,AAAA"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl relative",
            json!({"caption": "c", "imageUrl": "/a.png"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl upper-case scheme",
            json!({"caption": "c", "imageUrl": "HTTPS://X.IO/a.png"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl with a space in the host",
            json!({"caption": "c", "imageUrl": "https://ex ample.com/"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl port out of range",
            json!({"caption": "c", "imageUrl": "https://x.io:99999/"}),
        )
        .invalid("imageUrl"),
        // The URL parser forgives white space and controls; the stored string would keep them.
        post(
            "imageUrl with a leading space",
            json!({"caption": "c", "imageUrl": " https://x.io/a.png"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl with a trailing space",
            json!({"caption": "c", "imageUrl": "https://x.io/a.png "}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl with a newline",
            json!({"caption": "c", "imageUrl": "https://x.io/a\n.png"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl with a tab",
            json!({"caption": "c", "imageUrl": "https://x.\tio/a.png"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl with NUL",
            json!({"caption": "c", "imageUrl": "https://x.io/a\u{0}.png"}),
        )
        .invalid("imageUrl"),
        post(
            "imageUrl unicode host and path",
            json!({"caption": "c", "imageUrl": "https://例え.jp/画像.png"}),
        )
        .ok(201)
        .check("/imageUrl", json!("https://例え.jp/画像.png")),
        post(
            "imageUrl with an IP host",
            json!({"caption": "c", "imageUrl": "https://127.0.0.1/a.png"}),
        )
        .ok(201),
        // Edits.
        case("edit post: empty object", "PATCH", "/posts/{post}")
            .json(json!({}))
            .invalid("caption"),
        case("edit post: only unknown fields", "PATCH", "/posts/{post}")
            .json(json!({"title": "x"}))
            .invalid("caption"),
        case(
            "edit post: imageUrl null clears it",
            "PATCH",
            "/posts/{post}",
        )
        .json(json!({"imageUrl": null}))
        .check("/imageUrl", Value::Null),
        case("edit post: caption of 2201", "PATCH", "/posts/{post}")
            .json(json!({"caption": "c".repeat(2201)}))
            .invalid("caption"),
        case("edit post: caption empty", "PATCH", "/posts/{post}")
            .json(json!({"caption": ""}))
            .invalid("caption"),
        case("edit post: imageUrl http", "PATCH", "/posts/{post}")
            .json(json!({"imageUrl": "http://x.io"}))
            .invalid("imageUrl"),
    ]
}

/// What the parser makes of odd but well-formed JSON: unknown fields, duplicates, numbers,
/// depth.
pub(super) fn json_oddity_cases() -> Vec<Case> {
    let nested =
        |depth: usize, inner: &str| format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth));
    vec![
        // Unknown fields are ignored, including ones that try to set server-owned fields.
        case("create post: server-owned fields are ignored", "POST", "/posts")
            .json(json!({"caption": "c", "id": "X", "authorId": "someone", "version": 99, "commentCount": 7}))
            .ok(201)
            .check("/version", json!(1))
            .check("/commentCount", json!(0)),
        case("register: unknown fields are ignored", "POST", "/users")
            .anon()
            .json(json!({"email": "{email}", "name": "A", "password": PASSWORD, "admin": true, "id": "X"}))
            .ok(201),
        case("rename: email in the body is ignored", "PATCH", "/users/me")
            .json(json!({"name": "Alice", "email": "evil@example.com"}))
            .check("/name", json!("Alice")),
        // A duplicated key: the last one wins, as in most parsers.
        case("create post: duplicate key, last wins", "POST", "/posts")
            .raw("application/json", r#"{"caption":"first","caption":"second"}"#)
            .ok(201)
            .check("/caption", json!("second")),
        case("create post: duplicate key, last is invalid", "POST", "/posts")
            .raw("application/json", r#"{"caption":"first","caption":""}"#)
            .invalid("caption"),
        // Numbers: finite ones are merely the wrong type; ones no f64 holds are not JSON we read.
        case("create post: caption 1e308", "POST", "/posts")
            .raw("application/json", r#"{"caption":1e308}"#)
            .invalid("caption"),
        case("create post: caption 2^64", "POST", "/posts")
            .raw("application/json", r#"{"caption":18446744073709551616}"#)
            .invalid("caption"),
        case("create post: caption -2^63-1", "POST", "/posts")
            .raw("application/json", r#"{"caption":-9223372036854775809}"#)
            .invalid("caption"),
        case("create post: caption -0", "POST", "/posts")
            .raw("application/json", r#"{"caption":-0}"#)
            .invalid("caption"),
        bad_json("create post: caption 1e400 overflows", "POST", "/posts")
            .raw("application/json", r#"{"caption":1e400}"#),
        bad_json("create post: unknown field -1e400 overflows", "POST", "/posts")
            .raw("application/json", r#"{"caption":"c","n":-1e400}"#),
        bad_json("create post: NaN", "POST", "/posts").raw("application/json", r#"{"caption":NaN}"#),
        bad_json("create post: Infinity", "POST", "/posts").raw("application/json", r#"{"caption":Infinity}"#),
        bad_json("create post: leading zero", "POST", "/posts").raw("application/json", r#"{"caption":"c","n":01}"#),
        bad_json("create post: hex number", "POST", "/posts").raw("application/json", r#"{"caption":"c","n":0x10}"#),
        bad_json("create post: comment in JSON", "POST", "/posts")
            .raw("application/json", r#"{"caption":"c" /* hi */}"#),
        bad_json("create post: unquoted key", "POST", "/posts").raw("application/json", r#"{caption:"c"}"#),
        bad_json("create post: UTF-8 BOM", "POST", "/posts").raw("application/json", "\u{feff}{\"caption\":\"c\"}"),
        // Depth: serde_json stops at 128 levels, so a bomb is a 400, never a stack overflow.
        bad_json("create post: 10k nested arrays", "POST", "/posts").raw("application/json", nested(10_000, "")),
        bad_json("create post: 10k nested objects", "POST", "/posts")
            .raw("application/json", format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000))),
        bad_json("create post: 10k nested arrays in caption", "POST", "/posts")
            .raw("application/json", format!("{{\"caption\":{}}}", nested(10_000, "\"c\""))),
        bad_json("create post: 64k unclosed brackets", "POST", "/posts").raw("application/json", "[".repeat(64 * 1024)),
        bad_json("register: 10k nested arrays", "POST", "/users").anon().raw("application/json", nested(10_000, "")),
        bad_json("comment: 10k nested objects", "POST", "/posts/{post}/comments")
            .raw("application/json", format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000))),
        case("create post: 100 nested arrays in an unknown field", "POST", "/posts")
            .raw("application/json", format!("{{\"caption\":\"c\",\"deep\":{}}}", nested(100, "1")))
            .ok(201),
        case("create post: 100 nested arrays as caption", "POST", "/posts")
            .raw("application/json", format!("{{\"caption\":{}}}", nested(100, "\"c\"")))
            .invalid("caption"),
        case("create post: 5000 unknown keys", "POST", "/posts")
            .raw(
                "application/json",
                format!("{{{}\"caption\":\"c\"}}", (0..5000).map(|i| format!("\"k{i}\":0,")).collect::<String>()),
            )
            .ok(201),
    ]
}

/// Content types, body sizes and base64-encoded bodies.
pub(super) fn transport_cases() -> Vec<Case> {
    let valid = json!({"caption": "typed"}).to_string();
    let typed = |name: &str, content_type: &str| {
        case(
            format!("create post: content type {name}"),
            "POST",
            "/posts",
        )
        .raw(content_type, valid.clone())
    };
    const LIMIT: usize = 64 * 1024;
    let mut cases = vec![
        typed("application/json", "application/json").ok(201),
        typed("with charset", "application/json; charset=utf-8").ok(201),
        typed(
            "with charset, no space, upper case",
            "application/json;charset=UTF-8",
        )
        .ok(201),
        typed("upper case", "APPLICATION/JSON").ok(201),
        typed("vendor +json", "application/vnd.api+json").ok(201),
        typed("merge-patch+json", "application/merge-patch+json").ok(201),
        // No type at all: read as JSON.
        typed("absent", "").ok(201),
        typed("text/plain", "text/plain").err(415, "unsupported_media_type"),
        typed("text/plain with charset", "text/plain; charset=utf-8")
            .err(415, "unsupported_media_type"),
        typed("text/json", "text/json").err(415, "unsupported_media_type"),
        typed("form", "application/x-www-form-urlencoded").err(415, "unsupported_media_type"),
        typed("multipart", "multipart/form-data; boundary=xyz").err(415, "unsupported_media_type"),
        typed("xml", "application/xml").err(415, "unsupported_media_type"),
        typed("octet-stream", "application/octet-stream").err(415, "unsupported_media_type"),
        typed("application/jsonp", "application/jsonp").err(415, "unsupported_media_type"),
        typed("application/json-seq", "application/json-seq").err(415, "unsupported_media_type"),
        typed("wildcard", "*/*").err(415, "unsupported_media_type"),
        typed("application wildcard", "application/*").err(415, "unsupported_media_type"),
        typed("bare json", "json").err(415, "unsupported_media_type"),
        typed("+json outside application", "text/vnd.x+json").err(415, "unsupported_media_type"),
        // An empty header is a type that is not JSON, not a missing one.
        case("create post: content type empty value", "POST", "/posts")
            .header("content-type", "")
            .raw("", valid.clone())
            .err(415, "unsupported_media_type"),
        // Every body route checks the type.
        case("register: text/plain", "POST", "/users")
            .anon()
            .raw("text/plain", "{}")
            .err(415, "unsupported_media_type"),
        case("login: form", "POST", "/auth/login")
            .anon()
            .raw(
                "application/x-www-form-urlencoded",
                "email=a%40x.io&password=x",
            )
            .err(415, "unsupported_media_type"),
        case("rename: text/plain", "PATCH", "/users/me")
            .raw("text/plain", "{\"name\":\"A\"}")
            .err(415, "unsupported_media_type"),
        case("edit post: text/plain", "PATCH", "/posts/{post}")
            .raw("text/plain", "{}")
            .err(415, "unsupported_media_type"),
        case("comment: multipart", "POST", "/posts/{post}/comments")
            .raw("multipart/form-data; boundary=b", "--b\r\n\r\nhi\r\n--b--")
            .err(415, "unsupported_media_type"),
        case(
            "edit comment: text/plain",
            "PATCH",
            "/posts/{post}/comments/{comment}",
        )
        .raw("text/plain", "{}")
        .err(415, "unsupported_media_type"),
        // A non-JSON type with no body: nothing to refuse the type of; the body is missing.
        case("create post: text/plain with no body", "POST", "/posts")
            .raw("text/plain", "")
            .err(400, "invalid_json"),
        // Authentication comes first: no token, no say on the body.
        case("create post: anonymous text/plain", "POST", "/posts")
            .anon()
            .raw("text/plain", "x")
            .err(401, "unauthorized"),
        case("create post: anonymous bad JSON", "POST", "/posts")
            .anon()
            .raw("application/json", "{")
            .err(401, "unauthorized"),
        // Sizes: 64 KiB exactly is fine, one byte more is 413, whatever the type says.
        case("create post: exactly 64 KiB", "POST", "/posts")
            .sized(
                "application/json",
                json!({"caption": "big", "pad": ""}),
                LIMIT,
            )
            .ok(201),
        case("create post: 64 KiB + 1", "POST", "/posts")
            .sized(
                "application/json",
                json!({"caption": "big", "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case("create post: 1 MiB", "POST", "/posts")
            .sized(
                "application/json",
                json!({"caption": "big", "pad": ""}),
                1024 * 1024,
            )
            .err(413, "payload_too_large"),
        case("create post: 64 KiB + 1 of text/plain", "POST", "/posts")
            .sized(
                "text/plain",
                json!({"caption": "big", "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case("create post: 64 KiB + 1 of broken JSON", "POST", "/posts")
            .raw("application/json", "{".repeat(LIMIT + 1))
            .err(413, "payload_too_large"),
        case(
            "create post: exactly 64 KiB base64-encoded",
            "POST",
            "/posts",
        )
        .sized(
            "application/json",
            json!({"caption": "big", "pad": ""}),
            LIMIT,
        )
        .base64()
        .ok(201),
        case("create post: 64 KiB + 1 base64-encoded", "POST", "/posts")
            .sized(
                "application/json",
                json!({"caption": "big", "pad": ""}),
                LIMIT + 1,
            )
            .base64()
            .err(413, "payload_too_large"),
        case("register: 64 KiB + 1", "POST", "/users")
            .anon()
            .sized(
                "application/json",
                json!({"email": "x@example.com", "name": "A", "password": PASSWORD, "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case("login: 64 KiB + 1", "POST", "/auth/login")
            .anon()
            .sized(
                "application/json",
                json!({"email": "x@example.com", "password": PASSWORD, "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case("rename: exactly 64 KiB", "PATCH", "/users/me")
            .sized(
                "application/json",
                json!({"name": "Alice", "pad": ""}),
                LIMIT,
            )
            .ok(200),
        case("rename: 64 KiB + 1", "PATCH", "/users/me")
            .sized(
                "application/json",
                json!({"name": "Alice", "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case("edit post: 64 KiB + 1", "PATCH", "/posts/{post}")
            .sized(
                "application/json",
                json!({"caption": "c", "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case("comment: exactly 64 KiB", "POST", "/posts/{post}/comments")
            .sized("application/json", json!({"text": "t", "pad": ""}), LIMIT)
            .ok(201),
        case("comment: 64 KiB + 1", "POST", "/posts/{post}/comments")
            .sized(
                "application/json",
                json!({"text": "t", "pad": ""}),
                LIMIT + 1,
            )
            .err(413, "payload_too_large"),
        case(
            "edit comment: 64 KiB + 1",
            "PATCH",
            "/posts/{post}/comments/{comment}",
        )
        .sized(
            "application/json",
            json!({"text": "t", "pad": ""}),
            LIMIT + 1,
        )
        .err(413, "payload_too_large"),
        // Base64 bodies (API Gateway encodes binary media types) decode before anything else.
        case("create post: base64 JSON", "POST", "/posts")
            .json(json!({"caption": "sixty-four"}))
            .base64()
            .ok(201)
            .check("/caption", json!("sixty-four")),
        case("register: base64 JSON", "POST", "/users")
            .anon()
            .json(json!({"email": "{email}", "name": "B64", "password": PASSWORD}))
            .base64()
            .ok(201),
        case("create post: base64 of non-JSON", "POST", "/posts")
            .raw("application/json", "not json")
            .base64()
            .err(400, "invalid_json"),
        case("create post: base64 of an array", "POST", "/posts")
            .raw("application/json", "[1]")
            .base64()
            .err(400, "invalid_json"),
        case("create post: base64 of nothing", "POST", "/posts")
            .raw("application/json", "")
            .base64()
            .err(400, "invalid_json"),
        case("create post: base64 with text/plain", "POST", "/posts")
            .raw("text/plain", valid.clone())
            .base64()
            .err(415, "unsupported_media_type"),
        case("create post: base64 of invalid UTF-8", "POST", "/posts")
            .bytes("application/json", vec![0xff, 0xfe, 0x7b, 0x7d])
            .err(400, "invalid_json"),
        case("create post: base64 of Latin-1 JSON", "POST", "/posts")
            .bytes("application/json", b"{\"caption\":\"caf\xe9\"}".to_vec())
            .err(400, "invalid_json"),
        case("create post: base64 of UTF-16 JSON", "POST", "/posts")
            .bytes(
                "application/json",
                "{\"caption\":\"c\"}"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
            )
            .err(400, "invalid_json"),
        case(
            "create post: base64 of JSON with a NUL byte after it",
            "POST",
            "/posts",
        )
        .bytes("application/json", b"{\"caption\":\"c\"}\0".to_vec())
        .err(400, "invalid_json"),
        case("create post: base64 of UTF-8 JSON", "POST", "/posts")
            .bytes(
                "application/json; charset=utf-8",
                "{\"caption\":\"café\"}".as_bytes().to_vec(),
            )
            .ok(201)
            .check("/caption", json!("café")),
        // Routes without a body ignore one, whatever it is.
        case("me: GET with a text/plain body", "GET", "/users/me").raw("text/plain", "hello"),
        case("post: GET with broken JSON", "GET", "/posts/{post}").raw("application/json", "{"),
        case(
            "delete post: with a text/plain body",
            "DELETE",
            "/posts/{fresh}",
        )
        .raw("text/plain", "x")
        .ok(204),
    ];
    cases.push(
        case("logout: with a JSON body", "POST", "/auth/logout")
            .by_b()
            .json(json!({"all": true}))
            .ok(204),
    );
    cases
}

/// Path ids and methods.
pub(super) fn path_cases() -> Vec<Case> {
    let nf = |name: &str, method: &'static str, path: &str| {
        case(name, method, path).err(404, "not_found")
    };
    // A 405 says which methods the path serves (RFC 9110 requires `Allow`).
    let na = |name: &str, method: &'static str, path: &str, allow: &'static str| {
        case(name, method, path)
            .err(405, "method_not_allowed")
            .check_header("allow", allow)
    };
    let (collection, item, post_only) = ("GET, POST", "GET, PATCH, DELETE", "POST");
    let long = "A".repeat(10_000);
    vec![
        // Ids that cannot be ours are not found, before anything is read.
        nf("post: not a ULID", "GET", "/posts/not-a-ulid"),
        nf(
            "post: lower-case ULID of an existing post",
            "GET",
            "/posts/{post_lower}",
        ),
        nf("post: one char too long", "GET", "/posts/{post}0"),
        nf(
            "post: one char short",
            "GET",
            "/posts/0123456789ABCDEFGHJKMNPQR",
        ),
        nf("post: 10k chars", "GET", &format!("/posts/{long}")),
        nf(
            "post: ULID out of range",
            "GET",
            "/posts/80000000000000000000000000",
        ),
        nf(
            "post: all zeros",
            "GET",
            "/posts/00000000000000000000000000",
        ),
        nf("post: valid ULID, no such post", "GET", "/posts/{missing}"),
        nf("post: encoded slash", "GET", "/posts/a%2Fb"),
        nf(
            "post: encoded slash inside a real id",
            "GET",
            "/posts/{post}%2F",
        ),
        nf("post: dot dot", "GET", "/posts/.."),
        nf("post: encoded dot dot", "GET", "/posts/%2e%2e"),
        nf("post: encoded NUL", "GET", "/posts/%00"),
        nf("post: encoded unicode", "GET", "/posts/%C3%BC"),
        nf("post: SQL-ish", "GET", "/posts/1'%20OR%20'1'='1"),
        nf("post: key-ish", "GET", "/posts/POST%23{post}"),
        nf("edit post: not a ULID", "PATCH", "/posts/nope"),
        nf("delete post: not a ULID", "DELETE", "/posts/nope"),
        nf("delete post: no such post", "DELETE", "/posts/{missing}"),
        case(
            "edit post: not a ULID beats a bad body",
            "PATCH",
            "/posts/nope",
        )
        .raw("application/json", "{")
        .err(404, "not_found"),
        case("edit post: no such post", "PATCH", "/posts/{missing}")
            .json(json!({"caption": "c"}))
            .err(404, "not_found"),
        // A well-formed id is only looked up once the body is known to be good.
        case(
            "edit post: no such post, bad body",
            "PATCH",
            "/posts/{missing}",
        )
        .raw("application/json", "{")
        .err(400, "invalid_json"),
        nf("comments: post not a ULID", "GET", "/posts/nope/comments"),
        nf("comments: no such post", "GET", "/posts/{missing}/comments"),
        case("comment: post not a ULID", "POST", "/posts/nope/comments")
            .json(json!({"text": "t"}))
            .err(404, "not_found"),
        case("comment: no such post", "POST", "/posts/{missing}/comments")
            .json(json!({"text": "t"}))
            .err(404, "not_found"),
        case(
            "comment: lower-case post id",
            "POST",
            "/posts/{post_lower}/comments",
        )
        .json(json!({"text": "t"}))
        .err(404, "not_found"),
        nf("comment: not a ULID", "GET", "/posts/{post}/comments/nope"),
        nf(
            "comment: no such comment",
            "GET",
            "/posts/{post}/comments/{missing}",
        ),
        nf(
            "comment: of another post",
            "GET",
            "/posts/{post}/comments/{comment_b}",
        ),
        nf(
            "comment: under a lower-case post id",
            "GET",
            "/posts/{post_lower}/comments/{comment}",
        ),
        nf(
            "comment: post id not a ULID",
            "GET",
            "/posts/nope/comments/{comment}",
        ),
        case(
            "edit comment: not a ULID",
            "PATCH",
            "/posts/{post}/comments/nope",
        )
        .json(json!({"text": "t"}))
        .err(404, "not_found"),
        case(
            "edit comment: of another post",
            "PATCH",
            "/posts/{post}/comments/{comment_b}",
        )
        .json(json!({"text": "t"}))
        .err(404, "not_found"),
        nf(
            "delete comment: not a ULID",
            "DELETE",
            "/posts/{post}/comments/nope",
        ),
        nf(
            "delete comment: no such comment",
            "DELETE",
            "/posts/{post}/comments/{missing}",
        ),
        nf(
            "delete comment: of another post",
            "DELETE",
            "/posts/{post}/comments/{comment_b}",
        ),
        // Empty segments and a trailing slash do not make another resource.
        case("post: trailing slash", "GET", "/posts/{post}/").check("/id", json!("{post}")),
        case("post: doubled slashes", "GET", "//posts//{post}"),
        case("feed: trailing slash", "GET", "/posts/"),
        case("comments: trailing slash", "GET", "/posts/{post}/comments/"),
        case("me: trailing slash", "GET", "/users/me/"),
        // Unknown paths.
        nf("unknown: root", "GET", "/"),
        nf("unknown: nowhere", "GET", "/nowhere"),
        nf("unknown: upper-case POSTS", "GET", "/POSTS"),
        nf("unknown: below me", "GET", "/users/me/extra"),
        nf(
            "unknown: below a comment",
            "GET",
            "/posts/{post}/comments/{comment}/extra",
        ),
        nf(
            "unknown: another collection of a post",
            "GET",
            "/posts/{post}/likes",
        ),
        nf("unknown: dot dot out of posts", "GET", "/posts/../users/me"),
        nf("unknown: auth root", "POST", "/auth"),
        nf("unknown: users by id", "GET", "/users/{post}"),
        // Known paths, wrong methods: 405 before authentication.
        na("feed: PUT", "PUT", "/posts", collection).anon(),
        na("feed: DELETE", "DELETE", "/posts", collection),
        na("post: PUT", "PUT", "/posts/{post}", item),
        na("post: POST", "POST", "/posts/{post}", item).anon(),
        na("post: POST on a bad id", "POST", "/posts/nope", item),
        na("comments: PUT", "PUT", "/posts/{post}/comments", collection),
        na(
            "comments: DELETE",
            "DELETE",
            "/posts/{post}/comments",
            collection,
        ),
        na(
            "comment: POST",
            "POST",
            "/posts/{post}/comments/{comment}",
            item,
        ),
        na(
            "comment: PUT",
            "PUT",
            "/posts/{post}/comments/{comment}",
            item,
        ),
        na("users: GET", "GET", "/users", post_only).anon(),
        na("login: GET", "GET", "/auth/login", post_only).anon(),
        na("logout: GET", "GET", "/auth/logout", post_only),
        na("me: POST", "POST", "/users/me", item),
        na("me: PUT", "PUT", "/users/me", item),
        na("feed: OPTIONS", "OPTIONS", "/posts", collection).anon(),
        na("feed: TRACE", "TRACE", "/posts", collection).anon(),
    ]
}

/// `limit` and `cursor` on both lists.
pub(super) fn query_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (label, base, own, foreign) in [
        ("feed", "/posts", "{feed_cursor}", "{comments_cursor}"),
        (
            "comments",
            "/posts/{post}/comments",
            "{comments_cursor}",
            "{feed_cursor}",
        ),
    ] {
        let at = |name: &str, query: &str| {
            case(format!("{label}: {name}"), "GET", format!("{base}?{query}"))
        };
        for (name, query) in [
            ("limit 0", "limit=0"),
            ("limit 101", "limit=101"),
            ("limit -1", "limit=-1"),
            ("limit 1.5", "limit=1.5"),
            ("limit 10.0", "limit=10.0"),
            ("limit abc", "limit=abc"),
            ("limit empty", "limit="),
            ("limit 1e1", "limit=1e1"),
            ("limit huge", "limit=99999999999999999999999"),
            ("limit 0x10", "limit=0x10"),
            ("limit full-width digits", "limit=%EF%BC%91%EF%BC%90"),
            ("limit then garbage", "limit=abc&limit=5"),
            ("bad limit and bad cursor", "limit=0&cursor=garbage"),
        ] {
            cases.push(at(name, query).invalid("limit"));
        }
        for (name, query) in [
            ("limit 1", "limit=1"),
            ("limit 100", "limit=100"),
            // Still a whole number from 1 to 100, once decoded and trimmed.
            ("limit with leading zero", "limit=010"),
            ("limit with spaces", "limit=%2010%20"),
            ("limit duplicated, first is good", "limit=5&limit=abc"),
            ("cursor empty", "cursor="),
            ("valid cursor", &format!("limit=1&cursor={own}")),
            ("unknown parameters", "foo=bar&limit=2&x"),
        ] {
            cases.push(at(name, query));
        }
        let bad_cursor = |name: &str, cursor: &str| {
            at(name, &format!("cursor={cursor}")).err(400, "invalid_cursor")
        };
        let foreign_name = format!(
            "cursor of the {} list",
            if label == "feed" { "comments" } else { "feed" }
        );
        cases.extend([
            bad_cursor("cursor garbage", "!!!"),
            bad_cursor("cursor short base64", "AAAA"),
            bad_cursor("cursor tampered", "{feed_cursor_tampered}"),
            bad_cursor(&foreign_name, foreign),
            bad_cursor("cursor of 65 chars", &"A".repeat(65)),
            bad_cursor("cursor of 10k chars", &"A".repeat(10_000)),
            bad_cursor("cursor with padding", &format!("{own}=")),
            bad_cursor("cursor with a char more", &format!("{own}A")),
            bad_cursor("cursor encoded NUL", "%00"),
            bad_cursor("cursor JSON", "%7B%22id%22%3A1%7D"),
            bad_cursor("cursor a post id", "{post}"),
        ]);
    }
    cases.push(
        case(
            "comments: cursor of another post",
            "GET",
            "/posts/{post}/comments?cursor={comments_cursor_b}",
        )
        .err(400, "invalid_cursor"),
    );
    cases.push(
        case(
            "comments: bad cursor on a missing post",
            "GET",
            "/posts/{missing}/comments?cursor=!!!",
        )
        .err(400, "invalid_cursor"),
    );
    cases.push(case(
        "post: query parameters are ignored",
        "GET",
        "/posts/{post}?limit=0&cursor=!!!",
    ));
    cases
}

/// `If-Match` on conditional writes, and the token headers.
pub(super) fn header_cases() -> Vec<Case> {
    let edit = |name: &str, if_match: &str| {
        case(
            format!("edit post: If-Match {name}"),
            "PATCH",
            "/posts/{fresh}",
        )
        .header("if-match", if_match)
        .json(json!({"caption": "conditional"}))
    };
    let delete = |name: &str, if_match: &str| {
        case(
            format!("delete post: If-Match {name}"),
            "DELETE",
            "/posts/{fresh}",
        )
        .header("if-match", if_match)
    };
    let pf = (412, "precondition_failed");
    let me = |name: &str| case(format!("me: {name}"), "GET", "/users/me");
    let create_post = |name: &str, key: String| {
        case(format!("create post: {name}"), "POST", "/posts")
            .header("idempotency-key", key)
            .json(json!({"caption": "keyed"}))
    };
    let read = |name: &str, tags: &str| {
        case(
            format!("read post: If-None-Match {name}"),
            "GET",
            "/posts/{fresh}",
        )
        .header("if-none-match", tags)
    };
    vec![
        // A fresh post is at version 1, so its ETag is "1".
        edit("\"1\"", "\"1\"").check("/version", json!(2)),
        edit("with spaces around", "  \"1\"  "),
        edit("*", "*"),
        edit("empty (no precondition)", ""),
        edit("W/\"1\" (weak never matches)", "W/\"1\"").err(pf.0, pf.1),
        edit("1 (unquoted)", "1").err(pf.0, pf.1),
        edit("\"2\"", "\"2\"").err(pf.0, pf.1),
        edit("\"0\"", "\"0\"").err(pf.0, pf.1),
        edit("\"-1\"", "\"-1\"").err(pf.0, pf.1),
        edit("\"abc\"", "\"abc\"").err(pf.0, pf.1),
        edit("\"\" (empty tag)", "\"\"").err(pf.0, pf.1),
        // Entity tags compare as strings: "01" and "+1" are not "1".
        edit("\"01\"", "\"01\"").err(pf.0, pf.1),
        edit("\"+1\"", "\"+1\"").err(pf.0, pf.1),
        edit("\" 1\"", "\" 1\"").err(pf.0, pf.1),
        edit("2^64", "\"18446744073709551616\"").err(pf.0, pf.1),
        edit("unterminated quote", "\"1").err(pf.0, pf.1),
        // A list is not the one version the contract asks for: refused, never guessed.
        edit("list \"1\", \"2\"", "\"1\", \"2\"").err(pf.0, pf.1),
        edit("list \"2\", \"1\"", "\"2\", \"1\"").err(pf.0, pf.1),
        edit("list *, \"1\"", "*, \"1\"").err(pf.0, pf.1),
        edit("non-ASCII", "\"1é\"").err(pf.0, pf.1),
        // Authorship and existence come before the precondition.
        case("edit post: If-Match \"2\" by another user", "PATCH", "/posts/{fresh}")
            .by_b()
            .header("if-match", "\"2\"")
            .json(json!({"caption": "mine"}))
            .err(403, "forbidden"),
        case("edit post: If-Match \"1\" on no such post", "PATCH", "/posts/{missing}")
            .header("if-match", "\"1\"")
            .json(json!({"caption": "c"}))
            .err(404, "not_found"),
        case("edit post: If-Match \"2\" with a bad body", "PATCH", "/posts/{fresh}")
            .header("if-match", "\"2\"")
            .json(json!({"caption": ""}))
            .invalid("caption"),
        delete("\"1\"", "\"1\"").ok(204),
        delete("*", "*").ok(204),
        delete("\"2\"", "\"2\"").err(pf.0, pf.1),
        delete("W/\"1\"", "W/\"1\"").err(pf.0, pf.1),
        delete("garbage", "garbage").err(pf.0, pf.1),
        case("delete post: If-Match \"9\" by another user", "DELETE", "/posts/{fresh}")
            .by_b()
            .header("if-match", "\"9\"")
            .err(403, "forbidden"),
        case("delete post: If-Match \"1\" on no such post", "DELETE", "/posts/{missing}")
            .header("if-match", "\"1\"")
            .err(404, "not_found"),
        // Comments have no version: If-Match does not apply to them.
        case("edit comment: If-Match is ignored", "PATCH", "/posts/{post}/comments/{fresh_comment}")
            .header("if-match", "\"999\"")
            .json(json!({"text": "t"})),
        // Tokens.
        me("no token").anon().err(401, "unauthorized"),
        me("Bearer").header("authorization", "Bearer {token}"),
        me("lower-case bearer").header("authorization", "bearer {token}"),
        me("upper-case BEARER").header("authorization", "BEARER {token}"),
        me("Bearer and two spaces").header("authorization", "Bearer  {token}"),
        me("aid").header("aid", "{token}"),
        me("aid and Bearer, the same token").header("aid", "{token}").header("authorization", "Bearer {token}"),
        // An empty `aid` carries no token, so it does not disagree with the Bearer one.
        me("empty aid and Bearer").header("aid", "").header("authorization", "Bearer {token}"),
        me("aid and Bearer, different tokens")
            .header("aid", "{token}")
            .header("authorization", "Bearer {token_b}")
            .err(401, "unauthorized"),
        me("Basic scheme").header("authorization", "Basic {token}").err(401, "unauthorized"),
        me("Bearer without a token").header("authorization", "Bearer").err(401, "unauthorized"),
        me("Bearer and a space").header("authorization", "Bearer ").err(401, "unauthorized"),
        me("token without a scheme").header("authorization", "{token}").err(401, "unauthorized"),
        me("Bearer with a tab").header("authorization", "Bearer\t{token}").err(401, "unauthorized"),
        me("aid with a scheme").header("aid", "Bearer {token}").err(401, "unauthorized"),
        me("token with a char more").header("authorization", "Bearer {token}x").err(401, "unauthorized"),
        me("token with a dot more").header("authorization", "Bearer {token}.").err(401, "unauthorized"),
        me("three dots").header("authorization", "Bearer a.b.c").err(401, "unauthorized"),
        me("10 KB of junk").header("aid", "x".repeat(10_000)).err(401, "unauthorized"),
        // API Gateway joins a repeated header with commas.
        me("two Bearer headers joined")
            .header("authorization", "Bearer {token},Bearer {token}")
            .err(401, "unauthorized"),
        me("two aid headers joined").header("aid", "{token}, {token}").err(401, "unauthorized"),
        me("non-ASCII aid").header("aid", "tøken").err(401, "unauthorized"),
        me("empty aid only").header("aid", "").err(401, "unauthorized"),
        // Token errors come before everything a route does.
        case("edit post: bad token beats a bad body", "PATCH", "/posts/nope")
            .header("authorization", "Bearer nope")
            .raw("text/plain", "{")
            .err(401, "unauthorized"),
        case("feed: bad token beats a bad limit", "GET", "/posts?limit=0")
            .header("aid", "nope")
            .err(401, "unauthorized"),
        // Another scheme beside `aid` (a proxy's Basic, a SigV4 signature) is not a token of ours.
        me("aid and a proxy's Basic authorization").header("aid", "{token}").header("authorization", "Basic dXNlcjpwYXNz"),
        me("aid and a SigV4 authorization")
            .header("aid", "{token}")
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20261202/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=0a"),
        // Idempotency-Key: 1 to 255 printable ASCII characters.
        create_post("Idempotency-Key of 255 characters", "k".repeat(255)).ok(201),
        create_post("Idempotency-Key of 256 characters", "k".repeat(256)).invalid("Idempotency-Key"),
        create_post("empty Idempotency-Key", String::new()).invalid("Idempotency-Key"),
        create_post("Idempotency-Key with a tab", "a\tb".into()).invalid("Idempotency-Key"),
        create_post("Idempotency-Key not ASCII", "cl\u{e9}".into()).invalid("Idempotency-Key"),
        // If-None-Match on a post: 304 with the current ETag (weak or strong, or *), else the post.
        read("\"1\"", "\"1\"").ok(304).check_header("etag", "\"1\""),
        read("W/\"1\"", "W/\"1\"").ok(304),
        read("*", "*").ok(304),
        read("a list naming 1", "\"7\", \"1\"").ok(304),
        read("\"2\"", "\"2\"").ok(200).check("/version", json!(1)),
        read("1 (unquoted)", "1").ok(200),
        read("empty", "").ok(200),
    ]
}
