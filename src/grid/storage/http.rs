//! Tahoe's HTTP storage protocol ("Great Black Swamp"): CBOR bodies over HTTPS, the server
//! authenticated by its certificate's SPKI pin and the client by the swissnum.

pub mod client;
pub mod server;
pub mod tls;
pub mod wire;
