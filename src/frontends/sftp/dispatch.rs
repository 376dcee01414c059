//! Where each request of a session goes: answered at once, run beside the others in its path turn ([`super::order`]), or queued for its handle's task ([`super::handles`]).
//!
//! A request takes a place among the [`MAX_IN_FLIGHT`] a session may have
//! handled at once, and its size from the session's [`REQUEST_BYTES`], before it
//! is dispatched; both are given back once it is handled. The caller reads the
//! channel on while a dispatch waits for them.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::extensions;
use russh_sftp::protocol::{Packet, StatusCode};
use russh_sftp::server::StatusReply;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::check_file::{self, CheckFile};
use super::framing::{self, Incoming};
use super::handles::{self, HandleJob, HandleRequest};
use super::openssh::{self, CopyData, Hardlink, OneString, PathAttributes};
use super::order::{ChangeTurn, LookTurn, PathOrder};
use super::replies::Replies;
use super::requests::Ticket;
use super::session::{self, SftpSession, StatvfsExtension, TwoPaths};

/// Requests of one session being handled at once (OpenSSH's client keeps 64 in flight).
pub const MAX_IN_FLIGHT: usize = 64;
/// Bytes of requests (WRITE data, mostly) a session holds while they are handled.
pub const REQUEST_BYTES: usize = 8 << 20;

/// When a path request may run.
enum Turn {
    Look(LookTurn),
    Change(ChangeTurn),
}

