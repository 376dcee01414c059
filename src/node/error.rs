//! Why the node directory could not be used: one error for its config, secrets and grid.

/// Why the node directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory has no config file.
    #[error("no node at {0} (run `lafs init {0}` first, or pass --node-dir)")]
    NoNode(String),
    /// The config file is not valid.
    #[error("{file}: {message}")]
    BadConfig {
        /// the config file
        file: String,
        /// which key and what is allowed
        message: String,
    },
    /// A secret file is missing or malformed.
    #[error("{file}: {message}")]
    BadSecret {
        /// the secret file (its contents are never shown)
        file: String,
        /// what is wrong
        message: String,
    },
    /// Reading or writing the node directory failed.
    #[error("{context}: {source}")]
    Io {
        /// what was being done
        context: String,
        /// the underlying error
        source: std::io::Error,
    },
    /// Opening the grid failed.
    #[error(transparent)]
    Grid(#[from] crate::grid::Error),
}

/// Wraps an I/O error with what was being done.
pub(crate) fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}
