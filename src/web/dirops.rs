//! Making directories (mutable, with children, immutable) and reading Tahoe's children JSON
//! (`{"name": ["filenode", {"rw_uri": …, "ro_uri": …, "metadata": {…}}]}`).

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::{Map, Value};

use crate::grid::dirnode::{self, Child};
use crate::grid::uri::{Cap, MutableFormat};
use crate::web::WebState;
use crate::web::args::{Format, Replace};
use crate::web::errors::WebError;
use crate::web::walk;

/// One child from a children JSON body: name, cap, and its user metadata if given.
pub type NewChild = (String, Cap, Option<Map<String, Value>>);

/// Parses a children JSON body (an empty body is no children, as Tahoe accepts).
pub fn parse_children(body: &[u8]) -> Result<Vec<NewChild>, WebError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let doc: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| WebError::internal(format!("json.decoder.JSONDecodeError: {e}")))?;
    let mut children = Vec::with_capacity(doc.len());
    for (name, entry) in doc {
        let info = entry
            .as_array()
            .and_then(|pair| pair.get(1))
            .and_then(Value::as_object)
            .ok_or_else(|| WebError::bad_request(format!("the entry for '{name}' is not [type, {{...}}]")))?;
        let text = info
            .get("rw_uri")
            .and_then(Value::as_str)
            .or_else(|| info.get("ro_uri").and_then(Value::as_str))
            .ok_or_else(|| WebError::bad_request(format!("the entry for '{name}' has no rw_uri or ro_uri")))?;
        let cap = Cap::parse(text).unwrap_or_else(|_| Cap::Unknown(text.to_string()));
        let metadata = info.get("metadata").and_then(Value::as_object).cloned();
        children.push((dirnode::normalize_name(&name), cap, metadata));
    }
    Ok(children)
}

/// The mutable format of a new directory (`format=CHK` is refused, as Tahoe does).
pub fn directory_format(format: Option<Format>, what: &str) -> Result<MutableFormat, WebError> {
    match format {
        None => Ok(MutableFormat::Sdmf),
        Some(Format::Mutable(f)) => Ok(f),
        Some(Format::Chk) => Err(WebError::bad_request(format!(
            "format=CHK not currently accepted for {what}"
        ))),
    }
}

/// A new mutable directory holding `children`.
pub async fn new_directory(state: &WebState, format: MutableFormat, children: Vec<NewChild>) -> Result<Cap, WebError> {
    let dir = walk::new_directory(&state.grid, format).await?;
    if !children.is_empty() {
        walk::link_many(&state.grid, &dir, children, Replace::Always).await?;
    }
    Ok(dir)
}

/// A new immutable directory (`URI:DIR2-CHK:`, or `URI:DIR2-LIT:` when small) holding
/// `children`, whose metadata is stored as given; every child must be immutable.
pub async fn new_immutable_directory(state: &WebState, children: Vec<NewChild>) -> Result<Cap, WebError> {
    let mut packed = BTreeMap::new();
    for (name, cap, metadata) in children {
        if !cap.is_immutable() {
            return Err(WebError::bad_request(format!(
                "MustBeDeepImmutableError: a cap passed to this operation for the child named '{name}', needed to be immutable but was not. Either the cap is being added to an immutable directory, or it was originally retrieved from an immutable directory as an unknown cap."
            )));
        }
        packed.insert(
            name,
            Child {
                write_cap: None,
                read_cap: Some(cap.to_string()),
                metadata: metadata.unwrap_or_default(),
            },
        );
    }
    let body = dirnode::pack(&packed, None);
    let file = state.grid.upload_bytes(body).await?;
    Ok(Cap::Directory(Box::new(file)))
}

/// `t=mkdir`, `t=mkdir-with-children` or `t=mkdir-immutable`: a new directory from `body`.
pub async fn make(state: &WebState, t: &str, format: Option<Format>, body: &[u8]) -> Result<Cap, WebError> {
    match t {
        "mkdir" => new_directory(state, directory_format(format, "POST /uri?t=mkdir")?, Vec::new()).await,
        "mkdir-with-children" => {
            let children = parse_children(body)?;
            new_directory(state, directory_format(format, "POST /uri?t=mkdir")?, children).await
        }
        "mkdir-immutable" => new_immutable_directory(state, parse_children(body)?).await,
        _ => Err(WebError::bad_request(format!("bad t={t}"))),
    }
}

/// The path form `POST /uri/$D/a/b?t=mkdir`: intermediate directories are made, an existing
/// directory at the end is returned unchanged, a file there is 400.
pub async fn make_at_path(
    state: &WebState,
    root: &Cap,
    names: &[String],
    t: &str,
    format: Option<Format>,
    body: &[u8],
) -> Result<Cap, WebError> {
    let Some((last, parents)) = names.split_last() else {
        return Ok(root.clone());
    };
    let dir = walk::directory_at(&state.grid, root, parents, true).await?;
    match walk::child(&state.grid, &dir, last).await? {
        Some((cap @ Cap::Directory(_), _)) if t == "mkdir" => Ok(cap),
        Some((Cap::Directory(_), _)) => Err(WebError::conflict()),
        Some(_) => Err(WebError::bad_request(format!("POST to file: bad t={t}"))),
        None => {
            let made = make(state, t, format, body).await?;
            walk::link(&state.grid, &dir, last, &made, Replace::Never, None).await?;
            Ok(made)
        }
    }
}

/// The form `POST /uri/$D/?t=mkdir&name=X`: replaces an existing `X` unless `replace=false`.
pub async fn make_named(
    state: &WebState,
    dir: &Cap,
    name: &str,
    t: &str,
    format: Option<Format>,
    replace: Replace,
    body: &[u8],
) -> Result<Cap, WebError> {
    if dir.is_read_only() {
        return Err(WebError::text(StatusCode::FORBIDDEN, "the directory is read-only"));
    }
    let made = make(state, t, format, body).await?;
    walk::link(&state.grid, dir, name, &made, replace, None).await?;
    Ok(made)
}
