//! `Msg`: one delivered message. Subject, reply and header block live in one allocation; the
//! payload is copied into that same allocation; the `bytes` object is created the first time
//! `data` is read (and kept), and `data_bytearray()` (memphis-py's `get_data()`) copies straight
//! from it without an intermediate `bytes`.

use memphis_proto::{header, jetstream, MsgOp};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};

#[pyclass(module = "memphis_fast._core", frozen)]
pub struct Msg {
    /// subject | reply | header block
    meta: Box<[u8]>,
    subj_end: u32,
    reply_end: u32,
    has_reply: bool,
    has_headers: bool,
    sid: u64,
    /// where the payload starts in `meta` (it runs to the end)
    payload_at: u32,
    data: PyOnceLock<Py<PyBytes>>,
}

/// Stop the cycle collector from tracking an object that cannot be part of a reference cycle.
///
/// pyo3 makes every `#[pyclass]` a GC type, so each `Msg` would be traversed by every young
/// collection it lives through (about 900 instructions per message with the stable ABI's slot
/// lookups, measured with callgrind). A `Msg` only refers to a `bytes` object and to Rust
/// memory, so it can never be in a cycle and reference counting alone frees it.
pub fn untrack<T>(obj: &Bound<'_, T>) {
    // SAFETY: `obj` is a live object we own a reference to, created by pyo3's tp_alloc for a
    // GC type (pyo3 sets Py_TPFLAGS_HAVE_GC on every pyclass). Untracking a tracked GC object
    // is always allowed; the type's tp_dealloc calls PyObject_GC_UnTrack again, which CPython
    // documents as a no-op for an untracked object. Only call this for objects whose
    // references cannot lead back to themselves.
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) }
}

impl Msg {
    /// A new `Msg` object, not tracked by the cycle collector (see [`untrack`]).
    pub fn new_untracked<'py>(py: Python<'py>, m: &MsgOp<'_>) -> PyResult<Bound<'py, Msg>> {
        let obj = Bound::new(py, Msg::from_op(py, m))?;
        untrack(&obj);
        Ok(obj)
    }

    pub fn from_op(_py: Python<'_>, m: &MsgOp<'_>) -> Msg {
        let reply = m.reply.unwrap_or(b"");
        let hdr = m.headers.unwrap_or(b"");
        let mut meta =
            Vec::with_capacity(m.subject.len() + reply.len() + hdr.len() + m.payload.len());
        meta.extend_from_slice(m.subject);
        meta.extend_from_slice(reply);
        meta.extend_from_slice(hdr);
        let payload_at = meta.len() as u32;
        meta.extend_from_slice(m.payload);
        Msg {
            subj_end: m.subject.len() as u32,
            reply_end: (m.subject.len() + reply.len()) as u32,
            has_reply: m.reply.is_some(),
            has_headers: m.headers.is_some(),
            sid: m.sid,
            payload_at,
            meta: meta.into_boxed_slice(),
            data: PyOnceLock::new(),
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.meta[self.payload_at as usize..]
    }

    pub fn subject_bytes(&self) -> &[u8] {
        &self.meta[..self.subj_end as usize]
    }

    pub fn reply_bytes(&self) -> Option<&[u8]> {
        self.has_reply
            .then(|| &self.meta[self.subj_end as usize..self.reply_end as usize])
    }

    pub fn header_block(&self) -> Option<&[u8]> {
        self.has_headers
            .then(|| &self.meta[self.reply_end as usize..self.payload_at as usize])
    }

    fn ack_meta(&self) -> Option<jetstream::AckMeta<'_>> {
        self.reply_bytes().and_then(jetstream::parse_ack_subject)
    }
}

fn text<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(b) {
        Ok(s) => PyString::new(py, s),
        Err(_) => PyString::new(py, &String::from_utf8_lossy(b)),
    }
}

