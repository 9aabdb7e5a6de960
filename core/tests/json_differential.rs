//! Differential test: reauth-core's one-pass JSON scanner against serde_json, a full JSON
//! parser, on generated token responses, error responses and body-code documents (valid and
//! damaged). Both must agree on which documents are usable and on the values read from them.
//!
//! The generator stays inside what the two are meant to agree on: keys, `token_type`, `error`
//! and `expires_in` strings carry no escapes (reauth-core compares those as written, serde_json
//! decodes them first), and nesting stays far below both depth limits.

use core::fmt::Write as _;

use proptest::prelude::*;
use reauth_core::expiry::BodyCode;
use reauth_core::oauth::{ErrorCode, parse_error_response, parse_token_response};
use reauth_core::{Duration, Generation, TokenSet};
use serde::de::{MapAccess, Visitor};
use serde_json::Value;

/// What a usable token response yields: access token, new refresh token, `expires_in`.
type Usable = (String, Option<String>, Option<Duration>);

/// reauth-core: parse, then apply into 64-byte buffers.
fn ours(body: &[u8]) -> Option<Usable> {
    let response = parse_token_response(body).ok()?;
    let mut set = TokenSet::<64, 64>::new();
    set.install(Generation(1), "old-access", Some("old-refresh")).ok()?;
    response.apply(&mut set, Generation(2)).ok()?;
    let refresh = response.has_refresh_token().then(|| set.refresh().unwrap_or_default().into());
    Some((set.access()?.into(), refresh, response.expires_in()))
}

/// The top-level members of a JSON object, duplicates kept, as serde_json reads them.
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members, M::Error> {
                let mut all = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    all.push(member);
                }
                Ok(Members(all))
            }
        }
        d.deserialize_map(V)
    }
}

fn reference_members(body: &[u8]) -> Option<Vec<(String, Value)>> {
    let text = core::str::from_utf8(body).ok()?;
    serde_json::from_str::<Members>(text).ok().map(|m| m.0)
}

/// The one value of a known field: `Err` if it appears twice.
fn field<'m>(members: &'m [(String, Value)], name: &str) -> Result<Option<&'m Value>, ()> {
    let mut found = members.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = found.next();
    if found.next().is_some() { Err(()) } else { Ok(first) }
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

/// The reference: RFC 6749 §5.1 read with serde_json, with reauth-core's documented rules.
fn reference(body: &[u8]) -> Option<Usable> {
    let members = reference_members(body)?;
    let text = |name| match field(&members, name) {
        Ok(Some(Value::String(s))) => Some(s.clone()),
        _ => None,
    };
    let access = text("access_token").filter(|t| is_token(t))?;
    if !text("token_type")?.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let refresh = match field(&members, "refresh_token").ok()? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_token(s) => Some(s.clone()),
        Some(_) => return None,
    };
    let expires = match field(&members, "expires_in").ok()? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().filter(|_| !n.to_string().starts_with('-'))?),
        Some(Value::String(s)) => {
            let s = s.trim_ascii();
            Some(s.parse::<u64>().ok().filter(|_| !s.starts_with('-'))?)
        }
        Some(_) => return None,
    };
    Some((access, refresh, expires.map(Duration::from_secs)))
}

fn reference_error(body: &[u8]) -> Option<String> {
    match field(&reference_members(body)?, "error") {
        Ok(Some(Value::String(s))) => Some(s.clone()),
        _ => None,
    }
}

fn reference_code(body: &[u8]) -> bool {
    let Some(members) = reference_members(body) else { return false };
    let first = members.iter().find(|(k, _)| k == "code").map(|(_, v)| v);
    first.and_then(Value::as_i64) == Some(409)
}

/// Any JSON value for an unknown field, as text, some of it not quite JSON.
fn any_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        8 => Just("null".to_owned()),
        8 => Just("true".to_owned()),
        8 => Just("false".to_owned()),
        8 => number(),
        8 => string(),
        1 => Just("tru".to_owned()),
        1 => Just("01".to_owned()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-0".to_owned()),
        Just("3600.0".to_owned()),
        Just("36e2".to_owned()),
        Just("1E+2".to_owned()),
        Just("-1.5e-3".to_owned()),
        Just("1.".to_owned()),
        Just(".5".to_owned()),
        Just("409".to_owned()),
    ]
}

