//! The protobuf contracts: the public `messaging.v1` gRPC API and the internal `messaging.bus.v1` bus messages.

#![allow(clippy::all, missing_docs, unreachable_pub)]

/// Generated modules, nested as the proto packages are so cross-package references resolve.
pub mod messaging {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/messaging.v1.rs"));
    }
    pub mod bus {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/messaging.bus.v1.rs"));
        }
    }
}

/// The public API the dashboard calls (`FeedService`) and the enums it shares with the bus.
pub use messaging::v1;

/// Messages the services exchange over NATS.
pub use messaging::bus::v1 as bus;

pub use subjects::BusMessage;

pub mod directory;
pub mod subjects;
pub mod time;

/// The encoded descriptor set of every proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
