//! TLS to the database, through rustls with the ring provider, as libpq's `sslmode` asks.
//!
//! `disable`, `prefer` and `require` mean what they mean to libpq: `prefer` tries TLS and
//! falls back to a plain connection when the server has none, `require` insists on TLS, and
//! neither checks the server's certificate (libpq checks it only under `verify-ca` and
//! `verify-full`, or when a root certificate file is present). Most managed databases present a
//! certificate from their own authority, which no system store holds, so checking it by default
//! would refuse them where `psql` connects. `verify-ca` and `verify-full` (which tokio-postgres
//! does not parse) are read here as `require` with the certificate and host name checked
//! against the system's roots.

use crate::storage::{StorageError, StorageResult};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for a URL whose `sslmode` was read by [`checked_mode`].
pub(super) fn connector(verify: bool) -> StorageResult<MakeRustlsConnect> {
    // Chosen explicitly: the build may carry another provider too (reqwest's), and rustls
    // picks none by itself when it has two.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| StorageError::backend_from("postgres: TLS setup", error))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(StorageError::backend(
                "postgres: sslmode verify-ca/verify-full, but no root certificate was found \
                 in the system's store",
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The URL as tokio-postgres can parse it, and whether the server's certificate is checked:
/// `sslmode=verify-ca` and `sslmode=verify-full` become `require`, checked.
pub(super) fn checked_mode(url: &str) -> (String, bool) {
    let mut verify = false;
    let mut url = url.to_owned();
    for mode in ["verify-full", "verify-ca"] {
        for key in ["sslmode=", "sslmode = "] {
            let from = format!("{key}{mode}");
            if url.contains(&from) {
                verify = true;
                url = url.replace(&from, &format!("{key}require"));
            }
        }
    }
    (url, verify)
}

/// Accepts the server's certificate unread, as libpq does under `prefer` and `require`; the
/// handshake's signatures are still checked, so the session is encrypted to whoever holds the
/// certificate's key.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::checked_mode;

    #[test]
    fn verify_modes_become_require_with_the_certificate_checked() {
        assert_eq!(
            checked_mode("postgres://h/db?sslmode=verify-full"),
            ("postgres://h/db?sslmode=require".to_owned(), true)
        );
        assert_eq!(
            checked_mode("host=h sslmode=verify-ca"),
            ("host=h sslmode=require".to_owned(), true)
        );
        assert_eq!(
            checked_mode("postgres://h/db?sslmode=require"),
            ("postgres://h/db?sslmode=require".to_owned(), false)
        );
    }
}
