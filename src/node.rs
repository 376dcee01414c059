//! The node: its directory (`lafs.toml` with documented defaults, `private/` secrets and
//! aliases), the grid it describes, and serving everything `lafs run` starts.
//!
//! - [`config`]: the config file, one function per section.
//! - [`secrets`]: `lafs init`, the secrets, the SSH host key, the FTPS certificate.
//! - [`aliases`]: the aliases file, `private/aliases`.
//! - [`open`]: [`Node`], a loaded node and its grid.
//! - [`serve`](mod@serve): [`serve()`](fn@serve), every service of a node, from bound
//!   listeners until shutdown.
//! - [`storage_node`]: the storage server a node may run.
//! - [`error`]: why the node directory could not be used.

pub mod aliases;
pub mod config;
pub mod error;
pub mod open;
pub mod secrets;
pub mod serve;
pub mod storage_node;

pub use aliases::{DEFAULT_ALIAS, add_alias, read_aliases};
pub use config::{CONFIG_FILE, DEFAULT_CONFIG, FTPS_CERTIFICATE, FTPS_KEY, NodeConfig, load_config, parse_config};
pub use error::Error;
pub use open::Node;
pub use secrets::{ensure_ftps_identity, init, read_host_key, read_secret, write_ftps_identity, write_host_key};
pub use serve::{Listeners, Running, ServeError, serve};
