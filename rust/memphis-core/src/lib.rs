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
        ("EV_INFO", core::EV_INFO),
        ("EV_ERR", core::EV_ERR),
        ("EV_PONG", core::EV_PONG),
        ("EV_BATCH", core::EV_BATCH),
        ("EV_PULL_END", core::EV_PULL_END),
        ("K_STORED", core::K_STORED),
        ("K_NOT_STORED", core::K_NOT_STORED),
        ("K_UNKNOWN", core::K_UNKNOWN),
        ("K_NOT_SENT", core::K_NOT_SENT),
    ] {
        m.add(name, v)?;
    }
    m.add("ACK", 0u32)?;
    m.add("NAK", 1u32)?;
    m.add("NAK_DELAY", 2u32)?;
    m.add("IN_PROGRESS", 3u32)?;
    m.add("TERM", 4u32)?;
    m.add_class::<core::Core>()?;
    m.add_class::<msg::Msg>()?;
    m.add_class::<result::ProduceResult>()?;
    m.add_class::<util::Partitioner>()?;
    m.add_function(wrap_pyfunction!(util::murmur3, m)?)?;
    m.add_function(wrap_pyfunction!(util::encode_header_lines, m)?)?;
    m.add_function(wrap_pyfunction!(util::parse_header_block, m)?)?;
    m.add_function(wrap_pyfunction!(util::parse_ack_subject, m)?)?;
    Ok(())
}
