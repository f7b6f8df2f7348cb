//! The egress grant of one isolation unit: the plugin's `egress(store)`
//! answer intersected with the operator's [`NetworkGrants`]. Every outbound
//! request is checked here, on its URL and on every address its host
//! resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::grants::NetworkGrants;

/// Why a request was refused. The label set is fixed (metrics cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// Not covered by any rule of the plugin's egress answer.
    HostNotGranted,
    /// `http` without the operator's grant.
    PlainHttp,
    PrivateAddress,
    LoopbackAddress,
    LinkLocalAddress,
    MetadataAddress,
    /// Unspecified, multicast, broadcast or documentation ranges: never reachable.
    ReservedAddress,
    /// No scheme/host, or a scheme other than http(s).
    InvalidUrl,
    RequestTooLarge,
    ResponseTooLarge,
    /// A credential request refused by policy.
    Credential,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostNotGranted => "host_not_granted",
            Self::PlainHttp => "plain_http",
            Self::PrivateAddress => "private_address",
            Self::LoopbackAddress => "loopback_address",
            Self::LinkLocalAddress => "link_local_address",
            Self::MetadataAddress => "metadata_address",
            Self::ReservedAddress => "reserved_address",
            Self::InvalidUrl => "invalid_url",
            Self::RequestTooLarge => "request_too_large",
            Self::ResponseTooLarge => "response_too_large",
            Self::Credential => "credential",
        }
    }
}

/// A refused request: the host (or address) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub target: String,
    pub detail: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request to {} denied: {}", self.target, self.detail)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any name strictly below `example.com`.
    Suffix(String),
}

/// One allowed destination: scheme + host pattern + port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

impl EgressRule {
    /// From a WIT `egress-rule` (`scheme`, `host` exact or `*.suffix`, optional port).
    pub fn new(scheme: &str, host: &str, port: Option<u16>) -> Result<Self, String> {
        let scheme = Scheme::parse(scheme).ok_or_else(|| format!("egress rule scheme {scheme:?}: expected http or https"))?;
        let host = normalize_host(host);
        let pattern = match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => HostPattern::Suffix(suffix.to_string()),
            None if !host.is_empty() && !host.contains('*') && !host.contains('/') && !host.contains('@') => HostPattern::Exact(host),
            _ => return Err(format!("egress rule host {host:?}: expected a host name, an IP address or *.domain")),
        };
        Ok(Self { scheme, host: pattern, port: port.unwrap_or(scheme.default_port()) })
    }

    fn matches(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        self.scheme == scheme
            && self.port == port
            && match &self.host {
                HostPattern::Exact(h) => h == host,
                HostPattern::Suffix(s) => host.len() > s.len() + 1 && host.ends_with(s.as_str()) && host.as_bytes()[host.len() - s.len() - 1] == b'.',
            }
    }
}

/// A validated destination: everything the sender needs, taken from the URL
/// the host checked (never from request headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Lower-case host, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Set when the host is an IP literal.
    pub ip: Option<IpAddr>,
}

impl Target {
    pub fn authority(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.port == self.scheme.default_port() { host } else { format!("{host}:{}", self.port) }
    }
}

/// What one isolation unit may reach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressGrant {
    pub rules: Vec<EgressRule>,
    pub network: NetworkGrants,
}

