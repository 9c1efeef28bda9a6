//! SQL identifiers as dumps write them (`t`, `schema.table`, `"My ""T"""`): parsed, and
//! quoted again before they reach SQL, so that a name recorded in a snapshot (repository
//! content) is never spliced into a statement as it is.

use crate::error::{DbError, Result};

/// `"name"`, double-quoted as PostgreSQL and SQLite quote identifiers.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Splits `a.b` / `"a b"."c"` / `t` into its identifiers; `None` for anything else.
/// Bare identifiers are letters, digits, `_` and `$` (and any non-ASCII character).
pub(crate) fn split(name: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = name.chars().peekable();
    loop {
        let mut part = String::new();
        match chars.peek() {
            Some('"') => {
                chars.next();
                loop {
                    match chars.next()? {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            part.push('"');
                        }
                        '"' => break,
                        c => part.push(c),
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii() {
                        part.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if part.is_empty() {
                    return None;
                }
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// A (possibly qualified) table name, parsed and double-quoted again part by part.
pub(crate) fn quote_qualified(name: &str) -> Result<String> {
    let parts =
        split(name).ok_or_else(|| DbError::Invalid(format!("{name:?} is not a table name")))?;
    Ok(parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_and_requote() {
        assert_eq!(split("t").unwrap(), vec!["t"]);
        assert_eq!(split("\"my \"\"t\"\"\".x").unwrap(), vec!["my \"t\"", "x"]);
        assert!(split("t;drop").is_none());
        assert!(split("\"open").is_none());
        assert!(split("a..b").is_none());
        assert_eq!(quote_qualified("\"my t\"").unwrap(), "\"my t\"");
        assert_eq!(
            quote_qualified("public.pgbench_accounts").unwrap(),
            "\"public\".\"pgbench_accounts\""
        );
        assert_eq!(
            quote_qualified("public.\"My \"\"T\"\"\"").unwrap(),
            "\"public\".\"My \"\"T\"\"\""
        );
        assert!(quote_qualified("t; DROP DATABASE x").is_err());
        assert!(quote_qualified("").is_err());
    }
}
