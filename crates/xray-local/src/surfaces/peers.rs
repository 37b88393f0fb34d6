//! Who is asking: the process or host behind a `SamplingTargets` request,
//! shared by the surfaces that answer it.

use std::net::SocketAddr;

use serde_json::Value;

use crate::procfs;
use crate::state::App;
use crate::state::clients::{self, Owner};

/// The process (or host) behind a `SamplingTargets` request, looked up
/// while its connection is open, unless every client it reports for is
/// known already.
pub async fn requester(app: &App, peer: SocketAddr, body: &[u8]) -> Option<Owner> {
    let ids: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let docs = v.get("SamplingStatisticsDocuments")?.as_array()?.clone();
            Some(
                docs.iter()
                    .filter_map(|d| d.get("ClientID")?.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return None;
    }
    {
        let clients = app.clients();
        let known: Vec<Option<Owner>> = ids.iter().map(|id| clients.owner_of(id)).collect();
        if let Some(Some(first)) = known.first()
            && known.iter().all(|k| k.as_ref() == Some(first))
        {
            return Some(first.clone());
        }
    }
    tokio::task::spawn_blocking(move || clients::sampling_peer_owner(peer, &procfs::socket_owner))
        .await
        .ok()
        .flatten()
}
