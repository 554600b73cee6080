//! `Core`: the Python face of `memphis_proto::Core`.
//!
//! The asyncio protocol gives the core's receive buffer to the transport (buffer protocol:
//! `get_buffer()` returns the core itself), calls `feed(n)` with the number of bytes read,
//! and gets back a bit set saying what is ready to collect: grouped messages, publish
//! outcomes, failures of unawaited publishes, control events, bytes to write. Results are
//! grouped per call (one list per subscription, one list of outcomes), not one Python call
//! per protocol operation.

// Python-facing signatures mirror their keyword arguments one-to-one.
#![allow(clippy::too_many_arguments)]

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use memphis_proto::{
    conn, AckKind, Completed, IdMap, JsPublish, MsgId, MsgOp, Outcome, PullRequest, Sink, State,
};
use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::errors::IntoPyResult;
use crate::msg::Msg;
use crate::result::ProduceResult;

/// Encoded output (acks above all) from which [`Core::ack`] asks for a write at once: about
/// 300-400 acks. A handler that acks a whole batch without yielding then hands the server its
/// acks while it works, instead of all of them at the end of its tick.
pub const WRITE_SOON_BYTES: usize = 32 * 1024;
pub const F_MSGS: u32 = 1;
pub const F_OUTCOMES: u32 = 2;
pub const F_FAILURES: u32 = 4;
pub const F_PROGRESS: u32 = 8;
pub const F_EVENTS: u32 = 16;

pub const F_WRITE: u32 = 32;
/// A deadline earlier than the scheduled sweep may exist (a retry was scheduled): re-arm.
pub const F_TIMER: u32 = 64;

pub const EV_INFO: u32 = 1;
pub const EV_ERR: u32 = 2;
pub const EV_PONG: u32 = 3;
pub const EV_BATCH: u32 = 4;
pub const EV_PULL_END: u32 = 5;

// Acknowledgement kinds (`Core.ack`).
pub const ACK: u32 = 0;
pub const NAK: u32 = 1;
pub const NAK_DELAY: u32 = 2;
pub const IN_PROGRESS: u32 = 3;
pub const TERM: u32 = 4;

// `Core.state`.
pub const STATE_DISCONNECTED: u32 = 0;
pub const STATE_HANDSHAKING: u32 = 1;
pub const STATE_CONNECTED: u32 = 2;
pub const STATE_CLOSED: u32 = 3;

/// Default window of a producer's unacknowledged nonblocking messages (count, bytes).
pub const DEFAULT_MAX_INFLIGHT: u64 = 4096;
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 32 * 1024 * 1024;

/// One `js_publish_batch` call waiting for its outcomes.
struct Batch {
    id: u64,
    first_id: MsgId,
    /// position (in the call) of accepted message `id - first_id`
    accepted: Vec<u32>,
    /// one per position: refused ones are filled at once, the others when their ack comes
    results: Vec<Option<Py<ProduceResult>>>,
    /// the index reported for each position (the producer's message count)
    indexes: Vec<u64>,
    /// the msg_id of each position (empty when the call had none)
    msg_ids: Vec<Option<Py<PyAny>>>,
    /// the last stream name seen, shared by the results (one string per batch, not per message)
    stream: Option<(Arc<str>, Py<PyString>)>,
    /// the group's label (the station)
    station: Option<Py<PyString>>,
    remaining: usize,
}

impl Batch {
    fn result(&mut self, py: Python<'_>, pos: usize, o: &Outcome) -> PyResult<Py<ProduceResult>> {
        let msg_id = self
            .msg_ids
            .get(pos)
            .and_then(|m| m.as_ref().map(|m| m.clone_ref(py)));
        let stream = match o {
            Outcome::Stored { stream, .. } => Some(shared_py_str(py, &mut self.stream, stream)),
            _ => None,
        };
        let station = self.station.as_ref().map(|s| s.clone_ref(py));
        new_result(
            py,
            ProduceResult::from_outcome(py, self.indexes[pos], msg_id, o, stream, station),
        )
    }

    fn rejected(&mut self, py: Python<'_>, pos: usize, error: String) -> PyResult<()> {
        let msg_id = self
            .msg_ids
            .get(pos)
            .and_then(|m| m.as_ref().map(|m| m.clone_ref(py)));
        let station = self.station.as_ref().map(|s| s.clone_ref(py));
        self.results[pos] = Some(new_result(
            py,
            ProduceResult::rejected(py, self.indexes[pos], msg_id, error, station),
        )?);
        Ok(())
    }
}

/// A `ProduceResult` object, untracked by the cycle collector when it cannot be in a cycle
/// (its msg_id is `None` or a `str`: everything else it holds is a string or a number).
fn new_result(py: Python<'_>, r: ProduceResult) -> PyResult<Py<ProduceResult>> {
    let acyclic = r
        .msg_id
        .as_ref()
        .is_none_or(|m| m.bind(py).is_exact_instance_of::<PyString>());
    let obj = Bound::new(py, r)?;
    if acyclic {
        crate::msg::untrack(&obj);
    }
    Ok(obj.unbind())
}

