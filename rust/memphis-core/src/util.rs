//! Stateless helpers exposed to Python: partition routing, header encoding, JetStream
//! metadata.

use memphis_proto::{header, jetstream, murmur};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyMemoryView, PyString};

fn key_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Ok(key.str()?.to_str()?.as_bytes().to_vec())
}

/// MurmurHash3 x86 32-bit (unsigned), as `mmh3.hash(key, seed, signed=False)`.
#[pyfunction]
#[pyo3(signature = (key, seed = murmur::PARTITION_KEY_SEED))]
pub fn murmur3(key: &Bound<'_, PyAny>, seed: u32) -> PyResult<u32> {
    Ok(murmur::murmur3_x86_32(&key_bytes(key)?, seed))
}

/// Encode validated `key: value\r\n` lines (no version line, no final blank line) from a
/// dict or a list of pairs; a list value repeats the key.
#[pyfunction]
pub fn encode_header_lines<'py>(
    py: Python<'py>,
    headers: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    crate::core::header_lines(Some(headers), &mut out)?;
    Ok(PyBytes::new(py, &out))
}

/// Parse a header block: `(status_code, description, [(key, value), ...])`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn parse_header_block(block: &[u8]) -> (u16, String, Vec<(String, String)>) {
    let st = header::status(block);
    (
        st.code,
        String::from_utf8_lossy(st.description).into_owned(),
        header::pairs(block)
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
    )
}

/// Parse a JetStream ack subject:
/// `(stream, consumer, delivered, stream_seq, consumer_seq, timestamp_ns, pending, domain)`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn parse_ack_subject(
    reply: &str,
) -> Option<(String, String, u64, u64, u64, u64, u64, Option<String>)> {
    let m = jetstream::parse_ack_subject(reply.as_bytes())?;
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some((
        s(m.stream),
        s(m.consumer),
        m.delivered,
        m.stream_seq,
        m.consumer_seq,
        m.timestamp_ns,
        m.pending,
        m.domain.map(s),
    ))
}

/// Partition routing over a station's partition list: round-robin per object (starting with
/// the first partition) and murmur3 key hashing bit-exact with memphis-py.
#[pyclass(module = "memphis_fast._core")]
pub struct Partitioner {
    rr: murmur::RoundRobin,
}

#[pymethods]
impl Partitioner {
    #[new]
    fn new(partitions: Vec<u32>) -> Self {
        Partitioner {
            rr: murmur::RoundRobin::new(partitions),
        }
    }

    #[getter]
    fn partitions(&self) -> Vec<u32> {
        self.rr.partitions().to_vec()
    }

    fn __len__(&self) -> usize {
        self.rr.partitions().len()
    }

    /// The next partition in round-robin order.
    fn next(&mut self) -> PyResult<u32> {
        self.rr
            .next()
            .ok_or_else(|| PyValueError::new_err("the station has no partitions"))
    }

    /// The partition for a key: `partitions[murmur3(key, 31) % len]`.
    fn for_key(&self, key: &Bound<'_, PyAny>) -> PyResult<u32> {
        murmur::partition_for_key(&key_bytes(key)?, self.rr.partitions())
            .ok_or_else(|| PyValueError::new_err("the station has no partitions"))
    }
}

/// `payload_kinds` answers: every item is exactly a `bytes`, `bytearray` or `memoryview`.
pub const PAYLOADS_BYTES: u8 = 0;
/// Some item is of another type (encoded in Python: a str, a dict for a schema...).
pub const PAYLOADS_OTHER: u8 = 1;
/// Some item is `None`.
pub const PAYLOADS_NONE: u8 = 2;

/// One pass over `produce_batch`'s messages (any iterable): [`PAYLOADS_NONE`] if an item is `None`, else [`PAYLOADS_OTHER`] if an item is not
/// exactly bytes-like (subclasses included, so their Python code is honoured), else
/// [`PAYLOADS_BYTES`]. A type-pointer comparison per item: the Python spelling (`None in
/// messages` and `set(map(type, messages))`) cost about 250 instructions per message.
#[pyfunction]
pub fn payload_kinds(messages: &Bound<'_, PyAny>) -> PyResult<u8> {
    fn kind(item: &Bound<'_, PyAny>) -> u8 {
        if item.is_none() {
            PAYLOADS_NONE
        } else if item.is_exact_instance_of::<PyBytes>()
            || item.is_exact_instance_of::<PyByteArray>()
            || item.is_exact_instance_of::<PyMemoryView>()
        {
            PAYLOADS_BYTES
        } else {
            PAYLOADS_OTHER
        }
    }
    fn scan<'py>(items: impl Iterator<Item = PyResult<Bound<'py, PyAny>>>) -> PyResult<u8> {
        let mut out = PAYLOADS_BYTES;
        for item in items {
            out = out.max(kind(&item?));
            if out == PAYLOADS_NONE {
                break;
            }
        }
        Ok(out)
    }
    // A list (the usual argument) by index: half the instructions of the iterator protocol.
    match messages.cast::<PyList>() {
        Ok(list) => scan(list.iter().map(Ok)),
        Err(_) => scan(messages.try_iter()?),
    }
}
