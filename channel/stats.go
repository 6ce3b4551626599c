package channel

// Stats are a channel's counters since it opened. It is the one table
// of them: each field's tags say where it is shown. The json and msgpack
// tags (always alike) name it in the control answers stats and
// showchannel ("-": not shown); metric and help name it on the
// Prometheus endpoint (no metric tag: not exported). An int field is a
// value now (a gauge), a uint64 field a count since the channel opened.
// Every field is an int or a uint64, so that the server can sum them.
type Stats struct {
	Clients int `json:"clients" msgpack:"clients" metric:"netcluster_channel_clients" help:"Clients connected to the channel."`
	// Undecided counts connections that have said nothing yet, within
	// the JSON grace; events for them are held.
	Undecided     int    `json:"-" msgpack:"-"`
	EventsIn      uint64 `json:"events_in" msgpack:"events_in" metric:"netcluster_channel_events_in_total" help:"Events received from the channel's clients."`
	BytesIn       uint64 `json:"bytes_in" msgpack:"bytes_in" metric:"netcluster_channel_bytes_in_total" help:"Bytes of the events received from the channel's clients."`
	FramesOut     uint64 `json:"frames_out" msgpack:"frames_out" metric:"netcluster_channel_frames_out_total" help:"Frames queued for the channel's clients."`
	BytesOut      uint64 `json:"bytes_out" msgpack:"bytes_out" metric:"netcluster_channel_bytes_out_total" help:"Bytes of the frames queued for the channel's clients."`
	Dropped       uint64 `json:"dropped" msgpack:"dropped" metric:"netcluster_channel_dropped_total" help:"Events not delivered to a client because it was closing or slow: let go from its queue, or cut off when its connection ended."`
	SlowConsumers uint64 `json:"slow_consumers" msgpack:"slow_consumers" metric:"netcluster_channel_slow_consumer_disconnects_total" help:"Clients disconnected for passing maxpending."`
	TooBig        uint64 `json:"too_big" msgpack:"too_big" metric:"netcluster_channel_too_big_disconnects_total" help:"Clients disconnected for a frame over maxframe."`
	Undeliverable uint64 `json:"undeliverable" msgpack:"undeliverable" metric:"netcluster_channel_undeliverable_total" help:"Addressed events (replies) sent on the channel whose client was not connected."`
	// Filtered counts the events not forwarded to a client because it
	// declared that it does not listen to them: once per event and
	// client skipped.
	Filtered uint64 `json:"filtered" msgpack:"filtered" metric:"netcluster_channel_filtered_total" help:"Events not forwarded to a client because it does not listen to them."`
	// JSONEncoded counts events this channel put into JSON text form for
	// its JSON clients: once per event, however many of them hear it.
	JSONEncoded  uint64 `json:"-" msgpack:"-"`
	PingTimeouts uint64 `json:"ping_timeouts" msgpack:"ping_timeouts" metric:"netcluster_channel_ping_timeout_disconnects_total" help:"Clients disconnected for sending nothing, not even the answer to a ping, for pingtimeout."`
	// The refusals of Access: connections the allow list refused,
	// connections over maxclients or maxclientsperuid, and clients
	// dropped for sending an event that the publish list does not let
	// them send.
	RefusedAllow   uint64 `json:"refused_allow" msgpack:"refused_allow" metric:"netcluster_channel_refused_allow_total" help:"Connections refused because the channel's allow list does not admit their user."`
	RefusedLimit   uint64 `json:"refused_limit" msgpack:"refused_limit" metric:"netcluster_channel_refused_limit_total" help:"Connections refused for being over maxclients or maxclientsperuid."`
	RefusedPublish uint64 `json:"refused_publish" msgpack:"refused_publish" metric:"netcluster_channel_refused_publish_total" help:"Clients dropped for sending an event that the channel's publish list does not let them send."`
	// Pending is what is queued for the channel's clients now, in bytes:
	// the sum of their pending (ClientInfo.Pending).
	Pending int `json:"pending" msgpack:"pending" metric:"netcluster_channel_pending_bytes" help:"Bytes queued for the channel's clients now."`
	// Stalls counts the times a publisher, or the network link, was held
	// because a client of this channel was past its high-water mark
	// (overflow "block"); StalledMicros is how long they were held in
	// all, and StallTimeouts the clients dropped for taking nothing for
	// stalltimeout meanwhile.
	Stalls        uint64 `json:"stalls" msgpack:"stalls" metric:"netcluster_channel_stalls_total" help:"Times a publisher or the network link was held because a client of the channel was past its high-water mark."`
	StalledMicros uint64 `json:"stalled_us" msgpack:"stalled_us" metric:"netcluster_channel_stalled_microseconds_total" help:"Total time publishers and the network link were held by the channel's clients, in microseconds."`
	StallTimeouts uint64 `json:"stall_timeouts" msgpack:"stall_timeouts" metric:"netcluster_channel_stall_timeout_disconnects_total" help:"Clients disconnected as slow consumers for taking nothing for stalltimeout while a publisher was held for them."`
	// The ring of retained events (retain.go).
	Retained      int    `json:"retained" msgpack:"retained" metric:"netcluster_channel_retained_events" help:"Events retained for clients that resume."`
	RetainedBytes int    `json:"retained_bytes" msgpack:"retained_bytes" metric:"netcluster_channel_retained_bytes" help:"Bytes the retained events take, frames and bookkeeping, which retainbytes bounds."`
	Evicted       uint64 `json:"retain_evicted" msgpack:"retain_evicted" metric:"netcluster_channel_retain_evicted_total" help:"Events that left the ring of retained events, for retainbytes or retainage."`
	Replayed      uint64 `json:"replayed" msgpack:"replayed" metric:"netcluster_channel_replayed_total" help:"Retained events sent to clients that resumed or asked for history."`
	Missed        uint64 `json:"missed" msgpack:"missed" metric:"netcluster_channel_missed_total" help:"Events that clients resuming had missed and that were no longer retained; each such client was told how many."`
}

// Stats returns the channel's counters.
func (ch *Channel) Stats() Stats {
	st := Stats{
		EventsIn: ch.eventsIn.Load(), BytesIn: ch.bytesIn.Load(),
		FramesOut: ch.framesOut.Load(), BytesOut: ch.bytesOut.Load(),
		SlowConsumers: ch.slow.Load(), TooBig: ch.tooBig.Load(),
		Dropped: ch.dropped.Load(), Undeliverable: ch.undeliverable.Load(), Filtered: ch.filtered.Load(), JSONEncoded: ch.jsonEncoded.Load(),
		PingTimeouts: ch.pingTimeouts.Load(),
		RefusedAllow: ch.refusedAllow.Load(), RefusedLimit: ch.refusedLimit.Load(), RefusedPublish: ch.refusedPublish.Load(),
		Stalls: ch.stalls.Load(), StalledMicros: ch.stalledUS.Load(), StallTimeouts: ch.stallTimeouts.Load(),
	}
	for _, c := range ch.receiverList() {
		if c.removed.Load() {
			continue
		}
		if c.mode.Load() != modeUndecided {
			st.Clients++
		} else {
			st.Undecided++
		}
		st.Pending += c.pendingNow()
	}
	ch.retainStats(&st)
	return st
}