/// The Python string of a stream name, reused while the name stays the one in `cache` (the
/// core shares one `Arc<str>` per stream, so this is mostly a pointer comparison).
fn shared_py_str(
    py: Python<'_>,
    cache: &mut Option<(Arc<str>, Py<PyString>)>,
    name: &Arc<str>,
) -> Py<PyString> {
    match cache {
        Some((s, p)) if Arc::ptr_eq(s, name) || s == name => p.clone_ref(py),
        _ => {
            let p = PyString::new(py, name).unbind();
            *cache = Some((name.clone(), p.clone_ref(py)));
            p
        }
    }
}

/// The result of a single (not batched) publish.
fn single_result(
    py: Python<'_>,
    b: &mut Buffers,
    c: &Completed,
    msg_id: Option<Py<PyString>>,
) -> PyResult<Py<ProduceResult>> {
    let stream = match &c.outcome {
        Outcome::Stored { stream, .. } => Some(shared_py_str(py, &mut b.last_stream, stream)),
        _ => None,
    };
    let station = b.labels.get(&c.group).map(|s| s.clone_ref(py));
    new_result(
        py,
        ProduceResult::from_outcome(
            py,
            c.tag,
            msg_id.map(Py::into_any),
            &c.outcome,
            stream,
            station,
        ),
    )
}

#[derive(Default)]
struct Buffers {
    msgs: Vec<(u64, Py<PyList>)>,
    /// `(publish id, result)` of awaited publishes
    outcomes: Vec<(MsgId, Py<ProduceResult>)>,
    /// `(group, result)` of unawaited publishes that were not stored
    failures: Vec<(u32, Py<ProduceResult>)>,
    /// group -> label (the producer's station), copied into its results
    labels: IdMap<u32, Py<PyString>>,
    next_group: u32,
    events: Vec<Py<PyAny>>,
    batches: Vec<Batch>,
    done_batches: HashMap<u64, Batch>,
    msg_ids: IdMap<MsgId, Py<PyString>>,
    flags: u32,
    /// The last stream name put into a single result and its Python string
    /// (see `shared_py_str`).
    last_stream: Option<(Arc<str>, Py<PyString>)>,
}

struct PySink<'a, 'py> {
    py: Python<'py>,
    b: &'a mut Buffers,
    err: Option<PyErr>,
}

impl PySink<'_, '_> {
    fn keep(&mut self, r: PyResult<()>) {
        if let Err(e) = r {
            if self.err.is_none() {
                self.err = Some(e);
            }
        }
    }

    fn event(&mut self, kind: u32, value: Py<PyAny>) {
        let r = (kind, value)
            .into_pyobject(self.py)
            .map(|t| self.b.events.push(t.into_any().unbind()));
        self.keep(r);
        self.b.flags |= F_EVENTS;
    }
}

impl Sink for PySink<'_, '_> {
    fn pull_end(&mut self, end: &memphis_proto::PullEnd<'_>) {
        let py = self.py;
        match Bound::new(py, PullEnd::new(end)) {
            Ok(v) => self.event(EV_PULL_END, v.into_any().unbind()),
            Err(e) => self.keep(Err(e)),
        }
    }

    fn info(&mut self, json: &[u8]) {
        let v = PyBytes::new(self.py, json).into_any().unbind();
        self.event(EV_INFO, v);
    }

    fn error(&mut self, text: &[u8]) {
        let v = PyString::new(self.py, &String::from_utf8_lossy(text))
            .into_any()
            .unbind();
        self.event(EV_ERR, v);
    }

    fn ping(&mut self) {
        self.b.flags |= F_WRITE;
    }

    fn pong(&mut self, rtt_us: Option<u64>) {
        let v = match rtt_us {
            Some(r) => r
                .into_pyobject(self.py)
                .map_or_else(|e| match e {}, |v| v.into_any().unbind()),
            None => self.py.None(),
        };
        self.event(EV_PONG, v);
    }

    fn msg(&mut self, m: &MsgOp<'_>) {
        let py = self.py;
        let r = (|| -> PyResult<()> {
            let msg = Msg::new_untracked(py, m)?;
            match self.b.msgs.last() {
                Some((sid, list)) if *sid == m.sid => list.bind(py).append(msg)?,
                _ => {
                    let list = PyList::empty(py);
                    list.append(msg)?;
                    self.b.msgs.push((m.sid, list.unbind()));
                }
            }
            Ok(())
        })();
        self.keep(r);
        self.b.flags |= F_MSGS;
    }

