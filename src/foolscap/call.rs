//! PB messages (section 4): `call`, `answer` and `error` sequences, object references and
//! Failures, to and from Banana values. Pure.

use super::banana::Value;

/// Why a top-level sequence is not a well-formed PB message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not `call`, `answer` or `error`.
    #[error("top-level sequence `{0}` is not call, answer or error")]
    NotPb(String),
    /// A `call`, `answer` or `error` with the wrong layout.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A reference to an object the sender exports (`my-reference`, section 4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The object's number in the sender's namespace.
    pub clid: i64,
    /// Its RemoteInterface name, sent with the first transmission of the clid.
    pub interface: Option<String>,
    /// A fURL for it (its tub ID must be the sender's).
    pub furl: Option<String>,
}

impl Reference {
    /// The `my-reference` sequence.
    pub fn to_value(&self) -> Value {
        let mut items = vec![Value::Int(self.clid)];
        if let Some(interface) = &self.interface {
            items.push(Value::bytes(interface));
            if let Some(furl) = &self.furl {
                items.push(Value::bytes(furl));
            }
        }
        Value::Sequence {
            kind: "my-reference".into(),
            items,
        }
    }

    /// Reads a `my-reference` in any of its three lengths.
    pub fn from_value(value: &Value) -> Option<Reference> {
        let Value::Sequence { kind, items } = value else {
            return None;
        };
        if kind != "my-reference" {
            return None;
        }
        let (clid, rest) = items.split_first()?;
        let Value::Int(clid) = clid else { return None };
        let text = |i: usize| rest.get(i).and_then(Value::as_text).map(str::to_string);
        if rest.len() > 2 {
            return None;
        }
        Some(Reference {
            clid: *clid,
            interface: text(0),
            furl: text(1),
        })
    }
}

/// A remote method call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The caller's request number (0: no answer wanted).
    pub req_id: i64,
    /// The object called, in the receiver's namespace (0: the broker).
    pub target: i64,
    /// The method, without `remote_`.
    pub method: String,
    /// Positional arguments.
    pub positional: Vec<Value>,
    /// Keyword arguments.
    pub keywords: Vec<(String, Value)>,
}

impl Call {
    /// The argument at `position`, or else the keyword `name` (callers may use either form).
    pub fn argument(&self, position: usize, name: &str) -> Option<&Value> {
        self.positional
            .get(position)
            .or_else(|| self.keywords.iter().find(|(k, _)| k == name).map(|(_, v)| v))
    }
}

/// A remote exception (`twisted.python.failure.Failure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `str(exception)`.
    pub value: String,
    /// The exception's type, e.g. `builtins.KeyError`.
    pub kind: String,
    /// The peer's traceback (never logged: it may name the peer's files).
    pub traceback: String,
    /// The type's MRO.
    pub parents: Vec<String>,
}

impl Failure {
    /// A Failure of Python type `kind` (e.g. `builtins.ValueError`) saying `value`.
    pub fn new(kind: &str, value: &str) -> Failure {
        let mut parents = vec![kind.to_string()];
        for base in ["builtins.Exception", "builtins.BaseException", "builtins.object"] {
            if base != kind {
                parents.push(base.to_string());
            }
        }
        Failure {
            value: value.to_string(),
            kind: kind.to_string(),
            traceback: "Traceback unavailable\n".into(),
            parents,
        }
    }

    fn to_value(&self) -> Value {
        Value::Sequence {
            kind: "copyable".into(),
            items: vec![
                Value::bytes("twisted.python.failure.Failure"),
                Value::bytes("value"),
                Value::bytes(&self.value),
                Value::bytes("type"),
                Value::bytes(&self.kind),
                Value::bytes("traceback"),
                Value::bytes(&self.traceback),
                Value::bytes("parents"),
                Value::List(self.parents.iter().map(|p| Value::bytes(p)).collect()),
            ],
        }
    }

    fn from_value(value: &Value) -> Option<Failure> {
        let Value::Sequence { kind, items } = value else {
            return None;
        };
        if kind != "copyable" {
            return None;
        }
        let (class, attributes) = items.split_first()?;
        if class.as_text()? != "twisted.python.failure.Failure" || !attributes.len().is_multiple_of(2) {
            return None;
        }
        let mut failure = Failure {
            value: String::new(),
            kind: String::new(),
            traceback: String::new(),
            parents: Vec::new(),
        };
        for pair in attributes.chunks(2) {
            let text = || pair[1].as_bytes().map(|b| String::from_utf8_lossy(b).into_owned());
            match pair[0].as_text()? {
                "value" => failure.value = text()?,
                "type" => failure.kind = text()?,
                "traceback" => failure.traceback = text()?,
                "parents" => {
                    let Value::List(parents) = &pair[1] else { return None };
                    failure.parents = parents.iter().filter_map(|p| p.as_text().map(str::to_string)).collect();
                }
                _ => {}
            }
        }
        Some(failure)
    }
}

