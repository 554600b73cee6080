//! `ProduceResult`: the outcome of one message of a batch publish, created in Rust when the
//! acknowledgement arrives (one small object per message, no intermediate tuple).

use pyo3::prelude::*;
use pyo3::types::PyString;

pub const KIND_STORED: u8 = 0;
pub const KIND_NOT_STORED: u8 = 1;
pub const KIND_UNKNOWN: u8 = 2;
pub const KIND_NOT_SENT: u8 = 3;
pub const KIND_REJECTED: u8 = 4;

const KIND_NAMES: [&str; 5] = ["stored", "not_stored", "unknown", "not_sent", "rejected"];

fn kind_from_name(name: &str) -> PyResult<u8> {
    KIND_NAMES
        .iter()
        .position(|k| *k == name)
        .map(|p| p as u8)
        .ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "kind must be one of {KIND_NAMES:?}, not {name:?}"
            ))
        })
}

/// The outcome of one message of `Producer.produce_batch`.
#[pyclass(module = "memphis_fast._core", frozen, freelist = 1024)]
pub struct ProduceResult {
    /// The producer's count of messages before this one.
    #[pyo3(get)]
    pub index: u64,
    #[pyo3(get)]
    pub msg_id: Option<Py<PyAny>>,
    pub kind: u8,
    #[pyo3(get)]
    pub stream: Option<Py<PyString>>,
    #[pyo3(get)]
    pub sequence: Option<u64>,
    #[pyo3(get)]
    pub duplicate: bool,
    #[pyo3(get)]
    pub error: Option<String>,
    #[pyo3(get)]
    pub code: u16,
    #[pyo3(get)]
    pub err_code: u32,
}

/// Every field, comparable (for `__eq__`).
type Key = (
    u64,
    String,
    u8,
    String,
    Option<u64>,
    bool,
    Option<String>,
    u16,
    u32,
);

impl ProduceResult {
    fn key(&self, py: Python<'_>) -> PyResult<Key> {
        let s = |o: &Option<Py<PyAny>>| -> PyResult<String> {
            Ok(match o {
                Some(v) => v.bind(py).repr()?.to_string(),
                None => "None".into(),
            })
        };
        Ok((
            self.index,
            s(&self.msg_id)?,
            self.kind,
            self.stream
                .as_ref()
                .map_or_else(String::new, |p| p.bind(py).to_string()),
            self.sequence,
            self.duplicate,
            self.error.clone(),
            self.code,
            self.err_code,
        ))
    }
}

#[pymethods]
impl ProduceResult {
    #[new]
    #[pyo3(signature = (index, msg_id, stored, kind, stream = None, sequence = None, duplicate = false, error = None, code = 0, err_code = 0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        index: u64,
        msg_id: Option<Py<PyAny>>,
        stored: bool,
        kind: &str,
        stream: Option<Py<PyString>>,
        sequence: Option<u64>,
        duplicate: bool,
        error: Option<String>,
        code: u16,
        err_code: u32,
    ) -> PyResult<Self> {
        let kind = kind_from_name(kind)?;
        if stored != (kind == KIND_STORED) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "stored must be True exactly when kind is 'stored'",
            ));
        }
        Ok(ProduceResult {
            index,
            msg_id,
            kind,
            stream,
            sequence,
            duplicate,
            error,
            code,
            err_code,
        })
    }

    /// True when the broker stored the message.
    #[getter]
    fn stored(&self) -> bool {
        self.kind == KIND_STORED
    }

    /// `"stored"`, `"not_stored"`, `"unknown"`, `"not_sent"` or `"rejected"` (refused before
    /// sending: schema, size).
    #[getter]
    fn kind(&self) -> &'static str {
        KIND_NAMES[self.kind as usize]
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<ProduceResult>() {
            Ok(o) => Ok(self.key(py)? == o.get().key(py)?),
            Err(_) => Ok(false),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let msg_id = match &self.msg_id {
            Some(v) => v.bind(py).repr()?.to_string(),
            None => "None".into(),
        };
        Ok(match self.kind {
            KIND_STORED => format!(
                "ProduceResult(index={}, msg_id={msg_id}, stored, stream={:?}, sequence={}, duplicate={})",
                self.index,
                self.stream.as_ref().map_or_else(String::new, |s| s.bind(py).to_string()),
                self.sequence.unwrap_or(0),
                if self.duplicate { "True" } else { "False" }
            ),
            _ => format!(
                "ProduceResult(index={}, msg_id={msg_id}, {}, error={:?}, code={}, err_code={})",
                self.index,
                KIND_NAMES[self.kind as usize],
                self.error.as_deref().unwrap_or(""),
                self.code,
                self.err_code
            ),
        })
    }
}
