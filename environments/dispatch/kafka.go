package dispatch

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

const (
	// kafkaPingTimeout bounds the check at apply that a broker answers, so a
	// wrong address fails apply instead of a trigger that never consumes.
	kafkaPingTimeout = 5 * time.Second
	// kafkaCloseTimeout bounds leaving the group when a trigger stops: a
	// broker that is gone must not hold stop; the group then drops the
	// member after its session timeout.
	kafkaCloseTimeout = 5 * time.Second
	// kafkaCommitTimeout bounds one offset commit; a commit that fails is
	// logged and the next one carries the same offsets.
	kafkaCommitTimeout = 10 * time.Second
)

// kafkaSpec is what starting a KafkaTrigger's consumer depends on.
type kafkaSpec struct {
	brokers []string
	topic   string
	group   string
	reset   kgo.Offset
}

// kafkaConsumer is one KafkaTrigger's group member. Only the goroutine of
// consumeKafka touches it once started.
type kafkaConsumer struct {
	client *kgo.Client
	topic  string
	// stuck remembers, per partition, the record that still failed after a
	// round of retries and the functions that already answered it 2xx, so
	// the next round calls only the others.
	stuck   map[int32]stuckRecord
	lastErr string // the last fetch error logged, so a persistent one is logged once
}

type stuckRecord struct {
	offset int64
	done   map[string]bool // function names
}

// resolveKafka turns the set's KafkaTriggers into what runs.
func (t *Dispatcher) resolveKafka(set *manifests.Set) ([]*desiredTrigger, error) {
	if len(set.KafkaTriggers) == 0 {
		return nil, nil
	}
	// A KafkaTrigger names no brokers of its own: they belong to the
	// environment, as the NATS server does.
	var brokers []string
	for _, b := range t.cfg.KafkaBrokers {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("KafkaTrigger %s: the environment has no Kafka brokers configured; give the environment Kafka brokers (ferry run --kafka HOST:PORT) or remove the KafkaTriggers", set.KafkaTriggers[0].Name)
	}
	var want []*desiredTrigger
	for _, tr := range set.KafkaTriggers {
		name := "KafkaTrigger " + tr.Name
		targets, err := selectTargets(name, tr.Spec.FunctionTarget, set.Functions)
		if err != nil {
			return nil, err
		}
		if tr.Spec.Topic == "" {
			return nil, fmt.Errorf("%s: spec.topic is empty; give the Kafka topic to consume", name)
		}
		var reset kgo.Offset
		switch tr.Spec.InitialOffset {
		case "", v1alpha1.OffsetLatest:
			reset = kgo.NewOffset().AtEnd()
		case v1alpha1.OffsetEarliest:
			reset = kgo.NewOffset().AtStart()
		default:
			return nil, fmt.Errorf("%s: spec.initialOffset %q: want %s or %s", name, tr.Spec.InitialOffset, v1alpha1.OffsetLatest, v1alpha1.OffsetEarliest)
		}
		// As for NATS: one group per environment and trigger unless named,
		// so dev and prod each see every record.
		group := cmp.Or(tr.Spec.Group, "ferry-"+t.cfg.Environment+"-"+tr.Name)
		// The initial offset is in the key although it only matters to a
		// group with no commit: a changed spec is then applied, not ignored.
		key := strings.Join([]string{strings.Join(brokers, ","), tr.Spec.Topic, group, tr.Spec.InitialOffset}, "\x00")
		want = append(want, &desiredTrigger{
			id: "kafka/" + tr.Name, key: key,
			kafka: &kafkaSpec{brokers: brokers, topic: tr.Spec.Topic, group: group, reset: reset},
			plan:  &dispatchPlan{name: name, targets: targets, retry: retryFrom(tr.Spec.Retry)},
		})
	}
	return want, nil
}

// startKafka creates the trigger's group member and checks that a broker
// answers. Its consumer does not run until consumeKafka: apply may still
// undo it.
func (t *Dispatcher) startKafka(ctx context.Context, d *desiredTrigger) (*kafkaConsumer, error) {
	k := d.kafka
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.brokers...),
		kgo.ClientID("ferry-"+t.cfg.Environment),
		kgo.ConsumerGroup(k.group),
		kgo.ConsumeTopics(k.topic),
		kgo.ConsumeResetOffset(k.reset),
		// Offsets are committed by hand, once every function answered 2xx.
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and its commit, so an offset is never
		// committed for a partition another member already took over.
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: Kafka client for brokers %s: %w", d.plan.name, strings.Join(k.brokers, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, kafkaPingTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("%s: connecting to Kafka at %s: %w", d.plan.name, strings.Join(k.brokers, ","), err)
	}
	return &kafkaConsumer{client: cl, topic: k.topic, stuck: map[int32]stuckRecord{}}, nil
}

// consumeKafka is a KafkaTrigger's poll loop. It ends when the trigger is
// removed or the dispatcher stops (a drain): the records being called are
// finished, no other is taken, what every function answered is committed,
// then the client leaves the group, so the next member resumes right
// after the last commit.
//
// Delivery is at least once and nothing is skipped: a record whose calls
// still fail after the trigger's retries holds its partition. The
// partition is rewound to that record and paused for maxBackoff, then the
// record is tried again with a new round of retries, as long as it takes.
// Other partitions go on meanwhile. A later record of a held partition is
// never handled before it, so order within a partition is kept.
func (t *Dispatcher) consumeKafka(r *runningTrigger) {
	defer t.calls.Done()
	k := r.kafka
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), kafkaCloseTimeout)
		defer cancel()
		k.client.AllowRebalance()
		_ = k.client.LeaveGroupContext(ctx)
		k.client.Close()
	}()
	for {
		fetches := k.client.PollFetches(r.ctx)
		if r.ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			if msg := err.Error(); msg != k.lastErr {
				k.lastErr = msg
				t.cfg.Log("%s: fetching topic %s partition %d: %v", r.plan.Load().name, topic, p, err)
			}
		})
		t.handleKafka(r, fetches)
		k.client.AllowRebalance()
	}
}

