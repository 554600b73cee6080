//! The typed outcome of one produced message, the only shape in which an outcome crosses the
//! boundary: `ProduceResult`, with its kind and its reason as enums (`OutcomeKind`,
//! `OutcomeReason`). Created in Rust when the acknowledgement (or the failure) is known: one
//! small object per message, no intermediate tuple.

use memphis_proto::{NotSentReason, Outcome, UnknownReason};
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

/// What became of a message.
#[pyclass(module = "memphis_fast._core", frozen, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// Stored by JetStream (`stream`, `sequence`, `duplicate` say where).
    #[pyo3(name = "STORED")]
    Stored = 0,
    /// Refused by the broker (see the reason and `err_code`).
    #[pyo3(name = "NOT_STORED")]
    NotStored = 1,
    /// Written to a live connection; no acknowledgement came. It may be stored.
    #[pyo3(name = "UNKNOWN")]
    Unknown = 2,
    /// Never left this process; it will never be sent.
    #[pyo3(name = "NOT_SENT")]
    NotSent = 3,
    /// Refused before sending (schema, size, a bad msg_id).
    #[pyo3(name = "REJECTED")]
    Rejected = 4,
}

const KIND_NAMES: [&str; 5] = ["stored", "not_stored", "unknown", "not_sent", "rejected"];

impl OutcomeKind {
    fn name(self) -> &'static str {
        KIND_NAMES[self as usize]
    }

    fn from_name(name: &str) -> PyResult<Self> {
        Ok(match name {
            "stored" => OutcomeKind::Stored,
            "not_stored" => OutcomeKind::NotStored,
            "unknown" => OutcomeKind::Unknown,
            "not_sent" => OutcomeKind::NotSent,
            "rejected" => OutcomeKind::Rejected,
            _ => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "kind must be one of {KIND_NAMES:?}, not {name:?}"
                )))
            }
        })
    }
}

#[pymethods]
impl OutcomeKind {
    /// The kind's name: `"stored"`, `"not_stored"`, `"unknown"`, `"not_sent"`, `"rejected"`.
    #[getter]
    fn value(&self) -> &'static str {
        self.name()
    }

    fn __str__(&self) -> &'static str {
        self.name()
    }

    /// Equal to itself and to its name (`kind == "stored"` keeps working), hashed like its
    /// name.
    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let same = other.extract::<Self>().ok().map(|o| o == *self);
        compare_named(py, KIND_NAMES[*self as usize], same, other, op)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyString::new(py, KIND_NAMES[*self as usize]).hash()
    }

    fn __repr__(&self) -> String {
        format!(
            "<OutcomeKind.{}>",
            KIND_NAMES[*self as usize].to_uppercase()
        )
    }
}

/// `==` / `!=` of an outcome enum: `same` when `other` is of its own type, else by `name`.
fn compare_named(
    py: Python<'_>,
    name: &str,
    same: Option<bool>,
    other: &Bound<'_, PyAny>,
    op: CompareOp,
) -> PyResult<Py<PyAny>> {
    let eq = match same {
        Some(eq) => eq,
        None => match other.cast::<PyString>() {
            Ok(s) => s.to_str()? == name,
            Err(_) => return Ok(py.NotImplemented()),
        },
    };
    Ok(match op {
        CompareOp::Eq => eq.into_pyobject(py)?.to_owned().into_any().unbind(),
        CompareOp::Ne => (!eq).into_pyobject(py)?.to_owned().into_any().unbind(),
        _ => py.NotImplemented(),
    })
}

/// Why a message ended as it did.
#[pyclass(module = "memphis_fast._core", frozen, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeReason {
    /// Stored: nothing went wrong.
    #[pyo3(name = "NONE")]
    None = 0,
    /// Unknown: no acknowledgement within the message's ack wait.
    #[pyo3(name = "ACK_TIMEOUT")]
    AckTimeout = 1,
    /// Unknown: the connection dropped after the message was written to it.
    #[pyo3(name = "CONNECTION_LOST")]
    ConnectionLost = 2,
    /// Not sent: the connection was closed while the message was still buffered.
    #[pyo3(name = "CLOSED_BEFORE_SENDING")]
    ClosedBeforeSending = 3,
    /// Not stored: no stream listens on the subject (NATS 503 "no responders").
    #[pyo3(name = "NO_RESPONDERS")]
    NoResponders = 4,
    /// Not stored: JetStream refused it (`code`, `err_code`, `error` say why).
    #[pyo3(name = "JETSTREAM_ERROR")]
    JetStreamError = 5,
    /// Rejected before sending.
    #[pyo3(name = "REJECTED")]
    Rejected = 6,
    /// Not sent: its ack wait ran out while no live connection had taken it (the connection
    /// was down); it was taken out of the buffer and will never be sent. Safe to retry.
    #[pyo3(name = "EXPIRED_BEFORE_SENDING")]
    ExpiredBeforeSending = 7,
    /// Unknown: a clustered stream answered that it holds the message id for a store still in
    /// process, and never confirmed it within the ack wait (the store may yet have been lost).
    #[pyo3(name = "DUPLICATE_IN_PROCESS")]
    DuplicateInProcess = 8,
}

