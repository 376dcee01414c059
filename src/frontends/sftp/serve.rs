//! One SFTP channel: its bytes read as they come and framed by [`framing`], each request dispatched while the next are read, replies written as they are ready; an idle channel ends.
//!
//! This replaces `russh_sftp::server::run` (whose loop goes on after a framing
//! error and answers undecodable requests with id 0, and which handles one
//! request at a time). Reading never waits for a reply to be written: russh
//! forwards a channel's incoming data into a bounded queue and its whole
//! session stops while that queue is full, window adjustments from the client
//! included, so a loop that stops reading while its reply waits for window
//! space waits for ever. Here the reader goes on reading (up to [`RAW_LIMIT`]
//! bytes not yet dispatched) while requests wait for their turn, and a separate
//! writer sends the replies.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::mpsc;

use super::dispatch::Dispatcher;
use super::framing::{self, FramingError, MAX_REQUEST_LEN};
use super::replies::{Replies, Reply};
use super::session::SftpSession;

/// Bytes read from the channel and not yet dispatched, beyond which reading pauses: room for
/// several of the largest requests.
const RAW_LIMIT: usize = 4 * (4 + MAX_REQUEST_LEN as usize);

/// Why a channel's loop ended.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// The client closed its side.
    #[error("the client closed the channel")]
    ClientClosed,
    /// No request arrived, and none was being handled, for this long; or a reply could not be
    /// delivered for this long.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// The client broke the framing.
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// The channel failed.
    #[error("channel error: {0}")]
    Channel(#[from] russh::Error),
}

/// When the channel last moved: a request arrived or a reply went out.
struct Activity(Mutex<Instant>);

impl Activity {
    fn touch(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Instant::now();
        }
    }

    fn since(&self) -> Duration {
        self.0.lock().map(|last| last.elapsed()).unwrap_or_default()
    }
}

/// Serves `session` on `channel` until the client closes it, breaks the framing, or the channel
/// is idle for `idle` (time spent handling requests does not count).
pub async fn run(channel: Channel<Msg>, session: SftpSession, idle: Duration) -> Ended {
    let (mut read_half, write_half) = channel.split();
    let (replies, queue) = Replies::new();
    let activity = Activity(Mutex::new(Instant::now()));
    let mut dispatcher = Dispatcher::new(session, replies.clone());
    tokio::select! {
        ended = receive(&mut read_half, &mut dispatcher, &replies, &activity, idle) => ended,
        ended = send(&write_half, queue, &activity, idle) => ended,
    }
}

/// Reads and dispatches requests.
async fn receive(
    read_half: &mut ChannelReadHalf,
    dispatcher: &mut Dispatcher,
    replies: &Replies,
    activity: &Activity,
    idle: Duration,
) -> Ended {
    let mut raw = BytesMut::new();
    let mut open = true;
    loop {
        match framing::next_frame(&mut raw) {
            Err(error) => return error.into(),
            Ok(Some(body)) => {
                let dispatched = dispatcher.dispatch(body);
                tokio::pin!(dispatched);
                // Read on while the request waits for its place.
                loop {
                    tokio::select! {
                        biased;
                        () = &mut dispatched => break,
                        message = read_half.wait(), if open && raw.len() < RAW_LIMIT => {
                            open = take(message, &mut raw, activity);
                        }
                    }
                }
            }
            Ok(None) if !open => return Ended::ClientClosed,
            Ok(None) => {
                let left = idle.saturating_sub(activity.since());
                match tokio::time::timeout(left, read_half.wait()).await {
                    Ok(message) => open = take(message, &mut raw, activity),
                    // Handling a request, or waiting to send a reply, is not being idle.
                    Err(_) if dispatcher.busy() || replies.pending() => activity.touch(),
                    Err(_) if activity.since() >= idle => return Ended::Idle(idle),
                    Err(_) => {}
                }
            }
        }
    }
}

/// Adds what a channel message brings to `raw`; false once the client has closed its side.
fn take(message: Option<ChannelMsg>, raw: &mut BytesMut, activity: &Activity) -> bool {
    match message {
        Some(ChannelMsg::Data { data }) => {
            raw.extend_from_slice(&data);
            activity.touch();
            true
        }
        Some(ChannelMsg::Eof | ChannelMsg::Close) | None => false,
        // Window adjustments and the like: nothing for SFTP.
        Some(_) => true,
    }
}

/// Writes replies as they are queued. A client that stops reading them stops being served, and is
/// idle once one has waited `idle`.
async fn send(
    write_half: &ChannelWriteHalf<Msg>,
    mut queue: mpsc::UnboundedReceiver<Reply>,
    activity: &Activity,
    idle: Duration,
) -> Ended {
    while let Some(reply) = queue.recv().await {
        match tokio::time::timeout(idle, write_half.data_bytes(reply.frame.clone())).await {
            Err(_) => return Ended::Idle(idle),
            Ok(Err(error)) => return error.into(),
            Ok(Ok(())) => activity.touch(),
        }
    }
    // The dispatcher holds a sender as long as the reader runs, so the queue does not close first.
    std::future::pending().await
}