// partitionResult is how far one partition of a poll got.
type partitionResult struct {
	last   *kgo.Record     // the last record every function answered
	failed *kgo.Record     // the record that held the partition
	done   map[string]bool // functions that answered failed
}

// handleKafka dispatches one poll's records, the partitions at once and
// each partition's records in order, then commits what every function
// answered.
func (t *Dispatcher) handleKafka(r *runningTrigger, fetches kgo.Fetches) {
	k := r.kafka
	p := r.plan.Load()
	var parts []kgo.FetchTopicPartition
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			parts = append(parts, fp)
		}
	})
	results := make([]partitionResult, len(parts))
	var wg sync.WaitGroup
	for i, fp := range parts {
		var done map[string]bool
		if s, ok := k.stuck[fp.Partition]; ok && s.offset == fp.Records[0].Offset {
			done = s.done
		}
		wg.Go(func() { results[i] = t.dispatchPartition(r, p, fp.Records, done) })
	}
	wg.Wait()
	// A removed or stopping trigger still commits what every function
	// answered, so the group's next member starts right after it; a held
	// record is left to that member.
	stopping := r.ctx.Err() != nil

	var commit []*kgo.Record
	for _, res := range results {
		if res.last != nil {
			commit = append(commit, res.last)
		}
		if stopping {
			continue
		}
		if res.failed == nil {
			if res.last != nil {
				delete(k.stuck, res.last.Partition)
			}
			continue
		}
		rec := res.failed
		k.stuck[rec.Partition] = stuckRecord{offset: rec.Offset, done: res.done}
		// Pause before rewinding, so no fetch runs between the two; the
		// rewind drops what was buffered after the record.
		tp := map[string][]int32{rec.Topic: {rec.Partition}}
		k.client.PauseFetchPartitions(tp)
		k.client.SetOffsets(map[string]map[int32]kgo.EpochOffset{
			rec.Topic: {rec.Partition: {Epoch: rec.LeaderEpoch, Offset: rec.Offset}},
		})
		time.AfterFunc(p.retry.maxBackoff, func() { k.client.ResumeFetchPartitions(tp) })
	}
	if len(commit) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), kafkaCommitTimeout)
	defer cancel()
	if err := k.client.CommitRecords(ctx, commit...); err != nil {
		t.cfg.Log("%s: committing offsets of topic %s: %v; the next commit carries them, and a restart before it calls the functions again with the same ce-id", p.name, k.topic, err)
	}
}

// dispatchPartition sends recs, in order, to every target, and stops at the
// first record a target still fails after its retries. done lists the
// functions that already answered the first record in an earlier round.
func (t *Dispatcher) dispatchPartition(r *runningTrigger, p *dispatchPlan, recs []*kgo.Record, done map[string]bool) partitionResult {
	var res partitionResult
	for i, rec := range recs {
		if r.ctx.Err() != nil {
			// Stopping: the record in hand was finished; the rest of the
			// poll is the next member's.
			return res
		}
		if i > 0 {
			done = nil
		}
		ev := t.kafkaEvent(rec)
		answered := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, fn := range p.targets {
			if done[fn] {
				answered[fn] = true
				continue
			}
			wg.Go(func() {
				err := t.deliver(r.ctx, p, fn, ev)
				if err == nil {
					mu.Lock()
					answered[fn] = true
					mu.Unlock()
					return
				}
				if r.ctx.Err() == nil {
					t.cfg.Log("%s: function %s: record %s: %v; the partition waits %s and tries it again, skipping nothing", p.name, fn, ev.ID, err, p.retry.maxBackoff)
				}
			})
		}
		wg.Wait()
		if len(answered) < len(p.targets) {
			res.failed, res.done = rec, answered
			return res
		}
		res.last = rec
	}
	return res
}

// kafkaEvent is the CloudEvent of a record. Its id is the record's place
// in the log, so every target, retry and redelivery of the record shares it
// and a function can drop duplicates.
//
// ce-kafkakey carries the key as is when it is valid UTF-8 (the usual
// string keys stay readable; environments.CEEscape percent-encodes what a header cannot
// hold), else in standard base64 with ce-kafkakeyencoding: base64. A record
// with no key has neither.
func (t *Dispatcher) kafkaEvent(rec *kgo.Record) *environments.Event {
	ext := map[string]string{
		"kafkapartition": strconv.Itoa(int(rec.Partition)),
		"kafkaoffset":    strconv.FormatInt(rec.Offset, 10),
	}
	if rec.Key != nil {
		if utf8.Valid(rec.Key) {
			ext["kafkakey"] = string(rec.Key)
		} else {
			ext["kafkakey"] = base64.StdEncoding.EncodeToString(rec.Key)
			ext["kafkakeyencoding"] = "base64"
		}
	}
	contentType := "application/octet-stream"
	for _, h := range rec.Headers {
		if strings.EqualFold(h.Key, "content-type") && len(h.Value) > 0 {
			contentType = string(h.Value)
			break
		}
	}
	return &environments.Event{
		ID:          fmt.Sprintf("%s-%d-%d", rec.Topic, rec.Partition, rec.Offset),
		Source:      "/ferry/" + t.cfg.Environment + "/kafka/" + rec.Topic,
		Type:        KafkaEventType,
		Time:        rec.Timestamp.UTC(),
		ContentType: contentType,
		Data:        rec.Value,
		Extensions:  ext,
	}
}