const REASON_NAMES: [&str; 9] = [
    "none",
    "ack_timeout",
    "connection_lost",
    "closed_before_sending",
    "no_responders",
    "jetstream_error",
    "rejected",
    "expired_before_sending",
    "duplicate_in_process",
];

#[pymethods]
impl OutcomeReason {
    #[getter]
    fn value(&self) -> &'static str {
        REASON_NAMES[*self as usize]
    }

    fn __str__(&self) -> &'static str {
        REASON_NAMES[*self as usize]
    }

    /// Equal to itself and to its name (`kind == "stored"` keeps working), hashed like its
    /// name.
    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let same = other.extract::<Self>().ok().map(|o| o == *self);
        compare_named(py, REASON_NAMES[*self as usize], same, other, op)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyString::new(py, REASON_NAMES[*self as usize]).hash()
    }

    fn __repr__(&self) -> String {
        format!(
            "<OutcomeReason.{}>",
            REASON_NAMES[*self as usize].to_uppercase()
        )
    }
}

/// The outcome of one produced message (awaited `produce`, `produce_batch`, failures of
/// nonblocking produces).
#[pyclass(module = "memphis_fast._core", frozen, freelist = 1024)]
pub struct ProduceResult {
    /// The producer's count of messages before this one.
    #[pyo3(get)]
    pub index: u64,
    #[pyo3(get)]
    pub msg_id: Option<Py<PyAny>>,
    pub kind: OutcomeKind,
    pub reason: OutcomeReason,
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
    /// The station (the producer's label of its group), or `None`.
    #[pyo3(get)]
    pub station: Option<Py<PyString>>,
    /// True when the broker stored the message (`kind == "stored"`). A `Py` field of a frozen
    /// class: read through a member descriptor, without the call a `#[getter]` costs (about
    /// 100 instructions per `r.stored`, the test every caller of `produce_batch` makes).
    #[pyo3(get)]
    pub stored: Py<PyBool>,
}

fn py_bool(py: Python<'_>, b: bool) -> Py<PyBool> {
    PyBool::new(py, b).to_owned().unbind()
}

pub(crate) const NOT_SENT: &str = "the connection was closed before the message was sent";
const EXPIRED_UNSENT: &str = "its ack wait ran out before a live connection took it (the connection was down); it was never sent and never will be";

fn unknown_text(r: UnknownReason) -> &'static str {
    match r {
        UnknownReason::AckTimeout => "no acknowledgement within the ack wait",
        UnknownReason::ConnectionLost => "the connection was lost after the message was sent",
        UnknownReason::DuplicateInProcess => {
            "the stream answered that a store of this msg_id was still in process and never confirmed it within the ack wait"
        }
    }
}

impl ProduceResult {
    /// The result for a finished publish. `stream` is the Python string of the stream name
    /// (callers may share one object between results).
    #[inline]
    pub fn from_outcome(
        py: Python<'_>,
        index: u64,
        msg_id: Option<Py<PyAny>>,
        o: &Outcome,
        stream: Option<Py<PyString>>,
        station: Option<Py<PyString>>,
    ) -> Self {
        let mut r = ProduceResult {
            stored: py_bool(py, o.is_stored()),
            index,
            msg_id,
            kind: OutcomeKind::Stored,
            reason: OutcomeReason::None,
            stream: None,
            sequence: None,
            duplicate: false,
            error: None,
            code: 0,
            err_code: 0,
            station,
        };
        match o {
            Outcome::Stored { seq, duplicate, .. } => {
                r.stream = stream;
                r.sequence = Some(*seq);
                r.duplicate = *duplicate;
            }
            Outcome::NotStored {
                code,
                err_code,
                description,
            } => {
                r.kind = OutcomeKind::NotStored;
                r.reason = if *code == 503 && *err_code == 0 {
                    OutcomeReason::NoResponders
                } else {
                    OutcomeReason::JetStreamError
                };
                r.error = Some(description.clone());
                r.code = *code;
                r.err_code = *err_code;
            }
            Outcome::Unknown(u) => {
                r.kind = OutcomeKind::Unknown;
                r.reason = match u {
                    UnknownReason::AckTimeout => OutcomeReason::AckTimeout,
                    UnknownReason::ConnectionLost => OutcomeReason::ConnectionLost,
                    UnknownReason::DuplicateInProcess => OutcomeReason::DuplicateInProcess,
                };
                r.error = Some(unknown_text(*u).to_owned());
            }
            Outcome::NotSent(NotSentReason::Closed) => {
                r.kind = OutcomeKind::NotSent;
                r.reason = OutcomeReason::ClosedBeforeSending;
                r.error = Some(NOT_SENT.to_owned());
            }
            Outcome::NotSent(NotSentReason::Expired) => {
                r.kind = OutcomeKind::NotSent;
                r.reason = OutcomeReason::ExpiredBeforeSending;
                r.error = Some(EXPIRED_UNSENT.to_owned());
            }
        }
        r
    }

