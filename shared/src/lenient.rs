//! Serde helpers for reading webhooks as real senders write them, not only as Meta documents
//! them: `null` for an absent list or object, numbers where strings are documented (and the
//! reverse), a sub-object of an unexpected shape, a lone object where a list belongs. Each
//! helper degrades one field, never the message around it, so an odd detail cannot cost a
//! message (and the ad click it carries).
//!
//! What stays strict is what a message cannot do without: its id and its timestamp.
//!
//! Below the fields, the JSON itself can be unreadable in part: a string holding a lone
//! surrogate escape (`"\ud83d"`), a number out of range (`1e400`), a key given twice. Such an
//! item is read again by [`salvage`], part by part over raw values, with the unreadable parts
//! left out and counted, so it too costs only the part that could not be read.
//!
//! The helpers are visitors over the parser's own events: nothing is buffered or parsed twice,
//! so leniency costs the hot path almost nothing. The objects read with [`object`], [`items`]
//! and [`slots`] are built from lenient fields only, so reading one cannot fail part-way.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One JSON value seen as a scalar; containers and booleans are [`Scalar::Other`] (consumed).
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Null,
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Signed(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// An optional identifier or text: a string, or a number written as one (some relays send
/// phone numbers and ids as JSON numbers). `null`, empty and other shapes are `None`.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Text(s) if !s.is_empty() => Some(s.into_owned()),
        Scalar::Unsigned(n) => Some(n.to_string()),
        Scalar::Signed(n) => Some(n.to_string()),
        Scalar::Float(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
        _ => None,
    })
}

/// A flag: `true` (or the text `"true"`) is set; anything else, `null` included, is not.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct FlagVisitor;
    impl<'de> Visitor<'de> for FlagVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a flag")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E>(self, v: &str) -> Result<bool, E> {
            Ok(v.trim().eq_ignore_ascii_case("true"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_none<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(false)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(false)
        }
    }
    d.deserialize_any(FlagVisitor)
}

/// A required identifier: a non-empty string or a number.
pub fn required_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string(d)?.ok_or_else(|| de::Error::custom("expected a non-empty string or a number"))
}

/// Timestamps above this are milliseconds (in seconds it would be the year 5138).
const MILLISECONDS_FROM: i64 = 100_000_000_000;

/// Unix seconds from a JSON string (`messages[]`), an integer (`automatic_events[]`) or a
/// whole float; milliseconds (as some relays write them) are brought back to seconds.
pub fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let bad = || de::Error::custom("timestamp is not unix seconds");
    let seconds = match scalar(d)? {
        Scalar::Unsigned(n) => i64::try_from(n).map_err(|_| bad())?,
        Scalar::Signed(n) => n,
        Scalar::Float(f) => whole(f).ok_or_else(bad)?,
        Scalar::Text(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => i,
                Err(_) => whole(s.parse::<f64>().map_err(|_| bad())?).ok_or_else(bad)?,
            }
        }
        Scalar::Null | Scalar::Other => return Err(bad()),
    };
    if seconds <= 0 {
        return Err(bad());
    }
    Ok(if seconds >= MILLISECONDS_FROM {
        seconds / 1000
    } else {
        seconds
    })
}

fn whole(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// An amount as sent: a JSON number, or text to be read with [`crate::values::money::parse_amount`]
/// (which needs the currency to tell a decimal point from a thousands separator).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Amount {
    /// A JSON number.
    Number(f64),
    /// A JSON string.
    Text(String),
}

/// An optional [`Amount`]: `null` and other shapes are `None`.
pub fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Unsigned(n) => Some(Amount::Number(n as f64)),
        Scalar::Signed(n) => Some(Amount::Number(n as f64)),
        Scalar::Float(f) => Some(Amount::Number(f)),
        Scalar::Text(s) => Some(Amount::Text(s.into_owned())),
        Scalar::Null | Scalar::Other => None,
    })
}

