//! Contains code pertaining to the FTP *control* channel/connection.

pub mod command;

pub(crate) mod event;
pub(crate) mod handler;
pub(crate) mod reply;

pub(super) mod commands;

mod active_passive;
mod auth;
mod codecs;
mod control_loop;
mod error;
mod ftps;
mod line_parser;
mod log;
mod middleware;
mod notify;

use command::Command;
pub(crate) use control_loop::{Config as LoopConfig, spawn as spawn_loop};
pub(crate) use error::{ControlChanError, ControlChanErrorKind};
pub(crate) use event::Event;
pub(crate) use middleware::ControlChanMiddleware;
pub(crate) use reply::{Reply, ReplyCode};

/// lafs-gateway patch: feeds `reads` to the control channel's decoder as successive socket reads
/// and returns what it made of each line (the command's `Debug` form, or the error), so that a
/// fuzzer can drive the line decoder and parser without a connection.
#[doc(hidden)]
pub fn decode_for_fuzzing(reads: &[&[u8]]) -> Vec<Result<String, String>> {
    use tokio_util::codec::Decoder;
    let mut codec = codecs::FtpCodec::new();
    let mut buf = bytes::BytesMut::new();
    let mut lines = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(Ok(command))) => lines.push(Ok(format!("{command:?}"))),
                Ok(Some(Err(e))) => lines.push(Err(e.to_string())),
                Ok(None) => break,
                Err(e) if buf.len() < before => lines.push(Err(e.to_string())),
                Err(e) => {
                    lines.push(Err(e.to_string()));
                    break;
                }
            }
        }
    }
    lines
}
