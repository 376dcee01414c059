//! Fuzz targets for the Foolscap codecs the introducer speaks: the Banana token decoder (with
//! the PB call layer and signed announcements on top) and the negotiation blocks.

use lafs_gateway::foolscap::banana::{Event, Limits, Sender, Value, decode_all};
use lafs_gateway::foolscap::call::Message;
use lafs_gateway::foolscap::negotiation::{self, Decision, Hello};
use lafs_gateway::introducer::signed::SignedAnnouncement;

use super::outcome::{class_of, detail_of};
use crate::engine::Target;

fn hex(text: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(text.as_bytes()).unwrap_or_default()
}

/// Real messages of a Tahoe 1.20 introducer connection (foolscap-introducer.md, 8.5 and 8.6).
fn banana_seeds() -> Vec<Vec<u8>> {
    [
        "00880b870181008112826765745265666572656e636542794e616d6501880c87008104826e616d652082746f74643662736b6676746e6672746835343368756961696e3637716564666f01890089",
        "00880d87018101880f87018140825249496e74726f64756365725075626c6973686572416e6453756273637269626572536572766963655f76322e7461686f652e616c6c6d79646174612e636f6d5a8270623a2f2f7568786d6964377a6d79373761656165336177636f646b69773375697a356c70407463703a3132372e302e302e313a34363139302f746f74643662736b6676746e6672746835343368756961696e3637716564666f01890089",
        "04880d8703810588038713826170706c69636174696f6e2d76657273696f6e11827461686f652d6c6166732f312e32302e303282687474703a2f2f616c6c6d79646174612e6f72672f7461686f652f70726f746f636f6c732f696e74726f64756365722f763206880387068905890489",
        "0a880b87058101810c827375627363726962655f76320b880c8703810c880f87028133825249496e74726f647563657253756273637269626572436c69656e745f76322e7461686f652e616c6c6d79646174612e636f6d5a8270623a2f2f7a7236766c6374636f70636669636876786c71687a6272746663637337786b74407463703a3132372e302e302e313a34363139312f766466663271727837617468647475347a776f76683775337a346d63326937670c89078273746f726167650d8803870c826170702d76657273696f6e730e8804870e890a826d792d76657273696f6e0f88088711827461686f652d6c6166732f312e32302e300f8908826e69636b6e616d6510880887088273746f7261676531108910826f6c646573742d737570706f72746564118808870582312e302e301189078276657273696f6e00810d890b890a89",
        "07880d87048108880087088907898e078e8f",
        "39880b870d81008106826465637265663a880c8700810482636c696401810582636f756e7401813a893989",
        "00880e87018101881287 1e82747769737465642e707974686f6e2e6661696c7572652e4661696c757265 058276616c7565 03827878 0482747970650e826275696c74696e732e4b65794572726f72 0982747261636562616368 0082 0782706172656e7473 02880487 0f826275696c74696e732e6f626a656374 0289 0189 0089",
        "00880487 0088058703827879780389 0500 85 8000000000 08 84 3ff8000000000000 0089",
    ]
    .iter()
    .map(|h| hex(&h.replace(' ', "")))
    .collect()
}

fn encoded(value: &Value, vocab: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Sender::new(vocab).encode(value, &mut out);
    out
}

fn banana_run(input: &[u8]) -> String {
    let mut classes = Vec::new();
    for vocab in [1, 0] {
        match decode_all(input, vocab, Limits::default()) {
            Ok(events) => {
                for event in events.iter().take(4) {
                    let Event::Message(value) = event else {
                        classes.push("ping/error".to_string());
                        continue;
                    };
                    // What we decode, we encode, and that decodes to the same encoding.
                    let first = encoded(value, vocab);
                    let again = decode_all(&first, vocab, Limits::default()).expect("our own encoding decodes");
                    let [Event::Message(back)] = again.as_slice() else {
                        panic!("our encoding decoded to {again:?}")
                    };
                    assert_eq!(encoded(back, vocab), first, "re-encoding differs");
                    match Message::from_value(value.clone()) {
                        Ok(Message::Call(call)) => {
                            for argument in call.positional.iter().take(2) {
                                let items = match argument {
                                    Value::Set(items) => items.as_slice(),
                                    other => std::slice::from_ref(other),
                                };
                                for item in items.iter().take(2) {
                                    if let Ok(signed) = SignedAnnouncement::from_value(item) {
                                        classes.push(format!("ann {:?}", signed.verify().err()));
                                    }
                                }
                            }
                            classes.push(format!("call {}", call.positional.len()));
                        }
                        Ok(Message::Answer { .. }) => classes.push("answer".into()),
                        Ok(Message::Error { .. }) => classes.push("error".into()),
                        Err(e) => classes.push(class_of(&e.to_string())),
                    }
                }
            }
            Err(e) => classes.push(detail_of(&e.to_string())),
        }
    }
    classes.join("|")
}

