//! File bodies into the grid: immutable files stream through the frontends' [`FileWriter`]
//! (encoded while they arrive, memory flat in file size; convergent caps for files of one
//! segment, as Tahoe's); mutable files (SDMF, MDMF) are published whole, as Tahoe does, their
//! bodies held by a [`FileWriter`] too: within the node's memory budget, or spooled to disk.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::StatusCode;

use crate::frontends::file_writer::FileWriter;
use crate::grid::Grid;
use crate::grid::mutable::keys::MutableKeys;
use crate::grid::uri::{Cap, LiteralCap, MutableAccess, MutableCap, MutableFormat};
use crate::vfs::Vfs;
use crate::web::WebState;
use crate::web::activity::OpKind;
use crate::web::errors::WebError;

/// The view uploads go through. [`FileWriter`] asks a [`Vfs`] whether writes are allowed and
/// for its grid; an upload from the web API is linked (or not) by the caller afterwards, so the
/// view is rooted at a writable directory cap that names nothing on the grid and is never read.
fn upload_view(grid: &Grid) -> Vfs {
    let placeholder = MutableCap {
        format: MutableFormat::Sdmf,
        access: MutableAccess::Write([0; 16]),
        fingerprint: [0; 32],
        extension: String::new(),
    };
    Vfs::new(grid.clone(), Cap::Directory(Box::new(Cap::Mutable(placeholder))))
}

/// Stores `chunks` as an immutable file; returns its cap (`URI:LIT:` up to 55 bytes).
pub async fn store_immutable<S, E>(state: &WebState, mut chunks: S) -> Result<Cap, WebError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let vfs = upload_view(&state.grid);
    let running = state.activity.begin(OpKind::Upload, None, None);
    let mut writer = FileWriter::create(&state.spool_dir);
    let mut offset = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| WebError::bad_request(format!("the upload was cut short: {e}")))?;
        if offset + chunk.len() as u64 > crate::vfs::MAX_FILE_SIZE {
            return Err(WebError::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "FileTooLargeError: over 64 GiB",
            ));
        }
        writer.write_at(&vfs, offset, &chunk).await?;
        offset += chunk.len() as u64;
    }
    let cap = writer
        .upload(&vfs)
        .await?
        .into_cap(&vfs)
        .await?
        .unwrap_or(Cap::Literal(LiteralCap { data: Vec::new() }));
    running.finish(true, cap.storage_index().map(|si| si.to_string()), Some(offset));
    state.activity.count("uploader.files_uploaded", 1);
    state.activity.count("uploader.bytes_uploaded", offset);
    Ok(cap)
}

/// Writes a request body into `writer`; how many bytes it had. The writer holds
/// them within the node's memory budget, or spools them, and refuses a mutable file past
/// [`crate::vfs::MAX_MUTABLE_FILE_SIZE`] (413).
async fn write_body<S, E>(vfs: &Vfs, writer: &mut FileWriter, mut chunks: S) -> Result<u64, WebError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut at = 0;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| WebError::bad_request(format!("the upload was cut short: {e}")))?;
        writer.write_at(vfs, at, &chunk).await?;
        at += chunk.len() as u64;
    }
    Ok(at)
}

/// Stores `chunks` as a new mutable file of `format`; returns its write cap.
pub async fn store_new_mutable<S, E>(state: &WebState, chunks: S, format: MutableFormat) -> Result<Cap, WebError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let vfs = upload_view(&state.grid);
    let key = state.grid.new_signing_key().await?;
    // The cap is known before the first version is published: the writer is one for it.
    let cap = MutableKeys::from_signing_key(&key)
        .map_err(crate::grid::Error::from)?
        .write_cap(format);
    let mut writer = FileWriter::create(&state.spool_dir).replacing(Some(&Cap::Mutable(cap)));
    let len = write_body(&vfs, &mut writer, chunks).await?;
    let running = state.activity.begin(OpKind::Publish, None, Some(len));
    let (data, permit) = writer.into_mutable_contents(&vfs).await?;
    let cap = state.grid.create_mutable_as(key, &data, format).await?;
    drop((data, permit));
    running.finish(true, Some(cap.storage_index().to_string()), None);
    state.activity.count("mutable.files_published", 1);
    state.activity.count("mutable.bytes_published", len);
    Ok(Cap::Mutable(cap))
}

