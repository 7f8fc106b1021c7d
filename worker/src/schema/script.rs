//! Running a reviewed DDL file (`ferry task create --schema-dir`): the file
//! is cut at its object marks so a failure names the object, and MySQL
//! files honour `DELIMITER` lines the way the mysql client does (the server
//! itself does not know them).

use super::OBJECT_MARK;

/// `(object, sql)` per object mark; text before the first mark is its own
/// chunk named after the file.
pub fn chunks<'a>(file: &str, text: &'a str) -> Vec<(String, &'a str)> {
    let mut out = vec![];
    let mut name = file.to_string();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(obj) = line.strip_prefix(OBJECT_MARK) {
            if !text[start..pos].trim().is_empty() {
                out.push((name.clone(), &text[start..pos]));
            }
            name = obj.trim().to_string();
            start = pos + line.len();
        }
        pos += line.len();
    }
    if !text[start..].trim().is_empty() {
        out.push((name, &text[start..]));
    }
    out
}

/// The statements of MySQL script text.
pub fn mysql_statements(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut delimiter = ";".to_string();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with("--")) {
            continue;
        }
        if cur.is_empty() && t.len() > 10 && t[..10].eq_ignore_ascii_case("DELIMITER ") {
            delimiter = t[10..].trim().to_string();
            continue;
        }
        if t.ends_with(delimiter.as_str()) {
            let end = line.rfind(delimiter.as_str()).unwrap_or(line.len());
            cur.push_str(&line[..end]);
            out.push(std::mem::take(&mut cur).trim().to_string());
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_files() {
        let text = "-- header\nSET x;\n-- object: a.b\nCREATE TABLE a.b (x int);\n\n-- object: a.t\nDELIMITER ;;\nCREATE TRIGGER t BEFORE INSERT ON a.b FOR EACH ROW\nBEGIN\n  SET NEW.x = 1;\nEND;;\nDELIMITER ;\nSELECT 1;\n";
        let c = chunks("post-data.sql", text);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].0, "post-data.sql");
        assert_eq!(c[2].0, "a.t");
        let s = mysql_statements(c[2].1);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with("CREATE TRIGGER") && s[0].ends_with("END"), "{}", s[0]);
        assert_eq!(s[1], "SELECT 1");
        assert_eq!(mysql_statements(c[0].1), vec!["SET x"]);
    }
}