/// What one value of a list or object field came to.
enum Shape<T> {
    /// An object, read as `T`.
    Object(T),
    /// `null`: nothing.
    Null,
    /// Any other shape (consumed).
    Other,
}

struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = Shape<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Shape::Object)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shape<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor(PhantomData))
    }
}

/// An optional object: `None` when it is `null` or not an object. `T` must be built from
/// lenient fields only (then an object always reads).
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(match Shape::<T>::deserialize(d)? {
        Shape::Object(t) => Some(t),
        Shape::Null | Shape::Other => None,
    })
}

/// The items of a list, each as a [`Shape`]: a list's items, or a lone object as a list of one
/// (relays write `"contacts": {...}`); `null` and other shapes hold none.
struct ShapesVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapesVisitor<T> {
    type Value = Vec<Shape<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Shape<T>>()? {
            out.push(item);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|t| vec![Shape::Object(t)])
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

/// A list whose objects are read as `T`; other items are left out. `T` must be built from
/// lenient fields only.
pub fn items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(d.deserialize_any(ShapesVisitor::<T>(PhantomData))?
        .into_iter()
        .filter_map(|s| match s {
            Shape::Object(t) => Some(t),
            Shape::Null | Shape::Other => None,
        })
        .collect())
}

/// A list whose completeness matters (an order's lines): objects read as `T`, `null` items left
/// out, and a `None` in place of any other item, so the list is known to be incomplete.
pub fn slots<'de, D, T>(d: D) -> Result<Vec<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(d.deserialize_any(ShapesVisitor::<T>(PhantomData))?
        .into_iter()
        .filter_map(|s| match s {
            Shape::Object(t) => Some(Some(t)),
            Shape::Null => None,
            Shape::Other => Some(None),
        })
        .collect())
}

/// One item of a list kept raw until it is parsed by itself: borrowed from the request body,
/// or (for a lone object standing where a list belongs) rebuilt from what was read.
#[derive(Debug)]
pub enum RawItem<'a> {
    /// Exactly as received.
    Borrowed(&'a RawValue),
    /// Re-serialised (a lone object: the parser gives no raw text for it).
    Owned(Box<RawValue>),
}

impl RawItem<'_> {
    /// The item's JSON text.
    pub fn get(&self) -> &str {
        match self {
            Self::Borrowed(raw) => raw.get(),
            Self::Owned(raw) => raw.get(),
        }
    }

    /// `null` or `{}`: the item holds nothing.
    fn is_empty(&self) -> bool {
        let text = self.get();
        text == "null" || text.bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"{}")
    }
}

struct RawListVisitor;

impl<'de> Visitor<'de> for RawListVisitor {
    type Value = Vec<RawItem<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let item = RawItem::Borrowed(raw);
            if !item.is_empty() {
                out.push(item);
            }
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        let item = serde_json::value::to_raw_value(&value)
            .map(RawItem::Owned)
            .map_err(de::Error::custom)?;
        Ok(if item.is_empty() {
            Vec::new()
        } else {
            vec![item]
        })
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
}

/// A list kept raw, item by item, in one pass: a list's items (`null` and `{}` items left out),
/// or a lone object as a list of one; `null` and other shapes hold none.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RawItem<'de>>, D::Error> {
    d.deserialize_any(RawListVisitor)
}

/// How deep [`salvage`] reads an unreadable item part by part; below, an unreadable value is
/// left out whole. Every part a signal reads lies within four levels of its item
/// (`order.product_items[i].item_price`; a change's messages lie three deeper), and the bound
/// keeps a salvage within a few passes over the item's bytes.
pub const MAX_SALVAGE_DEPTH: usize = 8;

/// What an unreadable list item becomes in a salvaged item: a value no list of the model reads as
/// an item, so a list whose completeness matters (an order's lines, see [`slots`]) is still known
/// to be incomplete rather than silently shorter.
const UNREADABLE_ITEM: Value = Value::Bool(false);

