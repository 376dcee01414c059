//! Replies on their way to the client: encoded as SFTP frames and queued for the channel's writer, their bytes counted against the session's reply budget.
//!
//! Every reply takes its encoded size from a per-session [`Semaphore`] before it
//! is queued and gives it back once the writer has handed it to the SSH channel,
//! so a client that stops reading its replies holds at most [`REPLY_BYTES`] of
//! them in memory: the handlers that would queue more wait.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use russh_sftp::protocol::{Packet, Status, StatusCode};
use russh_sftp::server::StatusReply;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Bytes of replies a session may hold before the writer has sent them: twice the 2 MiB window
/// OpenSSH's client gives a channel, so the window is always refilled at once.
pub const REPLY_BYTES: usize = 4 << 20;
/// SSH_FXP_DATA.
const FXP_DATA: u8 = 103;
/// Length, type, id and data length before a DATA reply's bytes.
pub const DATA_HEADER: usize = 4 + 1 + 4 + 4;

/// One encoded reply and the share of the budget it holds until it is sent.
pub struct Reply {
    /// The whole frame, length prefix included.
    pub frame: Bytes,
    _budget: OwnedSemaphorePermit,
}

/// Where a session's handlers send their replies.
#[derive(Clone)]
pub struct Replies {
    queue: mpsc::UnboundedSender<Reply>,
    budget: Arc<Semaphore>,
}

impl Replies {
    /// A reply queue and the receiving end the writer drains.
    pub fn new() -> (Replies, mpsc::UnboundedReceiver<Reply>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(REPLY_BYTES));
        (Replies { queue, budget }, receiver)
    }

    /// Whether replies are waiting to be sent.
    pub fn pending(&self) -> bool {
        self.budget.available_permits() < REPLY_BYTES
    }

    /// Takes `bytes` of the budget (at most all of it), waiting while other replies hold it.
    pub async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = bytes.clamp(1, REPLY_BYTES) as u32;
        self.budget.clone().acquire_many_owned(bytes).await.ok()
    }

    /// Queues a frame whose bytes `budget` accounts for. Dropped if the session has ended.
    pub fn send_reserved(&self, frame: Bytes, budget: OwnedSemaphorePermit) {
        let _ = self.queue.send(Reply { frame, _budget: budget });
    }

    /// Encodes and queues the answer to request `id`: `result`, or the status it failed with.
    pub async fn send(&self, id: u32, result: Result<Packet, StatusReply>) {
        let frame = encode(id, result);
        if let Some(budget) = self.reserve(frame.len()).await {
            self.send_reserved(frame, budget);
        }
    }
}

/// The frame of a packet, or of the status an error becomes; an unencodable packet is a FAILURE.
pub fn encode(id: u32, result: Result<Packet, StatusReply>) -> Bytes {
    let packet = result.unwrap_or_else(|error| status_packet(id, error));
    Bytes::try_from(packet).unwrap_or_else(|error| {
        let message = format!("reply not encodable: {error}");
        tracing::warn!("{message}");
        let failure = StatusCode::Failure.with_message(message);
        Bytes::try_from(status_packet(id, failure)).unwrap_or_default()
    })
}

fn status_packet(id: u32, error: StatusReply) -> Packet {
    let StatusReply {
        status_code,
        error_message,
        language_tag,
    } = error;
    Packet::Status(Status {
        id,
        status_code,
        error_message: error_message.unwrap_or_else(|| status_code.to_string()),
        language_tag: language_tag.unwrap_or_else(|| "en-US".to_string()),
    })
}

/// An empty DATA reply to request `id` with room for `capacity` bytes: the bytes are appended to it
/// and [`finish_data`] fills in the lengths, so they are copied into the frame once.
pub fn start_data(id: u32, capacity: usize) -> BytesMut {
    let mut frame = BytesMut::with_capacity(DATA_HEADER + capacity);
    frame.put_u32(0);
    frame.put_u8(FXP_DATA);
    frame.put_u32(id);
    frame.put_u32(0);
    frame
}

/// The frame of a DATA reply started with [`start_data`], its lengths filled in.
pub fn finish_data(mut frame: BytesMut) -> Bytes {
    let data_len = (frame.len() - DATA_HEADER) as u32;
    let body_len = (frame.len() - 4) as u32;
    frame[0..4].copy_from_slice(&body_len.to_be_bytes());
    frame[9..13].copy_from_slice(&data_len.to_be_bytes());
    frame.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::Data;

    #[test]
    fn a_data_frame_built_in_place_is_what_russh_sftp_encodes() {
        let mut frame = start_data(7, 5);
        frame.extend_from_slice(b"hello");
        let expected = Bytes::try_from(Packet::Data(Data {
            id: 7,
            data: b"hello".to_vec(),
        }))
        .unwrap();
        assert_eq!(finish_data(frame), expected);
    }

    #[test]
    fn an_error_becomes_a_status_with_the_request_id() {
        let frame = encode(9, Err(StatusCode::NoSuchFile.into()));
        // length, type 101, id 9, code 2
        assert_eq!(frame[4], 101);
        assert_eq!(&frame[5..9], &9u32.to_be_bytes());
        assert_eq!(&frame[9..13], &2u32.to_be_bytes());
    }
}
