//! Finding every error of a YAML document, not just the first.
//!
//! serde stops at the first error. To find the others, the document is read
//! again, each pass skipping the nodes that failed in the passes before: a
//! pass that fails names the innermost node its error came from (through
//! [`Node`], a deserializer around serde_yaml_ng's that keeps each node's
//! place), and the next pass reads the document as if that node (a map
//! entry, key and value, or a sequence element) were not written. An
//! optional field that is skipped takes its default; a required one makes
//! its map fail in turn, and that failure is not reported (it follows from
//! the error already reported), only skipped. The passes end when one
//! succeeds, when the whole document failed, or when the same error comes
//! back (a YAML syntax error: the parser cannot get past it).
//!
//! Every error keeps the line and column serde_yaml_ng gives it, so the
//! errors are those of reading the file once, each with its own field.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::path::Path;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::FileError;

/// Most passes over one document (each finds an error, or skips a node that
/// failed because one inside it did); a note says when there may be more.
const MAX_PASSES: usize = 200;

/// What reading a document gave: its value (with the nodes that failed left
/// out), when its top level could be read, and every error.
#[derive(Debug)]
pub(crate) struct Read<T> {
    /// The document without its failed nodes; `None` when the top level failed.
    pub(crate) value: Option<T>,
    /// Every error, in the order found (which is the document's order).
    pub(crate) errors: Vec<FileError>,
}

/// Reads `text` (from `path`, which errors name) as a `T`, finding every error.
pub(crate) fn read<T: DeserializeOwned>(path: &Path, text: &str) -> Read<T> {
    let mut skipped = BTreeSet::new();
    let mut errors: Vec<FileError> = Vec::new();
    for pass_number in 0..=MAX_PASSES {
        if pass_number == MAX_PASSES {
            let message = format!(
                "more errors may follow: reading stopped after {} of them",
                errors.len()
            );
            errors.push(FileError::new(path, None, message));
            break;
        }
        let pass = Pass {
            skipped: &skipped,
            failed_at: RefCell::new(None),
            key: RefCell::new(None),
        };
        let root = Node {
            de: serde_yaml_ng::Deserializer::from_str(text),
            at: At::value(Place::default(), &pass),
        };
        let error = match T::deserialize(root) {
            Ok(value) => {
                return Read {
                    value: Some(value),
                    errors,
                };
            }
            Err(error) => super::file_error(path, error),
        };
        let place = pass.failed_at.into_inner().unwrap_or_default();
        let field = place.field();
        let error = FileError {
            message: without_path(&error.message, field.as_deref()).to_string(),
            field,
            ..error
        };
        if errors.iter().any(|seen| same_error(seen, &error)) {
            break;
        }
        if !place.has_skipped_child(&skipped) {
            errors.push(error);
        }
        if place.entries.is_empty() {
            break;
        }
        skipped.insert(place.entries);
    }
    Read {
        value: None,
        errors,
    }
}

/// `message` without serde_yaml_ng's own path in front (`items[1]: ...`),
/// when that is `field` or a field it is in: the error names its field itself.
fn without_path<'m>(message: &'m str, field: Option<&str>) -> &'m str {
    let Some((prefix, rest)) = message.split_once(": ") else {
        return message;
    };
    let is_field_or_parent = field.is_some_and(|field| {
        field
            .strip_prefix(prefix)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with(['.', '[']))
    });
    if is_field_or_parent { rest } else { message }
}

/// Whether two errors are the same one, met again.
fn same_error(one: &FileError, other: &FileError) -> bool {
    (one.line, one.column, &one.message) == (other.line, other.column, &other.message)
}

/// One step of a field path: a map key or a sequence index.
#[derive(Debug, Clone)]
enum Step {
    /// The value of this key of a map.
    Key(String),
    /// This element of a sequence.
    Index(usize),
}

/// Where a node is written: the index of each entry on the way to it (what
/// a later pass skips) and its field path (what errors name).
#[derive(Debug, Clone, Default)]
struct Place {
    /// The index of the entry taken in each map or sequence on the way.
    entries: Vec<usize>,
    /// The same way as keys and indices.
    steps: Vec<Step>,
}

