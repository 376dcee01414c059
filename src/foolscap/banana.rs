//! Banana, Foolscap's token layer (section 3): the token codec, the tree of values the tokens of
//! one top-level sequence build, and the encoder. Pure; every size a peer controls is capped.

/// Vocab table 1 (section 3.5): with it negotiated, a VOCAB token stands for one of these words.
pub const VOCAB_TABLE_1: [&str; 25] = [
    "none",
    "boolean",
    "reference",
    "dict",
    "list",
    "tuple",
    "set",
    "immutable-set",
    "unicode",
    "set-vocab",
    "add-vocab",
    "call",
    "arguments",
    "answer",
    "error",
    "my-reference",
    "your-reference",
    "their-reference",
    "copyable",
    "instance",
    "module",
    "class",
    "method",
    "function",
    "attrdict",
];

#[cfg(test)]
const LIST: u8 = 0x80;
const INT: u8 = 0x81;
const STRING: u8 = 0x82;
const NEG: u8 = 0x83;
const FLOAT: u8 = 0x84;
const LONGINT: u8 = 0x85;
const LONGNEG: u8 = 0x86;
const VOCAB: u8 = 0x87;
const OPEN: u8 = 0x88;
const CLOSE: u8 = 0x89;
const ABORT: u8 = 0x8a;
const ERROR: u8 = 0x8d;
const PING: u8 = 0x8e;
const PONG: u8 = 0x8f;

/// A header longer than this is a protocol error (Foolscap's limit).
const MAX_HEADER: usize = 64;
/// Foolscap refuses longer ERROR texts.
const MAX_ERROR: usize = 1000;
/// LONGINT/LONGNEG magnitudes beyond this many bytes are refused (none occur in the introducer).
const MAX_LONGINT: usize = 64;