    /// A message refused before it was sent.
    pub fn rejected(
        py: Python<'_>,
        index: u64,
        msg_id: Option<Py<PyAny>>,
        error: String,
        station: Option<Py<PyString>>,
    ) -> Self {
        ProduceResult {
            stored: py_bool(py, false),
            index,
            msg_id,
            kind: OutcomeKind::Rejected,
            reason: OutcomeReason::Rejected,
            stream: None,
            sequence: None,
            duplicate: false,
            error: Some(error),
            code: 0,
            err_code: 0,
            station,
        }
    }

    fn key(&self, py: Python<'_>) -> PyResult<Key> {
        let s = |o: &Option<Py<PyAny>>| -> PyResult<String> {
            Ok(match o {
                Some(v) => v.bind(py).repr()?.to_string(),
                None => "None".into(),
            })
        };
        let st = |o: &Option<Py<PyString>>| o.as_ref().map(|p| p.bind(py).to_string());
        Ok((
            self.index,
            s(&self.msg_id)?,
            (self.kind as u8, self.reason as u8),
            st(&self.stream),
            self.sequence,
            self.duplicate,
            self.error.clone(),
            (self.code, self.err_code),
            st(&self.station),
        ))
    }
}

/// Every field, comparable (for `__eq__`).
type Key = (
    u64,
    String,
    (u8, u8),
    Option<String>,
    Option<u64>,
    bool,
    Option<String>,
    (u16, u32),
    Option<String>,
);

#[pymethods]
impl ProduceResult {
    #[new]
    #[pyo3(signature = (index, msg_id, stored, kind, stream = None, sequence = None, duplicate = false, error = None, code = 0, err_code = 0, reason = None, station = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        index: u64,
        msg_id: Option<Py<PyAny>>,
        stored: bool,
        kind: &Bound<'_, PyAny>,
        stream: Option<Py<PyString>>,
        sequence: Option<u64>,
        duplicate: bool,
        error: Option<String>,
        code: u16,
        err_code: u32,
        reason: Option<OutcomeReason>,
        station: Option<Py<PyString>>,
    ) -> PyResult<Self> {
        let kind = match kind.extract::<OutcomeKind>() {
            Ok(k) => k,
            Err(_) => OutcomeKind::from_name(kind.extract::<&str>()?)?,
        };
        if stored != (kind == OutcomeKind::Stored) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "stored must be True exactly when kind is 'stored'",
            ));
        }
        let reason = reason.unwrap_or(match kind {
            OutcomeKind::Stored => OutcomeReason::None,
            OutcomeKind::NotStored if code == 503 && err_code == 0 => OutcomeReason::NoResponders,
            OutcomeKind::NotStored => OutcomeReason::JetStreamError,
            OutcomeKind::Unknown => OutcomeReason::AckTimeout,
            OutcomeKind::NotSent => OutcomeReason::ClosedBeforeSending,
            OutcomeKind::Rejected => OutcomeReason::Rejected,
        });
        Ok(ProduceResult {
            stored: py_bool(py, stored),
            index,
            msg_id,
            kind,
            reason,
            stream,
            sequence,
            duplicate,
            error,
            code,
            err_code,
            station,
        })
    }

    /// What became of the message (an `OutcomeKind`; `str()` gives its name).
    #[getter]
    fn kind(&self) -> OutcomeKind {
        self.kind
    }

    /// Why (an `OutcomeReason`).
    #[getter]
    fn reason(&self) -> OutcomeReason {
        self.reason
    }

    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let eq = match other.cast::<ProduceResult>() {
            Ok(o) => self.key(py)? == o.get().key(py)?,
            Err(_) => return Ok(py.NotImplemented()),
        };
        Ok(match op {
            CompareOp::Eq => eq.into_pyobject(py)?.to_owned().into_any().unbind(),
            CompareOp::Ne => (!eq).into_pyobject(py)?.to_owned().into_any().unbind(),
            _ => py.NotImplemented(),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let msg_id = match &self.msg_id {
            Some(v) => v.bind(py).repr()?.to_string(),
            None => "None".into(),
        };
        Ok(match self.kind {
            OutcomeKind::Stored => format!(
                "ProduceResult(index={}, msg_id={msg_id}, stored, stream={:?}, sequence={}, duplicate={})",
                self.index,
                self.stream.as_ref().map_or_else(String::new, |s| s.bind(py).to_string()),
                self.sequence.unwrap_or(0),
                if self.duplicate { "True" } else { "False" }
            ),
            k => format!(
                "ProduceResult(index={}, msg_id={msg_id}, {}, reason={}, error={:?}, code={}, err_code={})",
                self.index,
                k.name(),
                REASON_NAMES[self.reason as usize],
                self.error.as_deref().unwrap_or(""),
                self.code,
                self.err_code
            ),
        })
    }
}
