package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// startTestKafka starts an in-process Kafka with topic on one partition.
func startTestKafka(t *testing.T, topic string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func newKafkaTestTriggers(t *testing.T, brokers []string) (*Dispatcher, *triggerLog) {
	l := &triggerLog{}
	tr := New(Config{Environment: "dev", KafkaBrokers: brokers, Log: l.log})
	t.Cleanup(tr.Stop)
	return tr, l
}

func testKafkaTrigger(name, function, topic string, retry *v1alpha1.RetryPolicy) *v1alpha1.KafkaTrigger {
	kt := &v1alpha1.KafkaTrigger{ObjectMeta: metav1.ObjectMeta{Name: name}}
	kt.Spec.Function = function
	kt.Spec.Topic = topic
	kt.Spec.Retry = retry
	kt.Spec.InitialOffset = v1alpha1.OffsetEarliest
	return kt
}

func fastRetry(attempts int32, backoff time.Duration) *v1alpha1.RetryPolicy {
	return &v1alpha1.RetryPolicy{
		Attempts:   &attempts,
		Backoff:    &metav1.Duration{Duration: backoff},
		MaxBackoff: &metav1.Duration{Duration: backoff},
	}
}

// produce writes "order from" … "order from+n-1" with keys "k<i>"; even
// records carry a content-type header.
func produce(t *testing.T, brokers []string, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "order %d", i)}
		if i%2 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte("text/plain")}}
		}
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed is the group's committed offset of partition 0, -1 for none.
func committed(t *testing.T, brokers []string, group, topic string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Error(err)
		return -2
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		// The group has not been created yet (its first member has not
		// joined): it has committed nothing, which is what -1 says.
		return -1
	}
	if err != nil {
		t.Error(err)
		return -2
	}
	if o, ok := offs.Lookup(topic, 0); ok {
		return o.At
	}
	return -1
}

func TestTriggerKafka(t *testing.T) {
	t.Parallel()
	brokers := startTestKafka(t, "orders")
	produce(t, brokers, "orders", 0, 20)
	orders := newTriggerRecorder(t)
	tr, l := newKafkaTestTriggers(t, brokers)
	set := &manifests.Set{
		Functions:     []*v1alpha1.Function{testFunction("orders", nil)},
		KafkaTriggers: []*v1alpha1.KafkaTrigger{testKafkaTrigger("orders", "orders", "orders", nil)},
	}
	backends := to(map[string]*triggerRecorder{"orders": orders})
	if err := tr.Apply(t.Context(), set, backends); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "20 calls", func() bool { return len(orders.got()) >= 20 })
	waitFor(t, time.Minute, "offset 20 committed", func() bool { return committed(t, brokers, "ferry-dev-orders", "orders") == 20 })

	calls := orders.got()
	if len(calls) != 20 {
		t.Fatalf("%d calls for 20 records", len(calls))
	}
	for i, c := range calls {
		want := map[string]string{
			"ce-specversion": "1.0",
			"ce-id":          fmt.Sprintf("orders-0-%d", i),
			"ce-source":      "/ferry/dev/kafka/orders",
			"ce-type":        "dev.ferry.kafka.record",
			"ce-kafkakey":    fmt.Sprintf("k%d", i),
		}
		for h, v := range want {
			if c.ce[h] != v {
				t.Errorf("call %d: %s = %q, want %q", i, h, c.ce[h], v)
			}
		}
		if at, err := time.Parse(time.RFC3339Nano, c.ce["ce-time"]); err != nil || time.Since(at) > time.Minute {
			t.Errorf("call %d: ce-time %q is not the record's timestamp (%v)", i, c.ce["ce-time"], err)
		}
		// In order: one partition's records are dispatched one by one.
		if c.body != fmt.Sprintf("order %d", i) {
			t.Errorf("call %d: body %q", i, c.body)
		}
		if want := map[bool]string{true: "text/plain", false: "application/octet-stream"}[i%2 == 0]; c.contentType != want {
			t.Errorf("call %d: Content-Type %q, want %q", i, c.contentType, want)
		}
	}

	// The same set again keeps the same group member.
	before := tr.running["kafka/orders"]
	if err := tr.Apply(t.Context(), set, backends); err != nil {
		t.Fatal(err)
	}
	if tr.running["kafka/orders"] != before {
		t.Fatal("applying the same set restarted the Kafka trigger")
	}
	produce(t, brokers, "orders", 20, 1)
	waitFor(t, time.Minute, "the 21st record", func() bool { return len(orders.got()) == 21 })

	// Removed, it leaves the group, and records that come later wait for it.
	if err := tr.Apply(t.Context(), &manifests.Set{Functions: set.Functions}, backends); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the group left", func() bool { return groupMembers(t, brokers, "ferry-dev-orders") == 0 })
	produce(t, brokers, "orders", 21, 1)
	time.Sleep(300 * time.Millisecond)
	if n := len(orders.got()); n != 21 {
		t.Errorf("%d calls after the trigger was removed, want 21", n)
	}
	if s := l.String(); s != "" {
		t.Errorf("unexpected log:\n%s", s)
	}
}

func groupMembers(t *testing.T, brokers []string, group string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gs, err := kadm.NewClient(cl).DescribeGroups(t.Context(), group)
	if err != nil {
		return -1
	}
	return len(gs[group].Members)
}

