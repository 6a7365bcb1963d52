//! MinIO's encrypted admin bodies: `madmin.EncryptData` / `DecryptData` (madmin-go v3,
//! `encrypt.go`), which MinIO uses for every admin request or answer that carries a secret.
//!
//! ```text
//! salt (32 bytes) | AEAD id (1 byte) | nonce (8 bytes) | sio stream
//! ```
//!
//! The key is derived from the caller's secret key and the salt: Argon2id (time 1, memory 64 MiB,
//! 4 lanes, 32 bytes; id 0x00 with AES-256-GCM, 0x01 with ChaCha20-Poly1305), or PBKDF2-HMAC-SHA256
//! (8192 rounds; id 0x02 with AES-256-GCM) in FIPS builds. The stream is secure-io's `sio` (sio-go
//! v0.3) with its default 16 KiB fragments: each fragment is sealed with the nonce followed by a
//! little-endian 32-bit sequence number starting at 1, and with associated data of one flag byte
//! (0x80 on the final fragment, else 0x00) followed by the tag that sealing nothing with sequence
//! number 0 and the caller's associated data (empty here) gives.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;

use crate::{Error, ErrorKind, Result};

const ARGON2ID_AES_GCM: u8 = 0x00;
const ARGON2ID_CHACHA20_POLY1305: u8 = 0x01;
const PBKDF2_AES_GCM: u8 = 0x02;

const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 8;
const HEADER_LEN: usize = SALT_LEN + 1 + NONCE_LEN;
/// sio's `BufSize`: the plaintext of a fragment.
const BUF_SIZE: usize = 1 << 14;
/// The tag every AEAD used here adds.
const TAG_LEN: usize = 16;

fn fail(what: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("MinIO admin encryption: {what}"),
    )
}

/// Encrypts `data` for a MinIO admin request, with a key derived from `password` (the admin
/// secret key): Argon2id and AES-256-GCM, as madmin does on a machine with AES instructions.
pub(crate) fn encrypt(password: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut random = [0u8; SALT_LEN + NONCE_LEN];
    getrandom::fill(&mut random).map_err(|_| fail("no randomness"))?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&random[..SALT_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&random[SALT_LEN..]);
    encrypt_with(ARGON2ID_AES_GCM, password, &salt, &nonce, data)
}

/// `EncryptData` with a chosen algorithm, salt and nonce.
fn encrypt_with(
    id: u8,
    password: &str,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
    data: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len() + 2 * TAG_LEN);
    out.extend_from_slice(salt);
    out.push(id);
    out.extend_from_slice(nonce);
    let sealed = match id {
        ARGON2ID_AES_GCM => seal(
            &aes(&argon2id(password, salt)?)?,
            nonce,
            &[],
            data,
            BUF_SIZE,
        )?,
        ARGON2ID_CHACHA20_POLY1305 => seal(
            &chacha(&argon2id(password, salt)?)?,
            nonce,
            &[],
            data,
            BUF_SIZE,
        )?,
        PBKDF2_AES_GCM => seal(
            &aes(&pbkdf2_key(password, salt))?,
            nonce,
            &[],
            data,
            BUF_SIZE,
        )?,
        other => return Err(fail(&format!("unknown algorithm id {other:#04x}"))),
    };
    out.extend(sealed);
    Ok(out)
}

fn aes(key: &[u8; 32]) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(key).map_err(|_| fail("bad key length"))
}

fn chacha(key: &[u8; 32]) -> Result<ChaCha20Poly1305> {
    ChaCha20Poly1305::new_from_slice(key).map_err(|_| fail("bad key length"))
}

/// madmin's FIPS derivation: PBKDF2-HMAC-SHA256, 8192 rounds, 32 bytes.
fn pbkdf2_key(password: &str, salt: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, 8192, &mut key);
    key
}

/// Decrypts what MinIO encrypted with `password` (the admin secret key), whichever of the three
/// formats it chose.
pub(crate) fn decrypt(password: &str, data: &[u8]) -> Result<Vec<u8>> {
    if data.len() < HEADER_LEN {
        return Err(fail("the answer is shorter than its header"));
    }
    let (salt, rest) = data.split_at(SALT_LEN);
    let id = rest[0];
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&rest[1..=NONCE_LEN]);
    let stream = &data[HEADER_LEN..];
    match id {
        ARGON2ID_AES_GCM => open(
            &aes(&argon2id(password, salt)?)?,
            &nonce,
            &[],
            stream,
            BUF_SIZE,
        ),
        ARGON2ID_CHACHA20_POLY1305 => open(
            &chacha(&argon2id(password, salt)?)?,
            &nonce,
            &[],
            stream,
            BUF_SIZE,
        ),
        PBKDF2_AES_GCM => open(
            &aes(&pbkdf2_key(password, salt))?,
            &nonce,
            &[],
            stream,
            BUF_SIZE,
        ),
        other => Err(fail(&format!("unknown algorithm id {other:#04x}"))),
    }
}

