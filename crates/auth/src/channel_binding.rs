//! `tls-server-end-point` channel binding data (RFC 5929 §4.1).
//!
//! The binding is a hash of the server's end-entity certificate (its DER bytes, exactly as the
//! server sent them in the TLS handshake). The hash function is the one the certificate's
//! signature algorithm uses, except that MD5 and SHA-1 are replaced by SHA-256. Certificates
//! whose signature algorithm names no single hash (Ed25519, Ed448, RSASSA-PSS) have no defined
//! binding; PostgreSQL's OpenSSL code rejects those too.
//!
//! Only three fields of the certificate are read, so a small DER walker is used instead of a
//! full X.509 parser: `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, ... }`,
//! `AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, ... }`.

use std::fmt::{self, Write as _};

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use crate::AuthError;

/// The channel-binding type name PostgreSQL supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// Channel binding data for SCRAM-SHA-256-PLUS.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    data: Vec<u8>,
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBinding")
            .field("type", &TLS_SERVER_END_POINT)
            .field("len", &self.data.len())
            .finish()
    }
}

/// The hash RFC 5929 picks for a signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// Known signature algorithm OIDs (DER content bytes) and the hash RFC 5929 uses for each.
const SIGNATURE_HASHES: &[(&[u8], EndPointHash)] = &[
    // md5WithRSAEncryption 1.2.840.113549.1.1.4 → SHA-256 (RFC 5929 upgrades MD5)
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
        EndPointHash::Sha256,
    ),
    // sha1WithRSAEncryption 1.2.840.113549.1.1.5 → SHA-256 (RFC 5929 upgrades SHA-1)
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
        EndPointHash::Sha256,
    ),
    // sha256WithRSAEncryption 1.2.840.113549.1.1.11
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        EndPointHash::Sha256,
    ),
    // sha384WithRSAEncryption 1.2.840.113549.1.1.12
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        EndPointHash::Sha384,
    ),
    // sha512WithRSAEncryption 1.2.840.113549.1.1.13
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        EndPointHash::Sha512,
    ),
    // sha224WithRSAEncryption 1.2.840.113549.1.1.14
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e],
        EndPointHash::Sha224,
    ),
    // sha1WithRSASignature (OIW) 1.3.14.3.2.29 → SHA-256
    (&[0x2b, 0x0e, 0x03, 0x02, 0x1d], EndPointHash::Sha256),
    // ecdsa-with-SHA1 1.2.840.10045.4.1 → SHA-256
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
        EndPointHash::Sha256,
    ),
    // ecdsa-with-SHA224/256/384/512 1.2.840.10045.4.3.{1,2,3,4}
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01],
        EndPointHash::Sha224,
    ),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
        EndPointHash::Sha256,
    ),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
        EndPointHash::Sha384,
    ),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
        EndPointHash::Sha512,
    ),
    // dsa-with-sha1 1.2.840.10040.4.3 → SHA-256
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03],
        EndPointHash::Sha256,
    ),
    // dsa-with-sha224/256 2.16.840.1.101.3.4.3.{1,2}
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x01],
        EndPointHash::Sha224,
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02],
        EndPointHash::Sha256,
    ),
];

impl ChannelBinding {
    /// `tls-server-end-point` data from the server's end-entity certificate in DER (the first
    /// certificate of the chain the server presented; with rustls,
    /// `connection.peer_certificates()[0]`).
    ///
    /// # Errors
    /// [`AuthError::MalformedCertificate`] when the bytes are not a DER certificate,
    /// [`AuthError::UnsupportedCertificateSignature`] when its signature algorithm has no
    /// RFC 5929 hash (Ed25519, RSASSA-PSS, ...).
    pub fn tls_server_end_point(server_certificate_der: &[u8]) -> Result<Self, AuthError> {
        let oid = signature_algorithm_oid(server_certificate_der)?;
        let hash = SIGNATURE_HASHES
            .iter()
            .find(|(known, _)| *known == oid)
            .map(|(_, hash)| *hash)
            .ok_or_else(|| AuthError::UnsupportedCertificateSignature {
                oid: dotted_oid(oid),
            })?;
        let data = match hash {
            EndPointHash::Sha224 => Sha224::digest(server_certificate_der).to_vec(),
            EndPointHash::Sha256 => Sha256::digest(server_certificate_der).to_vec(),
            EndPointHash::Sha384 => Sha384::digest(server_certificate_der).to_vec(),
            EndPointHash::Sha512 => Sha512::digest(server_certificate_der).to_vec(),
        };
        Ok(Self { data })
    }