/// A JSON string with escapes, surrogate pairs, lone surrogates and non-ASCII text.
fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        40 => "[a-zA-Z0-9._~+/=-]{1,6}",
        1 => Just(r"\/".to_owned()),
        1 => Just(r#"\""#.to_owned()),
        1 => Just(r"\\".to_owned()),
        1 => Just(r"\n".to_owned()),
        1 => Just(r"\u0041".to_owned()),
        1 => Just(r"\u00e9".to_owned()),
        1 => Just(r"\ud834\udd1e".to_owned()),
        1 => Just(r"\ud834".to_owned()),
        1 => Just(r"\q".to_owned()),
        1 => Just("é€".to_owned()),
        1 => Just(" ".to_owned()),
    ];
    prop::collection::vec(piece, 0..5).prop_map(|p| format!("\"{}\"", p.concat()))
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(&["access_token", "token_type"][..])
            .prop_map(|k| format!("\"{k}\"")),
        6 => prop::sample::select(&[
            "expires_in", "refresh_token", "scope", "error", "code", "id_token",
        ][..]).prop_map(|k| format!("\"{k}\"")),
        3 => "[a-z_]{0,8}".prop_map(|k| format!("\"{k}\"")),
    ]
}

/// A value for a known key: mostly the right shape, sometimes not.
fn value_for(key: &str) -> BoxedStrategy<String> {
    let plain = |v: &'static [&'static str]| {
        prop::sample::select(v).prop_map(|s| format!("\"{s}\"")).boxed()
    };
    match key {
        "\"token_type\"" => prop_oneof![
            8 => plain(&["Bearer", "bearer", "BEARER", "Bearer", "mac", "Bearer ", ""]),
            1 => any_value(),
        ]
        .boxed(),
        "\"error\"" => prop_oneof![
            4 => plain(&["invalid_grant", "invalid_client", "temporarily_unavailable", ""]),
            1 => any_value(),
        ]
        .boxed(),
        "\"expires_in\"" => prop_oneof![
            3 => number(),
            2 => "[ +0-9a-z-]{0,6}".prop_map(|s| format!("\"{s}\"")),
            1 => any_value(),
        ]
        .boxed(),
        "\"code\"" => prop_oneof![3 => number(), 1 => any_value()].boxed(),
        _ => prop_oneof![8 => string(), 1 => any_value()].boxed(),
    }
}

/// A whole document: members in any order (duplicates possible), with whitespace, then
/// perhaps damaged by a cut, an inserted byte or trailing text.
fn document() -> impl Strategy<Value = Vec<u8>> {
    let member = key().prop_flat_map(|k| {
        let v = value_for(&k);
        (Just(k), v, prop::sample::select(&["", " ", "\n\t", "\r\n  "][..]))
    });
    let required = (value_for("\"access_token\""), value_for("\"token_type\""));
    (
        required,
        prop::collection::vec(member, 0..6),
        any::<prop::sample::Index>(),
        0u8..8,
        any::<u8>(),
    )
        .prop_map(|((access, token_type), members, at, damage, byte)| {
            let mut all = vec![
                ("\"access_token\"".to_owned(), access, ""),
                ("\"token_type\"".to_owned(), token_type, " "),
            ];
            all.extend(members);
            let mut body = String::from(" {");
            for (i, (k, v, ws)) in all.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                let _ = write!(body, "{ws}{k}{ws}:{ws}{v}{ws}");
            }
            body.push('}');
            let mut body = body.into_bytes();
            match damage {
                0 => body.truncate(at.index(body.len() + 1)),
                1 => body.insert(at.index(body.len() + 1), byte),
                2 => body.extend_from_slice(b" x"),
                _ => {}
            }
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn token_responses_agree_with_serde_json(body in document()) {
        prop_assert_eq!(ours(&body), reference(&body), "{}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn error_responses_agree_with_serde_json(body in document()) {
        let expected = reference_error(&body).map(|code| match code.as_str() {
            "invalid_grant" => ErrorCode::InvalidGrant,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_request" => ErrorCode::InvalidRequest,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            _ => ErrorCode::Other,
        });
        prop_assert_eq!(parse_error_response(&body), expected, "{}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn body_codes_agree_with_serde_json(body in document()) {
        let rule = BodyCode { field: "code", values: &[409] };
        prop_assert_eq!(rule.matches(&body), reference_code(&body), "{}", String::from_utf8_lossy(&body));
    }
}
