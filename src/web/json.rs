//! JSON as Tahoe's node writes it: keys in Tahoe's order, `json.dumps(indent=1)` layout or the
//! compact `", "`/`": "` one, and non-ASCII escaped as `\uXXXX` (`tahoe ls --json` insists on
//! printable ASCII).
//!
//! Pure: builds text, does no I/O. `serde_json::Value` sorts object keys, so answers are built
//! as [`Json`] trees that keep the order they are written in.

use serde_json::Value;

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true`/`false`
    Bool(bool),
    /// A number (integer or float), as serde_json formats it (shortest round-trip, as Python).
    Number(serde_json::Number),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Json>),
    /// An object, in key order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An empty object, to [`Json::with`] keys onto.
    pub fn object() -> Json {
        Json::Object(Vec::new())
    }

    /// This object with `key` appended.
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        if let Json::Object(entries) = &mut self {
            entries.push((key.to_string(), value.into()));
        }
        self
    }

    /// Appends `key` to this object.
    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        if let Json::Object(entries) = self {
            entries.push((key.to_string(), value.into()));
        }
    }

    /// The value of `key` in this object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python's `json.dumps(x, indent=1)`.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(0));
        ascii_only(&out)
    }

    /// Python's `json.dumps(x)` (`", "` and `": "` separators).
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None);
        ascii_only(&out)
    }

    fn write(&self, out: &mut String, indent: Option<usize>) {
        let newline = |out: &mut String, level: usize| {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', level));
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::Str(s) => out.push_str(&Value::String(s.clone()).to_string()),
            Json::List(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(entries) if entries.is_empty() => out.push_str("{}"),
            Json::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        if indent.is_none() {
                            out.push(' ');
                        }
                    }
                    if let Some(level) = indent {
                        newline(out, level + 1);
                    }
                    item.write(out, indent.map(|l| l + 1));
                }
                if let Some(level) = indent {
                    newline(out, level);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        if indent.is_none() {
                            out.push(' ');
                        }
                    }
                    if let Some(level) = indent {
                        newline(out, level + 1);
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push_str(": ");
                    value.write(out, indent.map(|l| l + 1));
                }
                if let Some(level) = indent {
                    newline(out, level);
                }
                out.push('}');
            }
        }
    }
}

/// Python's `ensure_ascii`: every non-ASCII character as `\uXXXX` (surrogate pairs above the
/// BMP). Non-ASCII can only occur inside strings, so the text can be rewritten as a whole.
fn ascii_only(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Number(n.into())
    }
}

impl From<usize> for Json {
    fn from(n: usize) -> Json {
        Json::Number((n as u64).into())
    }
}

impl From<f64> for Json {
    fn from(n: f64) -> Json {
        serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<Vec<Json>> for Json {
    fn from(items: Vec<Json>) -> Json {
        Json::List(items)
    }
}

/// A stored `serde_json::Value` (metadata), in its own (sorted) key order.
impl From<&Value> for Json {
    fn from(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::Str(s.clone()),
            Value::Array(items) => Json::List(items.iter().map(Json::from).collect()),
            Value::Object(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), Json::from(v))).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_pythons_json_dumps() {
        let doc = Json::List(vec![
            Json::from("dirnode"),
            Json::object()
                .with("children", Json::object())
                .with("mutable", true)
                .with("size", 5u64)
                .with("t", 1796544511.5147853)
                .with("name", "é😀"),
        ]);
        assert_eq!(
            doc.pretty(),
            "[\n \"dirnode\",\n {\n  \"children\": {},\n  \"mutable\": true,\n  \"size\": 5,\n  \"t\": 1796544511.5147853,\n  \"name\": \"\\u00e9\\ud83d\\ude00\"\n }\n]"
        );
        assert_eq!(
            Json::object()
                .with("path", Json::List(vec!["a".into(), "b".into()]))
                .with("x", Json::List(vec![]))
                .compact(),
            "{\"path\": [\"a\", \"b\"], \"x\": []}"
        );
    }
}
