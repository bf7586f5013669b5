//! Internal macros.
//!
//! `open_enum!` defines a string enum that is forward compatible: known values map to variants,
//! any other string to `Other(String)`, so a reader built before a value was added still decodes
//! the payload (and can pass the value on). Writers should construct values through the variants
//! or `From<&str>`; `Other("intrusion")` built by hand serialises as `"intrusion"` and reads back
//! as the known variant.

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
        other = $(#[$ometa:meta])*;
        schema_description = $desc:literal;
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            $(#[$ometa])*
            Other(String),
        }

        impl $name {
            /// Every known (non-`Other`) value, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s,
                }
            }

            /// The wire string of a known value (`None` for `Other`).
            pub fn known_str(&self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($wire), )+
                    $name::Other(_) => None,
                }
            }

            /// Whether this is a value this version of the crate knows (not `Other`).
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( $wire => $name::$variant, )+
                    _ => $name::Other(s),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map($name::from)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": $desc,
                    "anyOf": [
                        { "type": "string", "enum": [$($wire),+] },
                        {
                            "type": "string",
                            "description": "a value added after v1 was published; readers keep it as is"
                        }
                    ]
                })
            }
        }
    };
}
