//! A serde [`Deserializer`](serde::Deserializer) over page-supplied JavaScript values that
//! keeps the path of the value it reads, so every error names the field
//! (`config.destinations[1].settings.pixelId is required`).
//!
//! Why not `serde_wasm_bindgen::Deserializer` alone: it reads a struct by getting its declared
//! fields only, so an unknown key (a typo) is never seen and `deny_unknown_fields` cannot
//! refuse it; it reads `null` as an absent option; and it reads properties and keys through
//! imports that do not catch, so a throwing getter or proxy would unwind through the wasm. This
//! one reads with `Reflect` and caught `Object.keys` / `Array.from`, treats only `undefined`
//! as absent, checks a struct's keys against its fields, and says what a JavaScript value must
//! be in the product's words: a serde `u64` is `a non-negative integer`, a `bool` `a boolean`,
//! a `String` `a string`, a sequence `an array` (serde's `Vec` would say "a sequence"), a unit
//! enum `'a' or 'b'`, and a struct or map what its visitor expects (each config struct says
//! `#[serde(expecting = "an object")]`). A field kept as a JavaScript value is read with
//! `serde_wasm_bindgen::preserve` (see [`PlainObject`]), whose protocol this deserializer
//! speaks.

use std::fmt;

use js_sys::{Array, Object, Reflect};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Unexpected, Visitor};
use serde::Deserialize;
use wasm_bindgen::convert::IntoWasmAbi;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::web::js::is_plain_object;
use crate::web::platform::error_message;

#[wasm_bindgen]
extern "C" {
    // Caught: a proxy's `ownKeys` trap or an iterator may throw.
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    fn object_keys(v: &JsValue) -> Result<Array, JsValue>;
    #[wasm_bindgen(catch, js_namespace = Array, js_name = from)]
    fn array_from(v: &JsValue) -> Result<Array, JsValue>;
}

/// Where a custom message puts the path of the value it is about; a message without it gets
/// the path first (`<path>: <message>`).
pub const PATH: &str = "{path}";

/// Deserializes `value`, found at `path` (`config`, `config.destinations[0].settings`), into a
/// `T`; the error message names the field.
pub fn from_value<T: DeserializeOwned>(value: &JsValue, path: &str) -> Result<T, String> {
    T::deserialize(JsDeserializer::new(value.clone(), path.into())).map_err(|e| e.at(path))
}

/// A deserialization error: what is wrong, then (once the value it is about is known) the whole
/// message naming it.
#[derive(Debug, Clone)]
pub enum Error {
    /// The value must be this (`a boolean`).
    Expected(String),
    /// A required field of the struct is absent.
    Missing(&'static str),
    /// The struct has a key it does not know.
    Unknown(String),
    /// Any other message; [`PATH`] marks where the path goes.
    Custom(String),
    /// The complete message.
    Placed(String),
}

impl Error {
    /// The message, naming `path` if it does not name a field yet.
    fn at(self, path: &str) -> String {
        match self {
            Error::Expected(what) => [path, " must be ", &what].concat(),
            Error::Missing(field) => [path, ".", field, " is required"].concat(),
            Error::Unknown(key) => ["unknown option ", path, ".", &key].concat(),
            Error::Custom(m) if m.contains(PATH) => m.replacen(PATH, path, 1),
            Error::Custom(m) => [path, ": ", &m].concat(),
            Error::Placed(m) => m,
        }
    }

    /// This error, placed at `path` unless it already is.
    fn place(self, path: &str) -> Error {
        match self {
            Error::Placed(_) => self,
            e => Error::Placed(e.at(path)),
        }
    }

    /// A value that could not be read (a getter or proxy threw `e`).
    fn unreadable(e: &JsValue) -> Error {
        Error::Custom(["value could not be read: ", &error_message(e)].concat())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Placed(m) => f.write_str(m),
            e => f.write_str(&e.clone().at("value")),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }

    fn invalid_type(_: Unexpected, exp: &dyn de::Expected) -> Self {
        Error::Expected(exp.to_string())
    }

    fn invalid_value(_: Unexpected, exp: &dyn de::Expected) -> Self {
        Error::Expected(exp.to_string())
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        let mut what = String::new();
        for (i, v) in expected.iter().enumerate() {
            if i > 0 {
                what.push_str(if i + 1 == expected.len() {
                    " or "
                } else {
                    ", "
                });
            }
            what.push('\'');
            what.push_str(v);
            what.push('\'');
        }
        Error::Expected(what)
    }

    fn unknown_field(field: &str, _: &'static [&'static str]) -> Self {
        Error::Unknown(field.into())
    }

