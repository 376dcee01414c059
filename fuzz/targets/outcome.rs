//! Outcome classes the fuzz targets report, so the engine counts kinds of results, not inputs.

/// An outcome class from an error's text: its words up to the first detail (quoted text,
/// numbers), so that errors naming the input do not each count as new.
pub(super) fn class_of(text: &str) -> String {
    text.split(['"', '\'', ':', '(', '{', '['])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_alphabetic() || *c == ' ')
        .take(60)
        .collect()
}

/// A finer outcome class: the whole message without its quoted parts and numbers, for errors
/// whose text says which field or rule failed.
pub(super) fn detail_of(text: &str) -> String {
    let mut class = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted || c.is_ascii_digit() => {}
            _ => class.push(c),
        }
    }
    class.chars().take(80).collect()
}

pub(super) fn utf8(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}
