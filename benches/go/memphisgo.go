package main

// memphis.go's paths, through its public API only: Connect, CreateProducer, Produce (with
// SyncProduce() / AsyncProduce()), CreateConsumer in the bench's consumer group, Fetch and
// Consume, Msg.Ack. The one exception is flushConn, a round trip on the client's own NATS
// connection at the end of the consume paths (memphis.go has no Flush; memphis-py's runners
// call broker_manager.flush() there).

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/memphisdev/memphis.go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consumeMaxWait is the Consume variant's BatchMaxWaitTime: memphis.go's pulls wait for a full
// batch up to this long (its default, 5 s, would stall the end of every partition whose count
// is not a multiple of the batch); short enough for the partial last batches, long enough
// for nats-server to deliver a full one.
const consumeMaxWait = 10 * time.Millisecond

var memphisGoHandlers = map[string]handler{
	"produce-sync":        memphisProduceSync,
	"produce-nonblocking": memphisProduceNonblocking,
	"consume-ack":         memphisConsumeAck,
	"latency":             memphisLatency,
	"connect":             memphisConnectPath,
}

func memphisConnect(a *Args, host string) (*memphis.Conn, error) {
	opts := []memphis.Option{memphis.Port(a.Port), memphis.Reconnect(false), memphis.AccountId(a.AccountID)}
	if a.Token != "" {
		opts = append(opts, memphis.ConnectionToken(a.Token))
	} else {
		opts = append(opts, memphis.Password(a.Password))
	}
	return memphis.Connect(host, a.User, opts...)
}

// flushConn: a PING/PONG round trip on memphis.go's NATS connection (everything written
// before, the acks, has reached the server). Read from the unexported field by reflection.
func flushConn(c *memphis.Conn) error {
	f := reflect.ValueOf(c).Elem().FieldByName("brokerConn")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*nats.Conn)(nil)) {
		return fmt.Errorf("memphis.Conn has no brokerConn *nats.Conn field")
	}
	nc := *(**nats.Conn)(unsafe.Pointer(f.UnsafeAddr()))
	return nc.Flush()
}

func memphisProduceSync(a *Args) Result {
	conn, err := memphisConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer conn.Close()
	p, err := conn.CreateProducer(a.Station, producerName)
	if err != nil {
		return errResult(a, "producer: %v", err)
	}
	payload := makePayload(a.Payload)
	for i := 0; i < warmup; i++ {
		if err := p.Produce(payload, memphis.SyncProduce()); err != nil {
			return errResult(a, "warm-up produce: %v", err)
		}
	}
	n := a.Messages
	lat := make([]int64, n)
	meter := newMeter(a.NatsPid)
	meter.Start()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := p.Produce(payload, memphis.SyncProduce()); err != nil {
			return errResult(a, "produce %d: %v", i, err)
		}
		lat[i] = int64(time.Since(t0))
	}
	meter.Stop()
	return result(a, outcome{messages: n, meter: meter, latencies: lat, ok: true, acked: intp(n),
		extra: map[string]any{"warmup": warmup}})
}

// memphisProduceNonblocking: AsyncProduce (memphis.go's default), which returns once the
// message is written and never reports its acknowledgement. The timed section ends with one
// SyncProduce per partition: a partition's stream stores in order, so its acknowledgement
// comes after every earlier message to it was stored. Those messages count with the warm-up
// in the bench's stored check.
func memphisProduceNonblocking(a *Args) Result {
	conn, err := memphisConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer conn.Close()
	p, err := conn.CreateProducer(a.Station, producerName)
	if err != nil {
		return errResult(a, "producer: %v", err)
	}
	payload := makePayload(a.Payload)
	for i := 0; i < warmup; i++ {
		if err := p.Produce(payload, memphis.SyncProduce()); err != nil {
			return errResult(a, "warm-up produce: %v", err)
		}
	}
	n := a.Messages
	meter := newMeter(a.NatsPid)
	meter.Start()
	for i := 0; i < n; i++ {
		if err := p.Produce(payload, memphis.AsyncProduce()); err != nil {
			return errResult(a, "produce %d: %v", i, err)
		}
	}
	for part := 1; part <= a.Partitions; part++ {
		opts := []memphis.ProduceOpt{memphis.SyncProduce()}
		if a.Partitions > 1 {
			opts = append(opts, memphis.ProducerPartitionNumber(part))
		}
		if err := p.Produce(payload, opts...); err != nil {
			return errResult(a, "closing sync produce on partition %d: %v", part, err)
		}
	}
	meter.Stop()
	extra := map[string]any{"warmup": warmup + a.Partitions, "tail_sync": a.Partitions}
	// Proof that the closing sync produces waited for everything: the streams' count right
	// after the timed section (untimed, on a separate connection).
	if stored, err := natsSideStored(a); err == nil {
		extra["stored_at_stop"] = stored
	}
	return result(a, outcome{messages: n, meter: meter, ok: true, extra: extra})
}