pub const BANANA: Target = Target {
    name: "banana",
    seeds: banana_seeds,
    dictionary: &[
        b"\x00\x81",
        b"\x00\x82",
        b"\x88",
        b"\x89",
        b"\x0b\x87",
        b"\x0c\x87",
        b"\x0d\x87",
        b"\x0f\x87",
        b"\x06\x87",
        b"\x05\x87",
        b"\x08\x87",
        b"\x8a",
        b"\x8e",
        b"\x8f",
        b"\x85",
        b"\x84",
        b"\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x01",
        b"v0-",
    ],
    max_len: 8192,
    run: banana_run,
};

/// The captured negotiation blocks (foolscap-introducer.md, 8.2 to 8.4), one per seed, plus
/// several in one input.
fn negotiation_seeds() -> Vec<Vec<u8>> {
    let blocks: [&[u8]; 6] = [
        b"GET /id/uhxmid7zmy77aeae3awcodkiw3uiz5lp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n",
        negotiation::SWITCHING_PROTOCOLS,
        b"banana-negotiation-range: 3 3\r\ninitial-vocab-table-range: 0 1\r\nlast-connection: none 0\r\nmy-incarnation: 282d1a5f22e4c8c9\r\nmy-tub-id: zr6vlctcopcfichvxlqhzbrtfccs7xkt\r\n\r\n",
        b"banana-decision-version: 3\r\ncurrent-connection: 282d1a5f22e4c8c9 1\r\ninitial-vocab-table-index: 1 bb33\r\n\r\n",
        b"banana-decision-version: 1\r\nerror: Duplicate connection\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error: unknown TubID aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
    ];
    let mut seeds: Vec<Vec<u8>> = blocks.iter().map(|b| b.to_vec()).collect();
    seeds.push(blocks.concat());
    seeds
}

fn negotiation_run(input: &[u8]) -> String {
    let mut classes = Vec::new();
    let mut rest = input;
    for _ in 0..4 {
        let block = match negotiation::block_end(rest) {
            Ok(Some(end)) => {
                let (block, after) = rest.split_at(end);
                rest = after;
                block
            }
            Ok(None) => rest,
            Err(e) => {
                classes.push(e.to_string());
                break;
            }
        };
        let _ = negotiation::is_foolscap_start(block);
        classes.push(match negotiation::parse_request(block) {
            Ok(_) => "request".into(),
            Err(e) => class_of(&e.to_string()),
        });
        classes.push(match negotiation::parse_response(block) {
            Ok(()) => "101".into(),
            Err(_) => "refused".into(),
        });
        let clean = |s: &str| !s.contains(['\r', '\n']);
        match Hello::parse(block) {
            Ok(hello) => {
                let fields_clean = clean(&hello.tub_id)
                    && hello.incarnation.as_deref().is_none_or(clean)
                    && hello.last_connection.as_ref().is_none_or(|(i, _)| clean(i));
                if fields_clean {
                    assert_eq!(Hello::parse(&hello.encode()).as_ref(), Ok(&hello), "a Hello re-encodes");
                }
                classes.push("hello".into());
            }
            Err(e) => classes.push(detail_of(&e.to_string())),
        }
        match Decision::parse(block) {
            Ok(decision) => {
                if clean(&decision.current_connection.0) {
                    assert_eq!(
                        Decision::parse(&decision.encode()).as_ref(),
                        Ok(&decision),
                        "a Decision re-encodes"
                    );
                }
                classes.push("decision".into());
            }
            Err(e) => classes.push(detail_of(&e.to_string())),
        }
        if rest.is_empty() {
            break;
        }
    }
    classes.join("|")
}

pub const NEGOTIATION: Target = Target {
    name: "negotiation",
    seeds: negotiation_seeds,
    dictionary: &[
        b"\r\n",
        b"\r\n\r\n",
        b": ",
        b"GET /id/",
        b" HTTP/1.1",
        b"HTTP/1.1 101 ",
        b"Upgrade: TLS/1.0",
        b"banana-negotiation-range: ",
        b"initial-vocab-table-range: ",
        b"last-connection: ",
        b"my-incarnation: ",
        b"my-tub-id: ",
        b"banana-decision-version: ",
        b"current-connection: ",
        b"initial-vocab-table-index: ",
        b"error: ",
        b" bb33",
        b"4294967296",
        b"18446744073709551616",
    ],
    max_len: 6000,
    run: negotiation_run,
};
