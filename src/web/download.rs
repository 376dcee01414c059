//! File bodies out of the grid: `GET /uri/$FILECAP`, through a directory path, or
//! `/file/$CAP/@@named=/name` and `/named/$CAP/name`, with Tahoe's content types, single
//! `Range`s, `filename=`/`save=`, ETags and HEAD. Immutable files stream a piece at a time.

use bytes::BytesMut;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::frontends::file_reader::FileContents;
use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::activity::OpKind;
use crate::web::args::Args;
use crate::web::body::{WebBody, full, respond, streamed};
use crate::web::errors::WebError;

/// Bytes read from the grid per piece sent.
const PIECE: u64 = 256 * 1024;

/// `/file/$CAP[/@@named=/a/b.txt]` and `/named/$CAP[/name]`.
pub async fn named(
    state: &WebState,
    request: Request<Incoming>,
    segments: &[String],
    args: &Args,
) -> Result<Response<WebBody>, WebError> {
    let Some(text) = segments.first() else {
        return Err(crate::web::routes::no_such_resource());
    };
    let cap = Cap::parse(text).map_err(|_| WebError::page(StatusCode::BAD_REQUEST, "not a file-cap"))?;
    if matches!(cap, Cap::Directory(_) | Cap::Unknown(_)) {
        return Err(WebError::page(StatusCode::BAD_REQUEST, "that is not a file-cap"));
    }
    let name = segments[1..]
        .iter()
        .rev()
        .find(|s| !s.is_empty() && *s != "@@named=")
        .cloned();
    let head = request.method() == Method::HEAD;
    file(
        state,
        &cap,
        name.as_deref().unwrap_or(""),
        args,
        request.headers(),
        head,
    )
    .await
}

