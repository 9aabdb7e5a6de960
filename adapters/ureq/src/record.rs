//! The stored record as JSON, shared by [`FileStore`](crate::FileStore) and the Redis store:
//! format 2 carries the record's version; format 1 (files written before there were versions)
//! had none and reads as version 1.
//!
//! The encoding is compact and its fields come in a fixed order, `{"version":2,
//! "record_version":N,...`: the Redis store's scripts read the version from that head.

use core::time::Duration;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::{StoreError, StoredTokens, unix_ms};

#[derive(Serialize)]
struct RecordOut<'a> {
    version: u32,
    record_version: u64,
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_unix_ms: Option<u64>,
}

#[derive(Deserialize)]
struct RecordIn {
    version: u32,
    record_version: Option<u64>,
    refresh_token: String,
    access_token: Option<String>,
    expires_at_unix_ms: Option<u64>,
}

/// `tokens` as format 2, in a string wiped on drop.
pub(crate) fn encode(tokens: &StoredTokens) -> Result<Zeroizing<String>, StoreError> {
    let out = RecordOut {
        version: 2,
        record_version: tokens.version,
        refresh_token: &tokens.refresh_token,
        access_token: tokens.access_token.as_deref().map(String::as_str),
        expires_at_unix_ms: tokens.expires_at.map(unix_ms),
    };
    // Serializing strings and integers cannot fail; the message would not quote a token anyway.
    serde_json::to_string(&out).map(Zeroizing::new).map_err(|e| StoreError::Other(e.to_string()))
}

/// The record in `raw`, or the line and column of the first problem (serde_json's messages may
/// quote the offending value, which could be a token: only the position is kept).
pub(crate) fn decode(raw: &[u8]) -> Result<StoredTokens, (usize, usize)> {
    let parsed: RecordIn = serde_json::from_slice(raw).map_err(|e| (e.line(), e.column()))?;
    let RecordIn { version, record_version, refresh_token, access_token, expires_at_unix_ms } =
        parsed;
    let refresh_token = Zeroizing::new(refresh_token);
    let access_token = access_token.map(Zeroizing::new);
    let version = match (version, record_version) {
        (1, None) => 1,
        (2, Some(v)) if v > 0 => v,
        _ => return Err((1, 1)),
    };
    let expires_at = expires_at_unix_ms
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
    Ok(StoredTokens { version, refresh_token, access_token, expires_at })
}