/// What one connection's receiver accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest STRING (Foolscap has none under `Any()`; announcements are a few KB).
    pub max_string: usize,
    /// The deepest nesting of sequences.
    pub max_depth: usize,
    /// The most values in one top-level message.
    pub max_values: usize,
    /// The most bytes of STRING bodies in one top-level message.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string: 256 * 1024,
            max_depth: 32,
            max_values: 50_000,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A Banana protocol error: the connection must be closed (after an ERROR token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BananaError {
    /// A header of more than 64 bytes, or a number too large to hold.
    #[error("token header too long")]
    HeaderTooLong,
    /// An unknown or obsolete type byte.
    #[error("unknown token type {0:#04x}")]
    BadType(u8),
    /// A STRING, ERROR or LONGINT longer than allowed.
    #[error("token body of {0} bytes is too long")]
    TooLong(u64),
    /// A VOCAB index outside the negotiated table.
    #[error("unknown vocab index {0}")]
    BadVocab(u64),
    /// A token other than OPEN at top level.
    #[error("top-level must be OPEN")]
    TopLevelNotOpen,
    /// A CLOSE whose number is not its OPEN's.
    #[error("lost sync: CLOSE {got} for OPEN {open}")]
    LostSync {
        /// the OPEN's number
        open: u64,
        /// the CLOSE's number
        got: u64,
    },
    /// A sequence without a type, or a type that is not a string.
    #[error("sequence without a string type")]
    NoType,
    /// A known sequence type with the wrong contents.
    #[error("malformed {0} sequence")]
    BadSequence(&'static str),
    /// Nested deeper than [`Limits::max_depth`].
    #[error("sequences nested too deep")]
    TooDeep,
    /// More values or bytes in one message than [`Limits`] allows.
    #[error("message too large")]
    MessageTooLarge,
}

/// One Banana token.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// INT or NEG.
    Int(i64),
    /// LONGINT or LONGNEG: sign and big-endian magnitude.
    LongInt {
        /// LONGNEG
        negative: bool,
        /// big-endian bytes
        magnitude: Vec<u8>,
    },
    /// FLOAT.
    Float(f64),
    /// STRING: a byte string.
    String(Vec<u8>),
    /// VOCAB: an index into the negotiated table.
    Vocab(u64),
    /// OPEN with its number.
    Open(u64),
    /// CLOSE with its OPEN's number.
    Close(u64),
    /// ABORT of the sequence with this number.
    Abort(u64),
    /// ERROR: the peer's fatal complaint.
    Error(Vec<u8>),
    /// PING, answered by PONG with the same number.
    Ping(Option<u64>),
    /// PONG.
    Pong(Option<u64>),
}

/// Decodes the token at the start of `input`: the token and its length, or `None` if `input`
/// holds only part of it.
pub fn decode_token(input: &[u8], max_string: usize) -> Result<Option<(Token, usize)>, BananaError> {
    let Some(type_at) = input.iter().take(MAX_HEADER + 1).position(|&b| b >= 0x80) else {
        return if input.len() > MAX_HEADER {
            Err(BananaError::HeaderTooLong)
        } else {
            Ok(None)
        };
    };
    if type_at > MAX_HEADER {
        return Err(BananaError::HeaderTooLong);
    }
    let mut value: u64 = 0;
    for (i, &b) in input[..type_at].iter().enumerate() {
        if b == 0 {
            continue;
        }
        let shift = 7 * i as u32;
        let part = u64::from(b).checked_shl(shift).filter(|p| p >> shift == u64::from(b));
        value = part
            .and_then(|p| value.checked_add(p))
            .ok_or(BananaError::HeaderTooLong)?;
    }
    let number = (type_at > 0).then_some(value);
    let body = type_at + 1;
    let with_body = |len: u64, limit: usize| -> Result<Option<(Vec<u8>, usize)>, BananaError> {
        if len > limit as u64 {
            return Err(BananaError::TooLong(len));
        }
        let end = body + len as usize;
        Ok(input.get(body..end).map(|bytes| (bytes.to_vec(), end)))
    };
    let token = match input[type_at] {
        INT => Token::Int(i64::try_from(value).map_err(|_| BananaError::HeaderTooLong)?),
        NEG => Token::Int(-i64::try_from(value).map_err(|_| BananaError::HeaderTooLong)?),
        STRING => match with_body(value, max_string)? {
            Some((bytes, end)) => return Ok(Some((Token::String(bytes), end))),
            None => return Ok(None),
        },
        FLOAT => match with_body(8, 8)? {
            Some((bytes, end)) => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&bytes);
                return Ok(Some((Token::Float(f64::from_be_bytes(raw)), end)));
            }
            None => return Ok(None),
        },
        kind @ (LONGINT | LONGNEG) => match with_body(value, MAX_LONGINT)? {
            Some((magnitude, end)) => {
                let negative = kind == LONGNEG;
                return Ok(Some((Token::LongInt { negative, magnitude }, end)));
            }
            None => return Ok(None),
        },
        ERROR => match with_body(value, MAX_ERROR)? {
            Some((text, end)) => return Ok(Some((Token::Error(text), end))),
            None => return Ok(None),
        },
        VOCAB => Token::Vocab(value),
        OPEN => Token::Open(value),
        CLOSE => Token::Close(value),
        ABORT => Token::Abort(value),
        PING => Token::Ping(number),
        PONG => Token::Pong(number),
        other => return Err(BananaError::BadType(other)),
    };
    Ok(Some((token, body)))
}

fn header(out: &mut Vec<u8>, mut value: u64) {
    loop {
        out.push((value & 0x7f) as u8);
        value >>= 7;
        if value == 0 {
            break;
        }
    }
}