// natsSidePending opens a plain nats.go connection for reading the consumer group's pending counts
// before the timed section (memphis.go does not expose them); it is closed before timing.
func natsSidePending(a *Args) ([]int, error) {
	nc, err := natsConnect(a, a.Host)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	_, left, err := pendingPerPartition(js, a)
	return left, err
}

// natsSideStored: the messages in the station's streams, read on a separate nats.go connection.
func natsSideStored(a *Args) (int, error) {
	nc, err := natsConnect(a, a.Host)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	total := 0
	for _, name := range streamNames(a.Station, a.Partitions) {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		total += int(st.CachedInfo().State.Msgs)
	}
	return total, nil
}

func memphisConsumer(conn *memphis.Conn, a *Args, batch int, maxWait time.Duration) (*memphis.Consumer, error) {
	return conn.CreateConsumer(a.Station, consumerName,
		memphis.ConsumerGroup(consumerGroup),
		memphis.BatchSize(batch),
		memphis.PullInterval(time.Millisecond), // as the Python runners' pull_interval_ms=1
		memphis.BatchMaxWaitTime(maxWait),
		memphis.ConsumerErrorHandler(func(_ *memphis.Consumer, err error) {
			fmt.Fprintf(os.Stderr, "memphis.go consumer: %v\n", err)
		}),
	)
}

func memphisConsumeAck(a *Args) Result {
	if a.Variant != "fetch" && a.Variant != "consume" {
		return errResult(a, "consume-ack variants are fetch and consume, not %q", a.Variant)
	}
	conn, err := memphisConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer conn.Close()
	maxWait := 5 * time.Second // memphis.go's default
	if a.Variant == "consume" {
		maxWait = consumeMaxWait
	}
	c, err := memphisConsumer(conn, a, a.Batch, maxWait)
	if err != nil {
		return errResult(a, "consumer: %v", err)
	}
	n := a.Messages
	left, err := natsSidePending(a)
	if err != nil {
		return errResult(a, "pending counts: %v", err)
	}
	if err := checkPending(left, n); err != nil {
		return errResult(a, "%v", err)
	}
	received, nbytes, batches := 0, 0, 0 // batches: non-empty deliveries to the caller
	var ackErr error
	meter := newMeter(a.NatsPid)
	if a.Variant == "consume" {
		done := make(chan struct{})
		finished := false // only the consume goroutine touches the counters until done
		handler := func(msgs []*memphis.Msg, err error, _ context.Context) {
			if finished {
				return
			}
			for _, m := range msgs {
				nbytes += len(m.Data())
				if e := m.Ack(); e != nil && ackErr == nil {
					ackErr = e
				}
			}
			received += len(msgs)
			if len(msgs) > 0 {
				batches++
			}
			if received >= n {
				finished = true
				close(done)
			}
		}
		meter.Start()
		if err := c.Consume(handler); err != nil {
			return errResult(a, "consume: %v", err)
		}
		select {
		case <-done:
		case <-time.After(time.Duration(60+n/1000) * time.Second):
			return errResult(a, "not all %d messages were received within the timeout", n)
		}
	} else {
		// Fetch(batch) round-robin over the partitions, at most what is left on each.
		meter.Start()
		for rr, idle := 0, 0; received < n; rr++ {
			part := rr%a.Partitions + 1
			want := min(a.Batch, left[part-1])
			if want == 0 {
				if idle++; idle <= a.Partitions {
					continue
				}
				want = a.Batch
			}
			var opts []memphis.ConsumingOpt
			if a.Partitions > 1 {
				opts = append(opts, memphis.ConsumerPartitionNumber(part))
			}
			msgs, err := c.Fetch(want, false, opts...)
			if err != nil {
				return errResult(a, "fetch: %v", err)
			}
			for _, m := range msgs {
				nbytes += len(m.Data())
				if err := m.Ack(); err != nil {
					return errResult(a, "ack: %v", err)
				}
			}
			left[part-1] = max(0, left[part-1]-len(msgs))
			received += len(msgs)
			if len(msgs) > 0 {
				idle = 0
				batches++
			}
		}
	}
	if err := flushConn(conn); err != nil {
		return errResult(a, "flush: %v", err)
	}
	meter.Stop()
	ok := received == n && nbytes == n*a.Payload && ackErr == nil
	o := outcome{messages: n, meter: meter, ok: ok, acked: intp(received),
		extra: map[string]any{"batch_max_wait_ms": maxWait.Milliseconds(), "batches": batches}}
	if !ok {
		o.err = fmt.Sprintf("received %d messages / %d bytes, expected %d (ack error: %v)", received, nbytes, n, ackErr)
	}
	return result(a, o)
}

