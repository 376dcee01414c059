//! A request's arguments as Tahoe reads them: query arguments, then form fields (the query
//! wins), with Tahoe's spellings of booleans, `replace=` and `format=`.
//!
//! Pure: parses text, does no I/O.

use std::collections::HashMap;

use crate::grid::uri::MutableFormat;
use crate::web::errors::WebError;

/// The arguments of one request.
#[derive(Debug, Default, Clone)]
pub struct Args {
    values: HashMap<String, String>,
}

/// What `replace=` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Replace whatever is there (the default).
    Always,
    /// Never replace (`replace=false`): 409 when the name is taken.
    Never,
    /// Replace files but not directories (`replace=only-files`).
    OnlyFiles,
}

/// The format an upload or a new directory asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Immutable (`CHK`, or `LIT` when small).
    Chk,
    /// A mutable file or directory in SDMF or MDMF.
    Mutable(MutableFormat),
}

impl Args {
    /// The query arguments of `query` (the part after `?`).
    pub fn from_query(query: Option<&str>) -> Args {
        let mut args = Args::default();
        if let Some(query) = query {
            args.add_urlencoded(query.as_bytes());
        }
        args
    }

    /// Adds `application/x-www-form-urlencoded` fields; query arguments already present win.
    pub fn add_urlencoded(&mut self, body: &[u8]) {
        for (key, value) in form_urlencoded::parse(body) {
            self.values
                .entry(key.into_owned())
                .or_insert_with(|| value.into_owned());
        }
    }

    /// Adds one form field; a query argument of that name wins.
    pub fn add_field(&mut self, key: &str, value: String) {
        self.values.entry(key.to_string()).or_insert(value);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// `t=`, empty when absent.
    pub fn t(&self) -> &str {
        self.get("t").unwrap_or("")
    }

    /// A boolean argument: `true t 1 on` or `false f 0 off`, any case.
    pub fn boolean(&self, key: &str, default: bool) -> Result<bool, WebError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => parse_boolean(value)
                .ok_or_else(|| WebError::bad_request(format!("invalid boolean argument: b'{value}'"))),
        }
    }

    /// `replace=`: a boolean or `only-files` (default: replace).
    pub fn replace(&self) -> Result<Replace, WebError> {
        match self.get("replace") {
            None => Ok(Replace::Always),
            Some(value) if value.eq_ignore_ascii_case("only-files") => Ok(Replace::OnlyFiles),
            Some(value) => match parse_boolean(value) {
                Some(true) => Ok(Replace::Always),
                Some(false) => Ok(Replace::Never),
                None => Err(WebError::bad_request(format!("invalid replace= argument: '{value}'"))),
            },
        }
    }

    /// `format=` (CHK, SDMF, MDMF, any case), else `mutable=true` as SDMF; `None` when neither.
    pub fn format(&self) -> Result<Option<Format>, WebError> {
        match self.get("format").filter(|f| !f.is_empty()) {
            Some(f) if f.eq_ignore_ascii_case("chk") => Ok(Some(Format::Chk)),
            Some(f) if f.eq_ignore_ascii_case("sdmf") => Ok(Some(Format::Mutable(MutableFormat::Sdmf))),
            Some(f) if f.eq_ignore_ascii_case("mdmf") => Ok(Some(Format::Mutable(MutableFormat::Mdmf))),
            Some(f) => Err(WebError::bad_request(format!(
                "Unknown format: {f}, I know CHK, SDMF, MDMF"
            ))),
            None if self.boolean("mutable", false)? => Ok(Some(Format::Mutable(MutableFormat::Sdmf))),
            None => Ok(None),
        }
    }

    /// `output=JSON` (any case).
    pub fn json_output(&self) -> bool {
        self.get("output").is_some_and(|o| o.eq_ignore_ascii_case("json"))
    }
}

fn parse_boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "on" => Some(true),
        "false" | "f" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// A name argument (`name=`, `to_name=`): no slash.
pub fn checked_name<'a>(value: &'a str, argument: &str) -> Result<&'a str, WebError> {
    if value.contains('/') {
        return Err(WebError::bad_request(format!("{argument}= may not contain a slash")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wins_and_tahoes_spellings_parse() {
        let mut args = Args::from_query(Some("t=mkdir&replace=only-files&format=mdmf&verify=ON"));
        args.add_urlencoded(b"t=upload&name=a%20b");
        assert_eq!(args.t(), "mkdir");
        assert_eq!(args.get("name"), Some("a b"));
        assert_eq!(args.replace().unwrap(), Replace::OnlyFiles);
        assert_eq!(args.format().unwrap(), Some(Format::Mutable(MutableFormat::Mdmf)));
        assert!(args.boolean("verify", false).unwrap());
        let bad = Args::from_query(Some("repair=maybe&format=XYZ"));
        assert_eq!(
            bad.boolean("repair", false).unwrap_err().message,
            "invalid boolean argument: b'maybe'"
        );
        assert_eq!(
            bad.format().unwrap_err().message,
            "Unknown format: XYZ, I know CHK, SDMF, MDMF"
        );
        assert_eq!(
            Args::from_query(Some("mutable=true")).format().unwrap(),
            Some(Format::Mutable(MutableFormat::Sdmf))
        );
    }
}