    fn missing_field(field: &'static str) -> Self {
        Error::Missing(field)
    }
}

/// Fails naming the first own key of the object `v` that is not one of `fields`.
fn only_keys(v: &JsValue, fields: &[&str]) -> Result<(), Error> {
    let keys = object_keys(v).map_err(|e| Error::unreadable(&e))?;
    for k in keys.iter() {
        let k = k.as_string().unwrap_or_default();
        if !fields.contains(&k.as_str()) {
            return Err(Error::Unknown(k));
        }
    }
    Ok(())
}

/// Reads one JavaScript value (see the module docs).
pub struct JsDeserializer {
    value: JsValue,
    path: String,
}

impl JsDeserializer {
    /// A deserializer of `value`, found at `path`.
    pub fn new(value: JsValue, path: String) -> Self {
        JsDeserializer { value, path }
    }

    /// The error for a value that is not `what`.
    fn expected(what: &str) -> Error {
        Error::Expected(what.into())
    }

    /// The JavaScript number, if the value is one.
    fn number(&self) -> Option<f64> {
        self.value.as_f64()
    }
}

/// Whether `n` is a non-negative integer JavaScript represents exactly (at most 2^53).
fn is_count(n: f64) -> bool {
    (0.0..=9_007_199_254_740_992.0).contains(&n) && n.fract() == 0.0
}

