//! A fetched body as text for the model: which content types are text, the charset, and HTML
//! with its tags stripped.

/// Whether a content type (lowercase, without parameters) is text the model can read.
pub(super) fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-ndjson"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/x-sh"
                | "application/sql"
                | "application/graphql"
        )
}

/// The body as text: Latin-1 when the content type says so, UTF-8 otherwise (invalid bytes
/// replaced).
pub(super) fn decode(body: &[u8], content_type: Option<&str>) -> String {
    let charset = content_type
        .into_iter()
        .flat_map(|value| value.split(';').skip(1))
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase());
    match charset.as_deref() {
        // Windows-1252 differs from Latin-1 only in 0x80-0x9F, which are rare in text.
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252" | "us-ascii") => {
            body.iter().map(|&byte| char::from(byte)).collect()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Tags that start a new line of text.
const BLOCKS: [&str; 30] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "title",
    "tr",
];

/// HTML as text, crudely: no tags, no scripts, styles or comments; blocks on their own lines;
/// the common entities decoded; spaces collapsed and blank lines dropped.
pub(super) fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        push_decoded(&mut text, &rest[..start]);
        let tag = &rest[start..];
        if let Some(comment) = tag.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(end) = tag.find('>') else {
            rest = "";
            break;
        };
        let inner = &tag[1..end];
        rest = &tag[end + 1..];
        let closing = inner.starts_with('/');
        let name = inner
            .trim_start_matches('/')
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !closing && matches!(name.as_str(), "script" | "style" | "noscript" | "template") {
            // Their content is code, not text: skip to the closing tag.
            let close = format!("</{name}");
            rest = rest
                .to_ascii_lowercase()
                .find(&close)
                .map_or("", |at| &rest[at..]);
            continue;
        }
        if BLOCKS.contains(&name.as_str()) {
            text.push('\n');
        } else if matches!(name.as_str(), "td" | "th") {
            text.push(' ');
        }
    }
    push_decoded(&mut text, rest);
    let mut tidy = String::with_capacity(text.len());
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.is_empty() {
            tidy.push_str(&words.join(" "));
            tidy.push('\n');
        }
    }
    tidy.trim_end().to_owned()
}

/// Appends `raw` with its character references decoded (the common named ones and numeric).
fn push_decoded(text: &mut String, raw: &str) {
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        text.push_str(&rest[..at]);
        let entity = &rest[at + 1..];
        let decoded = entity.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &entity[..end];
            let found = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            found.map(|found| (found, end))
        });
        match decoded {
            Some((found, end)) => {
                text.push(found);
                rest = &entity[end + 1..];
            }
            None => {
                text.push('&');
                rest = entity;
            }
        }
    }
    text.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        let html = "<html><head><title>T &amp; U</title><style>p{color:red}</style>\
                    <script>if (a < b) { alert('x') }</script></head>\
                    <body><!-- note --><h1>Head</h1><p>One <b>bold</b>&nbsp;word&#33;</p>\
                    <ul><li>a</li><li>b</li></ul></body></html>";
        assert_eq!(html_to_text(html), "T & U\nHead\nOne bold word!\na\nb");
    }

    #[test]
    fn text_types_and_charsets() {
        for text in [
            "text/html",
            "application/json",
            "application/ld+json",
            "image/svg+xml",
        ] {
            assert!(is_text(text), "{text}");
        }
        for binary in ["image/png", "application/pdf", "application/octet-stream"] {
            assert!(!is_text(binary), "{binary}");
        }
        assert_eq!(
            decode(b"caf\xe9", Some("text/plain; charset=ISO-8859-1")),
            "café"
        );
        assert_eq!(decode("café".as_bytes(), Some("text/plain")), "café");
    }
}
