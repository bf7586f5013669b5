//! What an incident shows: its events' snapshots and clips, from the files the store keeps.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState, Routes, User};

pub(super) fn routes(r: Routes) -> Routes {
    r.api("/api/snapshots/{agent}/{event_id}", get(snapshot))
        .api("/api/clips/{agent}/{event_id}", get(clip))
}

async fn snapshot(
    State(st): State<AppState>,
    _user: User,
    Path((agent, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let snap = st
        .read(move |s| s.snapshot(&agent, &event_id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no snapshot for that event".into()))?;
    let bytes = tokio::fs::read(&snap.path)
        .await
        .map_err(|e| ApiError::NotFound(format!("snapshot file gone ({e}); retention?")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (
                header::CACHE_CONTROL,
                "private, max-age=86400, immutable".to_owned(),
            ),
            (header::ETAG, format!("\"{}\"", snap.sha256)),
        ],
        bytes,
    )
        .into_response())
}

/// An event's MP4 clip. Browsers fetch video in ranges (to start playing, to seek): a
/// `Range: bytes=a-b` request gets `206 Partial Content` with that slice. The file is
/// streamed from disk in small chunks, never read whole: many small range requests on a
/// large clip cost file reads, not memory.
async fn clip(
    State(st): State<AppState>,
    _user: User,
    Path((agent, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let clip = st
        .read(move |s| s.clip(&agent, &event_id))
        .await?
        .ok_or_else(|| ApiError::NotFound("no clip for that event (yet)".into()))?;
    let gone = |e: std::io::Error| ApiError::NotFound(format!("clip file gone ({e}); retention?"));
    let mut file = tokio::fs::File::open(&clip.path).await.map_err(gone)?;
    let len = file.metadata().await.map_err(gone)?.len();
    let common = [
        (header::CONTENT_TYPE, "video/mp4".to_owned()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        (
            header::CACHE_CONTROL,
            "private, max-age=86400, immutable".to_owned(),
        ),
        (header::ETAG, format!("\"{}\"", clip.sha256)),
    ];
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len));
    match range {
        None => Ok((
            common,
            [(header::CONTENT_LENGTH, len.to_string())],
            file_body(file, len),
        )
            .into_response()),
        Some(Some((start, end))) => {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(gone)?;
            let n = end - start + 1;
            Ok((
                StatusCode::PARTIAL_CONTENT,
                common,
                [
                    (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")),
                    (header::CONTENT_LENGTH, n.to_string()),
                ],
                file_body(file, n),
            )
                .into_response())
        }
        Some(None) => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response()),
    }
}

/// The next `len` bytes of `file` as a response body, read 64 KiB at a time as the client
/// takes them.
fn file_body(file: tokio::fs::File, len: u64) -> axum::body::Body {
    use tokio::io::AsyncReadExt;
    const CHUNK: u64 = 64 * 1024;
    let chunks = futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(CHUNK) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "clip file shrank while being served",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    axum::body::Body::from_stream(chunks)
}

/// One range of `Range: bytes=…` over `len` bytes, inclusive (`a-b`, `a-`, `-n`); `None`
/// when it cannot be served. Several ranges get the first one only (allowed by RFC 9110).
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return None;
    }
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_served_as_browsers_ask() {
        assert_eq!(parse_range("bytes=0-", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 19)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=5-9, 20-29", 100), Some((5, 9)));
        for bad in [
            "bytes=100-",
            "bytes=20-10",
            "bytes=-0",
            "items=0-1",
            "bytes=x-1",
            "bytes=",
        ] {
            assert_eq!(parse_range(bad, 100), None, "{bad}");
        }
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
