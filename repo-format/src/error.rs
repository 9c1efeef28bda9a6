//! Errors of the format layer.
//!
//! Policy: every decoder reports *what* it was decoding (`object`, e.g. "snapshot" or
//! "pack header") so the engine can add *which* object (its id or path). Authentication
//! failures are kept distinct from malformed plaintext: the former means damage or the wrong
//! key, the latter a bug or a hostile writer holding the key.

/// A failure to encode, decode, encrypt or decrypt a repository object.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The object declares a format version this program does not know.
    #[error("{object} has format version {found}, but this program reads up to version {supported}; upgrade strata")]
    UnknownVersion {
        object: &'static str,
        found: u16,
        supported: u16,
    },
    /// Authenticated decryption failed: the bytes were damaged or belong elsewhere.
    #[error("{object} failed authentication (damaged, or encrypted under another key)")]
    Authentication { object: &'static str },
    /// The password does not open this key file.
    #[error("wrong password")]
    WrongPassword,
    /// The bytes are not a valid encoding.
    #[error("{object} is malformed: {reason}")]
    Malformed {
        object: &'static str,
        reason: String,
    },
    /// A blob is compressed against a dictionary the reader was not given (its bytes may be
    /// intact: this is not damage of the blob).
    #[error("{object} is compressed with dictionary {id}, which the repository does not hold")]
    MissingDictionary { object: &'static str, id: u32 },
    /// Parameters (chunker, KDF, sizes) are outside the supported range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter { what: &'static str, reason: String },
}

impl FormatError {
    pub(crate) fn malformed(object: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Malformed {
            object,
            reason: reason.into(),
        }
    }
}