/// Appends one token's bytes to `out`.
pub fn encode_token(token: &Token, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, value: u64, kind: u8| {
        header(out, value);
        out.push(kind);
    };
    match token {
        Token::Int(v) if *v >= 0 && *v < 1 << 31 => simple(out, v.unsigned_abs(), INT),
        Token::Int(v) if *v < 0 && *v >= -(1 << 31) => simple(out, v.unsigned_abs(), NEG),
        Token::Int(v) => {
            let bytes = v.unsigned_abs().to_be_bytes();
            let start = bytes.iter().position(|&b| b != 0).unwrap_or(7);
            let kind = if *v < 0 { LONGNEG } else { LONGINT };
            simple(out, (8 - start) as u64, kind);
            out.extend_from_slice(&bytes[start..]);
        }
        Token::LongInt { negative, magnitude } => {
            simple(out, magnitude.len() as u64, if *negative { LONGNEG } else { LONGINT });
            out.extend_from_slice(magnitude);
        }
        Token::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Token::String(bytes) => {
            simple(out, bytes.len() as u64, STRING);
            out.extend_from_slice(bytes);
        }
        Token::Error(text) => {
            simple(out, text.len() as u64, ERROR);
            out.extend_from_slice(text);
        }
        Token::Vocab(i) => simple(out, *i, VOCAB),
        Token::Open(n) => simple(out, *n, OPEN),
        Token::Close(n) => simple(out, *n, CLOSE),
        Token::Abort(n) => simple(out, *n, ABORT),
        Token::Ping(n) | Token::Pong(n) => {
            if let Some(n) = n {
                header(out, *n);
            }
            out.push(if matches!(token, Token::Ping(_)) { PING } else { PONG });
        }
    }
}

/// A value carried by Banana (section 3.4.1). Byte strings and text are kept apart, as
/// Foolscap keeps them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// INT or NEG (or a LONGINT that fits).
    Int(i64),
    /// A LONGINT or LONGNEG too large for `i64`.
    LongInt {
        /// LONGNEG
        negative: bool,
        /// big-endian bytes
        magnitude: Vec<u8>,
    },
    /// FLOAT.
    Float(f64),
    /// STRING: Python `bytes`.
    Bytes(Vec<u8>),
    /// `unicode`: Python `str`.
    Text(String),
    /// `none`.
    None,
    /// `boolean`.
    Bool(bool),
    /// `list`.
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `set` or `immutable-set`.
    Set(Vec<Value>),
    /// `dict`, in the order received.
    Dict(Vec<(Value, Value)>),
    /// Any other sequence (`call`, `answer`, `error`, `arguments`, `my-reference`, `copyable`…):
    /// its type and the values after it.
    Sequence {
        /// the type, e.g. `call`
        kind: String,
        /// the rest of its tokens, as values
        items: Vec<Value>,
    },
}

impl Value {
    /// A byte string from text.
    pub fn bytes(text: &str) -> Value {
        Value::Bytes(text.as_bytes().to_vec())
    }

    /// The bytes of a STRING, or the UTF-8 of a `unicode`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(bytes) => Some(bytes),
            Value::Text(text) => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// A STRING or `unicode` as text, if it is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The value under byte-string or text key `key` of a `dict`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// What the receiver passes up from one token.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A complete top-level sequence.
    Message(Value),
    /// A PING to answer with PONG (same number).
    Ping(Option<u64>),
    /// The peer's ERROR text: it is about to close.
    PeerError(String),
}

struct Frame {
    number: u64,
    kind: Option<String>,
    items: Vec<Value>,
}

/// Builds values from the tokens of one direction of a connection.
pub struct Receiver {
    vocab: &'static [&'static str],
    limits: Limits,
    stack: Vec<Frame>,
    values: usize,
    bytes: usize,
    aborted: bool,
}

impl Receiver {
    /// A receiver for vocab table `vocab_index` (0 or 1).
    pub fn new(vocab_index: u32, limits: Limits) -> Receiver {
        Receiver {
            vocab: if vocab_index == 1 { &VOCAB_TABLE_1 } else { &[] },
            limits,
            stack: Vec::new(),
            values: 0,
            bytes: 0,
            aborted: false,
        }
    }

    /// The longest STRING this receiver accepts (for [`decode_token`]).
    pub fn max_string(&self) -> usize {
        self.limits.max_string
    }

