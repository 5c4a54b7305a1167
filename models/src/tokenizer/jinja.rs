//! A minijinja environment that renders chat templates as transformers' Jinja2 environment
//! does (`_cached_compile_jinja_template` in transformers/utils/chat_template_utils.py):
//!
//! - `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`, autoescape off,
//!   Jinja2's default `keep_trailing_newline=False`, the `loopcontrols` extension
//!   (`{% break %}`, `{% continue %}`);
//! - globals `raise_exception(message)` (raises `TemplateError(message)`), `strftime_now(fmt)`,
//!   `namespace`, `dict`; the filter `tojson` replaced by `json.dumps(x, ensure_ascii=False,
//!   indent=None, separators=None, sort_keys=False)` (no HTML escaping, Python's separators);
//! - the `{% generation %}...{% endgeneration %}` tag (AssistantTracker) renders its body;
//! - Python string/dict/list methods (`.strip()`, `.startswith()`, `.items()`, ...) through
//!   minijinja-contrib's pycompat callback;
//! - values print as Python's `str()` does (`None`, `True`, `['a', 1]`, `{'k': 1.0}`), and the
//!   `string` filter does the same.
//!
//! Python's value printing and `tojson` live in pyvalue.rs, `strftime_now` in strftime.rs.
//!
//! Known differences: map literals written in a template (`{'b': 1, 'a': 2}`) and `dict(...)`
//! iterate and serialize with sorted keys, where Python keeps insertion order (minijinja is
//! built without its `preserve_order` feature); maps iris passes in (messages, extra
//! variables) keep their order. `~` prints none/true/false in minijinja's spelling.
//! `strftime_now` formats the current time in UTC (Python uses local time).

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, Value};

use super::pyvalue::{py_str, tojson};
use super::strftime::strftime_now;

/// Marks an error as coming from the template's `raise_exception(message)`.
#[derive(Debug, Clone)]
pub(crate) struct RaisedException(pub String);

impl fmt::Display for RaisedException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

/// The message of a `raise_exception` anywhere in `err`'s source chain.
pub(crate) fn raised_message(err: &Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(raised) = e.downcast_ref::<RaisedException>() {
            return Some(raised.0.clone());
        }
        current = e.source();
    }
    None
}

/// Builds the environment and adds `source` under `name`.
pub(crate) fn hf_environment(name: &str, source: &str) -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_unknown_method_callback(|state, value, method, args| {
        match (value.as_str(), py_string_method(value, method, args)) {
            (Some(_), Some(result)) => result,
            _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
        }
    });
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() {
            return Ok(());
        }
        let text = match value.as_str() {
            Some(s) => return out.write_str(s).map_err(Error::from),
            None => py_str(value)?,
        };
        out.write_str(&text).map_err(Error::from)
    });
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_filter("string", |value: Value| -> Result<Value, Error> {
        match value.as_str() {
            Some(_) => Ok(value),
            None => Ok(Value::from(py_str(&value)?)),
        }
    });
    env.add_template_owned(name.to_string(), rewrite_generation_tags(source))?;
    Ok(env)
}

/// String methods where pycompat differs from Python: `title`/`capitalize` (titlecase, e.g.
/// "ß" -> "Ss") and `find`/`rfind` (character, not byte, offsets). None: not handled here.
fn py_string_method(value: &Value, method: &str, args: &[Value]) -> Option<Result<Value, Error>> {
    let s = value.as_str()?;
    match (method, args) {
        ("title", []) => {
            let mut out = String::with_capacity(s.len());
            let mut previous_cased = false;
            for c in s.chars() {
                if previous_cased {
                    out.extend(c.to_lowercase());
                } else {
                    push_titlecase(c, &mut out);
                }
                previous_cased = c.is_lowercase() || c.is_uppercase();
            }
            Some(Ok(Value::from(out)))
        }
        ("capitalize", []) => {
            let mut out = String::with_capacity(s.len());
            let mut chars = s.chars();
            if let Some(first) = chars.next() {
                push_titlecase(first, &mut out);
            }
            for c in chars {
                out.extend(c.to_lowercase());
            }
            Some(Ok(Value::from(out)))
        }
        ("find" | "rfind", [needle]) => {
            let needle = needle.as_str()?;
            let found = if method == "find" {
                s.find(needle)
            } else {
                s.rfind(needle)
            };
            let index = found.map_or(-1, |byte| s[..byte].chars().count() as i64);
            Some(Ok(Value::from(index)))
        }
        _ => None,
    }
}

