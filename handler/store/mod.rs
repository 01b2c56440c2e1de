//! The portal's records in Table Storage: one module per kind of record, each converting
//! between domain values and [`Row`]s and choosing its keys for the queries the portal makes.
//!
//! | table     | PartitionKey            | RowKey                 | why                                              |
//! |-----------|-------------------------|------------------------|--------------------------------------------------|
//! | Policies  | `policy`                | policy key (domain)    | few rows, always read together (one query, cached) |
//! | Requests  | request id              | `request`              | links carry the id: point reads, ETag per request |
//! | Requests  | request id              | `submission-<id>`      | a later submission's details, for its own link   |
//! | Requests  | request id              | `mail-<id>`            | the request's mails (outbox), written with its changes |
//! | Requests  | `open-<address hash>`   | `open`                 | one open request per address, claimed by insert  |
//! | Guests    | id's first 2 characters | Graph user id          | 256 partitions; neighbours' updates in one transaction |
//! | Audit     | `YYYY-MM-DD-<0..f>`     | time + random suffix   | "since" reads whole days; 16 spread the writes  |
//! | Limits    | `<kind>-<key hash>`     | hour window number     | one counter per window, CAS-incremented          |
//! | Jobs      | job name                | `lease` / `checkpoint` | the timer's lease and resumable progress         |
//! | Demand    | email domain            | `demand`               | unadmitted sign-ups per domain, no personal data |
//! | SignIns   | the sign-in's `state`   | `pending`              | a started sign-in, taken once by its callback    |
//! | SignIns   | `code-<code hash>`      | `used`                 | an authorization code, redeemed once             |

pub mod audit;
pub mod demand;
pub mod guests;
pub mod jobs;
pub mod limits;
pub mod outbox;
pub mod policies;
pub mod requests;
pub mod sign_ins;

pub use crate::adapters::tables::{Row, StoreError, TableName, TableStore};

/// SHA-256 of a value, hex: keys derived from personal data never hold the data itself.
pub fn key_hash(value: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(value.as_bytes())[..16])
}