impl<'de> de::Deserializer<'de> for JsDeserializer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = &self.value;
        if v.is_undefined() || v.is_null() {
            visitor.visit_unit()
        } else if let Some(b) = v.as_bool() {
            visitor.visit_bool(b)
        } else if let Some(n) = v.as_f64() {
            visitor.visit_f64(n)
        } else if let Some(s) = v.as_string() {
            visitor.visit_string(s)
        } else if Array::is_array(v) {
            self.deserialize_seq(visitor)
        } else if is_plain_object(v) {
            self.deserialize_map(visitor)
        } else {
            Err(de::Error::invalid_type(
                Unexpected::Other("value"),
                &visitor,
            ))
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value.as_bool() {
            Some(b) => visitor.visit_bool(b),
            None => Err(Self::expected("a boolean")),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.number() {
            Some(n) if is_count(n) => visitor.visit_u64(n as u64),
            _ => Err(Self::expected("a non-negative integer")),
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.number() {
            Some(n) => visitor.visit_f64(n),
            None => Err(Self::expected("a number")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value.as_string() {
            Some(s) => visitor.visit_string(s),
            None => Err(Self::expected("a string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    /// Only `undefined` is absent: `null` is a value of the wrong type, as before.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.value.is_undefined() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// serde-wasm-bindgen's `preserve` reads a kept `JsValue` as the tuple struct [`PRESERVED`]:
    /// given the marker and then the value's handle, it takes the value itself.
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == PRESERVED {
            visitor.visit_seq(Preserved(Some(self.value), false))
        } else {
            self.deserialize_seq(visitor)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if !Array::is_array(&self.value) {
            return Err(Self::expected("an array"));
        }
        // Copied first, so that a proxy cannot throw half-way.
        let items = array_from(&self.value).map_err(|e| Error::unreadable(&e))?;
        visitor.visit_seq(Items {
            items,
            next: 0,
            path: self.path,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if !is_plain_object(&self.value) {
            return Err(de::Error::invalid_type(
                Unexpected::Other("value"),
                &visitor,
            ));
        }
        let keys = object_keys(&self.value).map_err(|e| Error::unreadable(&e))?;
        visitor.visit_map(Entries {
            obj: self.value,
            keys,
            next: 0,
            path: self.path,
            value: None,
        })
    }

    /// Refuses a key that is not one of `fields` (the first in the object's order), then reads
    /// the fields in their declared order; an `undefined` field is absent.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if !is_plain_object(&self.value) {
            return Err(de::Error::invalid_type(
                Unexpected::Other("value"),
                &visitor,
            ));
        }
        only_keys(&self.value, fields)?;
        visitor.visit_map(Fields {
            obj: self.value,
            fields: fields.iter(),
            path: self.path,
            value: None,
        })
    }

    /// A unit variant, named by a string.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value.as_string() {
            Some(s) => visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(s)),
            None => Err(Self::expected("a string")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u128 f32 char bytes byte_buf unit unit_struct tuple
    }
}

/// The name under which `serde_wasm_bindgen::preserve` reads a kept value (its
/// `PreservedValueDeWrapper`, the same in every 0.x release): a tuple of this marker and the
/// value's wasm-bindgen handle.
const PRESERVED: &str = "1fc430ca-5b7f-4295-92de-33cf2b145d38";

/// The two items of a preserved value: the marker, then the value's handle (whose ownership
/// passes to the reader).
struct Preserved(Option<JsValue>, bool);

impl<'de> de::SeqAccess<'de> for Preserved {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if !self.1 {
            self.1 = true;
            return seed
                .deserialize(IntoDeserializer::<Error>::into_deserializer(PRESERVED))
                .map(Some);
        }
        match self.0.take() {
            Some(v) => seed
                .deserialize(IntoDeserializer::<Error>::into_deserializer(v.into_abi()))
                .map(Some),
            None => Ok(None),
        }
    }
}

/// The items of an array, each at `<path>[<i>]`.
struct Items {
    items: Array,
    next: u32,
    path: String,
}

impl<'de> de::SeqAccess<'de> for Items {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.next >= self.items.length() {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        let path = [&self.path, "[", &i.to_string(), "]"].concat();
        let item = JsDeserializer::new(self.items.get(i), path.clone());
        seed.deserialize(item).map(Some).map_err(|e| e.place(&path))
    }
}

/// The own enumerable properties of an object read as a map, each at `<path>.<key>`.
struct Entries {
    obj: JsValue,
    keys: Array,
    next: u32,
    path: String,
    /// The key of the value to read next, and its path.
    value: Option<(JsValue, String)>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.next >= self.keys.length() {
            return Ok(None);
        }
        let key = self.keys.get(self.next);
        self.next += 1;
        let path = [&self.path, ".", &key.as_string().unwrap_or_default()].concat();
        let k = seed
            .deserialize(JsDeserializer::new(key.clone(), path.clone()))
            .map_err(|e| e.place(&path))?;
        self.value = Some((key, path));
        Ok(Some(k))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, path)) = self.value.take() else {
            return Err(Error::Custom("a value was read before its key".into()));
        };
        let value =
            Reflect::get(&self.obj, &key).map_err(|e| Error::unreadable(&e).place(&path))?;
        seed.deserialize(JsDeserializer::new(value, path.clone()))
            .map_err(|e| e.place(&path))
    }
}

/// A struct's fields, in declared order; absent (`undefined`) ones are skipped.
struct Fields {
    obj: JsValue,
    fields: std::slice::Iter<'static, &'static str>,
    path: String,
    /// The value read for the field whose key was just given, and its path.
    value: Option<(JsValue, String)>,
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.next_present()? {
            Some(field) => seed
                .deserialize(IntoDeserializer::<Error>::into_deserializer(field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((value, path)) = self.value.take() else {
            return Err(Error::Custom("a value was read before its key".into()));
        };
        seed.deserialize(JsDeserializer::new(value, path.clone()))
            .map_err(|e| e.place(&path))
    }
}

impl Fields {
    /// The next field that is present, its value read and kept for `next_value_seed`.
    fn next_present(&mut self) -> Result<Option<&'static str>, Error> {
        for field in self.fields.by_ref() {
            let path = [&self.path, ".", field].concat();
            // A throwing getter refuses the config, naming the field: read as absent, it could
            // silently turn a feature off.
            let value = Reflect::get(&self.obj, &JsValue::from_str(field))
                .map_err(|e| Error::unreadable(&e).place(&path))?;
            if !value.is_undefined() {
                self.value = Some((value, path));
                return Ok(Some(field));
            }
        }
        Ok(None)
    }
}

/// A plain object kept as the page's own JavaScript object (the settings of a destination type
/// registered from JavaScript, handed to its factory as they are).
pub struct PlainObject(pub Object);

impl<'de> Deserialize<'de> for PlainObject {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: JsValue = serde_wasm_bindgen::preserve::deserialize(d)?;
        if is_plain_object(&v) {
            Ok(PlainObject(v.unchecked_into()))
        } else {
            Err(de::Error::invalid_type(
                Unexpected::Other("value"),
                &"an object",
            ))
        }
    }
}

/// A non-negative integer that is at least 1 (a batch size).
#[derive(Clone, Copy)]
pub struct AtLeastOne(pub u64);

impl<'de> Deserialize<'de> for AtLeastOne {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(de::Error::invalid_value(
                Unexpected::Unsigned(0),
                &"at least 1",
            )),
            n => Ok(AtLeastOne(n)),
        }
    }
}

/// A finite number greater than 0 (a backoff multiplier).
#[derive(Clone, Copy)]
pub struct Positive(pub f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive number")
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<f64, E> {
                if n.is_finite() && n > 0.0 {
                    Ok(n)
                } else {
                    Err(E::invalid_value(Unexpected::Float(n), &self))
                }
            }
        }
        d.deserialize_any(V).map(Positive)
    }
}
