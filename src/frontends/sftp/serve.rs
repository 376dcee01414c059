//! The request loop of one SFTP channel: requests framed by [`framing`], handed to the session one at a time, every one answered; an idle channel ends.
//!
//! This replaces `russh_sftp::server::run` (whose loop goes on after a framing
//! error and answers undecodable requests with id 0) while keeping russh-sftp's
//! protocol types and its `Handler` trait, which [`super::session`] implements.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use russh_sftp::protocol::{Packet, Status};
use russh_sftp::server::{Handler, StatusReply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::framing::{self, FramingError, Incoming};

/// Read-ahead room: enough for several small pipelined requests per read.
const READ_CHUNK: usize = 64 * 1024;

/// Why a channel's loop ended.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// The client closed its side.
    #[error("the client closed the channel")]
    ClientClosed,
    /// No request arrived (or no reply could be delivered) for this long.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// The client broke the framing.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The channel failed.
    #[error("channel error: {0}")]
    Io(#[from] std::io::Error),
    /// A reply could not be encoded.
    #[error("reply not encodable: {0}")]
    Encode(String),
}

/// Serves requests from `stream` with `handler` until the client closes it, breaks the framing, or
/// sends nothing for `idle` (the time a request takes to handle does not count).
pub async fn run<S, H>(stream: &mut S, handler: &mut H, idle: Duration) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler + Send,
{
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let body = loop {
            match framing::next_frame(&mut buffer) {
                Ok(Some(body)) => break body,
                Ok(None) => {}
                Err(error) => return error.into(),
            }
            buffer.reserve(READ_CHUNK);
            match tokio::time::timeout(idle, stream.read_buf(&mut buffer)).await {
                Err(_) => return Ended::Idle(idle),
                Ok(Ok(0)) => return Ended::ClientClosed,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return error.into(),
            }
        };
        let reply = match framing::decode(body) {
            Incoming::Request(request) => dispatch(request, handler).await,
            Incoming::Answered { reply, problem } => {
                tracing::debug!("{problem}");
                reply
            }
        };
        let bytes = match Bytes::try_from(reply) {
            Ok(bytes) => bytes,
            Err(error) => return Ended::Encode(error.to_string()),
        };
        // A client that stops reading its replies stops being served, and is idle.
        let sent = async {
            stream.write_all(&bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(idle, sent).await {
            Err(_) => return Ended::Idle(idle),
            Ok(Err(error)) => return error.into(),
            Ok(Ok(())) => {}
        }
    }
}

/// The session's answer to one request; an error becomes a status with the request's id.
async fn dispatch<H: Handler + Send>(request: Packet, handler: &mut H) -> Packet {
    let id = request.get_request_id();
    let result = match request {
        Packet::Init(p) => handler.init(p.version, p.extensions).await.map(Packet::from),
        Packet::Open(p) => handler
            .open(p.id, p.filename, p.pflags, p.attrs)
            .await
            .map(Packet::from),
        Packet::Close(p) => handler.close(p.id, p.handle).await.map(Packet::from),
        Packet::Read(p) => handler.read(p.id, p.handle, p.offset, p.len).await.map(Packet::from),
        Packet::Write(p) => handler.write(p.id, p.handle, p.offset, p.data).await.map(Packet::from),
        Packet::Lstat(p) => handler.lstat(p.id, p.path).await.map(Packet::from),
        Packet::Fstat(p) => handler.fstat(p.id, p.handle).await.map(Packet::from),
        Packet::SetStat(p) => handler.setstat(p.id, p.path, p.attrs).await.map(Packet::from),
        Packet::FSetStat(p) => handler.fsetstat(p.id, p.handle, p.attrs).await.map(Packet::from),
        Packet::OpenDir(p) => handler.opendir(p.id, p.path).await.map(Packet::from),
        Packet::ReadDir(p) => handler.readdir(p.id, p.handle).await.map(Packet::from),
        Packet::Remove(p) => handler.remove(p.id, p.filename).await.map(Packet::from),
        Packet::MkDir(p) => handler.mkdir(p.id, p.path, p.attrs).await.map(Packet::from),
        Packet::RmDir(p) => handler.rmdir(p.id, p.path).await.map(Packet::from),
        Packet::RealPath(p) => handler.realpath(p.id, p.path).await.map(Packet::from),
        Packet::Stat(p) => handler.stat(p.id, p.path).await.map(Packet::from),
        Packet::Rename(p) => handler.rename(p.id, p.oldpath, p.newpath).await.map(Packet::from),
        Packet::ReadLink(p) => handler.readlink(p.id, p.path).await.map(Packet::from),
        Packet::Symlink(p) => handler.symlink(p.id, p.linkpath, p.targetpath).await.map(Packet::from),
        Packet::Extended(p) => handler.extended(p.id, p.request, p.data).await,
        // framing::decode lets only request types through.
        _ => Err(handler.unimplemented()),
    };
    result.unwrap_or_else(|error| {
        let StatusReply {
            status_code,
            error_message,
            language_tag,
        } = error.into();
        Packet::Status(Status {
            id,
            status_code,
            error_message: error_message.unwrap_or_else(|| status_code.to_string()),
            language_tag: language_tag.unwrap_or_else(|| "en-US".to_string()),
        })
    })
}
