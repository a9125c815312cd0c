//! Reading the server's JSON answers strictly: a field kiln uses that is missing or of the wrong type is a
//! `store_corrupt` error naming the server, the call and the field's path in the answer (`run.info.run_id`,
//! `model_versions[2].version`), never a filled-in `""` or `0` that would travel on as if the server had said it.
//!
//! `store_corrupt` (an `Integrity` error, exit 1), not `store_rejected`: the server accepted the call, so nothing in
//! the user's input is wrong, and the answer does not have the shape of MLflow's API. Not `store_io` either: that
//! code means "unreachable" to the fallback guard, which would then redo the run in the local store.
//!
//! What MLflow leaves out by protocol (protobuf's JSON omits unset optional fields and empty lists) is read with
//! the `opt_` methods and [`Field::list`], each call site saying why the field may be absent; a field that is there
//! must still have the right type.

use std::rc::Rc;

use kiln_domain::{Code, PortError};
use serde_json::Value;

/// One value inside an answer, with its path from the answer's root.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    value: &'a Value,
    path: String,
    /// `MLflow server <uri>: <method> <endpoint>`
    context: Rc<str>,
}

impl<'a> Field<'a> {
    /// The root of the answer to `context` (the server and the call, for messages).
    pub(crate) fn root(value: &'a Value, context: &str) -> Field<'a> {
        Field { value, path: String::new(), context: Rc::from(context) }
    }

    pub(crate) fn value(&self) -> &'a Value {
        self.value
    }

    fn child(&self, key: &str) -> Field<'a> {
        let path = if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) };
        Field { value: &self.value[key], path, context: Rc::clone(&self.context) }
    }

    fn error(&self, problem: &str) -> PortError {
        PortError::new(Code::StoreCorrupt, format!("{} answered {problem}", self.context))
    }

    fn missing(&self) -> PortError {
        self.error(&format!("without the field `{}`", self.path))
    }

    fn mistyped(&self, expected: &str) -> PortError {
        let mut shown = self.value.to_string();
        if shown.chars().count() > 60 {
            shown = shown.chars().take(57).chain("...".chars()).collect();
        }
        self.error(&format!("`{}` = {shown}, which is not {expected}", self.path))
    }

    /// The field `key`, `None` when absent or null.
    fn present(&self, key: &str) -> Option<Field<'a>> {
        let f = self.child(key);
        (!f.value.is_null()).then_some(f)
    }

    /// A field that must be an object.
    pub(crate) fn object(&self, key: &str) -> Result<Field<'a>, PortError> {
        self.opt_object(key)?.ok_or_else(|| self.child(key).missing())
    }

    /// An object field the server may leave out.
    pub(crate) fn opt_object(&self, key: &str) -> Result<Option<Field<'a>>, PortError> {
        match self.present(key) {
            None => Ok(None),
            Some(f) if f.value.is_object() => Ok(Some(f)),
            Some(f) => Err(f.mistyped("an object")),
        }
    }

    /// A field that must be a string.
    pub(crate) fn str(&self, key: &str) -> Result<&'a str, PortError> {
        self.opt_str(key)?.ok_or_else(|| self.child(key).missing())
    }

    /// A string field the server may leave out.
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, PortError> {
        match self.present(key) {
            None => Ok(None),
            Some(f) => f.value.as_str().map(Some).ok_or_else(|| f.mistyped("a string")),
        }
    }

    /// A field that must be an int64, which MLflow sends as a number or as a string of digits.
    pub(crate) fn int(&self, key: &str) -> Result<i64, PortError> {
        self.opt_int(key)?.ok_or_else(|| self.child(key).missing())
    }

    /// An int64 field the server may leave out.
    pub(crate) fn opt_int(&self, key: &str) -> Result<Option<i64>, PortError> {
        match self.present(key) {
            None => Ok(None),
            Some(f) => {
                let n = match f.value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                n.map(Some).ok_or_else(|| f.mistyped("an integer"))
            }
        }
    }

    /// A boolean field the server may leave out.
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, PortError> {
        match self.present(key) {
            None => Ok(None),
            Some(f) => f.value.as_bool().map(Some).ok_or_else(|| f.mistyped("a boolean")),
        }
    }

    /// A list field; absent means empty (protobuf leaves empty lists out), anything but an array is an error.
    pub(crate) fn list(&self, key: &str) -> Result<Vec<Field<'a>>, PortError> {
        let Some(f) = self.present(key) else {
            return Ok(Vec::new());
        };
        let items = f.value.as_array().ok_or_else(|| f.mistyped("a list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Field { value, path: format!("{}[{i}]", f.path), context: Rc::clone(&f.context) })
            .collect())
    }

    /// This field (an item of a [`Field::list`]) as a string.
    pub(crate) fn as_str(&self) -> Result<&'a str, PortError> {
        if self.value.is_null() {
            return Err(self.missing());
        }
        self.value.as_str().ok_or_else(|| self.mistyped("a string"))
    }

    /// A failure about this field's value that its type does not show (an unknown status, a version that is not a
    /// number).
    pub(crate) fn invalid(&self, key: &str, expected: &str) -> PortError {
        self.child(key).mistyped(expected)
    }

    /// The next page's token: absent or empty on the last page.
    pub(crate) fn next_page_token(&self) -> Result<Option<String>, PortError> {
        Ok(self.opt_str("next_page_token")?.filter(|t| !t.is_empty()).map(str::to_string))
    }
}

#[cfg(test)]
mod tests;
