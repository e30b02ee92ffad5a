//! The one way to declare a closed set of **contract** label values
//! ([`label_enum!`]): operations, reasons, fault points and effects.

/// Declares a closed set of contract labels: an enum, its `ALL` list, its
/// label text and, for each value, its meaning in words (the variant's doc
/// comment and the tables of `docs/metrics.md` both come from it). Attributes before the
/// name (doc comments, an extra `#[derive(Deserialize)]`) go on the enum.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $label:literal, $meaning:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $(#[doc = $meaning] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value used in metrics, logs and JSON (**contract**).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// What the value means, as the tables of `docs/metrics.md` say it.
            pub fn meaning(self) -> &'static str {
                match self {
                    $($name::$variant => $meaning,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
