//! The memory store: the shared contract, and the bounds only it can show from the inside.

use booty_queue::MemoryStore;

use crate::contract::{Kind, Limits, Payload};

fn store(limits: Limits) -> MemoryStore<Payload> {
    MemoryStore::new(limits.retention())
}

crate::contract::store_contract_tests!(
    |limits: Limits| async move { store(limits) },
    Kind {
        durable: false,
        shared: false,
    }
);