    /// Takes one token; returns what it completes.
    pub fn feed(&mut self, token: Token) -> Result<Option<Event>, BananaError> {
        let value = match token {
            Token::Ping(n) => return Ok(Some(Event::Ping(n))),
            Token::Pong(_) => return Ok(None),
            Token::Error(text) => return Ok(Some(Event::PeerError(String::from_utf8_lossy(&text).into_owned()))),
            Token::Open(number) => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(BananaError::TooDeep);
                }
                self.stack.push(Frame {
                    number,
                    kind: None,
                    items: Vec::new(),
                });
                return Ok(None);
            }
            Token::Abort(_) => {
                if self.stack.is_empty() {
                    return Err(BananaError::TopLevelNotOpen);
                }
                // The message is dropped when its outermost sequence closes.
                self.aborted = true;
                return Ok(None);
            }
            Token::Close(number) => {
                let frame = self.stack.pop().ok_or(BananaError::TopLevelNotOpen)?;
                if frame.number != number {
                    return Err(BananaError::LostSync {
                        open: frame.number,
                        got: number,
                    });
                }
                let kind = frame.kind.ok_or(BananaError::NoType)?;
                let value = finish(kind, frame.items)?;
                if self.stack.is_empty() {
                    let aborted = std::mem::take(&mut self.aborted);
                    self.values = 0;
                    self.bytes = 0;
                    return Ok((!aborted).then_some(Event::Message(value)));
                }
                value
            }
            Token::Vocab(index) => {
                let word = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.vocab.get(i))
                    .ok_or(BananaError::BadVocab(index))?;
                Value::bytes(word)
            }
            Token::String(bytes) => {
                self.bytes += bytes.len();
                if self.bytes > self.limits.max_message_bytes {
                    return Err(BananaError::MessageTooLarge);
                }
                Value::Bytes(bytes)
            }
            Token::Int(v) => Value::Int(v),
            Token::LongInt { negative, magnitude } => long_int(negative, magnitude),
            Token::Float(f) => Value::Float(f),
        };
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(BananaError::MessageTooLarge);
        }
        let frame = self.stack.last_mut().ok_or(BananaError::TopLevelNotOpen)?;
        if frame.kind.is_none() {
            let Value::Bytes(kind) = value else {
                return Err(BananaError::NoType);
            };
            frame.kind = Some(String::from_utf8(kind).map_err(|_| BananaError::NoType)?);
        } else {
            frame.items.push(value);
        }
        Ok(None)
    }
}

fn long_int(negative: bool, magnitude: Vec<u8>) -> Value {
    let significant: Vec<u8> = magnitude.iter().copied().skip_while(|&b| b == 0).collect();
    if significant.len() <= 7 {
        let mut raw = [0u8; 8];
        raw[8 - significant.len()..].copy_from_slice(&significant);
        let v = i64::from_be_bytes(raw);
        return Value::Int(if negative { -v } else { v });
    }
    Value::LongInt { negative, magnitude }
}

fn finish(kind: String, mut items: Vec<Value>) -> Result<Value, BananaError> {
    Ok(match kind.as_str() {
        "unicode" => match items.pop() {
            Some(Value::Bytes(bytes)) if items.is_empty() => {
                Value::Text(String::from_utf8(bytes).map_err(|_| BananaError::BadSequence("unicode"))?)
            }
            _ => return Err(BananaError::BadSequence("unicode")),
        },
        "none" if items.is_empty() => Value::None,
        "none" => return Err(BananaError::BadSequence("none")),
        "boolean" => match items.as_slice() {
            [Value::Int(0)] => Value::Bool(false),
            [Value::Int(1)] => Value::Bool(true),
            _ => return Err(BananaError::BadSequence("boolean")),
        },
        "list" => Value::List(items),
        "tuple" => Value::Tuple(items),
        "set" | "immutable-set" => Value::Set(items),
        "dict" => {
            if !items.len().is_multiple_of(2) {
                return Err(BananaError::BadSequence("dict"));
            }
            let mut pairs = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Value::Dict(pairs)
        }
        _ => Value::Sequence { kind, items },
    })
}

