//! The simulator runs any service core that implements `SimulatedService`, through the same
//! service edge as the node actor: here the replicated sum (`CounterService`) instead of the
//! log service, under the same seeded faults and checkers (view synchrony, state transfer,
//! final agreement of every member's state).

use crate::sweep::{configure, seeds, Sweep};
use viewsync::sim::service::{CounterService, ServiceFactory, SimulatedService};
use viewsync::sim::{SimConfig, Simulation};

#[test]
fn a_second_service_core_runs_under_the_simulator() {
    let mut sweep = Sweep::default();
    for seed in seeds(0..60) {
        let mut config = SimConfig::from_seed(seed);
        configure(&mut config);
        config.service = ServiceFactory::COUNTER;
        sweep.add(Simulation::new(config).run(), &["counter".to_string()]);
    }
    println!("{sweep}");
    assert!(
        sweep.failures.is_empty(),
        "failing seeds: {:?}",
        sweep.failures
    );
}

#[test]
fn the_counter_service_sums_its_requests_and_restores_its_snapshot() {
    use bytes::Bytes;
    use viewsync::proto::multicast::Message;
    use viewsync::proto::service_edge::ServiceEvent;
    use viewsync::sim::service::ServiceFault;
    use viewsync::{GroupName, Incarnation, NodeId, ProcessId, ViewId};

    let sender = ProcessId {
        node: NodeId(1),
        incarnation: Incarnation(1),
    };
    let deliver = |payload: Bytes| ServiceEvent::Deliver {
        group: GroupName::new("g").unwrap(),
        message: Message {
            sender,
            view: ViewId {
                epoch: 1,
                coordinator: sender,
            },
            seq: viewsync::wire::Seq(1),
            ordering: viewsync::wire::Ordering::Fifo,
            payload,
        },
    };
    let mut service = CounterService::default();
    let (a, b) = (service.request(7), service.request(9));
    assert_eq!(&a[..8], &7u64.to_le_bytes());
    service.handle(&deliver(a.clone())).unwrap();
    service.handle(&deliver(b)).unwrap();
    let sum = CounterService::amount(7) + CounterService::amount(9);
    assert_eq!(service.digest().total_chain, sum);
    assert_eq!(
        service.ids().iter().copied().collect::<Vec<_>>(),
        vec![7, 9]
    );
    assert_eq!(service.handle(&deliver(a)), Err(ServiceFault::Duplicate(7)));

    let restore = |state: Bytes| ServiceEvent::Restore {
        group: GroupName::new("g").unwrap(),
        view: ViewId {
            epoch: 2,
            coordinator: sender,
        },
        state,
        since: None,
    };
    let mut joiner = CounterService::default();
    joiner.handle(&restore(service.snapshot())).unwrap();
    assert_eq!(joiner.digest(), service.digest());
    assert!(matches!(
        joiner.handle(&restore(Bytes::new())),
        Err(ServiceFault::BadState(_))
    ));
}