// memphisLatency: one message in flight: AsyncProduce, wait for it in a Consume handler
// (batch 1), as the memphis-py API runners' latency path.
func memphisLatency(a *Args) Result {
	conn, err := memphisConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer conn.Close()
	p, err := conn.CreateProducer(a.Station, producerName)
	if err != nil {
		return errResult(a, "producer: %v", err)
	}
	c, err := memphisConsumer(conn, a, 1, time.Second)
	if err != nil {
		return errResult(a, "consumer: %v", err)
	}
	payload := makePayload(a.Payload)
	recv := make(chan int64, 1)
	var received atomic.Int64
	handler := func(msgs []*memphis.Msg, err error, _ context.Context) {
		if len(msgs) == 0 {
			return
		}
		t := time.Now().UnixNano()
		for _, m := range msgs {
			_ = m.Ack()
		}
		received.Add(int64(len(msgs)))
		recv <- t
	}
	if err := c.Consume(handler); err != nil {
		return errResult(a, "consume: %v", err)
	}
	n := a.Messages
	lat := make([]int64, n)
	meter := newMeter(a.NatsPid)
	meter.Start()
	for i := 0; i < n; i++ {
		t0 := time.Now().UnixNano()
		if err := p.Produce(payload, memphis.AsyncProduce()); err != nil {
			return errResult(a, "produce %d: %v", i, err)
		}
		select {
		case t := <-recv:
			lat[i] = t - t0
		case <-time.After(30 * time.Second):
			return errResult(a, "message %d not received within 30 s", i)
		}
	}
	if err := flushConn(conn); err != nil {
		return errResult(a, "flush: %v", err)
	}
	meter.Stop()
	got := int(received.Load())
	ok := got == n
	o := outcome{messages: n, meter: meter, latencies: lat, ok: ok, acked: intp(got)}
	if !ok {
		o.err = fmt.Sprintf("received %d of %d", got, n)
	}
	return result(a, o)
}

func memphisConnectPath(a *Args) Result {
	lat := make([]int64, 0, a.Connects)
	for i := 0; i < a.Connects; i++ {
		t0 := time.Now()
		conn, err := memphisConnect(a, a.ConnectHost)
		if err != nil {
			return errResult(a, "connect: %v", err)
		}
		lat = append(lat, int64(time.Since(t0)))
		conn.Close()
	}
	return result(a, outcome{ok: true, latencies: lat,
		extra: map[string]any{"connects": a.Connects, "host": a.ConnectHost}})
}
