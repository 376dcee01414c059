//! The RFC 2389 Feature (`FEAT`) command

use crate::{
    auth::UserDetail,
    server::{
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
        ftpserver::options::SiteMd5,
    },
    storage::{FEATURE_RESTART, FEATURE_SITEMD5, Metadata, StorageBackend},
};
use async_trait::async_trait;

#[derive(Debug)]
pub struct Feat;

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Feat
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    // lafs-gateway patch: spans without argument values (their Debug output made log lines KBs long)
    #[tracing_attributes::instrument(skip_all)]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        // lafs-gateway patch: MLST lists its facts, those selected (OPTS MLST) marked with a star.
        let selected = args.session.lock().await.mlst_facts.clone();
        let mlst: String = super::MLST_FACTS
            .iter()
            .map(|fact| format!("{fact}{};", if selected.contains(fact) { "*" } else { "" }))
            .collect();
        let mlst = format!(" MLST {mlst}");
        let mut feat_text = vec![" SIZE", " MDTM", " UTF8", " EPSV", mlst.as_str(), " MLSD"];

        // Add the features. According to the spec each feature line must be
        // indented by a space.
        if args.tls_configured {
            feat_text.push(" AUTH TLS");
            feat_text.push(" PBSZ");
            feat_text.push(" PROT");
        }
        // lafs-gateway patch: MFMT is offered when a handler for it is registered.
        if args.site_handlers.contains_key("MFMT") {
            feat_text.push(" MFMT");
        }
        // lafs-gateway patch: HASH (SHA-256 only, selected) and XSHA256 when handlers for them are registered.
        if args.site_handlers.contains_key("HASH") {
            feat_text.push(" HASH SHA-256*");
        }
        if args.site_handlers.contains_key("XSHA256") {
            feat_text.push(" XSHA256");
        }
        if args.storage_features & FEATURE_RESTART > 0 {
            feat_text.push(" REST STREAM");
        }
        if args.sitemd5 != SiteMd5::None && args.storage_features & FEATURE_SITEMD5 > 0 {
            feat_text.push(" SITE MD5");
        }

        // Show them in alphabetical order.
        feat_text.sort_unstable();
        feat_text.insert(0, "Extensions supported:");
        feat_text.push("END");

        let reply = Reply::new_multiline(ReplyCode::SystemStatus, feat_text);
        Ok(reply)
    }
}
