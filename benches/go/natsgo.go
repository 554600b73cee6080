package main

// nats.go's paths, with its JetStream API (github.com/nats-io/nats.go/jetstream) on the
// station's streams: the same subjects (<station>$<p>.final) and the same two Memphis headers
// as runner_raw.py and runner_natspy.py send, round-robin over the partitions.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The pipelined window: memphis-fast's and the raw client's default (nats.go's own is 4000).
const publishWindow = 4096

var natsGoHandlers = map[string]handler{
	"produce-sync":        natsProduceSync,
	"produce-nonblocking": natsProduceNonblocking,
	"consume-ack":         natsConsumeAck,
	"latency":             natsLatency,
	"connect":             natsConnectPath,
}

func natsConnect(a *Args, host string) (*nats.Conn, error) {
	opts := []nats.Option{nats.NoReconnect(), nats.Name("bench-nats-go")}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
	} else {
		opts = append(opts, nats.UserInfo(fmt.Sprintf("%s$%d", a.User, a.AccountID), a.Password))
	}
	return nats.Connect(fmt.Sprintf("nats://%s:%d", host, a.Port), opts...)
}

func finalSubjects(a *Args) []string {
	streams := streamNames(a.Station, a.Partitions)
	out := make([]string, len(streams))
	for i, s := range streams {
		out[i] = s + ".final"
	}
	return out
}

// memphisHeaders are the two headers every Memphis producer sends.
func memphisHeaders() nats.Header {
	return nats.Header{
		"$memphis_producedBy":   []string{producerName},
		"$memphis_connectionId": []string{uuid4()},
	}
}

func natsProduceSync(a *Args) Result {
	nc, err := natsConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return errResult(a, "jetstream: %v", err)
	}
	subjects := finalSubjects(a)
	ns := len(subjects)
	hdr := memphisHeaders()
	payload := makePayload(a.Payload)
	ctx := context.Background()
	for i := 0; i < warmup; i++ {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects[i%ns], Header: hdr, Data: payload}); err != nil {
			return errResult(a, "warm-up publish: %v", err)
		}
	}
	n := a.Messages
	lat := make([]int64, n)
	meter := newMeter(a.NatsPid)
	meter.Start()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects[i%ns], Header: hdr, Data: payload}); err != nil {
			return errResult(a, "publish %d: %v", i, err)
		}
		lat[i] = int64(time.Since(t0))
	}
	meter.Stop()
	return result(a, outcome{messages: n, meter: meter, latencies: lat, ok: true, acked: intp(n),
		extra: map[string]any{"warmup": warmup}})
}

func natsProduceNonblocking(a *Args) Result {
	nc, err := natsConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer nc.Close()
	var failed atomic.Int64
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(publishWindow),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, _ error) { failed.Add(1) }),
	)
	if err != nil {
		return errResult(a, "jetstream: %v", err)
	}
	subjects := finalSubjects(a)
	ns := len(subjects)
	hdr := memphisHeaders()
	payload := makePayload(a.Payload)
	ctx := context.Background()
	for i := 0; i < warmup; i++ {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects[i%ns], Header: hdr, Data: payload}); err != nil {
			return errResult(a, "warm-up publish: %v", err)
		}
	}
	n := a.Messages
	// A stall (a full window) waits up to this long for room before PublishMsgAsync fails;
	// nats.go's default of 200 ms is short on a busy 2-core machine.
	stall := jetstream.WithStallWait(5 * time.Second)
	meter := newMeter(a.NatsPid)
	meter.Start()
	for i := 0; i < n; i++ {
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subjects[i%ns], Header: hdr, Data: payload}, stall); err != nil {
			return errResult(a, "publish %d: %v", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		return errResult(a, "%d acknowledgements still pending after 60 s", js.PublishAsyncPending())
	}
	meter.Stop()
	bad := int(failed.Load())
	ok := bad == 0
	o := outcome{messages: n, meter: meter, ok: ok, acked: intp(n - bad), failed: bad,
		extra: map[string]any{"warmup": warmup, "window": publishWindow}}
	if !ok {
		o.err = fmt.Sprintf("%d failed, %d acked of %d", bad, n-bad, n)
	}
	return result(a, o)
}

// pendingPerPartition reads, before the timed section, how many messages wait for the consumer
// group on each partition (the bench preloads them round-robin). Fetches ask for at most that
// many, so that no fetch waits for its expiry at the end of a partition.
func pendingPerPartition(js jetstream.JetStream, a *Args) ([]jetstream.Consumer, []int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	durable := internalName(consumerGroup)
	var cons []jetstream.Consumer
	var left []int
	for _, s := range streamNames(a.Station, a.Partitions) {
		c, err := js.Consumer(ctx, s, durable)
		if err != nil {
			return nil, nil, fmt.Errorf("consumer %s on %s: %w", durable, s, err)
		}
		cons = append(cons, c)
		left = append(left, int(c.CachedInfo().NumPending))
	}
	return cons, left, nil
}

