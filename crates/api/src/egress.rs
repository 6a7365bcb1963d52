//! Egress a project may open: address ranges (CIDR) compared the way the API server's CEL `cidr`
//! library compares them, and the NetworkPolicy `ipBlock` that opens a range without the ranges
//! no project may reach.
//!
//! Two CIDR ranges are either disjoint or one contains the other, so "overlaps" is "contains
//! either way".

use std::net::IpAddr;

/// Link-local ranges: the cloud metadata service (169.254.169.254), the node's own link-local
/// services, IPv6 link-local. Never reachable through a project's egress.
pub const LINK_LOCAL: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];

/// A parsed CIDR range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CIDR range, such as 10.20.0.0/16 or 2001:db8::/32")]
pub struct NotACidr(pub String);

impl Cidr {
    /// Parses `a.b.c.d/n` or an IPv6 `addr/n`. The address need not be the network's first.
    pub fn parse(text: &str) -> Result<Self, NotACidr> {
        let err = || NotACidr(text.to_owned());
        let (address, prefix) = text.trim().split_once('/').ok_or_else(err)?;
        let address: IpAddr = address.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { address, prefix })
    }

    /// A single address as a range (/32 or /128).
    pub fn host(address: IpAddr) -> Self {
        let prefix = if address.is_ipv4() { 32 } else { 128 };
        Self { address, prefix }
    }

    fn bits(&self) -> u128 {
        match self.address {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn width(&self) -> u8 {
        if self.address.is_ipv4() { 32 } else { 128 }
    }

    /// Whether every address of `other` is in `self` (false across address families).
    pub fn contains(&self, other: &Cidr) -> bool {
        if self.address.is_ipv4() != other.address.is_ipv4() || self.prefix > other.prefix {
            return false;
        }
        let shift = u32::from(self.width() - self.prefix);
        let mask = |bits: u128| bits.checked_shr(shift).unwrap_or(0);
        mask(self.bits()) == mask(other.bits())
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Whether `range` lies inside one of `allowed`.
pub fn allowed(range: &Cidr, allowed: &[Cidr]) -> bool {
    allowed.iter().any(|a| a.contains(range))
}

/// The `ipBlock` that opens `range` except what no project may reach: `Some((cidr, except))`
/// where `except` lists every blocked range inside `range`, or `None` when `range` lies wholly
/// inside a blocked one. `blocked` should hold [`LINK_LOCAL`], the API server's addresses and the
/// platform's own blocked ranges.
pub fn ip_block(range: &Cidr, blocked: &[Cidr]) -> Option<(String, Vec<String>)> {
    if blocked.iter().any(|b| b.contains(range)) {
        return None;
    }
    let mut except: Vec<String> = blocked
        .iter()
        .filter(|b| range.contains(b))
        .map(ToString::to_string)
        .collect();
    except.sort();
    except.dedup();
    Some((range.to_string(), except))
}

/// [`LINK_LOCAL`], parsed.
pub fn link_local() -> Vec<Cidr> {
    LINK_LOCAL
        .iter()
        .filter_map(|c| Cidr::parse(c).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(text: &str) -> Cidr {
        Cidr::parse(text).unwrap()
    }

    #[test]
    fn containment_is_by_prefix_and_family() {
        assert!(c("0.0.0.0/0").contains(&c("169.254.169.254/32")));
        assert!(c("169.254.0.0/16").contains(&c("169.254.169.254/32")));
        assert!(!c("169.254.0.0/16").contains(&c("169.253.0.0/16")));
        assert!(!c("0.0.0.0/0").contains(&c("fe80::1/128")));
        assert!(c("::/0").contains(&c("fe80::1/128")));
        assert!(c("10.0.0.0/8").overlaps(&c("10.1.0.0/16")));
        assert!(!c("10.1.0.0/16").contains(&c("10.0.0.0/8")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
    }

    #[test]
    fn the_whole_internet_opens_without_link_local_and_the_api_server() {
        let mut blocked = link_local();
        blocked.push(Cidr::host("198.19.0.1".parse().unwrap()));
        let (cidr, except) = ip_block(&c("0.0.0.0/0"), &blocked).unwrap();
        assert_eq!(cidr, "0.0.0.0/0");
        assert_eq!(except, ["169.254.0.0/16", "198.19.0.1/32"]);
        assert_eq!(ip_block(&c("169.254.169.254/32"), &blocked), None);
        assert_eq!(
            ip_block(&c("203.0.113.0/24"), &blocked),
            Some(("203.0.113.0/24".into(), vec![]))
        );
    }

    fn v4() -> impl Strategy<Value = Cidr> {
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Cidr {
            address: IpAddr::V4(a.into()),
            prefix: p,
        })
    }

    proptest! {
        /// No address of a blocked range is opened: the block is refused or excepts it.
        #[test]
        fn no_blocked_address_is_opened(range in v4(), blocked in prop::collection::vec(v4(), 0..4), probe in any::<u32>()) {
            let address = Cidr::host(IpAddr::V4(probe.into()));
            if let Some((cidr, except)) = ip_block(&range, &blocked) {
                let opened = c(&cidr).contains(&address)
                    && !except.iter().any(|e| c(e).contains(&address));
                let is_blocked = blocked.iter().any(|b| b.contains(&address));
                prop_assert!(!(opened && is_blocked), "{} opened though blocked", address);
            }
        }
    }
}
