//! lafs-gateway patch: data commands ask the storage back-end about their target before the
//! preliminary 150 reply, so a file or directory that cannot be opened is answered at once (550, as
//! vsftpd and pyftpdlib answer) instead of with 150 and then 550, which clients such as wget and
//! rclone take for a failed connection.

use crate::{
    auth::UserDetail,
    server::{controlchan::Reply, session::Session},
    storage::{Error, ErrorKind, Metadata, StorageBackend},
};

/// What a data command needs its path to be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// RETR: an existing file.
    File,
    /// LIST, NLST, MLSD: something that exists.
    Listable,
    /// STOR, APPE: a name in an existing directory.
    InDirectory,
}

/// The refusal for a data command whose target cannot be used, after which the prepared data
/// connection is closed; `None` when the command can go ahead (or has no data connection, which
/// the caller answers with 425).
pub(crate) async fn refuse<Storage, User>(session: &mut Session<Storage, User>, path: Option<&str>, target: Target) -> Option<Reply>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    if session.data_cmd_tx.is_none() {
        return None;
    }
    let user = session.user.clone();
    let user = (*user).as_ref()?;
    let path = match path {
        Some(path) if !path.is_empty() && path != "." => session.cwd.join(path),
        _ => session.cwd.clone(),
    };
    let storage = &session.storage;
    let checked = match target {
        Target::File => match storage.metadata(user, &path).await {
            Ok(metadata) if metadata.is_dir() => Err(Error::from(ErrorKind::PermanentFileNotAvailable)),
            other => other.map(|_| ()),
        },
        Target::Listable => storage.metadata(user, &path).await.map(|_| ()),
        Target::InDirectory => match path.parent() {
            Some(parent) => match storage.metadata(user, parent).await {
                Ok(metadata) if !metadata.is_dir() => Err(Error::from(ErrorKind::PermanentDirectoryNotAvailable)),
                other => other.map(|_| ()),
            },
            None => Ok(()),
        },
    };
    match checked {
        Ok(()) => None,
        Err(error) => {
            session.close_data_channel().await;
            Some(super::super::control_loop::storage_error_reply(&error))
        }
    }
}
