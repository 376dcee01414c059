//! `/uri` and `/uri/$CAP/path…`: what each method and `t=` does, as Tahoe 1.20's node does it.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::grid::uri::Cap;
use crate::web::WebState;
use crate::web::args::{Args, Replace, checked_name};
use crate::web::body::{WebBody, full, html, read_limited, redirect, respond, text};
use crate::web::errors::WebError;
use crate::web::forms::{self, FileTarget, Posted};
use crate::web::routes::{absolute_base, quote};
use crate::web::{dirops, download, node_json, upload, walk};

/// Routes `/uri/…`; `rest` holds the decoded segments after `uri`.
pub async fn route(
    state: &WebState,
    request: Request<Incoming>,
    rest: &[String],
    args: Args,
) -> Result<Response<WebBody>, WebError> {
    let Some((cap_text, names)) = rest.split_first().filter(|(cap, _)| !cap.is_empty()) else {
        return bare(state, request, args).await;
    };
    let mut names = names.to_vec();
    if names.last().is_some_and(String::is_empty) {
        names.pop();
    }
    if names.iter().any(String::is_empty) {
        return Err(WebError::page(
            StatusCode::BAD_REQUEST,
            "The webapi does not allow empty pathname components, i.e. a double slash",
        ));
    }
    let root = Cap::parse(cap_text).unwrap_or_else(|_| Cap::Unknown(cap_text.clone()));
    if let Cap::Unknown(_) = root {
        return unknown(&request, &args);
    }
    let method = request.method().clone();
    match method {
        Method::GET | Method::HEAD => get(state, request, &root, &names, &args).await,
        Method::PUT => put(state, request, &root, &names, &args).await,
        Method::POST => post(state, request, &root, &names, args).await,
        Method::DELETE => delete(state, &root, &names).await,
        _ => Err(WebError::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
    }
}

/// A cap this node cannot use: `t=json` says so, reads get Tahoe's 400, writes 501.
fn unknown(request: &Request<Incoming>, args: &Args) -> Result<Response<WebBody>, WebError> {
    match *request.method() {
        Method::GET | Method::HEAD if args.t() == "json" => Ok(text("[\n \"unknown\",\n {}\n]\n")),
        Method::GET | Method::HEAD => Err(download::unknown_cap_get()),
        Method::POST => Err(WebError::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
        ref method => Err(WebError::page(
            StatusCode::NOT_IMPLEMENTED,
            format!("I don't know how to treat a {method} request."),
        )),
    }
}

/// `/uri` itself: unlinked uploads and directories, and `?uri=` redirects.
async fn bare(state: &WebState, request: Request<Incoming>, args: Args) -> Result<Response<WebBody>, WebError> {
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    match request.method().clone() {
        Method::GET | Method::HEAD => {
            let Some(cap) = args.get("uri") else {
                return Err(WebError::bad_request("GET /uri requires uri="));
            };
            let mut location = format!("{}/uri/{}", absolute_base(state, host.as_deref()), quote(cap));
            let extra: Vec<String> = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("uri="))
                .map(str::to_string)
                .collect();
            if !extra.is_empty() {
                location = format!("{location}?{}", extra.join("&"));
            }
            Ok(redirect(StatusCode::FOUND, &location))
        }
        Method::PUT => match args.t() {
            "mkdir" => {
                let format = dirops::directory_format(args.format()?, "PUT /uri?t=mkdir")?;
                let cap = dirops::new_directory(state, format, Vec::new()).await?;
                Ok(html(cap.to_string()))
            }
            "" => {
                let format = args.format()?;
                let cap = upload::store_new(state, upload::body_chunks(request.into_body()), format).await?;
                Ok(html(cap.to_string()))
            }
            t => Err(WebError::bad_request(format!(
                "/uri accepts only PUT, PUT?t=mkdir, POST?t=upload, and POST?t=mkdir (not t={t})"
            ))),
        },
        Method::POST => {
            let Posted { args, file, raw } = forms::read_post(state, request, args, FileTarget::New).await?;
            match args.t() {
                "upload" => {
                    let file = file.ok_or_else(|| WebError::internal("TypeError: the form has no file field"))?;
                    let cap = file.cap.to_string();
                    if let Some(when_done) = args.get("when_done") {
                        let target = when_done.replace("%(uri)s", &quote(&cap));
                        let location = if target.starts_with('/') {
                            format!("{}{target}", absolute_base(state, host.as_deref()))
                        } else {
                            target
                        };
                        return Ok(redirect(StatusCode::FOUND, &location));
                    }
                    Ok(html(crate::web::pages::info::uploaded_page(&file.cap)))
                }
                t @ ("mkdir" | "mkdir-with-children" | "mkdir-immutable") => {
                    let cap = dirops::make(state, t, args.format()?, &raw).await?;
                    if args.boolean("redirect_to_result", false)? {
                        let mut response = redirect(StatusCode::SEE_OTHER, &format!("uri/{}", quote(&cap.to_string())));
                        *response.body_mut() = full("");
                        return Ok(response);
                    }
                    Ok(html(cap.to_string()))
                }
                _ => Err(WebError::bad_request(
                    "/uri accepts only PUT, PUT?t=mkdir, POST?t=upload, and POST?t=mkdir",
                )),
            }
        }
        _ => Err(WebError::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
    }
}

async fn get(
    state: &WebState,
    request: Request<Incoming>,
    root: &Cap,
    names: &[String],
    args: &Args,
) -> Result<Response<WebBody>, WebError> {
    let found = walk::walk(&state.grid, root, names).await?;
    let is_dir = matches!(found.cap, Cap::Directory(_));
    match args.t() {
        "json" => {
            let json = node_json::node_json(&state.grid, &found.cap, found.metadata.as_ref()).await?;
            Ok(text(json.pretty() + "\n"))
        }
        "uri" => Ok(text(found.cap.to_string())),
        "readonly-uri" => Ok(text(found.cap.read_only().to_string())),
        "info" => crate::web::pages::info::page(state, &request, &found).await,
        "rename-form" if is_dir => Ok(crate::web::pages::directory::rename_form(
            args.get("name").unwrap_or(""),
        )),
        "" if is_dir => crate::web::pages::directory::page(state, &request, &found.cap).await,
        "" => {
            let name = names.last().cloned().unwrap_or_default();
            let head = request.method() == Method::HEAD;
            download::file(state, &found.cap, &name, args, request.headers(), head).await
        }
        t if is_dir => Err(WebError::bad_request(format!("GET directory: bad t={t}"))),
        t => Err(WebError::bad_request(format!("GET file: bad t={t}"))),
    }
}

async fn put(
    state: &WebState,
    request: Request<Incoming>,
    root: &Cap,
    names: &[String],
    args: &Args,
) -> Result<Response<WebBody>, WebError> {
    let replace = args.replace()?;
    // `offset=` writes into an existing mutable file there; an immutable one cannot change.
    let offset = args.get("offset");
    let Some((last, parents)) = names.split_last() else {
        return match (root, args.t()) {
            (Cap::Mutable(m), "") => {
                replace_or_write_at(state, request, m, offset).await?;
                Ok(html(root.to_string()))
            }
            (Cap::Chk(_) | Cap::Literal(_), "") if offset.is_some() => Err(append_to_immutable()),
            (Cap::Directory(_), "mkdir") => Ok(respond(StatusCode::OK, "text/plain", full(root.to_string()))),
            (Cap::Directory(_), _) => Err(WebError::bad_request("PUT to a directory")),
            _ => Err(WebError::internal(
                "AssertionError: PUT to an immutable cap needs a name",
            )),
        };
    };
    match args.t() {
        "mkdir" => {
            let cap = dirops::make_at_path(state, root, names, "mkdir", args.format()?, &[]).await?;
            Ok(respond(StatusCode::OK, "text/plain", full(cap.to_string())))
        }
        "uri" => {
            let body = read_limited(request.into_body(), forms::MAX_SMALL_BODY).await?;
            let text = String::from_utf8_lossy(&body).trim().to_string();
            let cap = Cap::parse(&text).unwrap_or(Cap::Unknown(text));
            let dir = walk::directory_at(&state.grid, root, parents, true).await?;
            walk::link(&state.grid, &dir, last, &cap, replace, None).await?;
            Ok(html(cap.to_string()))
        }
        "" => {
            let dir = walk::directory_at(&state.grid, root, parents, true).await?;
            let existing = walk::child(&state.grid, &dir, last).await?.map(|(cap, _)| cap);
            match &existing {
                Some(Cap::Directory(_)) => return Err(WebError::bad_request("PUT to a directory")),
                Some(_) if replace == Replace::Never => return Err(WebError::conflict()),
                // A read-only one is refused there, as Tahoe does, rather than replaced by a new file.
                Some(Cap::Mutable(m)) => {
                    replace_or_write_at(state, request, m, offset).await?;
                    return Ok(html(m_cap(m)));
                }
                Some(_) if offset.is_some() => return Err(append_to_immutable()),
                _ => {}
            }
            if dir.is_read_only() {
                return Err(WebError::not_writeable());
            }
            let cap = upload::store_new(state, upload::body_chunks(request.into_body()), args.format()?).await?;
            let replaced = walk::link(&state.grid, &dir, last, &cap, replace, None).await?;
            let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
            Ok(respond(status, "text/html; charset=utf-8", full(cap.to_string())))
        }
        t => Err(WebError::bad_request(format!("PUT to a file: bad t={t}"))),
    }
}

/// Replaces the contents of the mutable file `m` with the request's body, or with `offset`
/// writes the body there (Tahoe's partial update: MDMF's, and SDMF's too here).
async fn replace_or_write_at(
    state: &WebState,
    request: Request<Incoming>,
    m: &crate::grid::uri::MutableCap,
    offset: Option<&str>,
) -> Result<(), WebError> {
    let offset = match offset {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| WebError::bad_request("PUT to a mutable file: Invalid offset"))?,
        ),
    };
    upload::write_mutable(state, upload::body_chunks(request.into_body()), m, offset).await
}

