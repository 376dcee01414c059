//! Many SFTP requests in flight on one session, spoken in raw frames: a request that waits does not hold back the others, and every request is answered exactly once.

use std::collections::HashMap;

use crate::common::gateway::Gateway;
use crate::common::pseudo_random;
use crate::sftp_abuse::{
    FXP_ATTRS, FXP_CLOSE, FXP_READ, FXP_STAT, OPEN_READ, OPEN_WRITE_CREATE_TRUNCATE, RawSftp, Reply, request, string,
};

const FXP_DATA: u8 = 103;

/// A READ request body.
fn read(id: u32, handle: &[u8], offset: u64, len: u32) -> Vec<u8> {
    request(
        FXP_READ,
        id,
        &[&string(handle), &offset.to_be_bytes(), &len.to_be_bytes()],
    )
}

/// The data of a DATA reply.
fn data_of(reply: &Reply) -> Vec<u8> {
    assert_eq!(reply.kind, FXP_DATA, "expected data, got {reply:?}");
    let len = u32::from_be_bytes(reply.rest[..4].try_into().unwrap()) as usize;
    reply.rest[4..4 + len].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_waiting_for_memory_does_not_hold_back_the_requests_after_it_and_each_is_answered_once() {
    // Segments of 1 MiB, a budget of 8 MiB: once the test takes it all, a read of a file not yet
    // downloaded waits until it is given back.
    let budget_bytes = 8 << 20;
    let gw = Gateway::start_with_memory_budget(budget_bytes).await;
    let big = pseudo_random(3 << 20, 31);
    let small = pseudo_random(20_000, 32);
    let mut sftp = RawSftp::open(&gw).await;
    for (id, (name, data)) in [("big.bin", &big), ("small.bin", &small)].into_iter().enumerate() {
        let id = id as u32 * 100;
        let handle = sftp.open_file(id + 1, name, OPEN_WRITE_CREATE_TRUNCATE).await;
        for (n, chunk) in data.chunks(60_000).enumerate() {
            let written = sftp.write(id + 2 + n as u32, &handle, (n * 60_000) as u64, chunk).await;
            assert_eq!(written.0, 0, "write {n} of {name}: {written:?}");
        }
        let closed = sftp.call(&request(FXP_CLOSE, id + 99, &[&string(&handle)])).await;
        assert_eq!(closed.status().0, 0, "{name} stored");
    }
    let big_handle = sftp.open_file(201, "big.bin", OPEN_READ).await;
    let small_handle = sftp.open_file(202, "small.bin", OPEN_READ).await;

    let budget = gw.grid.grid.memory_budget().clone();
    let everything = budget.acquire(budget_bytes).await;
    // In one go: a read of the big file's second segment (it waits for the budget), then 100
    // stats (directory reads, which need none of it).
    let slow = 1000;
    let mut sent: Vec<u32> = vec![slow];
    let mut wire = frame(&read(slow, &big_handle, 1 << 20, 32 * 1024));
    for id in 1001..1101 {
        wire.extend(frame(&request(FXP_STAT, id, &[&string(b"/small.bin")])));
        sent.push(id);
    }
    sftp.send_bytes(&wire).await;

    // Every stat is answered while the read waits: it cannot finish before the budget is back,
    // which happens only once they are all in.
    let mut answered: HashMap<u32, Reply> = HashMap::new();
    while answered.len() < 100 {
        let reply = sftp.reply().await.expect("the channel stays open");
        assert_ne!(reply.id, slow, "the read finished with no memory budget left");
        assert_eq!(reply.kind, FXP_ATTRS, "{reply:?}");
        assert!(answered.insert(reply.id, reply).is_none(), "an id answered twice");
    }
    drop(everything);
    let late = sftp
        .reply()
        .await
        .expect("the read is answered once the budget is back");
    assert_eq!(late.id, slow);
    assert!(data_of(&late) == big[1 << 20..(1 << 20) + 32 * 1024], "the read's data");
    answered.insert(late.id, late);

    // Then many reads of both files and stats at once, each answered exactly once and right.
    let mut wire = Vec::new();
    let mut expected: HashMap<u32, Vec<u8>> = HashMap::new();
    for n in 0..96u32 {
        let id = 2000 + n;
        let (handle, data, offset, len) = match n % 3 {
            0 => (&big_handle, &big, u64::from(n) * 32_768, 32_768u32),
            1 => (&small_handle, &small, u64::from(n) * 97 % 19_000, 1_000),
            _ => {
                wire.extend(frame(&request(FXP_STAT, id, &[&string(b"/big.bin")])));
                sent.push(id);
                continue;
            }
        };
        let end = (offset as usize + len as usize).min(data.len());
        expected.insert(id, data[offset as usize..end].to_vec());
        wire.extend(frame(&read(id, handle, offset, len)));
        sent.push(id);
    }
    sftp.send_bytes(&wire).await;
    for _ in 0..96 {
        let reply = sftp.reply().await.expect("the channel stays open");
        if let Some(want) = expected.get(&reply.id) {
            assert!(data_of(&reply) == *want, "read {} came back wrong", reply.id);
        } else {
            assert_eq!(reply.kind, FXP_ATTRS, "{reply:?}");
        }
        assert!(answered.insert(reply.id, reply).is_none(), "an id answered twice");
    }
    let mut ids: Vec<u32> = answered.keys().copied().collect();
    ids.sort();
    sent.sort();
    assert_eq!(ids, sent, "each request answered exactly once");
    // Nothing more comes: a close gets its own reply next.
    let closed = sftp.call(&request(FXP_CLOSE, 3000, &[&string(&big_handle)])).await;
    assert_eq!(closed.status().0, 0);
}

/// The length-prefixed frame of a request body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}
