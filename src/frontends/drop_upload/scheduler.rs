//! Drop-upload's scheduling, without I/O: which local paths are settling, uploading or waiting for
//! their directory write, what to start next, and when to look again.
//!
//! The journal keeps what must survive a restart (pending and failed files, their due times); the
//! scheduler keeps what lives only while the folder is served. The caller does the file-system,
//! journal and grid work and tells the scheduler what happened; time is passed in, never read.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};

/// The first retry waits this long; each failure doubles it, up to the folder's `retry_max`.
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// The longest sleep: nothing due is looked for again after this.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// How often to look again while everything due is already in flight (a newer version was noted
/// during its upload): finishing uploads and links wake the loop anyway.
const IN_FLIGHT_RECHECK: Duration = Duration::from_secs(1);

/// How long to wait before retrying after `attempts` earlier failures (0 for the first failure).
pub fn retry_delay(attempts: u32, retry_max: Duration) -> Duration {
    RETRY_BASE.saturating_mul(1u32 << attempts.min(16)).min(retry_max)
}

/// The directory part of a `/`-separated relative path ("" at the top).
pub fn parent_of(relative: &str) -> &str {
    relative.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// The scheduling state of one watched folder. `T` is a file stored on the grid and waiting to be
/// linked into its directory (the scheduler only holds it).
#[derive(Debug)]
pub struct Scheduler<T> {
    settle: Duration,
    parallel: usize,
    /// Paths that changed, and when they will have been quiet for `settle`.
    settling: HashMap<PathBuf, Instant>,
    /// Relative paths being uploaded or waiting to be linked: not started again meanwhile.
    in_flight: HashSet<String>,
    /// Upload attempts running.
    uploading: usize,
    /// Stored files by directory: files that finish while their directory is being written go in
    /// its next write, so a burst of files costs a few writes.
    ready: HashMap<String, Vec<(String, T)>>,
    /// Directories being written, with the relative paths of the files in that write.
    linking: HashMap<String, Vec<String>>,
    /// The whole folder is to be compared with the journal (at start, after a lost event).
    rescan: bool,
    /// Set by the last [`Scheduler::start_uploads`]: everything due was already in flight.
    only_in_flight_due: bool,
    stopped: bool,
}

impl<T> Scheduler<T> {
    /// A scheduler for a folder whose files go up after `settle` of quiet, `parallel` at a time.
    /// It starts with a full scan due.
    pub fn new(settle: Duration, parallel: usize) -> Scheduler<T> {
        Scheduler {
            settle,
            parallel,
            settling: HashMap::new(),
            in_flight: HashSet::new(),
            uploading: 0,
            ready: HashMap::new(),
            linking: HashMap::new(),
            rescan: true,
            only_in_flight_due: false,
            stopped: false,
        }
    }

    /// Takes in a watch event seen at `now`. Returns the paths it says may be gone (renamed away
    /// or removed): the caller checks they are, then forgets those not [`Scheduler::is_busy`].
    pub fn on_event(&mut self, event: &notify::Event, now: Instant) -> Vec<PathBuf> {
        if event.need_rescan() {
            self.rescan = true;
            return Vec::new();
        }
        let quiet = now + self.settle;
        match event.kind {
            // Closed after writing, moved in, a new directory: upload once quiet. Never on
            // "created" or "modified": a file still open for writing is not touched.
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To))
            | EventKind::Create(CreateKind::Folder) => {
                for path in &event.paths {
                    self.settling.insert(path.clone(), quiet);
                }
                Vec::new()
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => match &event.paths[..] {
                [from, to] => {
                    self.settling.insert(to.clone(), quiet);
                    vec![from.clone()]
                }
                _ => Vec::new(),
            },
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => event.paths.clone(),
            _ => Vec::new(),
        }
    }

    /// The watch failed or lost events: the whole folder is compared with the journal again.
    pub fn request_rescan(&mut self) {
        self.rescan = true;
    }

    /// Whether a full scan is due (true once per request).
    pub fn take_rescan(&mut self) -> bool {
        std::mem::take(&mut self.rescan)
    }

    /// The paths quiet for `settle` at `now`, taken out: the caller notes them in the journal.
    pub fn take_settled(&mut self, now: Instant) -> Vec<PathBuf> {
        let settled: Vec<PathBuf> = self
            .settling
            .iter()
            .filter(|(_, due)| **due <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in &settled {
            self.settling.remove(path);
        }
        settled
    }

    /// Whether `relative` is being uploaded or linked: a deletion seen meanwhile is not acted on
    /// (the upload finds the file gone, or a rescan does).
    pub fn is_busy(&self, relative: &str) -> bool {
        self.in_flight.contains(relative)
    }

    /// Chooses the uploads to start from the journal's due files. `due(limit)` lists them, oldest
    /// first; it is asked only when an upload slot is free, for enough entries to fill the free
    /// slots after skipping those in flight. `path_of` names an entry's relative path.
    pub fn start_uploads<E>(&mut self, due: impl FnOnce(usize) -> Vec<E>, path_of: impl Fn(&E) -> &str) -> Vec<E> {
        self.only_in_flight_due = false;
        let free = self.parallel.saturating_sub(self.uploading);
        if self.stopped || free == 0 {
            return Vec::new();
        }
        let due = due(free + self.in_flight.len());
        let any_due = !due.is_empty();
        let starting: Vec<E> = due
            .into_iter()
            .filter(|entry| !self.in_flight.contains(path_of(entry)))
            .take(free)
            .collect();
        self.only_in_flight_due = starting.is_empty() && any_due;
        for entry in &starting {
            self.in_flight.insert(path_of(entry).to_string());
        }
        self.uploading += starting.len();
        starting
    }

    /// An upload attempt of `relative` ended: `Some` with the stored file, which then waits for
    /// its directory's next write; `None` for any other end (deferred, gone, failed).
    pub fn upload_ended(&mut self, relative: String, stored: Option<T>) {
        self.uploading = self.uploading.saturating_sub(1);
        match stored {
            Some(stored) => self
                .ready
                .entry(parent_of(&relative).to_string())
                .or_default()
                .push((relative, stored)),
            None => {
                self.in_flight.remove(&relative);
            }
        }
    }

    /// An upload task ended without saying which (it panicked): its slot is free again, and its
    /// path stays in flight (not retried before the next start, when the journal has it pending).
    pub fn upload_lost(&mut self) {
        self.uploading = self.uploading.saturating_sub(1);
    }

    /// The directory writes to start now: each directory with stored files that is not being
    /// written, with its files (relative path and stored file).
    pub fn start_links(&mut self) -> Vec<(String, Vec<(String, T)>)> {
        if self.stopped {
            return Vec::new();
        }
        let startable: Vec<String> = self
            .ready
            .keys()
            .filter(|parent| !self.linking.contains_key(*parent))
            .cloned()
            .collect();
        let mut batches = Vec::new();
        for parent in startable {
            if let Some(batch) = self.ready.remove(&parent) {
                let paths = batch.iter().map(|(relative, _)| relative.clone()).collect();
                self.linking.insert(parent.clone(), paths);
                batches.push((parent, batch));
            }
        }
        batches
    }

    /// The write of directory `parent` ended (either way): its files are no longer in flight.
    pub fn link_ended(&mut self, parent: &str) {
        for relative in self.linking.remove(parent).unwrap_or_default() {
            self.in_flight.remove(&relative);
        }
    }

    /// When to look again, at the latest: the next settle, or the journal's next due file.
    /// `journal_due_in()` is how long until then (asked only when an upload could start).
    pub fn next_wake(&self, now: Instant, journal_due_in: impl FnOnce() -> Option<Duration>) -> Instant {
        let next_settle = self.settling.values().min().copied();
        let next_due = if self.only_in_flight_due {
            Some(now + IN_FLIGHT_RECHECK)
        } else if self.uploading < self.parallel && !self.stopped {
            journal_due_in().map(|wait| now + wait.min(LONGEST_WAIT))
        } else {
            None
        };
        [next_settle, next_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + LONGEST_WAIT)
    }

    /// The folder stops being served: nothing more starts. Returns the relative paths of the
    /// uploads and links cut off, sorted (the journal has them as uploading, which the next start
    /// turns back into pending); stored files waiting for a write are dropped with them.
    pub fn shut_down(&mut self) -> Vec<String> {
        self.stopped = true;
        self.settling.clear();
        self.ready.clear();
        self.linking.clear();
        self.uploading = 0;
        self.only_in_flight_due = false;
        let mut cut_off: Vec<String> = self.in_flight.drain().collect();
        cut_off.sort();
        cut_off
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::Event;
    use notify::event::{Flag, RemoveKind};

    const SETTLE: Duration = Duration::from_secs(2);

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |event, path| event.add_path(PathBuf::from(path)))
    }

    fn closed(path: &str) -> Event {
        event(EventKind::Access(AccessKind::Close(AccessMode::Write)), &[path])
    }

    fn never_asked() -> Option<Duration> {
        panic!("the journal is not asked while no upload can start")
    }

    /// Starts every due path it is offered (as the journal would list them).
    fn start(scheduler: &mut Scheduler<u32>, due: &[&str]) -> Vec<String> {
        let due: Vec<String> = due.iter().map(|p| p.to_string()).collect();
        scheduler.start_uploads(|limit| due.into_iter().take(limit).collect(), |p| p.as_str())
    }

    #[test]
    fn a_closed_file_settles_and_a_new_close_starts_its_wait_again() {
        let t0 = Instant::now();
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        assert!(s.take_rescan(), "a full scan at start");
        assert!(!s.take_rescan(), "once");
        assert!(s.on_event(&closed("/d/a"), t0).is_empty());
        assert_eq!(s.next_wake(t0, || None), t0 + SETTLE);
        assert!(s.take_settled(t0 + SETTLE - Duration::from_millis(1)).is_empty());
        // Written again a second later: quiet only from then.
        s.on_event(&closed("/d/a"), t0 + Duration::from_secs(1));
        assert!(s.take_settled(t0 + SETTLE).is_empty());
        assert_eq!(s.next_wake(t0, || None), t0 + Duration::from_secs(1) + SETTLE);
        assert_eq!(
            s.take_settled(t0 + Duration::from_secs(1) + SETTLE),
            vec![PathBuf::from("/d/a")]
        );
        assert!(s.take_settled(t0 + Duration::from_secs(60)).is_empty(), "taken once");
        // Nothing settling and nothing due: sleep an hour.
        assert_eq!(s.next_wake(t0, || None), t0 + LONGEST_WAIT);
    }

    #[test]
    fn moves_in_and_new_directories_settle_but_creation_and_modification_do_not() {
        let t0 = Instant::now();
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        s.on_event(
            &event(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &["/d/in"]),
            t0,
        );
        s.on_event(&event(EventKind::Create(CreateKind::Folder), &["/d/sub"]), t0);
        s.on_event(&event(EventKind::Create(CreateKind::File), &["/d/open"]), t0);
        s.on_event(&event(EventKind::Modify(ModifyKind::Any), &["/d/open"]), t0);
        let mut settled = s.take_settled(t0 + SETTLE);
        settled.sort();
        assert_eq!(settled, vec![PathBuf::from("/d/in"), PathBuf::from("/d/sub")]);
    }

    #[test]
    fn lost_events_ask_for_a_rescan() {
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        s.take_rescan();
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(s.on_event(&overflow, Instant::now()).is_empty());
        assert!(s.take_rescan());
        s.request_rescan();
        assert!(s.take_rescan());
        assert!(!s.take_rescan());
    }

    #[test]
    fn retries_back_off_doubling_up_to_the_folder_maximum() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (0..12).map(|a| retry_delay(a, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(
            retry_delay(u32::MAX, Duration::MAX),
            RETRY_BASE * (1 << 16),
            "no overflow"
        );
        // A failed file is due again when the journal says: the loop wakes then, at most an hour on.
        let t0 = Instant::now();
        let s = Scheduler::<u32>::new(SETTLE, 4);
        assert_eq!(
            s.next_wake(t0, || Some(Duration::from_secs(4))),
            t0 + Duration::from_secs(4)
        );
        assert_eq!(s.next_wake(t0, || Some(Duration::from_secs(86400))), t0 + LONGEST_WAIT);
    }

    #[test]
    fn uploads_run_a_few_at_a_time_and_the_journal_is_not_asked_when_all_slots_are_busy() {
        let t0 = Instant::now();
        let mut s = Scheduler::<u32>::new(SETTLE, 2);
        let mut limits = Vec::new();
        let started = s.start_uploads(
            |limit| {
                limits.push(limit);
                vec!["a", "b", "c"]
            },
            |p| p,
        );
        assert_eq!((started, &limits[..]), (vec!["a", "b"], &[2][..]));
        assert!(s.is_busy("a") && s.is_busy("b") && !s.is_busy("c"));
        let none = s.start_uploads(|_| -> Vec<&str> { panic!("no free slot") }, |p| p);
        assert!(none.is_empty());
        assert_eq!(s.next_wake(t0, never_asked), t0 + LONGEST_WAIT);
        // One ends (failed): its slot is free, and the journal is asked past the one in flight.
        s.upload_ended("a".into(), None);
        assert!(!s.is_busy("a"));
        let mut asked = 0;
        let started = s.start_uploads(
            |limit| {
                asked = limit;
                vec!["b", "c"]
            },
            |p| p,
        );
        assert_eq!((started, asked), (vec!["c"], 2));
        // A task lost (it panicked): its slot is free, its path not started again.
        s.upload_lost();
        assert_eq!(start(&mut s, &["b", "d"]), ["d"]);
        assert!(s.is_busy("b"));
    }

    #[test]
    fn a_file_modified_while_in_flight_waits_for_its_upload_then_goes_again() {
        let t0 = Instant::now();
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        assert_eq!(start(&mut s, &["a"]), ["a"]);
        // Written again meanwhile: it settles, the caller notes the new version, the journal
        // lists it due, but it is not started twice; the loop looks again within a second.
        s.on_event(&closed("/d/a"), t0);
        assert_eq!(s.take_settled(t0 + SETTLE), vec![PathBuf::from("/d/a")]);
        assert!(start(&mut s, &["a"]).is_empty());
        assert_eq!(s.next_wake(t0, never_asked), t0 + IN_FLIGHT_RECHECK);
        // Stored: still in flight until its directory is written.
        s.upload_ended("a".into(), Some(7));
        assert!(s.is_busy("a"));
        assert!(start(&mut s, &["a"]).is_empty());
        assert_eq!(s.start_links(), vec![(String::new(), vec![("a".to_string(), 7)])]);
        assert!(start(&mut s, &["a"]).is_empty());
        s.link_ended("");
        assert!(!s.is_busy("a"));
        // The newer version goes up.
        assert_eq!(start(&mut s, &["a"]), ["a"]);
        assert_eq!(s.next_wake(t0, || None), t0 + LONGEST_WAIT);
    }

    #[test]
    fn files_stored_while_their_directory_is_written_go_in_its_next_write() {
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        assert_eq!(start(&mut s, &["x/1", "x/2", "x/3", "4"]).len(), 4);
        s.upload_ended("x/1".into(), Some(1));
        assert_eq!(s.start_links(), vec![("x".to_string(), vec![("x/1".to_string(), 1)])]);
        s.upload_ended("x/2".into(), Some(2));
        s.upload_ended("x/3".into(), Some(3));
        s.upload_ended("4".into(), Some(4));
        // "x" is being written: only the top directory starts; x/2 and x/3 wait together.
        assert_eq!(s.start_links(), vec![(String::new(), vec![("4".to_string(), 4)])]);
        s.link_ended("x");
        assert!(!s.is_busy("x/1") && s.is_busy("x/2"));
        let batch = vec![("x/2".to_string(), 2), ("x/3".to_string(), 3)];
        assert_eq!(s.start_links(), vec![("x".to_string(), batch)]);
        s.link_ended("x");
        s.link_ended("");
        assert!(["x/2", "x/3", "4"].iter().all(|p| !s.is_busy(p)));
        assert!(s.start_links().is_empty());
    }

    #[test]
    fn deletions_are_reported_and_not_acted_on_while_the_file_is_in_flight() {
        let t0 = Instant::now();
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        let removed = event(EventKind::Remove(RemoveKind::File), &["/d/a"]);
        assert_eq!(s.on_event(&removed, t0), vec![PathBuf::from("/d/a")]);
        let moved_out = event(EventKind::Modify(ModifyKind::Name(RenameMode::From)), &["/d/b"]);
        assert_eq!(s.on_event(&moved_out, t0), vec![PathBuf::from("/d/b")]);
        // A rename within the folder: the old name may be gone, the new one settles.
        let renamed = event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/d/c", "/d/e"]);
        assert_eq!(s.on_event(&renamed, t0), vec![PathBuf::from("/d/c")]);
        assert_eq!(s.take_settled(t0 + SETTLE), vec![PathBuf::from("/d/e")]);
        // Deleted during its upload: left to the upload, which finds the file gone.
        start(&mut s, &["a"]);
        assert!(s.is_busy("a"));
        s.upload_ended("a".into(), None);
        assert!(!s.is_busy("a"));
    }

    #[test]
    fn shutdown_cuts_off_what_is_in_flight_and_starts_nothing_more() {
        let t0 = Instant::now();
        let mut s = Scheduler::<u32>::new(SETTLE, 4);
        start(&mut s, &["b", "a", "c"]);
        s.upload_ended("c".into(), Some(3));
        s.upload_ended("b".into(), Some(2));
        assert_eq!(s.start_links().len(), 1);
        s.on_event(&closed("/d/new"), t0);
        assert_eq!(s.shut_down(), ["a", "b", "c"]);
        assert!(start(&mut s, &["d"]).is_empty());
        assert!(s.start_links().is_empty());
        assert!(s.take_settled(t0 + SETTLE).is_empty());
        assert_eq!(s.next_wake(t0, never_asked), t0 + LONGEST_WAIT);
        assert!(s.shut_down().is_empty());
    }
}
