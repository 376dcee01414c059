//! SFTP request framing, server side: each length prefix checked before its body is read, and the reply owed to a request that cannot be decoded.
//!
//! russh-sftp 3's own server loop reads a packet, and on a packet over its limit
//! logs and goes on reading the rest of that packet as if it were the next one;
//! an undecodable packet (an unknown type, a short body) is answered with id 0,
//! which no client matches to its request, so the client waits forever. This
//! codec does what OpenSSH's sftp-server does instead: a declared length over
//! [`MAX_REQUEST_LEN`] ends the session, and every request that arrives whole
//! gets a reply carrying its own id. It does no I/O.

use bytes::{Buf, Bytes, BytesMut};
use russh_sftp::protocol::{Packet, Status, StatusCode};

/// The largest request body (type byte and payload) a client may send: OpenSSH's
/// `SFTP_MAX_MSG_LENGTH`, and what the limits@openssh.com reply advertises.
pub const MAX_REQUEST_LEN: u32 = 256 * 1024;

/// The request types of SFTP v3 (draft-ietf-secsh-filexfer-02) that a client may send.
const REQUEST_TYPES: std::ops::RangeInclusive<u8> = 3..=20;
const SSH_FXP_INIT: u8 = 1;
const SSH_FXP_EXTENDED: u8 = 200;

/// A stream that cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A length prefix over the limit: the body is never read, the session ends.
    #[error("SFTP packet of {declared} bytes declared (the limit is {MAX_REQUEST_LEN})")]
    TooLong {
        /// The declared length.
        declared: u32,
    },
    /// A length prefix of 0: not even a type byte.
    #[error("SFTP packet of length 0")]
    Empty,
}

/// The next whole request body in `buffer` (removed from it), `None` if more bytes are needed.
/// The length is checked as soon as its four bytes are there, so `buffer` never needs to hold more
/// than one request of at most [`MAX_REQUEST_LEN`] bytes (plus what the last read brought).
pub fn next_frame(buffer: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
    let Some(prefix) = buffer.get(..4) else {
        return Ok(None);
    };
    let declared = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if declared > MAX_REQUEST_LEN {
        return Err(FramingError::TooLong { declared });
    }
    if declared == 0 {
        return Err(FramingError::Empty);
    }
    let whole = 4 + declared as usize;
    if buffer.len() < whole {
        // Room for the rest, so the reads that complete it do not reallocate piecemeal.
        buffer.reserve(whole - buffer.len());
        return Ok(None);
    }
    buffer.advance(4);
    Ok(Some(buffer.split_to(declared as usize).freeze()))
}

/// What to do with one request body.
#[derive(Debug)]
pub enum Incoming {
    /// A well-formed request for the session.
    Request(Packet),
    /// A request the session never sees; send this reply (a status with the request's id).
    Answered {
        /// The reply.
        reply: Packet,
        /// What was wrong, for the log.
        problem: String,
    },
}

/// Decodes one request body (as [`next_frame`] returns it).
pub fn decode(body: Bytes) -> Incoming {
    let kind = body.first().copied().unwrap_or(0);
    // Every request but INIT carries its id right after the type; INIT carries the version there.
    let id = match body.get(1..5) {
        Some(id) if kind != SSH_FXP_INIT => u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
        _ => 0,
    };
    if !(kind == SSH_FXP_INIT || REQUEST_TYPES.contains(&kind) || kind == SSH_FXP_EXTENDED) {
        let problem = format!("unsupported SFTP request type {kind}");
        return Incoming::Answered {
            reply: status(id, StatusCode::OpUnsupported, &problem),
            problem,
        };
    }
    let mut bytes = body;
    match Packet::try_from(&mut bytes) {
        Ok(packet) => Incoming::Request(packet),
        Err(error) => {
            let problem = format!("malformed SFTP request of type {kind}: {error}");
            Incoming::Answered {
                reply: status(id, StatusCode::BadMessage, &problem),
                problem,
            }
        }
    }
}

/// A status reply.
pub fn status(id: u32, status_code: StatusCode, message: &str) -> Packet {
    Packet::Status(Status {
        id,
        status_code,
        error_message: message.to_string(),
        language_tag: "en-US".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    fn reply_of(incoming: Incoming) -> Status {
        match incoming {
            Incoming::Answered {
                reply: Packet::Status(status),
                ..
            } => status,
            other => panic!("expected a status reply, got {other:?}"),
        }
    }

    #[test]
    fn frames_come_out_whole_and_in_order_whatever_the_read_sizes() {
        let mut wire = frame(&[17, 0, 0, 0, 7, 0, 0, 0, 1, b'/']);
        wire.extend(frame(&[16, 0, 0, 0, 8, 0, 0, 0, 0]));
        let mut buffer = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire {
            buffer.extend_from_slice(&[byte]);
            while let Some(body) = next_frame(&mut buffer).unwrap() {
                frames.push(body);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0][0], 17);
        assert_eq!(frames[1][0], 16);
        assert!(buffer.is_empty());
    }

    #[test]
    fn an_oversized_or_empty_length_is_refused_before_its_body_arrives() {
        let mut buffer = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert_eq!(
            next_frame(&mut buffer),
            Err(FramingError::TooLong { declared: u32::MAX })
        );
        assert!(buffer.capacity() < 1024, "nothing reserved for the declared length");
        let mut at_limit = BytesMut::from(&(MAX_REQUEST_LEN + 1).to_be_bytes()[..]);
        assert!(next_frame(&mut at_limit).is_err());
        let mut within = BytesMut::from(&MAX_REQUEST_LEN.to_be_bytes()[..]);
        assert_eq!(next_frame(&mut within), Ok(None));
        let mut empty = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(next_frame(&mut empty), Err(FramingError::Empty));
    }

    #[test]
    fn unknown_and_reply_types_get_op_unsupported_with_their_id() {
        for kind in [0u8, 2, 21, 99, 101, 105, 201, 255] {
            let status = reply_of(decode(Bytes::from(vec![kind, 0, 0, 0x30, 0x39, 1, 2, 3])));
            assert_eq!(status.id, 12345, "type {kind}");
            assert_eq!(status.status_code, StatusCode::OpUnsupported, "type {kind}");
            assert!(status.error_message.contains(&kind.to_string()));
        }
    }

    #[test]
    fn a_malformed_known_request_gets_bad_message_with_its_id() {
        // WRITE with an id and a handle length that runs past the end.
        let status = reply_of(decode(Bytes::from(vec![6, 0, 0, 0, 42, 0xff, 0xff, 0xff, 0xff, b'h'])));
        assert_eq!((status.id, status.status_code), (42, StatusCode::BadMessage));
        // A body too short to hold an id: id 0 is all there is to answer with.
        let status = reply_of(decode(Bytes::from(vec![3, 0])));
        assert_eq!((status.id, status.status_code), (0, StatusCode::BadMessage));
    }

    #[test]
    fn well_formed_requests_pass_through() {
        let stat = decode(Bytes::from(vec![17, 0, 0, 0, 7, 0, 0, 0, 1, b'/']));
        assert!(matches!(stat, Incoming::Request(Packet::Stat(s)) if s.id == 7 && s.path == "/"));
        let init = decode(Bytes::from(vec![1, 0, 0, 0, 3]));
        assert!(matches!(init, Incoming::Request(Packet::Init(i)) if i.version == 3));
    }
}
