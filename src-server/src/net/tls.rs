//! The server's one TLS setup, shared by every module: the server key and certificate, per-domain
//! certificates, the rustls acceptor for secure sockets and the STARTTLS upgrade.
//!
//! Guide: guide.txt:4041-4076 (SSL/TLS: secure sockets and STARTTLS), 4077-4379 (per-domain keys
//! and certificates; "Server" certificate), 4663-4688 (a secure socket negotiates TLS before the
//! module protocol starts). RFC 8446 / RFC 5246 through rustls (ring provider), RFC 6066 SNI.
//!
//! On first start a self-signed certificate for the main domain name, `localhost` and `127.0.0.1`
//! is generated with rcgen and stored as PEM in `Settings/ServerKey.pem` (mode 0600) and
//! `Settings/ServerCertificate.pem`; later starts load them. Each file is written as temp file,
//! fsync, rename, fsync of the directory (`store::fsutil`).
//!
//! Certificate choice: a domain certificate when the client's SNI names a domain that has one,
//! the server certificate otherwise. The guide picks the domain by the local IP address (2001, no
//! SNI); SNI is what today's clients send.
//!
//! Security: PEM text comes from the base directory and from administrators; it is parsed with
//! rustls-pemfile and a key is only accepted when it matches its certificate. Handshakes run under
//! [`HANDSHAKE_TIMEOUT`] so a silent peer cannot hold a session slot forever.
//!
//! todo: choosing the domain certificate by local IP (guide.txt:4669-4682); the TLS Sessions
//! "Time To Live" setting (rustls' default in-memory session cache is used).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::store::fsutil;

/// How long a TLS handshake (secure socket or STARTTLS) may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Server key file name in `Settings/`.
pub const KEY_FILE: &str = "ServerKey.pem";
/// Server certificate file name in `Settings/`.
pub const CERT_FILE: &str = "ServerCertificate.pem";

/// Largest PEM file read from disk.
const MAX_PEM: u64 = 1 << 20;

/// The shared TLS configuration; cheap to clone.
#[derive(Clone)]
pub struct TlsSetup {
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
    settings_dir: PathBuf,
}

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSetup")
            .field("settings_dir", &self.settings_dir)
            .finish()
    }
}

/// A certificate chain with its private key, kept as PEM and as the rustls form.
struct Pair {
    cert_pem: String,
    key: Arc<CertifiedKey>,
}

/// Picks the certificate for a handshake (SNI → domain, else server).
/// Finds a domain's certificate and key PEM text by the name a client asked for (SNI).
pub type DomainSource = Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

struct Resolver {
    server: RwLock<Pair>,
    /// Domain certificates kept in the domains' settings, looked up per handshake.
    source: RwLock<Option<DomainSource>>,
    /// Parsed keys from `source`, by domain, with the PEM text they were made from.
    parsed: RwLock<HashMap<String, (String, Arc<CertifiedKey>)>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            if let Some(k) = self.domain_key_for(name) {
                return Some(k);
            }
        }
        let server = self.server.read().unwrap_or_else(|e| e.into_inner());
        Some(server.key.clone())
    }
}

impl Resolver {
    /// The certificate the domain's settings hold for `name`, parsed once per PEM text; `None`
    /// (the server certificate) when there is none or it does not parse.
    fn domain_key_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let source = self
            .source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let (cert, key) = source(&domain_key(name))?;
        let pem = format!("{cert}\n{key}");
        let mut parsed = self.parsed.write().unwrap_or_else(|e| e.into_inner());
        if let Some((text, k)) = parsed.get(&domain_key(name)) {
            if *text == pem {
                return Some(k.clone());
            }
        }
        let k = certified_key(&cert, &key).ok()?;
        parsed.insert(domain_key(name), (pem, k.clone()));
        Some(k)
    }
}

/// Checks that a PEM certificate chain and private key parse and belong together.
pub fn check_certificate(cert_pem: &str, key_pem: &str) -> Result<(), String> {
    certified_key(cert_pem, key_pem).map(|_| ())
}

