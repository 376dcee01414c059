//! The RFC 959 Abort (`ABOR`) command
//
// This command tells the server to abort the previous FTP
// service command and any associated transfer of data. The
// abort command may require "special action", as discussed in
// the Section on FTP Commands, to force recognition by the
// server.  No action is to be taken if the previous command
// has been completed (including data transfer).  The control
// connection is not to be closed by the server, but the data
// connection must be closed.

use crate::server::controlchan::{
    Reply, ReplyCode,
    error::ControlChanError,
    handler::{CommandContext, CommandHandler},
};
use async_trait::async_trait;
use unftp_core::auth::UserDetail;
use unftp_core::storage::{Metadata, StorageBackend};

#[derive(Debug)]
pub struct Abor;

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Abor
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    // lafs-gateway patch: spans without argument values (their Debug output made log lines KBs long)
    #[tracing_attributes::instrument(skip_all)]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        // lafs-gateway patch: a running data command is told to stop and answers for this ABOR
        // (426 for the transfer, then 226), so the replies come in RFC 959 order. The data loop
        // checks for a pending abort under this same lock when it ends, so no ABOR goes unanswered.
        let mut session = args.session.lock().await;
        let logger = args.logger;
        if session.data_abort_rx.take().is_some() {
            // The data connection was never opened: nothing listens for the abort.
            session.data_abort_tx = None;
            return Ok(Reply::new(ReplyCode::ClosingDataConnection, "Closed data channel"));
        }
        match session.data_abort_tx.take() {
            Some(tx) => match tx.try_send(()) {
                Ok(()) => Ok(Reply::none()),
                Err(err) => {
                    slog::debug!(logger, "no data command to abort: {}", err);
                    Ok(Reply::new(ReplyCode::ClosingDataConnection, "Data channel already closed"))
                }
            },
            None => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Data channel already closed")),
        }
    }
}