    fn completed(&mut self, c: Completed) {
        let py = self.py;
        let msg_id = if self.b.msg_ids.is_empty() {
            None
        } else {
            self.b.msg_ids.remove(&c.id)
        };
        self.b.flags |= F_PROGRESS;
        if c.waiter {
            // Part of a batch?
            if let Some(pos) = self
                .b
                .batches
                .iter()
                .position(|b| c.id >= b.first_id && c.id < b.first_id + b.accepted.len() as u64)
            {
                let batch = &mut self.b.batches[pos];
                let position = batch.accepted[(c.id - batch.first_id) as usize] as usize;
                let res = batch.result(py, position, &c.outcome);
                batch.remaining -= 1;
                let failed = match res {
                    Ok(r) => {
                        batch.results[position] = Some(r);
                        None
                    }
                    Err(e) => Some(e),
                };
                let finished = batch.remaining == 0;
                if let Some(e) = failed {
                    self.keep(Err(e));
                }
                if finished {
                    let done = self.b.batches.swap_remove(pos);
                    let id = done.id;
                    self.b.done_batches.insert(id, done);
                    let v = id
                        .into_pyobject(py)
                        .map_or_else(|e| match e {}, |v| v.into_any().unbind());
                    self.event(EV_BATCH, v);
                }
                return;
            }
            match single_result(py, self.b, &c, msg_id) {
                Ok(r) => self.b.outcomes.push((c.id, r)),
                Err(e) => self.keep(Err(e)),
            }
            self.b.flags |= F_OUTCOMES;
            return;
        }
        if c.outcome.is_stored() && !c.report_stored {
            return;
        }
        match single_result(py, self.b, &c, msg_id) {
            Ok(r) => self.b.failures.push((c.group, r)),
            Err(e) => self.keep(Err(e)),
        }
        self.b.flags |= F_FAILURES;
    }
}

/// Borrow the bytes of a bytes-like object for the duration of `f`.
fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        // SAFETY: the bytearray cannot be resized or freed while we hold the GIL and run no
        // Python code; `f` only reads the slice and never calls back into Python.
        return Ok(f(unsafe { b.as_bytes() }));
    }
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "payload must be bytes-like (bytes, bytearray, memoryview), not str",
        ));
    }
    let buf = pyo3::buffer::PyBuffer::<u8>::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "payload must be bytes-like (bytes, bytearray, memoryview), not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        ))
    })?;
    let v = buf.to_vec(obj.py())?;
    Ok(f(&v))
}

/// Encode `key: value\r\n` lines from a dict, a list of pairs, or already-encoded bytes.
pub(crate) fn header_lines(obj: Option<&Bound<'_, PyAny>>, out: &mut Vec<u8>) -> PyResult<()> {
    let Some(obj) = obj else { return Ok(()) };
    if obj.is_none() {
        return Ok(());
    }
    let py = obj.py();
    let push = |out: &mut Vec<u8>, k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>| -> PyResult<()> {
        let k = k.str()?;
        let push_one = |out: &mut Vec<u8>, v: &Bound<'_, PyAny>| -> PyResult<()> {
            let v = v.str()?;
            memphis_proto::header::push_pair(out, k.to_str()?.as_bytes(), v.to_str()?.as_bytes())
                .py(py)
        };
        if let Ok(list) = v.cast::<PyList>() {
            for item in list.iter() {
                push_one(out, &item)?;
            }
            Ok(())
        } else if let Ok(t) = v.cast::<PyTuple>() {
            for item in t.iter() {
                push_one(out, &item)?;
            }
            Ok(())
        } else {
            push_one(out, v)
        }
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            push(out, &k, &v)?;
        }
        return Ok(());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        out.extend_from_slice(b.as_bytes());
        return Ok(());
    }
    for item in obj.try_iter()? {
        let item = item?;
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        push(out, &k, &v)?;
    }
    Ok(())
}

fn msg_id_lines(py: Python<'_>, msg_id: &str, out: &mut Vec<u8>) -> PyResult<()> {
    // Both the fork's `msg-id` and stock JetStream's `Nats-Msg-Id` (docs/protocol.md §7.4). An invalid id
    // is a header error like any other: MemphisError, through the one mapping function.
    memphis_proto::header::check_value(msg_id.as_bytes())
        .and_then(|()| memphis_proto::header::push_pair(out, b"msg-id", msg_id.as_bytes()))
        .and_then(|()| memphis_proto::header::push_pair(out, b"Nats-Msg-Id", msg_id.as_bytes()))
        .py(py)
}

fn ack_kind(kind: u32, delay_ns: u64) -> PyResult<AckKind> {
    Ok(match kind {
        ACK => AckKind::Ack,
        NAK => AckKind::Nak,
        NAK_DELAY => AckKind::NakDelay(delay_ns),
        IN_PROGRESS => AckKind::InProgress,
        TERM => AckKind::Term,
        _ => return Err(PyValueError::new_err(format!("unknown ack kind {kind}"))),
    })
}

// Not `unsendable`: a connection caught in a reference cycle is freed by whichever thread
// runs the garbage collector (an `asyncio.to_thread` worker, say), and pyo3 refuses to drop
// an unsendable object there: it leaked the core and raised an unraisable RuntimeError.
#[pyclass(module = "memphis_fast._core")]
pub struct Core {
    core: conn::Core,
    b: Buffers,
    /// Live buffer exports (memoryviews of the receive buffer). Only touched with the GIL
    /// held; atomic only so that the class is `Sync`.
    exports: AtomicUsize,
    epoch: Instant,
    next_batch: u64,
}

impl Core {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn finish(&mut self, sink_err: Option<PyErr>) -> PyResult<u32> {
        if let Some(e) = sink_err {
            return Err(e);
        }
        let mut flags = std::mem::take(&mut self.b.flags);
        if !self.core.out().is_empty() {
            flags |= F_WRITE;
        }
        if self.core.take_timer_changed() {
            flags |= F_TIMER;
        }
        Ok(flags)
    }