/// Sends one session's requests where they are handled.
pub struct Dispatcher {
    session: Arc<SftpSession>,
    replies: Replies,
    order: PathOrder,
    places: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl Dispatcher {
    /// A dispatcher for `session`, whose replies go to `replies`.
    pub fn new(session: SftpSession, replies: Replies) -> Self {
        Dispatcher {
            session: Arc::new(session),
            replies,
            order: PathOrder::default(),
            places: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            bytes: Arc::new(Semaphore::new(REQUEST_BYTES)),
        }
    }

    /// Whether requests are being handled.
    pub fn busy(&self) -> bool {
        self.places.available_permits() < MAX_IN_FLIGHT
    }

    /// Dispatches one request body (as [`framing::next_frame`] returns it); returns once it is on
    /// its way, which may wait for requests before it to be handled.
    pub async fn dispatch(&mut self, body: Bytes) {
        let size = body.len().clamp(1, REQUEST_BYTES) as u32;
        let packet = match framing::decode(body) {
            Incoming::Request(packet) => packet,
            Incoming::Answered { reply, problem } => {
                tracing::debug!("{problem}");
                self.replies.send(0, Ok(reply)).await;
                return;
            }
        };
        let (Ok(place), Ok(bytes)) = (
            self.places.clone().acquire_owned().await,
            self.bytes.clone().acquire_many_owned(size).await,
        ) else {
            return; // never: the semaphores are not closed
        };
        self.route(packet, Ticket::new(place, bytes)).await;
    }

    async fn route(&mut self, packet: Packet, ticket: Ticket) {
        let id = packet.get_request_id();
        let (session, replies) = (self.session.clone(), self.replies.clone());
        match packet {
            Packet::Init(_) => self.answer_now(id, Ok(SftpSession::version())).await,
            Packet::Open(p) => {
                let turn = if session::opens_for_writing(p.pflags) {
                    self.change()
                } else {
                    self.look()
                };
                self.spawn(id, ticket, turn, async move {
                    session.open(id, p.filename, p.pflags, &replies).await
                });
            }
            Packet::OpenDir(p) => {
                let turn = self.look();
                self.spawn(
                    id,
                    ticket,
                    turn,
                    async move { session.opendir(id, p.path, &replies).await },
                );
            }
            Packet::Stat(p) => {
                let turn = self.look();
                self.spawn(id, ticket, turn, async move { session.stat(id, p.path).await });
            }
            Packet::Lstat(p) => {
                let turn = self.look();
                self.spawn(id, ticket, turn, async move { session.stat(id, p.path).await });
            }
            Packet::SetStat(p) => {
                let turn = self.change();
                self.spawn(
                    id,
                    ticket,
                    turn,
                    async move { session.setstat(id, p.path, p.attrs).await },
                );
            }
            Packet::Remove(p) => {
                let turn = self.change();
                self.spawn(id, ticket, turn, async move { session.remove(id, p.filename).await });
            }
            Packet::MkDir(p) => {
                let turn = self.change();
                self.spawn(id, ticket, turn, async move { session.mkdir(id, p.path).await });
            }
            Packet::RmDir(p) => {
                let turn = self.change();
                self.spawn(id, ticket, turn, async move { session.rmdir(id, p.path).await });
            }
            Packet::Rename(p) => {
                let turn = self.change();
                self.spawn(id, ticket, turn, async move {
                    // Plain SFTP rename never replaces (as OpenSSH); posix-rename@openssh.com does.
                    session.rename(id, p.oldpath, p.newpath, false).await
                });
            }
            Packet::RealPath(p) => self.answer_now(id, SftpSession::realpath(id, p.path)).await,
            Packet::ReadLink(_) | Packet::Symlink(_) => {
                let refused = StatusCode::OpUnsupported.with_message("symbolic links are not supported");
                self.answer_now(id, Err(refused)).await;
            }
            Packet::Close(p) => self.to_handle(id, p.handle, HandleRequest::Close, ticket).await,
            Packet::Read(p) => {
                let request = HandleRequest::Read {
                    offset: p.offset,
                    len: p.len,
                };
                self.to_handle(id, p.handle, request, ticket).await;
            }
            Packet::Write(p) => {
                let request = HandleRequest::Write {
                    offset: p.offset,
                    data: p.data,
                };
                self.to_handle(id, p.handle, request, ticket).await;
            }
            Packet::Fstat(p) => self.to_handle(id, p.handle, HandleRequest::Fstat, ticket).await,
            Packet::FSetStat(p) => {
                let request = HandleRequest::FSetStat { attrs: p.attrs };
                self.to_handle(id, p.handle, request, ticket).await;
            }
            Packet::ReadDir(p) => self.to_handle(id, p.handle, HandleRequest::ReadDir, ticket).await,
            Packet::Extended(p) => self.extended(id, p.request, p.data, ticket).await,
            // framing::decode lets only request types through.
            _ => self.answer_now(id, Err(StatusCode::OpUnsupported.into())).await,
        }
    }

    async fn extended(&mut self, id: u32, request: String, data: Vec<u8>, ticket: Ticket) {
        let session = self.session.clone();
        match request.as_str() {
            "posix-rename@openssh.com" => match session::extended_payload::<TwoPaths>(data) {
                Ok(paths) => {
                    let turn = self.change();
                    self.spawn(id, ticket, turn, async move {
                        session.rename(id, paths.from, paths.to, true).await
                    });
                }
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            extensions::STATVFS => match session::extended_payload::<StatvfsExtension>(data) {
                Ok(request) => {
                    let turn = self.look();
                    self.spawn(id, ticket, turn, async move { session.statvfs(id, request.path).await });
                }
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            extensions::LIMITS => self.answer_now(id, SftpSession::limits(id)).await,
            openssh::HARDLINK => match session::extended_payload::<Hardlink>(data) {
                Ok(paths) => {
                    let turn = self.change();
                    self.spawn(id, ticket, turn, async move { session.hardlink(id, paths).await });
                }
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            openssh::LSETSTAT => match session::extended_payload::<PathAttributes>(data) {
                Ok(request) => {
                    let turn = self.change();
                    self.spawn(id, ticket, turn, async move {
                        session.setstat(id, request.path, request.attrs).await
                    });
                }
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            openssh::EXPAND_PATH => {
                let reply = session::extended_payload::<OneString>(data)
                    .and_then(|request| SftpSession::expand_path(id, &request.text));
                self.answer_now(id, reply).await;
            }
            openssh::HOME_DIRECTORY => {
                let reply = session::extended_payload::<OneString>(data).map(|_| openssh::one_name(id, "/".into()));
                self.answer_now(id, reply).await;
            }
            openssh::USERS_GROUPS_BY_ID => {
                let reply = session.users_groups_by_id(id, &data);
                self.answer_now(id, reply).await;
            }
            openssh::FSTATVFS => match session::extended_payload::<OneString>(data) {
                Ok(request) => self.to_handle(id, request.text, HandleRequest::Statvfs, ticket).await,
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            openssh::COPY_DATA => match session::extended_payload::<CopyData>(data) {
                Ok(request) => match session.handles().read_source(&request.read_handle) {
                    Some(source) => {
                        let copy = HandleRequest::CopyData {
                            source,
                            read_offset: request.read_offset,
                            read_len: request.read_len,
                            write_offset: request.write_offset,
                        };
                        self.to_handle(id, request.write_handle, copy, ticket).await;
                    }
                    None => {
                        let refused = StatusCode::Failure.with_message("no such handle open for reading");
                        self.answer_now(id, Err(refused)).await;
                    }
                },
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            check_file::BY_NAME => match session::extended_payload::<CheckFile>(data) {
                Ok(request) => {
                    let turn = self.look();
                    self.spawn(id, ticket, turn, async move { session.check_file(id, request).await });
                }
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            check_file::BY_HANDLE | check_file::PARAMIKO => match session::extended_payload::<CheckFile>(data) {
                Ok(request) => {
                    let handle = request.target.clone();
                    self.to_handle(id, handle, HandleRequest::CheckFile(request), ticket)
                        .await
                }
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            handles::FSYNC => match handles::fsync_handle(data) {
                Ok(handle) => self.to_handle(id, handle, HandleRequest::Fsync, ticket).await,
                Err(malformed) => self.answer_now(id, Err(malformed)).await,
            },
            _ => {
                let refused = StatusCode::OpUnsupported.with_message(format!("unsupported extension {request}"));
                self.answer_now(id, Err(refused)).await;
            }
        }
    }

    fn look(&mut self) -> Turn {
        Turn::Look(self.order.look())
    }

    fn change(&mut self) -> Turn {
        Turn::Change(self.order.change())
    }

    /// Runs a path request in a task of its own, in its turn.
    fn spawn<F>(&self, id: u32, ticket: Ticket, turn: Turn, request: F)
    where
        F: Future<Output = Result<Packet, StatusReply>> + Send + 'static,
    {
        let replies = self.replies.clone();
        let task = async move {
            let result = match turn {
                Turn::Look(turn) => {
                    let _turn = turn.wait().await;
                    request.await
                }
                Turn::Change(turn) => {
                    let _turn = turn.wait().await;
                    request.await
                }
            };
            replies.send(id, result).await;
            drop(ticket);
        };
        tokio::spawn(task.in_current_span());
    }

    /// Queues a handle request for the handle's task.
    async fn to_handle(&self, id: u32, handle: String, request: HandleRequest, ticket: Ticket) {
        let job = HandleJob { id, request, ticket };
        if !self.session.handles().queue(&handle, job) {
            self.answer_now(id, Err(StatusCode::Failure.with_message("no such handle")))
                .await;
        }
    }

    /// Answers a request that needs no work (the reply still waits for room in the budget).
    async fn answer_now(&self, id: u32, result: Result<Packet, StatusReply>) {
        self.replies.send(id, result).await;
    }
}
