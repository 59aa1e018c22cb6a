//! TLS for backstop's own database clients: rustls (with ring, as the S3 client has it), the
//! server's certificate checked not at all, against roots without its name, or fully
//! ([`Check`]); for MariaDB's ([`crate::mysql_wire`]) a `rustls::StreamOwned`, for
//! PostgreSQL's ([`MakeRustls`]) tokio-rustls under the `postgres` crate's `MakeTlsConnect`.
//!
//! PostgreSQL URLs name TLS with libpq's parameters and meanings ([`split`]): `sslmode` (`disable`, `allow` and `prefer` (the default):
//! TLS where the server offers it, without checking its certificate; `require`: TLS, the
//! certificate checked against `sslrootcert` where one is given, else not; `verify-ca`: the
//! certificate signed by `sslrootcert`; `verify-full`: that, and made out to the host) and
//! `sslrootcert` (a PEM file, `~/.postgresql/root.crt` when not given, or `system`: the
//! Mozilla roots of `webpki-roots`). Client certificates (`sslcert`, `sslkey`) are refused:
//! `method = "dump"` uses them through the PostgreSQL tools.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Error;

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Not at all (the connection is encrypted, not authenticated).
    Nothing,
    /// Signed by a root of `sslrootcert`, whatever host it names.
    Ca,
    /// Signed so, and made out to the host connected to.
    Full,
}

/// What a URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) mode: SslMode,
    check: Check,
    root: Option<String>,
}

/// Splits libpq's TLS parameters off a `postgres://` URL: the URL the `postgres` crate reads,
/// and what TLS it asks for.
pub(crate) fn split(url: &str) -> Result<(String, Settings), Error> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root) = ("prefer".to_owned(), None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = value.to_owned(),
            "sslrootcert" => root = Some(percent_decoded(value)),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(Error::Invalid(format!(
                    "{key}: client certificates are not built into backstop's own client: use \
                     method = \"dump\" with PostgreSQL's client tools"
                )));
            }
            "sslcrl" | "sslcrldir" | "sslsni" | "ssl_min_protocol_version" => {}
            _ => kept.push(pair),
        }
    }
    let (ssl, check) = match mode.as_str() {
        "disable" => (SslMode::Disable, Check::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Check::Nothing),
        // As libpq: with a root certificate given, `require` checks the chain.
        "require" if root.is_some() => (SslMode::Require, Check::Ca),
        "require" => (SslMode::Require, Check::Nothing),
        "verify-ca" => (SslMode::Require, Check::Ca),
        "verify-full" => (SslMode::Require, Check::Full),
        other => {
            return Err(Error::Invalid(format!(
                "sslmode={other}: expected disable, allow, prefer, require, verify-ca or \
                 verify-full"
            )));
        }
    };
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok((
        url,
        Settings {
            mode: ssl,
            check,
            root,
        },
    ))
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for `settings`: rustls with the roots and the check they ask for.
pub(crate) fn connector(settings: &Settings) -> Result<MakeRustls, Error> {
    let root = match settings.root.as_deref() {
        Some(r) => Root::File(r),
        None => Root::Home,
    };
    client_config(settings.check, root).map(MakeRustls)
}

/// What a certificate's chain is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Root<'a> {
    /// A PEM file of root certificates, or `system`: the Mozilla roots of `webpki-roots`.
    File(&'a str),
    /// `~/.postgresql/root.crt` (libpq's default).
    Home,
    /// The Mozilla roots.
    System,
}

/// A rustls configuration that checks the server's certificate as `check` says, against
/// `root`.
pub(crate) fn client_config(
    check: Check,
    root: Root<'_>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unchecked(provider.clone())),
        Check::Ca | Check::Full => {
            let (roots, pinned) = roots(root)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Invalid(format!("the TLS roots: {e}")))?;
            Arc::new(Chain {
                webpki,
                names: check == Check::Full,
                pinned,
            })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The root certificates of `root`, and (for a file) the certificates themselves.
fn roots(root: Root<'_>) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), Error> {
    let mut store = RootCertStore::empty();
    if matches!(root, Root::System | Root::File("system")) {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok((store, Vec::new()));
    }
    let path = match root {
        Root::File(r) => PathBuf::from(r),
        Root::System | Root::Home => {
            let home = std::env::var_os("HOME")
                .or_else(|| std::env::var_os("APPDATA"))
                .unwrap_or_default();
            PathBuf::from(home).join(".postgresql").join("root.crt")
        }
    };
    let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
        Error::Invalid(format!(
            "the root certificate file {} cannot be read ({e}): name the file of the \
             certificates that signed the server's in the URL (sslrootcert=FILE for PostgreSQL, \
             ssl-ca=FILE for MariaDB), or encrypt without checking the server's certificate \
             (sslmode=require; ssl)",
            path.display()
        ))
    })?;
    let mut pinned = Vec::new();
    for cert in certs {
        let cert = cert.map_err(|e| {
            Error::Invalid(format!("{}: not a PEM certificate: {e}", path.display()))
        })?;
        store
            .add(cert.clone())
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        pinned.push(cert);
    }
    if store.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok((store, pinned))
}

/// Takes any certificate (`sslmode=prefer` and `require` without roots, as libpq); the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks the chain as WebPKI does, and the name when `names` (`verify-ca` and
/// `verify-full`). A server certificate that is itself one of the roots given (a self-signed
/// certificate named as its own root, as OpenSSL-based clients accept it) is taken as it is.
#[derive(Debug)]
struct Chain {
    webpki: Arc<WebPkiServerVerifier>,
    names: bool,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Chain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The `postgres` crate's TLS connector, made of a rustls configuration.
#[derive(Clone)]
pub(crate) struct MakeRustls(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Rustls<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned()).map_err(io::Error::other)?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One connection's TLS handshake.
pub(crate) struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<Rustls<S>>> + Send>>;

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Rustls<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(Rustls)
        })
    }
}

/// A connection in TLS.
pub(crate) struct Rustls<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Rustls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Rustls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Rustls<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_read_and_taken_off_the_url() {
        let (url, s) = split("postgres://a@h:5432/db").unwrap();
        assert_eq!(url, "postgres://a@h:5432/db");
        assert_eq!((s.mode, s.check), (SslMode::Prefer, Check::Nothing));
        let (url, s) = split(
            "postgres://a@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(url, "postgres://a@h/db?connect_timeout=5");
        assert_eq!((s.mode, s.check), (SslMode::Require, Check::Full));
        assert_eq!(s.root.as_deref(), Some("/etc/ca.pem"));
        // `require` checks the chain when a root is given, as libpq does.
        let (_, s) = split("postgres://a@h/db?sslmode=require&sslrootcert=ca.pem").unwrap();
        assert_eq!(s.check, Check::Ca);
        let (_, s) = split("postgres://a@h/db?sslmode=require").unwrap();
        assert_eq!(s.check, Check::Nothing);
        let (_, s) = split("postgres://a@h/db?sslmode=disable").unwrap();
        assert_eq!(s.mode, SslMode::Disable);
        assert!(split("postgres://a@h/db?sslmode=sometimes").is_err());
        let e = split("postgres://a@h/db?sslcert=c.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("method = \"dump\""), "{e}");
        let e = connector(
            &split("postgres://a@h/db?sslmode=verify-ca&sslrootcert=/nope.pem")
                .unwrap()
                .1,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("/nope.pem") && e.contains("sslmode=require"),
            "{e}"
        );
    }
}
