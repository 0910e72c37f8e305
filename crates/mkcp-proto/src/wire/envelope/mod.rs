//! Security envelopes around the segments (PROTOCOL.md §1.3-1.5, §8.2).
//!
//! * **Legacy** ("SimpleAuthenticator"): FNV-1a checksum + length + xor cascade.
//!   Obfuscation with an integrity check, not encryption. 6 bytes of overhead.
//! * **AES-128-GCM** ("seed" mode): key = SHA-256(seed)[0..16], a fresh random 12-byte
//!   nonce per datagram, 16-byte tag, no associated data. 28 bytes of overhead.
//! * **Raw** (Xray >= 26.1.31 without an envelope mask): the segments as they are.

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM};
use sha2::{Digest, Sha256};

use super::WireError;

mod legacy;

pub use legacy::{
    fnv1a32, legacy_open, legacy_open_many, legacy_seal, legacy_seal_many, LEGACY_LANES,
};

/// Which envelope is used; both peers must agree. `Debug` redacts the seed.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// V2Ray's legacy FNV-1a + xor authenticator (no `seed` in the config).
    #[default]
    Legacy,
    /// AES-128-GCM keyed by a seed (any string, including the empty one).
    AesGcm {
        /// The shared seed.
        seed: String,
    },
    /// No envelope at all (Xray >= 26.1.31 raw mode).
    Raw,
}

/// Prints `AesGcm { seed: <redacted> }`: the seed is the key, and configs are logged.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Legacy => f.write_str("Legacy"),
            Security::AesGcm { .. } => f.write_str("AesGcm { seed: <redacted> }"),
            Security::Raw => f.write_str("Raw"),
        }
    }
}

impl Security {
    /// Short name for logs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Security::Legacy => "legacy",
            Security::AesGcm { .. } => "aes-128-gcm",
            Security::Raw => "raw",
        }
    }

    /// Bytes before the plaintext.
    pub fn prefix_len(&self) -> usize {
        match self {
            Security::Legacy => LEGACY_OVERHEAD,
            Security::AesGcm { .. } => GCM_NONCE_LEN,
            Security::Raw => 0,
        }
    }

    /// Bytes after the plaintext.
    pub fn suffix_len(&self) -> usize {
        match self {
            Security::AesGcm { .. } => GCM_TAG_LEN,
            _ => 0,
        }
    }

    /// The overhead V2Ray subtracts when it computes the MSS (6 legacy, 16 GCM: it
    /// forgets the nonce, PROTOCOL.md §1.5).
    pub fn v2ray_overhead(&self) -> usize {
        match self {
            Security::Legacy => LEGACY_OVERHEAD,
            Security::AesGcm { .. } => GCM_TAG_LEN,
            Security::Raw => 0,
        }
    }
}

/// Overhead of the legacy envelope: 4-byte checksum + 2-byte length.
pub const LEGACY_OVERHEAD: usize = 6;
/// GCM nonce length.
pub const GCM_NONCE_LEN: usize = 12;
/// GCM tag length.
pub const GCM_TAG_LEN: usize = 16;

/// V2Ray's length floor of a legacy body (after the header): 6 bytes or less are dropped.
pub(crate) fn legacy_floor(body_len: usize) -> Result<(), WireError> {
    if body_len <= LEGACY_OVERHEAD {
        return Err(WireError::TooShort {
            len: body_len,
            min: LEGACY_OVERHEAD,
        });
    }
    Ok(())
}