func TestTriggerKafkaRetry(t *testing.T) {
	t.Parallel()
	brokers := startTestKafka(t, "jobs")
	const group = "ferry-dev-jobs"
	flaky := newTriggerRecorder(t)
	var commitBefore200 atomic.Int64 // set by the handler
	commitBefore200.Store(-3)
	flaky.status = func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		commitBefore200.Store(committed(t, brokers, group, "jobs"))
		return http.StatusOK
	}
	tr, l := newKafkaTestTriggers(t, brokers)
	set := &manifests.Set{
		Functions:     []*v1alpha1.Function{testFunction("flaky", nil)},
		KafkaTriggers: []*v1alpha1.KafkaTrigger{testKafkaTrigger("jobs", "flaky", "jobs", fastRetry(3, 50*time.Millisecond))},
	}
	if err := tr.Apply(t.Context(), set, to(map[string]*triggerRecorder{"flaky": flaky})); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "jobs", 0, 1)
	waitFor(t, time.Minute, "offset 1 committed", func() bool { return committed(t, brokers, group, "jobs") == 1 })

	calls := flaky.got()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want a 500 and a 200", len(calls))
	}
	if calls[0].ce["ce-id"] != "jobs-0-0" || calls[1].ce["ce-id"] != "jobs-0-0" {
		t.Errorf("ce-id %q then %q, want jobs-0-0 for both", calls[0].ce["ce-id"], calls[1].ce["ce-id"])
	}
	if before := commitBefore200.Load(); before != -1 {
		t.Errorf("committed offset %d while the function had not answered 2xx, want none (-1)", before)
	}
	if s := l.String(); s != "" {
		t.Errorf("unexpected log:\n%s", s)
	}
}

// TestTriggerKafkaResume stops a trigger held by a failing record and
// starts another ferry on the same group: it takes over at the last commit.
func TestTriggerKafkaResume(t *testing.T) {
	t.Parallel()
	brokers := startTestKafka(t, "orders")
	const group = "ferry-dev-orders"
	produce(t, brokers, "orders", 0, 20)
	set := &manifests.Set{
		Functions:     []*v1alpha1.Function{testFunction("orders", nil)},
		KafkaTriggers: []*v1alpha1.KafkaTrigger{testKafkaTrigger("orders", "orders", "orders", fastRetry(1, 20*time.Millisecond))},
	}

	// The first answers the first ten records, then fails from order 10 on.
	first := newTriggerRecorder(t)
	first.status = func(n int) int {
		if n <= 10 {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	tr1, l1 := newKafkaTestTriggers(t, brokers)
	if err := tr1.Apply(t.Context(), set, to(map[string]*triggerRecorder{"orders": first})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "offset 10 committed", func() bool { return committed(t, brokers, group, "orders") == 10 })
	waitFor(t, time.Minute, "order 10 tried again", func() bool { return len(first.got()) >= 13 })
	tr1.Stop()
	for i, c := range first.got() {
		if want := fmt.Sprintf("order %d", min(i, 10)); c.body != want {
			t.Errorf("first: call %d was %q, want %q: a held partition went past its record", i, c.body, want)
		}
	}
	if n := committed(t, brokers, group, "orders"); n != 10 {
		t.Errorf("committed %d after the failing record, want 10", n)
	}
	if !strings.Contains(l1.String(), "tries it again") {
		t.Errorf("the held record was not logged:\n%s", l1)
	}

	second := newTriggerRecorder(t)
	tr2, l2 := newKafkaTestTriggers(t, brokers)
	if err := tr2.Apply(t.Context(), set, to(map[string]*triggerRecorder{"orders": second})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "offset 20 committed", func() bool { return committed(t, brokers, group, "orders") == 20 })
	calls := second.got()
	if len(calls) != 10 {
		t.Errorf("second got %d calls, want orders 10 to 19", len(calls))
	}
	for i, c := range calls {
		if want := fmt.Sprintf("order %d", 10+i); c.body != want || c.ce["ce-id"] != fmt.Sprintf("orders-0-%d", 10+i) {
			t.Errorf("second: call %d was %q (%s), want %q", i, c.body, c.ce["ce-id"], want)
		}
	}
	if s := l2.String(); s != "" {
		t.Errorf("unexpected log:\n%s", s)
	}
}

func TestTriggerKafkaApplyRefuses(t *testing.T) {
	t.Parallel()
	f := newTriggerRecorder(t)
	backends := to(map[string]*triggerRecorder{"f": f})
	good := &manifests.Set{
		Functions:    []*v1alpha1.Function{testFunction("f", nil)},
		CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("daily", "f", "@daily", "")},
	}
	withKafka := &manifests.Set{
		Functions:     good.Functions,
		KafkaTriggers: []*v1alpha1.KafkaTrigger{testKafkaTrigger("orders", "f", "orders", nil)},
	}
	for _, tc := range []struct {
		name    string
		brokers []string
		want    string
	}{
		{"no brokers", nil, "the environment has no Kafka brokers configured"},
		{"blank brokers", []string{" "}, "the environment has no Kafka brokers configured"},
		{"unreachable", []string{"127.0.0.1:1"}, "connecting to Kafka at 127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, _ := newKafkaTestTriggers(t, tc.brokers)
			if err := tr.Apply(t.Context(), good, backends); err != nil {
				t.Fatal(err)
			}
			before := tr.running["cron/daily"]
			err := tr.Apply(t.Context(), withKafka, backends)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "KafkaTrigger orders") {
				t.Fatalf("apply: %v; want an error naming KafkaTrigger orders with %q", err, tc.want)
			}
			if len(tr.running) != 1 || tr.running["cron/daily"] != before || len(tr.cron.Entries()) != 1 {
				t.Errorf("a failed apply changed the running triggers: %v", tr.running)
			}
		})
	}
}