/// Encodes values for one direction of a connection, numbering its OPENs from 0.
pub struct Sender {
    vocab: &'static [&'static str],
    next_open: u64,
}

impl Sender {
    /// A sender for vocab table `vocab_index` (0 or 1).
    pub fn new(vocab_index: u32) -> Sender {
        Sender {
            vocab: if vocab_index == 1 { &VOCAB_TABLE_1 } else { &[] },
            next_open: 0,
        }
    }

    fn string(&self, bytes: &[u8], out: &mut Vec<u8>) {
        // As Python does: every byte string that is a table word goes as VOCAB.
        match self.vocab.iter().position(|w| w.as_bytes() == bytes) {
            Some(i) => encode_token(&Token::Vocab(i as u64), out),
            None => encode_token(&Token::String(bytes.to_vec()), out),
        }
    }

    fn sequence(&mut self, kind: &str, out: &mut Vec<u8>, body: impl FnOnce(&mut Sender, &mut Vec<u8>)) {
        let number = self.next_open;
        self.next_open += 1;
        encode_token(&Token::Open(number), out);
        self.string(kind.as_bytes(), out);
        body(self, out);
        encode_token(&Token::Close(number), out);
    }

    fn all(&mut self, values: &[Value], out: &mut Vec<u8>) {
        for v in values {
            self.encode(v, out);
        }
    }

    /// Appends `value`'s tokens to `out`.
    pub fn encode(&mut self, value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Int(v) => encode_token(&Token::Int(*v), out),
            Value::LongInt { negative, magnitude } => encode_token(
                &Token::LongInt {
                    negative: *negative,
                    magnitude: magnitude.clone(),
                },
                out,
            ),
            Value::Float(f) => encode_token(&Token::Float(*f), out),
            Value::Bytes(bytes) => self.string(bytes, out),
            Value::Text(text) => self.sequence("unicode", out, |s, out| s.string(text.as_bytes(), out)),
            Value::None => self.sequence("none", out, |_, _| {}),
            Value::Bool(b) => self.sequence("boolean", out, |_, out| encode_token(&Token::Int(i64::from(*b)), out)),
            Value::List(items) => self.sequence("list", out, |s, out| s.all(items, out)),
            Value::Tuple(items) => self.sequence("tuple", out, |s, out| s.all(items, out)),
            Value::Set(items) => self.sequence("set", out, |s, out| s.all(items, out)),
            Value::Dict(pairs) => self.sequence("dict", out, |s, out| {
                for (k, v) in pairs {
                    s.encode(k, out);
                    s.encode(v, out);
                }
            }),
            Value::Sequence { kind, items } => self.sequence(kind, out, |s, out| s.all(items, out)),
        }
    }
}

