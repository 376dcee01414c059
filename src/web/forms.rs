//! POST bodies: form fields (urlencoded or multipart, where a `file` field streams into the
//! grid as it arrives), or a raw body (the JSON of `set_children` and the mkdirs).

use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;

use crate::grid::uri::{Cap, MutableCap};
use crate::web::WebState;
use crate::web::args::Args;
use crate::web::body::read_limited;
use crate::web::errors::WebError;
use crate::web::upload;

/// The largest raw or urlencoded body read whole (children JSON, caps, form fields).
pub const MAX_SMALL_BODY: usize = 16 << 20;
/// The largest text field of a multipart form.
const MAX_FIELD: usize = 1 << 20;

/// Where a form's `file` field goes.
#[derive(Debug, Clone)]
pub enum FileTarget {
    /// A new file, in the format the form's fields (read before it) ask for.
    New,
    /// The contents of this mutable file, replaced.
    Replace(MutableCap),
}

/// A file sent in a form: its stored cap and the name its part gave.
#[derive(Debug)]
pub struct PostedFile {
    /// The cap it was stored under.
    pub cap: Cap,
    /// The part's `filename`.
    pub filename: Option<String>,
}

/// What a POST carried.
#[derive(Debug)]
pub struct Posted {
    /// Query arguments, then form fields.
    pub args: Args,
    /// The form's `file` field, stored.
    pub file: Option<PostedFile>,
    /// A body that was not a form.
    pub raw: Bytes,
}

/// Reads a POST: form fields join `args` (the query wins); a `file` field is stored per `target`.
pub async fn read_post(
    state: &WebState,
    request: Request<Incoming>,
    mut args: Args,
    target: FileTarget,
) -> Result<Posted, WebError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = request.into_body();
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/x-www-form-urlencoded" {
        let bytes = read_limited(body, MAX_SMALL_BODY).await?;
        args.add_urlencoded(&bytes);
        return Ok(Posted {
            args,
            file: None,
            raw: Bytes::new(),
        });
    }
    if essence != "multipart/form-data" {
        let raw = read_limited(body, MAX_SMALL_BODY).await?;
        return Ok(Posted { args, file: None, raw });
    }
    let boundary =
        multer::parse_boundary(&content_type).map_err(|e| WebError::bad_request(format!("bad multipart form: {e}")))?;
    let mut form = multer::Multipart::new(upload::body_chunks(body), boundary);
    let mut file = None;
    let mut raw = Bytes::new();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| WebError::bad_request(format!("bad multipart form: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let filename = field.file_name().map(str::to_string);
            let cap = match &target {
                FileTarget::New => upload::store_new(state, Box::pin(field), args.format()?).await?,
                FileTarget::Replace(mutable) => {
                    upload::write_mutable(state, Box::pin(field), mutable, None).await?;
                    Cap::Mutable(mutable.clone())
                }
            };
            file = Some(PostedFile { cap, filename });
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| WebError::bad_request(format!("bad multipart form: {e}")))?
        {
            if value.len() + chunk.len() > MAX_FIELD {
                return Err(WebError::bad_request(format!(
                    "form field {name} is over {MAX_FIELD} bytes"
                )));
            }
            value.extend_from_slice(&chunk);
        }
        // Tahoe's mkdir-with-children reads a body even when it comes as a form.
        if name.is_empty() {
            raw = Bytes::from(value);
            continue;
        }
        args.add_field(&name, String::from_utf8_lossy(&value).into_owned());
    }
    Ok(Posted { args, file, raw })
}