/// madmin's Argon2id: time 1, memory 64 MiB, 4 lanes, version 0x13, 32 bytes.
fn argon2id(password: &str, salt: &[u8]) -> Result<[u8; 32]> {
    let params =
        argon2::Params::new(64 * 1024, 1, 4, Some(32)).map_err(|_| fail("Argon2 parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(password.as_bytes(), salt, &mut key)
        .map_err(|_| fail("Argon2 key derivation"))?;
    Ok(key)
}

fn fragment_nonce(nonce: &[u8; NONCE_LEN], seq: u32) -> GenericArray<u8, U12> {
    let mut n = [0u8; 12];
    n[..NONCE_LEN].copy_from_slice(nonce);
    n[NONCE_LEN..].copy_from_slice(&seq.to_le_bytes());
    GenericArray::from(n)
}

/// The associated data of every fragment but its flag byte: the tag of sealing nothing with
/// sequence number 0.
fn fragment_ad<A>(aead: &A, nonce: &[u8; NONCE_LEN], ad: &[u8]) -> Result<Vec<u8>>
where
    A: Aead + AeadCore<NonceSize = U12>,
{
    let tag = aead
        .encrypt(&fragment_nonce(nonce, 0), Payload { msg: &[], aad: ad })
        .map_err(|_| fail("sealing"))?;
    let mut out = Vec::with_capacity(1 + tag.len());
    out.push(0x00);
    out.extend(tag);
    Ok(out)
}

/// sio's `EncryptWriter`: full fragments of `buf_size`, then a final one of what is left (at
/// least one byte unless `data` is empty).
fn seal<A>(
    aead: &A,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    data: &[u8],
    buf_size: usize,
) -> Result<Vec<u8>>
where
    A: Aead + AeadCore<NonceSize = U12>,
{
    let mut frag_ad = fragment_ad(aead, nonce, ad)?;
    let mut out = Vec::with_capacity(data.len() + (data.len() / buf_size + 1) * TAG_LEN);
    let mut seq: u32 = 1;
    let mut rest = data;
    while rest.len() > buf_size {
        let (fragment, tail) = rest.split_at(buf_size);
        let sealed = aead
            .encrypt(
                &fragment_nonce(nonce, seq),
                Payload {
                    msg: fragment,
                    aad: &frag_ad,
                },
            )
            .map_err(|_| fail("sealing"))?;
        out.extend(sealed);
        seq = seq.checked_add(1).ok_or_else(|| fail("data too large"))?;
        rest = tail;
    }
    frag_ad[0] = 0x80;
    let sealed = aead
        .encrypt(
            &fragment_nonce(nonce, seq),
            Payload {
                msg: rest,
                aad: &frag_ad,
            },
        )
        .map_err(|_| fail("sealing"))?;
    out.extend(sealed);
    Ok(out)
}

/// sio's `DecryptReader`: every fragment but the last is `buf_size` plus a tag.
fn open<A>(
    aead: &A,
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    data: &[u8],
    buf_size: usize,
) -> Result<Vec<u8>>
where
    A: Aead + AeadCore<NonceSize = U12>,
{
    let not_authentic = || fail("the data is not authentic (wrong secret key, or damaged)");
    let mut frag_ad = fragment_ad(aead, nonce, ad)?;
    let full = buf_size + TAG_LEN;
    let mut out = Vec::with_capacity(data.len());
    let mut seq: u32 = 1;
    let mut rest = data;
    while rest.len() > full {
        let (fragment, tail) = rest.split_at(full);
        let plain = aead
            .decrypt(
                &fragment_nonce(nonce, seq),
                Payload {
                    msg: fragment,
                    aad: &frag_ad,
                },
            )
            .map_err(|_| not_authentic())?;
        out.extend(plain);
        seq = seq.checked_add(1).ok_or_else(|| fail("data too large"))?;
        rest = tail;
    }
    if rest.len() < TAG_LEN {
        return Err(not_authentic());
    }
    frag_ad[0] = 0x80;
    let plain = aead
        .decrypt(
            &fragment_nonce(nonce, seq),
            Payload {
                msg: rest,
                aad: &frag_ad,
            },
        )
        .map_err(|_| not_authentic())?;
    out.extend(plain);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::Aes128Gcm;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    }

    /// Vectors from sio-go v0.3.1's `test_vectors.json` (AES-128-GCM: the stream format does not
    /// depend on the AEAD, and these cover one and several fragments, with and without
    /// associated data).
    #[test]
    fn sio_test_vectors() -> Result<()> {
        let vectors = [
            // (buf size, key, nonce, associated data, plaintext, ciphertext)
            (
                16,
                "00000000000000000000000000000000",
                "0000000000000000",
                "",
                "",
                "e0247a864e783cecb1f7996c13cd3f64",
            ),
            (
                16,
                "00000000000000000000000000000000",
                "0000000000000000",
                "0000000000000000",
                "0000000000000000",
                "4661d681f92680d7a307c7a036700edde4697a1f3ba7e01b",
            ),
            (
                17,
                "31dd758d120fd5d30063921a21f723be",
                "d3794fe387018e32",
                "1d838b6e861ea7576de110e08818de82a27337a99db7b95aa95c3347971ad4cfa0ef0960d6645f5a64f88c7d",
                "d0ae0d85e93ed6be853ded2031643116a03215b4fda224d2986d7233039aa47e91b686f4",
                "a6fe911b94e0b25a25bf6da71f28ad6a6b6920be01589e9194226f77c164606545d5cbdb76c99415b468c54517f5a8bc8dc8ac13b1b4285fe36f37f7884d5e4bfb32ecef56b4026bf02bfb1d4fce222e01ef9db9",
            ),
        ];
        for (buf, key, nonce, ad, plain, cipher) in vectors {
            let aead = Aes128Gcm::new_from_slice(&unhex(key)).map_err(|_| fail("key"))?;
            let mut n = [0u8; NONCE_LEN];
            n.copy_from_slice(&unhex(nonce));
            let sealed = seal(&aead, &n, &unhex(ad), &unhex(plain), buf)?;
            assert_eq!(sealed, unhex(cipher));
            assert_eq!(open(&aead, &n, &unhex(ad), &sealed, buf)?, unhex(plain));
        }
        Ok(())
    }

    #[test]
    fn round_trip_across_fragments() -> Result<()> {
        let aead = ChaCha20Poly1305::new_from_slice(&[9u8; 32]).map_err(|_| fail("key"))?;
        let nonce = [3u8; NONCE_LEN];
        for len in [0, 1, BUF_SIZE - 1, BUF_SIZE, BUF_SIZE + 1, 3 * BUF_SIZE + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&aead, &nonce, &[], &data, BUF_SIZE)?;
            assert_eq!(sealed.len(), len + len.div_ceil(BUF_SIZE).max(1) * TAG_LEN);
            assert_eq!(open(&aead, &nonce, &[], &sealed, BUF_SIZE)?, data);
        }
        Ok(())
    }

    #[test]
    fn encrypt_then_decrypt() -> Result<()> {
        let data = br#"{"secretKey":"abc","status":"enabled"}"#;
        let sealed = encrypt("secret", data)?;
        assert_eq!(sealed.len(), HEADER_LEN + data.len() + TAG_LEN);
        assert_eq!(sealed[SALT_LEN], ARGON2ID_AES_GCM);
        assert_eq!(decrypt("secret", &sealed)?, data);
        assert!(decrypt("other", &sealed).is_err());
        Ok(())
    }

    /// madmin-go v3.0.109 itself (argon2.IDKey, pbkdf2.Key and sio-go streams, as in
    /// `EncryptData`, with salt 32 × 0x5a and nonce 01..08; every output checked with madmin's
    /// `DecryptData`) gave these SHA-256s for a 19 000-byte body (two fragments), one per id.
    #[test]
    fn madmin_go_outputs_for_every_algorithm() -> Result<()> {
        use sha2::Digest;
        let password = "minio-secret-key-example";
        let salt = [0x5au8; SALT_LEN];
        let nonce = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let data = br#"{"secretKey":"abc","status":"enabled"}"#.repeat(500);
        let expected = [
            (
                ARGON2ID_AES_GCM,
                "ad45cb96b6d7132782880fe92075622bb715ab95c8155a94d585e723bf1b4113",
            ),
            (
                ARGON2ID_CHACHA20_POLY1305,
                "472fd1b14d20954c438f6a10a84e0ae07e2b6d4e794afb616818fb21f909f802",
            ),
            (
                PBKDF2_AES_GCM,
                "88f28b112f0b4da0e5a21d097eebbc822bc5386495fdd34e2b2a3d7d7b926d17",
            ),
        ];
        for (id, sha) in expected {
            let sealed = encrypt_with(id, password, &salt, &nonce, &data)?;
            let digest: String = sha2::Sha256::digest(&sealed)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(digest, sha, "algorithm id {id}");
            assert_eq!(decrypt(password, &sealed)?, data);
        }
        Ok(())
    }

    #[test]
    fn damage_is_detected() -> Result<()> {
        let mut sealed = encrypt("secret", b"{\"secretKey\":\"x\"}")?;
        if let Some(last) = sealed.last_mut() {
            *last ^= 1;
        }
        assert!(decrypt("secret", &sealed).is_err());
        assert!(decrypt("secret", &[0u8; 10]).is_err());
        Ok(())
    }
}