    fn run<R>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut conn::Core, &mut PySink<'_, '_>) -> R,
    ) -> (R, Option<PyErr>) {
        let mut sink = PySink {
            py,
            b: &mut self.b,
            err: None,
        };
        let r = f(&mut self.core, &mut sink);
        (r, sink.err)
    }
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (inbox_prefix, pending_limit = conn::DEFAULT_PENDING_LIMIT))]
    fn new(py: Python<'_>, inbox_prefix: &str, pending_limit: usize) -> PyResult<Self> {
        let opts = conn::Options {
            pending_limit,
            ..conn::Options::default()
        };
        Ok(Core {
            core: conn::Core::new(inbox_prefix, opts).py(py)?,
            b: Buffers::default(),
            exports: AtomicUsize::new(0),
            epoch: Instant::now(),
            next_batch: 1,
        })
    }

    // -- receive buffer (buffer protocol) ----------------------------------------------------

    /// Make room in the receive buffer and return the core itself, whose buffer is the
    /// writable tail (what `asyncio.BufferedProtocol.get_buffer` returns).
    fn prepare_recv(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        {
            let mut me = slf.borrow_mut();
            if me.exports.load(Relaxed) == 0 {
                me.core.recv_buffer().prepare();
            }
        }
        slf
    }

    /// Writable bytes of the receive buffer.
    fn __len__(&self) -> usize {
        self.core.recv().spare()
    }

    /// # Safety
    /// The exported region is the tail of the receive buffer's `Vec<u8>` (always fully
    /// initialised). That `Vec` is only reallocated by `RecvBuffer::prepare`, which
    /// `prepare_recv` calls only while no export is alive (`exports == 0`); `feed` moves the
    /// `Vec` header but never its heap allocation. `PyBuffer_FillInfo` takes a reference to
    /// `slf`, so the core outlives every export. All access happens with the GIL held (the
    /// module is built for the GIL-enabled ABI), so nothing reads the region while Python
    /// writes into it.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let (ptr, len) = {
            let mut me = slf.borrow_mut();
            let tail = me.core.recv_buffer().tail_mut();
            let r = (tail.as_mut_ptr(), tail.len());
            me.exports.fetch_add(1, Relaxed);
            r
        };
        if view.is_null() {
            slf.borrow().exports.fetch_sub(1, Relaxed);
            return Err(PyBufferError::new_err("View is null"));
        }
        // SAFETY: see above; `view` is a valid pointer supplied by the interpreter.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr.cast::<c_void>(),
                len as ffi::Py_ssize_t,
                0,
                flags,
            )
        };
        if rc != 0 {
            slf.borrow().exports.fetch_sub(1, Relaxed);
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let _ = self
            .exports
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// `n` bytes were read into the buffer: parse and dispatch. Returns the `F_*` flags.
    fn feed(&mut self, py: Python<'_>, n: usize) -> PyResult<u32> {
        let now = self.now_us();
        let (r, err) = self.run(py, |core, sink| core.feed(n, now, sink));
        r.py(py)?;
        self.finish(err)
    }

    /// Copy `data` in and process it (for tests and for transports that hand out bytes).
    fn feed_bytes(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u32> {
        let now = self.now_us();
        let data = with_bytes(data, <[u8]>::to_vec)?;
        let (r, err) = self.run(py, |core, sink| core.feed_bytes(&data, now, sink));
        r.py(py)?;
        self.finish(err)
    }

    // -- collecting results ------------------------------------------------------------------

    /// `[(sid, [Msg, ...]), ...]` in order of first arrival.
    fn take_msgs<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (sid, list) in self.b.msgs.drain(..) {
            out.append((sid, list))?;
        }
        Ok(out)
    }

    /// Outcomes of awaited publishes: `(publish id, ProduceResult)`.
    fn take_outcomes<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.b.outcomes.drain(..))
    }

    /// Failures of unawaited publishes: `(group, ProduceResult)`.
    fn take_failures<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.b.failures.drain(..))
    }

    /// Control events: `(EV_INFO, bytes)`, `(EV_ERR, str)`, `(EV_PONG, rtt_us or None)`,
    /// `(EV_BATCH, batch_id)`.
    fn take_events<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.b.events.drain(..))
    }

    /// The outcomes of a finished batch, in message order (`None` if unknown or not done).
    fn take_batch<'py>(
        &mut self,
        py: Python<'py>,
        batch_id: u64,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        match self.b.done_batches.remove(&batch_id) {
            Some(b) => Ok(Some(PyList::new(
                py,
                b.results.into_iter().map(|r| match r {
                    Some(r) => r.into_any(),
                    None => py.None(),
                }),
            )?)),
            None => Ok(None),
        }
    }

    /// Bytes to write, or `None`; the core considers them handed to the transport.
    fn take_out<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        if self.core.out().is_empty() {
            return None;
        }
        let b = PyBytes::new(py, self.core.out());
        self.core.out_taken();
        Some(b)
    }

    /// Publishes in flight on the whole connection.
    #[getter]
    fn inflight(&self) -> u64 {
        self.core.inflight_totals().inflight
    }

    #[getter]
    fn out_len(&self) -> usize {
        self.core.out().len()
    }

    // -- lifecycle ---------------------------------------------------------------------------

    /// 0 disconnected, 1 handshaking, 2 connected, 3 closed.
    #[getter]
    fn state(&self) -> u32 {
        match self.core.state() {
            State::Disconnected => STATE_DISCONNECTED,
            State::Handshaking => STATE_HANDSHAKING,
            State::Connected => STATE_CONNECTED,
            State::Closed => STATE_CLOSED,
        }
    }

    fn start_session(&mut self, py: Python<'_>, connect_json: &Bound<'_, PyAny>) -> PyResult<u32> {
        let now = self.now_us();
        let json: Vec<u8> = if let Ok(s) = connect_json.cast::<PyString>() {
            s.to_str()?.as_bytes().to_vec()
        } else {
            with_bytes(connect_json, <[u8]>::to_vec)?
        };
        self.core.start_session(&json, now).py(py)?;
        self.finish(None)
    }

    fn session_ready(&mut self) -> PyResult<u32> {
        let now = self.now_ms();
        self.core.session_ready(now);
        self.finish(None)
    }

    fn disconnected(&mut self, py: Python<'_>) -> PyResult<u32> {
        let ((), err) = self.run(py, |core, sink| core.on_disconnect(sink));
        self.finish(err)
    }

    fn close(&mut self, py: Python<'_>) -> PyResult<u32> {
        let ((), err) = self.run(py, |core, sink| core.close(sink));
        self.b.msg_ids.clear();
        self.finish(err)
    }

    /// Finish publishes whose ack wait expired.
    fn sweep(&mut self, py: Python<'_>) -> PyResult<u32> {
        let now = self.now_ms();
        let ((), err) = self.run(py, |core, sink| core.sweep(now, sink));
        self.finish(err)
    }

    /// Seconds until the earliest ack deadline, or `None` when nothing is in flight.
    fn next_deadline(&self) -> Option<f64> {
        let now = self.now_ms();
        self.core
            .next_deadline_ms()
            .map(|d| d.saturating_sub(now) as f64 / 1000.0)
    }

    #[getter]
    fn max_payload(&self) -> usize {
        self.core.server_max_payload()
    }

    #[setter]
    fn set_max_payload(&mut self, n: usize) {
        self.core.set_server_max_payload(n);
    }

    /// Retry publishes answered "unavailable" (503 no responders, JetStream cluster not
    /// available) until their ack wait runs out; set for clustered servers.
    #[getter]
    fn retry_unavailable(&self) -> bool {
        self.core.retry_unavailable()
    }

    #[setter]
    fn set_retry_unavailable(&mut self, on: bool) {
        self.core.set_retry_unavailable(on);
    }

    #[getter]
    fn inbox_prefix(&self) -> String {
        String::from_utf8_lossy(self.core.inbox_prefix()).into_owned()
    }

    #[getter]
    fn mux_sid(&self) -> u64 {
        self.core.mux_sid()
    }

    // -- operations --------------------------------------------------------------------------

    #[pyo3(signature = (subject, queue = None))]
    fn subscribe(&mut self, py: Python<'_>, subject: &str, queue: Option<&str>) -> PyResult<u64> {
        self.core
            .subscribe(subject.as_bytes(), queue.map(str::as_bytes))
            .py(py)
    }

    #[pyo3(signature = (sid, max = None))]
    fn unsubscribe(&mut self, sid: u64, max: Option<u64>) {
        self.core.unsubscribe(sid, max);
    }

    fn is_subscribed(&self, sid: u64) -> bool {
        self.core.is_subscribed(sid)
    }

    /// Subscribe an inbox for pull requests; returns its sid. Status messages on it become
    /// `(EV_PULL_END, (sid, token, code, description, undelivered))` events.
    fn pull_subscribe(&mut self, py: Python<'_>) -> PyResult<u64> {
        let now = self.now_ms();
        self.core.pull_subscribe(now).py(py)
    }

    /// Send a pull request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`); returns its token.
    #[pyo3(signature = (sid, api_subject, batch, max_bytes = 0, expires_ms = 0, heartbeat_ms = 0, no_wait = false, ahead_of_acks = false))]
    fn pull(
        &mut self,
        py: Python<'_>,
        sid: u64,
        api_subject: &str,
        batch: u64,
        max_bytes: u64,
        expires_ms: u64,
        heartbeat_ms: u64,
        no_wait: bool,
        ahead_of_acks: bool,
    ) -> PyResult<u64> {
        let now = self.now_ms();
        let r = PullRequest {
            api_subject: api_subject.as_bytes(),
            batch,
            max_bytes,
            expires_ms,
            heartbeat_ms,
            no_wait,
            ahead_of_acks,
        };
        self.core.pull(sid, &r, now).py(py)
    }

    /// Keep the positive acks a pull just went in front of (``ahead_of_acks``) out of the
    /// next write until :meth:`release_acks`; returns the bytes held (0: nothing held).
    fn hold_acks(&mut self) -> usize {
        self.core.hold_acks()
    }

    /// Put held acks back in the write buffer; returns whether there were any.
    fn release_acks(&mut self) -> bool {
        self.core.release_acks()
    }

    /// Bytes of acks held by :meth:`hold_acks`.
    #[getter]
    fn held_acks(&self) -> usize {
        self.core.held_acks()
    }

    /// `(pulls, messages)` asked for on a pull subscription and not yet delivered.
    fn pull_outstanding(&self, sid: u64) -> (usize, u64) {
        self.core.pull_outstanding(sid)
    }

    /// Queue a PING; returns False when not connected.
    fn ping(&mut self) -> bool {
        let now = self.now_us();
        self.core.ping(now)
    }

    #[getter]
    fn pings_outstanding(&self) -> usize {
        self.core.pings_outstanding()
    }

    /// Core NATS publish. `headers`: a dict / list of pairs / encoded lines, or None.
    #[pyo3(signature = (subject, payload, reply = None, headers = None))]
    fn publish(
        &mut self,
        py: Python<'_>,
        subject: &str,
        payload: &Bound<'_, PyAny>,
        reply: Option<&str>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let block = match headers {
            Some(h) if !h.is_none() => {
                let mut lines = Vec::new();
                header_lines(Some(h), &mut lines)?;
                let mut b = Vec::with_capacity(lines.len() + 12);
                b.extend_from_slice(b"NATS/1.0\r\n");
                b.extend_from_slice(&lines);
                b.extend_from_slice(b"\r\n");
                Some(b)
            }
            _ => None,
        };
        with_bytes(payload, |p| {
            self.core.publish(
                subject.as_bytes(),
                reply.map(str::as_bytes),
                block.as_deref(),
                p,
            )
        })?
        .py(py)
    }

    /// JetStream publish; returns its id. `header_lines` are the producer's constant lines
    /// (from `encode_header_lines`), `headers` the per-message ones.
    /// `max_inflight`/`max_inflight_bytes` (when not 0) make it a windowed publish: if the
    /// group already has that many messages or bytes in flight, nothing is sent and 0 is
    /// returned (ids start at 1).
    #[pyo3(signature = (subject, payload, group, tag, ack_wait_ms, waiter, header_lines = None, headers = None, msg_id = None, max_inflight = 0, max_inflight_bytes = 0))]
    #[allow(clippy::too_many_arguments)]
    fn js_publish(
        &mut self,
        py: Python<'_>,
        subject: &str,
        payload: &Bound<'_, PyAny>,
        group: u32,
        tag: u64,
        ack_wait_ms: u64,
        waiter: bool,
        header_lines: Option<&Bound<'_, PyBytes>>,
        headers: Option<&Bound<'_, PyAny>>,
        msg_id: Option<&Bound<'_, PyString>>,
        max_inflight: u64,
        max_inflight_bytes: u64,
    ) -> PyResult<MsgId> {
        if max_inflight > 0 || max_inflight_bytes > 0 {
            let g = self.core.group_stats(group);
            if (max_inflight > 0 && g.inflight >= max_inflight)
                || (max_inflight_bytes > 0
                    && g.inflight > 0
                    && g.inflight_bytes >= max_inflight_bytes)
            {
                return Ok(0);
            }
        }
        let mut extra = Vec::new();
        self::header_lines(headers, &mut extra)?;
        if let Some(m) = msg_id {
            msg_id_lines(py, m.to_str()?, &mut extra)?;
        }
        let base: &[u8] = header_lines.map_or(&b""[..], |h| h.as_bytes());
        let p = JsPublish {
            subject: subject.as_bytes(),
            headers: base,
            extra_headers: &extra,
            group,
            tag,
            ack_wait_ms,
            waiter,
            keep_frame: msg_id.is_some(),
        };
        let now = self.now_ms();
        let id = with_bytes(payload, |data| self.core.js_publish(&p, data, now))?.py(py)?;
        if let Some(m) = msg_id {
            self.b.msg_ids.insert(id, m.clone().unbind());
        }
        Ok(id)
    }

    /// Publish many messages in one call and one write (same subject and headers). Returns
    /// `(batch_id, results)`: one `ProduceResult` per message; those refused before sending
    /// (kind `"rejected"`) are filled in already, the others are `None` until the batch is
    /// done: then an `EV_BATCH` event carries `batch_id` and `take_batch(batch_id)` returns the
    /// complete list. `batch_id` is 0 when nothing was sent (all results are filled in).
    /// `indexes` gives the index reported for each message (default `base_index + position`).
    #[pyo3(signature = (subject, payloads, group, ack_wait_ms, header_lines = None, msg_ids = None, base_index = 0, indexes = None))]
    fn js_publish_batch<'py>(
        &mut self,
        py: Python<'py>,
        subject: &str,
        payloads: &Bound<'py, PyAny>,
        group: u32,
        ack_wait_ms: u64,
        header_lines: Option<&Bound<'py, PyBytes>>,
        msg_ids: Option<&Bound<'py, PyAny>>,
        base_index: u64,
        indexes: Option<Vec<u64>>,
    ) -> PyResult<(u64, Bound<'py, PyList>)> {
        let base: &[u8] = header_lines.map_or(&b""[..], |h| h.as_bytes());
        let items: Vec<Bound<'py, PyAny>> = payloads.try_iter()?.collect::<PyResult<_>>()?;
        let n = items.len();
        let ids: Vec<Option<Py<PyAny>>> = match msg_ids {
            Some(m) if !m.is_none() => m
                .try_iter()?
                .map(|i| i.map(|v| (!v.is_none()).then(|| v.unbind())))
                .collect::<PyResult<_>>()?,
            _ => Vec::new(),
        };
        if !ids.is_empty() && ids.len() != n {
            return Err(PyValueError::new_err(format!(
                "{} message ids for {} messages",
                ids.len(),
                n
            )));
        }
        let indexes = match indexes {
            Some(v) if v.len() == n => v,
            Some(v) => {
                return Err(PyValueError::new_err(format!(
                    "{} indexes for {} messages",
                    v.len(),
                    n
                )))
            }
            None => (0..n as u64).map(|i| base_index + i).collect(),
        };
        let mut batch = Batch {
            id: 0,
            first_id: 0,
            accepted: Vec::with_capacity(n),
            results: (0..n).map(|_| None).collect(),
            indexes,
            msg_ids: ids,
            stream: None,
            station: self.b.labels.get(&group).map(|s| s.clone_ref(py)),
            remaining: 0,
        };
        let now = self.now_ms();
        let mut first_id: Option<MsgId> = None;
        let mut extra = Vec::new();
        for (pos, item) in items.iter().enumerate() {
            extra.clear();
            let mut keep = false;
            if let Some(Some(m)) = batch.msg_ids.get(pos) {
                let s: String = m.bind(py).str()?.to_str()?.to_owned();
                if let Err(e) = msg_id_lines(py, &s, &mut extra) {
                    let text = e.value(py).str()?.to_string();
                    batch.rejected(py, pos, text)?;
                    continue;
                }
                keep = true;
            }
            let p = JsPublish {
                subject: subject.as_bytes(),
                headers: base,
                extra_headers: &extra,
                group,
                tag: batch.indexes[pos],
                ack_wait_ms,
                waiter: true,
                keep_frame: keep,
            };
            let res = match with_bytes(item, |data| self.core.js_publish(&p, data, now)) {
                Ok(Ok(id)) => Ok(id),
                Ok(Err(e)) => Err(crate::errors::to_pyerr(py, e)),
                Err(e) => Err(e),
            };
            match res {
                Ok(id) => {
                    first_id.get_or_insert(id);
                    batch.accepted.push(pos as u32);
                }
                Err(e) => {
                    let text = e.value(py).str()?.to_string();
                    batch.rejected(py, pos, text)?;
                }
            }
        }
        let Some(first_id) = first_id else {
            let list = PyList::new(
                py,
                batch.results.into_iter().map(|r| match r {
                    Some(r) => r.into_any(),
                    None => py.None(),
                }),
            )?;
            return Ok((0, list));
        };
        let batch_id = self.next_batch;
        self.next_batch += 1;
        batch.id = batch_id;
        batch.first_id = first_id;
        batch.remaining = batch.accepted.len();
        let partial = PyList::new(
            py,
            batch.results.iter().map(|r| match r {
                Some(r) => r.clone_ref(py).into_any(),
                None => py.None(),
            }),
        )?;
        self.b.batches.push(batch);
        Ok((batch_id, partial))
    }

    /// Forget a batch (its caller went away); late outcomes are dropped.
    fn discard_batch(&mut self, batch_id: u64) {
        self.b.batches.retain(|b| b.id != batch_id);
        self.b.done_batches.remove(&batch_id);
    }

    /// Acknowledge one JetStream message: kind 0 ack, 1 nak, 2 nak with delay, 3 in
    /// progress, 4 term. Returns true once the encoded output reached [`WRITE_SOON_BYTES`]:
    /// the caller should write it now rather than at the end of its tick.
    #[pyo3(signature = (msg, kind = 0, delay_ns = 0))]
    fn ack(
        &mut self,
        py: Python<'_>,
        msg: &Bound<'_, Msg>,
        kind: u32,
        delay_ns: u64,
    ) -> PyResult<bool> {
        let k = ack_kind(kind, delay_ns)?;
        let m = msg.get();
        let reply = m
            .reply_bytes()
            .ok_or_else(|| PyValueError::new_err("message has no reply subject to acknowledge"))?;
        self.core.ack_parsed(reply, k).py(py)?;
        Ok(self.core.out().len() >= WRITE_SOON_BYTES)
    }

    /// Acknowledge many messages with the same kind in one call. Messages without a reply
    /// subject are skipped; returns how many were acknowledged.
    #[pyo3(signature = (msgs, kind = 0, delay_ns = 0))]
    fn ack_many(
        &mut self,
        py: Python<'_>,
        msgs: &Bound<'_, PyAny>,
        kind: u32,
        delay_ns: u64,
    ) -> PyResult<usize> {
        let k = ack_kind(kind, delay_ns)?;
        let mut n = 0;
        for item in msgs.try_iter()? {
            let item = item?;
            let m = item.cast::<Msg>()?;
            if let Some(reply) = m.get().reply_bytes() {
                self.core.ack_parsed(reply, k).py(py)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Acknowledge through a reply subject given as text.
    #[pyo3(signature = (reply, kind = 0, delay_ns = 0))]
    fn ack_reply(&mut self, py: Python<'_>, reply: &str, kind: u32, delay_ns: u64) -> PyResult<()> {
        let k = ack_kind(kind, delay_ns)?;
        self.core.ack(reply.as_bytes(), k).py(py)
    }

    // -- counters ----------------------------------------------------------------------------

    /// `(inflight, inflight_bytes)` of a group.
    fn group_inflight(&self, group: u32) -> (u64, u64) {
        let g = self.core.group_stats(group);
        (g.inflight, g.inflight_bytes)
    }

    /// `{inflight, inflight_bytes, published, acked, failed, retried}` of a group.
    fn group_stats<'py>(&self, py: Python<'py>, group: u32) -> PyResult<Bound<'py, PyDict>> {
        let g = self.core.group_stats(group);
        let d = PyDict::new(py);
        d.set_item("inflight", g.inflight)?;
        d.set_item("inflight_bytes", g.inflight_bytes)?;
        d.set_item("published", g.published)?;
        d.set_item("acked", g.acked)?;
        d.set_item("failed", g.failed)?;
        d.set_item("retried", g.retried)?;
        Ok(d)
    }

    /// A new group (a producer's window and counters); `label` (the station) is copied into
    /// the group's results.
    /// With `report_stored`, the group's stored outcomes of unawaited publishes are
    /// reported by `take_failures` too (a producer's delivery callback); otherwise only
    /// counted.
    #[pyo3(signature = (label = None, report_stored = false))]
    fn new_group(&mut self, label: Option<Bound<'_, PyString>>, report_stored: bool) -> u32 {
        self.b.next_group += 1;
        let g = self.b.next_group;
        if let Some(l) = label {
            self.b.labels.insert(g, l.unbind());
        }
        if report_stored {
            self.core.set_report_stored(g, true);
        }
        g
    }

    /// Forget a group's counters and label once nothing of it is in flight.
    fn drop_group(&mut self, group: u32) {
        self.core.drop_group(group);
        self.b.labels.remove(&group);
    }

    /// Connection counters (messages/bytes in and out, reconnects, pings, last RTT, late
    /// acks, dropped messages) and the in-flight totals.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.stats();
        let t = self.core.inflight_totals();
        let d = PyDict::new(py);
        d.set_item("msgs_in", s.msgs_in)?;
        d.set_item("bytes_in", s.bytes_in)?;
        d.set_item("msgs_out", s.msgs_out)?;
        d.set_item("bytes_out", s.bytes_out)?;
        d.set_item("reconnects", s.reconnects)?;
        d.set_item("pings_sent", s.pings_sent)?;
        d.set_item("pongs", s.pongs)?;
        d.set_item("rtt_us", s.last_rtt_us)?;
        d.set_item("late_acks", s.late_acks)?;
        d.set_item("dropped_msgs", s.dropped_msgs)?;
        d.set_item("orphans_nakked", s.orphans_nakked)?;
        d.set_item("inflight", t.inflight)?;
        d.set_item("inflight_bytes", t.inflight_bytes)?;
        d.set_item("published", t.published)?;
        d.set_item("acked", t.acked)?;
        d.set_item("failed", t.failed)?;
        d.set_item("retried", t.retried)?;
        d.set_item("pending_bytes", self.core.pending_len())?;
        d.set_item("recv_buffer", self.core.limits().max_payload)?;
        Ok(d)
    }
}

