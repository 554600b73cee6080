//! The one place where Rust errors become Python exceptions. The exception classes are the
//! Python ones from `memphis_fast.exceptions`, looked up once.

use memphis_proto::ProtoError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static EXC_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn exc_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = EXC_MODULE.get_or_try_init(py, || {
        py.import("memphis_fast.exceptions").map(Bound::unbind)
    })?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

fn new_err(py: Python<'_>, class: &str, message: String) -> PyErr {
    match exc_class(py, class) {
        Ok(cls) => match cls.call1((message.clone(),)) {
            Ok(inst) => PyErr::from_value(inst),
            Err(e) => e,
        },
        // The package is not importable (e.g. the extension loaded on its own): fall back to
        // a plain ValueError rather than hiding the original problem.
        Err(_) => PyValueError::new_err(message),
    }
}

/// Map a codec/state-machine error to the matching `MemphisError` subclass.
pub fn to_pyerr(py: Python<'_>, e: ProtoError) -> PyErr {
    let msg = e.to_string();
    match e {
        ProtoError::LineTooLong { .. }
        | ProtoError::PayloadTooLarge { .. }
        | ProtoError::Malformed(_) => new_err(py, "MemphisProtocolError", msg),
        ProtoError::MessageTooLarge { size, limit } => {
            let err = new_err(py, "MemphisPayloadTooLargeError", msg);
            let value = err.value(py);
            let _ = value.setattr("size", size);
            let _ = value.setattr("limit", limit);
            err
        }
        ProtoError::InvalidArgument(_) => new_err(py, "MemphisError", msg),
        ProtoError::BufferFull { .. } => new_err(py, "MemphisConnectError", msg),
        ProtoError::Closed => new_err(py, "MemphisConnectionClosedError", msg),
    }
}

pub trait IntoPyResult<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, ProtoError> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}