fn domain_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parse a PEM certificate chain and PEM private key into a checked rustls key.
fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, String> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the certificate PEM".into());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| format!("bad private key PEM: {e}"))?
        .ok_or("no private key in the key PEM")?;
    let ck = CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| format!("unusable key or certificate: {e}"))?;
    Ok(Arc::new(ck))
}

impl TlsSetup {
    /// Load the server key and certificate from `settings_dir`, generating a self-signed pair for
    /// `main_domain`, `localhost` and `127.0.0.1` when either file is missing.
    pub fn load_or_create(settings_dir: &Path, main_domain: &str) -> io::Result<TlsSetup> {
        let key_path = settings_dir.join(KEY_FILE);
        let cert_path = settings_dir.join(CERT_FILE);
        let (cert_pem, key_pem) = if key_path.exists() && cert_path.exists() {
            (read_pem(&cert_path)?, read_pem(&key_path)?)
        } else {
            let (cert_pem, key_pem) = self_signed(main_domain)?;
            fs::create_dir_all(settings_dir)?;
            fsutil::write_atomic_mode(&key_path, key_pem.as_bytes(), 0o600)?;
            fsutil::write_atomic_mode(&cert_path, cert_pem.as_bytes(), 0o644)?;
            (cert_pem, key_pem)
        };
        let key = certified_key(&cert_pem, &key_pem)
            .map_err(|e| invalid(format!("{}: {e}", settings_dir.display())))?;
        let resolver = Arc::new(Resolver {
            server: RwLock::new(Pair { cert_pem, key }),
            source: RwLock::new(None),
            parsed: RwLock::new(HashMap::new()),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok(TlsSetup {
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            settings_dir: settings_dir.to_path_buf(),
        })
    }

    /// The acceptor for secure sockets; certificates changed later are picked up by it.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Run the server side of a TLS handshake on `stream` (STARTTLS, STLS, or a secure socket),
    /// failing after [`HANDSHAKE_TIMEOUT`].
    pub async fn upgrade<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// The server certificate chain as PEM (for "Secure Certificate" downloads and tests).
    pub fn server_certificate_pem(&self) -> String {
        let server = self
            .resolver
            .server
            .read()
            .unwrap_or_else(|e| e.into_inner());
        server.cert_pem.clone()
    }

    /// Replace the server key and certificate with admin-provided PEM; stores them in `Settings/`.
    /// On error nothing changes.
    pub fn set_server_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let key = certified_key(cert_pem, key_pem)?;
        fsutil::write_atomic_mode(&self.settings_dir.join(KEY_FILE), key_pem.as_bytes(), 0o600)
            .map_err(|e| format!("cannot store the key: {e}"))?;
        fsutil::write_atomic_mode(
            &self.settings_dir.join(CERT_FILE),
            cert_pem.as_bytes(),
            0o644,
        )
        .map_err(|e| format!("cannot store the certificate: {e}"))?;
        let mut server = self
            .resolver
            .server
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *server = Pair {
            cert_pem: cert_pem.to_string(),
            key,
        };
        Ok(())
    }

    /// Where domain certificates come from: called with the name a client asked for (SNI),
    /// it returns that domain's certificate and key PEM text, if it has them.
    pub fn set_domain_source(&self, source: DomainSource) {
        *self
            .resolver
            .source
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(source);
    }
}

/// Generate a self-signed certificate; returns (certificate PEM, key PEM).
pub fn self_signed(main_domain: &str) -> io::Result<(String, String)> {
    let mut names = vec![main_domain.to_string()];
    for extra in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
            names.push(extra.to_string());
        }
    }
    let gen = || -> Result<(String, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(names.clone())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, main_domain);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    gen().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot make a certificate for '{main_domain}': {e}"),
        )
    })
}

