use crate::{Num, Val};
use alloc::{fmt, string::String};
use serde_core::de::{Error, MapAccess, SeqAccess, Visitor};
use serde_core::{Deserialize, Deserializer};

/// Builds a value `.0` arrays and objects deep in the document. Wharf patch: a value
/// [`crate::read::MAX_DEPTH`] levels deep is refused, so that building (and dropping) a
/// value recurses a bounded number of times.
#[derive(Clone, Copy)]
struct ValueVisitor(usize);

/// The error for a document nested too deeply.
fn too_deep<E: Error>() -> E {
    E::custom(alloc::format!(
        "JSON nested too deeply (arrays and objects {} levels deep)",
        crate::read::MAX_DEPTH
    ))
}

impl ValueVisitor {
    /// The visitor of the values inside a container at this depth.
    fn inner<E: Error>(self) -> Result<Self, E> {
        if self.0 + 1 >= crate::read::MAX_DEPTH {
            Err(too_deep())
        } else {
            Ok(Self(self.0 + 1))
        }
    }
}

impl<'de> serde_core::de::DeserializeSeed<'de> for ValueVisitor {
    type Value = Val;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Val;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    #[inline]
    fn visit_bool<E>(self, value: bool) -> Result<Val, E> {
        Ok(Val::Bool(value))
    }

    #[inline]
    fn visit_i64<E>(self, value: i64) -> Result<Val, E> {
        Ok(Val::Num(Num::from_integral(value)))
    }

    #[inline]
    fn visit_u64<E>(self, value: u64) -> Result<Val, E> {
        Ok(Val::Num(Num::from_integral(value)))
    }

    fn visit_i128<E: Error>(self, value: i128) -> Result<Val, E> {
        Ok(Val::Num(Num::from_integral(value)))
    }

    fn visit_u128<E: Error>(self, value: u128) -> Result<Val, E> {
        Ok(Val::Num(Num::from_integral(value)))
    }

    #[inline]
    fn visit_f64<E>(self, value: f64) -> Result<Val, E> {
        Ok(Val::Num(Num::Float(value)))
    }

    #[inline]
    fn visit_str<E: Error>(self, value: &str) -> Result<Val, E> {
        self.visit_string(String::from(value))
    }

    #[inline]
    fn visit_string<E>(self, value: String) -> Result<Val, E> {
        Ok(Val::utf8_str(value.into_bytes()))
    }

    #[inline]
    fn visit_none<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        deserializer.deserialize_any(self)
    }

    #[inline]
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    #[inline]
    fn visit_seq<V: SeqAccess<'de>>(self, mut visitor: V) -> Result<Val, V::Error> {
        let inner = self.inner()?;
        core::iter::from_fn(|| visitor.next_element_seed(inner).transpose()).collect()
    }

    fn visit_map<V: MapAccess<'de>>(self, mut visitor: V) -> Result<Val, V::Error> {
        let inner = self.inner()?;
        core::iter::from_fn(|| visitor.next_entry_seed(inner, inner).transpose())
            .collect::<Result<_, _>>()
            .map(Val::obj)
    }
}

impl<'de> Deserialize<'de> for Val {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Val, D::Error> {
        deserializer.deserialize_any(ValueVisitor(0))
    }
}

/// Wharf patch: deserializes a value keeping only what a filter can observe of it
/// ([`jaq_core::demand::Demand`]): the keys of an object that the demand does not name are
/// skipped (still checked as JSON), and every other value is built exactly as
/// [`Val::deserialize`] builds it.
pub struct Projected<'p>(pub &'p jaq_core::demand::Demand);

impl<'de, 'p> serde_core::de::DeserializeSeed<'de> for Projected<'p> {
    type Value = Val;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        ProjectedAt(self.0, ValueVisitor(0)).deserialize(deserializer)
    }
}

/// [`Projected`] at a depth of the document.
struct ProjectedAt<'p>(&'p jaq_core::demand::Demand, ValueVisitor);

impl<'de, 'p> serde_core::de::DeserializeSeed<'de> for ProjectedAt<'p> {
    type Value = Val;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        use jaq_core::demand::Demand;
        match self.0 {
            Demand::All => deserializer.deserialize_any(self.1),
            Demand::Keys(keys) => deserializer.deserialize_any(ProjectedVisitor(keys, self.1)),
        }
    }
}

type Keys = alloc::collections::BTreeMap<String, jaq_core::demand::Demand>;

struct ProjectedVisitor<'p>(&'p Keys, ValueVisitor);

/// A key of an object: the demand on its value when it is kept, `None` when it is skipped.
struct ProjectedKey<'p>(&'p Keys);

impl<'de, 'p> serde_core::de::DeserializeSeed<'de> for ProjectedKey<'p> {
    type Value = Option<(Val, &'p jaq_core::demand::Demand)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'p> Visitor<'de> for ProjectedKey<'p> {
    type Value = Option<(Val, &'p jaq_core::demand::Demand)>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.get(key).map(|demand| (Val::utf8_str(String::from(key).into_bytes()), demand)))
    }
}

impl<'de, 'p> Visitor<'de> for ProjectedVisitor<'p> {
    type Value = Val;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E: Error>(self, value: bool) -> Result<Val, E> {
        self.1.visit_bool(value)
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<Val, E> {
        self.1.visit_i64(value)
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<Val, E> {
        self.1.visit_u64(value)
    }

    fn visit_i128<E: Error>(self, value: i128) -> Result<Val, E> {
        self.1.visit_i128(value)
    }

    fn visit_u128<E: Error>(self, value: u128) -> Result<Val, E> {
        self.1.visit_u128(value)
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<Val, E> {
        self.1.visit_f64(value)
    }

    fn visit_str<E: Error>(self, value: &str) -> Result<Val, E> {
        self.1.visit_str(value)
    }

    fn visit_string<E: Error>(self, value: String) -> Result<Val, E> {
        self.1.visit_string(value)
    }

    fn visit_none<E: Error>(self) -> Result<Val, E> {
        self.1.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        self.1.visit_some(deserializer)
    }

    fn visit_unit<E: Error>(self) -> Result<Val, E> {
        self.1.visit_unit()
    }

    fn visit_seq<V: SeqAccess<'de>>(self, visitor: V) -> Result<Val, V::Error> {
        self.1.visit_seq(visitor)
    }

    fn visit_map<V: MapAccess<'de>>(self, mut visitor: V) -> Result<Val, V::Error> {
        let inner = self.1.inner()?;
        let mut map = crate::Map::default();
        while let Some(key) = visitor.next_key_seed(ProjectedKey(self.0))? {
            match key {
                Some((key, demand)) => {
                    let value = visitor.next_value_seed(ProjectedAt(demand, inner))?;
                    map.insert(key, value);
                }
                None => {
                    visitor.next_value::<serde_core::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Val::obj(map))
    }
}