/// A PB message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call to one of the receiver's objects.
    Call(Call),
    /// The result of the receiver's call `req_id`.
    Answer {
        /// which call
        req_id: i64,
        /// its result
        value: Value,
    },
    /// The failure of the receiver's call `req_id`.
    Error {
        /// which call
        req_id: i64,
        /// why
        failure: Failure,
    },
}

impl Message {
    /// The message as a Banana value.
    pub fn to_value(&self) -> Value {
        let (kind, items) = match self {
            Message::Call(call) => {
                let mut arguments = vec![Value::Int(call.positional.len() as i64)];
                arguments.extend(call.positional.iter().cloned());
                for (name, value) in &call.keywords {
                    arguments.push(Value::bytes(name));
                    arguments.push(value.clone());
                }
                let arguments = Value::Sequence {
                    kind: "arguments".into(),
                    items: arguments,
                };
                (
                    "call",
                    vec![
                        Value::Int(call.req_id),
                        Value::Int(call.target),
                        Value::bytes(&call.method),
                        arguments,
                    ],
                )
            }
            Message::Answer { req_id, value } => ("answer", vec![Value::Int(*req_id), value.clone()]),
            Message::Error { req_id, failure } => ("error", vec![Value::Int(*req_id), failure.to_value()]),
        };
        Value::Sequence {
            kind: kind.into(),
            items,
        }
    }

