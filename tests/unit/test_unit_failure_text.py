"""The text of a produce failure says what happened: a cluster's retries until the ack wait,
or a single server's "no stream for the subject" (then the station is gone)."""

from __future__ import annotations

from memphis_fast import OutcomeReason, ProduceResult
from memphis_fast.producer import _failure_text, _produce_error


def test_cluster_retries_are_reported_as_such() -> None:
    r = ProduceResult(
        3,
        "m-3",
        False,
        "not_stored",
        error="no stream leader answered within the ack wait (12 tries; last answer: no responders)",
        code=503,
        station="orders",
    )
    assert r.reason == OutcomeReason.NO_RESPONDERS
    text = _failure_text(r)
    assert "no stream leader answered within the ack wait" in text and "still exist" not in text
    assert "orders" in text and "'m-3'" in text


def test_single_server_no_responders_asks_about_the_station() -> None:
    r = ProduceResult(0, None, False, "not_stored", error="no responders", code=503, station="orders")
    assert "does the station still exist?" in _failure_text(r)


def test_a_full_store_reports_the_server_reason() -> None:
    r = ProduceResult(0, None, False, "not_stored", error="insufficient resources", code=503, err_code=10047)
    assert r.reason == OutcomeReason.JETSTREAM_ERROR
    text = _failure_text(r)
    assert "insufficient resources" in text and "10047" in text and "still exist" not in text


def test_the_exception_class_comes_from_the_reason() -> None:
    timeout = ProduceResult(0, None, False, "unknown", error="no acknowledgement within the ack wait")
    assert type(_produce_error(timeout)).__name__ == "MemphisProduceTimeoutError"
    lost = ProduceResult(0, None, False, "unknown", reason=OutcomeReason.CONNECTION_LOST, error="lost")
    assert type(_produce_error(lost)).__name__ == "MemphisProduceError"
    # The ack wait ran out while the stream kept answering "in process": a timeout too.
    in_process = ProduceResult(
        0, "m-0", False, "unknown", reason=OutcomeReason.DUPLICATE_IN_PROCESS, error="still in process"
    )
    assert in_process.reason == "duplicate_in_process"
    err = _produce_error(in_process)
    assert type(err).__name__ == "MemphisProduceTimeoutError" and "unknown" in str(err), err