/// An item's JSON with its unreadable parts left out, and how many were: a string holding a lone
/// surrogate escape (`"\ud83d"`), a number out of range (`1e400`), an object key that is no
/// text, and the earlier copies of a repeated key (the last readable copy is kept, as
/// JavaScript's and serde_json's own readers keep the last). `None` when the item is not an
/// object at all, or nothing of it could be read.
///
/// For an item the model could not read as it came: what is left is read again, so an odd
/// detail costs that detail (the text, a price), never the message and the ad click it carries.
/// What a signal cannot do without (its id, its time) is still required of what is left.
pub fn salvage(raw: &str) -> Option<(String, usize)> {
    let mut dropped = 0;
    let value = salvage_object(raw, 0, &mut dropped)?;
    Some((value.to_string(), dropped))
}

/// Reads `raw` as `T`; one that cannot be read as it came is read from what [`salvage`] keeps of
/// it, with how many parts were left out (0 when it read as it came). The error is the first
/// read's, for an item that stays unreadable (no id or no timestamp even so).
pub fn read_salvaged<T: DeserializeOwned>(raw: &str) -> Result<(T, usize), serde_json::Error> {
    match serde_json::from_str::<T>(raw) {
        Ok(item) => Ok((item, 0)),
        Err(e) => match salvage(raw) {
            Some((text, dropped)) => serde_json::from_str::<T>(&text)
                .map(|item| (item, dropped))
                .map_err(|_| e),
            None => Err(e),
        },
    }
}

/// An object read key by key; `None` when `raw` is not one.
fn salvage_object(raw: &str, depth: usize, dropped: &mut usize) -> Option<Value> {
    let pairs = serde_json::from_str::<RawPairs<'_>>(raw).ok()?;
    let mut map = Map::new();
    for (key, value) in pairs.0 {
        let Some(key) = key else {
            *dropped += 1;
            continue;
        };
        match salvage_value(value.get(), depth + 1, dropped) {
            Some(value) => {
                if map.insert(key, value).is_some() {
                    *dropped += 1;
                }
            }
            None => *dropped += 1,
        }
    }
    Some(Value::Object(map))
}

/// A value read part by part down to [`MAX_SALVAGE_DEPTH`] (so a repeated key is seen, and
/// counted, wherever it is), and whole below; `None` for an unreadable scalar (or anything
/// unreadable below the bound).
fn salvage_value(raw: &str, depth: usize, dropped: &mut usize) -> Option<Value> {
    if depth >= MAX_SALVAGE_DEPTH {
        return serde_json::from_str::<Value>(raw).ok();
    }
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => salvage_object(raw, depth, dropped),
        Some(b'[') => {
            let items = serde_json::from_str::<Vec<&RawValue>>(raw).ok()?;
            Some(Value::Array(
                items
                    .into_iter()
                    .map(|item| {
                        salvage_value(item.get(), depth + 1, dropped).unwrap_or_else(|| {
                            *dropped += 1;
                            UNREADABLE_ITEM
                        })
                    })
                    .collect(),
            ))
        }
        _ => serde_json::from_str::<Value>(raw).ok(),
    }
}

/// An object's members in order, each value raw and each key as text (`None` for a key that is
/// no text: a lone surrogate escape), repeated keys included.
struct RawPairs<'a>(Vec<(Option<String>, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawPairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = RawPairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(key) = map.next_key::<RawKey>()? {
                    pairs.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(RawPairs(pairs))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