fn read_pem(path: &Path) -> io::Result<String> {
    let len = fs::metadata(path)?.len();
    if len > MAX_PEM {
        return Err(invalid(format!(
            "{} is larger than {MAX_PEM} bytes",
            path.display()
        )));
    }
    fs::read_to_string(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsConnector;

    /// A client connector that trusts exactly `cert_pem`.
    pub(crate) fn connector(cert_pem: &str) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut cert_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    /// Handshake over a loopback TCP pair with SNI `name`; returns what the server wrote.
    async fn round_trip(tls: &TlsSetup, trust: &str, name: &str) -> io::Result<String> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let tls2 = tls.clone();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await?;
            let mut t = tls2.upgrade(s).await?;
            t.write_all(b"hello").await?;
            t.shutdown().await
        });
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let sni = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut c = connector(trust).connect(sni, tcp).await?;
        let mut got = String::new();
        c.read_to_string(&mut got).await?;
        server.await.unwrap()?;
        Ok(got)
    }

    #[tokio::test]
    async fn generates_once_then_loads() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("Settings");
        let a = TlsSetup::load_or_create(&settings, "mail.example.test").unwrap();
        let mode = fs::metadata(settings.join(KEY_FILE)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let b = TlsSetup::load_or_create(&settings, "other.test").unwrap();
        assert_eq!(a.server_certificate_pem(), b.server_certificate_pem());
        let pem = b.server_certificate_pem();
        for name in ["mail.example.test", "localhost", "127.0.0.1"] {
            assert_eq!(round_trip(&b, &pem, name).await.unwrap(), "hello");
        }
        // A client that does not trust the certificate fails.
        let (other, _) = self_signed("mail.example.test").unwrap();
        assert!(round_trip(&b, &other, "localhost").await.is_err());
    }

    #[tokio::test]
    async fn bad_files_are_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "junk").unwrap();
        fs::write(dir.path().join(CERT_FILE), "junk").unwrap();
        assert!(TlsSetup::load_or_create(dir.path(), "x.test").is_err());
        assert_eq!(
            fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(),
            "junk"
        );
    }

    #[tokio::test]
    async fn domain_certificate_by_sni() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsSetup::load_or_create(dir.path(), "main.test").unwrap();
        let (cert, key) = self_signed("shop.test").unwrap();
        let (_, wrong_key) = self_signed("shop.test").unwrap();
        assert!(check_certificate(&cert, &wrong_key).is_err());
        assert!(check_certificate(&cert, &key).is_ok());
        let current = Arc::new(RwLock::new(Some((cert.clone(), key.clone()))));
        let source = current.clone();
        tls.set_domain_source(Arc::new(move |name: &str| {
            (name == "shop.test")
                .then(|| source.read().unwrap().clone())
                .flatten()
        }));
        assert_eq!(
            round_trip(&tls, &cert, "Shop.Test.").await.unwrap(),
            "hello"
        );
        // Other names still get the server certificate.
        let server = tls.server_certificate_pem();
        assert_eq!(
            round_trip(&tls, &server, "localhost").await.unwrap(),
            "hello"
        );
        // A domain certificate that no longer parses falls back to the server's.
        *current.write().unwrap() = Some((cert.clone(), wrong_key));
        assert!(round_trip(&tls, &cert, "shop.test").await.is_err());
        *current.write().unwrap() = None;
        assert!(round_trip(&tls, &cert, "shop.test").await.is_err());
    }

    #[tokio::test]
    async fn replace_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsSetup::load_or_create(dir.path(), "main.test").unwrap();
        let (cert, key) = self_signed("new.test").unwrap();
        assert!(tls.set_server_certificate(&cert, "junk").is_err());
        tls.set_server_certificate(&cert, &key).unwrap();
        assert_eq!(round_trip(&tls, &cert, "new.test").await.unwrap(), "hello");
        let again = TlsSetup::load_or_create(dir.path(), "main.test").unwrap();
        assert_eq!(again.server_certificate_pem(), cert);
    }
}
