//! How the fields of a finding that are not text in memory become text in JSON: blob types
//! by name, paths as UTF-8. Binary formats keep them raw.

/// A blob type as its name (`data`, `tree`, `dictionary`) in human-readable formats, as
/// the format crate encodes it in binary ones.
pub(super) mod blob_type {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use strata_format::blob::BlobType;

    const ALL: [BlobType; 3] = [BlobType::Data, BlobType::Tree, BlobType::Dictionary];

    pub fn serialize<S: Serializer>(t: &BlobType, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(t.name())
        } else {
            t.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlobType, D::Error> {
        if !d.is_human_readable() {
            return BlobType::deserialize(d);
        }
        let name = String::deserialize(d)?;
        ALL.into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("{name:?} is not a blob type")))
    }
}

/// An optional path of raw bytes: UTF-8 text (invalid sequences replaced) in
/// human-readable formats, the bytes themselves in binary ones.
pub(super) mod path {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            None => s.serialize_none(),
            Some(p) if s.is_human_readable() => s.serialize_some(&String::from_utf8_lossy(p)),
            Some(p) => s.serialize_some(p),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        if d.is_human_readable() {
            Ok(Option::<String>::deserialize(d)?.map(String::into_bytes))
        } else {
            Option::<Vec<u8>>::deserialize(d)
        }
    }
}