/// An object key read as bytes, so a key holding a lone surrogate escape (which serde_json
/// gives as WTF-8 bytes) is a key that is no text rather than an error that sinks its object.
struct RawKey(Option<String>);

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RawKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawKey, E> {
                Ok(RawKey(Some(v.to_owned())))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<RawKey, E> {
                Ok(RawKey(std::str::from_utf8(v).ok().map(str::to_owned)))
            }
        }
        d.deserialize_bytes(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, Default)]
    struct Probe<'a> {
        #[serde(default, borrow, deserialize_with = "list")]
        list: Vec<RawItem<'a>>,
        #[serde(default, deserialize_with = "items")]
        items: Vec<Inner>,
        #[serde(default, deserialize_with = "slots")]
        slots: Vec<Option<Inner>>,
        #[serde(default, deserialize_with = "string")]
        id: Option<String>,
        #[serde(default, deserialize_with = "object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "amount")]
        price: Option<Amount>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "string")]
        x: Option<String>,
    }

    fn inner(x: &str) -> Inner {
        Inner {
            x: Some(x.to_owned()),
        }
    }

    fn probe(json: &str) -> Probe<'_> {
        serde_json::from_str(json).expect("lenient")
    }

    #[test]
    fn nulls_are_empty_and_odd_shapes_degrade_one_field() {
        let p =
            probe(r#"{"list":null,"items":null,"slots":null,"id":null,"inner":null,"price":null}"#);
        assert!(p.list.is_empty() && p.items.is_empty() && p.slots.is_empty());
        assert_eq!((p.id, p.inner, p.price), (None, None, None));

        let p = probe(
            r#"{"list":[{"a":1},null,{},7],"items":[{"x":1},null,"x",{"x":"b"}],
                "slots":[{"x":"a"},null,"not a line"],
                "id":16505551234,"inner":[1,2],"price":"1,299.00"}"#,
        );
        let texts: Vec<&str> = p.list.iter().map(RawItem::get).collect();
        assert_eq!(texts, [r#"{"a":1}"#, "7"]);
        assert_eq!(p.items, vec![inner("1"), inner("b")]);
        assert_eq!(p.slots, vec![Some(inner("a")), None]);
        assert_eq!(p.id.as_deref(), Some("16505551234"));
        assert_eq!(p.inner, None);
        assert_eq!(p.price, Some(Amount::Text("1,299.00".into())));

        let p = probe(r#"{"id":"","inner":{"x":4},"price":12.5}"#);
        assert_eq!(p.id, None);
        assert_eq!(p.inner, Some(inner("4")));
        assert_eq!(p.price, Some(Amount::Number(12.5)));

        // A lone object is a list of one; other shapes hold no items.
        let p = probe(r#"{"list":{"a":1},"items":{"x":"y"},"slots":7}"#);
        assert_eq!(p.list.len(), 1);
        assert_eq!(p.items, vec![inner("y")]);
        assert!(p.slots.is_empty());
        assert!(probe(r#"{"list":"x"}"#).list.is_empty());
    }

    #[derive(Deserialize)]
    struct Ts(#[serde(deserialize_with = "unix_seconds")] i64);

    #[test]
    fn timestamps_in_every_written_form() {
        for (json, want) in [
            ("1750096325", 1_750_096_325),
            ("\"1750096325\"", 1_750_096_325),
            ("\" 1750096325 \"", 1_750_096_325),
            ("1750096325.0", 1_750_096_325),
            ("\"1750096325.0\"", 1_750_096_325),
            ("1750096325123", 1_750_096_325),
            ("\"1750096325123\"", 1_750_096_325),
        ] {
            assert_eq!(
                serde_json::from_str::<Ts>(json).expect(json).0,
                want,
                "{json}"
            );
        }
        for bad in [
            "\"x\"",
            "null",
            "1750096325.5",
            "-5",
            "0",
            "{}",
            "true",
            "[1]",
            // i64's ends and past them: refused, never wrapped.
            "-9223372036854775808",
            "\"-9223372036854775808\"",
            "18446744073709551615",
            "\"18446744073709551616\"",
            "1e400",
            "-1e300",
        ] {
            assert!(serde_json::from_str::<Ts>(bad).is_err(), "{bad}");
        }
        // The largest times read as milliseconds, brought back to seconds without overflow.
        assert_eq!(
            serde_json::from_str::<Ts>("9223372036854775807")
                .expect("max")
                .0,
            9_223_372_036_854_775
        );
    }
}
