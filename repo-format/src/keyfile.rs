//! Key files: the master key wrapped under a password. One file per password; stored in the
//! clear (they are useless without the password).
//!
//! ```text
//! "STRATAKY" (8) || version u16 LE (1 or 2) || postcard(KeyFile)
//! KeyFile.wrapped = seal(argon2id(password, salt, m, t, p) -> 32 bytes,
//!                        aad "strata:masterkey", postcard(MasterKey))
//! ```
//!
//! Version 2 adds `config`: a copy of the repository's stored config file (sealed under the
//! master key, so the copy is as trustworthy as the original), from which `repair config`
//! restores a config that was deleted or damaged.

use argon2::{Algorithm, Argon2, Params, Version};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, MasterKey, NONCE_LEN};
use crate::envelope::{aad, decode_postcard};
use crate::FormatError;

/// First bytes of every key file. Never change.
pub const KEY_MAGIC: &[u8; 8] = b"STRATAKY";
/// Key file version written by this program (2: with a copy of the config). Never reuse a
/// number.
pub const KEY_VERSION: u16 = 2;
/// The largest config copy a key file may carry (a config is under 200 bytes).
pub const MAX_CONFIG_COPY: usize = 4096;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// The defaults from the design: 64 MiB, 3 iterations, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    /// Bounds accepted when reading, so a hostile key file cannot demand absurd memory.
    pub fn validate(&self) -> Result<(), FormatError> {
        if !(1..=16).contains(&self.p)
            || !(8 * self.p..=1024 * 1024).contains(&self.m_kib)
            || !(1..=16).contains(&self.t)
        {
            return Err(FormatError::InvalidParameter {
                what: "argon2id parameters",
                reason: format!("{self:?} outside p 1..16, m 8·p KiB..1 GiB, t 1..16"),
            });
        }
        Ok(())
    }

    /// Derives the 32-byte wrapping key.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32], FormatError> {
        self.validate()?;
        let params = Params::new(self.m_kib, self.t, self.p, Some(32)).map_err(|e| {
            FormatError::InvalidParameter {
                what: "argon2id parameters",
                reason: e.to_string(),
            }
        })?;
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, salt, &mut out)
            .map_err(|e| FormatError::InvalidParameter {
                what: "argon2id input",
                reason: e.to_string(),
            })?;
        Ok(out)
    }
}

/// A key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: KdfParams,
    pub salt: Vec<u8>,
    /// `nonce || sealed MasterKey || tag`.
    pub wrapped: Vec<u8>,
    pub created_ns: i64,
    pub hostname: String,
    pub username: String,
    /// The repository's stored `config` file as it was when this key file was written
    /// (version 2; `None` in version 1 key files).
    #[serde(with = "serde_bytes_opt")]
    pub config: Option<Vec<u8>>,
}

/// Version 1 key files: no config copy.
#[derive(Deserialize)]
struct KeyFileV1 {
    kdf: KdfParams,
    salt: Vec<u8>,
    wrapped: Vec<u8>,
    created_ns: i64,
    hostname: String,
    username: String,
}

/// `Option<Vec<u8>>` as postcard bytes (a length and the bytes, not one varint per byte).
mod serde_bytes_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(serde_bytes::Bytes::new(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(|b| b.into_vec()))
    }
}

impl KeyFile {
    /// Wraps `master` under `password`.
    #[allow(clippy::too_many_arguments)]
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
        rng: &mut (impl RngCore + CryptoRng),
        created_ns: i64,
        hostname: String,
        username: String,
    ) -> Result<Self, FormatError> {
        let mut salt = vec![0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let wrapping = kdf.derive(password, &salt)?;
        let plain = postcard::to_stdvec(master).expect("postcard encodes a master key");
        let wrapped = crypto::seal_with_nonce(&wrapping, &nonce, &aad("masterkey", b""), &plain);
        Ok(KeyFile {
            kdf,
            salt,
            wrapped,
            created_ns,
            hostname,
            username,
            config: None,
        })
    }

    /// Unwraps the master key; a wrong password gives [`FormatError::WrongPassword`].
    pub fn unwrap_key(&self, password: &[u8]) -> Result<MasterKey, FormatError> {
        let wrapping = self.kdf.derive(password, &self.salt)?;
        let plain = crypto::open(&wrapping, "key file", &aad("masterkey", b""), &self.wrapped)
            .map_err(|e| match e {
                FormatError::Authentication { .. } => FormatError::WrongPassword,
                other => other,
            })?;
        decode_postcard("master key", &plain)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = KEY_MAGIC.to_vec();
        out.extend_from_slice(&KEY_VERSION.to_le_bytes());
        postcard::to_extend(self, out).expect("postcard encodes into a Vec")
    }

    pub fn decode(stored: &[u8]) -> Result<Self, FormatError> {
        if stored.len() < 10 || &stored[..8] != KEY_MAGIC {
            return Err(FormatError::malformed("key file", "missing STRATAKY magic"));
        }
        let (version, body) =
            crate::envelope::split_version("key file", &stored[8..], KEY_VERSION)?;
        let kf: KeyFile = if version == 1 {
            let v1: KeyFileV1 = decode_postcard("key file", body)?;
            KeyFile {
                kdf: v1.kdf,
                salt: v1.salt,
                wrapped: v1.wrapped,
                created_ns: v1.created_ns,
                hostname: v1.hostname,
                username: v1.username,
                config: None,
            }
        } else {
            decode_postcard("key file", body)?
        };
        if kf
            .config
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CONFIG_COPY)
        {
            return Err(FormatError::malformed(
                "key file",
                "config copy larger than any config",
            ));
        }
        kf.kdf.validate()?;
        if kf.salt.len() < 8 {
            return Err(FormatError::malformed(
                "key file",
                "salt shorter than 8 bytes",
            ));
        }
        Ok(kf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn wrap_unwrap_wrong_password() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let mk = MasterKey::random(&mut rng);
        let kdf = KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let kf = KeyFile::wrap(&mk, b"secret", kdf, &mut rng, 0, "h".into(), "u".into()).unwrap();
        let decoded = KeyFile::decode(&kf.encode()).unwrap();
        assert_eq!(decoded.unwrap_key(b"secret").unwrap(), mk);
        assert!(matches!(
            decoded.unwrap_key(b"nope"),
            Err(FormatError::WrongPassword)
        ));
        let mut huge = kf.clone();
        huge.kdf.m_kib = u32::MAX;
        assert!(KeyFile::decode(&huge.encode()).is_err());
    }
}
