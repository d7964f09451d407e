//! Credentials: the cluster CA, the server's serving certificate, the admin client certificate,
//! the component tokens, and the kubeconfig written for the admin.
//!
//! Everything lives in `<data-dir>/pki/` and is created on first start; the CA, the admin
//! credential and the tokens are kept across restarts, the serving certificate is re-issued at
//! every start so its SANs always match the current listen and advertise addresses.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Errors creating or reading credentials.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating {what}: {source}")]
    Generate { what: &'static str, source: rcgen::Error },
    #[error("{path}: not a valid PEM certificate or key: {detail}")]
    BadPem { path: PathBuf, detail: String },
}

/// The components that get a token of their own, as in-pod processes get service-account
/// tokens. The user name each token authenticates as is `system:podnet:<component>`;
/// `serviceaccount` is the token lab pods find in their service-account directory.
pub const COMPONENTS: &[&str] = &["controllers", "agent", "proxy", "dns", "ingress", "serviceaccount"];

/// The server's credentials, loaded or freshly made.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    /// token → user name.
    pub tokens: BTreeMap<String, String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.to_path_buf(), source }
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let mut f =
        fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io { path: path.to_path_buf(), source: e }),
    }
}

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Pki {
    /// Loads the credentials under `<data_dir>/pki`, creating what is missing, and issues a
    /// serving certificate for `ip_sans` (plus 127.0.0.1, 10.96.0.1 and the `kubernetes` names).
    pub fn load_or_create(data_dir: &Path, ip_sans: &[IpAddr]) -> Result<Pki, PkiError> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let (ca_cert_pem, ca_key_pem) = Self::ca(&dir)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem)
            .map_err(|e| PkiError::BadPem { path: dir.join("ca.key"), detail: e.to_string() })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)
            .map_err(|e| PkiError::BadPem { path: dir.join("ca.crt"), detail: e.to_string() })?;

        // The serving certificate.
        let mut sans: Vec<SanType> = Vec::new();
        let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.96.0.1".parse().unwrap()];
        for ip in ip_sans {
            if !ips.contains(ip) && !ip.is_unspecified() {
                ips.push(*ip);
            }
        }
        sans.extend(ips.into_iter().map(SanType::IpAddress));
        for dns in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            sans.push(SanType::DnsName(dns.try_into().map_err(gen_err("a DNS SAN"))?));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name("kube-apiserver", None);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(gen_err("the serving key"))?;
        let cert = params.signed_by(&key, &issuer).map_err(gen_err("the serving certificate"))?;
        let (server_cert_pem, server_key_pem) = (cert.pem(), key.serialize_pem());
        write_private(&dir.join("server.crt"), server_cert_pem.as_bytes())?;
        write_private(&dir.join("server.key"), server_key_pem.as_bytes())?;

        // The admin client credential, kept across restarts.
        let (admin_cert_pem, admin_key_pem) = match (read(&dir.join("admin.crt"))?, read(&dir.join("admin.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let mut params = CertificateParams::default();
                params.distinguished_name = name("podnet-admin", Some("system:masters"));
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                let key = KeyPair::generate().map_err(gen_err("the admin key"))?;
                let cert = params.signed_by(&key, &issuer).map_err(gen_err("the admin certificate"))?;
                write_private(&dir.join("admin.crt"), cert.pem().as_bytes())?;
                write_private(&dir.join("admin.key"), key.serialize_pem().as_bytes())?;
                (cert.pem(), key.serialize_pem())
            }
        };

        let tokens = Self::tokens(&dir)?;
        Ok(Pki { dir, ca_cert_pem, server_cert_pem, server_key_pem, admin_cert_pem, admin_key_pem, tokens })
    }

    fn ca(dir: &Path) -> Result<(String, String), PkiError> {
        if let (Some(c), Some(k)) = (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?) {
            return Ok((c, k));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name("podnet-ca", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
        let cert = params.self_signed(&key).map_err(gen_err("the CA certificate"))?;
        write_private(&dir.join("ca.crt"), cert.pem().as_bytes())?;
        write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// One token per component in `pki/tokens/<component>`, created once.
    fn tokens(dir: &Path) -> Result<BTreeMap<String, String>, PkiError> {
        let tdir = dir.join("tokens");
        fs::create_dir_all(&tdir).map_err(io_err(&tdir))?;
        let mut tokens = BTreeMap::new();
        for component in COMPONENTS {
            let path = tdir.join(component);
            let token = match read(&path)? {
                Some(t) if !t.trim().is_empty() => t.trim().to_string(),
                _ => {
                    let t = random_token();
                    write_private(&path, t.as_bytes())?;
                    t
                }
            };
            tokens.insert(token, format!("system:podnet:{component}"));
        }
        Ok(tokens)
    }

    /// The path of a component's token file.
    pub fn token_path(&self, component: &str) -> PathBuf {
        self.dir.join("tokens").join(component)
    }

    /// A kubeconfig for the admin, pointing at `server` (an `https://` URL), with context `name`.
    pub fn admin_kubeconfig(&self, server: &str, name: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {name}-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}-admin
current-context: {name}
preferences: {{}}
",
            ca = b64(&self.ca_cert_pem),
            cert = b64(&self.admin_cert_pem),
            key = b64(&self.admin_key_pem),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &["192.168.7.1".parse().unwrap()]).unwrap();
        let b = Pki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.tokens.len(), COMPONENTS.len());
        assert_ne!(a.server_cert_pem, b.server_cert_pem);
        let kc = a.admin_kubeconfig("https://127.0.0.1:6443", "podnet");
        assert!(kc.contains("current-context: podnet"));
        let mode = fs::metadata(dir.path().join("pki/ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
