//! The HTML pages: server-rendered, no JavaScript, every link relative to the node's root.

pub mod directory;
pub mod info;
pub mod status;
pub mod storage;
pub mod welcome;

/// `text` with `& < > " '` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title`, the navigation to the welcome and status pages, and `body`.
pub fn layout(title: &str, root: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tahoe-LAFS - {title}</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>\
<body><nav><a class=\"brand\" href=\"{root}/\">lafs-gateway</a> <a href=\"{root}/status\">Status</a> \
<a href=\"{root}/statistics\">Statistics</a> <a href=\"{root}/storage\">Storage</a></nav><main>{body}</main></body></html>\n"
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
nav{background:#234;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}\
nav a.brand{font-weight:bold}main{padding:1em 2em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}th{background:#eee}\
form.inline{display:inline}fieldset{margin:1em 0;border:1px solid #ccc}code,.cap{font-family:monospace;word-break:break-all}\
.ok{color:#070}.bad{color:#a00}";
