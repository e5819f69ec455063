//! Kubernetes `resource.Quantity` as TrafficSplit v1alpha1 uses it for weights (`500m`,
//! `1`, `2k`), parsed exactly (never through floating point).

use std::borrow::Cow;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A quantity as written: `"500m"`, `"1"`, `"1.5"`, `"2Ki"`, `"1e3"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantity(pub String);

/// An exact decimal value: `mantissa * 10^exponent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    pub mantissa: i128,
    pub exponent: i32,
}

/// Why a quantity string is not a valid Kubernetes quantity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a quantity: expected a number with an optional suffix (m, k, M, G, Ki, Mi, e3, ...), e.g. \"500m\" or \"1\""
)]
pub struct QuantityError(pub String);

impl Quantity {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The exact value of this quantity.
    pub fn value(&self) -> Result<Decimal, QuantityError> {
        parse(&self.0).ok_or_else(|| QuantityError(self.0.clone()))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Decimal {
    /// The same value with trailing zeros of the mantissa moved into the exponent.
    pub fn normalized(self) -> Self {
        let (mut m, mut e) = (self.mantissa, self.exponent);
        if m == 0 {
            return Self {
                mantissa: 0,
                exponent: 0,
            };
        }
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        Self {
            mantissa: m,
            exponent: e,
        }
    }

    /// `mantissa * 10^(exponent - base)`, when it is a whole number that fits.
    pub fn scaled_to(self, base: i32) -> Option<i128> {
        let shift = u32::try_from(self.exponent - base).ok()?;
        10i128
            .checked_pow(shift)
            .and_then(|p| self.mantissa.checked_mul(p))
    }
}

fn parse(s: &str) -> Option<Decimal> {
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return None;
    }
    let mut mantissa: i128 = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(d - b'0'))?;
    }
    let mut exponent = -i32::try_from(frac_part.len()).ok()?;
    match suffix {
        "" => {}
        "n" => exponent -= 9,
        "u" => exponent -= 6,
        "m" => exponent -= 3,
        "k" => exponent += 3,
        "M" => exponent += 6,
        "G" => exponent += 9,
        "T" => exponent += 12,
        "P" => exponent += 15,
        "E" => exponent += 18,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = "KMGTPE".find(&suffix[..1])? as u32 + 1;
            mantissa = mantissa.checked_mul(1024i128.checked_pow(power)?)?;
        }
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            exponent = exponent.checked_add(exp.parse::<i32>().ok()?)?;
        }
    }
    Some(Decimal {
        mantissa: if negative { -mantissa } else { mantissa },
        exponent,
    })
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"500m\" or 1")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> (i128, i32) {
        let d = Quantity::new(s).value().unwrap().normalized();
        (d.mantissa, d.exponent)
    }

    #[test]
    fn parses_decimal_suffixes_exactly() {
        assert_eq!(value("500m"), (5, 2 - 3));
        assert_eq!(value("1"), (1, 0));
        assert_eq!(value("1.5"), (15, -1));
        assert_eq!(value("2k"), (2, 3));
        assert_eq!(value("100"), (1, 2));
        assert_eq!(value("1e3"), (1, 3));
        assert_eq!(value("0"), (0, 0));
    }

    #[test]
    fn parses_binary_suffixes() {
        assert_eq!(value("1Ki"), (1024, 0));
        assert_eq!(value("2Mi"), (2 * 1024 * 1024, 0));
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in ["", "m", "1.2.3", "1x", "abc", "1e", "1Zi"] {
            assert!(
                Quantity::new(bad).value().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn numbers_in_yaml_are_read_as_quantities() {
        let q: Quantity = serde_json::from_str("50").unwrap();
        assert_eq!(q, Quantity::new("50"));
    }
}
