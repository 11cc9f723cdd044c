//! The front end against real one-node groups over TCP, each running a minimal key-value
//! service (not a mock of the node: the node, its client edge and its refusals are the real
//! ones; only the replication strategy is reduced to "apply and answer").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use viewsync::config::NodeConfig;
use viewsync::runtime::{Node, NodeHandle, ServiceEvent, TakeSnapshot};
use viewsync::wire::Refusal;
use viewsync::GroupName;

use super::{FrontEnd, FrontEndConfig, FrontEndError};
use crate::replication::{decode_request, encode, Reply, RequestId};
use crate::state_machine::bank::{Bank, BankOp};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};
use crate::state_machine::StateMachine;

/// Applies every request to a `KvStore` at once and answers it; a retransmitted request id
/// is answered from the table of answers, not applied again.
struct KvService {
    node: NodeHandle,
    store: KvStore,
    position: u64,
    answers: HashMap<RequestId, Reply<KvOutput>>,
}

impl Actor for KvService {
    type Context = Context<Self>;
}

impl Handler<ServiceEvent> for KvService {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Context<Self>) {
        let ServiceEvent::Request(request) = event else {
            return;
        };
        let outcome = decode_request::<KvOp>(&request.payload, "kv").map(|r| {
            let reply = self.answers.entry(r.id).or_insert_with(|| {
                if !KvStore::is_read_only(&r.op) {
                    self.position += 1;
                }
                Reply {
                    id: r.id,
                    position: self.position,
                    output: self.store.apply(&r.op),
                    causal: None,
                }
            });
            encode(reply)
        });
        self.node.reply(request.group, request.reply, outcome);
    }
}

impl Handler<TakeSnapshot> for KvService {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.store.snapshot())
    }
}

/// Refuses every request, naming `primary` as the primary.
struct Redirect {
    node: NodeHandle,
    primary: SocketAddr,
}

impl Actor for Redirect {
    type Context = Context<Self>;
}

impl Handler<ServiceEvent> for Redirect {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Context<Self>) {
        if let ServiceEvent::Request(request) = event {
            let refusal = Refusal::NotPrimary {
                primary: Some(self.primary),
            };
            self.node.reply(request.group, request.reply, Err(refusal));
        }
    }
}

impl Handler<TakeSnapshot> for Redirect {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Bytes::new())
    }
}

fn group() -> GroupName {
    GroupName::new("kv").unwrap()
}

/// A node founding group `kv` alone, listening on a free port.
async fn node(id: u64) -> NodeHandle {
    let config = NodeConfig::parse(
        &format!("node_id = {id}\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n"),
        std::path::Path::new("inline.toml"),
    )
    .unwrap();
    Node::spawn(config).await.unwrap()
}

/// A one-node group `kv` running the key-value service. The front end is not told to wait
/// for the group to form: until it has, the node refuses (`NotMember`, `Busy`) and the front
/// end retries.
async fn kv_node(id: u64) -> NodeHandle {
    let node = node(id).await;
    let service = KvService {
        node: node.clone(),
        store: KvStore::new(),
        position: 0,
        answers: HashMap::new(),
    }
    .start();
    node.register_service(group(), service).await.unwrap();
    node.join(group()).await.unwrap();
    node
}

/// An address nothing listens on (bound, then released).
fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn config(seeds: Vec<SocketAddr>, machine: &str) -> FrontEndConfig {
    let mut config = FrontEndConfig::new(group(), seeds, machine);
    config.deadline = Duration::from_secs(10);
    config
}

#[actix_rt::test]
async fn a_put_then_a_get_return_the_value() {
    let node = kv_node(1).await;
    let mut fe = FrontEnd::<KvStore>::new(config(vec![node.me().addr], "kv"));
    let client = fe.client_id();
    assert_eq!(fe.next_request_id(), RequestId { client, seq: 1 });
    assert_eq!(
        fe.call(KvOp::put("x", "1")).await.unwrap(),
        KvOutput::Written
    );
    assert_eq!(fe.last_position(), 1);
    assert_eq!(fe.call(KvOp::get("x")).await.unwrap(), KvOutput::value("1"));
    assert_eq!(
        fe.call(KvOp::cas("x", Some("0"), "2")).await.unwrap(),
        KvOutput::CasMismatch {
            current: Some("1".into())
        }
    );
    assert_eq!(
        fe.call(KvOp::get("y")).await.unwrap(),
        KvOutput::Value(None)
    );
    assert_eq!(fe.client_id(), client);
    assert_eq!(fe.next_request_id(), RequestId { client, seq: 5 });
    assert_eq!(fe.last_position(), 2);
    assert_eq!(fe.policy().primary(), Some(node.me().addr));
    // One connection, reused for the resolution and every request.
    assert_eq!(fe.clients.len(), 1);
}

