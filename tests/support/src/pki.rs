//! Test PKI: one CA signs every serving certificate (apiserver, fake Entra,
//! vault gateway), so clients trust exactly one extra root.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::Error;

/// Names the fakes answer for: the Entra authority, every Key Vault data-plane host,
/// the ARM endpoint, and loopback for tools that dial by address.
pub const FAKE_SERVER_NAMES: &[&str] = &[
    "login.microsoftonline.com",
    "*.vault.azure.net",
    "vault.azure.net",
    "management.azure.com",
    "localhost",
];

/// Generated key material, all PEM.
pub struct Pki {
    pub ca_cert_pem: String,
    ca_cert: Certificate,
    ca_key: KeyPair,
}

/// A leaf certificate and its private key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// An RSA key pair (PKCS#8 private, SPKI public).
pub struct RsaPem {
    pub private_pem: String,
    pub public_pem: String,
}

impl Pki {
    pub fn generate() -> Result<Self, Error> {
        let ca_key = KeyPair::generate().map_err(pki_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        params.distinguished_name.push(DnType::CommonName, "lockstep test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = params.self_signed(&ca_key).map_err(pki_err)?;
        Ok(Self { ca_cert_pem: ca_cert.pem(), ca_cert, ca_key })
    }

    /// A serving certificate for `dns_names` plus IP SAN 127.0.0.1.
    pub fn server_leaf(&self, common_name: &str, dns_names: &[&str]) -> Result<Leaf, Error> {
        let key = KeyPair::generate().map_err(pki_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.subject_alt_names = dns_names
            .iter()
            .map(|n| n.to_string().try_into().map(SanType::DnsName))
            .collect::<Result<_, _>>()
            .map_err(pki_err)?;
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).map_err(pki_err)?;
        Ok(Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// A self-signed client certificate over an RSA key, as an app registration's
/// certificate credential (the client signs assertions with the key).
pub fn client_certificate(common_name: &str) -> Result<(Leaf, RsaPem), Error> {
    let rsa = rsa_key()?;
    let key = KeyPair::from_pem(&rsa.private_pem).map_err(pki_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).map_err(pki_err)?;
    Ok((Leaf { cert_pem: cert.pem(), key_pem: rsa.private_pem.clone() }, rsa))
}

/// RSA-2048: service-account tokens and Entra access tokens are RS256, like AKS and Entra.
pub fn rsa_key() -> Result<RsaPem, Error> {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(pki_err)?;
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(pki_err)?.to_string();
    let public_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).map_err(pki_err)?;
    Ok(RsaPem { private_pem, public_pem })
}

/// Paths of the files the cluster needs, inside the state directory.
pub struct PkiFiles {
    pub ca_cert: PathBuf,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    pub fakes_cert: PathBuf,
    pub fakes_key: PathBuf,
    pub entra_signing_key: PathBuf,
}

impl PkiFiles {
    pub fn in_dir(dir: &Path) -> Self {
        let p = |n: &str| dir.join(n);
        Self {
            ca_cert: p("ca.crt"),
            apiserver_cert: p("apiserver.crt"),
            apiserver_key: p("apiserver.key"),
            sa_key: p("sa.key"),
            sa_pub: p("sa.pub"),
            fakes_cert: p("fakes.crt"),
            fakes_key: p("fakes.key"),
            entra_signing_key: p("entra-signing.key"),
        }
    }

    /// Generates everything and writes it (keys 0600).
    pub fn write_all(&self) -> Result<(), Error> {
        let pki = Pki::generate()?;
        let api = pki.server_leaf("kube-apiserver", &["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"])?;
        let fakes = pki.server_leaf("lockstep fakes", FAKE_SERVER_NAMES)?;
        let sa = rsa_key()?;
        let entra = rsa_key()?;
        write(&self.ca_cert, &pki.ca_cert_pem, false)?;
        write(&self.apiserver_cert, &api.cert_pem, false)?;
        write(&self.apiserver_key, &api.key_pem, true)?;
        write(&self.sa_key, &sa.private_pem, true)?;
        write(&self.sa_pub, &sa.public_pem, false)?;
        write(&self.fakes_cert, &fakes.cert_pem, false)?;
        write(&self.fakes_key, &fakes.key_pem, true)?;
        write(&self.entra_signing_key, &entra.private_pem, true)?;
        Ok(())
    }
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(contents.as_bytes()).map_err(|e| Error::io(path, e))
}

fn pki_err(e: impl std::fmt::Display) -> Error {
    Error::Pki(e.to_string())
}
