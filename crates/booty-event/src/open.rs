//! Open enums: string values GitHub may extend at any time (actions, states, account types).
//!
//! Each enum has one variant per value this crate knows and `Other(String)` for the rest, so a value GitHub
//! adds tomorrow decodes instead of failing. Known values decode without allocating: the visitor matches the
//! borrowed string first and only copies it into `Other` when nothing matched.

use std::fmt;
use std::marker::PhantomData;

/// Defines a `#[non_exhaustive]` enum of known string values plus `Other(String)`, with `as_str`, `Display`,
/// `From<&str>`, `From<String>`, `Serialize` and an allocation-free `Deserialize` for known values.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($variant:ident = $text:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        $vis enum $name {
            $(#[doc = concat!("`", $text, "`")] $variant,)+
            /// A value this version does not know, exactly as GitHub sent it.
            Other(String),
        }

        impl $name {
            /// The value as GitHub spells it.
            $vis fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(other) => other,
                }
            }

            fn known(value: &str) -> Option<Self> {
                match value {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::known(value).unwrap_or_else(|| Self::Other(value.to_owned()))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::known(&value).unwrap_or(Self::Other(value))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str($crate::open::Visitor::<Self>::new())
            }
        }
    };
}

pub(crate) use open_enum;

/// The string visitor shared by every open enum: `visit_str` borrows, `visit_string` reuses the allocation.
pub(crate) struct Visitor<T>(PhantomData<T>);

impl<T> Visitor<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> serde::de::Visitor<'_> for Visitor<T>
where
    T: for<'a> From<&'a str> + From<String>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        Ok(T::from(value))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<T, E> {
        Ok(T::from(value))
    }
}

#[cfg(test)]
mod tests {
    open_enum! {
        /// A test enum.
        enum Color {
            Red = "red",
            LightBlue = "light_blue",
        }
    }

    #[test]
    fn known_values_decode_to_their_variant_and_others_are_kept() {
        let colors: Vec<Color> =
            serde_json::from_str(r#"["red", "light_blue", "ultra\u0076iolet", "Red"]"#).unwrap();
        assert_eq!(
            colors,
            [
                Color::Red,
                Color::LightBlue,
                Color::Other("ultraviolet".into()),
                Color::Other("Red".into()),
            ]
        );
        assert_eq!(
            serde_json::to_string(&colors).unwrap(),
            r#"["red","light_blue","ultraviolet","Red"]"#
        );
        assert_eq!(Color::from("light_blue"), Color::LightBlue);
        assert_eq!(Color::from(String::from("red")), Color::Red);
        assert_eq!(Color::Other("x".into()).to_string(), "x");
    }

    #[test]
    fn non_strings_are_an_error() {
        let err = serde_json::from_str::<Color>("1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type: integer `1`, expected a string at line 1 column 1"
        );
    }
}
