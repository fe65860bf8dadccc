//! [`Endpoint`]: where an engine speaking Docker's API listens and how to
//! reach it (a Unix socket, plain TCP, or TCP with TLS), and the connection
//! itself, with errors that name the certificate file or the variable to fix.
//!
//! TLS follows the docker CLI: `DOCKER_TLS_VERIFY` set to anything but the
//! empty string turns it on for a `tcp://` host, and the client files
//! `ca.pem`, `cert.pem` and `key.pem` come from `DOCKER_CERT_PATH` (else
//! `DOCKER_CONFIG`, else `~/.docker`). That is what GitLab's
//! docker-in-docker sets (`DOCKER_HOST=tcp://docker:2376`,
//! `DOCKER_CERT_PATH=/certs/client`). The daemon is always verified against
//! `ca.pem`; TLS without verification (`--tls` alone) is not offered.
//!
//! This module connects and negotiates the API version; it does not probe
//! the engine (see `docker.rs`).

use std::fmt;
use std::path::{Path, PathBuf};

use bollard::errors::Error as BollardError;
use bollard::{API_DEFAULT_VERSION, Docker};

use super::error::BoxError;

/// The variable naming the daemon (`unix:///var/run/docker.sock`,
/// `tcp://docker:2376`).
pub const DOCKER_HOST: &str = "DOCKER_HOST";

/// The variable that turns TLS on when it is not empty.
pub const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";

/// The variable naming the directory of `ca.pem`, `cert.pem` and `key.pem`.
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";

/// The docker CLI's configuration directory; holds the TLS files when
/// `DOCKER_CERT_PATH` is unset.
const DOCKER_CONFIG: &str = "DOCKER_CONFIG";

/// Where Docker listens when `DOCKER_HOST` is unset.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds a request may take; bollard's own default.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The body Go's HTTP server sends to a plain request on a TLS port.
const PLAIN_ON_TLS_PORT: &str = "Client sent an HTTP request to an HTTPS server";

/// Where an engine listens, and the TLS files to reach it with, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    tls: Option<TlsFiles>,
}