impl Place {
    /// The place of entry `index` of this node, reached by `step`.
    fn child(&self, index: usize, step: Step) -> Place {
        let mut entries = self.entries.clone();
        entries.push(index);
        let mut steps = self.steps.clone();
        steps.push(step);
        Place { entries, steps }
    }

    /// The field path (`targets[0].url`); `None` for the document itself.
    fn field(&self) -> Option<String> {
        if self.steps.is_empty() {
            return None;
        }
        let mut field = String::new();
        for step in &self.steps {
            match step {
                Step::Key(key) if field.is_empty() => field.push_str(key),
                Step::Key(key) => {
                    field.push('.');
                    field.push_str(key);
                }
                Step::Index(index) => {
                    // Writing to a String cannot fail.
                    let _ = write!(field, "[{index}]");
                }
            }
        }
        Some(field)
    }

    /// Whether a pass skips one of this node's own entries.
    fn has_skipped_child(&self, skipped: &BTreeSet<Vec<usize>>) -> bool {
        skipped.iter().any(|entries| {
            entries.len() == self.entries.len() + 1 && entries.starts_with(&self.entries)
        })
    }
}

/// What one pass shares between its nodes.
struct Pass<'p> {
    /// The entries this pass leaves out.
    skipped: &'p BTreeSet<Vec<usize>>,
    /// The innermost node whose reading failed, once one did.
    failed_at: RefCell<Option<Place>>,
    /// The text of the map key being read, once its visitor saw it.
    key: RefCell<Option<String>>,
}

impl Pass<'_> {
    /// Notes that reading the node at `place` failed, unless a node inside it did first.
    fn failed(&self, place: &Place) {
        self.failed_at
            .borrow_mut()
            .get_or_insert_with(|| place.clone());
    }

    /// Whether this pass leaves out the node at `place`.
    fn skips(&self, place: &Place) -> bool {
        self.skipped.contains(&place.entries)
    }
}

/// A node of the document as serde sees it: serde_yaml_ng's deserializer
/// for it, and where it is.
struct Node<'p, D> {
    /// serde_yaml_ng's deserializer of the node.
    de: D,
    /// Where the node is.
    at: At<'p>,
}

/// Where a node is, in its pass.
#[derive(Clone)]
struct At<'p> {
    /// The node's place.
    place: Place,
    /// The pass reading it.
    pass: &'p Pass<'p>,
    /// Whether the node is a map key, whose text is noted in [`Pass::key`].
    is_key: bool,
}

impl<'p> At<'p> {
    /// The node at `place` that is not a key.
    fn value(place: Place, pass: &'p Pass<'p>) -> At<'p> {
        At {
            place,
            pass,
            is_key: false,
        }
    }

    /// `visitor`, wrapped so that what it is given is wrapped in turn.
    fn wrap<V>(&self, visitor: V) -> Wrap<'p, V> {
        Wrap {
            visitor,
            at: self.clone(),
        }
    }

    /// `result`, noting where it failed (a key's failure is noted by its map,
    /// which knows its text).
    fn note<T, E>(&self, result: Result<T, E>) -> Result<T, E> {
        if result.is_err() && !self.is_key {
            self.pass.failed(&self.place);
        }
        result
    }

    /// `de` as a node here that is not a key.
    fn node<D>(&self, de: D) -> Node<'p, D> {
        Node {
            de,
            at: At::value(self.place.clone(), self.pass),
        }
    }
}

/// The methods of [`Node`]'s `Deserializer`: each wraps the visitor, calls
/// the same method of the inner deserializer and notes a failure.
macro_rules! forward_node {
    ($($method:ident($($arg:ident: $ty:ty),*)),+ $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let Node { de, at } = self;
            let result = D::$method(de, $($arg,)* at.wrap(visitor));
            at.note(result)
        }
    )+};
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Node<'_, D> {
    type Error = D::Error;

    forward_node!(
        deserialize_any(),
        deserialize_bool(),
        deserialize_i8(),
        deserialize_i16(),
        deserialize_i32(),
        deserialize_i64(),
        deserialize_i128(),
        deserialize_u8(),
        deserialize_u16(),
        deserialize_u32(),
        deserialize_u64(),
        deserialize_u128(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_string(),
        deserialize_bytes(),
        deserialize_byte_buf(),
        deserialize_option(),
        deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq(),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(),
        deserialize_ignored_any(),
    );

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor whose nested deserializers, maps, sequences and enums are
/// wrapped, so their nodes keep their places; a key's text is noted.
struct Wrap<'p, V> {
    /// The visitor wrapped.
    visitor: V,
    /// Where the node it visits is.
    at: At<'p>,
}