#[actix_rt::test]
async fn a_request_for_another_machine_is_refused_as_malformed() {
    let node = kv_node(1).await;
    let mut fe = FrontEnd::<Bank>::new(config(vec![node.me().addr], "bank"));
    let error = fe.call(BankOp::set("a", 3)).await.unwrap_err();
    assert!(
        matches!(error, FrontEndError::Refused(Refusal::Malformed(_))),
        "{error}"
    );
    assert!(!error.outcome_unknown());
    assert!(
        error.to_string().starts_with("refused by the group: "),
        "{error}"
    );
}

#[actix_rt::test]
async fn a_dead_seed_first_is_passed_over() {
    let node = kv_node(1).await;
    let dead = dead_address();
    let mut fe = FrontEnd::<KvStore>::new(config(vec![dead, node.me().addr], "kv"));
    assert_eq!(
        fe.call(KvOp::put("k", "v")).await.unwrap(),
        KvOutput::Written
    );
    assert_eq!(fe.call(KvOp::get("k")).await.unwrap(), KvOutput::value("v"));
}

#[actix_rt::test]
async fn only_a_dead_address_is_unavailable_after_the_deadline() {
    let dead = dead_address();
    let mut config = config(vec![dead], "kv");
    config.deadline = Duration::from_millis(300);
    let mut fe = FrontEnd::<KvStore>::new(config);
    let error = fe.call(KvOp::put("k", "v")).await.unwrap_err();
    let FrontEndError::Unavailable {
        ref tried,
        attempts,
        ..
    } = error
    else {
        panic!("expected Unavailable, got {error}")
    };
    assert_eq!(tried, &vec![dead]);
    assert!(attempts >= 1);
    assert!(error.outcome_unknown());
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("no member of group kv reachable through {dead} (")),
        "{text}"
    );
}

#[actix_rt::test]
async fn a_not_primary_hint_is_followed_to_the_primary() {
    let primary = kv_node(1).await;
    // Another one-node group of the same name, whose member names the first as the primary.
    let backup = node(2).await;
    let redirect = Redirect {
        node: backup.clone(),
        primary: primary.me().addr,
    }
    .start();
    backup.register_service(group(), redirect).await.unwrap();
    backup.join(group()).await.unwrap();

    let mut fe = FrontEnd::<KvStore>::new(config(vec![backup.me().addr], "kv"));
    assert_eq!(
        fe.call(KvOp::put("h", "1")).await.unwrap(),
        KvOutput::Written
    );
    assert_eq!(fe.policy().primary(), Some(primary.me().addr));
    assert_eq!(fe.call(KvOp::get("h")).await.unwrap(), KvOutput::value("1"));
}

#[actix_rt::test]
async fn the_client_commands_print_their_results() {
    use crate::client_cli::{execute, exit_code, BankCommand, ClientCommand, EXIT_REFUSED};
    use clap::Parser;

    /// `viewsync client`'s operations, parsed as on the command line.
    #[derive(Parser)]
    struct Words {
        #[command(subcommand)]
        command: ClientCommand,
    }
    let node = kv_node(1).await;
    let config = config(vec![node.me().addr], "kv");
    let run = |words: &str| {
        let command = Words::parse_from(std::iter::once("client").chain(words.split(' '))).command;
        let config = config.clone();
        async move { execute(config, &command).await.unwrap() }
    };
    assert_eq!(run("get a").await, "absent");
    assert_eq!(run("cas a - 1").await, "ok");
    assert_eq!(run("cas a - 2").await, "cas failed: current=1");
    assert_eq!(run("put a 3").await, "ok");
    assert_eq!(run("get a").await, "value=3");
    assert_eq!(run("delete a").await, "deleted");
    assert_eq!(run("delete a").await, "absent");
    // A bank command against the key-value group: refused, executed nowhere.
    let bank = ClientCommand::Bank(BankCommand::Get {
        account: "x".into(),
    });
    let error = execute(config.clone(), &bank).await.unwrap_err();
    assert_eq!(exit_code(&error), EXIT_REFUSED, "{error}");
}