impl Endpoint {
    /// `url` (`unix://`, `tcp://`, `http://`), without TLS.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: None,
        }
    }

    /// Reaches a `tcp://` or `http://` URL over TLS with `files`.
    pub fn with_tls(self, files: TlsFiles) -> Self {
        Self {
            tls: Some(files),
            ..self
        }
    }

    /// Docker as the docker CLI finds it: `DOCKER_HOST` (the local socket
    /// when unset or empty), with TLS as `DOCKER_TLS_VERIFY` and
    /// `DOCKER_CERT_PATH` say.
    pub fn docker_from_env() -> Self {
        Self::docker_from_vars(None, |name| std::env::var(name).ok())
    }

    /// Docker at `url`, with TLS as `DOCKER_TLS_VERIFY` and
    /// `DOCKER_CERT_PATH` say (as `docker -H URL` does).
    pub fn docker_with_env_tls(url: &str) -> Self {
        Self::docker_from_vars(Some(url), |name| std::env::var(name).ok())
    }

    /// Docker at `url`, else where `lookup("DOCKER_HOST")` says, with TLS
    /// as the other variables `lookup` returns say.
    pub(crate) fn docker_from_vars(
        url: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let url = url
            .map(str::to_owned)
            .or_else(|| var(DOCKER_HOST))
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
        let endpoint = Self::new(url);
        let is_tcp = endpoint.url.starts_with("tcp://") || endpoint.url.starts_with("http://");
        if !is_tcp || var(DOCKER_TLS_VERIFY).is_none() {
            return endpoint;
        }
        let (dir, origin) = if let Some(dir) = var(DOCKER_CERT_PATH) {
            (PathBuf::from(dir), CertOrigin::CertPath)
        } else if let Some(dir) = var(DOCKER_CONFIG) {
            (PathBuf::from(dir), CertOrigin::DockerConfig)
        } else {
            let home = var("HOME").unwrap_or_else(|| "/root".to_owned());
            (Path::new(&home).join(".docker"), CertOrigin::Home)
        };
        endpoint.with_tls(TlsFiles { dir, origin })
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TLS files, when the endpoint is reached over TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// A client for this endpoint, with the API version negotiated.
    ///
    /// # Errors
    ///
    /// The transport error, wrapped in a [`TlsConnectError`] when TLS is
    /// what failed (a certificate file, the daemon's certificate, a daemon
    /// that expects TLS or does not speak it).
    pub(crate) async fn connect(&self) -> Result<Docker, BoxError> {
        let docker = self.client().map_err(|e| self.explain(e))?;
        docker
            .negotiate_version()
            .await
            .map_err(|e| self.explain(e))
    }

    /// The bollard client, not yet connected.
    fn client(&self) -> Result<Docker, BollardError> {
        let url = self.url.as_str();
        match &self.tls {
            Some(files) if url.starts_with("tcp://") || url.starts_with("http://") => {
                // `ring` is the only provider compiled in; installing it
                // keeps a second provider elsewhere in a program from
                // making rustls refuse to choose. A provider already
                // installed is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                // bollard speaks TLS to `tcp://` addresses, not `http://`.
                let address = url.replacen("http://", "tcp://", 1);
                Docker::connect_with_ssl(
                    &address,
                    &files.key(),
                    &files.cert(),
                    &files.ca(),
                    REQUEST_TIMEOUT_SECS,
                    API_DEFAULT_VERSION,
                )
            }
            _ if url.starts_with("unix://") => {
                Docker::connect_with_unix(url, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            _ if url.starts_with("tcp://") || url.starts_with("http://") => {
                Docker::connect_with_http(url, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            }
            // Other schemes: bollard says which it does not support.
            _ => Docker::connect_with_host(url),
        }
    }

    /// `err` with what it means for TLS, when TLS is involved.
    fn explain(&self, err: BollardError) -> BoxError {
        let kind = match &self.tls {
            Some(files) => tls_failure(&err, files),
            None => chain_mentions(&err, PLAIN_ON_TLS_PORT).then_some(TlsFailure::TlsRequired),
        };
        match kind {
            Some(kind) => Box::new(TlsConnectError {
                endpoint: self.url.clone(),
                kind,
                source: err,
            }),
            None => Box::new(err),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)?;
        if let Some(files) = &self.tls {
            write!(f, " (TLS, {})", files.origin.describe(&files.dir))?;
        }
        Ok(())
    }
}

/// The directory of a TLS client's `ca.pem`, `cert.pem` and `key.pem`, and
/// how it was chosen (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    dir: PathBuf,
    origin: CertOrigin,
}

impl TlsFiles {
    /// The files in `dir`, named by the caller (not by a variable).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            origin: CertOrigin::Explicit,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA that signed the daemon's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The client certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The client's private key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
}

/// How the TLS directory was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertOrigin {
    /// `DOCKER_CERT_PATH`.
    CertPath,
    /// `DOCKER_CONFIG`, with `DOCKER_CERT_PATH` unset.
    DockerConfig,
    /// `~/.docker`, with both unset.
    Home,
    /// Given by the caller.
    Explicit,
}

impl CertOrigin {
    /// Where `dir` came from, in words.
    fn describe(self, dir: &Path) -> String {
        let dir = dir.display();
        match self {
            CertOrigin::CertPath => format!("`{DOCKER_CERT_PATH}={dir}`"),
            CertOrigin::DockerConfig => {
                format!("`{DOCKER_CONFIG}={dir}`, `{DOCKER_CERT_PATH}` being unset")
            }
            CertOrigin::Home => format!("`{dir}`, `{DOCKER_CERT_PATH}` being unset"),
            CertOrigin::Explicit => format!("`{dir}`"),
        }
    }
}

/// Why a connection failed at the TLS level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// A client file is missing, unreadable or not PEM.
    File {
        /// The file.
        path: PathBuf,
        /// Where its directory came from, in words.
        origin: String,
    },
    /// The daemon's certificate is not signed by `ca.pem`.
    UntrustedDaemon {
        /// The CA file.
        ca: PathBuf,
        /// Where its directory came from, in words.
        origin: String,
    },
    /// The daemon's certificate does not name the host connected to.
    WrongName,
    /// The daemon refused the client certificate.
    ClientRefused {
        /// The client certificate.
        cert: PathBuf,
        /// Where its directory came from, in words.
        origin: String,
    },
    /// The port does not speak TLS.
    NotTls,
    /// The port speaks only TLS, and TLS was off.
    TlsRequired,
    /// Another TLS failure.
    Other,
}

