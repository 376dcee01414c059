use super::{Reply, command::Command, error::ControlChanError, line_parser};

use bytes::BytesMut;
use std::io::Write;
use tokio_util::codec::{Decoder, Encoder};

// FTPCodec implements tokio's `Decoder` and `Encoder` traits for the control channel, that we'll
// use to decode FTP commands and encode their responses.
pub struct FtpCodec {
    // Stored index of the next index to examine for a '\n' character. This is used to optimize
    // searching. For example, if `decode` was called with `abc`, it would hold `3`, because that
    // is the next index to examine. The next time `decode` is called with `abcde\n`, we will only
    // look at `de\n` before returning.
    next_index: usize,
    // lafs-gateway patch: the last line ended with a CR alone, so a LF that starts the next data
    // belongs to it.
    skip_newline: bool,
}

impl FtpCodec {
    pub fn new() -> Self {
        FtpCodec {
            next_index: 0,
            skip_newline: false,
        }
    }
}

impl Decoder for FtpCodec {
    // lafs-gateway patch: a line that does not parse is an item, not a decoder error: tokio-util's
    // FramedRead ends the stream after an error, which ended the session on any malformed line.
    type Item = Result<Command, ControlChanError>;
    type Error = ControlChanError;

    // Here we decode the incoming bytes into a meaningful command. We'll split on newlines, and
    // parse the resulting line using `Command::parse()`. This method will be called by tokio.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if self.skip_newline && !buf.is_empty() {
            if buf[0] == b'\n' {
                let _ = buf.split_to(1);
            }
            self.skip_newline = false;
        }
        if let Some(newline_offset) = buf[self.next_index..].iter().position(|b| *b == b'\n') {
            let newline_index = newline_offset + self.next_index;
            let line = buf.split_to(newline_index + 1);
            self.next_index = 0;
            Ok(Some(line_parser::parse(strip_telnet_commands(line)).map_err(ControlChanError::from)))
        } else if buf.last() == Some(&b'\r') {
            // lafs-gateway patch: clients send ABOR's final LF as TCP urgent data; Linux leaves it
            // at the urgent mark and the socket does not turn readable again until more data comes,
            // so a line ending in CR at the end of what has arrived is taken as complete.
            let mut line = buf.split_to(buf.len());
            line.extend_from_slice(b"\n");
            self.next_index = 0;
            self.skip_newline = true;
            Ok(Some(line_parser::parse(strip_telnet_commands(line)).map_err(ControlChanError::from)))
        } else {
            self.next_index = buf.len();
            Ok(None)
        }
    }
}

impl Encoder<Reply> for FtpCodec {
    type Error = ControlChanError;

    // Here we encode the outgoing response
    fn encode(&mut self, reply: Reply, buf: &mut BytesMut) -> Result<(), Self::Error> {
        let mut buffer = vec![];
        match reply {
            Reply::None => {
                return Ok(());
            }
            Reply::CodeAndMsg { code, msg } => {
                if msg.is_empty() {
                    writeln!(buffer, "{}\r", code as u32)?;
                } else {
                    writeln!(buffer, "{} {}\r", code as u32, msg)?;
                }
            }
            Reply::MultiLine { code, mut lines } => {
                // Get the last line since it needs to be preceded by the response code.
                let last_line = lines.pop().unwrap_or_default();

                // Lines starting with a digit should be indented
                for it in lines.iter_mut() {
                    if it.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                        it.insert(0, ' ');
                    }
                }
                if lines.is_empty() {
                    writeln!(buffer, "{} {}\r", code as u32, last_line)?;
                } else {
                    write!(buffer, "{}-{}\r\n{} {}\r\n", code as u32, lines.join("\r\n"), code as u32, last_line)?;
                }
            }
        }
        buf.extend(&buffer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ReplyCode;
    use super::*;

    #[test]
    fn encode_multiline_reply_with_blank_line_does_not_panic() {
        let mut codec = FtpCodec::new();
        let mut buf = BytesMut::new();
        let reply = Reply::new_multiline(ReplyCode::HelpMessage, vec!["Usage: foo", "", "Options:"]);

        codec.encode(reply, &mut buf).unwrap();

        assert_eq!(buf, "214-Usage: foo\r\n\r\n214 Options:\r\n".as_bytes());
    }
}

// lafs-gateway patch: clients send "IAC IP IAC DM" (RFC 959 section 4.1.3) before ABOR. 0xFF never
// occurs in UTF-8, so every IAC and the byte after it can go; "IAC IAC" stands for one 0xFF.
fn strip_telnet_commands(line: BytesMut) -> BytesMut {
    const IAC: u8 = 0xFF;
    if !line.contains(&IAC) {
        return line;
    }
    let mut out = BytesMut::with_capacity(line.len());
    let mut bytes = line.iter();
    while let Some(&b) = bytes.next() {
        if b != IAC {
            out.extend_from_slice(&[b]);
        } else if bytes.next() == Some(&IAC) {
            out.extend_from_slice(&[IAC]);
        }
    }
    out
}