/// Titlecase of `c`: the first character of its uppercase mapping, the rest lowercased
/// (Unicode titlecase for every cased letter except a few digraphs).
fn push_titlecase(c: char, out: &mut String) {
    let mut upper = c.to_uppercase();
    if let Some(first) = upper.next() {
        out.push(first);
    }
    for rest in upper {
        out.extend(rest.to_lowercase());
    }
}

fn raise_exception(message: Value) -> Result<Value, Error> {
    let message = match message.as_str() {
        Some(s) => s.to_string(),
        None => py_str(&message)?,
    };
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedException(message)))
}

// ------------------------------------------------------------------------------------------
// {% generation %} blocks
// ------------------------------------------------------------------------------------------

/// Rewrites `{% generation %}` / `{% endgeneration %}` (with any whitespace-control marks) to
/// `{% if true %}` / `{% endif %}`: the same body, and the same whitespace handling.
pub(crate) fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        match parse_generation_tag(tag) {
            Some((len, open_mark, keyword, close_mark)) => {
                let replacement = if keyword == "generation" {
                    "if true"
                } else {
                    "endif"
                };
                out.push_str("{%");
                out.push_str(open_mark);
                out.push(' ');
                out.push_str(replacement);
                out.push(' ');
                out.push_str(close_mark);
                out.push_str("%}");
                rest = &tag[len..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// For text starting with `{%`: (length, open mark, keyword, close mark) of a generation tag.
fn parse_generation_tag(tag: &str) -> Option<(usize, &str, &str, &str)> {
    let mut pos = 2;
    let open_mark = match tag[pos..].chars().next() {
        Some(c @ ('-' | '+')) => {
            pos += 1;
            &tag[pos - c.len_utf8()..pos]
        }
        _ => "",
    };
    pos += tag[pos..].len() - tag[pos..].trim_start().len();
    let keyword = ["endgeneration", "generation"]
        .into_iter()
        .find(|k| tag[pos..].starts_with(k))?;
    pos += keyword.len();
    let after = &tag[pos..];
    let trimmed = after.trim_start();
    if trimmed.len() == after.len() && !after.starts_with(['-', '+', '%']) {
        return None; // e.g. `{% generation_foo %}`
    }
    pos += after.len() - trimmed.len();
    let close_mark = match tag[pos..].chars().next() {
        Some(c @ ('-' | '+')) => {
            pos += 1;
            &tag[pos - c.len_utf8()..pos]
        }
        _ => "",
    };
    if !tag[pos..].starts_with("%}") {
        return None;
    }
    Some((pos + 2, open_mark, keyword, close_mark))
}

// ------------------------------------------------------------------------------------------
// Ordered maps (Python dicts keep insertion order)
// ------------------------------------------------------------------------------------------

/// A map that iterates in insertion order, like a Python dict.
#[derive(Debug, Default)]
pub(crate) struct PyDict {
    entries: Vec<(Arc<str>, Value)>,
}

impl PyDict {
    /// A template value holding `entries` in this order.
    pub(crate) fn value(entries: Vec<(Arc<str>, Value)>) -> Value {
        Value::from_object(PyDict { entries })
    }
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.entries
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.entries
                .iter()
                .map(|(k, _)| Value::from(k.clone()))
                .collect(),
        )
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A JSON value as the template sees it: objects become insertion-ordered maps.
pub(crate) fn json_to_value(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => PyDict::value(
            map.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), json_to_value(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_become_if_blocks() {
        assert_eq!(
            rewrite_generation_tags(
                "a{%- generation %}b{% endgeneration -%}c{% if x %}{% endif %}"
            ),
            "a{%- if true %}b{% endif -%}c{% if x %}{% endif %}"
        );
        assert_eq!(
            rewrite_generation_tags("{% generations %}"),
            "{% generations %}"
        );
    }

    #[test]
    fn py_dict_keeps_order() {
        let ordered = PyDict::value(vec![
            (Arc::from("z"), Value::from(1)),
            (Arc::from("a"), Value::from(2)),
        ]);
        let env = hf_environment(
            "t",
            "{{ d | tojson }} {% for k, v in d.items() %}{{ k }}{% endfor %} {{ d }}",
        )
        .unwrap();
        let out = env
            .get_template("t")
            .unwrap()
            .render(minijinja::context! { d => ordered })
            .unwrap();
        assert_eq!(out, "{\"z\": 1, \"a\": 2} za {'z': 1, 'a': 2}");
    }
}