/// Derives the AES-128 key from a seed: SHA-256(seed)[0..16].
pub fn seed_key(seed: &str) -> [u8; 16] {
    let digest = Sha256::digest(seed.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// A ready-to-use envelope (with the AES key schedule expanded once).
#[derive(Clone)]
pub struct Envelope {
    security: Security,
    /// The AES-128-GCM key (ring's: 3-4 times faster than the RustCrypto crates here).
    cipher: Option<Box<LessSafeKey>>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("security", &self.security.name())
            .finish()
    }
}

impl Envelope {
    /// Prepares the envelope for `security`.
    pub fn new(security: &Security) -> Envelope {
        let cipher = match security {
            Security::AesGcm { seed } => UnboundKey::new(&AES_128_GCM, &seed_key(seed))
                .ok()
                .map(|key| Box::new(LessSafeKey::new(key))),
            _ => None,
        };
        Envelope {
            security: security.clone(),
            cipher,
        }
    }

    /// The security mode.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// Bytes before the plaintext.
    pub fn prefix_len(&self) -> usize {
        self.security.prefix_len()
    }

    /// Bytes after the plaintext.
    pub fn suffix_len(&self) -> usize {
        self.security.suffix_len()
    }

    /// Seals in place. `buf` holds `prefix_len()` free bytes, then the plaintext of
    /// `plaintext_len` bytes, then room for `suffix_len()` bytes. Returns the sealed length.
    /// In AES-GCM mode the 12-byte nonce is drawn from `rng` (use a CSPRNG).
    pub fn seal(
        &self,
        buf: &mut [u8],
        plaintext_len: usize,
        rng: &mut dyn RngCore,
    ) -> Result<usize, WireError> {
        self.seal_inner(buf, plaintext_len, |nonce| rng.fill_bytes(nonce))
    }

    /// Like [`Envelope::seal`], but with a caller-chosen AES-GCM nonce (ignored by the
    /// legacy and raw envelopes).
    ///
    /// **For tests and byte-exact vectors only**: sealing two datagrams with the same nonce
    /// under one seed breaks AES-GCM's confidentiality and integrity. Real traffic must use
    /// [`Envelope::seal`] with a CSPRNG.
    pub fn seal_with_nonce(
        &self,
        buf: &mut [u8],
        plaintext_len: usize,
        nonce: &[u8; GCM_NONCE_LEN],
    ) -> Result<usize, WireError> {
        self.seal_inner(buf, plaintext_len, |out| out.copy_from_slice(nonce))
    }

    fn seal_inner(
        &self,
        buf: &mut [u8],
        plaintext_len: usize,
        fill_nonce: impl FnOnce(&mut [u8]),
    ) -> Result<usize, WireError> {
        let total = self.prefix_len() + plaintext_len + self.suffix_len();
        if buf.len() < total {
            return Err(WireError::BufferTooSmall {
                needed: total,
                available: buf.len(),
            });
        }
        match (&self.security, &self.cipher) {
            (Security::AesGcm { .. }, Some(cipher)) => {
                let (nonce, rest) = buf.split_at_mut(GCM_NONCE_LEN);
                fill_nonce(nonce);
                let nonce = Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| WireError::PayloadTooLarge { len: plaintext_len })?;
                let (body, tag_out) = rest.split_at_mut(plaintext_len);
                let tag = cipher
                    .seal_in_place_separate_tag(nonce, Aad::empty(), body)
                    .map_err(|_| WireError::PayloadTooLarge { len: plaintext_len })?;
                tag_out[..GCM_TAG_LEN].copy_from_slice(tag.as_ref());
            }
            (Security::Raw, _) => {}
            (Security::Legacy, _) => legacy_seal(&mut buf[..total], plaintext_len)?,
            // Unreachable: a 16-byte key is always a valid AES-128 key.
            (Security::AesGcm { .. }, None) => {
                return Err(WireError::PayloadTooLarge { len: plaintext_len })
            }
        }
        Ok(total)
    }

    /// Opens a datagram body (after the header) in place and returns the plaintext.
    /// Applies V2Ray's length floors: legacy drops bodies of 6 bytes or less, GCM
    /// bodies of 28 bytes or less; raw drops empty bodies.
    pub fn open<'a>(&self, body: &'a mut [u8]) -> Result<&'a [u8], WireError> {
        match (&self.security, &self.cipher) {
            (Security::AesGcm { .. }, Some(cipher)) => {
                let min = GCM_NONCE_LEN + GCM_TAG_LEN;
                if body.len() <= min {
                    return Err(WireError::TooShort {
                        len: body.len(),
                        min,
                    });
                }
                let (nonce, rest) = body.split_at_mut(GCM_NONCE_LEN);
                let nonce = Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| WireError::AuthenticationFailed)?;
                let ct_len = rest.len() - GCM_TAG_LEN;
                let (ct, tag) = rest.split_at_mut(ct_len);
                let tag = Tag::try_from(&tag[..]).map_err(|_| WireError::AuthenticationFailed)?;
                cipher
                    .open_in_place_separate_tag(nonce, Aad::empty(), tag, ct, 0..)
                    .map_err(|_| WireError::AuthenticationFailed)?;
                Ok(&body[GCM_NONCE_LEN..GCM_NONCE_LEN + ct_len])
            }
            (Security::Raw, _) => {
                if body.is_empty() {
                    return Err(WireError::TooShort { len: 0, min: 0 });
                }
                Ok(body)
            }
            // Unreachable: a 16-byte key is always a valid AES-128 key.
            (Security::AesGcm { .. }, None) => Err(WireError::AuthenticationFailed),
            (Security::Legacy, _) => {
                legacy_floor(body.len())?;
                legacy_open(body)
            }
        }
    }
}