/// A pull request that ended before delivering everything it asked for (the value of an
/// `EV_PULL_END` event). Its status is interpreted once, in `memphis_proto::conn`.
#[pyclass(module = "memphis_fast._core", frozen)]
pub struct PullEnd {
    /// The pull subscription.
    #[pyo3(get)]
    sid: u64,
    /// The pull's token (from `Core.pull`).
    #[pyo3(get)]
    token: u64,
    /// The status code (404, 408, 409, ...; 0 when it ended without one).
    #[pyo3(get)]
    code: u16,
    #[pyo3(get)]
    description: String,
    /// Messages it asked for that will not come.
    #[pyo3(get)]
    undelivered: u64,
    /// Messages it asked for.
    #[pyo3(get)]
    asked: u64,
    kind: memphis_proto::PullEndKind,
}

impl PullEnd {
    fn new(e: &memphis_proto::PullEnd<'_>) -> Self {
        PullEnd {
            sid: e.sid,
            token: e.token,
            code: e.code,
            description: String::from_utf8_lossy(e.description).into_owned(),
            undelivered: e.undelivered,
            asked: e.asked,
            kind: e.kind,
        }
    }
}

#[pymethods]
impl PullEnd {
    /// It expired (404/408) having delivered nothing.
    #[getter]
    fn empty(&self) -> bool {
        self.kind == memphis_proto::PullEndKind::Expired && self.undelivered >= self.asked
    }

    /// It expired (404/408), possibly after delivering part of what it asked for.
    #[getter]
    fn expired(&self) -> bool {
        self.kind == memphis_proto::PullEndKind::Expired
    }

    /// The consumer is gone or refuses pulls: worth reporting.
    #[getter]
    fn refused(&self) -> bool {
        self.kind == memphis_proto::PullEndKind::Refused
    }

    /// Lost without a status (connection dropped, heartbeats stopped) or a transient 409:
    /// pull again.
    #[getter]
    fn lost(&self) -> bool {
        matches!(
            self.kind,
            memphis_proto::PullEndKind::Lost | memphis_proto::PullEndKind::Transient
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "PullEnd(sid={}, token={}, code={}, description={:?}, undelivered={}, asked={})",
            self.sid, self.token, self.code, self.description, self.undelivered, self.asked
        )
    }
}