/// Address classes that need an operator grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Private,
    Loopback,
    LinkLocal,
    Metadata,
    Reserved,
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        AddressClass::Private
    } else if ip.is_unspecified() || o[0] == 0 || ip.is_broadcast() || ip.is_multicast() || ip.is_documentation() || o[0] >= 240 {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else if (seg[0] & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if ip.is_unspecified() || ip.is_multicast() || (seg[0] == 0x2001 && seg[1] == 0xdb8) {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

impl EgressGrant {
    /// Checks an address the target resolved to (or its IP literal).
    pub fn check_address(&self, target: &str, ip: IpAddr) -> Result<(), Denial> {
        let (granted, reason, what) = match classify(ip) {
            AddressClass::Public => return Ok(()),
            AddressClass::Private => (self.network.private, DenyReason::PrivateAddress, "a private address"),
            AddressClass::Loopback => (self.network.loopback, DenyReason::LoopbackAddress, "a loopback address"),
            AddressClass::LinkLocal => (self.network.link_local, DenyReason::LinkLocalAddress, "a link-local address"),
            AddressClass::Metadata => (self.network.metadata, DenyReason::MetadataAddress, "the cloud metadata address"),
            AddressClass::Reserved => (false, DenyReason::ReservedAddress, "a reserved address"),
        };
        if granted {
            Ok(())
        } else {
            Err(Denial {
                reason,
                target: target.to_string(),
                detail: format!("{ip} is {what}, which the operator has not granted"),
            })
        }
    }

    /// Checks a request URL against the rules and the operator's grants.
    pub fn check_url(&self, uri: &http::Uri) -> Result<Target, Denial> {
        let invalid = |detail: &str| Denial { reason: DenyReason::InvalidUrl, target: uri.to_string(), detail: detail.to_string() };
        let scheme = uri.scheme_str().and_then(Scheme::parse).ok_or_else(|| invalid("only absolute http(s) URLs are sent"))?;
        let authority = uri.authority().ok_or_else(|| invalid("the URL has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info in URLs is not sent"));
        }
        let host = normalize_host(authority.host());
        if host.is_empty() {
            return Err(invalid("the URL has no host"));
        }
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        let ip = host.parse::<IpAddr>().ok();
        let target = Target { scheme, host, port, ip };
        let label = target.authority();
        // The address first: for `http://169.254.169.254` the metadata grant is
        // what is missing, and granting plain http alone would not help.
        if let Some(ip) = ip {
            self.check_address(&label, ip)?;
        }
        if scheme == Scheme::Http && !self.network.plain_http {
            return Err(Denial { reason: DenyReason::PlainHttp, target: label, detail: "plain http is not granted by the operator".into() });
        }
        if !self.rules.iter().any(|r| r.matches(scheme, &target.host, port)) {
            return Err(Denial {
                reason: DenyReason::HostNotGranted,
                target: label,
                detail: "not among the destinations the plugin declared for this store".into(),
            });
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(rules: &[(&str, &str, Option<u16>)], network: NetworkGrants) -> EgressGrant {
        EgressGrant { rules: rules.iter().map(|(s, h, p)| EgressRule::new(s, h, *p).unwrap()).collect(), network }
    }

    fn check(g: &EgressGrant, url: &str) -> Result<Target, DenyReason> {
        g.check_url(&url.parse().unwrap()).map_err(|d| d.reason)
    }

    #[test]
    fn hosts_ports_and_wildcards() {
        let g = grant(&[("https", "*.vault.azure.net", None), ("https", "login.microsoftonline.com", None)], NetworkGrants::default());
        assert!(check(&g, "https://my.vault.azure.net/secrets/x").is_ok());
        assert!(check(&g, "https://MY.Vault.Azure.Net./secrets/x").is_ok());
        assert_eq!(check(&g, "https://vault.azure.net/"), Err(DenyReason::HostNotGranted));
        assert_eq!(check(&g, "https://evilvault.azure.net/"), Err(DenyReason::HostNotGranted));
        assert_eq!(check(&g, "https://my.vault.azure.net:8443/"), Err(DenyReason::HostNotGranted));
        assert_eq!(check(&g, "http://login.microsoftonline.com/"), Err(DenyReason::PlainHttp));
        assert_eq!(check(&g, "https://login.microsoftonline.com.evil.com/"), Err(DenyReason::HostNotGranted));
        assert_eq!(check(&g, "https://user@login.microsoftonline.com/"), Err(DenyReason::InvalidUrl));
        assert_eq!(check(&g, "/relative"), Err(DenyReason::InvalidUrl));
    }

    #[test]
    fn address_classes_need_operator_grants() {
        let rules = [("https", "10.1.2.3", None), ("https", "169.254.169.254", None), ("https", "127.0.0.1", None), ("https", "::1", None), ("https", "169.254.1.1", None)];
        let g = grant(&rules, NetworkGrants::default());
        assert_eq!(check(&g, "https://10.1.2.3/"), Err(DenyReason::PrivateAddress));
        assert_eq!(check(&g, "https://169.254.169.254/"), Err(DenyReason::MetadataAddress));
        assert_eq!(check(&g, "https://127.0.0.1/"), Err(DenyReason::LoopbackAddress));
        assert_eq!(check(&g, "https://[::1]/"), Err(DenyReason::LoopbackAddress));
        assert_eq!(check(&g, "https://169.254.1.1/"), Err(DenyReason::LinkLocalAddress));
        let granted = grant(&rules, NetworkGrants { private: true, loopback: true, link_local: true, metadata: true, plain_http: false });
        for url in ["https://10.1.2.3/", "https://169.254.169.254/", "https://127.0.0.1/", "https://[::1]/", "https://169.254.1.1/"] {
            assert!(check(&granted, url).is_ok(), "{url}");
        }
        // IMDS is plain http: the missing metadata grant is named, not the scheme.
        let imds = grant(&[("http", "169.254.169.254", None)], NetworkGrants::default());
        assert_eq!(check(&imds, "http://169.254.169.254/metadata/identity/oauth2/token"), Err(DenyReason::MetadataAddress));
        let imds = grant(&[("http", "169.254.169.254", None)], NetworkGrants { metadata: true, ..Default::default() });
        assert_eq!(check(&imds, "http://169.254.169.254/"), Err(DenyReason::PlainHttp));
        // link-local does not imply metadata.
        let ll = grant(&rules, NetworkGrants { link_local: true, ..Default::default() });
        assert_eq!(check(&ll, "https://169.254.169.254/"), Err(DenyReason::MetadataAddress));
        assert_eq!(classify("::ffff:10.0.0.1".parse().unwrap()), AddressClass::Private);
        assert_eq!(classify("100.100.0.1".parse().unwrap()), AddressClass::Private);
        assert_eq!(classify("0.0.0.0".parse().unwrap()), AddressClass::Reserved);
        assert_eq!(classify("20.1.2.3".parse().unwrap()), AddressClass::Public);
    }

    #[test]
    fn bad_rules_are_refused() {
        for host in ["", "*", "*.", "a*.b", "x/y", "u@h"] {
            assert!(EgressRule::new("https", host, None).is_err(), "{host}");
        }
        assert!(EgressRule::new("ftp", "a.b", None).is_err());
    }
}
