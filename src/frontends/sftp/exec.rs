//! The commands an SSH exec request may run: `sha256sum PATH...` (the digest recorded at upload, no read of the file) and `verify PATH...` (every block read and checked).
//!
//! Nothing else runs: there is no shell. Arguments are split as a shell would split plain words
//! and quoted strings (`'...'`, `"..."`, backslash escapes), so `ssh host sha256sum "a b.txt"` works.

use crate::frontends::{digest, integrity};
use crate::vfs::{self, Vfs};

/// A command that can be run.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `sha256sum PATH...`.
    Sha256sum(Vec<String>),
    /// `verify PATH...`.
    Verify(Vec<String>),
}

/// What a command printed and its exit status.
#[derive(Debug, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status (0: everything succeeded; 1: something failed).
    pub status: u32,
}

/// The command `line` asks for, or why it cannot run.
pub fn parse(line: &[u8]) -> Result<Command, String> {
    let line = std::str::from_utf8(line).map_err(|_| "command is not UTF-8".to_string())?;
    let mut words = split_words(line)?.into_iter();
    let name = words.next().unwrap_or_default();
    let paths: Vec<String> = words.filter(|w| w != "--").collect();
    if paths.is_empty() && !name.is_empty() {
        return Err(format!("{name}: no path given"));
    }
    match name.as_str() {
        "sha256sum" => Ok(Command::Sha256sum(paths)),
        "verify" => Ok(Command::Verify(paths)),
        _ => Err("only sha256sum and verify can be run here (and the sftp subsystem)".into()),
    }
}

/// Runs `command` over `vfs`; paths are relative to the user's root, as over SFTP.
pub async fn run(vfs: &Vfs, command: Command) -> Output {
    let mut output = Output::default();
    match command {
        Command::Sha256sum(paths) => {
            for path in paths {
                match digest::sha256(vfs, path.as_bytes()).await {
                    Ok((digest, _)) => output.stdout.push_str(&format!("{}  {path}\n", vfs::hex(&digest))),
                    Err(e) => output.fail(&format!("sha256sum: {}: {e}", vfs::loggable(&path))),
                }
            }
        }
        Command::Verify(paths) => {
            for path in paths {
                match integrity::verify(vfs, path.as_bytes()).await {
                    Ok(line) => {
                        if !line.starts_with("healthy") {
                            output.status = 1;
                        }
                        output.stdout.push_str(&format!("{path}: {line}\n"));
                    }
                    Err(e) => output.fail(&format!("verify: {}: {e}", vfs::loggable(&path))),
                }
            }
        }
    }
    output
}

impl Output {
    fn fail(&mut self, message: &str) {
        self.stderr.push_str(message);
        self.stderr.push('\n');
        self.status = 1;
    }
}

/// Splits a command line into words: whitespace separates, quotes group, backslash escapes
/// (inside double quotes too; not inside single quotes).
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let part: String = chars.by_ref().take_while(|&c| c != '\'').collect();
                word.get_or_insert_with(String::new).push_str(&part);
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => current.extend(chars.next()),
                        Some(c) => current.push(c),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_shell_words() {
        assert_eq!(
            parse(br#"sha256sum a.txt "b c.txt" 'd e' f\ g"#),
            Ok(Command::Sha256sum(vec![
                "a.txt".into(),
                "b c.txt".into(),
                "d e".into(),
                "f g".into()
            ]))
        );
        assert_eq!(parse(b"verify -- x"), Ok(Command::Verify(vec!["x".into()])));
        assert!(parse(b"rm -rf /").is_err());
        assert!(parse(b"sha256sum").is_err());
        assert!(parse(b"sha256sum \"open").is_err());
    }
}
