//! PostgreSQL array text (`{1,NULL,"a b"}`) as the JSON document `to_json`
//! makes of it. The full load into MySQL reads arrays with `to_json` on the
//! server; the CDC stream only has pgoutput's text form, so it converts here
//! to land the same JSON either way.
//!
//! The text form is the server's array output: optional bounds decoration
//! (`[0:1]={...}`), nested braces per dimension, elements separated by commas,
//! quoted with `"` when they need it (backslash escapes inside), and an
//! unquoted `NULL` for a null element. `to_json` renders an element by its
//! type's category: numbers bare (NaN and infinities quoted), booleans as
//! `true`/`false`, json as itself, timestamps in ISO 8601 with a `T`, and
//! everything else as a JSON string of its text.

use ferry_common::value::ValueError;

/// How `to_json` renders an element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    Number,
    Bool,
    Json,
    Timestamp,
    TimestampTz,
    Text,
}

impl Element {
    /// The element category of an array column's type (`integer[]`).
    pub fn of(array_type: &str) -> Element {
        let base = array_type.trim_end_matches("[]").trim();
        let name = base.split('(').next().unwrap_or(base).trim();
        match name {
            "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" | "oid" => Element::Number,
            "boolean" => Element::Bool,
            "json" | "jsonb" => Element::Json,
            "timestamp without time zone" | "timestamp" => Element::Timestamp,
            "timestamp with time zone" | "timestamptz" => Element::TimestampTz,
            _ => Element::Text,
        }
    }
}

/// Converts array text into `to_json`'s document.
pub fn to_json(text: &str, element: Element) -> Result<String, ValueError> {
    let bad = |why: &str| {
        ValueError(format!(
            "not a valid array ({why}): '{}'",
            text.chars().take(200).collect::<String>()
        ))
    };
    // Bounds decoration, present when a lower bound is not 1.
    let body = match text.find('=') {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    let mut depth = 0usize;
    // Whether the previous token completed an element or a sub-array.
    let mut after_item = false;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                if after_item {
                    return Err(bad("missing comma"));
                }
                out.push('[');
                depth += 1;
                i += 1;
            }
            '}' => {
                if depth == 0 {
                    return Err(bad("unbalanced braces"));
                }
                out.push(']');
                depth -= 1;
                after_item = true;
                i += 1;
            }
            ',' => {
                if !after_item {
                    return Err(bad("empty element"));
                }
                out.push(',');
                after_item = false;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad("unterminated quote")),
                        Some('\\') => {
                            s.extend(chars.get(i + 1));
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                element_json(&mut out, &s, element)?;
                after_item = true;
            }
            _ => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], ',' | '}') {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                let raw = raw.trim();
                if raw.eq_ignore_ascii_case("NULL") {
                    out.push_str("null");
                } else {
                    element_json(&mut out, raw, element)?;
                }
                after_item = true;
            }
        }
        if depth == 0 && after_item && i < chars.len() && !chars[i..].iter().all(|c| c.is_whitespace()) {
            return Err(bad("text after the array"));
        }
    }
    if depth != 0 || out.is_empty() {
        return Err(bad("unbalanced braces"));
    }
    Ok(out)
}

fn element_json(out: &mut String, s: &str, element: Element) -> Result<(), ValueError> {
    match element {
        Element::Number if s.parse::<f64>().is_ok_and(f64::is_finite) => out.push_str(s),
        Element::Bool => out.push_str(if s == "t" { "true" } else { "false" }),
        Element::Json => out.push_str(s),
        Element::Timestamp | Element::TimestampTz if s.contains("infinity") => json_string(out, s),
        Element::Timestamp => json_string(out, &s.replacen(' ', "T", 1)),
        Element::TimestampTz => {
            let mut iso = s.replacen(' ', "T", 1);
            // `+00` becomes `+00:00`, as to_json writes offsets.
            if let Some(sign) = iso.rfind(['+', '-']).filter(|&p| p > 10) {
                if iso.len() - sign == 3 {
                    iso.push_str(":00");
                }
            }
            json_string(out, &iso)
        }
        _ => json_string(out, s),
    }
    Ok(())
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_as_to_json_writes_them() {
        assert_eq!(to_json("{1,NULL,3}", Element::Number).unwrap(), "[1,null,3]");
        assert_eq!(to_json("{}", Element::Number).unwrap(), "[]");
        assert_eq!(
            to_json(r#"{"a b","c,d",NULL,"\"q\\"}"#, Element::Text).unwrap(),
            r#"["a b","c,d",null,"\"q\\"]"#
        );
        assert_eq!(to_json("{{1,2},{3,4}}", Element::Number).unwrap(), "[[1,2],[3,4]]");
        assert_eq!(to_json("[0:1]={7,8}", Element::Number).unwrap(), "[7,8]");
        assert_eq!(to_json("{NaN,1.5}", Element::Number).unwrap(), r#"["NaN",1.5]"#);
        assert_eq!(to_json("{t,f}", Element::Bool).unwrap(), "[true,false]");
        assert_eq!(
            to_json(r#"{"2024-01-01 10:00:00.5+00"}"#, Element::TimestampTz).unwrap(),
            r#"["2024-01-01T10:00:00.5+00:00"]"#
        );
        assert_eq!(to_json(r#"{"{\"k\": 1}"}"#, Element::Json).unwrap(), r#"[{"k": 1}]"#);
        assert!(to_json("{1,2", Element::Number).is_err());
        assert!(to_json("{1,,2}", Element::Number).is_err());
        assert_eq!(Element::of("integer[]"), Element::Number);
        assert_eq!(Element::of("character varying(5)[]"), Element::Text);
    }
}