impl<'p, V> Wrap<'p, V> {
    /// Notes `text` as the key being read, when this visits a map key.
    fn note_key(&self, text: impl fmt::Display) {
        if self.at.is_key {
            *self.at.pass.key.borrow_mut() = Some(text.to_string());
        }
    }

    /// `access` with its entries wrapped at this visitor's place.
    fn entries<A>(&self, access: A) -> Entries<'p, A> {
        Entries {
            access,
            place: self.at.place.clone(),
            pass: self.at.pass,
            next: 0,
            current: None,
        }
    }
}

/// Visitor methods of [`Wrap`] that take a scalar: noted as a key's text when
/// they visit one, then forwarded.
macro_rules! forward_scalar {
    ($($method:ident($ty:ty)),+ $(,)?) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.note_key(&value);
            self.visitor.$method(value)
        }
    )+};
}

/// Visitor methods of [`Wrap`] that take bytes, forwarded.
macro_rules! forward_bytes {
    ($($method:ident($ty:ty)),+ $(,)?) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(value)
        }
    )+};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_scalar!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
    );

    forward_bytes!(
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(self.at.node(de))
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        de: D,
    ) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(self.at.node(de))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let entries = self.entries(seq);
        self.visitor.visit_seq(entries)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let entries = self.entries(map);
        self.visitor.visit_map(entries)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(Enum {
            access: data,
            at: At::value(self.at.place, self.at.pass),
        })
    }
}

/// A map's entries or a sequence's elements, the skipped ones left out.
struct Entries<'p, A> {
    /// serde_yaml_ng's access to them.
    access: A,
    /// The place of the map or sequence.
    place: Place,
    /// The pass reading it.
    pass: &'p Pass<'p>,
    /// The index of the next entry.
    next: usize,
    /// The place of the value of the key just read.
    current: Option<Place>,
}

impl<A> Entries<'_, A> {
    /// The index of the next entry, counted.
    fn take_index(&mut self) -> usize {
        let index = self.next;
        self.next += 1;
        index
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let index = self.take_index();
            if self
                .pass
                .skips(&self.place.child(index, Step::Index(index)))
            {
                if self.access.next_key::<IgnoredAny>()?.is_none() {
                    return Ok(None);
                }
                self.access.next_value::<IgnoredAny>()?;
                continue;
            }
            self.pass.key.borrow_mut().take();
            let at = At {
                is_key: true,
                ..At::value(self.place.clone(), self.pass)
            };
            let result = self.access.next_key_seed(Seed { seed, at });
            let key = self
                .pass
                .key
                .borrow_mut()
                .take()
                .unwrap_or_else(|| "?".to_string());
            let place = self.place.child(index, Step::Key(key));
            if result.is_err() {
                self.pass.failed(&place);
            }
            self.current = Some(place);
            return result;
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let place = self.current.take().unwrap_or_else(|| self.place.clone());
        let at = At::value(place, self.pass);
        self.access.next_value_seed(Seed { seed, at })
    }

    fn size_hint(&self) -> Option<usize> {
        self.access.size_hint()
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Entries<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        loop {
            let index = self.take_index();
            let place = self.place.child(index, Step::Index(index));
            if self.pass.skips(&place) {
                if self.access.next_element::<IgnoredAny>()?.is_none() {
                    return Ok(None);
                }
                continue;
            }
            let at = At::value(place, self.pass);
            return self.access.next_element_seed(Seed { seed, at });
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.access.size_hint()
    }
}

/// A seed whose deserializer is wrapped as the node `at`; its failure is noted there.
struct Seed<'p, S> {
    /// The seed wrapped.
    seed: S,
    /// Where its node is.
    at: At<'p>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        // A value checked after its node was read (`try_from`) fails here,
        // outside the node.
        let at = self.at.clone();
        at.note(self.seed.deserialize(Node { de, at: self.at }))
    }
}

