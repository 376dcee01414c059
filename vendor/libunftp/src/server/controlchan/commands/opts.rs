//! The RFC 2389 Options (`OPTS`) command
//
// The OPTS (options) command allows a user-PI to specify the desired
// behavior of a server-FTP process when another FTP command (the target
// command) is later issued.  The exact behavior, and syntax, will vary
// with the target command indicated, and will be specified with the
// definition of that command.  Where no OPTS behavior is defined for a
// particular command there are no options available for that command.

use crate::{
    auth::UserDetail,
    server::controlchan::{
        Reply, ReplyCode,
        error::ControlChanError,
        handler::{CommandContext, CommandHandler},
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;

use super::MLST_FACTS;

/// The parameters that can be given to the `OPTS` command, specifying the option the client wants
/// to set.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Opt {
    /// The client wants us to enable UTF-8 encoding for file paths and such.
    Utf8 { on: bool },
    /// lafs-gateway patch: the facts MLST and MLSD should give (RFC 3659 section 7.9), as sent.
    Mlst { facts: String },
}

#[derive(Debug)]
pub struct Opts {
    option: Opt,
}

impl Opts {
    pub fn new(option: Opt) -> Self {
        Opts { option }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Opts
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    // lafs-gateway patch: spans without argument values (their Debug output made log lines KBs long)
    #[tracing_attributes::instrument(skip_all)]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        match &self.option {
            Opt::Utf8 { on: true } => Ok(Reply::new(ReplyCode::CommandOkay, "Always in UTF-8 mode.")),
            Opt::Utf8 { on: false } => Ok(Reply::new(ReplyCode::CommandNotImplementedForParameter, "Non UTF-8 mode not supported")),
            // lafs-gateway patch: facts the server does not know are left out; the reply lists the
            // ones now selected.
            Opt::Mlst { facts } => {
                let requested: Vec<String> = facts.split(';').map(|fact| fact.trim().to_ascii_lowercase()).collect();
                let selected: Vec<&'static str> = MLST_FACTS.iter().copied().filter(|fact| requested.iter().any(|r| r == fact)).collect();
                let listed: String = selected.iter().map(|fact| format!("{fact};")).collect();
                args.session.lock().await.mlst_facts = selected;
                Ok(Reply::new_with_string(ReplyCode::CommandOkay, format!("MLST OPTS {listed}").trim_end().to_string()))
            }
        }
    }
}