    /// The binding data (the certificate hash) that goes into the `c=` attribute.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// The content bytes of `Certificate.signatureAlgorithm.algorithm`.
fn signature_algorithm_oid(der: &[u8]) -> Result<&[u8], AuthError> {
    let (certificate, _) = read_tlv(der, TAG_SEQUENCE, "certificate is not a SEQUENCE")?;
    let (_tbs, rest) = read_tlv(
        certificate,
        TAG_SEQUENCE,
        "tbsCertificate is not a SEQUENCE",
    )?;
    let (algorithm, _) = read_tlv(rest, TAG_SEQUENCE, "signatureAlgorithm is not a SEQUENCE")?;
    let (oid, _) = read_tlv(algorithm, TAG_OID, "signatureAlgorithm has no OID")?;
    if oid.is_empty() {
        return Err(AuthError::MalformedCertificate(
            "empty signature algorithm OID",
        ));
    }
    Ok(oid)
}

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;

/// Reads one DER tag-length-value with the expected tag; returns (value, rest).
fn read_tlv<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), AuthError> {
    let malformed = || AuthError::MalformedCertificate(what);
    let (&found, rest) = input.split_first().ok_or_else(malformed)?;
    if found != tag {
        return Err(malformed());
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        // DER: long form only for lengths >= 128, at most 4 length bytes here.
        if count == 0 || count > 4 || rest.len() < count {
            return Err(malformed());
        }
        let (len_bytes, after) = rest.split_at(count);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return Err(malformed());
    }
    Ok(rest.split_at(len))
}

/// Dotted form of an OID's content bytes, for error messages.
fn dotted_oid(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for byte in oid {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let mut out = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let _ = write!(out, "{arc}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// (fixture, expected binding) — the expected values were computed with
    /// `openssl dgst -sha256|-sha384|-sha512` over the DER files, which `openssl req -x509`
    /// generated with the named signature hash.
    const CASES: &[(&[u8], &str)] = &[
        (
            include_bytes!("../testdata/rsa_md5.der"),
            "4e97bbb3a0e6ea46acc47ed12e6ce1589e4bae246fa94b7267491a9c52d4fa19",
        ),
        (
            include_bytes!("../testdata/rsa_sha1.der"),
            "48ba4aa05885a5650e8e53857ba8d01555e00df226b52a78870fbd09e6055852",
        ),
        (
            include_bytes!("../testdata/rsa_sha256.der"),
            "be9f54b980008cc58206b5b6d77ed163ce3d17827efc91780ba27d7cab297f6f",
        ),
        (
            include_bytes!("../testdata/rsa_sha384.der"),
            "bf66bf192d0c20c1c07add653ac390000db1270ab759874ab98b8a7f40c590d5ba698afee232dc752c8b58df23b6439f",
        ),
        (
            include_bytes!("../testdata/rsa_sha512.der"),
            "07397d6722ac1266db9b442bd268b2644d7964eda6a406c129f2f99051f936677838747e0a419cc7930603fad3001070c6f67bde4e4aca355d689922fd6488a4",
        ),
        (
            include_bytes!("../testdata/ecdsa_sha384.der"),
            "dbc039719427b3cd64a537accf66d95296f30738bdf1af41c0363ad5ebc6f94bfd8699c7638205e45aa3d7eddd58f935",
        ),
    ];

    #[test]
    fn hash_follows_the_signature_algorithm() {
        for (der, expected) in CASES {
            let binding = ChannelBinding::tls_server_end_point(der).unwrap();
            assert_eq!(hex(binding.data()), *expected);
        }
    }

    #[test]
    fn ed25519_has_no_binding() {
        let err = ChannelBinding::tls_server_end_point(include_bytes!("../testdata/ed25519.der"))
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::UnsupportedCertificateSignature {
                oid: "1.3.101.112".into()
            }
        );
    }

    #[test]
    fn garbage_and_truncations_are_errors() {
        assert!(matches!(
            ChannelBinding::tls_server_end_point(b""),
            Err(AuthError::MalformedCertificate(_))
        ));
        assert!(matches!(
            ChannelBinding::tls_server_end_point(b"\x30\x84\xff\xff\xff\xff"),
            Err(AuthError::MalformedCertificate(_))
        ));
        let der = include_bytes!("../testdata/rsa_sha256.der");
        for cut in 0..der.len() {
            // The outer SEQUENCE's length covers the whole certificate: every truncation fails.
            assert!(matches!(
                ChannelBinding::tls_server_end_point(&der[..cut]),
                Err(AuthError::MalformedCertificate(_))
            ));
        }
    }

    #[test]
    fn dotted_oid_renders_multi_byte_arcs() {
        assert_eq!(
            dotted_oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]),
            "1.2.840.113549.1.1.11"
        );
    }

    #[test]
    fn debug_does_not_dump_bytes() {
        let b = ChannelBinding::tls_server_end_point(include_bytes!("../testdata/rsa_sha256.der"))
            .unwrap();
        assert_eq!(
            format!("{b:?}"),
            "ChannelBinding { type: \"tls-server-end-point\", len: 32 }"
        );
    }
}