/// Replaces the contents of the mutable file `cap` with `chunks` or, with an `offset` (Tahoe's
/// `PUT ...?offset=`), writes them there: what they cover is replaced, what they reach past the
/// end appends, the rest stays. An offset past the end is refused, as no byte may be left
/// undefined.
pub async fn write_mutable<S, E>(
    state: &WebState,
    chunks: S,
    cap: &MutableCap,
    offset: Option<u64>,
) -> Result<(), WebError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if !matches!(cap.access, MutableAccess::Write(_)) {
        return Err(WebError::bad_request(
            "PUT to a mutable file: replace or update requested with read-only cap",
        ));
    }
    let vfs = upload_view(&state.grid);
    let existing = Cap::Mutable(cap.clone());
    // The body first, held within the budget or spooled, before anything is locked.
    let mut body = FileWriter::create(&state.spool_dir).replacing(Some(&existing));
    let len = write_body(&vfs, &mut body, chunks).await?;
    let running = state
        .activity
        .begin(OpKind::Publish, Some(cap.storage_index().to_string()), Some(len));
    let published = match offset {
        None => match body.upload(&vfs).await {
            Ok(uploaded) => uploaded.into_cap(&vfs).await.map(|_| ()).map_err(WebError::from),
            Err(e) => Err(e.into()),
        },
        Some(offset) => write_at(state, &vfs, body, len, cap, offset).await,
    };
    running.finish(published.is_ok(), None, None);
    published?;
    state.activity.count("mutable.files_published", 1);
    state.activity.count("mutable.bytes_published", len);
    Ok(())
}

/// Writes the `len` bytes `body` holds into the mutable file `cap` at `offset`. The current
/// version is read, changed and published under the file's write lock and against the server map
/// read first: two edits at once through this node both land, and a version another node
/// publishes in between fails this one (`UncoordinatedWrite`) rather than being overwritten.
async fn write_at(
    state: &WebState,
    vfs: &Vfs,
    mut body: FileWriter,
    len: u64,
    cap: &MutableCap,
    offset: u64,
) -> Result<(), WebError> {
    let _turn = state.grid.lock_for_writing(cap.storage_index()).await;
    let map = state.grid.settled_servermap(cap).await;
    let mut edited = FileWriter::resume(vfs, &Cap::Mutable(cap.clone()), &state.spool_dir).await?;
    if offset > edited.len() {
        return Err(WebError::bad_request(format!(
            "PUT to a mutable file: offset {offset} is past the end of the file ({} bytes)",
            edited.len()
        )));
    }
    let mut done = 0;
    while done < len {
        let piece = body.read_at(vfs, done, COPY_PIECE).await?;
        if piece.is_empty() {
            break;
        }
        edited.write_at(vfs, offset + done, &piece).await?;
        done += piece.len() as u64;
    }
    // The body's budget goes back before the edited file's is taken.
    drop(body);
    let (data, permit) = edited.into_mutable_contents(vfs).await?;
    state.grid.update_mutable_from(cap, &map, &data).await?;
    drop((data, permit));
    Ok(())
}

/// A body is copied into the file it edits in pieces of this size.
const COPY_PIECE: u64 = 1 << 20;

/// Stores `chunks` as a new file of the format asked for (`None`: immutable).
pub async fn store_new<S, E>(
    state: &WebState,
    chunks: S,
    format: Option<crate::web::args::Format>,
) -> Result<Cap, WebError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match format {
        Some(crate::web::args::Format::Mutable(format)) => store_new_mutable(state, chunks, format).await,
        _ => store_immutable(state, chunks).await,
    }
}

/// A request body as a stream of data pieces.
pub fn body_chunks(body: hyper::body::Incoming) -> BodyChunks {
    Box::pin(http_body_util::BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }))
}

/// See [`body_chunks`].
pub type BodyChunks = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;
