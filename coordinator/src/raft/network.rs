//! Raft RPCs between coordinator nodes over tonic. openraft's messages are
//! serde-JSON inside `RaftBytes`; one lazily connected channel per peer.
//! Connection failures map to `Unreachable` (openraft backs off), the rest to
//! `Network`. With TLS, a node dials its peers over https and presents its
//! own node certificate (role `node`, the only one the Raft service admits).

use super::{NodeId, Raft, TypeConfig};
use anyhow::Context;
use ferry_common::proto::raft_client::RaftClient;
use ferry_common::proto::raft_server;
use ferry_common::proto::RaftBytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

#[derive(Clone, Default)]
pub struct Network {
    tls: Option<ClientTlsConfig>,
}

impl Network {
    pub fn new(tls: Option<&crate::server::ServerTls>) -> anyhow::Result<Network> {
        let Some(t) = tls else {
            return Ok(Network { tls: None });
        };
        let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Ok(Network {
            tls: Some(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(&t.ca)?))
                    .identity(Identity::from_pem(read(&t.cert)?, read(&t.key)?)),
            ),
        })
    }
}

pub struct Peer {
    addr: String,
    tls: Option<ClientTlsConfig>,
    client: Option<RaftClient<Channel>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            addr: node.addr.clone(),
            tls: self.tls.clone(),
            client: None,
        }
    }
}

impl Peer {
    async fn call<Req, Resp, E>(&mut self, method: &str, req: &Req) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error,
    {
        let client = match &mut self.client {
            Some(c) => c,
            None => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                let url = if self.addr.starts_with("http") {
                    self.addr.clone()
                } else {
                    format!("{scheme}://{}", self.addr)
                };
                let mut ep = Channel::from_shared(url).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                if let Some(tls) = &self.tls {
                    ep = ep
                        .tls_config(tls.clone())
                        .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                }
                let ch = ep.connect_lazy();
                self.client.insert(RaftClient::new(ch))
            }
        };
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let msg = RaftBytes { data };
        let res = match method {
            "append" => client.append_entries(msg).await,
            "vote" => client.vote(msg).await,
            _ => client.install_snapshot(msg).await,
        };
        let reply = match res {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::Unavailable => {
                self.client = None;
                return Err(RPCError::Unreachable(Unreachable::new(&s)));
            }
            Err(s) => return Err(RPCError::Network(NetworkError::new(&s))),
        };
        let r: Result<Resp, String> =
            serde_json::from_slice(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        r.map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("append", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call("snapshot", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("vote", &rpc).await
    }
}

/// Server half: hands incoming RPCs to the local Raft node. Errors travel
/// back inside the reply as `Err(String)`.
pub struct RaftService {
    pub raft: Raft,
}

fn decode<T: DeserializeOwned>(b: &RaftBytes) -> Result<T, tonic::Status> {
    serde_json::from_slice(&b.data).map_err(|e| tonic::Status::invalid_argument(format!("raft message: {e}")))
}

fn encode<T: Serialize, E: std::fmt::Display>(r: Result<T, E>) -> Result<tonic::Response<RaftBytes>, tonic::Status> {
    let r = r.map_err(|e| e.to_string());
    let data = serde_json::to_vec(&r).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(RaftBytes { data }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: tonic::Request<RaftBytes>,
    ) -> Result<tonic::Response<RaftBytes>, tonic::Status> {
        let rpc = decode(req.get_ref())?;
        encode(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: tonic::Request<RaftBytes>) -> Result<tonic::Response<RaftBytes>, tonic::Status> {
        let rpc = decode(req.get_ref())?;
        encode(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<RaftBytes>,
    ) -> Result<tonic::Response<RaftBytes>, tonic::Status> {
        let rpc = decode(req.get_ref())?;
        encode(self.raft.install_snapshot(rpc).await)
    }
}