#[pymethods]
impl Msg {
    /// The subject the message was published to.
    #[getter]
    fn subject<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        text(py, self.subject_bytes())
    }

    /// The reply subject (for JetStream messages: the `$JS.ACK...` subject), or `None`.
    #[getter]
    fn reply<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.reply_bytes().map(|r| text(py, r))
    }

    /// The payload, as an immutable `bytes` object (the same object on every access).
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyBytes> {
        self.data
            .get_or_init(py, || PyBytes::new(py, self.payload()).unbind())
            .clone_ref(py)
    }

    /// The payload as a new `bytearray` (memphis-py's `get_data()`), copied once.
    fn data_bytearray<'py>(&self, py: Python<'py>) -> Bound<'py, PyByteArray> {
        PyByteArray::new(py, self.payload())
    }

    #[getter]
    fn sid(&self) -> u64 {
        self.sid
    }

    /// Headers as `{name: value}`; for a repeated name the last value wins (like nats-py).
    /// `None` when the message has no headers.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(block) = self.header_block() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (k, v) in header::pairs(block) {
            d.set_item(text(py, k), text(py, v))?;
        }
        Ok(Some(d))
    }

    /// Headers as `{name: [values...]}`, every value kept in order.
    #[getter]
    fn headers_multi<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(block) = self.header_block() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (k, v) in header::pairs(block) {
            let key = text(py, k);
            match d.get_item(&key)? {
                Some(list) => list.cast_into::<PyList>()?.append(text(py, v))?,
                None => d.set_item(key, PyList::new(py, [text(py, v)])?)?,
            }
        }
        Ok(Some(d))
    }

    /// The raw header block (status line included), or `None`.
    #[getter]
    fn header_block_bytes<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.header_block().map(|b| PyBytes::new(py, b))
    }

    /// Status code of the header block (100, 404, 408, 409, 503...), 0 when there is none.
    #[getter]
    fn status(&self) -> u16 {
        self.header_block().map_or(0, |b| header::status(b).code)
    }

    /// Description of the status line ("" when there is none).
    #[getter]
    fn description<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        let d = self
            .header_block()
            .map_or(&b""[..], |b| header::status(b).description);
        text(py, d)
    }

    /// True for a JetStream delivery (its reply subject is a `$JS.ACK.` subject).
    #[getter]
    fn is_js(&self) -> bool {
        self.reply_bytes()
            .is_some_and(|r| r.starts_with(b"$JS.ACK."))
    }

    /// JetStream metadata from the reply subject:
    /// `(stream, consumer, delivered, stream_seq, consumer_seq, timestamp_ns, pending, domain)`,
    /// or `None` for a message that is not a JetStream delivery.
    #[allow(clippy::type_complexity)]
    fn metadata<'py>(
        &self,
        py: Python<'py>,
    ) -> Option<(
        Bound<'py, PyString>,
        Bound<'py, PyString>,
        u64,
        u64,
        u64,
        u64,
        u64,
        Option<Bound<'py, PyString>>,
    )> {
        let m = self.ack_meta()?;
        Some((
            text(py, m.stream),
            text(py, m.consumer),
            m.delivered,
            m.stream_seq,
            m.consumer_seq,
            m.timestamp_ns,
            m.pending,
            m.domain.map(|d| text(py, d)),
        ))
    }

    /// Stream sequence of a JetStream delivery, else `None`.
    #[getter]
    fn stream_seq(&self) -> Option<u64> {
        self.ack_meta().map(|m| m.stream_seq)
    }

    /// Delivery count of a JetStream delivery (1 the first time), else `None`.
    #[getter]
    fn delivered(&self) -> Option<u64> {
        self.ack_meta().map(|m| m.delivered)
    }

    /// When the stream stored the message, ns since the epoch, else `None`.
    #[getter]
    fn timestamp_ns(&self) -> Option<u64> {
        self.ack_meta().map(|m| m.timestamp_ns)
    }

    /// The stream a JetStream delivery came from, else `None`.
    #[getter]
    fn stream<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.ack_meta().map(|m| text(py, m.stream))
    }

    fn __len__(&self) -> usize {
        self.payload().len()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Msg subject={:?} sid={} reply={:?} headers={} len={}>",
            String::from_utf8_lossy(self.subject_bytes()),
            self.sid,
            self.reply_bytes().map(String::from_utf8_lossy),
            self.has_headers,
            self.payload().len()
        )
    }
}