/// Decodes every token of `input` into events, stopping at the first error (for tests and fuzzing).
pub fn decode_all(input: &[u8], vocab_index: u32, limits: Limits) -> Result<Vec<Event>, BananaError> {
    let mut receiver = Receiver::new(vocab_index, limits);
    let mut events = Vec::new();
    let mut at = 0;
    while let Some((token, used)) = decode_token(&input[at..], limits.max_string)? {
        at += used;
        if let Some(event) = receiver.feed(token)? {
            events.push(event);
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(text.as_bytes()).unwrap()
    }

    #[test]
    fn token_examples_from_the_reference() {
        let cases: [(Token, &str); 9] = [
            (Token::Int(0), "0081"),
            (Token::Int(300), "2c0281"),
            (Token::Int(-5), "0583"),
            (Token::String(b"abc".to_vec()), "0382616263"),
            (Token::Int(1 << 31), "048580000000"),
            (Token::Ping(None), "8e"),
            (Token::Ping(Some(7)), "078e"),
            (Token::Pong(Some(7)), "078f"),
            (Token::Open(596), "540488"),
        ];
        for (token, bytes) in cases {
            let mut out = Vec::new();
            encode_token(&token, &mut out);
            assert_eq!(data_encoding::HEXLOWER.encode(&out), bytes);
            let (back, used) = decode_token(&out, 1024).unwrap().unwrap();
            assert_eq!(used, out.len());
            let back = match back {
                Token::LongInt { negative, magnitude } => match long_int(negative, magnitude) {
                    Value::Int(v) => Token::Int(v),
                    other => panic!("{other:?}"),
                },
                other => other,
            };
            assert_eq!(back, token);
        }
        assert_eq!(decode_token(&hex("2c02"), 10).unwrap(), None, "incomplete header");
        assert_eq!(decode_token(&hex("03826162"), 10).unwrap(), None, "incomplete body");
        assert_eq!(decode_token(&hex("0b82"), 10), Err(BananaError::TooLong(11)));
        assert_eq!(decode_token(&[0x00; 65], 10), Err(BananaError::HeaderTooLong));
        assert_eq!(decode_token(&hex("0080"), 10), Err(BananaError::BadType(LIST)));
        assert_eq!(
            decode_token(&[0x7f; 12].iter().chain(&[INT]).copied().collect::<Vec<_>>(), 10),
            Err(BananaError::HeaderTooLong)
        );
    }

    #[test]
    fn framing_errors_are_fatal_and_pings_pass_through() {
        let limits = Limits::default();
        assert_eq!(decode_all(&hex("0181"), 1, limits), Err(BananaError::TopLevelNotOpen));
        assert_eq!(
            decode_all(&hex("00880d8701890089"), 1, limits),
            Err(BananaError::LostSync { open: 0, got: 1 })
        );
        assert_eq!(decode_all(&hex("00880089"), 1, limits), Err(BananaError::NoType));
        assert_eq!(
            decode_all(&hex("0088638789"), 1, limits),
            Err(BananaError::BadVocab(0x63))
        );
        let deep: Vec<u8> = (0..40u8).flat_map(|i| [i, OPEN, 4, VOCAB]).collect();
        assert_eq!(decode_all(&deep, 1, limits), Err(BananaError::TooDeep));
        // A PING in the middle of a sequence is answered and does not disturb it.
        let events = decode_all(&hex("00880d8701818e0188008701890089"), 1, limits).unwrap();
        assert_eq!(events[0], Event::Ping(None));
        assert!(matches!(&events[1], Event::Message(Value::Sequence { kind, .. }) if kind == "answer"));
        // An aborted message is dropped whole.
        assert_eq!(decode_all(&hex("00880d870181008a0089"), 1, limits).unwrap(), []);
        let many: Vec<u8> = hex("00880487")
            .into_iter()
            .chain((0..60_000).flat_map(|_| [0u8, INT]))
            .collect();
        assert_eq!(decode_all(&many, 1, limits), Err(BananaError::MessageTooLarge));
    }

    #[test]
    fn values_round_trip_including_text_and_vocab_words() {
        let value = Value::Sequence {
            kind: "call".into(),
            items: vec![
                Value::Int(-1 << 40),
                Value::Text("hé".into()),
                Value::bytes("list"),
                Value::Dict(vec![(
                    Value::bytes("k"),
                    Value::Set(vec![Value::None, Value::Bool(true)]),
                )]),
                Value::Tuple(vec![Value::Float(1.5), Value::List(vec![])]),
            ],
        };
        for vocab in [0, 1] {
            let mut out = Vec::new();
            Sender::new(vocab).encode(&value, &mut out);
            let events = decode_all(&out, vocab, Limits::default()).unwrap();
            assert_eq!(events, [Event::Message(value.clone())]);
        }
        // Section 3.4.1's example: "hé" as the 7th OPEN under table 1.
        let mut sender = Sender::new(1);
        sender.next_open = 6;
        let mut out = Vec::new();
        sender.encode(&Value::Text("hé".into()), &mut out);
        assert_eq!(out, hex("06880887038268c3a90689"));
    }
}