/// An enum's variant and content, the content wrapped at the enum's place.
struct Enum<'p, A> {
    /// serde_yaml_ng's access to the enum or its variant.
    access: A,
    /// Where the enum is.
    at: At<'p>,
}

impl<'de, 'p, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'p, A> {
    type Error = A::Error;
    type Variant = Enum<'p, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, access) = self.access.variant_seed(seed)?;
        Ok((
            value,
            Enum {
                access,
                at: self.at,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Enum<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.access.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.access.newtype_variant_seed(Seed { seed, at: self.at })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let wrapped = self.at.wrap(visitor);
        self.access.tuple_variant(len, wrapped)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let wrapped = self.at.wrap(visitor);
        self.access.struct_variant(fields, wrapped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        size: u32,
        #[serde(default)]
        colour: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        count: u8,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        kinds: Vec<Kind>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Sized(u8),
    }

    fn fields_and_lines(read: &Read<Doc>) -> Vec<(Option<&str>, Option<usize>)> {
        read.errors
            .iter()
            .map(|error| (error.field.as_deref(), error.line))
            .collect()
    }

    #[test]
    fn every_error_is_found_with_its_field_and_line() {
        let text = "name: x\ncount: 300\nitems:\n  - size: 1\n  - size: big\n  - size: 2\n    hue: red\nshape: round\nkinds: [plain, !sized 999, plain]\n";
        let read = read::<Doc>(Path::new("d.yaml"), text);
        assert_eq!(
            fields_and_lines(&read),
            [
                (Some("count"), Some(2)),
                (Some("items[1].size"), Some(5)),
                (Some("items[2].hue"), Some(7)),
                (Some("shape"), Some(8)),
                (Some("kinds[1]"), Some(9)),
            ],
            "{:?}",
            read.errors
        );
        assert!(read.errors[3].message.contains("unknown field `shape`"));
        assert!(
            read.errors[2].message.starts_with("unknown field `hue`"),
            "serde_yaml_ng's path is left out: {}",
            read.errors[2].message
        );
        let doc = read.value.expect("the rest of the document reads");
        assert_eq!((doc.name.as_str(), doc.count), ("x", 0));
        let sizes: Vec<u32> = doc.items.iter().map(|item| item.size).collect();
        assert_eq!(
            sizes,
            [1, 2],
            "the bad item is left out, the unknown key only"
        );
        assert_eq!(doc.kinds, [Kind::Plain, Kind::Plain]);
    }

    #[test]
    fn a_missing_field_left_by_a_skipped_one_is_not_reported_again() {
        let text = "name: [not, text]\nitems:\n  - size: -1\n";
        let read = read::<Doc>(Path::new("d.yaml"), text);
        assert_eq!(
            fields_and_lines(&read),
            [(Some("name"), Some(1)), (Some("items[0].size"), Some(3))],
            "{:?}",
            read.errors
        );
        assert!(read.value.is_none(), "`name` is required");
    }

    #[test]
    fn a_syntax_error_is_reported_once() {
        let text = "name: x\nitems:\n  - size: 1\n   bad: [\n";
        let broken = read::<Doc>(Path::new("d.yaml"), text);
        assert_eq!(broken.errors.len(), 1, "{:?}", broken.errors);
        assert!(broken.value.is_none());
        let empty = read::<Doc>(Path::new("d.yaml"), "");
        assert_eq!(empty.errors.len(), 1, "{:?}", empty.errors);
    }

    #[test]
    fn a_document_of_countless_errors_stops_and_says_so() {
        let items = "  - size: big\n".repeat(MAX_PASSES + 5);
        let read = read::<Doc>(Path::new("d.yaml"), &format!("name: x\nitems:\n{items}"));
        let found = read.errors.len() - 1;
        assert!(found > 10 && found < MAX_PASSES + 5, "{found}");
        let last = read
            .errors
            .last()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(last.contains("more errors may follow"), "{last}");
    }

    #[test]
    fn a_good_document_reads_in_one_pass() {
        let read = read::<Doc>(Path::new("d.yaml"), "name: x\nitems: [{size: 3}]\n");
        assert!(read.errors.is_empty());
        let doc = read.value.expect("reads");
        assert_eq!(doc.items[0].size, 3);
        assert!(doc.items[0].colour.is_none());
    }
}