fn append_to_immutable() -> WebError {
    WebError::bad_request("PUT to a file: append operation invoked on an immutable cap")
}

fn m_cap(m: &crate::grid::uri::MutableCap) -> String {
    Cap::Mutable(m.clone()).to_string()
}

async fn delete(state: &WebState, root: &Cap, names: &[String]) -> Result<Response<WebBody>, WebError> {
    let Some((last, parents)) = names.split_last() else {
        return Err(WebError::internal("AssertionError: DELETE needs a name"));
    };
    let dir = walk::walk(&state.grid, root, parents).await?.cap;
    if !matches!(dir, Cap::Directory(_)) {
        return Err(WebError::bad_request("DELETE below a file"));
    }
    if walk::child(&state.grid, &dir, last).await?.is_none() {
        return Err(WebError::no_such_child(last));
    }
    let removed = walk::unlink(&state.grid, &dir, last).await?;
    Ok(html(removed.to_string()))
}

/// A form answer: a 302 to `when_done` (verbatim) when given, else `body`.
fn done(args: &Args, body: String) -> Response<WebBody> {
    match args.get("when_done").filter(|w| !w.is_empty()) {
        Some(when_done) => redirect(StatusCode::FOUND, when_done),
        None => html(body),
    }
}

async fn post(
    state: &WebState,
    request: Request<Incoming>,
    root: &Cap,
    names: &[String],
    args: Args,
) -> Result<Response<WebBody>, WebError> {
    let query_t = args.t().to_string();
    // The path form of the mkdirs makes what the path names, so the path is not walked first.
    if matches!(query_t.as_str(), "mkdir" | "mkdir-with-children" | "mkdir-immutable")
        && args.get("name").is_none()
        && !names.is_empty()
    {
        let Posted { args, raw, .. } = forms::read_post(state, request, args, FileTarget::New).await?;
        let cap = dirops::make_at_path(state, root, names, &query_t, args.format()?, &raw).await?;
        return Ok(html(cap.to_string()));
    }
    let found = walk::walk(&state.grid, root, names).await?;
    let target = match &found.cap {
        Cap::Mutable(m) => FileTarget::Replace(m.clone()),
        _ => FileTarget::New,
    };
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let Posted { args, file, raw } = forms::read_post(state, request, args, target).await?;
    let t = args.t().to_string();
    let dir = found.cap.clone();
    if !matches!(dir, Cap::Directory(_)) {
        return match t.as_str() {
            "check" => crate::web::check::answer(state, &found.cap, &args).await,
            "upload" if file.is_some() => Ok(html(found.cap.to_string())),
            _ => Err(WebError::bad_request(format!("POST to file: bad t={t}"))),
        };
    }
    let replace = args.replace()?;
    match t.as_str() {
        "mkdir" | "mkdir-with-children" | "mkdir-immutable" => match args.get("name").filter(|n| !n.is_empty()) {
            Some(name) => {
                let name = checked_name(name, "name")?;
                let cap = dirops::make_named(state, &dir, name, &t, args.format()?, replace, &raw).await?;
                Ok(done(&args, cap.to_string()))
            }
            None if t == "mkdir" => Ok(done(&args, dir.to_string())),
            None => Ok(html(dirops::make(state, &t, args.format()?, &raw).await?.to_string())),
        },
        "upload" => {
            let file = file.ok_or_else(|| WebError::internal("TypeError: the form has no file field"))?;
            let name = args
                .get("name")
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .or(file.filename.clone())
                .ok_or_else(|| WebError::bad_request("upload needs a name= or a file name"))?;
            let name = checked_name(&name, "name")?.to_string();
            walk::link(&state.grid, &dir, &name, &file.cap, replace, None).await?;
            Ok(done(&args, file.cap.to_string()))
        }
        "uri" => {
            let name = checked_name(args.get("name").unwrap_or(""), "name")?;
            let text = args.get("uri").unwrap_or("").trim();
            let cap = Cap::parse(text).unwrap_or(Cap::Unknown(text.to_string()));
            walk::link(&state.grid, &dir, name, &cap, replace, None).await?;
            Ok(done(&args, cap.to_string()))
        }
        "set_children" | "set-children" => {
            let children = dirops::parse_children(&raw)?;
            walk::link_many(&state.grid, &dir, children, replace).await?;
            Ok(html("Okay so I did it."))
        }
        "unlink" | "delete" => {
            let name = checked_name(args.get("name").unwrap_or(""), "name")?;
            walk::unlink(&state.grid, &dir, name).await?;
            Ok(done(&args, "thing unlinked".into()))
        }
        "rename" | "relink" => {
            let from = checked_name(args.get("from_name").unwrap_or(""), "from_name")?;
            let to_name = match (t.as_str(), args.get("to_name")) {
                (_, Some(to)) if !to.is_empty() => to,
                ("relink", _) => from,
                _ => return Err(WebError::bad_request("to_name= is required for rename")),
            };
            let to_name = checked_name(to_name, "to_name")?;
            let to_dir = match args.get("to_dir").filter(|d| !d.is_empty() && t == "relink") {
                Some(to_dir) => {
                    let mut parts = to_dir.trim_start_matches("/uri/").split('/').filter(|p| !p.is_empty());
                    let cap_text = parts.next().unwrap_or("");
                    let cap =
                        Cap::parse(cap_text).map_err(|_| WebError::bad_request("to_dir= is not a directory cap"))?;
                    let path: Vec<String> = parts.map(str::to_string).collect();
                    walk::directory_at(&state.grid, &cap, &path, false).await?
                }
                None => dir.clone(),
            };
            walk::relink(&state.grid, &dir, from, &to_dir, to_name, replace).await?;
            Ok(done(&args, "thing moved".into()))
        }
        "check" => crate::web::check::answer(state, &dir, &args).await,
        "stream-manifest" | "stream-deep-check" => crate::web::deep::stream(state, &dir, &t, &args),
        "start-deep-stats" | "start-manifest" | "start-deep-check" | "start-deep-size" => {
            crate::web::operations::start(state, &dir, &t, &args, host.as_deref())
        }
        _ => Err(WebError::bad_request(format!("POST to a directory with bad t={t}"))),
    }
}