/// A connection that failed at the TLS level, with what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.endpoint, .kind))]
pub struct TlsConnectError {
    /// The URL connected to.
    pub endpoint: String,
    /// What went wrong.
    pub kind: TlsFailure,
    /// bollard's error.
    #[source]
    pub source: BollardError,
}

/// The message of a [`TlsConnectError`].
fn describe(endpoint: &str, kind: &TlsFailure) -> String {
    match kind {
        TlsFailure::File { path, origin } => format!(
            "cannot use the TLS file `{}` (from {origin}): `{DOCKER_CERT_PATH}` must name a \
             directory holding `ca.pem`, `cert.pem` and `key.pem`",
            path.display()
        ),
        TlsFailure::UntrustedDaemon { ca, origin } => format!(
            "the daemon at `{endpoint}` presented a certificate that the CA `{}` (from {origin}) \
             did not sign: point `{DOCKER_CERT_PATH}` at the client files made with the daemon's CA",
            ca.display()
        ),
        TlsFailure::WrongName => format!(
            "the daemon's TLS certificate is not valid for the host of `{endpoint}`: connect by a \
             name or address the certificate lists"
        ),
        TlsFailure::ClientRefused { cert, origin } => format!(
            "the daemon at `{endpoint}` refused the client certificate `{}` (from {origin}): \
             point `{DOCKER_CERT_PATH}` at a client certificate signed by the daemon's CA",
            cert.display()
        ),
        TlsFailure::NotTls => format!(
            "`{endpoint}` does not speak TLS: unset `{DOCKER_TLS_VERIFY}`, or use the daemon's \
             TLS port (2376 by convention)"
        ),
        TlsFailure::TlsRequired => format!(
            "the daemon at `{endpoint}` expects TLS: set `{DOCKER_TLS_VERIFY}=1` and \
             `{DOCKER_CERT_PATH}` to the directory holding `ca.pem`, `cert.pem` and `key.pem`"
        ),
        TlsFailure::Other => format!("the TLS handshake with `{endpoint}` failed"),
    }
}

/// What `err` says about TLS, for a connection made with `files`.
fn tls_failure(err: &BollardError, files: &TlsFiles) -> Option<TlsFailure> {
    let origin = || files.origin.describe(&files.dir);
    match err {
        BollardError::CertPathError { path }
        | BollardError::CertParseError { path }
        | BollardError::CertMultipleKeys { path, .. } => {
            return Some(TlsFailure::File {
                path: path.clone(),
                origin: origin(),
            });
        }
        _ => {}
    }
    // bollard reads the client's certificate and key only during the
    // handshake, and a file it cannot read there is silently not sent: a
    // missing file shows as a refused client. Name the file instead.
    for path in [files.cert(), files.key()] {
        if std::fs::metadata(&path).is_err() {
            return Some(TlsFailure::File {
                path,
                origin: origin(),
            });
        }
    }
    if let Some(tls) = rustls_error(err) {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as Tls};
        return Some(match tls {
            Tls::InvalidCertificate(
                Cert::NotValidForName | Cert::NotValidForNameContext { .. },
            ) => TlsFailure::WrongName,
            Tls::InvalidCertificate(_) => TlsFailure::UntrustedDaemon {
                ca: files.ca(),
                origin: origin(),
            },
            Tls::AlertReceived(
                Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateRequired
                | Alert::CertificateUnknown
                | Alert::AccessDenied,
            ) => TlsFailure::ClientRefused {
                cert: files.cert(),
                origin: origin(),
            },
            Tls::InvalidMessage(_) | Tls::InappropriateMessage { .. } => TlsFailure::NotTls,
            _ => TlsFailure::Other,
        });
    }
    None
}