    /// Reads a top-level sequence as a PB message.
    pub fn from_value(value: Value) -> Result<Message, CallError> {
        let Value::Sequence { kind, items } = value else {
            return Err(CallError::NotPb("data".into()));
        };
        match kind.as_str() {
            "call" => {
                let [
                    Value::Int(req_id),
                    Value::Int(target),
                    method,
                    Value::Sequence { kind, items: arguments },
                ] = <[Value; 4]>::try_from(items).map_err(|_| CallError::Malformed("call"))?
                else {
                    return Err(CallError::Malformed("call"));
                };
                let method = method.as_text().ok_or(CallError::Malformed("call"))?.to_string();
                if kind != "arguments" {
                    return Err(CallError::Malformed("call"));
                }
                let mut arguments = arguments.into_iter();
                let Some(Value::Int(count)) = arguments.next() else {
                    return Err(CallError::Malformed("arguments"));
                };
                let count = usize::try_from(count).map_err(|_| CallError::Malformed("arguments"))?;
                let positional: Vec<Value> = arguments.by_ref().take(count).collect();
                if positional.len() != count {
                    return Err(CallError::Malformed("arguments"));
                }
                let mut keywords = Vec::new();
                while let Some(name) = arguments.next() {
                    let name = name.as_text().ok_or(CallError::Malformed("arguments"))?.to_string();
                    let value = arguments.next().ok_or(CallError::Malformed("arguments"))?;
                    keywords.push((name, value));
                }
                Ok(Message::Call(Call {
                    req_id,
                    target,
                    method,
                    positional,
                    keywords,
                }))
            }
            "answer" => {
                let [Value::Int(req_id), value] =
                    <[Value; 2]>::try_from(items).map_err(|_| CallError::Malformed("answer"))?
                else {
                    return Err(CallError::Malformed("answer"));
                };
                Ok(Message::Answer { req_id, value })
            }
            "error" => {
                let [Value::Int(req_id), failure] =
                    <[Value; 2]>::try_from(items).map_err(|_| CallError::Malformed("error"))?
                else {
                    return Err(CallError::Malformed("error"));
                };
                let failure = Failure::from_value(&failure).ok_or(CallError::Malformed("error"))?;
                Ok(Message::Error { req_id, failure })
            }
            _ => Err(CallError::NotPb(kind.chars().take(40).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foolscap::banana::{Event, Limits, Sender, decode_all};

    fn hex(text: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(text.as_bytes()).unwrap()
    }

    /// Decodes one captured message, checks it reads as PB, and re-encodes it byte for byte
    /// with a sender whose OPEN counter stands where the capture's did.
    fn round_trip(bytes: &[u8], first_open: u64) -> Message {
        let events = decode_all(bytes, 1, Limits::default()).unwrap();
        let [Event::Message(value)] = events.as_slice() else {
            panic!("{events:?}")
        };
        let message = Message::from_value(value.clone()).unwrap();
        let mut sender = Sender::new(1);
        for _ in 0..first_open {
            sender.encode(&Value::None, &mut Vec::new());
        }
        let mut out = Vec::new();
        sender.encode(&message.to_value(), &mut out);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&out),
            data_encoding::HEXLOWER.encode(bytes)
        );
        message
    }

    const CALL1: &str = "00880b870181008112826765745265666572656e636542794e616d6501880c87008104826e616d652082746f74643662736b6676746e6672746835343368756961696e3637716564666f01890089";
    const ANSWER1: &str = "00880d87018101880f87018140825249496e74726f64756365725075626c6973686572416e6453756273637269626572536572766963655f76322e7461686f652e616c6c6d79646174612e636f6d5a8270623a2f2f7568786d6964377a6d79373761656165336177636f646b69773375697a356c70407463703a3132372e302e302e313a34363139302f746f74643662736b6676746e6672746835343368756961696e3637716564666f01890089";
    const ANSWER3: &str = "04880d8703810588038713826170706c69636174696f6e2d76657273696f6e11827461686f652d6c6166732f312e32302e303282687474703a2f2f616c6c6d79646174612e6f72672f7461686f652f70726f746f636f6c732f696e74726f64756365722f763206880387068905890489";
    const CALL5: &str = "0a880b8705810181 0c827375627363726962655f76320b880c8703810c880f87028133825249496e74726f647563657253756273637269626572436c69656e745f76322e7461686f652e616c6c6d79646174612e636f6d5a8270623a2f2f7a7236766c6374636f70636669636876786c71687a6272746663637337786b74407463703a3132372e302e302e313a34363139312f766466663271727837617468647475347a776f76683775337a346d63326937670c89078273746f726167650d8803870c826170702d76657273696f6e730e8804870e890a826d792d76657273696f6e0f88088711827461686f652d6c6166732f312e32302e300f8908826e69636b6e616d6510880887088273746f7261676531108910826f6c646573742d737570706f72746564118808870582312e302e301189078276657273696f6e00810d890b890a89";
    const ANSWER_NONE: &str = "07880d8704810888008708890789";
    const DECREF: &str = "39880b870d81008106826465637265663a880c8700810482636c696401810582636f756e7401813a893989";

    #[test]
    fn captured_startup_messages_round_trip() {
        let Message::Call(call) = round_trip(&hex(CALL1), 0) else {
            panic!()
        };
        assert_eq!(
            (call.req_id, call.target, call.method.as_str()),
            (1, 0, "getReferenceByName")
        );
        assert_eq!(
            call.argument(0, "name").and_then(Value::as_text),
            Some("totd6bskfvtnfrth543huiain67qedfo")
        );
        let Message::Answer { req_id: 1, value } = round_trip(&hex(ANSWER1), 0) else {
            panic!()
        };
        let reference = Reference::from_value(&value).unwrap();
        assert_eq!(reference.clid, 1);
        assert_eq!(
            reference.interface.as_deref(),
            Some("RIIntroducerPublisherAndSubscriberService_v2.tahoe.allmydata.com")
        );
        let Message::Answer { req_id: 3, value } = round_trip(&hex(ANSWER3), 4) else {
            panic!()
        };
        assert!(
            value
                .get("http://allmydata.org/tahoe/protocols/introducer/v2")
                .is_some()
        );
        let Message::Call(call) = round_trip(&hex(&CALL5.replace(' ', "")), 10) else {
            panic!()
        };
        assert_eq!(call.method, "subscribe_v2");
        let subscriber = Reference::from_value(&call.positional[0]).unwrap();
        assert_eq!(subscriber.clid, 2);
        assert_eq!(call.positional[1], Value::bytes("storage"));
        assert_eq!(
            call.positional[2].get("nickname"),
            Some(&Value::Text("storage1".into()))
        );
        let Message::Answer {
            req_id: 4,
            value: Value::None,
        } = round_trip(&hex(ANSWER_NONE), 7)
        else {
            panic!()
        };
        let Message::Call(call) = round_trip(&hex(DECREF), 0x39) else {
            panic!()
        };
        assert_eq!(call.argument(0, "clid"), Some(&Value::Int(1)));
    }

    #[test]
    fn failures_and_bad_layouts() {
        let failure = Failure::new("builtins.ValueError", "bad announcement");
        let message = Message::Error { req_id: 9, failure };
        assert_eq!(Message::from_value(message.to_value()).unwrap(), message);
        let not_pb = Value::Sequence {
            kind: "set-vocab".into(),
            items: vec![],
        };
        assert!(matches!(Message::from_value(not_pb), Err(CallError::NotPb(_))));
        let short = Value::Sequence {
            kind: "call".into(),
            items: vec![Value::Int(1)],
        };
        assert_eq!(Message::from_value(short), Err(CallError::Malformed("call")));
        let bad_count = Message::Call(Call {
            req_id: 1,
            target: 0,
            method: "m".into(),
            positional: vec![],
            keywords: vec![],
        })
        .to_value();
        let Value::Sequence { kind, mut items } = bad_count else {
            panic!()
        };
        items[3] = Value::Sequence {
            kind: "arguments".into(),
            items: vec![Value::Int(3), Value::None],
        };
        assert_eq!(
            Message::from_value(Value::Sequence { kind, items }),
            Err(CallError::Malformed("arguments"))
        );
    }
}
