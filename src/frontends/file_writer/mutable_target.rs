//! A writer whose contents become a mutable file's next version: never streamed nor journaled,
//! gathered whole (within [`vfs::MAX_MUTABLE_FILE_SIZE`]) when the file is committed.

use super::{Body, FileWriter, spool_error};
use crate::grid::budget::BudgetPermit;
use crate::grid::uri::Cap;
use crate::vfs::{self, Vfs};

impl FileWriter {
    /// Makes the commit replace `existing` as it must: a mutable file is given these contents as
    /// its next version (same cap); anything else is replaced by a new immutable file.
    pub fn replacing(mut self, existing: Option<&Cap>) -> FileWriter {
        self.mutable = match existing {
            Some(Cap::Mutable(cap)) => Some(cap.clone()),
            _ => None,
        };
        self
    }

    /// `TooLarge` when a mutable file would grow past what is published whole.
    pub(super) fn check_mutable_size(&self, len: u64) -> Result<(), vfs::Error> {
        if self.mutable.is_some() && len > vfs::MAX_MUTABLE_FILE_SIZE {
            return Err(vfs::Error::new(vfs::ErrorKind::TooLarge));
        }
        Ok(())
    }

    /// The whole contents, and the budget permit for publishing them, of a writer made for a
    /// mutable file (see [`FileWriter::replacing`]) whose caller publishes them itself: the web
    /// API's new mutable files, whose first version is their creation. Waits for budget holding
    /// none.
    pub async fn into_mutable_contents(mut self, vfs: &Vfs) -> Result<(Vec<u8>, BudgetPermit), vfs::Error> {
        if self.mutable.is_none() {
            return Err(vfs::Error::new(vfs::ErrorKind::Internal));
        }
        self.take_for_publish(vfs).await
    }

    /// The whole contents for publishing as a mutable file's next version, with the budget
    /// permit for encoding them. Waits for budget holding none: a buffer whose encoding memory
    /// is not free now goes to the spool first.
    pub(super) async fn take_for_publish(&mut self, vfs: &Vfs) -> Result<(Vec<u8>, BudgetPermit), vfs::Error> {
        let len = self.len();
        self.check_mutable_size(len)?;
        let budget = vfs.grid().memory_budget();
        let working = vfs::mutable_working_memory(vfs.grid(), len);
        if let Body::Memory(buffer) = &mut self.body
            && let Some(more) = budget.try_acquire(working.saturating_sub(buffer.permit.bytes()))
        {
            let mut permit = std::mem::take(&mut buffer.permit);
            permit.merge(more);
            return Ok((std::mem::take(&mut buffer.data), permit));
        }
        self.spool(vfs).await?;
        let permit = budget.acquire(working).await;
        let data = self.spool(vfs).await?.read_at(0, len as usize).map_err(spool_error)?;
        Ok((data, permit))
    }
}
