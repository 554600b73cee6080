"""The dead-letter station (spec §5.12 - §5.16, §9): poison messages, explicit dead-lettering,
schema-validation failures, ``dls_station`` forwarding, resending to groups, notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

from nats.aio.msg import Msg

from .base import NS, ControlPlaneBase, ReplyError, Request
from .models import DlsRecord, PoisonedGroup, Station
from .names import external_name, internal_name, stream_name, validate_name

__all__ = ["ADVISORY_CONSUMER", "ADVISORY_STREAM", "DeadLetterStation"]

log = logging.getLogger("memphis_fast.broker")

ADVISORY_STREAM = "$memphis_dls_unacked"
ADVISORY_CONSUMER = "$memphis_dls_unacked_consumer"
ADVISORY_SUBJECT = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"


class DeadLetterStation(ControlPlaneBase):
    async def _ensure_advisory_capture(self) -> None:
        """Capture max-deliveries advisories durably (§9.1), so none is lost while we are down."""
        if await self._js.stream_info(ADVISORY_STREAM) is None:
            await self._js.stream_create(
                {
                    "name": ADVISORY_STREAM,
                    "subjects": [ADVISORY_SUBJECT],
                    "retention": "workqueue",
                    "max_consumers": -1,
                    "max_msgs": -1,
                    "max_bytes": -1,
                    "max_age": 24 * 3600 * NS,
                    "max_msgs_per_subject": -1,
                    "discard": "old",
                    "storage": self.cfg.storage,
                    "num_replicas": 1,
                    "duplicate_window": 120 * NS,
                }
            )
        if await self._js.consumer_info(ADVISORY_STREAM, ADVISORY_CONSUMER) is None:
            await self._js.consumer_create(
                ADVISORY_STREAM,
                {
                    "durable_name": ADVISORY_CONSUMER,
                    "deliver_policy": "all",
                    "ack_policy": "explicit",
                    "ack_wait": 80 * NS,
                    "max_deliver": 10,
                    "replay_policy": "instant",
                    "max_ack_pending": -1,
                },
            )

    async def _advisory_loop(self) -> None:
        inbox = self._nc.new_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await self._nc.subscribe(inbox, cb=on_msg)
        api = f"$JS.API.CONSUMER.MSG.NEXT.{ADVISORY_STREAM}.{ADVISORY_CONSUMER}"
        try:
            while True:
                # One long pull at a time; status messages (404/408) end it early.
                body = json.dumps({"batch": 1000, "expires": 2 * NS}).encode()
                await self._nc.publish(api, body, reply=inbox)
                deadline = time.monotonic() + 2.5
                while True:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        msg = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        break
                    status = (msg.headers or {}).get("Status")
                    if status is not None or not msg.data:
                        if status in ("404", "408", "409"):
                            description = (msg.headers or {}).get("Description", "")
                            if description not in ("No Messages", "Request Timeout"):
                                # The capture stream or its consumer was deleted: recreate them.
                                with contextlib.suppress(Exception):
                                    await self._ensure_advisory_capture()
                            break
                        continue
                    try:
                        await self._on_poison_advisory(json.loads(msg.data))
                    except Exception:
                        log.exception("poison advisory processing failed")
                    with contextlib.suppress(Exception):
                        await msg.ack()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_poison_advisory(self, adv: dict[str, Any]) -> None:
        """§9.2."""
        stream = str(adv.get("stream", ""))
        consumer = str(adv.get("consumer", ""))
        seq = int(adv.get("stream_seq", 0))
        if stream.startswith("$memphis") or stream.startswith("KV_") or "$" not in stream:
            return  # our own streams, or not a Memphis partition stream
        internal_station, _, part = stream.rpartition("$")
        if not part.isdigit():
            return
        partition = int(part)
        station = external_name(internal_station)
        group = external_name(consumer)
        st = self.stations.get(station)
        if st is None or not st.dls_poison:
            return
        if not any(
            c.station == station and c.group == group and c.type == "application"
            for c in self.consumers.values()
        ):
            return
        stored = await self._js.msg_get(stream, seq=seq)
        if stored is None:
            return
        if stored.headers.get("$memphis_producedBy") == "$memphis_dls":
            return  # a resent poison message poisoned again
        await self._add_poison(st, partition, stored.seq, group, "", stored)

    async def _add_poison(
        self, st: Station, partition: int, seq: int, group: str, reason: str, stored: Any
    ) -> None:
        async with self._dls_lock:
            rec_id = self._dls_index.get((st.name, partition, seq))
            rec = self.dls.get(rec_id) if rec_id is not None else None
            first = rec is None
            if rec is None:
                rec = DlsRecord(
                    id=self.next_dls_id,
                    station=st.name,
                    type="poison",
                    partition=partition,
                    seq=seq,
                    producer=stored.headers.get("$memphis_producedBy", "unknown"),
                    data=stored.data.hex(),
                    headers=dict(stored.headers),
                    size=len(stored.data) + len(stored.raw_headers),
                    message_time=stored.time,
                )
                self.next_dls_id += 1
                self.dls[rec.id] = rec
                self._dls_index[(st.name, partition, seq)] = rec.id
                self._save_settings()
            if group in rec.group_names():
                if reason:
                    for g in rec.poisoned_cgs:
                        if g.name == group:
                            g.reason = reason
            else:
                rec.poisoned_cgs.append(PoisonedGroup(name=group, reason=reason))
            await self._save_dls(rec)
        log.info(
            "poison message %s of station %s (group %s) stored as DLS record %d", seq, st.name, group, rec.id
        )
        if first:
            await self._forward_to_dls_station(st, stored.data, stored.headers, "unacked")

    async def _forward_to_dls_station(
        self, st: Station, data: bytes, headers: dict[str, str], kind: str
    ) -> None:
        """§9.7."""
        if not st.dls_station:
            return
        target = self.stations.get(st.dls_station)
        if target is None:
            return
        # Any partition of the target; the real broker never picks the last one (§13.10).
        partition = random.choice(target.partitions)
        # JetStream control headers (Nats-Msg-Id, Nats-Expected-*) must not act on the copy.
        out = {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}
        out["station"] = st.name
        out["type"] = kind
        subject = f"{stream_name(target.name, partition)}.final"
        try:
            await self._nc.request(subject, data, timeout=5, headers=out)
        except Exception as exc:
            log.warning("forwarding a DLS message to station %s failed: %s", target.name, exc)

    async def on_nacked_dls(self, req: Request) -> None:
        """§5.14: explicit dead-lettering (after the client's +TERM)."""
        internal_station = req.get_str("station_name")
        partition = req.get_int("partition", 0)
        seq = req.get_int("seq", 0)
        group = req.get_str("cg_name").lower()
        if partition < 1 or seq < 1 or not group:
            log.warning(
                "ignoring $memphis_nacked_dls with partition %s, seq %s, cg %r", partition, seq, group
            )
            return
        st = self.stations.get(external_name(internal_station.lower()))
        if st is None or not st.dls_poison:
            return
        stored = await self._js.msg_get(stream_name(st.name, partition), seq=seq)
        if stored is None:
            return
        await self._add_poison(st, partition, seq, group, req.get_str("error"), stored)

    async def on_schemaverse_dls(self, req: Request) -> None:
        """§5.13: a producer's schema-validation failure."""
        st = self.stations.get(external_name(req.get_str("station_name").lower()))
        if st is None:
            return
        producer = req.get_obj("producer")
        message = req.get_obj("message")
        hex_data = message.get_str("data")
        try:
            data = bytes.fromhex(hex_data)
        except ValueError:
            data = hex_data.encode()
        raw_headers = message.get("headers") or {}
        headers = {str(k): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
        async with self._dls_lock:
            rec = DlsRecord(
                id=self.next_dls_id,
                station=st.name,
                type="schema",
                partition=req.get_int("partition_number", 0),
                producer=producer.get_str("name", "unknown") or "unknown",
                data=data.hex(),
                headers=headers,
                size=len(data) + sum(len(k) + len(v) for k, v in headers.items()),
                validation_error=req.get_str("validation_error"),
            )
            self.next_dls_id += 1
            self.dls[rec.id] = rec
            self._save_settings()
            await self._save_dls(rec)
        log.info("schema validation failure on station %s stored as DLS record %d", st.name, rec.id)
        await self._forward_to_dls_station(st, data, headers, "failed_schema")

    async def on_pm_ack(self, req: Request) -> None:
        """§5.15: a resent poison message was acknowledged by its group."""
        rec_id = req.get_int("id", 0)
        group = req.get_str("cg_name").lower()
        async with self._dls_lock:
            rec = self.dls.get(rec_id)
            if rec is None or group not in rec.group_names():
                return
            rec.poisoned_cgs = [g for g in rec.poisoned_cgs if g.name != group]
            self._save_or_drop_dls(rec)

    async def on_notification(self, req: Request) -> None:
        """§5.12: no Slack here; the alert is logged and kept for ``notifications list``."""
        note: dict[str, Any] = {
            "title": req.get_str("title"),
            "msg": req.get_str("msg"),
            "type": req.get_str("type"),
            "code": req.get_str("code"),
            "time": time.time(),
        }
        self.notifications.append(note)
        log.warning("notification: %s: %s", note["title"], note["msg"].replace("\n", " | "))

    async def resend_dls(self, station: str, ids: list[int] | None) -> int:
        """§5.16: publish poison records to each of their groups (the UI's "resend")."""
        name = validate_name(station, "Station")
        st = self.stations.get(name)
        if st is None:
            raise ReplyError(f"Station {name} does not exist")
        records = [
            r
            for r in sorted(self.dls.values(), key=lambda r: r.id)
            if r.station == name and r.type == "poison" and (ids is None or r.id in ids)
        ]
        sent = 0
        for rec in records:
            for group in rec.group_names():
                headers = {k: v for k, v in rec.headers.items() if k != "producedBy"}
                headers["$memphis_producedBy"] = "$memphis_dls"
                headers["$memphis_pm_id"] = str(rec.id)
                headers["$memphis_pm_cg_name"] = group
                data = bytes.fromhex(rec.data)
                st_int, cg_int = internal_name(name), internal_name(group)
                await self._nc.publish(f"$memphis_dls_{st_int}.{cg_int}", data, headers=headers)
                await self._nc.publish(f"$memphis_dls_{st_int}_{cg_int}", data, headers=headers)
                sent += 1
        await self._nc.flush()
        return sent

    def _save_or_drop_dls(self, rec: DlsRecord) -> None:
        # A poison record that no group is waiting for any more has been dealt with.
        if rec.type == "poison" and not rec.poisoned_cgs:
            self._delete_dls(rec)
        else:
            self._save_dls(rec)
