//! Authenticated encryption (XChaCha20-Poly1305) and keyed content ids (BLAKE3).
//!
//! A sealed message is `nonce (24) || ciphertext || tag (16)`. The associated data binds what
//! a ciphertext is (object kind, blob header), so swapping ciphertexts between places fails
//! authentication.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::id::BlobId;
use crate::id::Digest;
use crate::FormatError;

/// Length of the random nonce that starts every sealed message. Never change.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that ends every sealed message. Never change.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The repository's secret key material, random at `init`, stored only wrapped in key files.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterKey {
    /// XChaCha20-Poly1305 key for every encrypted object and blob.
    pub enc_key: [u8; 32],
    /// BLAKE3 key for blob ids.
    pub id_key: [u8; 32],
    /// Seed of the content-defined chunker's gear table.
    pub chunker_seed: u64,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Fresh random key material.
    pub fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut enc_key = [0u8; 32];
        let mut id_key = [0u8; 32];
        rng.fill_bytes(&mut enc_key);
        rng.fill_bytes(&mut id_key);
        MasterKey {
            enc_key,
            id_key,
            chunker_seed: rng.next_u64(),
        }
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(Digest(
            *blake3::keyed_hash(&self.id_key, plaintext).as_bytes(),
        ))
    }

    /// Seals `plaintext` under the encryption key with a fresh random nonce.
    pub fn seal(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        aad: &[u8],
        plaintext: &[u8],
    ) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        seal_with_nonce(&self.enc_key, &nonce, aad, plaintext)
    }

    /// Like [`MasterKey::seal`], appending the sealed bytes to `out`.
    pub fn seal_into(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        seal_append(&self.enc_key, &nonce, aad, plaintext, out);
    }

    /// Opens a message sealed by [`MasterKey::seal`]; `object` names it in errors.
    pub fn open(
        &self,
        object: &'static str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        open(&self.enc_key, object, aad, sealed)
    }
}

/// Seals with an explicit nonce (for golden vectors and key wrapping).
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    seal_append(key, nonce, aad, plaintext, &mut out);
    out
}

/// Appends `nonce || ciphertext || tag` to `out` (encrypting in place there, no copy).
pub fn seal_append(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    out.reserve(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut out[start..])
        .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
    out.extend_from_slice(&tag);
}

/// Opens `nonce || ciphertext || tag`.
pub fn open(
    key: &[u8; 32],
    object: &'static str,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, FormatError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(FormatError::malformed(
            object,
            format!("{} bytes is shorter than nonce and tag", sealed.len()),
        ));
    }
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut buf, tag.into())
        .map_err(|_| FormatError::Authentication { object })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn seal_open_and_tamper() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = MasterKey::random(&mut rng);
        let sealed = key.seal(&mut rng, b"kind", b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(key.open("t", b"kind", &sealed).unwrap(), b"hello");
        assert!(matches!(
            key.open("t", b"other", &sealed),
            Err(FormatError::Authentication { .. })
        ));
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(key.open("t", b"kind", &bad).is_err());
        assert!(key.open("t", b"kind", &sealed[..10]).is_err());
    }
}
