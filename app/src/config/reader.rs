//! A walk over the parsed TOML tree ([`toml::de::DeTable`], which keeps the byte span of
//! every key and value) that asks for the keys it knows, reports a wrong type where it
//! finds one, and at the end of each table reports every key nobody asked for.
//!
//! Why not `#[derive(Deserialize)]` with `deny_unknown_fields`: serde stops at the first
//! error of a document, and `strata config check` must show all of them; it also knows
//! the dotted key of every value here, which serde's errors do not carry.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::Sink;

/// A value with its dotted key and where it is.
#[derive(Clone, Debug)]
pub(crate) struct Sv<T> {
    pub v: T,
    pub key: String,
    pub span: Range<usize>,
}

impl<T> Sv<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Sv<U> {
        Sv {
            v: f(self.v),
            key: self.key,
            span: self.span,
        }
    }
}

/// `a.b` joined, the name quoted when it is not a bare TOML key (`projects."my app"`).
pub(crate) fn join(parent: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let name = if bare {
        name.to_string()
    } else {
        format!("{name:?}")
    };
    if parent.is_empty() {
        name
    } else {
        format!("{parent}.{name}")
    }
}

/// One value of the tree, with its dotted key.
#[derive(Clone)]
pub(crate) struct Val<'a, 'i> {
    pub key: String,
    pub v: &'a Spanned<DeValue<'i>>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Val<'a, 'i> {
    pub(crate) fn span(&self) -> Range<usize> {
        self.v.span()
    }

    fn wrong(&self, sink: &mut Sink, want: &str) {
        let found = type_name(self.v.get_ref());
        sink.error(
            &self.span(),
            &self.key,
            format!("expected {want}, found {found}"),
        );
    }

    fn sv<T>(&self, v: T) -> Sv<T> {
        Sv {
            v,
            key: self.key.clone(),
            span: self.span(),
        }
    }

    pub(crate) fn str(&self, sink: &mut Sink) -> Option<Sv<String>> {
        match self.v.get_ref() {
            DeValue::String(s) => Some(self.sv(s.to_string())),
            _ => {
                self.wrong(sink, "a string");
                None
            }
        }
    }

    /// A string that must not be empty (or only blanks).
    pub(crate) fn text(&self, sink: &mut Sink) -> Option<Sv<String>> {
        let s = self.str(sink)?;
        if s.v.trim().is_empty() {
            sink.error(&s.span, &s.key, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub(crate) fn bool(&self, sink: &mut Sink) -> Option<Sv<bool>> {
        match self.v.get_ref() {
            DeValue::Boolean(b) => Some(self.sv(*b)),
            _ => {
                self.wrong(sink, "true or false");
                None
            }
        }
    }

    /// An integer within `range`.
    pub(crate) fn int(&self, sink: &mut Sink, range: Range<u64>) -> Option<Sv<u64>> {
        let DeValue::Integer(i) = self.v.get_ref() else {
            self.wrong(sink, "an integer");
            return None;
        };
        match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= i128::from(range.start) && n < i128::from(range.end) => {
                Some(self.sv(n as u64))
            }
            _ => {
                sink.error(
                    &self.span(),
                    &self.key,
                    format!(
                        "expected an integer from {} to {}",
                        range.start,
                        range.end - 1
                    ),
                );
                None
            }
        }
    }

    /// The items of an array, each with its key (`paths[2]`).
    pub(crate) fn items(&self, sink: &mut Sink) -> Option<Vec<Val<'a, 'i>>> {
        let DeValue::Array(items) = self.v.get_ref() else {
            self.wrong(sink, "an array");
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .map(|(n, v)| Val {
                    key: format!("{}[{n}]", self.key),
                    v,
                })
                .collect(),
        )
    }

    /// An array of non-empty strings.
    pub(crate) fn strings(&self, sink: &mut Sink) -> Option<Vec<Sv<String>>> {
        let items = self.items(sink)?;
        let mut out = Vec::new();
        let mut ok = true;
        for item in &items {
            match item.text(sink) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(crate) fn table(&self, sink: &mut Sink) -> Option<Table<'a, 'i>> {
        match self.v.get_ref() {
            DeValue::Table(t) => Some(Table::new(self.key.clone(), self.span(), t)),
            _ => {
                self.wrong(sink, "a table");
                None
            }
        }
    }
}

/// A key of a table, its value, and its dotted key.
type Entry<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
    String,
);

/// A table being read: the keys asked for are known, the others are reported by
/// [`Table::finish`].
pub(crate) struct Table<'a, 'i> {
    pub key: String,
    pub span: Range<usize>,
    /// Each key, its value, and its dotted key.
    entries: Vec<Entry<'a, 'i>>,
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(key: String, span: Range<usize>, table: &'a DeTable<'i>) -> Self {
        let entries: Vec<_> = table
            .iter()
            .map(|(k, v)| (k, v, join(&key, k.get_ref())))
            .collect();
        let used = vec![false; entries.len()];
        Table {
            key,
            span,
            entries,
            used,
            known: Vec::new(),
        }
    }

    /// The value of `name`, if given; `name` becomes a known key.
    pub(crate) fn get(&mut self, name: &'static str) -> Option<Val<'a, 'i>> {
        self.known.push(name);
        let i = self
            .entries
            .iter()
            .position(|(k, _, _)| &**k.get_ref() == name)?;
        self.used[i] = true;
        let (_, v, key) = &self.entries[i];
        Some(Val {
            key: key.clone(),
            v,
        })
    }

    /// Every entry not asked for yet (a table of names: `[repositories.NAME]`), now
    /// taken; each with its name.
    pub(crate) fn rest(&mut self) -> Vec<(Sv<String>, Val<'a, 'i>)> {
        let mut out = Vec::new();
        for (i, (k, v, key)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                let name = Sv {
                    v: k.get_ref().to_string(),
                    key: key.clone(),
                    span: k.span(),
                };
                out.push((
                    name,
                    Val {
                        key: key.clone(),
                        v,
                    },
                ));
            }
        }
        out
    }

    /// Reports every key nobody asked for, with the known key it most resembles.
    pub(crate) fn finish(self, sink: &mut Sink) {
        for (i, (k, _, key)) in self.entries.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let name: &str = k.get_ref();
            let mut message = "unknown key".to_string();
            if let Some(like) = resembling(name, &self.known) {
                message.push_str(&format!(" (did you mean `{like}`?)"));
            } else if !self.known.is_empty() {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                message.push_str(&format!("; the keys here are: {}", known.join(", ")));
            }
            sink.error(&k.span(), key, message);
        }
    }
}

/// The known key `name` was probably meant to be: the same with `_` for `-`, another
/// case, or at most two letters off.
fn resembling(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let norm = name.to_ascii_lowercase().replace('_', "-");
    known
        .iter()
        .map(|k| (distance(&norm, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

/// The Levenshtein distance (of short keys: at most 64 characters are compared).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_joined_and_quoted_when_not_bare() {
        assert_eq!(join("", "projects"), "projects");
        assert_eq!(join("projects", "shop"), "projects.shop");
        assert_eq!(join("projects", "my app"), "projects.\"my app\"");
        assert_eq!(join("projects", "a.b"), "projects.\"a.b\"");
    }

    #[test]
    fn a_misspelt_key_names_the_one_meant() {
        let known = ["password-file", "password-command", "url"];
        assert_eq!(resembling("password_file", &known), Some("password-file"));
        assert_eq!(resembling("pasword-file", &known), Some("password-file"));
        assert_eq!(resembling("Url", &known), Some("url"));
        assert_eq!(resembling("colour", &known), None);
    }
}