// checkPending: the consume paths read a preloaded station; fewer messages than the run
// needs would leave the last fetches waiting for their expiry, again and again.
func checkPending(left []int, n int) error {
	total := 0
	for _, v := range left {
		total += v
	}
	if total < n {
		return fmt.Errorf("only %d messages wait for %s on the station's partitions %v, the run needs %d", total, consumerGroup, left, n)
	}
	return nil
}

func natsConsumeAck(a *Args) Result {
	nc, err := natsConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return errResult(a, "jetstream: %v", err)
	}
	cons, left, err := pendingPerPartition(js, a)
	if err != nil {
		return errResult(a, "%v", err)
	}
	n := a.Messages
	if err := checkPending(left, n); err != nil {
		return errResult(a, "%v", err)
	}
	received, nbytes, rr, idle, batches := 0, 0, 0, 0, 0
	meter := newMeter(a.NatsPid)
	meter.Start()
	for received < n {
		p := rr % len(cons)
		rr++
		want := min(a.Batch, left[p])
		if want == 0 {
			if idle++; idle > len(cons) {
				// Every partition is drained as far as it was counted: fetch on, in case more
				// arrived (pulls then end at their expiry).
				want = a.Batch
			} else {
				continue
			}
		}
		batch, err := cons[p].Fetch(want, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return errResult(a, "fetch: %v", err)
		}
		got := 0
		for msg := range batch.Messages() {
			nbytes += len(msg.Data())
			if err := msg.Ack(); err != nil {
				return errResult(a, "ack: %v", err)
			}
			got++
		}
		if err := batch.Error(); err != nil {
			return errResult(a, "fetch: %v", err)
		}
		left[p] = max(0, left[p]-got)
		received += got
		if got > 0 {
			idle = 0
			batches++
		}
	}
	if err := nc.Flush(); err != nil { // every ack has reached the server
		return errResult(a, "flush: %v", err)
	}
	meter.Stop()
	ok := received == n && nbytes == n*a.Payload
	o := outcome{messages: n, meter: meter, ok: ok, acked: intp(received), extra: map[string]any{"batches": batches}}
	if !ok {
		o.err = fmt.Sprintf("received %d messages / %d bytes, expected %d", received, nbytes, n)
	}
	return result(a, o)
}

// natsLatency: one message in flight: PublishMsgAsync, then wait for it on a Fetch(1) loop
// (as runner_natspy's latency path).
func natsLatency(a *Args) Result {
	nc, err := natsConnect(a, a.Host)
	if err != nil {
		return errResult(a, "connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return errResult(a, "jetstream: %v", err)
	}
	cons, _, err := pendingPerPartition(js, a)
	if err != nil {
		return errResult(a, "%v", err)
	}
	cons0 := cons[0]
	subject := finalSubjects(a)[0]
	hdr := memphisHeaders()
	payload := makePayload(a.Payload)
	recv := make(chan int64, 1)
	var received atomic.Int64
	var running atomic.Bool
	running.Store(true)
	go func() {
		for running.Load() {
			batch, err := cons0.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				continue
			}
			for msg := range batch.Messages() {
				t := time.Now().UnixNano()
				_ = msg.Ack()
				received.Add(1)
				recv <- t
			}
		}
	}()
	n := a.Messages
	lat := make([]int64, n)
	futures := make([]jetstream.PubAckFuture, 0, n)
	meter := newMeter(a.NatsPid)
	meter.Start()
	for i := 0; i < n; i++ {
		t0 := time.Now().UnixNano()
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Header: hdr, Data: payload})
		if err != nil {
			return errResult(a, "publish %d: %v", i, err)
		}
		futures = append(futures, f)
		select {
		case t := <-recv:
			lat[i] = t - t0
		case <-time.After(30 * time.Second):
			return errResult(a, "message %d not received within 30 s", i)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return errResult(a, "publish: %v", err)
		}
	}
	if err := nc.Flush(); err != nil {
		return errResult(a, "flush: %v", err)
	}
	meter.Stop()
	running.Store(false)
	got := int(received.Load())
	ok := got == n
	o := outcome{messages: n, meter: meter, latencies: lat, ok: ok, acked: intp(got)}
	if !ok {
		o.err = fmt.Sprintf("received %d of %d", got, n)
	}
	return result(a, o)
}

func natsConnectPath(a *Args) Result {
	lat := make([]int64, 0, a.Connects)
	for i := 0; i < a.Connects; i++ {
		t0 := time.Now()
		nc, err := natsConnect(a, a.ConnectHost)
		if err != nil {
			return errResult(a, "connect: %v", err)
		}
		lat = append(lat, int64(time.Since(t0)))
		nc.Close()
	}
	return result(a, outcome{ok: true, latencies: lat,
		extra: map[string]any{"connects": a.Connects, "host": a.ConnectHost}})
}