/// The rustls error somewhere in `err`'s causes. It travels inside
/// `io::Error`s (nested ones when the handshake fails while connecting),
/// whose `source` skips the error they wrap, so those are opened instead.
fn rustls_error(err: &BollardError) -> Option<&rustls::Error> {
    // bollard's `IOError` is transparent: its `source` is already past the
    // wrapped `io::Error`.
    let mut next: Option<&(dyn std::error::Error + 'static)> = match err {
        BollardError::IOError { err } => Some(err),
        other => Some(other),
    };
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// Whether `text` appears in `err` or one of its causes.
fn chain_mentions(err: &BollardError, text: &str) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        if current.to_string().contains(text) {
            return true;
        }
        next = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn no_variables_mean_the_local_socket_without_tls() {
        let endpoint = Endpoint::docker_from_vars(None, vars(&[]));
        assert_eq!(endpoint, Endpoint::new(DEFAULT_DOCKER_HOST));
        let endpoint = Endpoint::docker_from_vars(None, vars(&[(DOCKER_HOST, "")]));
        assert_eq!(endpoint.url(), DEFAULT_DOCKER_HOST);
    }

    #[test]
    fn tls_verify_turns_tls_on_for_tcp_with_the_cert_path() {
        let endpoint = Endpoint::docker_from_vars(
            None,
            vars(&[
                (DOCKER_HOST, "tcp://docker:2376"),
                (DOCKER_TLS_VERIFY, "1"),
                (DOCKER_CERT_PATH, "/certs/client"),
            ]),
        );
        assert_eq!(endpoint.url(), "tcp://docker:2376");
        let tls = endpoint.tls().expect("TLS is on");
        assert_eq!(tls.dir(), Path::new("/certs/client"));
        assert_eq!(tls.ca(), Path::new("/certs/client/ca.pem"));
        assert_eq!(tls.cert(), Path::new("/certs/client/cert.pem"));
        assert_eq!(tls.key(), Path::new("/certs/client/key.pem"));
        assert_eq!(
            endpoint.to_string(),
            "tcp://docker:2376 (TLS, `DOCKER_CERT_PATH=/certs/client`)"
        );
    }

    #[test]
    fn any_non_empty_tls_verify_counts_as_the_docker_cli_reads_it() {
        for value in ["1", "true", "0"] {
            let endpoint = Endpoint::docker_from_vars(
                None,
                vars(&[(DOCKER_HOST, "tcp://h:2376"), (DOCKER_TLS_VERIFY, value)]),
            );
            assert!(endpoint.tls().is_some(), "{value}");
        }
        let endpoint = Endpoint::docker_from_vars(
            None,
            vars(&[(DOCKER_HOST, "tcp://h:2375"), (DOCKER_TLS_VERIFY, "")]),
        );
        assert_eq!(endpoint.tls(), None);
    }

    #[test]
    fn the_cert_directory_falls_back_to_docker_config_then_home() {
        let config = Endpoint::docker_from_vars(
            Some("tcp://h:2376"),
            vars(&[
                (DOCKER_TLS_VERIFY, "1"),
                (DOCKER_CONFIG, "/cfg"),
                ("HOME", "/home/u"),
            ]),
        );
        assert_eq!(config.tls().unwrap().dir(), Path::new("/cfg"));
        let home = Endpoint::docker_from_vars(
            Some("tcp://h:2376"),
            vars(&[(DOCKER_TLS_VERIFY, "1"), ("HOME", "/home/u")]),
        );
        assert_eq!(home.tls().unwrap().dir(), Path::new("/home/u/.docker"));
        assert!(home.to_string().contains("`DOCKER_CERT_PATH` being unset"));
    }

    #[test]
    fn tls_variables_do_not_apply_to_unix_sockets() {
        let endpoint = Endpoint::docker_from_vars(
            Some("unix:///run/docker.sock"),
            vars(&[(DOCKER_TLS_VERIFY, "1"), (DOCKER_CERT_PATH, "/certs")]),
        );
        assert_eq!(endpoint.tls(), None);
    }

    /// A handshake failure as hyper-rustls reports it while connecting: a
    /// rustls error inside an `io::Error` inside another.
    fn handshake_error(tls: rustls::Error) -> BollardError {
        use std::io::{Error, ErrorKind};
        BollardError::IOError {
            err: Error::other(Error::new(ErrorKind::InvalidData, tls)),
        }
    }

    #[test]
    fn handshake_failures_are_told_apart() {
        use rustls::{AlertDescription, CertificateError, Error as Tls};
        let dir = tempfile::tempdir().unwrap();
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(file), "").unwrap();
        }
        let files = TlsFiles::in_dir(dir.path());
        let origin = format!("`{}`", dir.path().display());
        let kind = |tls| tls_failure(&handshake_error(tls), &files);
        assert_eq!(
            kind(Tls::InvalidCertificate(CertificateError::UnknownIssuer)),
            Some(TlsFailure::UntrustedDaemon {
                ca: files.ca(),
                origin: origin.clone()
            })
        );
        assert_eq!(
            kind(Tls::InvalidCertificate(CertificateError::NotValidForName)),
            Some(TlsFailure::WrongName)
        );
        assert_eq!(
            kind(Tls::AlertReceived(AlertDescription::BadCertificate)),
            Some(TlsFailure::ClientRefused {
                cert: files.cert(),
                origin
            })
        );
        let refused = BollardError::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(tls_failure(&refused, &files), None);
        // A client file gone is named, whatever the handshake said.
        std::fs::remove_file(files.key()).unwrap();
        assert!(matches!(
            kind(Tls::AlertReceived(AlertDescription::BadCertificate)),
            Some(TlsFailure::File { path, .. }) if path == files.key()
        ));
    }

    #[test]
    fn a_plain_request_answered_by_a_tls_port_asks_for_tls() {
        let plain = Endpoint::new("tcp://127.0.0.1:2376");
        let answer = BollardError::DockerResponseServerError {
            status_code: 400,
            message: "Client sent an HTTP request to an HTTPS server.".to_owned(),
        };
        let err = plain.explain(answer);
        let tls = err.downcast_ref::<TlsConnectError>().expect("a TLS error");
        assert_eq!(tls.kind, TlsFailure::TlsRequired);
        assert!(tls.to_string().contains("set `DOCKER_TLS_VERIFY=1`"));
        let refused = BollardError::IOError {
            err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(
            plain
                .explain(refused)
                .downcast_ref::<TlsConnectError>()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_missing_cert_directory_is_named_with_its_variable() {
        let endpoint = Endpoint::docker_from_vars(
            None,
            vars(&[
                (DOCKER_HOST, "tcp://127.0.0.1:9"),
                (DOCKER_TLS_VERIFY, "1"),
                (DOCKER_CERT_PATH, "/nonexistent/qus-certs"),
            ]),
        );
        let err = endpoint.connect().await.unwrap_err();
        let tls = err.downcast_ref::<TlsConnectError>().expect("a TLS error");
        assert_eq!(
            tls.to_string(),
            "cannot use the TLS file `/nonexistent/qus-certs/ca.pem` (from \
             `DOCKER_CERT_PATH=/nonexistent/qus-certs`): `DOCKER_CERT_PATH` must name a directory \
             holding `ca.pem`, `cert.pem` and `key.pem`"
        );
    }
}
