//! libunftp's log lines (slog) written through `tracing`, with every cap in them replaced by `<cap>`.
//!
//! libunftp logs the paths it serves (`Successful STOR "/uri/URI:DIR2:…/f"` at info, every data
//! command at debug), and a `/uri/<cap>` path holds a secret. Its default logger forwarded those
//! lines to the `log` crate as they were; this one redacts them first (and keeps them in the
//! connection's span, as the `log` bridge did).

use std::fmt::{self, Write};

use slog::{Drain, Level, Never, OwnedKVList, Record, Serializer};

use crate::vfs::redact_caps;

/// The logger every FTP session's libunftp server writes to.
pub fn logger() -> slog::Logger {
    slog::Logger::root(RedactingDrain, slog::o!())
}

struct RedactingDrain;

impl Drain for RedactingDrain {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), Never> {
        let mut line = KeyValues(record.msg().to_string());
        // Failing to format a value only shortens the line.
        let _ = slog::KV::serialize(&record.kv(), record, &mut line);
        let _ = slog::KV::serialize(values, record, &mut line);
        let line = redact_caps(&line.0);
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "libunftp::server", "{line}"),
            Level::Warning => tracing::warn!(target: "libunftp::server", "{line}"),
            Level::Info => tracing::info!(target: "libunftp::server", "{line}"),
            Level::Debug => tracing::debug!(target: "libunftp::server", "{line}"),
            Level::Trace => tracing::trace!(target: "libunftp::server", "{line}"),
        }
        Ok(())
    }
}

/// A message with its key-values appended, `key: value` each.
struct KeyValues(String);

impl Serializer for KeyValues {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments) -> slog::Result {
        write!(self.0, ", {key}: {value}").map_err(|_| slog::Error::Fmt(fmt::Error))
    }
}
