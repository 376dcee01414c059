//! Fuzz harness for every parser that reads bytes from the network or from users (see
//! fuzz/README.md). `cargo test` runs each target briefly; `fuzz/run.sh TARGET SECONDS` runs one
//! for as long as asked and prints its executions and time.

mod alloc;
mod engine;
mod targets;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

#[test]
fn sftp_packets() {
    engine::fuzz(&targets::SFTP_PACKETS);
}

#[test]
fn ftp_commands() {
    engine::fuzz(&targets::FTP_COMMANDS);
}

#[test]
fn http_cbor() {
    engine::fuzz(&targets::HTTP_CBOR);
}

#[test]
fn http_headers() {
    engine::fuzz(&targets::HTTP_HEADERS);
}

#[test]
fn accounts() {
    engine::fuzz(&targets::ACCOUNTS);
}

#[test]
fn caps() {
    engine::fuzz(&targets::CAPS);
}

#[test]
fn servers_yaml() {
    engine::fuzz(&targets::SERVERS_YAML);
}

#[test]
fn shares() {
    engine::fuzz(&targets::SHARES);
}

#[test]
fn banana() {
    engine::fuzz(&targets::BANANA);
}

#[test]
fn negotiation() {
    engine::fuzz(&targets::NEGOTIATION);
}
