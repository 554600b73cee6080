//! `memphis_fast._core`: the pyo3 binding of `memphis-proto`. This file only wires modules.

use pyo3::prelude::*;

mod core;
mod errors;
mod msg;
mod result;
mod util;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "PARTITION_KEY_SEED",
        memphis_proto::murmur::PARTITION_KEY_SEED,
    )?;
    m.add(
        "DEFAULT_PENDING_LIMIT",
        memphis_proto::conn::DEFAULT_PENDING_LIMIT,
    )?;
    for (name, v) in [
        ("F_MSGS", core::F_MSGS),
        ("F_OUTCOMES", core::F_OUTCOMES),
        ("F_FAILURES", core::F_FAILURES),
        ("F_PROGRESS", core::F_PROGRESS),
        ("F_EVENTS", core::F_EVENTS),
        ("F_WRITE", core::F_WRITE),
        ("F_TIMER", core::F_TIMER),
        ("EV_INFO", core::EV_INFO),
        ("EV_ERR", core::EV_ERR),
        ("EV_PONG", core::EV_PONG),
        ("EV_BATCH", core::EV_BATCH),
        ("EV_PULL_END", core::EV_PULL_END),
        ("ACK", core::ACK),
        ("NAK", core::NAK),
        ("NAK_DELAY", core::NAK_DELAY),
        ("IN_PROGRESS", core::IN_PROGRESS),
        ("TERM", core::TERM),
        ("STATE_DISCONNECTED", core::STATE_DISCONNECTED),
        ("STATE_HANDSHAKING", core::STATE_HANDSHAKING),
        ("STATE_CONNECTED", core::STATE_CONNECTED),
        ("STATE_CLOSED", core::STATE_CLOSED),
    ] {
        m.add(name, v)?;
    }
    // Rules both languages need, defined once here.
    m.add("PULL_GRACE_MS", memphis_proto::conn::PULL_GRACE_MS)?;
    m.add(
        "HEARTBEAT_GRACE_MS",
        memphis_proto::conn::HEARTBEAT_GRACE_MS,
    )?;
    m.add(
        "PULL_DEFAULT_WAIT_MS",
        memphis_proto::conn::PULL_DEFAULT_WAIT_MS,
    )?;
    m.add("DEFAULT_MAX_INFLIGHT", core::DEFAULT_MAX_INFLIGHT)?;
    m.add(
        "DEFAULT_MAX_INFLIGHT_BYTES",
        core::DEFAULT_MAX_INFLIGHT_BYTES,
    )?;
    m.add_class::<core::Core>()?;
    m.add_class::<msg::Msg>()?;
    m.add_class::<result::ProduceResult>()?;
    m.add_class::<result::OutcomeKind>()?;
    m.add_class::<result::OutcomeReason>()?;
    m.add_class::<core::PullEnd>()?;
    m.add_class::<util::Partitioner>()?;
    m.add_function(wrap_pyfunction!(util::murmur3, m)?)?;
    m.add_function(wrap_pyfunction!(util::encode_header_lines, m)?)?;
    m.add_function(wrap_pyfunction!(util::parse_header_block, m)?)?;
    m.add_function(wrap_pyfunction!(util::parse_ack_subject, m)?)?;
    m.add_function(wrap_pyfunction!(util::payload_kinds, m)?)?;
    m.add("PAYLOADS_BYTES", util::PAYLOADS_BYTES)?;
    m.add("PAYLOADS_OTHER", util::PAYLOADS_OTHER)?;
    m.add("PAYLOADS_NONE", util::PAYLOADS_NONE)?;
    Ok(())
}
