//! The fuzzing loop: mutates a corpus of seed inputs, runs a target on each input and flags
//! panics, hangs and allocations out of proportion to the input.
//!
//! No coverage instrumentation: the feedback is the *outcome class* each target reports (which
//! variant it parsed, which error it gave), and an input that produces a class not seen before
//! joins the corpus. That keeps the inputs that reach new parts of a parser without an
//! instrumented build (see fuzz/README.md for why).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::alloc;

/// Executions per target in an ordinary `cargo test` run (seconds in all).
const DEFAULT_EXECUTIONS: u64 = 2_000;
/// An execution slower than this is reported as a finding (a parser should take microseconds).
const SLOW: Duration = Duration::from_secs(1);
/// An execution still running after this is a hang: the input is printed and the process aborts.
const HANG: Duration = Duration::from_secs(10);
/// Inputs kept for mutation, at most.
const CORPUS_CAP: usize = 4_096;

/// One parser under test.
pub struct Target {
    /// The test's name, used in reports and by `fuzz/run.sh`.
    pub name: &'static str,
    /// Well-formed inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator inserts (keywords, separators, prefixes of the format).
    pub dictionary: &'static [&'static [u8]],
    /// Inputs are cut to this length.
    pub max_len: usize,
    /// Runs the parser(s) on one input and names the outcome's class (which variant, which
    /// error); it panics only when a property of the parse fails.
    pub run: fn(&[u8]) -> String,
}

impl Target {
    /// Allocation allowed for an input of `len` bytes: generous, proportional, never unbounded.
    fn allocation_bound(&self, len: usize) -> usize {
        (1 << 20) + 256 * len
    }
}

/// Something wrong that an input made a target do.
#[derive(Debug, Clone)]
struct Finding {
    kind: &'static str,
    detail: String,
    input: Vec<u8>,
}

/// Totals of a run, printed at its end.
#[derive(Debug, Default)]
struct Totals {
    executions: u64,
    largest_allocation: usize,
    peak_live: usize,
    slowest: Duration,
}

/// A small, fast, seedable generator (SplitMix64); the harness needs no crate for it.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Values that tend to sit on the edges of length and count fields.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Text numbers for decimal fields.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "255",
    "256",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
];

fn mutate_once(rng: &mut Rng, input: &mut Vec<u8>, target: &Target, corpus: &[Vec<u8>]) {
    let len = input.len();
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = *b"\0\x01\x7f\x80\xff\n\r :/-=\"'{[#$%\\"
                .get(rng.below(20))
                .unwrap_or(&0);
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(32));
            input.drain(at..at + n);
        }
        4 if len > 0 => {
            // Copy a chunk elsewhere: repeated fields, duplicated lines.
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(64));
            let chunk = input[from..from + n].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, chunk);
        }
        5 if len > 0 => {
            // An edge value as a big- or little-endian integer of 1, 2, 4 or 8 bytes.
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let width = [1usize, 2, 4, 8][rng.below(4)];
            let bytes = if rng.chance(2) {
                value.to_be_bytes()[8 - width..].to_vec()
            } else {
                value.to_le_bytes()[..width].to_vec()
            };
            let at = rng.below(len);
            let end = (at + width).min(len);
            input.splice(at..end, bytes);
        }
        6 if !target.dictionary.is_empty() => {
            let token = target.dictionary[rng.below(target.dictionary.len())];
            let at = rng.below(len + 1);
            if rng.chance(2) || len == 0 {
                input.splice(at..at, token.iter().copied());
            } else {
                let end = (at + token.len()).min(len);
                input.splice(at..end, token.iter().copied());
            }
        }
        7 if !corpus.is_empty() => {
            // Splice: this input's head with another's tail.
            let other = &corpus[rng.below(corpus.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        8 => {
            // Replace a run of ASCII digits (or insert) with an edge number.
            let number = NUMBERS[rng.below(NUMBERS.len())].as_bytes();
            let start = rng.below(len + 1);
            match input[start..].iter().position(u8::is_ascii_digit) {
                Some(offset) => {
                    let begin = start + offset;
                    let end = begin + input[begin..].iter().take_while(|b| b.is_ascii_digit()).count();
                    input.splice(begin..end, number.iter().copied());
                }
                None => {
                    input.splice(start..start, number.iter().copied());
                }
            }
        }
        9 if len > 0 => {
            // Repeat a short chunk many times: deep nesting, long runs, many fields.
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(8));
            let chunk = input[from..from + n].to_vec();
            let times = 2 + rng.below(512);
            let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
            input.splice(from..from, repeated);
        }
        10 if len > 1 => {
            input.truncate(rng.below(len));
        }
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, rng.next() as u8);
        }
    }
}

