//! What the web API answers when a request fails: Tahoe's statuses and its three body shapes.
//!
//! Tahoe answers path-walk failures with a small Twisted HTML error page, bad arguments and
//! known failures with a bare `text/plain` message, and unexpected exceptions with a plain-text
//! traceback (which the `tahoe` CLI prints). The CLI shows these bodies to its user, so the
//! texts are Tahoe's. No text here ever holds a cap.

use hyper::StatusCode;

use crate::grid;
use crate::grid::directory::DirectoryError;

/// How an error's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Twisted's `ErrorPage` (`text/html`), for failures while walking the path: title `Error`.
    ErrorPage,
    /// The same page with the message as its title and `no details` (a file in the way).
    TitledPage,
    /// The bare message as `text/plain;charset=utf-8`.
    Text,
    /// A 500 whose body is a Python-style traceback line, as Tahoe sends non-browser clients.
    Traceback,
}

/// A failed request: its status, body shape and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct WebError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's shape.
    pub shape: Shape,
    /// Tahoe's message (no caps).
    pub message: String,
}

impl WebError {
    /// A `text/plain` error.
    pub fn text(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            shape: Shape::Text,
            message: message.into(),
        }
    }

    /// An error page, as Tahoe shows failures found while walking a path.
    pub fn page(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            shape: Shape::ErrorPage,
            message: message.into(),
        }
    }

    /// An error page titled with the message.
    pub fn titled_page(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            shape: Shape::TitledPage,
            message: message.into(),
        }
    }

    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError::text(StatusCode::BAD_REQUEST, message)
    }

    /// Tahoe's answer to a write through a read-only or immutable cap.
    pub fn not_writeable() -> WebError {
        WebError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            shape: Shape::Traceback,
            message: "allmydata.mutable.common.NotWriteableError: ".into(),
        }
    }

    /// A missing child, found while walking a path.
    pub fn no_such_child(name: &str) -> WebError {
        WebError::page(StatusCode::NOT_FOUND, format!("No such child: {name}"))
    }

    /// `replace=false` (or `only-files` against a directory) with the name taken.
    pub fn conflict() -> WebError {
        WebError::text(
            StatusCode::CONFLICT,
            "There was already a child by that name, and you asked me to not replace it.",
        )
    }

    /// An unexpected failure: logged in full, the client gets its kind.
    pub fn internal(what: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            shape: Shape::Traceback,
            message: what.into(),
        }
    }

    /// The body text for this error.
    pub fn body(&self) -> String {
        match self.shape {
            Shape::Text => self.message.clone(),
            Shape::Traceback => format!("Traceback (most recent call last):\nFailure: {}\n", self.message),
            Shape::ErrorPage | Shape::TitledPage => {
                let (title, details) = match self.shape {
                    Shape::TitledPage => (self.message.as_str(), "no details"),
                    _ => ("Error", self.message.as_str()),
                };
                let title = crate::web::pages::escape(title);
                let details = crate::web::pages::escape(details);
                let code = self.status.as_u16();
                format!(
                    "\n<html>\n  <head><title>{code} - {title}</title></head>\n  <body>\n    <h1>{title}</h1>\n    <p>{details}</p>\n  </body>\n</html>\n"
                )
            }
        }
    }

    /// The body's content type.
    pub fn content_type(&self) -> &'static str {
        match self.shape {
            Shape::ErrorPage | Shape::TitledPage => "text/html; charset=utf-8",
            Shape::Text | Shape::Traceback => "text/plain;charset=utf-8",
        }
    }
}

impl From<grid::Error> for WebError {
    fn from(e: grid::Error) -> WebError {
        use grid::Error as G;
        match &e {
            G::NotEnoughShares { needed, found } if *found == 0 => WebError::text(
                StatusCode::GONE,
                format!(
                    "NoSharesError: no shares could be found. Zero shares usually indicates a corrupt URI, or that no servers were connected, but it might also indicate severe corruption. You should perform a filecheck on this object to learn more.\n\nThe full error message is:\nno shares (need {needed}). Last failure: None"
                ),
            ),
            G::NotEnoughShares { needed, found } => WebError::text(
                StatusCode::GONE,
                format!(
                    "NotEnoughSharesError: This indicates that some servers were unavailable, or that shares have been lost to server departure, hard drive failure, or disk corruption. You should perform a filecheck on this object to learn more.\n\nThe full error message is:\nran out of shares: {found} found, {needed} needed"
                ),
            ),
            G::ReadOnly => WebError::not_writeable(),
            G::Prohibited { reason } => WebError::text(StatusCode::FORBIDDEN, format!("Access Prohibited: {reason}")),
            G::Directory(DirectoryError::Exists) => WebError::conflict(),
            G::Directory(DirectoryError::NotFound) => WebError::text(StatusCode::NOT_FOUND, "No such child"),
            G::HappinessNotMet { .. } => {
                WebError::internal(format!("allmydata.interfaces.UploadUnhappinessError: {e}"))
            }
            G::UncoordinatedWrite { .. } => {
                WebError::internal(format!("allmydata.mutable.common.UncoordinatedWriteError: {e}"))
            }
            G::CorruptDirectory | G::IntegrityFailure { .. } => WebError::text(
                StatusCode::GONE,
                format!(
                    "UnrecoverableFileError: the directory (or mutable file) could not be retrieved, because there were insufficient good shares. {e}"
                ),
            ),
            G::UnsupportedCap(kind) => WebError::bad_request(format!("{kind} caps are not supported here")),
            _ => {
                tracing::warn!("web request failed: {e}");
                WebError::internal(format!("{}", e))
            }
        }
    }
}

impl From<crate::vfs::Error> for WebError {
    fn from(e: crate::vfs::Error) -> WebError {
        use crate::vfs::ErrorKind as K;
        match e.kind() {
            K::NotFound => WebError::text(StatusCode::NOT_FOUND, "No such child"),
            K::AlreadyExists => WebError::conflict(),
            K::PermissionDenied => WebError::not_writeable(),
            K::Transient => WebError::text(StatusCode::GONE, format!("NotEnoughSharesError: {e}")),
            // Here only a mutable file can be too large: immutable uploads stop at 64 GiB first.
            K::TooLarge => WebError::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "FileTooLargeError: mutable files are limited to {} bytes here",
                    crate::vfs::MAX_MUTABLE_FILE_SIZE
                ),
            ),
            _ => {
                tracing::warn!("web request failed: {e}");
                WebError::internal(e.to_string())
            }
        }
    }
}