/// The contents of the file `cap`; `name` (the last path segment) picks the content type.
pub async fn file(
    state: &WebState,
    cap: &Cap,
    name: &str,
    args: &Args,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<WebBody>, WebError> {
    if let Some(si) = cap.storage_index() {
        state.grid.check_allowed(si)?;
    }
    let name = args.get("filename").unwrap_or(name);
    let etag = match cap {
        Cap::Chk(chk) => Some(format!("{}-", chk.storage_index())),
        _ => None,
    };
    if let (Some(etag), Some(wanted)) = (&etag, headers.get(hyper::header::IF_NONE_MATCH))
        && wanted.as_bytes() == etag.as_bytes()
    {
        let mut response = respond(StatusCode::NOT_MODIFIED, "text/plain", full(""));
        response.headers_mut().remove(hyper::header::CONTENT_TYPE);
        return Ok(response);
    }
    let source = match cap {
        Cap::Mutable(m) => {
            let running = state
                .activity
                .begin(OpKind::Retrieve, Some(m.storage_index().to_string()), None);
            let data = state.grid.read_mutable(m).await?;
            running.finish(true, None, Some(data.len() as u64));
            state.activity.count("mutable.files_retrieved", 1);
            state.activity.count("mutable.bytes_retrieved", data.len() as u64);
            Source::Whole(data)
        }
        Cap::Chk(_) | Cap::Literal(_) => Source::Stream(FileContents::open(&state.grid, cap).await?),
        _ => return Err(unknown_cap_get()),
    };
    let size = source.size();
    let (status, start, end) = match range(headers, size)? {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
        None => (StatusCode::OK, 0, size),
    };
    let mut response = if head {
        respond(status, "", full(""))
    } else {
        let body = match source {
            Source::Whole(data) => full(data[start as usize..end as usize].to_vec()),
            Source::Stream(contents) => stream_out(state, contents, cap, start, end),
        };
        respond(status, "", body)
    };
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        headers.insert(CONTENT_RANGE, value);
    }
    if let (Some(etag), false) = (&etag, head)
        && let Ok(value) = HeaderValue::from_str(etag)
    {
        headers.insert(ETAG, value);
    }
    if args.boolean("save", false)? {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{quoted}\"")) {
            headers.insert(CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// Tahoe's 400 for a GET of a cap it cannot read.
pub fn unknown_cap_get() -> WebError {
    WebError::bad_request(
        "GET unknown URI type: can only do t=info and t=json, not t=.\nUsing a webapi server that supports a later version of Tahoe may help.",
    )
}

enum Source {
    Whole(Vec<u8>),
    Stream(FileContents),
}

impl Source {
    fn size(&self) -> u64 {
        match self {
            Source::Whole(data) => data.len() as u64,
            Source::Stream(contents) => contents.size(),
        }
    }
}

/// Sends bytes `start..end` of `contents` a piece at a time from a task: a slow client holds
/// at most a couple of pieces and the reader's read-ahead.
fn stream_out(state: &WebState, mut contents: FileContents, cap: &Cap, start: u64, end: u64) -> WebBody {
    let (sender, body) = streamed();
    let running = state.activity.begin(
        OpKind::Download,
        cap.storage_index().map(|si| si.to_string()),
        Some(end - start),
    );
    let activity = state.activity.clone();
    tokio::spawn(async move {
        let mut offset = start;
        let mut failed = false;
        while offset < end {
            let mut piece = BytesMut::new();
            let want = PIECE.min(end - offset);
            match contents.read_into(offset, want, &mut piece).await {
                Ok(0) => break,
                Ok(n) => {
                    offset += n as u64;
                    if sender.send(Ok(piece.freeze())).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!("download failed: {e}");
                    failed = true;
                    // The connection is cut: the client sees a short body, never a wrong one.
                    let _ = sender.send(Err(std::io::Error::other(e.to_string()))).await;
                    break;
                }
            }
        }
        let sent = offset - start;
        running.finish(!failed && offset >= end, None, Some(sent));
        activity.count("downloader.files_downloaded", 1);
        activity.count("downloader.bytes_downloaded", sent);
    });
    body
}

/// A single `bytes=` range of a file of `size` bytes, as `start..end`; `None` for none or an
/// ignored one; 416 when it starts past the end.
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, WebError> {
    let Some(value) = headers.get(hyper::header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((from, to)) = first.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (from.parse::<u64>().ok(), to.parse::<u64>().ok()) {
        (None, Some(suffix)) if from.is_empty() => (size.saturating_sub(suffix), size),
        (Some(start), None) if to.is_empty() => (start, size),
        (Some(start), Some(last)) if last >= start => (start, last.saturating_add(1).min(size)),
        _ => return Ok(None),
    };
    if start >= size {
        return Err(WebError::text(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "First beyond end of file",
        ));
    }
    Ok(Some((start, end)))
}

/// The content type Tahoe guesses from a name's extension (default `text/plain`).
pub fn content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "bin" | "exe" | "dat" => "application/octet-stream",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "xml" => "text/xml",
        _ => "text/plain",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_tahoes_table() {
        let with = |r: &str| {
            let mut h = HeaderMap::new();
            h.insert(hyper::header::RANGE, HeaderValue::from_str(r).unwrap());
            range(&h, 6756)
        };
        assert_eq!(with("bytes=0-9").unwrap(), Some((0, 10)));
        assert_eq!(with("bytes=-10").unwrap(), Some((6746, 6756)));
        assert_eq!(with("bytes=6750-").unwrap(), Some((6750, 6756)));
        assert_eq!(with("bytes=6700-9999").unwrap(), Some((6700, 6756)));
        assert_eq!(
            with("bytes=7000-7010").unwrap_err().status,
            StatusCode::RANGE_NOT_SATISFIABLE
        );
        assert_eq!(with("bytes=0-4,10-14").unwrap(), Some((0, 5)));
        assert_eq!(with("bytes=10-5").unwrap(), None);
        assert_eq!(with("items=0-5").unwrap(), None);
    }
}
