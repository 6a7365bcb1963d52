//! A TCP relay: exposes a server that listens on loopback on another local address.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Accepts connections on `address:<free port>` and joins each to `target`, byte for byte, until
/// either side closes. Runs on the current Tokio runtime; dropping it stops accepting (connections
/// already joined end with the runtime or when a side closes).
///
/// Keycloak needs it on the real node: its master realm requires HTTPS from every client whose
/// address is not loopback or RFC 1918 (`sslRequired: external`), and the node's network
/// (`198.18.0.0/16`, RFC 2544) is neither. Keycloak listens on loopback and the relay on the
/// node's address, so pods reach it and Keycloak sees every client as local. A platform outside
/// this machine serves Keycloak over HTTPS instead.
pub struct Relay {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Binds `address` on a port the kernel picks and starts relaying to `target`.
    ///
    /// Errors: [`Error::Io`] when `address` cannot be bound (not an address of this machine).
    pub async fn start(address: IpAddr, target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind((address, 0))
            .await
            .map_err(|source| Error::Io {
                what: format!("binding a relay on {address}"),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| Error::Io {
            what: "reading the relay's address".to_owned(),
            source,
        })?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    // Out of descriptors, say: wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self { address, task })
    }

    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
