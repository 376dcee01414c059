//! The fuzz targets: every parser that reads bytes from the network or from users, each with
//! seeds of the real format, a dictionary of its tokens, and properties its parse must keep.
//! One file per family of targets.

mod foolscap;
mod outcome;
mod servers;
mod sessions;
mod shares;
mod storage_http;
mod users;

pub use self::foolscap::{BANANA, NEGOTIATION};
pub use self::servers::SERVERS_YAML;
pub use self::sessions::{FTP_COMMANDS, SFTP_PACKETS};
pub use self::shares::SHARES;
pub use self::storage_http::{HTTP_CBOR, HTTP_HEADERS};
pub use self::users::{ACCOUNTS, CAPS};