fn mutate(rng: &mut Rng, parent: &[u8], target: &Target, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.chance(64) {
        let n = rng.below(target.max_len.min(512) + 1);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let mut input = parent.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut input, target, corpus);
    }
    input.truncate(target.max_len);
    input
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    text.chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// The running execution of each fuzzing thread, watched for hangs.
struct Running {
    target: &'static str,
    /// Milliseconds since `epoch()` when the current execution started; 0 when idle.
    started: AtomicU64,
    input: Mutex<Vec<u8>>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

fn watch(running: Arc<Running>) {
    static WATCHED: OnceLock<Mutex<Vec<Arc<Running>>>> = OnceLock::new();
    let mut first = false;
    let watched = WATCHED.get_or_init(|| {
        first = true;
        Mutex::new(Vec::new())
    });
    watched.lock().unwrap_or_else(|e| e.into_inner()).push(running);
    if first {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let now = now_ms();
                for r in watched.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let started = r.started.load(Ordering::Relaxed);
                    if started != 0 && now.saturating_sub(started) > HANG.as_millis() as u64 {
                        let input = r.input.lock().unwrap_or_else(|e| e.into_inner());
                        eprintln!(
                            "\nfuzz {}: HANG, an execution has run for over {:?}; input (hex):\n{}",
                            r.target,
                            HANG,
                            hex(&input)
                        );
                        std::process::abort();
                    }
                }
            }
        });
    }
}

thread_local! {
    static IN_EXECUTION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Panics inside an execution are recorded (message and location) instead of printed.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_EXECUTION.get() {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let location = info.location().map(|l| l.to_string()).unwrap_or_default();
                LAST_PANIC.set(Some(format!("{message} at {location}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Settings from the environment: `FUZZ_SECONDS` (run for that long instead of a fixed count),
/// `FUZZ_SEED` (the generator's seed), `FUZZ_REPLAY` (hex of one input to run alone).
struct Settings {
    seconds: Option<u64>,
    seed: u64,
    replay: Option<Vec<u8>>,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Settings {
            seconds: var("FUZZ_SECONDS").and_then(|v| v.parse().ok()),
            seed: var("FUZZ_SEED").and_then(|v| v.parse().ok()).unwrap_or(0x1af5),
            replay: var("FUZZ_REPLAY").map(|v| unhex(&v)),
        }
    }
}

/// Runs `target` on one input, returning its outcome class or the finding it made.
fn execute(target: &Target, running: &Running, input: &[u8], totals: &mut Totals) -> Result<String, Finding> {
    running.input.lock().unwrap_or_else(|e| e.into_inner()).clear();
    running
        .input
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend_from_slice(input);
    let started = Instant::now();
    running.started.store(now_ms(), Ordering::Relaxed);
    IN_EXECUTION.set(true);
    alloc::begin(input);
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let allocated = alloc::end();
    IN_EXECUTION.set(false);
    running.started.store(0, Ordering::Relaxed);
    let elapsed = started.elapsed();
    totals.executions += 1;
    totals.slowest = totals.slowest.max(elapsed);
    totals.largest_allocation = totals.largest_allocation.max(allocated.largest);
    totals.peak_live = totals.peak_live.max(allocated.peak_live);
    let finding = |kind, detail| Finding {
        kind,
        detail,
        input: input.to_vec(),
    };
    let class = match outcome {
        Ok(class) => class,
        Err(_) => {
            let why = LAST_PANIC.take().unwrap_or_default();
            return Err(finding("panic", why));
        }
    };
    let bound = target.allocation_bound(input.len());
    if allocated.largest > bound || allocated.peak_live > bound {
        return Err(finding(
            "allocation",
            format!(
                "{} bytes in one allocation, {} live at the peak, for {} input bytes (bound {bound})",
                allocated.largest,
                allocated.peak_live,
                input.len()
            ),
        ));
    }
    if elapsed > SLOW {
        return Err(finding("slow", format!("{elapsed:?} for {} input bytes", input.len())));
    }
    Ok(class)
}

fn class_key(class: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    class.hash(&mut hasher);
    hasher.finish()
}

/// Fuzzes `target` for `FUZZ_SECONDS` (or a few thousand executions), then fails with every
/// distinct finding, each with its input in hex for `FUZZ_REPLAY`.
pub fn fuzz(target: &Target) {
    let findings = run(target, &Settings::from_env());
    if !findings.is_empty() {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
        let _ = std::fs::create_dir_all(&dir);
        let mut report = String::new();
        for (n, f) in findings.iter().enumerate() {
            let path = dir.join(format!("{}-{}-{n}.bin", target.name, f.kind));
            let _ = std::fs::write(&path, &f.input);
            report.push_str(&format!(
                "\n{} ({}): input {} (saved as {})\n  FUZZ_REPLAY={}",
                f.kind,
                f.detail,
                f.input.len(),
                path.display(),
                hex(&f.input)
            ));
        }
        panic!("fuzz {}: {} findings:{report}", target.name, findings.len());
    }
}

/// Fuzzes `target` as `settings` say, prints the totals and returns the distinct findings.
fn run(target: &Target, settings: &Settings) -> Vec<Finding> {
    install_panic_hook();
    let running = Arc::new(Running {
        target: target.name,
        started: AtomicU64::new(0),
        input: Mutex::new(Vec::new()),
    });
    watch(running.clone());
    let mut totals = Totals::default();
    let mut findings: HashMap<(&'static str, String), Finding> = HashMap::new();
    let record = |f: Finding, findings: &mut HashMap<(&'static str, String), Finding>| {
        // One finding per kind and place (a panic's message and location; an allocation's or
        // a slow run's first occurrence).
        let key = match f.kind {
            "panic" => f.detail.clone(),
            _ => String::new(),
        };
        findings.entry((f.kind, key)).or_insert(f);
    };
    let started = Instant::now();

    if let Some(input) = &settings.replay {
        let outcome = execute(target, &running, input, &mut totals);
        eprintln!("fuzz {}: replay of {} bytes: {outcome:?}", target.name, input.len());
        if let Err(f) = outcome {
            record(f, &mut findings);
        }
    } else {
        let mut rng = Rng(settings.seed ^ class_key(target.name));
        let mut corpus: Vec<Vec<u8>> = Vec::new();
        let mut classes: HashSet<u64> = HashSet::new();
        let seeds = (target.seeds)();
        let seed_count = seeds.len();
        for seed in seeds {
            match execute(target, &running, &seed, &mut totals) {
                Ok(class) => {
                    classes.insert(class_key(&class));
                }
                Err(f) => record(f, &mut findings),
            }
            corpus.push(seed);
        }
        if corpus.is_empty() {
            corpus.push(Vec::new());
        }
        let deadline = settings.seconds.map(|s| started + Duration::from_secs(s));
        loop {
            match deadline {
                Some(deadline) if Instant::now() >= deadline => break,
                None if totals.executions >= DEFAULT_EXECUTIONS => break,
                _ => {}
            }
            let parent = corpus[rng.below(corpus.len())].clone();
            let input = mutate(&mut rng, &parent, target, &corpus);
            match execute(target, &running, &input, &mut totals) {
                Ok(class) => {
                    if classes.insert(class_key(&class)) {
                        if corpus.len() < CORPUS_CAP {
                            corpus.push(input);
                        } else {
                            let i = rng.below(corpus.len());
                            corpus[i] = input;
                        }
                    }
                }
                Err(f) => record(f, &mut findings),
            }
        }
        eprintln!(
            "fuzz {}: {seed_count} seeds, corpus {} inputs, {} outcome classes",
            target.name,
            corpus.len(),
            classes.len()
        );
    }

    let seconds = started.elapsed().as_secs_f64();
    println!(
        "fuzz {}: {} executions in {seconds:.1} s ({:.0}/s); largest allocation {} B, peak live {} B, slowest {:?}; {} findings",
        target.name,
        totals.executions,
        totals.executions as f64 / seconds.max(1e-9),
        totals.largest_allocation,
        totals.peak_live,
        totals.slowest,
        findings.len()
    );
    findings.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn misbehaving(input: &[u8]) -> String {
        // Only the exact seeds misbehave, so their mutants stay quick.
        match input {
            b"panic" => panic!("planted panic"),
            b"alloc" => std::hint::black_box(vec![0u8; 8 << 20]).len().to_string(),
            b"slow" => {
                std::thread::sleep(SLOW + Duration::from_millis(100));
                "slow".into()
            }
            _ => "fine".into(),
        }
    }

    /// The harness itself: a planted panic, an oversized allocation and a slow execution are
    /// each reported, with the input that caused it.
    #[test]
    fn harness_reports_panics_allocations_and_slow_inputs() {
        let target = Target {
            name: "misbehaving",
            seeds: || vec![b"fine".to_vec(), b"panic".to_vec(), b"alloc".to_vec(), b"slow".to_vec()],
            dictionary: &[],
            max_len: 64,
            run: misbehaving,
        };
        let settings = Settings {
            seconds: None,
            seed: 1,
            replay: None,
        };
        let findings = run(&target, &settings);
        let kind = |k: &str| {
            findings
                .iter()
                .find(|f| f.kind == k)
                .map(|f| (f.input[0], f.detail.clone()))
        };
        assert!(
            matches!(kind("panic"), Some((b'p', d)) if d.contains("planted panic")),
            "{findings:?}"
        );
        assert!(matches!(kind("allocation"), Some((b'a', _))), "{findings:?}");
        assert!(matches!(kind("slow"), Some((b's', _))), "{findings:?}");
    }
}
